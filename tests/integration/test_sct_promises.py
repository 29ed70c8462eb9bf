"""sct_not_incorporated against the sandbox, all real: the sandbox CA embeds SCTs of its CT log
(as Fulcio does), a scanned tiled log shows the certificates, a scanned `type = "ct"` log shows
what the CT log incorporated; the sandbox's and the monitor's clocks are driven, never slept."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.core.sct import embedded_scts, precert_tbs
from monitor.sandbox import Sandbox
from monitor.sandbox.ca import Identity
from monitor.service.daemon import CheckOutcome, open_monitor
from tests.helpers import monitor_table, tiles_pem

EMAIL = "security@example.com"
RULE = f"""
[[watch]]
name = "security-email"
issuer = "https://accounts.google.com"
email = "{EMAIL}"
"""


class Clock:
    """One clock for the sandbox (seconds) and the monitor (datetime)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def seconds(self) -> float:
        return self.now.timestamp()

    def __call__(self) -> datetime:
        return self.now

    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Clock, Path]]:
    clock = Clock()
    sb = Sandbox(tmp_path / "sandbox-state", clock=clock.seconds)
    await sb.start("127.0.0.1", 0)
    try:
        yield sb, clock, tmp_path
    finally:
        await sb.stop()


def write_config(sb: Sandbox, directory: Path, *, ct: bool = True) -> Path:
    (directory / "ca.pem").write_bytes(sb.ca_pem)
    (directory / "tiles.pem").write_text(tiles_pem(sb))
    (directory / "ct.pem").write_bytes(sb.ct_public_key_pem)
    ct_log = f"""
[[log]]
name = "ct-sandbox"
type = "ct"
url = "{sb.ct_url}"
public_key = "ct.pem"
scan = true
start = 0
"""
    path = directory / "config.toml"
    path.write_text(
        monitor_table(request_timeout="5s")
        + f"""
[[log]]
name = "tiles"
type = "tiles"
url = "{sb.tiles_url}"
public_key = "tiles.pem"
origin = "sandbox.tiles.local"
scan = true
start = 0
fulcio_roots = "ca.pem"
"""
        + (ct_log if ct else "")
        + RULE
    )
    return path


def of_kind(outcome: CheckOutcome, kind: str) -> list[str]:
    return [a.summary for _, a in outcome.alerts if a.kind.value == kind]


