"""Signed notes, checkpoints and witness cosignatures (C2SP signed-note, tlog-checkpoint,
tlog-cosignature), parsed strictly and verified with explicit keys.

Wire format (https://c2sp.org/signed-note)::

    <text, one or more lines, ending in "\\n">
    <blank line>
    — <key name> base64(4-byte key hint || signature)
    — ...

The signature covers the text bytes including its final newline. A checkpoint
(https://c2sp.org/tlog-checkpoint) is a note whose text is ``origin\\nsize\\nbase64(root)\\n``
followed by optional extension lines.

Flow, at the edge of the monitor::

    bytes from a log --parse_signed_note--> SignedNote --verify_note(known keys)--> signers
                                              |
                                              +--parse_checkpoint--> Checkpoint (origin checked)

`verify_checkpoint` does all three steps. Everything here is pure: no IO, no clock.

Strictness beyond the letter of the spec, and why:

* Base64 must be canonical (padding present, unused bits zero). A lax decoder lets several byte
  strings carry one signature, so two views of "the same" note could differ byte for byte; a
  strict one makes a note's bytes and its parsed value correspond one to one, which keeps
  evidence and deduplication exact (`parse_signed_note(n.to_text()) == n`, byte for byte).
* Every signature from a known key is verified, including repeats (the Go reference skips
  repeats): a bad signature from a trusted key is evidence of misbehaviour, never noise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from monitor.core.errors import ConfigError, ParseError, VerificationError
from monitor.core.fields import MAX_INT64, MAX_UNIX_TIME

__all__ = [
    "COSIGNATURE_V1_HEADER",
    "MAX_DIGITALLY_SIGNED_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_TYPE_COSIGNATURE_V1",
    "SIGNATURE_TYPE_ED25519",
    "SIGNATURE_TYPE_RFC6962",
    "Checkpoint",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "EcdsaNoteSigner",
    "EcdsaNoteVerifier",
    "Ed25519NoteSigner",
    "Ed25519NoteVerifier",
    "NoteFormatError",
    "NoteKeyError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerificationError",
    "NoteVerifier",
    "Rfc6962NoteVerifier",
    "SignedNote",
    "VerifiedCheckpoint",
    "cosign_note",
    "cosignature_message",
    "encode_digitally_signed",
    "encode_vkey",
    "format_checkpoint",
    "index_keys",
    "is_valid_key_name",
    "parse_checkpoint",
    "parse_digitally_signed",
    "parse_signed_note",
    "parse_vkey",
    "sign_note",
    "tree_head_signature_input",
    "verify_checkpoint",
    "verify_cosignatures",
    "verify_note",
]

# C2SP signed-note: verifiers "MUST accept at least up to 16 signatures" and "post-quantum
# signatures can be up to nearly 5kB". 16 such lines are about 16 * 6.7 kB of base64 = 110 kB,
# so 256 KiB accepts every note the spec requires us to, with room for the text, while bounding
# what one poll of one view can make us hold (real checkpoints are well under 1 KiB).
MAX_NOTE_BYTES = 1 << 18
# The Go reference (golang.org/x/mod/sumdb/note) rejects notes with more than 100 signatures
# "to avoid spending forever parsing"; the spec's floor is 16.
MAX_SIGNATURES = 100

SIGNATURE_TYPE_ED25519 = 0x01
SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04
SIGNATURE_TYPE_RFC6962 = 0x05
COSIGNATURE_V1_HEADER = "cosignature/v1\n"

_SIG_PREFIX = "\u2014 "  # em dash, space
_HINT_LEN = 4
_ED25519_KEY_LEN = 32
_ED25519_SIG_LEN = 64
_ROOT_LEN = 32
# C2SP allows sizes up to 2^64 - 1, but the store (SQLite) and Go's tlog (int64) stop at
# 2^63 - 1; a larger size from a log is refused here, as a malformed checkpoint, rather than
# failing somewhere after verification (found by the attack suite, tests/faults).
_MAX_TREE_SIZE = MAX_INT64
# tlog-cosignature: "timestamp ... MUST NOT exceed 2^63 - 1".
_MAX_COSIGNATURE_TIME = (1 << 63) - 1
# The last millisecond of year 9999: an STH timestamp past it (or past 2^63 - 1) cannot be
# stored or shown as a date, so a note carrying one fails verification instead of making every
# later judgement of the log raise (attacker review finding 11).
_MAX_STH_MS = MAX_UNIX_TIME * 1000 + 999
_TIMESTAMP_LEN = 8

# ASCII control characters other than newline; C2SP forbids them anywhere in a note.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
# Unicode White_Space, which is what Go's unicode.IsSpace (and so the reference isValidName)
# tests; Python's str.isspace() differs (it includes U+001C..U+001F, for one).
_WHITE_SPACE = re.compile(
    "[\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX_HINT = re.compile(r"[0-9a-fA-F]{8}")


class NoteFormatError(ParseError):
    """A signed note or checkpoint is malformed: it breaks the C2SP wire format."""


class NoteVerificationError(VerificationError):
    """A note failed verification: a known key's signature is bad, no known key signed it,
    or its origin is not the expected one."""


class NoteKeyError(ConfigError):
    """A note key (vkey string, key name or key material) given to us is unusable."""


def _show(value: str | bytes, limit: int = 48) -> str:
    """A short repr for error messages: notes come from the network and may be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_valid_key_name(name: str) -> bool:
    """Whether `name` may appear in a signature line: non-empty, no Unicode spaces, no "+".

    C2SP forbids the plus because vkeys use it as a separator, and spaces because the
    signature line is split at the first space.
    """
    return (
        name != ""
        and _WHITE_SPACE.search(name) is None
        and "+" not in name
        and _CONTROL.search(name) is None
    )


