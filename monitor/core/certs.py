"""X.509 signing certificates and public keys as they appear in Rekor entries.

Pure: stdlib, ``cryptography`` and ``monitor.core.errors`` only; no IO.

``parse_certificate`` turns a DER or PEM certificate into a frozen ``CertificateIdentity``: its
Subject Alternative Names, the OIDC issuer and every Fulcio extension (by a stable snake_case name
and by dotted OID), fingerprints and validity. ``parse_verifier`` accepts what Rekor accepts in
an "x509" verifier field: a certificate or a bare SubjectPublicKeyInfo, PEM or DER.

Fulcio extension values come in two encodings (fulcio ``docs/oid-info.md``):
``1.3.6.1.4.1.57264.1.1`` to ``.1.6`` hold raw UTF-8 bytes; ``.1.8`` onwards hold a DER UTF8String.
A value that does not decode is *not* fatal: it is left out of ``extensions``/``extension_oids``
and its OID is listed in ``unparseable_extensions``, so the SANs and every other value of the
certificate stay usable (a monitor must still see who a certificate names). A certificate that
``cryptography`` cannot parse at all, or that names more than ``MAX_SANS`` alternative names,
raises ``CertificateParseError``.
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from monitor.core.der import encode_length, read_tlv
from monitor.core.errors import ParseError

__all__ = [
    "FULCIO_EXTENSIONS",
    "MAX_CERTIFICATE_BYTES",
    "MAX_SANS",
    "OTHERNAME_USERNAME_OID",
    "CertificateIdentity",
    "CertificateParseError",
    "SubjectAltName",
    "certificate_id",
    "parse_certificate",
    "parse_public_key",
    "parse_tbs_certificate",
    "parse_verifier",
    "public_key_fingerprint",
]

#: Certificates larger than this are refused before parsing (Fulcio's are about 3 KiB).
MAX_CERTIFICATE_BYTES: Final = 128 * 1024
#: At most this many Subject Alternative Names are considered; more is an error, not a truncation,
#: so that a watched name can never hide behind thousands of decoys.
MAX_SANS: Final = 256

_FULCIO_ARC: Final = "1.3.6.1.4.1.57264.1."
_OID_ISSUER_V1: Final = "1.3.6.1.4.1.57264.1.1"
_OID_ISSUER_V2: Final = "1.3.6.1.4.1.57264.1.8"
#: Fulcio's OtherName SAN type for usernames (".1.7").
OTHERNAME_USERNAME_OID: Final = "1.3.6.1.4.1.57264.1.7"

#: Fulcio extension OIDs and their stable names (fulcio docs/oid-info.md). ``.1.1`` (legacy issuer)
#: and ``.1.8`` (issuer) both feed ``issuer``; ``.1.7`` is a SAN type, not an extension.
FULCIO_EXTENSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        _OID_ISSUER_V1: "issuer",
        "1.3.6.1.4.1.57264.1.2": "github_workflow_trigger",
        "1.3.6.1.4.1.57264.1.3": "github_workflow_sha",
        "1.3.6.1.4.1.57264.1.4": "github_workflow_name",
        "1.3.6.1.4.1.57264.1.5": "github_workflow_repository",
        "1.3.6.1.4.1.57264.1.6": "github_workflow_ref",
        _OID_ISSUER_V2: "issuer",
        "1.3.6.1.4.1.57264.1.9": "build_signer_uri",
        "1.3.6.1.4.1.57264.1.10": "build_signer_digest",
        "1.3.6.1.4.1.57264.1.11": "runner_environment",
        "1.3.6.1.4.1.57264.1.12": "source_repository_uri",
        "1.3.6.1.4.1.57264.1.13": "source_repository_digest",
        "1.3.6.1.4.1.57264.1.14": "source_repository_ref",
        "1.3.6.1.4.1.57264.1.15": "source_repository_identifier",
        "1.3.6.1.4.1.57264.1.16": "source_repository_owner_uri",
        "1.3.6.1.4.1.57264.1.17": "source_repository_owner_identifier",
        "1.3.6.1.4.1.57264.1.18": "build_config_uri",
        "1.3.6.1.4.1.57264.1.19": "build_config_digest",
        "1.3.6.1.4.1.57264.1.20": "build_trigger",
        "1.3.6.1.4.1.57264.1.21": "run_invocation_uri",
        "1.3.6.1.4.1.57264.1.22": "source_repository_visibility_at_signing",
        "1.3.6.1.4.1.57264.1.23": "deployment_environment",
    }
)
# .1.1 to .1.6 predate Fulcio's switch to DER and are raw bytes.
_RAW_VALUE_OIDS: Final = frozenset(f"{_FULCIO_ARC}{n}" for n in range(1, 7))

# Fulcio extensions by OID object -> (dotted OID, stable name); .1.1 is looked up separately.
_KNOWN_OIDS: Final[Mapping[x509.ObjectIdentifier, tuple[str, str | None]]] = {
    x509.ObjectIdentifier(oid): (oid, None if oid == _OID_ISSUER_V1 else name)
    for oid, name in FULCIO_EXTENSIONS.items()
}

# DER universal tags used below.
_TAG_BIT_STRING: Final = 0x03
_TAG_OID: Final = 0x06
_TAG_UTF8: Final = 0x0C
_TAG_PRINTABLE: Final = 0x13
_TAG_IA5: Final = 0x16
_TAG_SEQUENCE: Final = 0x30
_TAG_VERSION: Final = 0xA0  # [0] EXPLICIT Version in TBSCertificate


class CertificateParseError(ParseError):
    """A certificate or public key is malformed, oversized, or not what the field must hold."""


@dataclass(frozen=True, slots=True)
class SubjectAltName:
    """One Subject Alternative Name.

    ``kind`` is "email", "uri", "dns", "ip", "othername", "dirname" (RFC 4514 string) or "rid"
    (dotted OID). For "othername", ``oid`` is the type OID (Fulcio usernames use
    ``1.3.6.1.4.1.57264.1.7``) and ``value`` the decoded string, or ``hex:<DER>`` when the value
    is not a DER string type.
    """

    kind: str
    value: str
    oid: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CertificateIdentity:
    """What a signing certificate says about its subject.

    Two identities are equal when their DER is equal; every other field is derived from it and is
    left out of comparisons and hashing.
    """

    der: bytes = field(repr=False)
    sans: tuple[SubjectAltName, ...] = field(compare=False)
    #: OIDC issuer: extension .1.8 (DER UTF8String) or, when absent, legacy .1.1 (raw bytes).
    issuer: str | None = field(compare=False)
    #: Fulcio extension values by stable name (see ``FULCIO_EXTENSIONS``); read-only.
    extensions: Mapping[str, str] = field(compare=False)
    #: Every decodable extension under 1.3.6.1.4.1.57264.1 by dotted OID, named or not; read-only.
    extension_oids: Mapping[str, str] = field(compare=False, repr=False)
    #: Dotted OIDs of Fulcio-arc extensions whose value could not be decoded (left out above).
    unparseable_extensions: tuple[str, ...] = field(compare=False)
    fingerprint_sha256: str = field(compare=False)
    public_key_sha256: str = field(compare=False)
    issuer_dn: str = field(compare=False)
    subject_dn: str = field(compare=False)
    not_before: datetime = field(compare=False)
    not_after: datetime = field(compare=False)
    serial: int = field(compare=False)
    #: The issuer Name's DER as the certificate encodes it (see ``certificate_id``).
    issuer_der: bytes = field(compare=False, repr=False, default=b"")

    @property
    def emails(self) -> tuple[str, ...]:
        """The RFC 822 (email) SANs, in certificate order."""
        return tuple(s.value for s in self.sans if s.kind == "email")

    @property
    def uris(self) -> tuple[str, ...]:
        """The URI SANs (e.g. GitHub Actions workflow identities), in certificate order."""
        return tuple(s.value for s in self.sans if s.kind == "uri")


def public_key_fingerprint(spki_der: bytes) -> str:
    """Return the lowercase hex SHA-256 of a DER SubjectPublicKeyInfo.

    The input is hashed as given, not validated: use ``parse_public_key`` on untrusted data.
    """
    return hashlib.sha256(spki_der).hexdigest()


def parse_certificate(data: bytes) -> CertificateIdentity:
    """Parse one X.509 certificate, DER or PEM (the first CERTIFICATE block), into an identity.

    Raises ``CertificateParseError`` when the data is not a certificate, exceeds
    ``MAX_CERTIFICATE_BYTES`` or carries more than ``MAX_SANS`` alternative names. Undecodable
    Fulcio extension values do not raise (see the module docstring).
    """
    return _parse_certificate_der(_der_of(data, "CERTIFICATE", "certificate"))


def parse_tbs_certificate(tbs: bytes) -> CertificateIdentity:
    """Parse a DER TBSCertificate (what a CT ``precert_entry`` logs) into an identity.

    A TBSCertificate is not a certificate, and ``cryptography`` reads only whole certificates:
    it is read as one wrapped around it with its own signature algorithm and an empty signature.
    That signature is never checked (nothing can verify an identity read this way: its trust comes
    from elsewhere, e.g. the CT issuer key hash). ``der`` and ``fingerprint_sha256`` are the
    TBSCertificate's own. Raises ``CertificateParseError`` as ``parse_certificate`` does.
    """
    tbs = bytes(tbs)
    if len(tbs) > MAX_CERTIFICATE_BYTES:
        raise CertificateParseError(
            f"TBSCertificate: expected at most {MAX_CERTIFICATE_BYTES} bytes, got {len(tbs)}"
        )
    try:
        identity = _read_certificate(_certificate_around(tbs))
    except _DECODE_ERRORS as e:
        why = f"{type(e).__name__}: {str(e)[:200]}"
        raise CertificateParseError(
            f"TBSCertificate: expected a DER X.509 TBSCertificate, got {why}"
        ) from e
    return dataclasses.replace(
        identity, der=tbs, fingerprint_sha256=hashlib.sha256(tbs).hexdigest()
    )


def certificate_id(cert: CertificateIdentity) -> str:
    """What a precertificate, its final certificate and every entry using it share: the hex
    SHA-256 of the issuer Name's DER and the serial number in hex, ``<issuer>:<serial>``.

    RFC 6962 keeps both in a precertificate's TBSCertificate exactly as the final certificate
    will carry them (a CA must not reuse a serial number), so the two are one certificate here.
    """
    return f"{hashlib.sha256(cert.issuer_der).hexdigest()}:{cert.serial:x}"


def parse_public_key(data: bytes) -> bytes:
    """Return the DER SubjectPublicKeyInfo of a PEM ("PUBLIC KEY") or DER public key.

    Only the ASN.1 structure is checked, not the algorithm, so keys ``cryptography`` does not
    support are still fingerprinted. Raises ``CertificateParseError`` on anything else.
    """
    der = _der_of(data, "PUBLIC KEY", "public key")
    _check_spki(der)
    return der


def _der_of(data: bytes, label: str, what: str) -> bytes:
    """The DER of `data`: as given, or the first PEM block, which must be labelled `label`."""
    if not _is_pem(data):
        return bytes(data)
    found, der = _first_pem_block(data)
    if found != label:
        raise CertificateParseError(f"{what}: expected a PEM {label} block, got {found!r}")
    return der


def parse_verifier(data: bytes) -> CertificateIdentity | bytes:
    """Parse what Rekor accepts as x509 key material: a certificate or a bare public key.

    PEM or DER. Returns a ``CertificateIdentity`` for a certificate (the first block of a PEM
    chain is the leaf) or the SubjectPublicKeyInfo DER of a public key. Raises
    ``CertificateParseError`` otherwise.
    """
    if _is_pem(data):
        label, der = _first_pem_block(data)
        if label == "CERTIFICATE":
            return _parse_certificate_der(der)
        if label == "PUBLIC KEY":
            _check_spki(der)
            return der
        raise CertificateParseError(
            f"verifier: expected a PEM CERTIFICATE or PUBLIC KEY block, got {label!r}"
        )
    der = bytes(data)
    if _looks_like_spki(der):
        _check_spki(der)
        return der
    return _parse_certificate_der(der)


# --- certificates -------------------------------------------------------------------------------


def _parse_certificate_der(der: bytes) -> CertificateIdentity:
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise CertificateParseError(
            f"certificate: expected at most {MAX_CERTIFICATE_BYTES} bytes, got {len(der)}"
        )
    try:
        return _read_certificate(der)
    except _DECODE_ERRORS as e:
        why = f"{type(e).__name__}: {str(e)[:200]}"
        raise CertificateParseError(
            f"certificate: expected a DER X.509 certificate, got {why}"
        ) from e


# What cryptography's lazy decoders raise on malformed DER, names and extensions: ValueError for
# most; TypeError for a value its Python types refuse (a BIT STRING naming attribute other than
# x500UniqueIdentifier); OverflowError, IndexError, UnicodeError and RecursionError on values it
# converts. Each means this one certificate cannot be read.
_DECODE_ERRORS: Final = (
    ValueError,
    TypeError,
    OverflowError,
    IndexError,
    KeyError,
    RecursionError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
)


def _read_certificate(der: bytes) -> CertificateIdentity:
    """The identity of a certificate; every decode error propagates to the caller's ``try``.

    cryptography decodes names, extensions and times lazily: all of it happens here, so any
    malformation surfaces as one of ``_DECODE_ERRORS``.
    """
    cert = x509.load_der_x509_certificate(der)
    exts = cert.extensions
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    serial = cert.serial_number
    issuer_der, subject_der, spki_der = tbs_parts(der)
    issuer_dn = _dn_string(issuer_der, cert, subject=False)
    subject_dn = _dn_string(subject_der, cert, subject=True)

    sans: tuple[SubjectAltName, ...] = ()
    by_oid: dict[str, str] = {}
    named: dict[str, str] = {}
    unparseable: list[str] = []
    for ext in exts:
        # Look extensions up by OID object: cheaper than building every dotted string.
        known = _KNOWN_OIDS.get(ext.oid)
        if known is None:
            value = ext.value
            if isinstance(value, x509.SubjectAlternativeName):
                sans = _sans(value)
                continue
            if not isinstance(value, x509.UnrecognizedExtension):
                continue
            dotted = ext.oid.dotted_string
            if not dotted.startswith(_FULCIO_ARC):
                continue
            # A Fulcio extension newer than this table: .1.8 onwards are all DER strings.
            known = (dotted, None)
        else:
            value = ext.value
            if not isinstance(value, x509.UnrecognizedExtension):
                continue
        dotted, name = known
        text = _fulcio_value(dotted, value.value)
        if text is None:
            unparseable.append(dotted)
            continue
        by_oid[dotted] = text
        if name is not None:
            named[name] = text

    # Issuer: .1.8, or legacy .1.1 when .1.8 is absent -- not when it is present but garbled,
    # since guessing an issuer could let a malformed certificate match a watch rule.
    issuer = by_oid.get(_OID_ISSUER_V2)
    if issuer is None and _OID_ISSUER_V2 not in unparseable:
        issuer = by_oid.get(_OID_ISSUER_V1)
    if issuer is None:
        named.pop("issuer", None)
    else:
        named["issuer"] = issuer

    return CertificateIdentity(
        der=der,
        sans=sans,
        issuer=issuer,
        extensions=MappingProxyType(named),
        extension_oids=MappingProxyType(by_oid),
        unparseable_extensions=tuple(unparseable),
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        public_key_sha256=public_key_fingerprint(spki_der),
        issuer_dn=issuer_dn,
        subject_dn=subject_dn,
        not_before=not_before,
        not_after=not_after,
        serial=serial,
        issuer_der=issuer_der,
    )


def _dn_string(name_der: bytes, cert: x509.Certificate, *, subject: bool) -> str:
    """RFC 4514 string of a Name, memoised by its DER.

    Building cryptography's Name objects is the slowest step of parsing a Fulcio certificate,
    and almost every certificate in a log shares a handful of issuer names (and Fulcio's empty
    subject), so the string is kept per distinct DER. The memo is bounded and simply emptied
    when full; a race between threads only computes the same string twice.
    """
    cached = _DN_MEMO.get(name_der)
    if cached is None:
        cached = (cert.subject if subject else cert.issuer).rfc4514_string()
        if len(_DN_MEMO) >= _DN_MEMO_MAX:
            _DN_MEMO.clear()
        _DN_MEMO[name_der] = cached
    return cached


_DN_MEMO: dict[bytes, str] = {}
_DN_MEMO_MAX: Final = 1024


def _sans(value: x509.SubjectAlternativeName) -> tuple[SubjectAltName, ...]:
    if len(value) > MAX_SANS:
        raise CertificateParseError(
            f"certificate: expected at most {MAX_SANS} subject alternative names, got {len(value)}"
        )
    out: list[SubjectAltName] = []
    for name in value:
        if isinstance(name, x509.RFC822Name):
            out.append(SubjectAltName("email", name.value))
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(SubjectAltName("uri", name.value))
        elif isinstance(name, x509.DNSName):
            out.append(SubjectAltName("dns", name.value))
        elif isinstance(name, x509.IPAddress):
            out.append(SubjectAltName("ip", str(name.value)))
        elif isinstance(name, x509.OtherName):
            text = _der_string(name.value, (_TAG_UTF8, _TAG_IA5, _TAG_PRINTABLE))
            shown = text if text is not None else "hex:" + name.value.hex()
            out.append(SubjectAltName("othername", shown, name.type_id.dotted_string))
        elif isinstance(name, x509.DirectoryName):
            out.append(SubjectAltName("dirname", name.value.rfc4514_string()))
        elif isinstance(name, x509.RegisteredID):
            out.append(SubjectAltName("rid", name.value.dotted_string))
    return tuple(out)


def _fulcio_value(oid: str, raw: bytes) -> str | None:
    """Decode one Fulcio extension value, or None when it does not decode."""
    if oid in _RAW_VALUE_OIDS:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return _der_string(raw, (_TAG_UTF8,))


# --- a minimal DER reader -----------------------------------------------------------------------
# cryptography exposes neither the raw SubjectPublicKeyInfo of a certificate nor a DER string
# decoder; the few reads needed here are done by hand (`monitor.core.der`).


def _der_string(raw: bytes, tags: tuple[int, ...]) -> str | None:
    """Decode a single DER string of one of ``tags`` spanning all of ``raw``; None otherwise."""
    try:
        tag, start, end = read_tlv(raw, 0, len(raw))
        if tag not in tags or end != len(raw):
            return None
        return raw[start:end].decode("utf-8" if tag == _TAG_UTF8 else "ascii")
    except (ValueError, UnicodeDecodeError):
        return None


def tbs_parts(der: bytes) -> tuple[bytes, bytes, bytes]:
    """(issuer, subject, subjectPublicKeyInfo) DER elements of a certificate cryptography accepted.

    Sliced from the DER rather than re-encoded through cryptography: cheaper, and the SPKI comes
    out even for key algorithms cryptography cannot load. Raises ValueError.
    """
    _, cert_start, cert_end = read_tlv(der, 0, len(der))
    _, pos, tbs_end = read_tlv(der, cert_start, cert_end)
    tag, _, after = read_tlv(der, pos, tbs_end)
    if tag == _TAG_VERSION:
        pos = after
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
    spans: list[tuple[int, int]] = []
    for _ in range(6):
        tag, _, end = read_tlv(der, pos, tbs_end)
        spans.append((pos, end))
        pos = end
    if tag != _TAG_SEQUENCE:
        raise ValueError(f"expected a SubjectPublicKeyInfo SEQUENCE, got tag 0x{tag:02x}")
    (i0, i1), (s0, s1), (k0, k1) = spans[2], spans[4], spans[5]
    return der[i0:i1], der[s0:s1], der[k0:k1]


def spki_of(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER certificate or of a precertificate's
    TBSCertificate. Raises ValueError."""
    try:
        return tbs_parts(der)[2]
    except (ValueError, IndexError):
        return tbs_parts(_certificate_around(der))[2]


