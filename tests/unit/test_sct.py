"""`monitor.core.sct`: the SCTs Fulcio embeds in real certificates verify with the CT log keys of
the vendored trusted roots, any change to what they sign fails, and hostile bytes only ever
raise the module's typed errors.

Cross-checks against implementations we did not write: cryptography's SCT parsing and its
`tbs_precertificate_bytes`, and sigstore-python's own SCT verification on the same certificates.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import inspect
from monitor.config.trust_roots import TrustedCtLog
from monitor.core.certs import tbs_parts
from monitor.core.entries import parse_entry
from monitor.core.sct import (
    MAX_SCTS,
    SCT_LIST_OID,
    EntryType,
    Sct,
    SctParseError,
    SctVerificationError,
    VerifiedSct,
    embedded_scts,
    parse_sct_list,
    precert_signed_data,
    precert_tbs,
    promised_leaf,
    serialize_sct_list,
    signed_data,
    verify_sct,
)
from monitor.core.trust import LogKind, parse_trusted_root
from tests.conftest import REAL_DATA, real_files
from tests.unit.certgen import (
    cert_der,
    cert_pem,
    dsse_v001,
    encode,
    hashedrekord_v001,
    leaf_key,
    make_certificate,
    spki_der,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # a real fixture's country name

PRODUCTION_CT = "https://ctfe.sigstore.dev/2022"
UNKNOWN_LOG_BUNDLE = "othername.sigstore.json"
"""sigstore-go's otherName certificate comes from a private deployment: a CT log no root lists."""


# --- the vendored real data ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CtLog:
    instance: str
    url: str
    key: bytes


@dataclasses.dataclass(frozen=True)
class RealCert:
    name: str
    der: bytes
    chain: tuple[bytes, ...]
    """The rest of the bundle's x509CertificateChain, if it has one."""


def _trust() -> tuple[dict[bytes, CtLog], list[x509.Certificate]]:
    logs: dict[bytes, CtLog] = {}
    cas: list[x509.Certificate] = []
    for instance in ("production", "staging"):
        root = parse_trusted_root(
            (REAL_DATA / "trust" / instance / "trusted_root.json").read_bytes()
        )
        for log in root.logs:
            if log.kind is LogKind.CT:
                logs[log.key_id] = CtLog(instance, log.base_url, log.key)
        for authority in root.authorities:
            if authority.kind == "ca":
                cas.extend(x509.load_der_x509_certificate(der) for der in authority.chain)
    return logs, cas


CT_LOGS, FULCIO_CAS = _trust()


def _bundle_certificate(path: Path) -> RealCert | None:
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:
        return None
    material = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    if not isinstance(material, dict):
        return None
    if "certificate" in material:
        ders = [material["certificate"]["rawBytes"]]
    elif "x509CertificateChain" in material:
        ders = [c["rawBytes"] for c in material["x509CertificateChain"]["certificates"]]
    else:
        return None
    raw = [base64.b64decode(d) for d in ders]
    return RealCert(path.name, raw[0], tuple(raw[1:]))


def _real_certificates() -> list[RealCert]:
    paths = real_files("sigstore-bundles/*.sigstore*") + real_files("more-bundles/**/*.json")
    found = [c for p in paths if (c := _bundle_certificate(p)) is not None]
    with_scts = [c for c in found if embedded_scts(c.der)]
    # The vendored bundles: 25 certificates with SCTs from sigstore's logs, one from elsewhere.
    assert len(with_scts) >= 26, [c.name for c in with_scts]
    return with_scts


REAL = _real_certificates()
KNOWN = [c for c in REAL if c.name != UNKNOWN_LOG_BUNDLE]


def _issuer(cert: RealCert) -> x509.Certificate:
    leaf = x509.load_der_x509_certificate(cert.der)
    for ca in FULCIO_CAS:
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    raise AssertionError(f"{cert.name}: no Fulcio CA of the vendored roots issued it")


def _spki(cert: x509.Certificate) -> bytes:
    return tbs_parts(cert.public_bytes(serialization.Encoding.DER))[2]


