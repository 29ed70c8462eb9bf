"""Mint Fulcio-like certificates and Rekor entry bodies for tests.

Everything here is test data, made with ``cryptography``: an ephemeral CA, leaf certificates that
carry the SANs and Fulcio extensions a test asks for (including deliberately malformed values),
and canonical-looking Rekor v1 and v2 entry bodies of every kind ``monitor.core.entries`` parses.

Fulcio's encodings (fulcio docs/oid-info.md): extensions ``1.3.6.1.4.1.57264.1.1`` to ``.1.6``
hold the raw UTF-8 bytes of the value; ``.1.8`` onwards a DER UTF8String; usernames are an
OtherName SAN of type ``.1.7`` whose value is a DER UTF8String.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import NameOID

FULCIO_ARC = "1.3.6.1.4.1.57264.1."
OID_ISSUER_V1 = FULCIO_ARC + "1"
OID_USERNAME = FULCIO_ARC + "7"
OID_ISSUER_V2 = FULCIO_ARC + "8"

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | rsa.RSAPrivateKey
)
PRIVATE_KEY_TYPES = (
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    rsa.RSAPrivateKey,
)

NOT_BEFORE = dt.datetime(2024, 3, 19, 12, 0, 0, tzinfo=dt.UTC)


def der_utf8(text: str) -> bytes:
    """DER UTF8String (tag 0x0C) of ``text``, short or long length form."""
    return der_tlv(0x0C, text.encode("utf-8"))


def der_tlv(tag: int, value: bytes) -> bytes:
    """One DER element: tag, definite length, value."""
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


@functools.cache
def ca_key() -> ec.EllipticCurvePrivateKey:
    """The test CA's key (one per test session: key generation is the slow part)."""
    return ec.generate_private_key(ec.SECP384R1())


@functools.cache
def leaf_key() -> ec.EllipticCurvePrivateKey:
    """A default leaf key, shared by certificates that do not ask for their own."""
    return ec.generate_private_key(ec.SECP256R1())


def fulcio_extensions(
    *,
    issuer: str | None = "https://token.actions.githubusercontent.com",
    legacy_issuer: str | None = None,
    values: Mapping[str, str] | None = None,
    raw: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """Fulcio extension values by dotted OID, encoded as Fulcio does.

    ``values`` maps OIDs to text, DER-encoded for .1.8+ and raw for .1.1-.1.6; ``raw`` maps
    OIDs to exact bytes (for malformed values) and wins over everything else.
    """
    out: dict[str, bytes] = {}
    if legacy_issuer is not None:
        out[OID_ISSUER_V1] = legacy_issuer.encode()
    if issuer is not None:
        out[OID_ISSUER_V2] = der_utf8(issuer)
    for oid, text in (values or {}).items():
        legacy = int(oid.rsplit(".", 1)[1]) <= 6 and oid.startswith(FULCIO_ARC)
        out[oid] = text.encode() if legacy else der_utf8(text)
    out.update(raw or {})
    return out


def make_certificate(
    *,
    sans: Sequence[x509.GeneralName] = (x509.RFC822Name("alice@example.com"),),
    extensions: Mapping[str, bytes] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    public_key: CertificatePublicKeyTypes | None = None,
    serial: int = 0x1234_5678_9ABC,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """A leaf certificate signed by the test CA, shaped like Fulcio's.

    ``extensions`` are Fulcio extension values by dotted OID (see ``fulcio_extensions``; the
    default is a GitHub issuer only). ``public_key`` overrides the certified key (any
    cryptography public key); ``sans=()`` leaves the SAN extension out.
    """
    if extensions is None:
        extensions = fulcio_extensions()
    pub = public_key if public_key is not None else (key or leaf_key()).public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject if subject is not None else x509.Name([]))
        .issuer_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate"),
                ]
            )
        )
        .public_key(pub)
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_BEFORE + dt.timedelta(minutes=10))
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), True)
    for oid, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False
        )
    return builder.sign(ca_key(), hashes.SHA384())


