"""Reading and writing DER element headers by hand, from hostile bytes: what `cryptography`
does not expose (a certificate's raw SubjectPublicKeyInfo, its SCT list, the TBSCertificate a
CT log signed, a SAN extension found in place by the pre-filter).

One reader for every such place: single-byte tags, definite lengths of at most four bytes, every
read bounds-checked against its container. Failures raise `DerError` (a ValueError), which each
caller turns into its own error or answer.
"""

from __future__ import annotations

__all__ = ["DerError", "encode_der", "encode_length", "read_tlv"]


class DerError(ValueError):
    """Bytes that are not the DER element expected where they were read."""


def read_tlv(
    buf: bytes | memoryview, pos: int, end: int, *, minimal: bool = False
) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at `pos` within `buf[:end]`.

    One tag byte and a definite length of at most four bytes; with `minimal`, a length in its
    shortest form only, as DER requires (SCT verification re-encodes the TBSCertificate a log
    signed, so any other form would change those bytes; a CT leaf's certificate must be DER).
    DerError otherwise, or when the value runs past `end`.
    """
    if pos + 2 > end:
        raise DerError("truncated DER header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte DER tag 0x{tag:02x} where a certificate has none")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise DerError("indefinite or oversized DER length")
        if pos + count > end:
            raise DerError("truncated DER length")
        if minimal and (buf[pos] == 0 or (count == 1 and buf[pos] < 0x80)):
            raise DerError("non-minimal DER length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise DerError("DER value runs past its container")
    return tag, pos, pos + length


def encode_length(n: int) -> bytes:
    """The DER (shortest) encoding of the length `n`."""
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode_der(tag: int, content: bytes) -> bytes:
    """The DER element of one-byte `tag` holding `content`."""
    return bytes([tag]) + encode_length(len(content)) + content