def _by_name(name: str) -> RealCert:
    (cert,) = (c for c in REAL if c.name == name)
    return cert


# --- real certificates verify --------------------------------------------------------------------


@pytest.mark.parametrize("cert", KNOWN, ids=[c.name for c in KNOWN])
def test_real_embedded_sct_verifies_with_its_log_key(cert: RealCert) -> None:
    (sct,) = embedded_scts(cert.der)
    log = CT_LOGS[sct.log_id]
    issuer_spki = _spki(_issuer(cert))
    assert verify_sct(sct, cert.der, issuer_spki, log.key) == VerifiedSct(sct, EntryType.PRECERT)

    # cryptography reads the same SCT and rebuilds the same precertificate TBSCertificate.
    theirs = x509.load_der_x509_certificate(cert.der)
    (their_sct,) = theirs.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(SCT_LIST_OID)
    ).value
    assert sct.log_id == their_sct.log_id
    assert sct.time == their_sct.timestamp.replace(tzinfo=dt.UTC)
    assert sct.extensions == their_sct.extension_bytes
    assert sct.signature == their_sct.signature
    assert precert_tbs(cert.der) == theirs.tbs_precertificate_bytes


def test_the_logs_are_the_ones_fulcio_uses() -> None:
    """Production bundles carry ctfe.sigstore.dev/2022's SCTs; the staging static-ct-api log's
    SCT carries its leaf index extension, which the signature covers."""
    logs = {CT_LOGS[embedded_scts(c.der)[0].log_id].url for c in KNOWN}
    assert PRODUCTION_CT in logs
    assert "https://log2026-1.ctfe.sigstage.dev" in logs
    python = _by_name("Python-3.12.5.tgz.sigstore")
    assert CT_LOGS[embedded_scts(python.der)[0].log_id].url == PRODUCTION_CT
    static = embedded_scts(_by_name("a.dsse.staging-rekor-v2.txt.sigstore.json").der)[0]
    assert static.extensions[0] == 0 and len(static.extensions) == 8  # leaf_index(0), uint40


@pytest.mark.parametrize("cert", KNOWN[:6], ids=[c.name for c in KNOWN[:6]])
def test_sigstore_python_agrees(cert: RealCert) -> None:
    """sigstore-python verifies the same SCTs with the same trusted root."""
    from sigstore._internal.sct import verify_sct as sigstore_verify_sct
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.models import TrustedRoot

    sct = embedded_scts(cert.der)[0]
    instance = CT_LOGS[sct.log_id].instance
    root = TrustedRoot.from_file(str(REAL_DATA / "trust" / instance / "trusted_root.json"))
    leaf = x509.load_der_x509_certificate(cert.der)
    sigstore_verify_sct(leaf, [_issuer(cert)], root.ct_keyring(KeyringPurpose.VERIFY))


def test_unknown_log_is_not_an_error_of_the_certificate() -> None:
    cert = _by_name(UNKNOWN_LOG_BUNDLE)
    (sct,) = embedded_scts(cert.der)
    assert sct.log_id not in CT_LOGS
    # It parses as well as any other; only another log's key cannot vouch for it.
    production = next(log for log in CT_LOGS.values() if log.url == PRODUCTION_CT)
    with pytest.raises(SctVerificationError, match="the key's is"):
        verify_sct(sct, cert.der, b"\x30\x00", production.key)


# --- every change fails --------------------------------------------------------------------------

# A production certificate (no SCT extensions) and the staging static-ct one (with a leaf index).
MUTATED = ["bundle_v3_github.whl.sigstore", "a.dsse.staging-rekor-v2.txt.sigstore.json"]


def _setup(name: str) -> tuple[RealCert, Sct, bytes, bytes]:
    cert = _by_name(name)
    sct = embedded_scts(cert.der)[0]
    return cert, sct, _spki(_issuer(cert)), CT_LOGS[sct.log_id].key


def _fails(sct: Sct, cert: bytes, issuer: bytes, key: bytes) -> bool:
    try:
        verify_sct(sct, cert, issuer, key)
    except (SctParseError, SctVerificationError):
        return True
    return False


