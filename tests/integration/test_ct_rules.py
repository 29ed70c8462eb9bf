"""Watch rules on a CT log's certificates against the real sandbox: its RFC 6962 log over HTTP on
127.0.0.1, the daemon's check pass, a real SQLite file and apprise to a local receiver.

A certificate for a watched identity is `certificate_issued`; one issued to a workflow outside
`allowed_signers` is one `unexpected_signer`, however many times it shows (its precertificate, the
certificate, a Rekor entry using it, in whichever order the monitor sees them); certificates no
trusted CA issued are recorded as `untrusted`, never alerted."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from monitor.sandbox import Sandbox
from monitor.sandbox.ca import LocalCA
from monitor.service.daemon import CheckOutcome
from tests.integration.receivers import HttpReceiver
from tests.integration.test_engine import Env
from tests.integration.test_scanner import GITHUB, OTHER, RELEASE, scan_config, set_scan_workers

CT_ORIGIN = "sandbox.ct.local"


def ct_config(env: Env, *, roots: str = "ca.pem") -> None:
    """`scan_config` (the tiles log scanned, rules `release` and `security-email`, every alert
    delivered) plus the sandbox's CT log, scanned from its first entry with `roots` as its
    Fulcio CAs."""
    scan_config(env)
    (env.dir / "ct.pem").write_bytes(env.sandbox.ct_public_key_pem)
    # The sandbox serves its CT log and Rekor v1 at one URL, which one config cannot monitor
    # twice: the Rekor side of these tests is the tiles log.
    text = env.config_path.read_text()
    start = text.index('[[log]]\nname = "rekor-sandbox"')
    text = text[:start] + text[text.index("[[log]]", start + 1) :]
    env.config_path.write_text(text)
    with env.config_path.open("a") as f:
        f.write(
            f"""