def cert_der(cert: x509.Certificate) -> bytes:
    """DER of a certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def _public(key: PrivateKey | PublicKeyTypes) -> PublicKeyTypes:
    return key.public_key() if isinstance(key, PRIVATE_KEY_TYPES) else key


def spki_der(key: PrivateKey | PublicKeyTypes) -> bytes:
    """DER SubjectPublicKeyInfo of a private or public key."""
    return _public(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_pem(key: PrivateKey | PublicKeyTypes) -> bytes:
    """PEM ("PUBLIC KEY") of a private or public key."""
    return _public(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- entry bodies -----------------------------------------------------------------------------


def b64(data: bytes) -> str:
    """Standard, padded base64 text."""
    return base64.b64encode(data).decode()


SIG = b64(b"0E\x02 not a real signature")
DIGEST = hashlib.sha256(b"artifact").hexdigest()


def _hash(value: str = DIGEST) -> dict[str, str]:
    return {"algorithm": "sha256", "value": value}


def _v2_hash(hex_digest: str = DIGEST) -> dict[str, str]:
    return {"algorithm": "SHA2_256", "digest": b64(bytes.fromhex(hex_digest))}


def hashedrekord_v001(key_pem: bytes, digest: str = DIGEST) -> dict[str, object]:
    """hashedrekord 0.0.1: certificate or public key PEM at spec.signature.publicKey.content."""
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": _hash(digest)},
            "signature": {"content": SIG, "publicKey": {"content": b64(key_pem)}},
        },
    }


def rekord_v001(key: bytes, fmt: str = "x509", digest: str = DIGEST) -> dict[str, object]:
    """rekord 0.0.1 with spec.signature.format ``fmt`` and the key bytes as given."""
    return {
        "apiVersion": "0.0.1",
        "kind": "rekord",
        "spec": {
            "data": {"hash": _hash(digest)},
            "signature": {"content": SIG, "format": fmt, "publicKey": {"content": b64(key)}},
        },
    }


def intoto_v001(key_pem: bytes, payload_digest: str | None = DIGEST) -> dict[str, object]:
    """intoto 0.0.1 as Rekor canonicalises it: hashes and one public key, no envelope."""
    content: dict[str, object] = {"hash": _hash(hashlib.sha256(b"envelope").hexdigest())}
    if payload_digest is not None:
        content["payloadHash"] = _hash(payload_digest)
    return {
        "apiVersion": "0.0.1",
        "kind": "intoto",
        "spec": {"content": content, "publicKey": b64(key_pem)},
    }


def intoto_v002(key_pems: Iterable[bytes], payload_digest: str = DIGEST) -> dict[str, object]:
    """intoto 0.0.2: one envelope signature per key, hashes alongside."""
    return {
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": {
            "content": {
                "envelope": {
                    "payloadType": "application/vnd.in-toto+json",
                    "signatures": [
                        {"publicKey": b64(k), "sig": b64(SIG.encode())} for k in key_pems
                    ],
                },
                "hash": _hash(hashlib.sha256(b"envelope").hexdigest()),
                "payloadHash": _hash(payload_digest),
            }
        },
    }


def dsse_v001(key_pems: Iterable[bytes], payload_digest: str = DIGEST) -> dict[str, object]:
    """dsse 0.0.1: signatures[] of {signature, verifier (b64 PEM)} and the two hashes."""
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": _hash(hashlib.sha256(b"envelope").hexdigest()),
            "payloadHash": _hash(payload_digest),
            "signatures": [{"signature": SIG, "verifier": b64(k)} for k in key_pems],
        },
    }


def v2_verifier(*, cert: bytes | None = None, key: bytes | None = None) -> dict[str, object]:
    """A Rekor v2 Verifier: x509Certificate or publicKey, each {rawBytes: b64 DER}."""
    out: dict[str, object] = {"keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    if cert is not None:
        out["x509Certificate"] = {"rawBytes": b64(cert)}
    if key is not None:
        out["publicKey"] = {"rawBytes": b64(key)}
    return out


def hashedrekord_v002(verifier: dict[str, object], digest: str = DIGEST) -> dict[str, object]:
    """Rekor v2 hashedrekord 0.0.2 (the shape of the staging and production tiles)."""
    return {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {
            "hashedRekordV002": {
                "data": _v2_hash(digest),
                "signature": {"content": SIG, "verifier": verifier},
            }
        },
    }


def dsse_v002(verifiers: Iterable[dict[str, object]], digest: str = DIGEST) -> dict[str, object]:
    """Rekor v2 dsse 0.0.2 (rekor-tiles DSSELogEntryV002)."""
    return {
        "apiVersion": "0.0.2",
        "kind": "dsse",
        "spec": {
            "dsseV002": {
                "payloadHash": _v2_hash(digest),
                "signatures": [{"content": SIG, "verifier": v} for v in verifiers],
            }
        },
    }


def encode(body: Mapping[str, object]) -> bytes:
    """Compact JSON bytes, sorted keys, as Rekor serves canonical bodies."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def poisoned_issuer_certificate(
    sans: Sequence[x509.GeneralName] = (x509.RFC822Name("alice@example.com"),),
    issuer: str = "https://accounts.google.com",
) -> bytes:
    """DER of a self-signed certificate whose issuer name holds a BIT STRING under commonName:
    well-formed DER that makes ``cryptography`` raise TypeError when it decodes the name (only
    x500UniqueIdentifier may be a BIT STRING). It names `sans` and the OIDC `issuer`, so a watch
    rule's pre-filter passes it on to the parser. The signature no longer verifies; nothing
    that reads the name gets that far."""
    key = leaf_key()
    unique_id = x509.NameAttribute(
        NameOID.X500_UNIQUE_IDENTIFIER,
        b"\x00\x01",
        _type=x509.name._ASN1Type.BitString,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([unique_id]))
        .public_key(key.public_key())
        .serial_number(0x5EED)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_BEFORE + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(list(sans)), True)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_ISSUER_V2), der_utf8(issuer)),
            False,
        )
        .sign(key, hashes.SHA256())
    )
    der = cert_der(cert)
    # OBJECT IDENTIFIER 2.5.4.45 (x500UniqueIdentifier) -> 2.5.4.3 (commonName): same length.
    unique_oid, common_name_oid = bytes.fromhex("060355042d"), bytes.fromhex("0603550403")
    assert der.count(unique_oid) == 1
    return der.replace(unique_oid, common_name_oid)


def pem_to_der(pem: bytes) -> bytes:
    """DER of the first PEM certificate."""
    return cert_der(x509.load_pem_x509_certificate(pem))
