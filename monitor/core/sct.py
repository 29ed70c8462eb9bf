"""Signed Certificate Timestamps (RFC 6962) embedded in X.509 certificates.

Pure: stdlib, ``cryptography`` (signature primitives only) and ``monitor.core``; no IO.

A CT log answers a (pre)certificate submission with an SCT: its signed promise to add the
certificate to the log within its maximum merge delay. Fulcio embeds the SCTs of its CT log in
every certificate it issues, as the X.509 extension 1.3.6.1.4.1.11129.2.4.2 whose value is a DER
OCTET STRING holding the TLS-encoded ``SignedCertificateTimestampList`` (RFC 6962 section 3.3)::

    opaque SerializedSCT<1..2^16-1>;
    struct { SerializedSCT sct_list <1..2^16-1>; } SignedCertificateTimestampList;
    struct {
        Version sct_version;            // v1(0)
        LogID id;                       // SHA-256 of the log's SubjectPublicKeyInfo
        uint64 timestamp;               // milliseconds since the epoch
        CtExtensions extensions;        // opaque <0..2^16-1>
        digitally-signed struct { ... } // (hash, signature) algorithm bytes, opaque <0..2^16-1>
    } SignedCertificateTimestamp;

The log signed (RFC 6962 section 3.2) ``version, certificate_timestamp(0), timestamp,
entry_type`` then, for an ``x509_entry``, the certificate (``opaque <1..2^24-1>``) or, for a
``precert_entry``, the SHA-256 of the issuer's SubjectPublicKeyInfo and the TBSCertificate as the
log saw it in the precertificate: the final certificate's TBSCertificate without the SCT list
extension, re-encoded in DER; and last the SCT's extensions. An SCT embedded in a certificate is
always of the precert form (the log signed it before the certificate, and its SCTs, existed).

Everything here reads hostile bytes: ``parse_sct_list`` and ``embedded_scts`` raise only
`SctParseError`; ``verify_sct`` raises `SctParseError` for unusable input and
`SctVerificationError` when the signature does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from monitor.core.certs import MAX_CERTIFICATE_BYTES
from monitor.core.ct import CtLeaf, encode_merkle_tree_leaf
from monitor.core.ct import EntryType as CtEntryType
from monitor.core.der import DerError, encode_der, read_tlv
from monitor.core.errors import ParseError, VerificationError
from monitor.core.fields import MAX_UNIX_TIME
from monitor.core.instants import from_ms
from monitor.core.tls import TlsReader

__all__ = [
    "MAX_SCTS",
    "SCT_LIST_OID",
    "EntryType",
    "Sct",
    "SctParseError",
    "SctVerificationError",
    "VerifiedSct",
    "embedded_scts",
    "logged_tbs",
    "parse_sct_list",
    "precert_signed_data",
    "precert_tbs",
    "promised_leaf",
    "serialize_sct_list",
    "signed_data",
    "verify_sct",
]

#: The X.509 extension that carries a certificate's embedded SCT list (RFC 6962 section 3.3).
SCT_LIST_OID: Final = "1.3.6.1.4.1.11129.2.4.2"
#: At most this many SCTs in one list: Fulcio embeds one, browsers ask for two or three; more is
#: refused rather than verified one by one at the sender's leisure.
MAX_SCTS: Final = 32
#: An SCT's extensions and signature: a static-ct-api leaf index is 6 bytes, an RSA-4096 signature
#: 512; anything larger is not an SCT a CT log writes.
MAX_SCT_EXTENSIONS_BYTES: Final = 1024
MAX_SCT_SIGNATURE_BYTES: Final = 1024
#: Smallest RSA key RFC 6962 logs may use (section 2.1.4: "at least 2048 bits").
MIN_RSA_BITS: Final = 2048

_LOG_ID_BYTES: Final = 32
_SCT_V1: Final = 0
_SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP: Final = 0
_HASH_SHA256: Final = 4
_SIG_RSA: Final = 1
_SIG_ECDSA: Final = 3
_HASH_NAMES: Final = {
    0: "none",
    1: "md5",
    2: "sha1",
    3: "sha224",
    4: "sha256",
    5: "sha384",
    6: "sha512",
}
_SIG_NAMES: Final = {0: "anonymous", 1: "rsa", 2: "dsa", 3: "ecdsa"}
_MAX_TIMESTAMP_MS: Final = MAX_UNIX_TIME * 1000 + 999

# DER tags used below.
_TAG_BOOLEAN: Final = 0x01
_TAG_OCTET_STRING: Final = 0x04
_TAG_OID: Final = 0x06
_TAG_SEQUENCE: Final = 0x30
_TAG_EXTENSIONS: Final = 0xA3  # [3] EXPLICIT Extensions in TBSCertificate
# 1.3.6.1.4.1.11129.2.4.2 as a DER OBJECT IDENTIFIER, matched byte for byte.
_SCT_OID_DER: Final = bytes.fromhex("060a2b06010401d679020402")
# The precertificate poison extension, 1.3.6.1.4.1.11129.2.4.3 (RFC 6962 section 3.1).
_POISON_OID_DER: Final = bytes.fromhex("060a2b06010401d679020403")


class SctParseError(ParseError):
    """A certificate, its SCT list extension, an SCT or a key is malformed or oversized."""


class SctVerificationError(VerificationError):
    """An SCT's signature does not verify with the CT log's key over the certificate."""


class EntryType(IntEnum):
    """RFC 6962 LogEntryType: what the log signed."""

    X509 = 0
    PRECERT = 1


@dataclass(frozen=True, slots=True)
class Sct:
    """One v1 SCT as the list states it (nothing verified)."""

    log_id: bytes
    """SHA-256 of the CT log's public key (DER SubjectPublicKeyInfo)."""
    timestamp: int
    """Milliseconds since the epoch, range-checked to a year before 10000."""
    extensions: bytes
    hash_algorithm: int
    """TLS HashAlgorithm byte (4 = sha256)."""
    signature_algorithm: int
    """TLS SignatureAlgorithm byte (1 = rsa, 3 = ecdsa)."""
    signature: bytes

    @property
    def time(self) -> datetime:
        """The timestamp as an aware UTC datetime (millisecond precision)."""
        return from_ms(self.timestamp)

    @property
    def algorithm(self) -> str:
        """The signature's algorithms, e.g. "ecdsa-sha256"."""
        sig = _SIG_NAMES.get(self.signature_algorithm, str(self.signature_algorithm))
        digest = _HASH_NAMES.get(self.hash_algorithm, str(self.hash_algorithm))
        return f"{sig}-{digest}"