@pytest.mark.parametrize("name", MUTATED)
def test_every_byte_of_the_signature_timestamp_and_extensions_matters(name: str) -> None:
    cert, sct, issuer, key = _setup(name)
    assert not _fails(sct, cert.der, issuer, key)
    for i in range(len(sct.signature)):
        for flip in (0x01, 0x80):
            bad = bytearray(sct.signature)
            bad[i] ^= flip
            assert _fails(dataclasses.replace(sct, signature=bytes(bad)), cert.der, issuer, key), i
    for bit in range(64):
        changed = dataclasses.replace(sct, timestamp=sct.timestamp ^ (1 << bit))
        assert _fails(changed, cert.der, issuer, key), bit
    for i in range(len(sct.extensions)):
        bad = bytearray(sct.extensions)
        bad[i] ^= 0x01
        assert _fails(dataclasses.replace(sct, extensions=bytes(bad)), cert.der, issuer, key), i
    assert _fails(
        dataclasses.replace(sct, extensions=sct.extensions + b"\x00"), cert.der, issuer, key
    )
    for field, value in (("hash_algorithm", 5), ("signature_algorithm", 1)):
        assert _fails(dataclasses.replace(sct, **{field: value}), cert.der, issuer, key), field


def _sct_extension_span(der: bytes) -> tuple[int, int]:
    """Where the SCT list extension (the whole Extension SEQUENCE) sits in the DER."""
    at = der.index(bytes.fromhex("060a2b06010401d679020402"))
    for header, start in ((2, at - 2), (3, at - 3), (4, at - 4)):
        if der[start] != 0x30:
            continue
        first = der[start + 1]
        size = first if header == 2 else int.from_bytes(der[start + 2 : start + header], "big")
        if (header == 2 and first < 0x80) or first == 0x80 | (header - 2):
            return start, start + header + size
    raise AssertionError("no Extension SEQUENCE header before the SCT OID")


@pytest.mark.parametrize("name", MUTATED)
def test_every_byte_the_log_signed_in_the_certificate_matters(name: str) -> None:
    """Each byte of the TBSCertificate outside the SCT extension is part of what the log
    signed; the final certificate's own signature is not (the SCT predates it)."""
    cert, sct, issuer, key = _setup(name)
    der = cert.der
    tbs_start = 4  # Certificate SEQUENCE header (0x30 0x82 xx xx)
    tbs_end = tbs_start + 4 + int.from_bytes(der[tbs_start + 2 : tbs_start + 4], "big")
    ext_start, ext_end = _sct_extension_span(der)
    checked = 0
    for i in range(tbs_start, tbs_end):
        if ext_start <= i < ext_end:
            continue
        bad = bytearray(der)
        bad[i] ^= 0x01
        assert _fails(sct, bytes(bad), issuer, key), i
        checked += 1
    assert checked > 500
    outside = bytearray(der)
    outside[-1] ^= 0x01  # the last byte of the CA's signature over the final certificate
    assert not _fails(sct, bytes(outside), issuer, key)


@pytest.mark.parametrize("name", MUTATED)
def test_the_issuer_key_the_log_signed_matters(name: str) -> None:
    cert, sct, issuer, key = _setup(name)
    for i in range(0, len(issuer), 7):
        bad = bytearray(issuer)
        bad[i] ^= 0x01
        assert _fails(sct, cert.der, bytes(bad), key), i
    others = [_spki(ca) for ca in FULCIO_CAS if _spki(ca) != issuer]
    assert others and all(_fails(sct, cert.der, o, key) for o in others)
    # The same SCT read as if the log had signed the final certificate (x509 form).
    with pytest.raises(SctVerificationError, match="over the certificate"):
        verify_sct(sct, cert.der, issuer, key, entry_type=EntryType.X509)


def test_another_logs_key_is_refused_by_log_id() -> None:
    cert, sct, issuer, _ = _setup(MUTATED[0])
    other = next(log for log_id, log in CT_LOGS.items() if log_id != sct.log_id)
    with pytest.raises(SctVerificationError, match=f"the SCT names log ID {sct.log_id.hex()}"):
        verify_sct(sct, cert.der, issuer, other.key)