def _certificate_around(tbs: bytes) -> bytes:
    """A Certificate SEQUENCE holding `tbs`, the TBS's own signature AlgorithmIdentifier and an
    empty signature BIT STRING. Raises ValueError unless `tbs` is one SEQUENCE reaching its
    signature field."""
    tag, pos, end = read_tlv(tbs, 0, len(tbs))
    if tag != _TAG_SEQUENCE or end != len(tbs):
        raise ValueError("expected one SEQUENCE spanning the TBSCertificate")
    tag, _, after = read_tlv(tbs, pos, end)
    if tag == _TAG_VERSION:
        pos = after
    _, _, pos = read_tlv(tbs, pos, end)  # serialNumber
    tag, _, alg_end = read_tlv(tbs, pos, end)
    if tag != _TAG_SEQUENCE:
        raise ValueError(f"expected the signature AlgorithmIdentifier, got tag 0x{tag:02x}")
    body = tbs + tbs[pos:alg_end] + b"\x03\x01\x00"
    return b"\x30" + encode_length(len(body)) + body


def _looks_like_spki(der: bytes) -> bool:
    """Tell a SubjectPublicKeyInfo from a Certificate without parsing either fully.

    Both are SEQUENCEs whose first child is a SEQUENCE; only in an SPKI (AlgorithmIdentifier)
    does that child start with an OBJECT IDENTIFIER.
    """
    try:
        _, start, end = read_tlv(der, 0, len(der))
        _, inner, inner_end = read_tlv(der, start, end)
        return read_tlv(der, inner, inner_end)[0] == _TAG_OID
    except ValueError:
        return False


