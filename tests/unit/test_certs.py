"""Tests for monitor.core.certs: real Fulcio certificates, every Fulcio extension, SAN kinds,
garbage."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

from monitor.core.certs import (
    FULCIO_EXTENSIONS,
    MAX_CERTIFICATE_BYTES,
    MAX_SANS,
    CertificateIdentity,
    CertificateParseError,
    SubjectAltName,
    parse_certificate,
    parse_public_key,
    parse_verifier,
    public_key_fingerprint,
)
from monitor.core.errors import ParseError
from tests.unit import certgen
from tests.unit.certgen import (
    FULCIO_ARC,
    OID_ISSUER_V1,
    OID_ISSUER_V2,
    OID_USERNAME,
    cert_der,
    cert_pem,
    der_tlv,
    der_utf8,
    fulcio_extensions,
    make_certificate,
    spki_der,
    spki_pem,
)

GITHUB_SAN = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
GITHUB_SHA = "d8b4a6445f38c48b9137a8099706d9b8073146e4"


def _leaf_der(bundle: Path) -> bytes:
    material = json.loads(bundle.read_text())["verificationMaterial"]
    if "certificate" in material:
        return base64.b64decode(material["certificate"]["rawBytes"])
    return base64.b64decode(material["x509CertificateChain"]["certificates"][0]["rawBytes"])


def _all_fixture_certificates(root: Path) -> list[bytes]:
    ders: list[bytes] = []
    for path in sorted([*root.glob("*bundles/**/*.sigstore"), *root.glob("*bundles/**/*.json")]):
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or "verificationMaterial" not in doc:
            continue
        material = doc["verificationMaterial"]
        if "certificate" in material:
            ders.append(base64.b64decode(material["certificate"]["rawBytes"]))
        for c in material.get("x509CertificateChain", {}).get("certificates", []):
            ders.append(base64.b64decode(c["rawBytes"]))
    return ders


# --- real certificates ------------------------------------------------------------------------


def test_python_release_certificate_names_email_and_google_issuer(real_data: Path) -> None:
    der = _leaf_der(real_data / "sigstore-bundles" / "Python-3.12.5.tgz.sigstore")
    ident = parse_certificate(der)
    assert ident.sans == (SubjectAltName("email", "thomas@python.org"),)
    assert ident.emails == ("thomas@python.org",)
    assert ident.uris == ()
    assert ident.issuer == "https://accounts.google.com"
    assert ident.extensions == {"issuer": "https://accounts.google.com"}
    assert ident.extension_oids == {
        OID_ISSUER_V1: "https://accounts.google.com",
        OID_ISSUER_V2: "https://accounts.google.com",
    }
    assert ident.unparseable_extensions == ()
    assert ident.issuer_dn == "CN=sigstore-intermediate,O=sigstore.dev"
    assert ident.subject_dn == ""
    assert ident.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert ident.der == der


def test_github_release_certificate_names_workflow_and_every_extension(
    real_data: Path,
) -> None:
    ident = parse_certificate(
        _leaf_der(real_data / "sigstore-bundles" / "bundle_v3_github.whl.sigstore")
    )
    assert ident.sans == (SubjectAltName("uri", GITHUB_SAN),)
    assert ident.uris == (GITHUB_SAN,)
    assert ident.issuer == "https://token.actions.githubusercontent.com"
    assert dict(ident.extensions) == {
        "issuer": "https://token.actions.githubusercontent.com",
        "github_workflow_trigger": "release",
        "github_workflow_sha": GITHUB_SHA,
        "github_workflow_name": "release",
        "github_workflow_repository": "trailofbits/rfc8785.py",
        "github_workflow_ref": "refs/tags/v0.1.2",
        "build_signer_uri": GITHUB_SAN,
        "build_signer_digest": GITHUB_SHA,
        "runner_environment": "github-hosted",
        "source_repository_uri": "https://github.com/trailofbits/rfc8785.py",
        "source_repository_digest": GITHUB_SHA,
        "source_repository_ref": "refs/tags/v0.1.2",
        "source_repository_identifier": "768213997",
        "source_repository_owner_uri": "https://github.com/trailofbits",
        "source_repository_owner_identifier": "2314423",
        "build_config_uri": GITHUB_SAN,
        "build_config_digest": GITHUB_SHA,
        "build_trigger": "release",
        "run_invocation_uri": "https://github.com/trailofbits/rfc8785.py/actions/runs/8351058501/attempts/1",
        "source_repository_visibility_at_signing": "public",
    }
    assert ident.extension_oids[FULCIO_ARC + "12"] == "https://github.com/trailofbits/rfc8785.py"
    assert ident.extension_oids[FULCIO_ARC + "2"] == "release"
    assert len(ident.extension_oids) == 21  # .1.1 to .1.22 without .1.7 (a SAN type)
    assert ident.not_before < ident.not_after


def test_othername_san_is_decoded_with_its_type(real_data: Path) -> None:
    der = _leaf_der(real_data / "more-bundles" / "sigstore-go" / "othername.sigstore.json")
    with warnings.catch_warnings():
        # Its issuer DN has a three-letter country, which cryptography warns about.
        warnings.simplefilter("ignore", UserWarning)
        ident = parse_certificate(der)
    assert ident.sans == (SubjectAltName("othername", "foo!oidc.local", OID_USERNAME),)
    assert ident.issuer == "http://oidc.local:8080"
    assert ident.emails == ident.uris == ()


def test_public_key_hash_matches_cryptography_for_every_fixture_certificate(
    real_data: Path,
) -> None:
    ders = _all_fixture_certificates(real_data)
    assert len(ders) >= 25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for der in ders:
            ident = parse_certificate(der)
            expected = spki_der(x509.load_der_x509_certificate(der).public_key())
            assert ident.public_key_sha256 == hashlib.sha256(expected).hexdigest()
            assert ident.serial == x509.load_der_x509_certificate(der).serial_number


def test_pem_and_der_give_the_same_identity(real_data: Path) -> None:
    der = _leaf_der(real_data / "sigstore-bundles" / "Python-3.12.5.tgz.sigstore")
    pem = cert_pem(x509.load_der_x509_certificate(der))
    assert parse_certificate(pem) == parse_certificate(der)
    assert parse_certificate(pem.replace(b"\n", b"\r\n")) == parse_certificate(der)


# --- synthetic: Fulcio extensions -------------------------------------------------------------


def test_every_named_fulcio_extension_is_decoded() -> None:
    values = {oid: f"value-{oid.rsplit('.', 1)[1]}" for oid in FULCIO_EXTENSIONS}
    values.pop(OID_ISSUER_V1)
    values.pop(OID_ISSUER_V2)
    ident = parse_certificate(
        cert_der(make_certificate(extensions=fulcio_extensions(issuer="https://i", values=values)))
    )
    for oid, text in values.items():
        assert ident.extensions[FULCIO_EXTENSIONS[oid]] == text
        assert ident.extension_oids[oid] == text
    assert ident.extensions["issuer"] == ident.issuer == "https://i"
    assert len(ident.extensions) == len(set(FULCIO_EXTENSIONS.values()))
    assert ident.extensions["deployment_environment"] == "value-23"


def test_issuer_v2_wins_over_legacy_issuer_and_both_stay_visible_by_oid() -> None:
    ident = parse_certificate(
        cert_der(
            make_certificate(
                extensions=fulcio_extensions(issuer="https://v2", legacy_issuer="https://v1")
            )
        )
    )
    assert ident.issuer == ident.extensions["issuer"] == "https://v2"
    assert ident.extension_oids[OID_ISSUER_V1] == "https://v1"
    assert ident.extension_oids[OID_ISSUER_V2] == "https://v2"


def test_legacy_issuer_is_used_when_v2_is_absent() -> None:
    ident = parse_certificate(
        cert_der(
            make_certificate(extensions=fulcio_extensions(issuer=None, legacy_issuer="https://v1"))
        )
    )
    assert ident.issuer == ident.extensions["issuer"] == "https://v1"


def test_no_issuer_extension_gives_none() -> None:
    ident = parse_certificate(cert_der(make_certificate(extensions={})))
    assert ident.issuer is None
    assert ident.extensions == {}
    assert ident.extension_oids == {}


@pytest.mark.parametrize(
    ("oid", "raw"),
    [
        pytest.param(OID_ISSUER_V2, b"https://not-der", id="v2-issuer-not-der"),
        pytest.param(OID_ISSUER_V2, der_tlv(0x02, b"\x01"), id="v2-issuer-integer"),
        pytest.param(OID_ISSUER_V2, der_utf8("https://x") + b"\x00", id="v2-issuer-trailing-byte"),
        pytest.param(OID_ISSUER_V2, b"\x0c\x05abc", id="v2-issuer-truncated"),
        pytest.param(OID_ISSUER_V2, der_tlv(0x0C, b"\xff\xfe"), id="v2-issuer-bad-utf8"),
        pytest.param(OID_ISSUER_V2, b"", id="v2-issuer-empty"),
        pytest.param(OID_ISSUER_V2, b"\x0c\x80", id="v2-issuer-indefinite-length"),
    ],
)
def test_malformed_issuer_is_recorded_and_not_guessed_from_legacy(oid: str, raw: bytes) -> None:
    """A garbled .1.8 does not fall back to .1.1, and does not hide the rest of the certificate."""
    exts = fulcio_extensions(
        issuer=None,
        legacy_issuer="https://legacy",
        values={FULCIO_ARC + "12": "https://github.com/o/r"},
        raw={oid: raw},
    )
    ident = parse_certificate(cert_der(make_certificate(extensions=exts)))
    assert ident.issuer is None
    assert "issuer" not in ident.extensions
    assert ident.unparseable_extensions == (oid,)
    assert oid not in ident.extension_oids
    assert ident.extension_oids[OID_ISSUER_V1] == "https://legacy"
    assert ident.extensions["source_repository_uri"] == "https://github.com/o/r"
    assert ident.emails == ("alice@example.com",)


def test_malformed_legacy_value_is_recorded() -> None:
    exts = fulcio_extensions(raw={FULCIO_ARC + "2": b"\xff\xfe not utf-8"})
    ident = parse_certificate(cert_der(make_certificate(extensions=exts)))
    assert ident.unparseable_extensions == (FULCIO_ARC + "2",)
    assert "github_workflow_trigger" not in ident.extensions
    assert ident.issuer == "https://token.actions.githubusercontent.com"


def test_unknown_future_fulcio_extension_is_kept_by_oid_only() -> None:
    exts = fulcio_extensions(values={FULCIO_ARC + "99": "future"}, raw={FULCIO_ARC + "98": b"x"})
    ident = parse_certificate(cert_der(make_certificate(extensions=exts)))
    assert ident.extension_oids[FULCIO_ARC + "99"] == "future"
    assert "future" not in ident.extensions.values()
    assert ident.unparseable_extensions == (FULCIO_ARC + "98",)


def test_non_fulcio_private_extension_is_ignored() -> None:
    exts = {"1.3.6.1.4.1.99999.1": der_utf8("other"), **fulcio_extensions()}
    ident = parse_certificate(cert_der(make_certificate(extensions=exts)))
    assert "1.3.6.1.4.1.99999.1" not in ident.extension_oids
    assert ident.unparseable_extensions == ()


def test_long_extension_value_uses_long_der_length() -> None:
    uri = "https://example.com/" + "x" * 300
    exts = fulcio_extensions(values={FULCIO_ARC + "9": uri})
    assert (
        parse_certificate(cert_der(make_certificate(extensions=exts))).extensions[
            "build_signer_uri"
        ]
        == uri
    )


# --- synthetic: SANs --------------------------------------------------------------------------


def test_every_san_kind() -> None:
    sans: list[x509.GeneralName] = [
        x509.RFC822Name("a@example.com"),
        x509.UniformResourceIdentifier(
            "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"
        ),
        x509.DNSName("example.com"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
        x509.OtherName(x509.ObjectIdentifier(OID_USERNAME), der_utf8("octocat!github.com")),
        x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), der_tlv(0x02, b"\x05")),
        x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")])),
        x509.RegisteredID(x509.ObjectIdentifier("1.2.3.5")),
        x509.RFC822Name("b@example.com"),
    ]
    ident = parse_certificate(cert_der(make_certificate(sans=sans)))
    assert ident.sans == (
        SubjectAltName("email", "a@example.com"),
        SubjectAltName("uri", "https://github.com/o/r/.github/workflows/w.yml@refs/heads/main"),
        SubjectAltName("dns", "example.com"),
        SubjectAltName("ip", "192.0.2.1"),
        SubjectAltName("ip", "2001:db8::1"),
        SubjectAltName("othername", "octocat!github.com", OID_USERNAME),
        SubjectAltName("othername", "hex:020105", "1.2.3.4"),
        SubjectAltName("dirname", "CN=dir"),
        SubjectAltName("rid", "1.2.3.5"),
        SubjectAltName("email", "b@example.com"),
    )
    assert ident.emails == ("a@example.com", "b@example.com")
    assert ident.uris == ("https://github.com/o/r/.github/workflows/w.yml@refs/heads/main",)


def test_certificate_without_san_extension_has_no_sans() -> None:
    assert parse_certificate(cert_der(make_certificate(sans=()))).sans == ()


def test_san_limit_is_inclusive() -> None:
    sans = [x509.RFC822Name(f"u{i}@example.com") for i in range(MAX_SANS)]
    assert len(parse_certificate(cert_der(make_certificate(sans=sans))).sans) == MAX_SANS


def test_too_many_sans_is_an_error_not_a_truncation() -> None:
    sans = [x509.RFC822Name(f"u{i}@example.com") for i in range(MAX_SANS + 1)]
    with pytest.raises(
        CertificateParseError, match=r"at most 256 subject alternative names, got 257"
    ):
        parse_certificate(cert_der(make_certificate(sans=sans)))


def test_a_name_cryptography_cannot_decode_is_a_parse_error() -> None:
    # A BIT STRING commonName in the issuer: cryptography raises TypeError while decoding it.
    der = certgen.poisoned_issuer_certificate()
    with pytest.raises(CertificateParseError, match="TypeError") as info:
        parse_certificate(der)
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(CertificateParseError):
        parse_verifier(der)


def test_oversized_certificate_is_refused_before_parsing() -> None:
    sans = [x509.RFC822Name(f"user{i:05d}@example.com") for i in range(10_000)]
    der = cert_der(make_certificate(sans=sans))
    assert len(der) > MAX_CERTIFICATE_BYTES
    with pytest.raises(CertificateParseError, match="at most 131072 bytes"):
        parse_certificate(der)


# --- identity values ----------------------------------------------------------------------------


def test_identity_fields_match_the_certificate() -> None:
    key = ec_key = certgen.leaf_key()
    cert = make_certificate(key=ec_key, serial=987654321)
    ident = parse_certificate(cert_der(cert))
    assert ident.serial == 987654321
    assert ident.not_before == certgen.NOT_BEFORE
    assert ident.not_after == certgen.NOT_BEFORE + dt.timedelta(minutes=10)
    assert ident.not_before.tzinfo is not None
    assert ident.public_key_sha256 == public_key_fingerprint(spki_der(key))
    assert ident.fingerprint_sha256 == hashlib.sha256(cert_der(cert)).hexdigest()
    assert ident.issuer_dn == "CN=sigstore-intermediate,O=sigstore.dev"


def test_identity_is_immutable_hashable_and_compared_by_der() -> None:
    der = cert_der(make_certificate())
    a, b = parse_certificate(der), parse_certificate(der)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != parse_certificate(cert_der(make_certificate(serial=1)))
    with pytest.raises(TypeError):
        a.extensions["issuer"] = "https://evil"  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.issuer = "https://evil"  # type: ignore[misc]


def test_key_types_other_than_ec_are_fingerprinted() -> None:
    for key in (ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(65537, 2048)):
        ident = parse_certificate(cert_der(make_certificate(public_key=key.public_key())))
        assert ident.public_key_sha256 == public_key_fingerprint(spki_der(key))


def test_subject_dn_is_rendered() -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    assert parse_certificate(cert_der(make_certificate(subject=subject))).subject_dn == "CN=signer"


# --- public keys and verifiers ----------------------------------------------------------------


def test_parse_public_key_accepts_pem_and_der() -> None:
    key = certgen.leaf_key()
    assert parse_public_key(spki_pem(key)) == spki_der(key)
    assert parse_public_key(spki_der(key)) == spki_der(key)


def test_parse_verifier_tells_certificates_from_keys() -> None:
    cert = make_certificate()
    key = ed25519.Ed25519PrivateKey.generate()
    assert isinstance(parse_verifier(cert_der(cert)), CertificateIdentity)
    assert isinstance(parse_verifier(cert_pem(cert)), CertificateIdentity)
    assert parse_verifier(spki_der(key)) == spki_der(key)
    assert parse_verifier(spki_pem(key)) == spki_der(key)


def test_parse_verifier_takes_the_leaf_of_a_pem_chain() -> None:
    leaf = make_certificate(sans=[x509.RFC822Name("leaf@example.com")])
    other = make_certificate(sans=[x509.RFC822Name("ca@example.com")])
    ident = parse_verifier(cert_pem(leaf) + cert_pem(other))
    assert isinstance(ident, CertificateIdentity)
    assert ident.emails == ("leaf@example.com",)


def test_public_key_fingerprint_is_sha256_hex() -> None:
    assert public_key_fingerprint(b"abc") == hashlib.sha256(b"abc").hexdigest()


_CERT_PEM = cert_pem(make_certificate())
_KEY_PEM = spki_pem(certgen.leaf_key())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x00", id="empty-sequence"),
        pytest.param(b"\x30\x80\x00\x00", id="indefinite-length"),
        pytest.param(b"not a certificate at all", id="text"),
        pytest.param(b"\x00" * 64, id="zeros"),
        pytest.param(cert_der(make_certificate())[:-1], id="truncated"),
        pytest.param(cert_der(make_certificate()) + b"\x00", id="trailing-byte"),
        pytest.param(_CERT_PEM.replace(b"-----END CERTIFICATE-----", b""), id="pem-no-end"),
        pytest.param(_CERT_PEM.replace(b"MII", b"M!I", 1), id="pem-bad-base64"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", id="pem-empty"),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", id="pem-junk"
        ),
        pytest.param(
            b"-----BEGIN \xff\xfe-----\nAAAA\n-----END \xff\xfe-----\n", id="pem-bad-label"
        ),
        pytest.param(b"-----BEGIN " + b"X" * 200, id="pem-runaway-label"),
        pytest.param(_KEY_PEM, id="pem-public-key"),
        pytest.param(
            _CERT_PEM.replace(b"CERTIFICATE", b"PGP PUBLIC KEY BLOCK"), id="pem-other-label"
        ),
    ],
)
def test_garbage_certificates_raise_certificate_parse_error(data: bytes) -> None:
    with pytest.raises(CertificateParseError) as info:
        parse_certificate(data)
    assert isinstance(info.value, ParseError)
    assert str(info.value).split(":")[0] in {"certificate", "PEM"}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x03\x06\x01\x00", id="no-bit-string"),
        pytest.param(b"\x30\x05\x30\x00\x03\x01\x00", id="empty-algorithm"),
        pytest.param(spki_der(certgen.leaf_key()) + b"\x00", id="trailing-byte"),
        pytest.param(spki_der(certgen.leaf_key())[:-1], id="truncated"),
        pytest.param(_CERT_PEM, id="certificate-pem"),
        pytest.param(cert_der(make_certificate()), id="certificate-der"),
    ],
)
def test_garbage_public_keys_raise_certificate_parse_error(data: bytes) -> None:
    with pytest.raises(CertificateParseError):
        parse_public_key(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30\x03\x06\x01\x00",
        b"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB user@host",
    ],
)
def test_garbage_verifiers_raise_certificate_parse_error(data: bytes) -> None:
    with pytest.raises(CertificateParseError):
        parse_verifier(data)
