"""Certificate Transparency (RFC 6962, C2SP static-ct-api) wire formats, parsed strictly (pure).

Two readings live here:

* Signed tree heads. An RFC 6962 ``get-sth`` answer is range-checked into a `SignedTreeHead`
  and turned by `sth_note` into a C2SP signed note whose signature line is the "RFC 6962 STH"
  note signature (type 0x05: uint64 timestamp || TLS DigitallySigned), exactly what a
  static-ct-api checkpoint carries. `monitor.core.note.Rfc6962NoteVerifier` verifies both, so
  the engine, split views, the store and evidence handle CT logs like any other log: two STHs
  of one size with different roots are two validly signed notes, provable offline.

      get-sth JSON --parse_sth_json--> SignedTreeHead --sth_note--> SignedNote (checkpoint)

* Entries. A ``MerkleTreeLeaf`` (``get-entries``' ``leaf_input``; its RFC 6962 leaf hash is
  SHA-256(0x00 || bytes)) and a static-ct-api data tile's ``TileLeaf`` are parsed into a
  `CtLeaf`: timestamp, entry type, the certificate (x509_entry) or TBSCertificate
  (precert_entry) DER, the issuer key hash of a precertificate, the CT extensions.

Every input is hostile: lengths are checked against what is left before anything is sliced,
and the only exception that leaves this module for bad bytes is `CtFormatError` (a
`ParseError`). A certificate's DER is checked only for being one well-formed TLV spanning its
field; reading it is `monitor.core.certs`' job.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from monitor.core.der import DerError, read_tlv
from monitor.core.errors import ParseError
from monitor.core.fields import MAX_INT64
from monitor.core.note import (
    Checkpoint,
    NoteFormatError,
    NoteSignature,
    SignedNote,
    format_checkpoint,
    parse_digitally_signed,
    parse_signed_note,
)
from monitor.core.tls import TlsReader

__all__ = [
    "MAX_CERT_BYTES",
    "MAX_STH_JSON_BYTES",
    "CtEntry",
    "CtFormatError",
    "CtLeaf",
    "EntryType",
    "SignedTreeHead",
    "TileLeaf",
    "ct_leaf_hash",
    "encode_merkle_tree_leaf",
    "entry_precertificate",
    "parse_merkle_tree_leaf",
    "parse_sth_json",
    "parse_tile_leaves",
    "sth_note",
]

MAX_CERT_BYTES: Final = (1 << 24) - 1
"""The largest certificate an ``opaque ASN.1Cert<1..2^24-1>`` can hold (16 MiB)."""
MAX_STH_JSON_BYTES: Final = 64 * 1024
"""A ``get-sth`` answer is about 300 bytes; anything much larger is not one."""
MAX_EXTENSIONS_BYTES: Final = (1 << 16) - 1
_ROOT_LEN: Final = 32
_ISSUER_KEY_HASH_LEN: Final = 32
_FINGERPRINT_LEN: Final = 32
_CT_VERSION_V1: Final = 0
_LEAF_TYPE_TIMESTAMPED_ENTRY: Final = 0


class CtFormatError(ParseError):
    """CT data (a get-sth answer, a MerkleTreeLeaf, a TileLeaf) breaks its wire format."""


class EntryType(IntEnum):
    """RFC 6962 LogEntryType."""

    X509 = 0
    PRECERT = 1


@dataclass(frozen=True)
class SignedTreeHead:
    """An RFC 6962 STH as served: `signature` is the TLS-encoded DigitallySigned, unverified."""

    tree_size: int
    timestamp: int
    root: bytes
    signature: bytes


@dataclass(frozen=True)
class CtLeaf:
    """One CT log entry's TimestampedEntry.

    `certificate` is the leaf certificate's DER for an x509_entry and the TBSCertificate's DER
    (without the poison extension, issuer as in the final certificate) for a precert_entry,
    whose `issuer_key_hash` is SHA-256 of the issuing CA's SubjectPublicKeyInfo.
    """

    timestamp: int
    entry_type: EntryType
    certificate: bytes
    issuer_key_hash: bytes | None
    extensions: bytes


@dataclass(frozen=True)
class TileLeaf:
    """One static-ct-api data tile entry: the leaf (its certificate not yet checked to be DER:
    `parse_tile_leaves`), its MerkleTreeLeaf bytes (whose leaf hash is the log's), the
    precertificate DER of a precert_entry (None when it is not DER) and the chain's
    fingerprints."""

    leaf: CtLeaf
    merkle_tree_leaf: bytes
    pre_certificate: bytes | None
    chain: tuple[bytes, ...]


class CtEntry(bytes):
    """A CT entry as a scan reads it: its MerkleTreeLeaf bytes (hashed as the tree's leaf, so
    it is `bytes`) and what the log serves beside the leaf for a precert_entry, which the tree
    does not cover: the static-ct TileLeaf's `pre_certificate`, or the RFC 6962 get-entries
    `extra_data` (PrecertChainEntry for a precert_entry) to read it from."""

    pre_certificate: bytes | None
    extra_data: bytes | None

    def __new__(
        cls,
        merkle_tree_leaf: bytes,
        *,
        pre_certificate: bytes | None = None,
        extra_data: bytes | None = None,
    ) -> CtEntry:
        entry = super().__new__(cls, merkle_tree_leaf)
        entry.pre_certificate = pre_certificate
        entry.extra_data = extra_data
        return entry


def entry_precertificate(entry: bytes) -> bytes | None:
    """The precertificate DER the log served with the precert_entry `entry` (a `CtEntry`);
    None when there is none or it cannot be read (then nothing proves a CA signed the entry).

    From RFC 6962 extra_data, the PrecertChainEntry's leading ``ASN.1Cert pre_certificate``;
    the chain after it is not needed (the monitor's trust roots judge the precertificate)."""
    if not isinstance(entry, CtEntry):
        return None
    if entry.pre_certificate is not None:
        return entry.pre_certificate
    if entry.extra_data is None:
        return None
    try:
        r = TlsReader(entry.extra_data, "extra_data", CtFormatError)
        pre = r.vector(3, "the precertificate", lo=1)
        _check_der(pre, r.where, "the precertificate")
    except CtFormatError:
        return None
    return pre


def _fail(where: str, message: str) -> CtFormatError:
    return CtFormatError(f"{where}: {message}")


def _check_der(der: bytes, where: str, what: str) -> None:
    """`der` is exactly one DER SEQUENCE (tag 0x30, definite minimal-form length)."""
    if len(der) < 2 or der[0] != 0x30:
        got = f"tag 0x{der[0]:02x}" if der else "nothing"
        raise _fail(where, f"expected {what} as a DER SEQUENCE, got {got}")
    try:
        _, _, end = read_tlv(der, 0, len(der), minimal=True)
    except DerError as e:
        raise _fail(where, f"expected {what} of {len(der)} bytes to be one DER value: {e}") from e
    if end != len(der):
        raise _fail(
            where,
            f"expected {what} of {len(der)} bytes to be one DER value, got a value of {end} bytes",
        )


def _timestamped_entry(r: TlsReader, *, check_der: bool = True) -> CtLeaf:
    timestamp = r.uint(8, "the timestamp")
    if timestamp > MAX_INT64:
        raise _fail(r.where, f"expected a timestamp of at most 2^63 - 1, got {timestamp}")
    kind = r.uint(2, "the entry type")
    issuer_key_hash: bytes | None = None
    if kind == EntryType.X509:
        cert = r.vector(3, "the certificate", lo=1)
        if check_der:
            _check_der(cert, r.where, "the certificate")
    elif kind == EntryType.PRECERT:
        issuer_key_hash = r.take(_ISSUER_KEY_HASH_LEN, "the issuer key hash")
        cert = r.vector(3, "the TBSCertificate", lo=1)
        if check_der:
            _check_der(cert, r.where, "the TBSCertificate")
    else:
        raise _fail(r.where, f"expected entry type x509_entry(0) or precert_entry(1), got {kind}")
    extensions = r.vector(2, "the extensions")
    return CtLeaf(
        timestamp=timestamp,
        entry_type=EntryType(kind),
        certificate=cert,
        issuer_key_hash=issuer_key_hash,
        extensions=extensions,
    )


def parse_merkle_tree_leaf(data: bytes, where: str = "MerkleTreeLeaf") -> CtLeaf:
    """Parse an RFC 6962 MerkleTreeLeaf (version v1, timestamped_entry) exactly; no trailing
    bytes. Raises `CtFormatError`."""
    r = TlsReader(bytes(data), where, CtFormatError)
    version = r.uint(1, "the version")
    if version != _CT_VERSION_V1:
        raise _fail(where, f"expected version v1(0), got {version}")
    leaf_type = r.uint(1, "the leaf type")
    if leaf_type != _LEAF_TYPE_TIMESTAMPED_ENTRY:
        raise _fail(where, f"expected leaf type timestamped_entry(0), got {leaf_type}")
    leaf = _timestamped_entry(r)
    r.end()
    return leaf


def encode_merkle_tree_leaf(leaf: CtLeaf) -> bytes:
    """The MerkleTreeLeaf bytes of `leaf` (the inverse of `parse_merkle_tree_leaf`)."""
    out = bytearray([_CT_VERSION_V1, _LEAF_TYPE_TIMESTAMPED_ENTRY])
    out += leaf.timestamp.to_bytes(8, "big")
    out += int(leaf.entry_type).to_bytes(2, "big")
    if leaf.entry_type is EntryType.PRECERT:
        if leaf.issuer_key_hash is None or len(leaf.issuer_key_hash) != _ISSUER_KEY_HASH_LEN:
            raise ValueError("a precert_entry needs a 32-byte issuer key hash")
        out += leaf.issuer_key_hash
    out += len(leaf.certificate).to_bytes(3, "big") + leaf.certificate
    out += len(leaf.extensions).to_bytes(2, "big") + leaf.extensions
    return bytes(out)


def ct_leaf_hash(merkle_tree_leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || MerkleTreeLeaf)."""
    return hashlib.sha256(b"\x00" + merkle_tree_leaf).digest()


def parse_tile_leaves(data: bytes, where: str = "data tile") -> list[TileLeaf]:
    """Parse a static-ct-api data tile: TileLeaf entries back to back, to the last byte.

    Each TileLeaf is a TimestampedEntry, then for a precert_entry the precertificate
    (``ASN.1Cert<1..2^24-1>``), then the chain's fingerprints (``Fingerprint<0..2^16-1>``,
    32 bytes each). Raises `CtFormatError` when the tile is not such entries.

    The framing only: a leaf's certificate is checked when its MerkleTreeLeaf is read
    (`parse_merkle_tree_leaf`), so one that is not DER is that entry's unreadable_entry, as
    in an RFC 6962 get-entries answer, not a tile no entry after it can be read from (a log
    could otherwise hide every later entry behind it, with only a log_error to show). A
    precertificate that is not DER is read as none, as `entry_precertificate` reads an RFC 6962
    log's.
    """
    raw = bytes(data)
    r = TlsReader(raw, where, CtFormatError)
    out: list[TileLeaf] = []
    while r.pos < len(raw):
        r.where = f"{where}, entry {len(out)}"
        start = r.pos
        leaf = _timestamped_entry(r, check_der=False)
        entry_end = r.pos
        pre: bytes | None = None
        if leaf.entry_type is EntryType.PRECERT:
            pre = r.vector(3, "the precertificate", lo=1)
            try:
                _check_der(pre, r.where, "the precertificate")
            except CtFormatError:
                pre = None
        fingerprints = r.vector(2, "the chain fingerprints")
        if len(fingerprints) % _FINGERPRINT_LEN:
            raise _fail(
                r.where,
                f"expected chain fingerprints in multiples of {_FINGERPRINT_LEN} bytes, "
                f"got {len(fingerprints)}",
            )
        chain = tuple(
            fingerprints[i : i + _FINGERPRINT_LEN]
            for i in range(0, len(fingerprints), _FINGERPRINT_LEN)
        )
        mtl = bytes([_CT_VERSION_V1, _LEAF_TYPE_TIMESTAMPED_ENTRY]) + raw[start:entry_end]
        out.append(TileLeaf(leaf=leaf, merkle_tree_leaf=mtl, pre_certificate=pre, chain=chain))
    return out


# --- signed tree heads ----------------------------------------------------------------------


def _int_field(obj: dict[str, object], key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT64:
        got = "nothing" if key not in obj else type(value).__name__
        if isinstance(value, int) and not isinstance(value, bool):
            got = str(value)
        raise _fail(where, f"expected {key} as an integer from 0 to 2^63 - 1, got {got}")
    return value


def _b64_field(obj: dict[str, object], key: str, where: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str):
        got = "nothing" if key not in obj else type(value).__name__
        raise _fail(where, f"expected {key} as a base64 string, got {got}")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise _fail(where, f"expected {key} as standard base64, got {str(e)[:80]}") from e


def parse_sth_json(obj: object, where: str = "get-sth") -> SignedTreeHead:
    """Read a parsed ``get-sth`` answer: tree_size and timestamp in [0, 2^63), a 32-byte
    sha256_root_hash, a tree_head_signature that is a well-formed DigitallySigned
    (SHA-256/ECDSA). Unknown fields are ignored. Raises `CtFormatError`.
    """
    if not isinstance(obj, dict):
        raise _fail(where, f"expected a JSON object, got {type(obj).__name__}")
    size = _int_field(obj, "tree_size", where)
    timestamp = _int_field(obj, "timestamp", where)
    root = _b64_field(obj, "sha256_root_hash", where)
    if len(root) != _ROOT_LEN:
        raise _fail(where, f"expected a {_ROOT_LEN}-byte sha256_root_hash, got {len(root)} bytes")
    signature = _b64_field(obj, "tree_head_signature", where)
    try:
        parse_digitally_signed(signature)
    except NoteFormatError as e:
        raise _fail(where, f"tree_head_signature: {e}") from e
    return SignedTreeHead(tree_size=size, timestamp=timestamp, root=root, signature=signature)


def sth_note(origin: str, sth: SignedTreeHead, key_name: str, key_hint: bytes) -> SignedNote:
    """The signed checkpoint note carrying `sth`: text ``origin\\nsize\\nroot\\n``, one
    signature line by (`key_name`, `key_hint`) holding timestamp || DigitallySigned.

    Nothing is verified here; `Rfc6962NoteVerifier` does that, like for any note. Raises
    `CtFormatError` when the pieces cannot form a note (a bad origin or key name).
    """
    try:
        text = format_checkpoint(Checkpoint(origin=origin, size=sth.tree_size, root=sth.root))
        sig = NoteSignature(
            name=key_name,
            key_hint=key_hint,
            signature=sth.timestamp.to_bytes(8, "big") + sth.signature,
        )
        # Re-parsed from its wire form, so it is exactly what a reader of the stored note gets.
        return parse_signed_note(SignedNote(text=text, signatures=(sig,)).to_text())
    except NoteFormatError as e:
        raise CtFormatError(f"STH as a note: {e}") from e