def _check_spki(der: bytes) -> None:
    """SEQUENCE { SEQUENCE { OID, ... }, BIT STRING } spanning all of ``der``, or raise."""
    try:
        tag, start, end = read_tlv(der, 0, len(der))
        if tag != _TAG_SEQUENCE or end != len(der):
            raise ValueError("expected one SEQUENCE spanning the input")
        tag, alg_start, alg_end = read_tlv(der, start, end)
        if tag != _TAG_SEQUENCE or read_tlv(der, alg_start, alg_end)[0] != _TAG_OID:
            raise ValueError("expected an AlgorithmIdentifier")
        tag, _, key_end = read_tlv(der, alg_end, end)
        if tag != _TAG_BIT_STRING or key_end != end:
            raise ValueError("expected the key BIT STRING to end the SEQUENCE")
    except ValueError as e:
        raise CertificateParseError(
            f"public key: expected a DER SubjectPublicKeyInfo, got {len(der)} other bytes ({e})"
        ) from e


# --- PEM ----------------------------------------------------------------------------------------


def _is_pem(data: bytes) -> bool:
    return data[:64].lstrip().startswith(b"-----BEGIN ")


def _first_pem_block(data: bytes) -> tuple[str, bytes]:
    """Return (label, DER) of the first PEM block; strict base64, no headers."""
    begin = data.find(b"-----BEGIN ")
    label_end = data.find(b"-----", begin + 11)
    if label_end < 0 or label_end - begin > 80:
        raise CertificateParseError("PEM: expected a '-----BEGIN <label>-----' line, got none")
    label_bytes = data[begin + 11 : label_end]
    end = data.find(b"-----END " + label_bytes + b"-----", label_end + 5)
    try:
        label = label_bytes.decode("ascii")
        if end < 0:
            raise ValueError(f"no '-----END {label}-----' line")
        der = _pem_base64(data[label_end + 5 : end])
    except (ValueError, binascii.Error) as e:
        # UnicodeDecodeError is a ValueError.
        raise CertificateParseError(f"PEM: expected a base64 block, got {e}") from e
    if not der:
        raise CertificateParseError(f"PEM: expected content in the {label} block, got none")
    return label, der


def _pem_base64(chunk: bytes) -> bytes:
    """Strictly decode a PEM body: base64 lines, nothing else."""
    try:
        # Fast path: "\n"-separated lines, as Go's pem.Encode writes them.
        return binascii.a2b_base64(chunk.replace(b"\n", b""), strict_mode=True)
    except binascii.Error:
        return binascii.a2b_base64(b"".join(chunk.split()), strict_mode=True)