@dataclass(frozen=True, slots=True)
class VerifiedSct:
    """An SCT whose signature the CT log's key verified over `entry_type`'s signed data."""

    sct: Sct
    entry_type: EntryType


# --- TLS -------------------------------------------------------------------------------------


def parse_sct_list(data: bytes) -> tuple[Sct, ...]:
    """The SCTs of a TLS-encoded SignedCertificateTimestampList. Raises `SctParseError`."""
    reader = TlsReader(data, "SCT list", SctParseError)
    body = reader.vector(2, "sct_list", lo=1, hi=0xFFFF)
    reader.end()
    items = TlsReader(body, "SCT list", SctParseError)
    scts: list[Sct] = []
    while items.left:
        if len(scts) == MAX_SCTS:
            raise SctParseError(f"SCT list: expected at most {MAX_SCTS} SCTs, got more")
        raw = items.vector(2, f"SCT {len(scts)}", lo=1, hi=0xFFFF)
        scts.append(_parse_sct(raw, f"SCT list: SCT {len(scts)}"))
    return tuple(scts)


def _parse_sct(data: bytes, where: str) -> Sct:
    reader = TlsReader(data, where, SctParseError)
    version = reader.uint(1, "sct_version")
    if version != _SCT_V1:
        # Only v1 SCTs go in this extension (RFC 9162's v2 uses another one).
        raise SctParseError(f"{where}: sct_version: expected 0 (v1), got {version}")
    log_id = reader.take(_LOG_ID_BYTES, "log id")
    timestamp = reader.uint(8, "timestamp")
    if timestamp > _MAX_TIMESTAMP_MS:
        raise SctParseError(
            f"{where}: timestamp: expected milliseconds before the year 10000, got {timestamp}"
        )
    extensions = reader.vector(2, "extensions", lo=0, hi=MAX_SCT_EXTENSIONS_BYTES)
    hash_algorithm = reader.uint(1, "hash algorithm")
    signature_algorithm = reader.uint(1, "signature algorithm")
    signature = reader.vector(2, "signature", lo=1, hi=MAX_SCT_SIGNATURE_BYTES)
    reader.end()
    return Sct(
        log_id=log_id,
        timestamp=timestamp,
        extensions=extensions,
        hash_algorithm=hash_algorithm,
        signature_algorithm=signature_algorithm,
        signature=signature,
    )


# --- DER ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tlv:
    tag: int
    start: int
    """Offset of the tag byte."""
    value: int
    """Offset of the first content byte."""
    end: int