# --- our own CT logs: both key types, both entry forms ------------------------------------------


def _sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _make_sct(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, **kw: object) -> Sct:
    fields: dict[str, object] = {
        "log_id": hashlib.sha256(spki_der(key.public_key())).digest(),
        "timestamp": 1_700_000_000_123,
        "extensions": b"",
        "hash_algorithm": 4,
        "signature_algorithm": 1 if isinstance(key, rsa.RSAPrivateKey) else 3,
        "signature": b"\x00",
    }
    fields.update(kw)
    return Sct(**fields)  # type: ignore[arg-type]


def _tls_list(*scts: Sct) -> bytes:
    items = b""
    for s in scts:
        raw = (
            b"\x00"
            + s.log_id
            + s.timestamp.to_bytes(8, "big")
            + len(s.extensions).to_bytes(2, "big")
            + s.extensions
            + bytes([s.hash_algorithm, s.signature_algorithm])
            + len(s.signature).to_bytes(2, "big")
            + s.signature
        )
        items += len(raw).to_bytes(2, "big") + raw
    return len(items).to_bytes(2, "big") + items


def _der_octets(content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([0x04, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(size)]) + size + content


RSA_LOG = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_LOG = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("log", [EC_LOG, RSA_LOG], ids=["ecdsa-p256", "rsa-2048"])
def test_an_sct_we_embed_ourselves_verifies_in_both_forms(
    log: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> None:
    issuer_spki = b"\x30\x03\x02\x01\x01"  # only hashed: any bytes stand for the CA's key
    # The log signs the precertificate: cryptography's tbs_precertificate_bytes of a certificate
    # that differs from the final one only in the SCT list's content.
    placeholder = _der_octets(_tls_list(_make_sct(log)))
    draft = make_certificate(extensions={SCT_LIST_OID: placeholder})
    unsigned = _make_sct(log)
    data = signed_data(unsigned, EntryType.PRECERT, cert_der(draft), issuer_spki)
    assert data[:2] == b"\x00\x00" and data[10:12] == b"\x00\x01"
    assert hashlib.sha256(issuer_spki).digest() in data
    assert draft.tbs_precertificate_bytes in data
    sct = dataclasses.replace(unsigned, signature=_sign(log, data))
    final = cert_der(make_certificate(extensions={SCT_LIST_OID: _der_octets(_tls_list(sct))}))
    assert embedded_scts(final) == (sct,)
    key = spki_der(log.public_key())
    assert verify_sct(sct, final, issuer_spki, key).entry_type is EntryType.PRECERT

    # The x509 form: the log signed the whole certificate as it is.
    x509_data = signed_data(unsigned, EntryType.X509, final)
    assert x509_data[10:12] == b"\x00\x00" and final in x509_data
    x509_sct = dataclasses.replace(unsigned, signature=_sign(log, x509_data))
    assert verify_sct(x509_sct, final, None, key, entry_type=EntryType.X509).sct == x509_sct
    with pytest.raises(SctVerificationError):
        verify_sct(x509_sct, final, issuer_spki, key)  # not the precert form's signature

    # The algorithm bytes must be the key's.
    other = 3 if isinstance(log, rsa.RSAPrivateKey) else 1
    with pytest.raises(SctVerificationError, match="the log's key is"):
        verify_sct(dataclasses.replace(sct, signature_algorithm=other), final, issuer_spki, key)


def test_precert_tbs_drops_the_extensions_field_when_the_sct_list_was_the_only_one() -> None:
    """Where we part with cryptography, on purpose: with the SCT list gone it keeps an empty
    ``[3] { SEQUENCE {} }``, which DER forbids (Extensions is SIZE (1..MAX)); Go's x509, which
    the CT logs Sigstore runs are built on, omits the empty field (``omitempty``), and so do we.
    Real certificates never meet this: Fulcio's carry a dozen other extensions."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "only")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(leaf_key().public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(SCT_LIST_OID), _der_octets(_tls_list(_make_sct(EC_LOG)))
            ),
            False,
        )
        .sign(leaf_key(), hashes.SHA256())
    )
    ours = precert_tbs(cert_der(cert))
    theirs = cert.tbs_precertificate_bytes
    assert theirs.endswith(b"\xa3\x02\x30\x00")
    # Exactly theirs without the empty [3] field (the last 4 bytes) and with the outer length
    # 4 shorter (a check of the last bytes for 0xa3 would trip on random key bytes).
    assert ours == b"\x30\x81" + bytes([theirs[2] - 4]) + theirs[3:-4]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (ec.generate_private_key(ec.SECP384R1()).public_key(), "expected ECDSA P-256"),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(),
            "at least 2048 bits",
        ),
    ],
    ids=["p384", "rsa-1024"],
)
def test_keys_rfc6962_does_not_allow_are_refused(
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, message: str
) -> None:
    cert, sct, issuer, _ = _setup(MUTATED[0])
    der = spki_der(key)
    sct = dataclasses.replace(sct, log_id=hashlib.sha256(der).digest())
    with pytest.raises(SctParseError, match=message):
        verify_sct(sct, cert.der, issuer, der)


def test_a_log_key_that_is_not_a_key_is_a_parse_error() -> None:
    cert, sct, issuer, _ = _setup(MUTATED[0])
    junk = b"not a key"
    with pytest.raises(SctParseError, match="CT log key"):
        verify_sct(
            dataclasses.replace(sct, log_id=hashlib.sha256(junk).digest()), cert.der, issuer, junk
        )


# --- malformed input: one typed error ------------------------------------------------------------

_GOOD = _make_sct(EC_LOG, signature=b"\x30\x06\x02\x01\x01\x02\x01\x01")
_ONE = _tls_list(_GOOD)


def _raw_sct(version: int = 0, ts: int = 1, ext: bytes = b"", sig: bytes = b"\x01") -> bytes:
    raw = (
        bytes([version])
        + b"\x11" * 32
        + ts.to_bytes(8, "big")
        + len(ext).to_bytes(2, "big")
        + ext
        + b"\x04\x03"
        + len(sig).to_bytes(2, "big")
        + sig
    )
    return len(raw).to_bytes(2, "big") + raw


def _wrap(*items: bytes) -> bytes:
    body = b"".join(items)
    return len(body).to_bytes(2, "big") + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "expected 2 bytes of the length of sct_list"),
        (b"\x00\x00", "expected sct_list of 1 to 65535 bytes, got 0"),
        (_ONE + b"\x00", "more bytes"),
        (_ONE[:-1], "expected"),
        (_wrap(b"\x00\x00"), "expected SCT 0 of 1 to 65535 bytes, got 0"),
        (_wrap(_raw_sct(version=1)), "sct_version: expected 0 (v1), got 1"),
        (_wrap(_raw_sct(ts=2**64 - 1)), "timestamp: expected milliseconds before the year 10000"),
        (_wrap(_raw_sct(ext=b"\x00" * 1025)), "expected extensions of 0 to 1024 bytes, got 1025"),
        (_wrap(_raw_sct(sig=b"")), "expected signature of 1 to 1024 bytes, got 0"),
        (_wrap((len(_raw_sct()) - 1).to_bytes(2, "big") + _raw_sct()[2:] + b"\x00"), "more bytes"),
        (_wrap(*[_raw_sct()] * (MAX_SCTS + 1)), f"at most {MAX_SCTS} SCTs"),
    ],
    ids=[
        "empty",
        "empty-list",
        "more bytes",
        "truncated",
        "empty-sct",
        "version",
        "timestamp",
        "extensions",
        "no-signature",
        "sct-trailing",
        "too-many",
    ],
)
def test_malformed_sct_lists_raise_the_typed_error(data: bytes, message: str) -> None:
    with pytest.raises(SctParseError, match=re.escape(message)):
        parse_sct_list(data)


def test_list_of_the_most_scts_parses() -> None:
    assert len(parse_sct_list(_wrap(*[_raw_sct()] * MAX_SCTS))) == MAX_SCTS
    assert parse_sct_list(_ONE) == (_GOOD,)


def _with_extension_value(value: bytes) -> bytes:
    return cert_der(make_certificate(extensions={SCT_LIST_OID: value}))


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "truncated DER header"),
        (b"\x30\x80\x00\x00", "indefinite or oversized DER length"),
        (b"\x30\x81\x05" + b"\x00" * 5, "non-minimal DER length"),
        (b"\x30\x03\x02\x01\x01\x00", "spanning the input"),
        (b"\x30\x03\x02\x01\x01", "TBSCertificate: expected a SEQUENCE"),
        (b"\x30\x05\x30\x03\x1f\x01\x00", "multi-byte DER tag"),
        (b"\x30" + b"\x83\x02\x00\x01" + b"\x00" * (128 * 1024 + 1), "at most 131072 bytes"),
        (_with_extension_value(b"\x02\x01\x00"), "expected one OCTET STRING holding the TLS list"),
        (_with_extension_value(_der_octets(b"\x00\x00")), "expected sct_list of 1 to 65535 bytes"),
        (_with_extension_value(_der_octets(_ONE) + b"\x00"), "expected one OCTET STRING"),
    ],
    ids=[
        "empty",
        "indefinite",
        "non-minimal",
        "more bytes",
        "no-tbs",
        "multibyte-tag",
        "oversized",
        "not-octets",
        "empty-list",
        "octets-trailing",
    ],
)
def test_malformed_certificates_raise_the_typed_error(der: bytes, message: str) -> None:
    with pytest.raises(SctParseError, match=re.escape(message)):
        embedded_scts(der)


def test_a_certificate_without_scts_has_none_and_no_precert_form() -> None:
    der = cert_der(make_certificate())
    assert embedded_scts(der) == ()
    with pytest.raises(SctParseError, match="expected an SCT list extension, got none"):
        precert_tbs(der)
    with pytest.raises(SctParseError, match="issuer's public key"):
        signed_data(_GOOD, EntryType.PRECERT, der)


def test_a_repeated_sct_list_extension_is_refused() -> None:
    der = _by_name(MUTATED[0]).der
    start, end = _sct_extension_span(der)
    # Duplicate the Extension inside its SEQUENCE OF, fixing the three enclosing lengths.
    ext = der[start:end]
    doubled = bytearray(der[:end] + ext + der[end:])
    for at in (0, 4, der.rindex(b"\xa3\x82", 0, start), der.rindex(b"\xa3\x82", 0, start) + 4):
        assert doubled[at + 1] == 0x82
        size = int.from_bytes(doubled[at + 2 : at + 4], "big") + len(ext)
        doubled[at + 2 : at + 4] = size.to_bytes(2, "big")
    with pytest.raises(SctParseError, match="appears twice"):
        embedded_scts(bytes(doubled))


# --- hypothesis: hostile bytes only raise the typed errors ---------------------------------------

_SEEDS = [c.der for c in REAL]
_RUN = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@st.composite
def _mutated_extension(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A real certificate with its SCT extension's bytes changed, inserted or deleted."""
    der = draw(st.sampled_from(_SEEDS))
    start, end = _sct_extension_span(der)
    region = bytearray(der[start:end])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(region) - 1))
        action = draw(st.sampled_from(["set", "flip", "insert", "delete"]))
        if action == "set":
            region[at] = draw(st.integers(0, 255))
        elif action == "flip":
            region[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            region[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif len(region) > 1:
            del region[at]
    return der, der[:start] + bytes(region) + der[end:]


def _only_typed_errors(der: bytes, issuer: bytes, key: bytes) -> None:
    try:
        scts = embedded_scts(der)
    except SctParseError:
        return
    for sct in scts:
        try:
            verify_sct(sct, der, issuer, key)
        except (SctParseError, SctVerificationError):
            pass
        else:
            # A change inside the extension cannot touch what the log signed, so a verified SCT
            # must be the original one, unchanged.
            assert sct in embedded_scts(_by_name(MUTATED[0]).der) + tuple(
                s for c in REAL for s in embedded_scts(c.der)
            )


@_RUN
@given(_mutated_extension())
def test_mutated_sct_extension_only_raises_the_typed_errors(pair: tuple[bytes, bytes]) -> None:
    original, der = pair
    (sct,) = embedded_scts(original)
    log = CT_LOGS.get(sct.log_id)
    key = log.key if log is not None else next(iter(CT_LOGS.values())).key
    issuer = _spki(FULCIO_CAS[0])
    _only_typed_errors(der, issuer, key)


@_RUN
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_the_typed_error(data: bytes) -> None:
    for parse in (parse_sct_list, embedded_scts, precert_tbs):
        with contextlib.suppress(SctParseError):
            parse(data)


# --- inspect's SCT lines (monitor.cli.inspect) ---------------------------------------------------
# The real bundles' lines are in tests/integration/test_inspect.py; these are the verdicts no
# real certificate reaches: a key's validity window, an unknown issuer, unreadable lists, naming.


def _known(cert: RealCert, **window: dt.datetime | None) -> inspect._KnownCtLog:
    log = CT_LOGS[embedded_scts(cert.der)[0].log_id]
    sct_log = TrustedCtLog(
        base_url=log.url,
        log_id=embedded_scts(cert.der)[0].log_id,
        key=log.key,
        valid_from=window.get("valid_from"),
        valid_until=window.get("valid_until"),
    )
    return inspect._KnownCtLog(f"{log.url} (test)", sct_log)


def test_inspect_fails_an_sct_signed_outside_its_log_keys_validity() -> None:
    cert, sct, issuer, _ = _setup(MUTATED[0])
    second = dt.timedelta(seconds=1)
    for window in ({"valid_until": sct.time - second}, {"valid_from": sct.time + second}):
        ok, status, _, why = inspect._check_sct(sct, cert.der, (issuer,), _known(cert, **window))
        assert (ok, status) == (False, "failed")
        assert why.startswith("FAILED: signed at a time outside the log key's validity")
    inside = _known(cert, valid_from=sct.time - second, valid_until=sct.time + second)
    assert inspect._check_sct(sct, cert.der, (issuer,), inside)[:2] == (True, "verified")
    # Several candidate issuers (CAs sharing a name): any one that verifies will do.
    other = next(_spki(ca) for ca in FULCIO_CAS if _spki(ca) != issuer)
    assert inspect._check_sct(sct, cert.der, (other, issuer), inside)[:2] == (True, "verified")
    ok, status, _, why = inspect._check_sct(sct, cert.der, (other,), inside)
    assert (ok, status) == (False, "failed") and "does not verify" in why


def test_inspect_does_not_check_without_an_issuer_nor_fail_an_unknown_log() -> None:
    cert, sct, _, _ = _setup(MUTATED[0])
    ok, status, label, why = inspect._check_sct(sct, cert.der, (), _known(cert))
    assert (ok, status) == (None, "not_checked") and label is not None
    assert why.startswith("not checked: the certificate's issuer is not a Fulcio CA")
    ok, status, label, why = inspect._check_sct(sct, cert.der, (), None)
    assert (ok, status, label) == (None, "unknown_log", None)
    assert why == "unknown log: not a CT log of the production or staging trust root"


def test_inspect_names_each_sct_line_and_fails_an_unreadable_list() -> None:
    two = _der_octets(_tls_list(_GOOD, dataclasses.replace(_GOOD, timestamp=2)))
    with_two = make_certificate(extensions={SCT_LIST_OID: two})
    broken = make_certificate(extensions={SCT_LIST_OID: _der_octets(b"\x00\x00")})
    without = make_certificate()

    def lines(*certs: x509.Certificate) -> list[tuple[str, bool | None, str]]:
        body = dsse_v001([cert_pem(c) for c in certs]) if len(certs) > 1 else None
        entry = parse_entry(encode(body or hashedrekord_v001(cert_pem(certs[0]))))
        steps, _ = inspect._sct_checks(entry, [], inspect._ct_logs(None))
        return [(s.name, s.ok, s.detail) for s in steps]

    assert lines(without) == [("SCT", None, "the certificate embeds no SCTs")]
    ((name, ok, detail),) = lines(broken)
    assert (name, ok) == ("SCT", False)
    assert (
        detail
        == "FAILED: embedded SCT list: SCT list: expected sct_list of 1 to 65535 bytes, got 0"
    )
    found = lines(with_two, without)
    assert [(n, ok) for n, ok, _ in found] == [
        ("signer 0 SCT 0", None),
        ("signer 0 SCT 1", None),
        ("signer 1 SCT", None),
    ]
    assert found[0][2] == (
        f"log ID {_GOOD.log_id.hex()}, time 2023-11-14T22:13:20.123Z: unknown log: not a CT log "
        "of the production or staging trust root"
    )


# --- promised leaves, SCT lists, issuer keys (used by sct_not_incorporated) ------------------


@pytest.mark.parametrize("cert", KNOWN, ids=[c.name for c in KNOWN])
def test_promised_leaf_repeats_what_the_real_sct_signed(cert: RealCert) -> None:
    from monitor.core.ct import EntryType as CtEntryType
    from monitor.core.ct import parse_merkle_tree_leaf

    (sct,) = embedded_scts(cert.der)
    issuer_spki = _spki(_issuer(cert))
    leaf = promised_leaf(sct, cert.der, issuer_spki)
    parsed = parse_merkle_tree_leaf(leaf)
    assert parsed.timestamp == sct.timestamp and parsed.entry_type is CtEntryType.PRECERT
    assert parsed.certificate == precert_tbs(cert.der)
    assert parsed.issuer_key_hash == hashlib.sha256(issuer_spki).digest()
    assert parsed.extensions == sct.extensions
    # RFC 6962: the leaf's leaf_type timestamped_entry(0) sits where the signed data has
    # signature_type certificate_timestamp(0); the rest is the same, so the bytes are too.
    signed = precert_signed_data(sct.timestamp, issuer_spki, precert_tbs(cert.der), sct.extensions)
    assert leaf == signed


@pytest.mark.parametrize("cert", REAL, ids=[c.name for c in REAL])
def test_serialize_sct_list_round_trips_the_real_lists(cert: RealCert) -> None:
    theirs = x509.load_der_x509_certificate(cert.der)
    ext = theirs.extensions.get_extension_for_oid(x509.ObjectIdentifier(SCT_LIST_OID))
    # The extension's value: a DER OCTET STRING around the TLS list (short or long form).
    der = ext.value.public_bytes()
    head = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    raw = der[head:]
    scts = parse_sct_list(raw)
    assert serialize_sct_list(scts) == raw
    assert scts == embedded_scts(cert.der)


_SCTS = st.builds(
    Sct,
    log_id=st.binary(min_size=32, max_size=32),
    timestamp=st.integers(min_value=0, max_value=253402300799999),
    extensions=st.binary(max_size=64),
    hash_algorithm=st.integers(min_value=0, max_value=255),
    signature_algorithm=st.integers(min_value=0, max_value=255),
    signature=st.binary(min_size=1, max_size=80),
)


@given(st.lists(_SCTS, min_size=1, max_size=5))
def test_serialize_then_parse_is_the_identity(scts: list[Sct]) -> None:
    assert parse_sct_list(serialize_sct_list(scts)) == tuple(scts)


@pytest.mark.parametrize("cert", KNOWN, ids=[c.name for c in KNOWN])
def test_issuer_spkis_names_the_real_issuing_ca(cert: RealCert) -> None:
    from monitor.config.trust_roots import fulcio_trust
    from monitor.service.sct_watch import issuer_spkis

    issuer_spki = _spki(_issuer(cert))
    found = issuer_spkis(cert.der, fulcio_trust("production")) + issuer_spkis(
        cert.der, fulcio_trust("staging")
    )
    assert issuer_spki in found
    assert issuer_spkis(cert.der, None) == []
    assert issuer_spkis(b"not a certificate", fulcio_trust("production")) == []