async def test_the_sandbox_ca_embeds_an_sct_of_its_ct_log_for_the_logged_precertificate(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    sb, _, _ = env
    signer = sb.core.ca.signer(Identity(email=EMAIL))
    (sct,) = embedded_scts(signer.cert_der)
    assert sb.state()["ct"]["treeSize"] == 1
    body = sb.core.ct.body(0)
    assert precert_tbs(signer.cert_der) in body and sct.timestamp.to_bytes(8, "big") in body


async def test_kept_promise_is_silent_and_a_broken_one_alerts_once_after_the_merge_delay(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    sb, clock, directory = env
    config = load_config(write_config(sb, directory))
    async with open_monitor(config, clock=clock) as m:
        await sb.append("tiles", 3, {"email": EMAIL})
        first = await m.check()
        assert of_kind(first, "identity_seen")
        # The CT log incorporated the precertificate: nothing, even a day later.
        clock.now += timedelta(hours=25)
        await sb.append("ct", 1)
        assert of_kind(await m.check(), "sct_not_incorporated") == []

        # A CT log that signs SCTs but never adds the precertificates.
        sb.misbehave("ct", "unincorporated")
        sb.core.ca._cache.clear()  # the next append gets a fresh certificate
        await sb.append("tiles", 1, {"email": EMAIL})
        assert len(sb.core.unincorporated) == 1
        sb.reset()
        assert of_kind(await m.check(), "sct_not_incorporated") == []
        clock.now += timedelta(hours=23)
        await sb.append("ct", 1)
        assert of_kind(await m.check(), "sct_not_incorporated") == []
        clock.now += timedelta(hours=2)
        await sb.append("ct", 1)
        broken = await m.check()
        assert len(of_kind(broken, "sct_not_incorporated")) == 1
        (alert,) = [a for _, a in broken.alerts if a.kind.value == "sct_not_incorporated"]
        assert alert.severity.value == "critical"
        assert alert.details["sct"]["timestamp_ms"]  # type: ignore[index]
        assert alert.details["certificate"] and alert.details["ct_log_key"]
        clock.now += timedelta(hours=1)
        await sb.append("ct", 1)
        assert of_kind(await m.check(), "sct_not_incorporated") == []


async def test_an_sct_of_a_log_that_is_not_monitored_is_never_alerted(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    sb, clock, directory = env
    config = load_config(write_config(sb, directory, ct=False))
    sb.misbehave("ct", "unincorporated")
    async with open_monitor(config, clock=clock) as m:
        await sb.append("tiles", 2, {"email": EMAIL})
        assert of_kind(await m.check(), "identity_seen")
        clock.now += timedelta(days=3)
        await sb.append("tiles", 1)
        outcome = await m.check()
        assert of_kind(outcome, "sct_not_incorporated") == []


async def test_a_ct_log_keyed_by_a_trust_root_is_watched_for_promises(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    """A scanned ct log whose key comes from `trust_root` (not `public_key`) is one whose SCTs
    the scans of other logs keep as promises, under the trusted root's log ID."""
    from monitor.config.trust_roots import trusted_ct_logs

    sb, clock, directory = env
    path = write_config(sb, directory, ct=False)
    fulcio = "https://ctfe.sigstore.dev/2022"
    path.write_text(
        path.read_text() + f'\n[[log]]\nname = "fulcio-ct"\ntype = "ct"\nurl = "{fulcio}"\n'
        'trust_root = "production"\nscan = true\n'
    )
    (trusted,) = [ct for ct in trusted_ct_logs("production") if ct.base_url == fulcio]
    async with open_monitor(load_config(path), clock) as m:
        scts = m.scanners["tiles"].scts
        assert scts is not None
        (ct_log,) = scts.ct_logs.values()
        assert (ct_log.name, ct_log.key, ct_log.key_id) == (
            "fulcio-ct",
            trusted.key,
            trusted.log_id,
        )
        assert m.scanners["fulcio-ct"].ledger is not None


def write_search_config(sb: Sandbox, directory: Path) -> Path:
    """A Rekor v1 log searched (never scanned) for the rule's email, and the scanned ct log."""
    path = write_config(sb, directory)
    (directory / "v1.pem").write_bytes(sb.v1_public_key_pem)
    text = path.read_text()
    tiles = text.index('[[log]]\nname = "tiles"')
    ct = text.index('[[log]]\nname = "ct-sandbox"')
    # The sandbox serves its v1 and ct logs at one URL, and a URL names one log: another name.
    v1 = f"""[[log]]
name = "rekor"
type = "rekor-v1"
url = "{sb.url.replace("127.0.0.1", "localhost")}"
public_key = "v1.pem"
origin = "{sb.v1_key_name}"
fulcio_roots = "ca.pem"

"""
    path.write_text(text[:tiles] + v1 + text[ct:])
    return path


async def test_promises_of_certificates_the_v1_search_finds_are_kept_and_judged(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    """SCTs in certificates of entries the Rekor v1 index search finds are promises too (the
    scanner's hook, not a copy): kept when the CT log has the leaf, alerted once when not."""
    sb, clock, directory = env
    config = load_config(write_search_config(sb, directory))
    assert [log.name for log in config.logs] == ["rekor", "ct-sandbox"]
    async with open_monitor(config, clock=clock) as m:
        assert "rekor" in m.searchers and "rekor" not in m.scanners
        await m.check()
        await sb.append("v1", 1, {"email": EMAIL})
        first = await m.check()
        assert of_kind(first, "identity_seen")
        with sqlite3.connect(directory / "monitor.db") as db:
            rows = db.execute("SELECT state, evidence FROM sct_promises").fetchall()
        assert [r[0] for r in rows] == ["incorporated"]
        assert '"found_in": "rekor entry ' in rows[0][1]

        # Another certificate, at the same time (valid when its entry is integrated: the
        # sandbox's CA issues by the real clock), whose precertificate the CT log never adds.
        sb.misbehave("ct", "unincorporated")
        sb.core.ca._cache.clear()  # the next append gets a fresh certificate
        await sb.append("v1", 1, {"email": EMAIL})
        sb.reset()
        assert of_kind(await m.check(), "sct_not_incorporated") == []
        clock.now += timedelta(hours=25)
        await sb.append("ct", 1)
        broken = await m.check()
        # The kept promise raises nothing; the broken one is alerted, once.
        (summary,) = of_kind(broken, "sct_not_incorporated")
        assert "ct-sandbox" in summary
        clock.now += timedelta(hours=1)
        await sb.append("ct", 1)
        assert of_kind(await m.check(), "sct_not_incorporated") == []

        # A certificate that was not valid when its entry was integrated (the CA's clock is now
        # 26 hours behind the log's) does not chain: its SCTs are not read (each costs a
        # signature check, and anyone can put entries of untrusted certificates in Rekor).
        sb.core.ca._cache.clear()
        await sb.append("v1", 1, {"email": EMAIL})
        assert of_kind(await m.check(), "identity_seen") == []
        with sqlite3.connect(directory / "monitor.db") as db:
            assert db.execute("SELECT count(*) FROM sct_promises").fetchone()[0] == 2


def ct_leaf_rows(directory: Path) -> list[tuple[int, int | None]]:
    """(tree_index, entry_ms) of every kept leaf of the scanned ct log."""
    with sqlite3.connect(directory / "monitor.db") as db:
        return [
            (int(r[0]), r[1])
            for r in db.execute("SELECT tree_index, entry_ms FROM ct_leaves ORDER BY tree_index")
        ]


def promise_states(directory: Path) -> list[str]:
    with sqlite3.connect(directory / "monitor.db") as db:
        return [str(r[0]) for r in db.execute("SELECT state FROM sct_promises ORDER BY id")]


async def test_old_leaves_are_pruned_and_a_late_promise_for_one_is_unknowable_not_alerted(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    """The scan of a ct log keeps the leaves of the last 8 days only (merge delay + 7 days): a
    certificate first seen in Rekor after its leaf was pruned is unknowable (never alerted),
    while one seen in time is still found incorporated."""
    sb, clock, directory = env
    config = load_config(write_config(sb, directory))
    async with open_monitor(config, clock=clock) as m:
        # A certificate is issued (its precertificate logged to CT) but not yet used in Rekor.
        old = sb.core.ca.signer(Identity(email=EMAIL))
        (old_sct,) = embedded_scts(old.cert_der)
        await sb.append("ct", 1)
        await m.check()
        before = ct_leaf_rows(directory)
        assert {ms for _, ms in before} == {old_sct.timestamp} and len(before) >= 2
        clock.now += timedelta(days=8, minutes=1)
        await sb.append("ct", 1)
        await m.check()
        rows = ct_leaf_rows(directory)
        assert rows == [(len(before), clock.now_ms())], "leaves older than the window are pruned"
        with sqlite3.connect(directory / "monitor.db") as db:
            (since,) = db.execute("SELECT since_ms FROM ct_coverage").fetchone()
        assert since >= old_sct.timestamp

        # The old certificate now shows up in Rekor: its SCT predates what the scan keeps.
        await sb.append("tiles", 1, {"email": EMAIL})
        assert of_kind(await m.check(), "identity_seen")
        assert promise_states(directory) == ["unknowable"]
        for _ in range(3):
            clock.now += timedelta(days=1)
            await sb.append("ct", 1)
            assert of_kind(await m.check(), "sct_not_incorporated") == []

        # A fresh certificate, its leaf kept: the promise still resolves.
        sb.core.ca._cache.clear()
        await sb.append("tiles", 1, {"email": EMAIL})
        await m.check()
        assert promise_states(directory) == ["unknowable", "incorporated"]


async def test_a_pending_promise_is_judged_after_pruning_and_rows_stay_bounded(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    """Over 24 days of a growing ct log, the kept leaves stay within the window (counted), a
    promise the log keeps late is still found incorporated, and a broken one still alerts."""
    sb, clock, directory = env
    config = load_config(write_config(sb, directory))
    per_step, step, steps = 50, timedelta(days=1), 24
    counts: list[int] = []
    async with open_monitor(config, clock=clock) as m:
        sb.misbehave("ct", "unincorporated")
        await sb.append("tiles", 1, {"email": EMAIL})
        sb.reset()
        broken: list[str] = []
        for _ in range(steps):
            clock.now += step
            await sb.append("ct", per_step)
            broken += of_kind(await m.check(), "sct_not_incorporated")
            counts.append(len(ct_leaf_rows(directory)))
        assert len(broken) == 1
        # 8 days of steps (and the one in flight) at most: not the 1,200 leaves appended.
        window = (8 + 2) * per_step
        assert sb.state()["ct"]["treeSize"] >= steps * per_step
        assert max(counts) <= window and counts[-1] <= window
        assert promise_states(directory) == ["alerted"]
        sb.core.ca._cache.clear()
        await sb.append("tiles", 1, {"email": EMAIL})
        await m.check()
        assert promise_states(directory) == ["alerted", "incorporated"]


async def test_a_database_that_scanned_the_ct_log_before_leaves_were_recorded_alerts_nothing(
    env: tuple[Sandbox, Clock, Path],
) -> None:
    """R1 finding 4: a database whose ct log scan moved past entries without recording their
    leaves (scanned before migration 004) does not accuse the log of leaves it never read."""
    sb, clock, directory = env
    path = write_config(sb, directory)
    signer = sb.core.ca.signer(Identity(email=EMAIL))
    assert embedded_scts(signer.cert_der)
    async with open_monitor(load_config(path), clock=clock) as m:
        await sb.append("ct", 1)
        await m.check()
    with sqlite3.connect(directory / "monitor.db") as db:
        db.execute("DELETE FROM ct_leaves")
        db.execute("DELETE FROM ct_coverage")
    async with open_monitor(load_config(path), clock=clock) as m:
        await sb.append("tiles", 1, {"email": EMAIL})
        assert of_kind(await m.check(), "identity_seen")
        for _ in range(3):
            clock.now += timedelta(hours=13)
            await sb.append("ct", 1)
            assert of_kind(await m.check(), "sct_not_incorporated") == []
    assert promise_states(directory) == ["unknowable"]
    with sqlite3.connect(directory / "monitor.db") as db:
        (from_index,) = db.execute("SELECT from_index FROM ct_coverage").fetchone()
    assert from_index > 0