def _tlv(buf: bytes, pos: int, end: int, where: str) -> _Tlv:
    """The DER element at `pos` within `buf[:end]`, its length in the shortest form only: the
    TBSCertificate is re-encoded, so anything else would change the bytes a log signed."""
    try:
        tag, value, stop = read_tlv(buf, pos, end, minimal=True)
    except DerError as e:
        raise SctParseError(f"{where}: {e}") from e
    return _Tlv(tag, pos, value, stop)


@dataclass(frozen=True, slots=True)
class _TbsLayout:
    tbs: _Tlv
    extensions: _Tlv | None
    """The [3] EXPLICIT wrapper, when present."""
    sequence: _Tlv | None
    """The SEQUENCE OF Extension inside it."""
    sct_extension: _Tlv | None
    """The one Extension whose extnID is the SCT list OID."""
    sct_value: bytes | None
    """Its extnValue's content: the DER OCTET STRING around the TLS list."""


def _layout(cert: bytes, oid_der: bytes = _SCT_OID_DER, what: str = "SCT list") -> _TbsLayout:
    if len(cert) > MAX_CERTIFICATE_BYTES:
        raise SctParseError(
            f"certificate: expected at most {MAX_CERTIFICATE_BYTES} bytes, got {len(cert)}"
        )
    outer = _tlv(cert, 0, len(cert), "certificate")
    if outer.tag != _TAG_SEQUENCE or outer.end != len(cert):
        raise SctParseError("certificate: expected one DER SEQUENCE spanning the input")
    tbs = _tlv(cert, outer.value, outer.end, "certificate: TBSCertificate")
    if tbs.tag != _TAG_SEQUENCE:
        raise SctParseError(
            f"certificate: TBSCertificate: expected a SEQUENCE, got 0x{tbs.tag:02x}"
        )
    pos = tbs.value
    wrapper: _Tlv | None = None
    while pos < tbs.end:
        child = _tlv(cert, pos, tbs.end, "certificate: TBSCertificate")
        if child.tag == _TAG_EXTENSIONS:
            if child.end != tbs.end:
                raise SctParseError("certificate: TBSCertificate: fields after the extensions")
            wrapper = child
        pos = child.end
    if wrapper is None:
        return _TbsLayout(tbs, None, None, None, None)
    where = "certificate: extensions"
    sequence = _tlv(cert, wrapper.value, wrapper.end, where)
    if sequence.tag != _TAG_SEQUENCE or sequence.end != wrapper.end:
        raise SctParseError(f"{where}: expected one SEQUENCE inside [3]")
    found: _Tlv | None = None
    value: bytes | None = None
    pos = sequence.value
    count = 0
    while pos < sequence.end:
        ext = _tlv(cert, pos, sequence.end, f"{where}[{count}]")
        if ext.tag != _TAG_SEQUENCE:
            raise SctParseError(f"{where}[{count}]: expected a SEQUENCE, got 0x{ext.tag:02x}")
        oid = _tlv(cert, ext.value, ext.end, f"{where}[{count}].extnID")
        if oid.tag != _TAG_OID:
            raise SctParseError(f"{where}[{count}].extnID: expected an OBJECT IDENTIFIER")
        if cert[oid.start : oid.end] == oid_der:
            if found is not None:
                raise SctParseError(f"{where}: the {what} extension appears twice")
            found, value = ext, _extension_value(cert, ext, oid.end, f"{where}[{count}]")
        pos = ext.end
        count += 1
    return _TbsLayout(tbs, wrapper, sequence, found, value)


def _extension_value(cert: bytes, ext: _Tlv, pos: int, where: str) -> bytes:
    """extnValue's content, after the optional `critical` BOOLEAN."""
    field = _tlv(cert, pos, ext.end, f"{where}.extnValue")
    if field.tag == _TAG_BOOLEAN:
        field = _tlv(cert, field.end, ext.end, f"{where}.extnValue")
    if field.tag != _TAG_OCTET_STRING or field.end != ext.end:
        raise SctParseError(f"{where}.extnValue: expected an OCTET STRING ending the extension")
    return cert[field.value : field.end]


def embedded_scts(cert: bytes) -> tuple[Sct, ...]:
    """The SCTs embedded in a DER certificate; () when it has no SCT list extension.

    Raises `SctParseError` for a certificate whose DER structure cannot be walked, or a
    malformed SCT list."""
    value = _layout(cert).sct_value
    if value is None:
        return ()
    inner = _tlv(value, 0, len(value), "SCT list extension")
    if inner.tag != _TAG_OCTET_STRING or inner.end != len(value):
        raise SctParseError("SCT list extension: expected one OCTET STRING holding the TLS list")
    return parse_sct_list(value[inner.value :])


