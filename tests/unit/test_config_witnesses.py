"""Config for issue 5: `[[log.view]]` kinds, `[[log.witness]]` keys and `witness_quorum`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.config.settings import ViewConfig, ViewKind, parse_config
from monitor.core.errors import ConfigError
from monitor.core.note import CosignatureSigner, Ed25519NoteSigner

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"config witness").digest())
VKEY = CosignatureSigner("w1.example", KEY).verifier().vkey
LEGACY_VKEY = Ed25519NoteSigner("old.example", KEY).verifier().vkey
PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

BASE = """
[[log]]
name = "rekor"
type = "rekor-v1"
url = "https://rekor.sigstore.dev"
trust_root = "production"
"""


def parse(extra: str, tmp_path: Path) -> object:
    return parse_config(BASE + extra, path=tmp_path / "config.toml")


def test_views_list_and_tables_keep_order_and_kinds(tmp_path: Path) -> None:
    cfg = parse_config(
        BASE.replace(
            'trust_root = "production"',
            'trust_root = "production"\nviews = ["https://mirror.example"]',
        )
        + """
[[log.view]]
url = "https://witness.example/distributor/v0/logs/abc/checkpoint.1"
kind = "witness"
[[log.view]]
url = "https://peer.example:9464/checkpoints/rekor"
kind = "peer"
[[log.view]]
url = "https://mirror2.example"
""",
        path=tmp_path / "config.toml",
    )
    log = cfg.logs[0]
    assert log.view_configs == (
        ViewConfig("https://mirror.example", ViewKind.MIRROR),
        ViewConfig(
            "https://witness.example/distributor/v0/logs/abc/checkpoint.1", ViewKind.WITNESS
        ),
        ViewConfig("https://peer.example:9464/checkpoints/rekor", ViewKind.PEER),
        ViewConfig("https://mirror2.example", ViewKind.MIRROR),
    )
    assert log.views[1].endswith("checkpoint.1")
    shown = cfg.redacted()["logs"][0]  # type: ignore[index]
    assert shown["views"][2] == {
        "url": "https://peer.example:9464/checkpoints/rekor",
        "kind": "peer",
    }


def test_witnesses_from_vkey_and_pem(tmp_path: Path) -> None:
    (tmp_path / "w2.pem").write_text(PEM)
    cfg = parse_config(
        BASE
        + f"""
witness_quorum = 2
[[log.witness]]
name = "w1.example"
vkey = "{VKEY}"
[[log.witness]]
name = "w2.example"
public_key = "w2.pem"
[[log.witness]]
name = "old.example"
vkey = "{LEGACY_VKEY}"
""",
        path=tmp_path / "config.toml",
    )
    log = cfg.logs[0]
    assert [w.name for w in log.witnesses] == ["w1.example", "w2.example", "old.example"]
    assert log.witnesses[0].vkey == VKEY
    assert log.witnesses[1].vkey == CosignatureSigner("w2.example", KEY).verifier().vkey
    assert log.witness_quorum == 2
    assert cfg.redacted()["logs"][0]["witness_quorum"] == 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[log.view]]\nurl = "https://w.example"\nkind = "witnes"', 'did you mean "witness"'),
        ('[[log.view]]\nkind = "peer"', "log[0].view[0].url: missing"),
        ('[[log.view]]\nurl = "https://w.example"\ntype = "peer"', "log[0].view[0].type: unknown"),
        ('[[log.view]]\nurl = "https://rekor.sigstore.dev"', "log[0].view[0].url: same as"),
        (
            'views = ["https://a.example"]\n[[log.view]]\nurl = "https://a.example"',
            "log[0].view[0].url: duplicate of views[0]",
        ),
        ('[[log.view]]\nurl = "http://w.example"', "https is required"),
        ("witness_quorum = 1", "log[0].witness_quorum: expected an integer from 0 to 0"),
        (f'witness_quorum = 2\n[[log.witness]]\nname = "w1.example"\nvkey = "{VKEY}"', "0 to 1"),
        ('[[log.witness]]\nname = "w1.example"', "set exactly one of vkey"),
        (f'[[log.witness]]\nname = "other"\nvkey = "{VKEY}"', 'named "w1.example", not "other"'),
        ('[[log.witness]]\nname = "w"\nvkey = "w+00000000+BAAA"', "log[0].witness[0].vkey: vkey"),
        (
            f'[[log.witness]]\nname = "w1.example"\nvkey = "{VKEY}"\n'
            f'[[log.witness]]\nname = "w1.example"\nvkey = "{VKEY}"',
            "log[0].witness[1]: duplicate witness",
        ),
        (f'[[log.witness]]\nname = "w1.example"\nvkey = "{VKEY}"\nurl = "x"', "unknown key"),
    ],
)
def test_errors_name_the_key(extra: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(extra, tmp_path)


def test_private_key_as_witness_public_key_is_refused(tmp_path: Path) -> None:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    (tmp_path / "w.pem").write_text(pem)
    with pytest.raises(ConfigError, match="PRIVATE key"):
        parse('[[log.witness]]\nname = "w"\npublic_key = "w.pem"', tmp_path)