def _check_key_name(name: str, component: str) -> None:
    if not is_valid_key_name(name):
        raise NoteKeyError(
            f"{component}: expected a key name without spaces or '+', got {_show(name)}"
        )


def _b64decode_canonical(text: str, component: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), padded, with zero unused bits, or NoteFormatError."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise NoteFormatError(f"{component}: expected standard base64, got {_show(text)}") from e
    if base64.b64encode(raw).decode("ascii") != text:
        # Non-zero padding bits or similar: another string encodes the same bytes.
        raise NoteFormatError(f"{component}: expected canonical base64, got {_show(text)}")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_text(text: str, component: str) -> None:
    """The rules every note text obeys: newline-terminated UTF-8 without control characters."""
    if not text.endswith("\n"):
        raise NoteFormatError(
            f"{component}: expected text ending in a newline, got {_show(text[-16:])}"
        )
    match = _CONTROL.search(text)
    if match is not None:
        raise NoteFormatError(
            f"{component}: expected no control characters other than newline, "
            f"got {match.group()!r} at offset {match.start()}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteFormatError(f"{component}: expected text encodable as UTF-8, got {e}") from e


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: `name`, the 4-byte `key_hint`, and the `signature` after the hint."""

    name: str
    key_hint: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteFormatError(
                f"signature line: expected a key name without spaces or '+', got {_show(self.name)}"
            )
        if len(self.key_hint) != _HINT_LEN:
            raise NoteFormatError(
                f"signature line: expected a {_HINT_LEN}-byte key hint, got {len(self.key_hint)}"
            )
        if not self.signature:
            raise NoteFormatError("signature line: expected a non-empty signature, got none")

    @property
    def key_id(self) -> str:
        """``name+hint`` in hex, as vkeys spell a key; handy in logs and alerts."""
        return f"{self.name}+{self.key_hint.hex()}"

    def to_line(self) -> str:
        """The signature line, with its trailing newline."""
        return f"{_SIG_PREFIX}{self.name} {_b64encode(self.key_hint + self.signature)}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note: `text` (including its final newline) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text, "signed note")
        if not self.signatures:
            raise NoteFormatError("signed note: expected at least one signature line, got none")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteFormatError(
                f"signed note: expected at most {MAX_SIGNATURES} signature lines, "
                f"got {len(self.signatures)}"
            )

    def to_text(self) -> str:
        """The exact wire form; `parse_signed_note(note.to_text()) == note`, byte for byte."""
        return self.text + "\n" + "".join(sig.to_line() for sig in self.signatures)

    def to_bytes(self) -> bytes:
        """`to_text()` encoded as UTF-8."""
        return self.to_text().encode("utf-8")


def parse_signed_note(data: bytes | str) -> SignedNote:
    """Parse a signed note strictly per C2SP signed-note, without verifying any signature.

    Rejects with `NoteFormatError`: more than `MAX_NOTE_BYTES` bytes, invalid UTF-8, ASCII
    control characters other than newline, no blank line before the signatures, a signature
    block not ending in a newline, more than `MAX_SIGNATURES` lines, a line not of the form
    "— <name> <base64>", an invalid key name, non-canonical base64, or fewer than 5 bytes
    (4-byte hint and at least one signature byte). The text is everything up to the *last*
    blank line, so texts may contain blank lines of their own.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise NoteFormatError(f"signed note: expected valid Unicode text, got {e}") from e
    else:
        raw = bytes(data)
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteFormatError(
            f"signed note: expected at most {MAX_NOTE_BYTES} bytes, got {len(raw)}"
        )
    try:
        whole = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteFormatError(
            f"signed note: expected valid UTF-8, got an invalid byte at offset {e.start}"
        ) from e
    match = _CONTROL.search(whole)
    if match is not None:
        raise NoteFormatError(
            "signed note: expected no control characters other than newline, "
            f"got {match.group()!r} at offset {match.start()}"
        )

    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteFormatError(
            "signed note: expected a blank line between text and signatures, got none"
        )
    text, block = whole[: split + 1], whole[split + 2 :]
    if not block:
        raise NoteFormatError(
            "signed note: expected signature lines after the blank line, got none"
        )
    if not block.endswith("\n"):
        raise NoteFormatError(
            f"signed note: expected a newline after the last signature, got {_show(block[-16:])}"
        )
    lines = block[:-1].split("\n")
    # Counted before any line is decoded, so a flood of lines costs one split, not many decodes.
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(
            f"signed note: expected at most {MAX_SIGNATURES} signature lines, got {len(lines)}"
        )
    return SignedNote(text=text, signatures=tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise NoteFormatError(
            f"signature line: expected to start with an em dash and a space, got {_show(line)}"
        )
    name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise NoteFormatError(f"signature line: expected '<name> <base64>', got {_show(line)}")
    if not is_valid_key_name(name):
        raise NoteFormatError(
            f"signature line: expected a key name without spaces or '+', got {_show(name)}"
        )
    sig = _b64decode_canonical(encoded, "signature line")
    if len(sig) < _HINT_LEN + 1:
        raise NoteFormatError(
            f"signature line: expected at least {_HINT_LEN + 1} bytes (hint and signature), "
            f"got {len(sig)}"
        )
    return NoteSignature(name=name, key_hint=sig[:_HINT_LEN], signature=sig[_HINT_LEN:])


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: the log's `origin`, tree `size`, 32-byte `root`, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, line in [
            ("origin", self.origin),
            *(("extension line", e) for e in self.extensions),
        ]:
            if not line:
                raise NoteFormatError(f"checkpoint: expected a non-empty {label}, got ''")
            bad = re.search(r"[\x00-\x1f]", line)
            if bad is not None:
                raise NoteFormatError(
                    f"checkpoint: expected no control characters in the {label}, "
                    f"got {bad.group()!r}"
                )
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteFormatError(f"checkpoint: expected a tree size in [0, 2^63), got {self.size}")
        if len(self.root) != _ROOT_LEN:
            raise NoteFormatError(
                f"checkpoint: expected a {_ROOT_LEN}-byte root hash, got {len(self.root)} bytes"
            )


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (a verified note's `text`) per C2SP tlog-checkpoint.

    At least three newline-terminated lines: a non-empty origin, the tree size in ASCII
    decimal without sign or leading zeros (at most 2^63 - 1, see `_MAX_TREE_SIZE`), the root
    hash as canonical base64 of exactly 32 bytes; then optional non-empty extension lines.
    """
    _check_text(text, "checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteFormatError(
            f"checkpoint: expected origin, size and root hash lines, got {len(lines)} line(s)"
        )
    origin, size_text, root_text, *extensions = lines
    if not _TREE_SIZE.fullmatch(size_text):
        raise NoteFormatError(
            f"checkpoint: expected a decimal tree size without sign or leading zeros, "
            f"got {_show(size_text)}"
        )
    if int(size_text) > _MAX_TREE_SIZE:
        raise NoteFormatError(
            f"checkpoint: expected a tree size of at most 2^63 - 1, got {_show(size_text)}"
        )
    root = _b64decode_canonical(root_text, "checkpoint root hash")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def format_checkpoint(cp: Checkpoint) -> str:
    """The checkpoint's note text; `parse_checkpoint(format_checkpoint(cp)) == cp`."""
    lines = [cp.origin, str(cp.size), _b64encode(cp.root), *cp.extensions]
    return "".join(line + "\n" for line in lines)


# --- keys: verifiers --------------------------------------------------------------------------


class NoteVerifier(Protocol):
    """A public key that can check note signatures by one signer.

    `verify` is the bare primitive and returns a bool; callers use `verify_note` or
    `verify_checkpoint`, which raise, rather than calling it directly.
    """

    @property
    def name(self) -> str:
        """The key name on the signer's signature lines."""
        ...

    @property
    def key_hint(self) -> bytes:
        """The 4-byte key hint (key ID) on the signer's signature lines."""
        ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` (after the hint) is a valid signature of `message`."""
        ...


def _c2sp_key_hash(name: str, sig_type: int, key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || key): the C2SP key ID, of which the hint is 4 bytes."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + key).digest()


_PublicKey = TypeVar("_PublicKey")


class _NoteKey(Generic[_PublicKey]):
    """What every note verifier shares: a key name, a public key and the key ID whose first
    bytes are the hint on signature lines."""

    _name: str
    _key: _PublicKey
    _key_id: bytes

    @property
    def name(self) -> str:
        """The key name on signature lines."""
        return self._name

    @property
    def key_hint(self) -> bytes:
        """The first 4 bytes of `key_id`, on signature lines."""
        return self._key_id[:_HINT_LEN]

    @property
    def key_id(self) -> bytes:
        """The full 32-byte key ID: the C2SP key hash of an Ed25519 key (Sigstore's trusted root
        uses it as the log ID), SHA-256 of the DER SubjectPublicKeyInfo of an ECDSA key (Rekor
        v1's log ID)."""
        return self._key_id

    @property
    def public_key(self) -> _PublicKey:
        """The public key."""
        return self._key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, hint={self.key_hint.hex()})"


class _Ed25519Key(_NoteKey[Ed25519PublicKey]):
    """Shared state of the Ed25519-based verifiers: a name, a raw key and its hint."""

    _sig_type: int = SIGNATURE_TYPE_ED25519
    _component: str = "ed25519 note key"

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        _check_key_name(name, self._component)
        if not isinstance(public_key, Ed25519PublicKey):
            raise NoteKeyError(
                f"{self._component}: expected an Ed25519 public key, "
                f"got {type(public_key).__name__}"
            )
        self._name = name
        self._key = public_key
        self._raw = public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = _c2sp_key_hash(name, self._sig_type, self._raw)

    @classmethod
    def from_bytes(cls, name: str, raw: bytes) -> Self:
        """Build from the 32-byte raw Ed25519 public key."""
        if len(raw) != _ED25519_KEY_LEN:
            raise NoteKeyError(
                f"{cls._component}: expected a {_ED25519_KEY_LEN}-byte Ed25519 key, "
                f"got {len(raw)} bytes"
            )
        return cls(name, Ed25519PublicKey.from_public_bytes(raw))

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte raw public key."""
        return self._raw

    @property
    def signature_type(self) -> int:
        """The C2SP signature type byte: 0x01 (Ed25519) or 0x04 (cosignature/v1)."""
        return self._sig_type

    @property
    def vkey(self) -> str:
        """The C2SP vkey string ``<name>+<hex hint>+<base64(type || key)>``."""
        return (
            f"{self._name}+{self.key_hint.hex()}+{_b64encode(bytes([self._sig_type]) + self._raw)}"
        )

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _Ed25519Key)
            and (other._name, other._raw) == (self._name, self._raw)
        )

    def __hash__(self) -> int:
        return hash((type(self), self._name, self._raw))


class Ed25519NoteVerifier(_Ed25519Key):
    """An Ed25519 note key (signature type 0x01), as used by tiled logs such as Rekor v2.

    Key hint = SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4].
    """

    _sig_type = SIGNATURE_TYPE_ED25519
    _component = "ed25519 note key"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is a valid Ed25519 signature of `message` by this key."""
        if len(signature) != _ED25519_SIG_LEN:
            return False
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def _p256_key(public_key: ec.EllipticCurvePublicKey, what: str) -> tuple[bytes, bytes]:
    """The DER SubjectPublicKeyInfo of an ECDSA P-256 key and its SHA-256; NoteKeyError naming
    `what` for any other key (a caller's type hint does not stop a config from passing one)."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        got = (
            public_key.curve.name
            if isinstance(public_key, ec.EllipticCurvePublicKey)
            else type(public_key).__name__
        )
        raise NoteKeyError(f"{what}: expected an ECDSA P-256 key, got {got}")
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return spki, hashlib.sha256(spki).digest()


class EcdsaNoteVerifier(_NoteKey[ec.EllipticCurvePublicKey]):
    """An ECDSA P-256 / SHA-256 note key with DER signatures: Rekor v1's checkpoint key.

    Rekor v1 convention (also C2SP signature type 0x02's): key hint = SHA-256(DER
    SubjectPublicKeyInfo)[:4]. The name is passed in: for Rekor v1 it is the log's host name
    (e.g. "rekor.sigstore.dev"), not the checkpoint origin.
    """

    def __init__(self, name: str, public_key: ec.EllipticCurvePublicKey) -> None:
        _check_key_name(name, "ecdsa note key")
        self._spki, self._key_id = _p256_key(public_key, "ecdsa note key")
        self._name = name
        self._key = public_key

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is a valid DER ECDSA-SHA256 signature of `message`."""
        try:
            self._key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            # ValueError: cryptography's answer to some malformed DER; still just "invalid".
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EcdsaNoteVerifier) and (other._name, other._spki) == (
            self._name,
            self._spki,
        )

    def __hash__(self) -> int:
        return hash((EcdsaNoteVerifier, self._name, self._spki))


# --- RFC 6962 signed tree heads as notes (C2SP signed-note type 0x05, static-ct-api) ---------

# RFC 6962 section 3.2 / 3.5, TLS presentation language: DigitallySigned is
# hash(1) || signature algorithm(1) || opaque signature<0..2^16-1>; a TreeHeadSignature is
# version v1(0) || signature_type tree_hash(1) || uint64 timestamp || uint64 tree_size ||
# 32-byte root hash.
_TLS_HASH_SHA256 = 4
_TLS_SIG_ECDSA = 3
_CT_VERSION_V1 = 0
_CT_SIGNATURE_TYPE_TREE_HASH = 1
# A DER ECDSA P-256 signature is at most 72 bytes; 1 KiB leaves room for any sane key while
# keeping a hostile length field from mattering.
MAX_DIGITALLY_SIGNED_BYTES = 1024


def tree_head_signature_input(timestamp: int, tree_size: int, root: bytes) -> bytes:
    """The bytes an RFC 6962 log signs for a tree head (the TLS-encoded TreeHeadSignature).

    Raises `NoteFormatError` for a timestamp or size outside [0, 2^63) or a root that is not
    32 bytes (the store and Go's int64 stop there, as for checkpoints).
    """
    if not 0 <= timestamp <= _MAX_COSIGNATURE_TIME:
        raise NoteFormatError(f"tree head: expected a timestamp in [0, 2^63), got {timestamp}")
    if not 0 <= tree_size <= _MAX_TREE_SIZE:
        raise NoteFormatError(f"tree head: expected a tree size in [0, 2^63), got {tree_size}")
    if len(root) != _ROOT_LEN:
        raise NoteFormatError(
            f"tree head: expected a {_ROOT_LEN}-byte root hash, got {len(root)} bytes"
        )
    return (
        bytes([_CT_VERSION_V1, _CT_SIGNATURE_TYPE_TREE_HASH])
        + timestamp.to_bytes(8, "big")
        + tree_size.to_bytes(8, "big")
        + root
    )


def parse_digitally_signed(data: bytes) -> bytes:
    """The signature inside a TLS `DigitallySigned` of SHA-256 / ECDSA, the only pair RFC 6962
    logs in Sigstore's and the web's trust roots use with P-256 keys.

    The whole input must be the structure (no trailing bytes). Raises `NoteFormatError`.
    """
    if len(data) > MAX_DIGITALLY_SIGNED_BYTES:
        raise NoteFormatError(
            f"DigitallySigned: expected at most {MAX_DIGITALLY_SIGNED_BYTES} bytes, got {len(data)}"
        )
    if len(data) < 4:
        raise NoteFormatError(
            f"DigitallySigned: expected at least 4 bytes (algorithms and length), got {len(data)}"
        )
    if (data[0], data[1]) != (_TLS_HASH_SHA256, _TLS_SIG_ECDSA):
        raise NoteFormatError(
            "DigitallySigned: expected hash sha256(4) and signature ecdsa(3), "
            f"got hash {data[0]} and signature {data[1]}"
        )
    length = int.from_bytes(data[2:4], "big")
    if length == 0 or len(data) != 4 + length:
        raise NoteFormatError(
            f"DigitallySigned: expected a non-empty signature of exactly the {len(data) - 4} "
            f"bytes that follow its length, got a length of {length}"
        )
    return data[4:]


def encode_digitally_signed(signature: bytes) -> bytes:
    """A DER ECDSA-SHA256 signature as a TLS `DigitallySigned` (the inverse of
    `parse_digitally_signed`)."""
    if not 0 < len(signature) <= MAX_DIGITALLY_SIGNED_BYTES - 4:
        raise NoteFormatError(
            f"DigitallySigned: expected 1 to {MAX_DIGITALLY_SIGNED_BYTES - 4} signature bytes, "
            f"got {len(signature)}"
        )
    return bytes([_TLS_HASH_SHA256, _TLS_SIG_ECDSA]) + len(signature).to_bytes(2, "big") + signature


class Rfc6962NoteVerifier(_NoteKey[ec.EllipticCurvePublicKey]):
    """An RFC 6962 CT log's ECDSA P-256 key, checking C2SP "RFC 6962 STH" note signatures
    (signature type 0x05, as static-ct-api checkpoints carry and as `monitor.core.ct.sth_note`
    builds from a `get-sth` answer).

    The signature after the hint is the uint64 STH timestamp (milliseconds) followed by the
    TLS `DigitallySigned` over the TreeHeadSignature of (timestamp, size, root). Size and root
    are read from the note text, which must be exactly a checkpoint of three lines: the RFC
    6962 signature covers neither the origin nor extension lines, so extension lines (which
    the log did not sign) are refused rather than passed on as signed. The origin is bound by
    the key name and checked by `verify_checkpoint` against the expected one.

    Key hint: SHA-256(name || 0x0A || 0x05 || log ID)[:4], where the log ID is SHA-256 of the
    DER SubjectPublicKeyInfo (RFC 6962 section 3.2); `key_id` is the log ID itself, as in CT
    log lists and Sigstore's trusted root. The Sunlight checkpoint in the test data proves the
    hint rule.
    """

    def __init__(self, name: str, public_key: ec.EllipticCurvePublicKey) -> None:
        _check_key_name(name, "rfc6962 note key")
        self._spki, self._key_id = _p256_key(public_key, "rfc6962 note key")
        self._name = name
        self._key = public_key
        self._hint = _c2sp_key_hash(name, SIGNATURE_TYPE_RFC6962, self._key_id)[:_HINT_LEN]

    @classmethod
    def from_der(cls, name: str, der: bytes) -> Rfc6962NoteVerifier:
        """Build from a DER SubjectPublicKeyInfo (a CT log list's or trusted root's key)."""
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise NoteKeyError(
                f"rfc6962 note key: expected a DER SubjectPublicKeyInfo, got data that does "
                f"not parse ({e})"
            ) from e
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise NoteKeyError(
                f"rfc6962 note key: expected an ECDSA P-256 key, got {type(key).__name__}"
            )
        return cls(name, key)

    @property
    def key_hint(self) -> bytes:
        """SHA-256(name || 0x0A || 0x05 || log ID)[:4]."""
        return self._hint

    @property
    def log_id(self) -> bytes:
        """The RFC 6962 log ID: SHA-256 of the DER SubjectPublicKeyInfo."""
        return self._key_id

    def verify_tree_head(self, timestamp: int, tree_size: int, root: bytes, signed: bytes) -> bool:
        """Whether `signed` (a TLS DigitallySigned) is this log's signature of the tree head."""
        try:
            message = tree_head_signature_input(timestamp, tree_size, root)
            der = parse_digitally_signed(signed)
            self._key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        except (NoteFormatError, InvalidSignature, ValueError):
            # ValueError: cryptography's answer to some malformed DER; still just "invalid".
            return False
        return True

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` (timestamp || DigitallySigned) signs the tree head in the note
        text `message`, which must be a three-line checkpoint, at a timestamp no later than
        the last millisecond of year 9999."""
        if len(signature) <= _TIMESTAMP_LEN:
            return False
        try:
            checkpoint = parse_checkpoint(message.decode("utf-8"))
        except (NoteFormatError, UnicodeDecodeError):
            return False
        if checkpoint.extensions:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_LEN], "big")
        if timestamp > _MAX_STH_MS:
            return False
        return self.verify_tree_head(
            timestamp, checkpoint.size, checkpoint.root, signature[_TIMESTAMP_LEN:]
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rfc6962NoteVerifier) and (other._name, other._spki) == (
            self._name,
            self._spki,
        )

    def __hash__(self) -> int:
        return hash((Rfc6962NoteVerifier, self._name, self._spki))


# --- cosignatures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    """A verified witness cosignature: which witness, and the time it says it signed at."""

    name: str
    key_hint: bytes
    timestamp: int


def cosignature_message(note_text: str | bytes, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs: header, "time <decimal>" line, then the note text."""
    text = note_text.encode("utf-8") if isinstance(note_text, str) else note_text
    return f"{COSIGNATURE_V1_HEADER}time {timestamp}\n".encode("ascii") + text


class CosignatureVerifier(_Ed25519Key):
    """A witness's Ed25519 cosigning key (C2SP tlog-cosignature, cosignature/v1, type 0x04).

    Key hint = SHA-256(name || 0x0A || 0x04 || 32-byte key)[:4]. The signature after the hint
    is an 8-byte big-endian POSIX timestamp followed by a 64-byte Ed25519 signature of
    ``"cosignature/v1\\ntime <timestamp>\\n" || note text``.

    It also satisfies `NoteVerifier` (`verify(note text, timestamp || signature)`), so a
    witness can stand in `verify_note`'s list; `verify_cosignature` additionally returns the
    timestamp.
    """

    _sig_type = SIGNATURE_TYPE_COSIGNATURE_V1
    _component = "cosignature key"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` (timestamp || Ed25519 signature) cosigns the note text `message`."""
        if len(signature) != _TIMESTAMP_LEN + _ED25519_SIG_LEN:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_LEN], "big")
        if timestamp > _MAX_COSIGNATURE_TIME:
            return False
        try:
            self._key.verify(signature[_TIMESTAMP_LEN:], cosignature_message(message, timestamp))
        except InvalidSignature:
            return False
        return True

    def verify_cosignature(self, note: SignedNote, sig: NoteSignature) -> Cosignature:
        """Check that `sig` is this witness's valid cosignature of `note`; raise otherwise."""
        if (sig.name, sig.key_hint) != (self.name, self.key_hint):
            raise NoteVerificationError(
                f"cosignature: expected a signature by {self.name}+{self.key_hint.hex()}, "
                f"got one by {sig.key_id}"
            )
        if len(sig.signature) != _TIMESTAMP_LEN + _ED25519_SIG_LEN:
            raise NoteVerificationError(
                f"cosignature: expected {_TIMESTAMP_LEN + _ED25519_SIG_LEN} bytes "
                f"(timestamp and Ed25519 signature) from {sig.key_id}, got {len(sig.signature)}"
            )
        timestamp = int.from_bytes(sig.signature[:_TIMESTAMP_LEN], "big")
        if timestamp > _MAX_COSIGNATURE_TIME:
            raise NoteVerificationError(
                f"cosignature: expected a timestamp at most 2^63 - 1 from {sig.key_id}, "
                f"got {timestamp}"
            )
        if not self.verify(note.text.encode("utf-8"), sig.signature):
            raise NoteVerificationError(
                f"cosignature: expected a valid cosignature from {sig.key_id}, got an invalid one"
            )
        return Cosignature(name=sig.name, key_hint=sig.key_hint, timestamp=timestamp)


def verify_cosignatures(
    note: SignedNote, witnesses: Sequence[CosignatureVerifier]
) -> tuple[Cosignature, ...]:
    """The valid cosignatures of `note` by `witnesses`, one per witness, in note order.

    Signature lines whose name and hint match no witness are ignored (the log's own signature,
    unknown witnesses). A line that does match a witness but does not verify raises
    `NoteVerificationError`. No cosignature at all is not an error here: how many witnesses
    must sign is the caller's policy.
    """
    index = index_keys(witnesses)
    found: dict[tuple[str, bytes], Cosignature] = {}
    for sig in note.signatures:
        witness = index.get((sig.name, sig.key_hint))
        if witness is None:
            continue
        cosig = witness.verify_cosignature(note, sig)
        found.setdefault((sig.name, sig.key_hint), cosig)
    return tuple(found.values())


# --- verifying notes and checkpoints ----------------------------------------------------------


_K = TypeVar("_K", bound=NoteVerifier)


def index_keys(keys: Sequence[_K]) -> dict[tuple[str, bytes], _K]:
    """Map (name, hint) to key; two different keys under one (name, hint) are a config error."""
    index: dict[tuple[str, bytes], _K] = {}
    for key in keys:
        slot = (key.name, bytes(key.key_hint))
        if slot in index and index[slot] != key:
            raise NoteKeyError(
                f"note keys: expected one key per name and hint, got two for "
                f"{key.name}+{key.key_hint.hex()}"
            )
        index[slot] = key
    return index


def verify_note(note: SignedNote, verifiers: Sequence[NoteVerifier]) -> tuple[NoteVerifier, ...]:
    """Verify `note` against known keys and return the keys that signed it, in note order.

    Per C2SP signed-note: signatures whose (name, hint) match no verifier are ignored;
    a signature whose (name, hint) matches one must verify, or the whole note is rejected
    with `NoteVerificationError`; and if no known key signed, the note is rejected too.
    """
    index = index_keys(verifiers)
    if not index:
        raise NoteKeyError("note keys: expected at least one verifier, got none")
    message = note.text.encode("utf-8")
    signers: list[NoteVerifier] = []
    for sig in note.signatures:
        verifier = index.get((sig.name, sig.key_hint))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.signature):
            raise NoteVerificationError(
                f"signed note: expected a valid signature from {sig.key_id}, got an invalid one"
            )
        if verifier not in signers:
            signers.append(verifier)
    if not signers:
        known = ", ".join(sorted(f"{n}+{h.hex()}" for n, h in index))
        seen = ", ".join(sig.key_id for sig in note.signatures)
        raise NoteVerificationError(
            f"signed note: expected a signature by {known}, got signatures by {seen}"
        )
    return tuple(signers)


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose note verified: the parsed body, the note itself (evidence), and the
    names of the known keys that signed it."""

    checkpoint: Checkpoint
    note: SignedNote
    signers: tuple[str, ...]


def verify_checkpoint(
    data: bytes | str, verifiers: Sequence[NoteVerifier], origin: str | None = None
) -> VerifiedCheckpoint:
    """Parse a signed checkpoint, verify it with `verifiers`, and check its origin.

    Raises `NoteFormatError` if the note or checkpoint body is malformed, and
    `NoteVerificationError` if a known key's signature is bad, no known key signed, or
    `origin` is given and the origin line is not exactly equal to it.
    """
    note = parse_signed_note(data)
    signers = verify_note(note, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteVerificationError(
            f"checkpoint: expected origin {_show(origin, 120)}, got {_show(checkpoint.origin, 120)}"
        )
    return VerifiedCheckpoint(
        checkpoint=checkpoint, note=note, signers=tuple(s.name for s in signers)
    )


# --- signing (the sandbox log and tests sign their own notes) ---------------------------------


class NoteSigner(Protocol):
    """A private key that signs note texts under a key name and hint."""

    @property
    def name(self) -> str:
        """The key name for signature lines."""
        ...

    @property
    def key_hint(self) -> bytes:
        """The 4-byte key hint for signature lines."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The signature of `message` (without the hint)."""
        ...


_V = TypeVar("_V", bound=NoteVerifier)


class _Signer(Generic[_V]):
    """What every note signer shares: its key's name and hint come from its verifier."""

    _verifier: _V

    @property
    def name(self) -> str:
        """The key name."""
        return self._verifier.name

    @property
    def key_hint(self) -> bytes:
        """The 4-byte key hint."""
        return self._verifier.key_hint

    def verifier(self) -> _V:
        """The matching verifier."""
        return self._verifier


class Ed25519NoteSigner(_Signer[Ed25519NoteVerifier]):
    """Signs notes with an Ed25519 key (signature type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._verifier = Ed25519NoteVerifier(name, private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of `message`."""
        return self._key.sign(message)


class EcdsaNoteSigner(_Signer[EcdsaNoteVerifier]):
    """Signs notes with an ECDSA P-256 key the way Rekor v1 does (DER, SPKI-hash hint)."""

    def __init__(self, name: str, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key
        self._verifier = EcdsaNoteVerifier(name, private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """A DER ECDSA-SHA256 signature of `message` (randomized, like Rekor's)."""
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


class CosignatureSigner(_Signer[CosignatureVerifier]):
    """A witness's cosigning key (cosignature/v1, type 0x04)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._verifier = CosignatureVerifier(name, private_key.public_key())

    def sign_cosignature(self, note_text: str, timestamp: int) -> NoteSignature:
        """The signature line cosigning `note_text` at POSIX time `timestamp`."""
        _check_text(note_text, "cosignature")
        if not 0 <= timestamp <= _MAX_COSIGNATURE_TIME:
            raise NoteFormatError(
                f"cosignature: expected a timestamp in [0, 2^63), got {timestamp}"
            )
        sig = self._key.sign(cosignature_message(note_text, timestamp))
        return NoteSignature(
            name=self.name,
            key_hint=self.key_hint,
            signature=timestamp.to_bytes(_TIMESTAMP_LEN, "big") + sig,
        )


def sign_note(text: str, signers: Sequence[NoteSigner]) -> SignedNote:
    """Sign `text` (which must end in a newline) with each signer, in order.

    The result is re-parsed from its wire form, so it is exactly what a reader would get.
    """
    _check_text(text, "signed note")
    message = text.encode("utf-8")
    sigs = tuple(
        NoteSignature(name=s.name, key_hint=bytes(s.key_hint), signature=s.sign(message))
        for s in signers
    )
    return parse_signed_note(SignedNote(text=text, signatures=sigs).to_text())


def cosign_note(
    note: SignedNote, cosigners: Sequence[CosignatureSigner], timestamp: int
) -> SignedNote:
    """`note` with a cosignature by each of `cosigners` at `timestamp` appended."""
    added = tuple(c.sign_cosignature(note.text, timestamp) for c in cosigners)
    return parse_signed_note(
        SignedNote(text=note.text, signatures=note.signatures + added).to_text()
    )


# --- vkeys ------------------------------------------------------------------------------------


def parse_vkey(vkey: str) -> Ed25519NoteVerifier | CosignatureVerifier:
    """Parse a C2SP vkey ``<name>+<hex hint>+<base64(type || key)>``.

    Type 0x01 gives an `Ed25519NoteVerifier`, 0x04 a `CosignatureVerifier`; the hint must
    equal SHA-256(name || 0x0A || type || key)[:4]. Raises `NoteKeyError` otherwise.
    """
    name, _, rest = vkey.strip().partition("+")
    hint_hex, sep, key_b64 = rest.partition("+")
    if not sep or not _HEX_HINT.fullmatch(hint_hex):
        raise NoteKeyError(
            f"vkey: expected '<name>+<8 hex digits>+<base64 key>', got {_show(vkey, 80)}"
        )
    _check_key_name(name, "vkey")
    try:
        key = _b64decode_canonical(key_b64, "vkey")
    except NoteFormatError as e:
        raise NoteKeyError(str(e)) from e
    if len(key) != 1 + _ED25519_KEY_LEN or key[0] not in (
        SIGNATURE_TYPE_ED25519,
        SIGNATURE_TYPE_COSIGNATURE_V1,
    ):
        got = f"type 0x{key[0]:02x} with {len(key) - 1} key bytes" if key else "no bytes"
        raise NoteKeyError(
            "vkey: expected type 0x01 (Ed25519) or 0x04 (cosignature/v1) and a 32-byte key, "
            f"got {got}"
        )
    expected = _c2sp_key_hash(name, key[0], key[1:])[:_HINT_LEN]
    if bytes.fromhex(hint_hex) != expected:
        raise NoteKeyError(
            f"vkey: expected key hint {expected.hex()} for {name}, got {hint_hex.lower()}"
        )
    if key[0] == SIGNATURE_TYPE_ED25519:
        return Ed25519NoteVerifier.from_bytes(name, key[1:])
    return CosignatureVerifier.from_bytes(name, key[1:])


def encode_vkey(verifier: Ed25519NoteVerifier | CosignatureVerifier) -> str:
    """The C2SP vkey string for an Ed25519 note key or a cosignature key."""
    return verifier.vkey