[[log]]
name = "ct-sandbox"
type = "ct"
url = "{env.sandbox.ct_url}"
public_key = "ct.pem"
origin = "{CT_ORIGIN}"
scan = true
start = 0
fulcio_roots = "{roots}"
"""
        )


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    try:
        yield e
    finally:
        await receiver.stop()


def alerts(outcome: CheckOutcome) -> list[tuple[str, str | None, str | None]]:
    return sorted((a.kind.value, a.log, a.rule) for _, a in outcome.alerts)


def match_rows(env: Env) -> list[tuple[str, int, str, str, str | None, int | None]]:
    """(log, tree index, rule, outcome, certificate_id, alert_id) of every match."""
    with sqlite3.connect(env.dir / "monitor.db") as db:
        return [
            (r[0], r[1], r[2], r[3], r[4], r[5])
            for r in db.execute(
                "SELECT l.name, m.tree_index, m.rule, m.outcome, m.certificate_id, m.alert_id "
                "FROM matches m JOIN logs l ON l.id = m.log_id ORDER BY l.name, m.tree_index"
            )
        ]


async def test_certificate_issued_for_a_watched_identity(env: Env) -> None:
    ct_config(env)
    sb = env.sandbox
    await sb.append("ct", 40)
    first = (await sb.append("ct", 2, {"uri": RELEASE, "issuer": GITHUB})).first
    await sb.append("ct", 10)
    async with env.open() as m:
        outcome = await m.check()
        assert outcome.errors == []
        assert alerts(outcome) == [("certificate_issued", "ct-sandbox", "release")]
        (_, alert) = outcome.alerts[0]
        assert alert.details["identity"]["sans"] == [f"uri:{RELEASE}"]
        assert (await m.check()).alerts == [], "a certificate is one fact"
    rows = [r for r in match_rows(env) if r[0] == "ct-sandbox"]
    # The certificate's x509_entry and precert_entry (and the precertificate the CA logged for
    # its SCT when it issued it): every match, one certificate, one alert, raised by the first.
    assert {first, first + 1} <= {r[1] for r in rows}
    assert {r[3] for r in rows} == {"certificate_issued"}
    assert len({r[4] for r in rows}) == 1 and rows[0][4] is not None
    assert len({r[5] for r in rows}) == 1 and rows[0][5] is not None
    assert alert.details["log_index"] == rows[0][1]
    assert alert.details["certificate_id"] == rows[0][4]
    assert env.receiver.titles() == ["[INFO] certificate_issued: ct-sandbox, rule release"]


@pytest.mark.parametrize("order", ["together", "ct_first", "rekor_first"])
async def test_unexpected_signer_once_per_certificate(env: Env, order: str) -> None:
    """The precertificate, the certificate and a Rekor entry using it are one certificate: one
    unexpected_signer, whichever log the monitor reads first."""
    ct_config(env)
    sb = env.sandbox
    await sb.append("ct", 30)
    await sb.append("tiles", 30)
    other = {"uri": OTHER, "issuer": GITHUB}
    async with env.open() as m:
        assert (await m.check()).alerts == []
        raised: list[tuple[str, str | None, str | None]] = []
        if order in ("together", "ct_first"):
            await sb.append("ct", 2, other, entry_type="mixed")
        if order in ("together", "rekor_first"):
            await sb.append("tiles", 1, other)
        raised += alerts(await m.check())
        if order == "ct_first":
            await sb.append("tiles", 1, other)
        if order == "rekor_first":
            await sb.append("ct", 2, other, entry_type="mixed")
        raised += alerts(await m.check())
        assert [(k, r) for k, _, r in raised] == [("unexpected_signer", "release")]
        assert (await m.check()).alerts == []
    rows = [r for r in match_rows(env) if r[2] == "release"]
    assert {(r[0], r[3]) for r in rows} == {
        ("ct-sandbox", "unexpected_signer"),
        ("tiles-sandbox", "unexpected_signer"),
    }
    assert len([r for r in rows if r[0] == "ct-sandbox"]) >= 2
    # Every match names the same certificate and links to the one alert.
    assert len({r[4] for r in rows}) == 1 and rows[0][4] is not None
    assert len({r[5] for r in rows}) == 1 and rows[0][5] is not None
    assert [t for t in env.receiver.titles() if "unexpected_signer" in t] in (
        ["[HIGH] unexpected_signer: ct-sandbox, rule release"],
        ["[HIGH] unexpected_signer: tiles-sandbox, rule release"],
    )


@pytest.mark.parametrize("issuer", ["self_signed", "unknown_ca"])
async def test_untrusted_certificates_are_recorded_not_alerted(
    env: Env, tmp_path: Path, issuer: str
) -> None:
    if issuer == "unknown_ca":
        (tmp_path / "other-ca").mkdir()
        other_ca = LocalCA.load_or_create(tmp_path / "other-ca")
        (env.dir / "other-ca.pem").write_bytes(other_ca.certificate.public_bytes(Encoding.PEM))
        ct_config(env, roots="other-ca.pem")
    else:
        ct_config(env)
    sb = env.sandbox
    who = {"uri": OTHER, "issuer": GITHUB}
    await sb.append("ct", 2, who, self_signed=issuer == "self_signed")
    await sb.append("ct", 1, {"email": "security@example.com"}, self_signed=issuer == "self_signed")
    async with env.open() as m:
        outcome = await m.check()
        assert outcome.errors == [] and outcome.alerts == []
    rows = [r for r in match_rows(env) if r[0] == "ct-sandbox"]
    assert {(r[2], r[3], r[5]) for r in rows} == {
        ("release", "untrusted", None),
        ("security-email", "untrusted", None),
    }
    assert len(rows) >= 3 and env.receiver.titles() == []


async def test_an_unreadable_entry_does_not_hide_the_certificates_after_it(env: Env) -> None:
    ct_config(env)
    sb = env.sandbox
    await sb.append("ct", 1, malformed=True)
    await sb.append("ct", 2, {"uri": OTHER, "issuer": GITHUB})
    async with env.open() as m:
        outcome = await m.check()
        assert outcome.errors == []
        assert alerts(outcome) == [
            ("unexpected_signer", "ct-sandbox", "release"),
            ("unreadable_entry", "ct-sandbox", None),
        ]


async def test_a_ct_log_is_scanned_in_this_process_whatever_scan_workers_says(env: Env) -> None:
    ct_config(env)
    set_scan_workers(env, 2)
    async with env.open() as m:
        assert m.scanners["tiles-sandbox"].workers == 2
        assert m.scanners["ct-sandbox"].workers == 1
