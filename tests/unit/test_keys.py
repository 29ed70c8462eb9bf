"""Key loading: PEM keys, Rekor v1 naming, and Sigstore's embedded trusted roots (offline)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.config.trust_roots import (
    TrustedLog,
    find_trusted_log,
    fulcio_authorities,
    fulcio_roots,
    trusted_logs,
)
from monitor.core.errors import ConfigError
from monitor.core.keys import (
    REKOR_V1_LEGACY_ORIGIN,
    KeyLoadError,
    LogApi,
    rekor_v1_key_name,
    rekor_v1_origin,
    tiles_origin,
    verifier_from_der,
    verifier_from_pem,
)
from monitor.core.note import EcdsaNoteVerifier, Ed25519NoteVerifier

# The public Rekor v1 production key (also in tests/data/rekor-production).
REKOR_V1_PROD_PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
"""


def _pem(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading trust roots must never touch the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


# --- PEM keys ----------------------------------------------------------------------------------


def test_rekor_v1_production_pem_gives_hint_c0d23d6a() -> None:
    v = verifier_from_pem("rekor.sigstore.dev", REKOR_V1_PROD_PEM)
    assert isinstance(v, EcdsaNoteVerifier)
    assert v.key_hint.hex() == "c0d23d6a"
    assert verifier_from_pem("rekor.sigstore.dev", REKOR_V1_PROD_PEM.encode()) == v


def test_ed25519_pem_gives_c2sp_verifier() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    v = verifier_from_pem("example.com/log", _pem(key))
    assert isinstance(v, Ed25519NoteVerifier)
    assert v.key_hint == hashlib.sha256(b"example.com/log\n\x01" + v.public_bytes).digest()[:4]


@pytest.mark.parametrize(
    ("pem", "match"),
    [
        (_pem(rsa.generate_private_key(65537, 2048).public_key()), "got a RSAPublicKey"),
        (_pem(ec.generate_private_key(ec.SECP384R1()).public_key()), "got an ECDSA secp384r1"),
        (b"not a pem", "PEM public key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM public key"),
        (
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "PEM public key",
        ),
    ],
    ids=["rsa", "p384", "garbage", "bad base64 body", "private key"],
)
def test_unsupported_pems_are_key_load_errors(pem: bytes, match: str) -> None:
    with pytest.raises(KeyLoadError, match=match):
        verifier_from_pem("k", pem)


def test_bad_key_name_is_key_load_error() -> None:
    with pytest.raises(KeyLoadError, match="key name"):
        verifier_from_pem("has space", REKOR_V1_PROD_PEM)


def test_der_loader() -> None:
    der = serialization.load_pem_public_key(REKOR_V1_PROD_PEM.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verifier_from_der("rekor.sigstore.dev", der).key_hint.hex() == "c0d23d6a"
    with pytest.raises(KeyLoadError):
        verifier_from_der("k", b"\x30\x00")


# --- naming -----------------------------------------------------------------------------------


def test_rekor_v1_naming() -> None:
    assert rekor_v1_key_name("https://rekor.sigstore.dev") == "rekor.sigstore.dev"
    assert rekor_v1_key_name("https://rekor.sigstore.dev:443/") == "rekor.sigstore.dev"
    assert (
        rekor_v1_origin("https://rekor.sigstore.dev", 1193050959916656506)
        == "rekor.sigstore.dev - 1193050959916656506"
    )
    assert REKOR_V1_LEGACY_ORIGIN == "Rekor"
    with pytest.raises(ValueError, match="tree ID"):
        rekor_v1_origin("https://rekor.sigstore.dev", "12a")
    with pytest.raises(KeyLoadError, match="http"):
        rekor_v1_key_name("rekor.sigstore.dev")


def test_tiles_origin_is_url_without_scheme() -> None:
    assert tiles_origin("https://log2025-1.rekor.sigstore.dev") == "log2025-1.rekor.sigstore.dev"
    assert tiles_origin("https://log2025-1.rekor.sigstore.dev/") == "log2025-1.rekor.sigstore.dev"
    assert tiles_origin("https://example.com/logs/a/") == "example.com/logs/a"


# --- trusted roots ----------------------------------------------------------------------------


def _by_url(trust_root: str) -> dict[str, TrustedLog]:
    return {log.base_url: log for log in trusted_logs(trust_root)}


def test_production_rekor_v1() -> None:
    log = _by_url("production")["https://rekor.sigstore.dev"]
    assert log.api is LogApi.REKOR_V1
    assert log.key_name == "rekor.sigstore.dev"
    assert log.origin is None
    assert log.verifier.key_hint.hex() == "c0d23d6a"
    assert log.verifier == verifier_from_pem("rekor.sigstore.dev", REKOR_V1_PROD_PEM)
    assert log.expected_origin(2605736670972794746) == "rekor.sigstore.dev - 2605736670972794746"
    with pytest.raises(ValueError, match="tree ID"):
        log.expected_origin()
    assert log.valid_from == datetime(2021, 1, 12, 11, 53, 27, tzinfo=UTC)
    assert log.valid_until is None


def test_production_rekor_v2_shard_log2025_1() -> None:
    logs = _by_url("production")
    if "https://log2025-1.rekor.sigstore.dev" not in logs:
        pytest.skip("the installed sigstore's production trusted root predates log2025-1")
    log = logs["https://log2025-1.rekor.sigstore.dev"]
    assert log.api is LogApi.TILES
    assert log.origin == log.key_name == "log2025-1.rekor.sigstore.dev"
    assert log.expected_origin() == "log2025-1.rekor.sigstore.dev"
    with pytest.raises(ValueError, match="no tree ID"):
        log.expected_origin(1)
    assert isinstance(log.verifier, Ed25519NoteVerifier)
    assert log.verifier.key_hint.hex() == "cf119915"


@pytest.mark.parametrize("trust_root", ["production", "staging"])
def test_every_log_hint_is_its_log_id_prefix(trust_root: str) -> None:
    """Sigstore clients find a log's checkpoint signature by log ID[:4]; our per-API key hint
    conventions must agree with that for every log in both roots."""
    logs = trusted_logs(trust_root)
    assert logs
    for log in logs:
        assert log.verifier.key_hint == log.log_id[:4], log.base_url
        assert log.verifier.name == log.key_name
        if log.api is LogApi.TILES:
            assert isinstance(log.verifier, Ed25519NoteVerifier)
            # For Ed25519 shards the whole log ID is the C2SP key hash.
            assert log.verifier.key_id == log.log_id
        else:
            assert isinstance(log.verifier, EcdsaNoteVerifier)
            assert log.verifier.key_id == log.log_id


def test_staging_has_v1_and_v2_shards() -> None:
    logs = _by_url("staging")
    assert logs["https://rekor.sigstage.dev"].api is LogApi.REKOR_V1
    alpha1 = logs["https://log2025-alpha1.rekor.sigstage.dev"]
    assert alpha1.api is LogApi.TILES
    assert alpha1.verifier.key_hint.hex() == "f30d5a99"
    # A frozen shard carries its validity window.
    assert alpha1.valid_until is not None
    assert alpha1.valid_at(datetime(2025, 6, 1, tzinfo=UTC))
    assert not alpha1.valid_at(datetime(2025, 10, 1, tzinfo=UTC))
    assert not alpha1.valid_at(datetime(2025, 1, 1, tzinfo=UTC))


def test_find_trusted_log() -> None:
    log = find_trusted_log("production", "https://rekor.sigstore.dev/")
    assert log.base_url == "https://rekor.sigstore.dev"
    with pytest.raises(KeyLoadError, match=r"expected a log with URL https://nope\.example"):
        find_trusted_log("production", "https://nope.example")


def test_fulcio_roots_and_authorities() -> None:
    roots = fulcio_roots("production")
    assert roots
    for cert in roots:
        assert isinstance(cert, x509.Certificate)
        assert cert.subject == cert.issuer  # trust anchors are self-signed
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert basic.ca
    authorities = fulcio_authorities("production")
    assert {ca.uri for ca in authorities} == {"https://fulcio.sigstore.dev"}
    current = [ca for ca in authorities if ca.valid_until is None]
    assert current
    assert len(current[0].certificates) == 2  # intermediate, then root
    assert current[0].certificates[0].issuer == current[0].root.subject
    assert fulcio_roots("staging")


def test_trust_root_from_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": "https://tiles.example/log",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(
                        Ed25519PrivateKey.generate()
                        .public_key()
                        .public_bytes(
                            serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo,
                        )
                    ).decode(),
                    "keyDetails": "PKIX_ED25519",
                    "validFor": {"start": "2025-01-01T00:00:00Z"},
                },
                "logId": {"keyId": base64.b64encode(b"\x00" * 32).decode()},
            }
        ],
        "certificateAuthorities": [],
        "ctlogs": [],
    }
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(src))
    (log,) = trusted_logs(str(path))
    assert log.api is LogApi.TILES
    assert log.origin == "tiles.example/log"
    # Its made-up log ID does not start with the key hint: loaded, but said out loud.
    assert "differs from its log ID prefix" in caplog.text
    assert fulcio_roots(str(path)) == ()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "expected 'production' or 'staging' or the path"),
        ("{not json", "Sigstore trusted root"),
        ('{"mediaType": "x"}', "Sigstore trusted root"),
    ],
    ids=["missing file", "not json", "wrong schema"],
)
def test_bad_trust_roots_are_key_load_errors(
    tmp_path: Path, content: str | None, match: str
) -> None:
    path = tmp_path / "trusted_root.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyLoadError, match=match):
        trusted_logs(str(path))


def test_unknown_trust_root_name() -> None:
    with pytest.raises(ConfigError, match="expected 'production' or 'staging'"):
        trusted_logs("prod")


def test_a_trusted_root_file_is_read_up_to_its_cap(tmp_path: Path) -> None:
    # A trust_root path is read one byte past the cap, never whole: a huge file is refused.
    huge = tmp_path / "trusted_root.json"
    with huge.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    with pytest.raises(KeyLoadError, match="at most"):
        trusted_logs(str(huge))
