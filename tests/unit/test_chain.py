"""Which certificates chain to a log's Fulcio CAs: `CertificateTrust` and `trust_for_log`.

Real leaves from the production and staging bundles against sigstore's embedded trusted roots
(cross-checked with the chain a bundle ships itself), the sandbox's CA and self-signed spam,
validity windows, and the bundles an operator can get wrong.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.cli.inspect import load_input
from monitor.config.settings import load_config
from monitor.config.trust_roots import fulcio_trust
from monitor.core.certs import CertificateIdentity, parse_certificate
from monitor.core.chain import (
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_CERTIFICATES,
    CertificateTrust,
    TrustError,
)
from monitor.core.entries import parse_entry
from monitor.core.errors import ConfigError
from monitor.sandbox.ca import Identity, LocalCA
from monitor.service.wiring import trust_for_log
from tests.unit import certgen as g

PRODUCTION_LEAVES = [
    "sigstore-bundles/Python-3.12.5.tgz.sigstore",
    "sigstore-bundles/bundle_v3_github.whl.sigstore",
    "more-bundles/conformance/happy-path-v0.3.json",
    "more-bundles/sigstore-js/bundleV02-dsse.sigstore.json",
    "more-bundles/sigstore-go/bundle-provenance.json",
]
STAGING_LEAVES = [
    "sigstore-bundles/staging-rekor-v2.txt.sigstore.json",
    "sigstore-bundles/a.dsse.staging-rekor-v2.txt.sigstore.json",
]


def real_leaf(real_data: Path, name: str) -> tuple[CertificateIdentity, dt.datetime | None]:
    loaded = load_input((real_data / name).read_bytes())
    cert = parse_entry(loaded.body).signers[0].certificate
    assert cert is not None
    at = (
        dt.datetime.fromtimestamp(loaded.integrated_time, dt.UTC)
        if loaded.integrated_time
        else None
    )
    return cert, at


# --- real certificates, real trust roots --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "root", "other"),
    [(n, "production", "staging") for n in PRODUCTION_LEAVES]
    + [(n, "staging", "production") for n in STAGING_LEAVES],
)
def test_real_leaves_chain_to_their_trust_root_only(
    real_data: Path, name: str, root: str, other: str
) -> None:
    cert, at = real_leaf(real_data, name)
    trust = fulcio_trust(root)
    assert trust.is_trusted(cert, at)
    assert trust.is_trusted(cert)  # no time: signature only (tiled logs carry no time)
    issuer = trust.issuer_of(cert)
    assert issuer is not None and issuer.subject.rfc4514_string() == cert.issuer_dn
    assert not fulcio_trust(other).is_trusted(cert, at)
    assert fulcio_trust(other).issuer_of(cert) is None


def test_issuer_agrees_with_the_chain_a_bundle_ships(real_data: Path) -> None:
    # sigstore-js's bundle carries leaf, intermediate and root: data we did not assemble.
    path = real_data / "more-bundles/sigstore-js/bundleV01-full-cert-chain.sigstore.json"
    chain = json.loads(path.read_text())["verificationMaterial"]["x509CertificateChain"]
    leaf_der, intermediate_der, root_der = (
        base64.b64decode(c["rawBytes"]) for c in chain["certificates"]
    )
    trust = fulcio_trust("production")
    issuer = trust.issuer_of(parse_certificate(leaf_der))
    assert issuer is not None
    assert issuer.public_bytes(serialization.Encoding.DER) == intermediate_der
    ders = {c.public_bytes(serialization.Encoding.DER) for c in trust.authorities}
    assert {intermediate_der, root_der} <= ders
    # The shipped chain alone, as a PEM bundle, trusts the leaf too.
    pem = b"".join(
        g.cert_pem(x509.load_der_x509_certificate(d)) for d in (root_der, intermediate_der)
    )
    assert CertificateTrust.from_pem_bundle(pem).is_trusted(parse_certificate(leaf_der))


def test_named_roots_are_built_once() -> None:
    assert fulcio_trust("production") is fulcio_trust("production")
    roots = fulcio_trust("production").authorities
    assert all(c.issuer == c.subject for c in roots[:1]), "roots first"


def test_real_leaf_outside_its_ten_minutes_is_not_trusted(real_data: Path) -> None:
    cert, at = real_leaf(real_data, PRODUCTION_LEAVES[0])
    assert at is not None
    trust = fulcio_trust("production")
    assert trust.is_trusted(cert, cert.not_before)
    assert trust.is_trusted(cert, cert.not_after)
    assert not trust.is_trusted(cert, cert.not_before - dt.timedelta(seconds=1))
    assert not trust.is_trusted(cert, cert.not_after + dt.timedelta(seconds=1))
    # A naive time is UTC.
    assert trust.is_trusted(cert, at.replace(tzinfo=None))
    assert not trust.is_trusted(cert, (at + dt.timedelta(days=1)).replace(tzinfo=None))


# --- the sandbox CA and self-signed spam --------------------------------------------------


def test_sandbox_leaves_chain_only_to_the_sandbox_ca(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    identity = Identity(email="security@example.com")
    leaf = parse_certificate(ca.signer(identity).cert_der)
    spam = parse_certificate(ca.signer(identity, self_signed=True).cert_der)
    production = fulcio_trust("production")
    assert not production.is_trusted(leaf) and not production.is_trusted(spam)
    sandbox = CertificateTrust.from_pem_bundle(ca.root_pem, source="ca.pem")
    assert sandbox.is_trusted(leaf)
    assert sandbox.is_trusted(leaf, leaf.not_before + dt.timedelta(minutes=1))
    assert not sandbox.is_trusted(spam)
    assert sandbox.issuer_of(spam) is None
    assert repr(sandbox).startswith("CertificateTrust(ca.pem: ")


def _ca(
    name: str,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = True,
    days: tuple[int, int] = (-3650, 3650),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(g.NOT_BEFORE + dt.timedelta(days=days[0]))
        .not_valid_after(g.NOT_BEFORE + dt.timedelta(days=days[1]))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _leaf(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertificateIdentity:
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(g.leaf_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(g.NOT_BEFORE)
        .not_valid_after(g.NOT_BEFORE + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("a@example.com")]), True)
        .sign(key, hashes.SHA256())
    )
    return parse_certificate(g.cert_der(cert))


ROOT, ROOT_KEY = _ca("root")
INTERMEDIATE, INTERMEDIATE_KEY = _ca("intermediate", issuer=(ROOT.subject, ROOT_KEY))
LEAF = _leaf(INTERMEDIATE, INTERMEDIATE_KEY)
DURING = g.NOT_BEFORE + dt.timedelta(minutes=5)


@pytest.mark.parametrize("order", [(ROOT, INTERMEDIATE), (INTERMEDIATE, ROOT)])
def test_intermediates_in_any_order(order: tuple[x509.Certificate, ...]) -> None:
    trust = CertificateTrust.from_pem_bundle(b"".join(g.cert_pem(c) for c in order))
    assert trust.is_trusted(LEAF, DURING)
    assert trust.issuer_of(LEAF) == INTERMEDIATE
    assert trust.authorities == (ROOT, INTERMEDIATE)


def test_a_name_alike_issuer_with_another_key_is_not_trusted() -> None:
    # Same name as the trusted intermediate, even issued by the trusted root: another key.
    impostor, impostor_key = _ca("intermediate", issuer=(ROOT.subject, ROOT_KEY))
    forged = _leaf(impostor, impostor_key)
    trust = CertificateTrust([ROOT, INTERMEDIATE])
    assert not trust.is_trusted(forged)


def test_issuing_ca_must_be_valid_at_the_time() -> None:
    expired, expired_key = _ca("expired", days=(-10, -1))
    trust = CertificateTrust([expired])
    leaf = _leaf(expired, expired_key)
    assert trust.is_trusted(leaf)  # no time given: signature only
    assert not trust.is_trusted(leaf, DURING)  # the CA had expired when the leaf was used


def test_trusted_root_validity_windows_limit_an_authority() -> None:
    der = ROOT.public_bytes(serialization.Encoding.DER)
    leaf = _leaf(ROOT, ROOT_KEY)
    windows = {
        "open": (None, None),
        "covers": (DURING - dt.timedelta(days=1), DURING + dt.timedelta(days=1)),
        "ended": (None, DURING - dt.timedelta(seconds=1)),
        "later": (DURING + dt.timedelta(seconds=1), None),
    }
    verdicts = {
        name: CertificateTrust([ROOT], windows={der: (window,)}).is_trusted(leaf, DURING)
        for name, window in windows.items()
    }
    assert verdicts == {"open": True, "covers": True, "ended": False, "later": False}
    # Several windows: any one will do.
    both = CertificateTrust([ROOT], windows={der: (windows["ended"], windows["covers"])})
    assert both.is_trusted(leaf, DURING)


# --- bundles an operator can get wrong ----------------------------------------------------

KEY_PEM = serialization.Encoding.PEM


def _private_key_pem() -> bytes:
    return ROOT_KEY.private_bytes(
        KEY_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "CA bundle: expected PEM certificates (-----BEGIN CERTIFICATE-----), got"),
        (b"not a certificate", "CA bundle: expected PEM certificates"),
        (
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "CA bundle: expected PEM certificates",
        ),
        (g.cert_pem(ROOT) + _private_key_pem(), "holds a PRIVATE key; give only CA certificates"),
        (b" " * (MAX_BUNDLE_BYTES + 1), f"expected at most {MAX_BUNDLE_BYTES} bytes"),
        (
            g.cert_pem(ROOT) * (MAX_BUNDLE_CERTIFICATES + 1),
            f"expected at most {MAX_BUNDLE_CERTIFICATES} certificates, got",
        ),
        (
            g.cert_pem(ROOT) + g.cert_pem(_ca("leaf", ca=False)[0]),
            "certificate CN=leaf is not a CA certificate (BasicConstraints ca=TRUE)",
        ),
        (
            g.cert_pem(INTERMEDIATE),
            "expected at least one self-signed root certificate, got none; add the root",
        ),
        (
            g.cert_pem(_ca("other root")[0]) + g.cert_pem(INTERMEDIATE),
            "certificate(s) CN=intermediate do not chain to a root in the set; add their issuers",
        ),
    ],
    ids=[
        "empty",
        "garbage",
        "bad base64",
        "private key",
        "oversized",
        "too many",
        "not a CA",
        "no root",
        "orphan intermediate",
    ],
)
def test_malformed_bundles_say_what_to_change(pem: bytes, message: str) -> None:
    with pytest.raises(TrustError) as e:
        CertificateTrust.from_pem_bundle(pem)
    assert message in str(e.value)
    assert isinstance(e.value, ConfigError), "a bad bundle is a configuration error (exit 2)"


def test_empty_certificate_list_is_refused() -> None:
    with pytest.raises(TrustError, match="expected at least one CA certificate, got none"):
        CertificateTrust([], source="fulcio_roots")


# --- trust_for_log --------------------------------------------------------------------------


def _config(tmp_path: Path, log_lines: str, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "config.toml"
    path.write_text(f'[[log]]\nname = "l"\n{log_lines}\n')
    return path


PINNED = 'type = "tiles"\nurl = "http://127.0.0.1:1/tiles"\npublic_key = "log.pem"\n'
LOG_KEY = {"log.pem": g.spki_pem(ec.generate_private_key(ec.SECP256R1()))}


def test_trust_for_log_uses_the_fulcio_roots_bundle(tmp_path: Path) -> None:
    path = _config(
        tmp_path, PINNED + 'fulcio_roots = "ca.pem"', {**LOG_KEY, "ca.pem": g.cert_pem(ROOT)}
    )
    (log,) = load_config(path).logs
    trust = trust_for_log(log)
    assert trust is not None and trust.authorities == (ROOT,)
    assert trust.source == str(tmp_path / "ca.pem")


def test_trust_for_log_takes_the_trust_roots_authorities(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        'type = "rekor-v1"\nurl = "https://rekor.sigstore.dev"\ntrust_root = "staging"',
        {},
    )
    (log,) = load_config(path).logs
    assert trust_for_log(log) is fulcio_trust("staging")


def test_trust_for_log_is_none_for_a_pinned_key_without_a_bundle(tmp_path: Path) -> None:
    (log,) = load_config(_config(tmp_path, PINNED, LOG_KEY)).logs
    assert trust_for_log(log) is None


def test_a_bad_fulcio_roots_bundle_fails_at_config_load_naming_key_and_file(
    tmp_path: Path,
) -> None:
    files = {**LOG_KEY, "ca.pem": g.cert_pem(INTERMEDIATE)}
    with pytest.raises(ConfigError) as e:
        load_config(_config(tmp_path, PINNED + 'fulcio_roots = "ca.pem"', files))
    message = str(e.value)
    assert "log[0].fulcio_roots: " in message
    assert f'"{tmp_path / "ca.pem"}": expected at least one self-signed root certificate' in message