def precert_tbs(cert: bytes) -> bytes:
    """The TBSCertificate a CT log saw in the precertificate of `cert`: the certificate's own
    TBSCertificate without the SCT list extension (the extension a precertificate carries
    instead, the poison, is not in the final certificate), re-encoded in DER.

    Raises `SctParseError` when `cert` is malformed or has no SCT list extension."""
    return _tbs_without(cert, _SCT_OID_DER, "an SCT list")


def logged_tbs(precertificate: bytes) -> bytes:
    """The TBSCertificate a CT log logs for `precertificate` (RFC 6962 section 3.2): its own
    TBSCertificate without the poison extension, re-encoded in DER.

    Raises `SctParseError` when `precertificate` is malformed or carries no poison extension
    (then it is no precertificate)."""
    return _tbs_without(precertificate, _POISON_OID_DER, "a precertificate poison")


def _tbs_without(cert: bytes, oid_der: bytes, what: str) -> bytes:
    """`cert`'s TBSCertificate without its one extension `oid_der`, re-encoded in DER."""
    layout = _layout(cert, oid_der, what.split(" ", 1)[1])
    ext, wrapper, sequence = layout.sct_extension, layout.extensions, layout.sequence
    if ext is None or wrapper is None or sequence is None:
        raise SctParseError(f"certificate: expected {what} extension, got none")
    tbs = layout.tbs
    remaining = cert[sequence.value : ext.start] + cert[ext.end : sequence.end]
    # An empty SEQUENCE OF Extension is not valid DER (SIZE (1..MAX)): drop [3] altogether.
    extensions = (
        encode_der(_TAG_EXTENSIONS, encode_der(_TAG_SEQUENCE, remaining)) if remaining else b""
    )
    return encode_der(_TAG_SEQUENCE, cert[tbs.value : wrapper.start] + extensions)


# --- signed data and verification ------------------------------------------------------------


def signed_data(
    sct: Sct, entry_type: EntryType, cert: bytes, issuer_spki: bytes | None = None
) -> bytes:
    """The bytes the CT log signed for `sct` (RFC 6962 section 3.2).

    ``x509_entry``: `cert` as it is. ``precert_entry``: SHA-256 of `issuer_spki` (the issuer's
    DER SubjectPublicKeyInfo, required) and `precert_tbs(cert)`. Raises `SctParseError`."""
    if entry_type is EntryType.PRECERT:
        if issuer_spki is None:
            raise SctParseError("precertificate SCT: expected the issuer's public key, got none")
        return precert_signed_data(sct.timestamp, issuer_spki, precert_tbs(cert), sct.extensions)
    if len(cert) > MAX_CERTIFICATE_BYTES:
        raise SctParseError(
            f"certificate: expected at most {MAX_CERTIFICATE_BYTES} bytes, got {len(cert)}"
        )
    return _signed(sct.timestamp, EntryType.X509, _opaque24(cert), sct.extensions)


def precert_signed_data(timestamp: int, issuer_spki: bytes, tbs: bytes, extensions: bytes) -> bytes:
    """The bytes a CT log signs in the SCT for a precertificate whose TBSCertificate, as the
    log sees it (no poison, no SCT list), is `tbs`, issued by the CA whose DER
    SubjectPublicKeyInfo is `issuer_spki` (RFC 6962 section 3.2). Raises `SctParseError`."""
    body = hashlib.sha256(issuer_spki).digest() + _opaque24(tbs)
    return _signed(timestamp, EntryType.PRECERT, body, extensions)


def _signed(timestamp: int, entry_type: EntryType, body: bytes, extensions: bytes) -> bytes:
    if not 0 <= timestamp <= _MAX_TIMESTAMP_MS:
        raise SctParseError(f"SCT timestamp: expected milliseconds, got {timestamp}")
    if len(extensions) > MAX_SCT_EXTENSIONS_BYTES:
        raise SctParseError(f"SCT extensions: expected at most {MAX_SCT_EXTENSIONS_BYTES} bytes")
    return (
        bytes([_SCT_V1, _SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP])
        + timestamp.to_bytes(8, "big")
        + int(entry_type).to_bytes(2, "big")
        + body
        + len(extensions).to_bytes(2, "big")
        + extensions
    )


def promised_leaf(sct: Sct, cert: bytes, issuer_spki: bytes) -> bytes:
    """The RFC 6962 MerkleTreeLeaf a CT log promised, with the embedded precert-form `sct`, to
    add for `cert`: a precert_entry with the SCT's timestamp and extensions, the issuer key
    hash and `precert_tbs(cert)` (RFC 6962 section 3.4: the leaf repeats what the SCT signed).
    Its leaf hash is what the log's tree must contain. Raises `SctParseError`."""
    tbs = precert_tbs(cert)
    if not 1 <= len(tbs) < 1 << 24:
        raise SctParseError(f"signed entry: expected 1..2^24-1 bytes, got {len(tbs)}")
    return encode_merkle_tree_leaf(
        CtLeaf(
            timestamp=sct.timestamp,
            entry_type=CtEntryType.PRECERT,
            certificate=tbs,
            issuer_key_hash=hashlib.sha256(issuer_spki).digest(),
            extensions=sct.extensions,
        )
    )


def serialize_sct_list(scts: Sequence[Sct]) -> bytes:
    """The TLS-encoded SignedCertificateTimestampList of `scts` (the inverse of
    `parse_sct_list`); what a CA wraps in a DER OCTET STRING as the extension's value."""
    items = b""
    for sct in scts:
        raw = (
            bytes([_SCT_V1])
            + sct.log_id
            + sct.timestamp.to_bytes(8, "big")
            + len(sct.extensions).to_bytes(2, "big")
            + sct.extensions
            + bytes([sct.hash_algorithm, sct.signature_algorithm])
            + len(sct.signature).to_bytes(2, "big")
            + sct.signature
        )
        items += len(raw).to_bytes(2, "big") + raw
    return len(items).to_bytes(2, "big") + items


def _opaque24(data: bytes) -> bytes:
    if not 1 <= len(data) < 1 << 24:
        raise SctParseError(f"signed entry: expected 1..2^24-1 bytes, got {len(data)}")
    return len(data).to_bytes(3, "big") + data


def verify_sct(
    sct: Sct,
    cert: bytes,
    issuer_spki: bytes | None,
    log_key: bytes,
    *,
    entry_type: EntryType = EntryType.PRECERT,
) -> VerifiedSct:
    """Check `sct`'s signature by the CT log whose DER SubjectPublicKeyInfo is `log_key` over
    `cert` (DER) in `entry_type`'s form; embedded SCTs are of the precert form, which needs the
    issuer's DER SubjectPublicKeyInfo.

    The SCT's log ID must be the key's (SHA-256 of `log_key`), and its algorithms the key's:
    ECDSA P-256 or RSA (2048 bits or more), both with SHA-256, as RFC 6962 allows. Raises
    `SctParseError` for an unusable key, certificate or issuer key, `SctVerificationError` when
    the SCT is not the log's signature over this certificate."""
    key_id = hashlib.sha256(log_key).digest()
    if sct.log_id != key_id:
        raise SctVerificationError(
            f"the SCT names log ID {sct.log_id.hex()}, the key's is {key_id.hex()}"
        )
    try:
        key = serialization.load_der_public_key(log_key)
    except (ValueError, UnsupportedAlgorithm, TypeError) as e:
        raise SctParseError(f"CT log key: expected a DER public key, got {e}") from e
    if sct.hash_algorithm != _HASH_SHA256:
        raise SctVerificationError(f"signature algorithm {sct.algorithm}: CT logs sign with sha256")
    data = signed_data(sct, entry_type, cert, issuer_spki)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise SctParseError(f"CT log key: expected ECDSA P-256, got curve {key.curve.name}")
            if sct.signature_algorithm != _SIG_ECDSA:
                raise SctVerificationError(
                    f"signature algorithm {sct.algorithm}: the log's key is ECDSA"
                )
            key.verify(sct.signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise SctParseError(
                    f"CT log key: expected RSA of at least {MIN_RSA_BITS} bits, got {key.key_size}"
                )
            if sct.signature_algorithm != _SIG_RSA:
                raise SctVerificationError(
                    f"signature algorithm {sct.algorithm}: the log's key is RSA"
                )
            key.verify(sct.signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise SctParseError(
                f"CT log key: expected ECDSA P-256 or RSA, got {type(key).__name__}"
            )
    except InvalidSignature as e:
        raise SctVerificationError(
            f"the signature ({sct.algorithm}) does not verify with the log's key over the "
            f"{'precertificate' if entry_type is EntryType.PRECERT else 'certificate'}, "
            f"timestamp {sct.timestamp} and extensions"
        ) from e
    return VerifiedSct(sct=sct, entry_type=entry_type)
