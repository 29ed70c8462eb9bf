"""Identity monitoring against the real sandbox: every new entry scanned, proven part of the
verified tree, matched against watch rules; unexpected signers alerted once; self-signed spam
recorded but not alerted; bad entries caught; a daemon killed mid-scan resumes exactly."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.cli.reports import matches_report
from monitor.sandbox import Sandbox
from monitor.service.sct_watch import CtLedger
from monitor.store.database import Store
from tests.integration.receivers import HttpReceiver
from tests.integration.test_engine import Env

ROOT = Path(__file__).resolve().parents[2]
REPO = "https://github.com/example/project"
RELEASE = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.0"
OTHER = f"{REPO}/.github/workflows/other.yml@refs/heads/main"
GITHUB = "https://token.actions.githubusercontent.com"

RULES = f"""
[[watch]]
name = "release"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/*"
allowed_signers = ["{REPO}/.github/workflows/release.yml@refs/tags/*"]

[[watch]]
name = "security-email"
issuer = "https://accounts.google.com"
email = "security@example.com"
"""


def scan_config(env: Env, *, v1: bool = False, start: int = 0, min_severity: str = "info") -> None:
    """The env's config with scanning on (tiles, and v1 when asked), the sandbox CA as the
    logs' Fulcio root, and the two rules above."""
    (env.dir / "ca.pem").write_bytes(env.sandbox.ca_pem)
    env.write_config(
        notify=(
            f'[[notify]]\nname = "ops"\nurls = ["{env.receiver.url("alerts")}"]\n'
            f'min_severity = "{min_severity}"\n' + RULES
        )
    )
    text = env.config_path.read_text()
    scan = f'scan = true\nstart = {start}\nfulcio_roots = "ca.pem"\n'
    text = text.replace(
        'origin = "sandbox.tiles.local"\n', f'origin = "sandbox.tiles.local"\n{scan}'
    )
    if v1:
        text = text.replace("views = []\n", f"views = []\n{scan}")
    env.config_path.write_text(text)


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    try:
        yield e
    finally:
        await receiver.stop()


async def populate(sb: Sandbox, log: str) -> dict[str, int]:
    """Noise around one entry of each kind; returns the index of each interesting entry."""
    await sb.append(log, 300)
    at = {}
    at["release"] = (await sb.append(log, 2, {"uri": RELEASE, "issuer": GITHUB})).first
    await sb.append(log, 257)
    at["other"] = (await sb.append(log, 1, {"uri": OTHER, "issuer": GITHUB})).first
    at["email"] = (await sb.append(log, 1, {"email": "security@example.com"})).first
    at["spam"] = (
        await sb.append(log, 1, {"email": "security@example.com"}, self_signed=True)
    ).first
    await sb.append(log, 40)
    return at


def matches(env: Env) -> list[tuple[str, int, str, str]]:
    with sqlite3.connect(env.dir / "monitor.db") as db:
        return [
            (r[0], r[1], r[2], r[3])
            for r in db.execute(
                "SELECT l.name, m.tree_index, m.rule, m.outcome FROM matches m "
                "JOIN logs l ON l.id = m.log_id ORDER BY l.name, m.tree_index, m.rule"
            )
        ]


@pytest.mark.parametrize("log", ["tiles", "v1"])
async def test_scan_finds_each_watched_identity_once(env: Env, log: str) -> None:
    scan_config(env, v1=log == "v1")
    name = "rekor-sandbox" if log == "v1" else "tiles-sandbox"
    at = await populate(env.sandbox, log)
    async with env.open() as m:
        outcome = await m.check()
        assert outcome.errors == []
        alerts = sorted((a.kind.value, a.details["log_index"]) for _, a in outcome.alerts)
        assert alerts == sorted(
            [
                ("identity_seen", at["release"]),
                ("identity_seen", at["release"] + 1),
                ("unexpected_signer", at["other"]),
                ("identity_seen", at["email"]),
            ]
        )
        unexpected = next(a for _, a in outcome.alerts if a.kind.value == "unexpected_signer")
        assert str(at["other"]) in unexpected.summary and OTHER in unexpected.summary
        # Polled again, and again after growth: nothing found twice.
        assert (await m.check()).alerts == []
        await env.sandbox.append(log, 100)
        assert (await m.check()).alerts == []
    found = [(i, rule, outcome) for n, i, rule, outcome in matches(env) if n == name]
    assert (at["spam"], "security-email", "untrusted") in found, "spam is recorded, not alerted"
    assert len(found) == 5
    titles = env.receiver.titles()
    assert titles.count(f"[HIGH] unexpected_signer: {name}, rule release") == 1


def backfill_in_workers(m: object, name: str) -> None:
    """Make the scanner of log `name` treat any backlog as a long backfill: two worker processes,
    small chunks so that several are in flight (as `BACKFILL` entries would be)."""
    scanner = m.scanners[name]  # type: ignore[attr-defined]
    scanner.backfill, scanner.workers, scanner.chunk = 0, 2, 128


async def test_backfill_in_worker_processes_finds_the_same_and_proves_every_entry(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "monitor.service.scanner")
    scan_config(env)
    at = await populate(env.sandbox, "tiles")
    env.sandbox.misbehave("tiles", "bad_entries")
    async with env.open() as m:
        backfill_in_workers(m, "tiles-sandbox")
        outcome = await m.check()
        assert [a.kind.value for _, a in outcome.alerts] == ["bad_entry"], "every chunk proven"
        state = m.store.store.log_state(2, "tiles")
        assert state is not None and state.scan_cursor == 0, "nothing committed past bad data"
        assert "in 2 worker processes" in caplog.text
        env.sandbox.reset()
        outcome = await m.check()
        assert outcome.errors == []
        alerts = sorted((a.kind.value, a.details["log_index"]) for _, a in outcome.alerts)
        assert alerts == sorted(
            [
                ("identity_seen", at["release"]),
                ("identity_seen", at["release"] + 1),
                ("unexpected_signer", at["other"]),
                ("identity_seen", at["email"]),
            ]
        )
        state = m.store.store.log_state(2, "tiles")
        assert state is not None and state.scan_cursor == state.verified_size
    found = [(i, rule, o) for n, i, rule, o in matches(env) if n == "tiles-sandbox"]
    assert (at["spam"], "security-email", "untrusted") in found and len(found) == 5


async def test_backfill_in_worker_processes_records_a_ledger_like_the_single_process_path(
    env: Env,
) -> None:
    """Both paths end each chunk in `Scanner._settle_chunk`: a scan that keeps a CT ledger
    records every proven leaf whichever path read it (the worker path once moved no cursor,
    its leaves never recorded)."""
    scan_config(env)
    await populate(env.sandbox, "tiles")
    async with env.open() as m:
        backfill_in_workers(m, "tiles-sandbox")
        m.scanners["tiles-sandbox"].ledger = CtLedger("tiles-sandbox", 2, b"\0" * 4, 0)
        outcome = await m.check()
        assert outcome.errors == []
        state = m.store.store.log_state(2, "tiles")
        assert state is not None and state.scan_cursor == state.verified_size
    with sqlite3.connect(env.dir / "monitor.db") as conn:
        indexes = [r[0] for r in conn.execute("SELECT tree_index FROM ct_leaves WHERE log_id = 2")]
    assert sorted(indexes) == list(range(state.verified_size))


async def test_scan_starts_at_latest_by_default_and_sees_only_new_entries(env: Env) -> None:
    scan_config(env)
    env.config_path.write_text(env.config_path.read_text().replace("start = 0\n", ""))
    await populate(env.sandbox, "tiles")
    async with env.open() as m:
        assert (await m.check()).alerts == [], "history before the first checkpoint is not scanned"
        at = (await env.sandbox.append("tiles", 1, {"uri": OTHER, "issuer": GITHUB})).first
        outcome = await m.check()
        assert [(a.kind.value, a.details["log_index"]) for _, a in outcome.alerts] == [
            ("unexpected_signer", at)
        ]


async def test_entries_that_do_not_hash_into_the_tree_are_bad_entry(env: Env) -> None:
    scan_config(env)
    await env.sandbox.append("tiles", 10)
    async with env.open() as m:
        await m.check()
        env.sandbox.misbehave("tiles", "bad_entries")
        await env.sandbox.append("tiles", 20, {"uri": OTHER, "issuer": GITHUB})
        outcome = await m.check()
        assert [a.kind.value for _, a in outcome.alerts] == ["bad_entry"]
        assert (await m.check()).alerts == [], "the same bad range is one fact"
        cursor = m.store.store.log_state(2, "tiles")
        assert cursor is not None and cursor.scan_cursor == 10, "the cursor stays before bad data"
        env.sandbox.reset()
        outcome = await m.check()
        assert sorted(a.kind.value for _, a in outcome.alerts) == ["unexpected_signer"] * 20


def _scan_position(db_path: Path) -> tuple[int | None, int | None, int | None]:
    """(scan cursor, pending deliveries, delivered deliveries) of the tiles log, read-only;
    the counts are None when the database cannot be read (unknown is not zero)."""
    try:
        with sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT scan_cursor FROM log_state WHERE tree_id = 'tiles'").fetchone()
            counts = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
    except sqlite3.Error:
        return None, None, None
    return (None if row is None else row[0]), counts.get("pending", 0), counts.get("delivered", 0)


async def test_sigkill_mid_scan_resumes_without_skipping_or_repeating(env: Env) -> None:
    """Kill -9 the daemon at random points of a long scan, many times; in the end every entry
    was scanned once, every unexpected signer alerted once and delivered once."""
    scan_config(env, min_severity="high")
    rng = random.Random(20261123)
    expected: list[int] = []
    for _ in range(12):
        await env.sandbox.append("tiles", rng.randrange(200, 2000))
        expected.append(
            (await env.sandbox.append("tiles", 1, {"uri": OTHER, "issuer": GITHUB})).first
        )
    total = env.sandbox.state()["tiles"]["treeSize"]
    # Slow bundle answers make the scan last long enough to be killed in the middle.
    env.sandbox.misbehave("tiles", "slow", delay=0.4)
    db_path = env.dir / "monitor.db"
    kills = mid_scan = 0

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.cli.main", "--config", str(env.config_path), "run",
            cwd=env.dir,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    loop = asyncio.get_running_loop()

    async def scanning(since: int | None) -> int | None:
        """Wait until this run has committed scan progress past `since` and no send is between
        the receiver and the database (everything received is marked delivered: a kill there
        would repeat the send, at-least-once at the transport, documented); the cursor then, or
        None if that did not happen in time."""
        until = loop.time() + 30
        while loop.time() < until:
            cursor, _, delivered = _scan_position(db_path)
            settled = delivered == len(env.receiver.titles())
            if cursor is not None and cursor != since and settled:
                return cursor
            await asyncio.sleep(0.05)
        return None

    deadline = loop.time() + 90
    cursor: int | None = None
    while loop.time() < deadline:
        proc = await start()
        try:
            # Progress first (startup time varies with load), then a random point of the scan.
            if await scanning(cursor) is None:
                continue
            await asyncio.sleep(rng.uniform(0.0, 0.8))
            cursor = await scanning(None)
            if cursor is None or cursor >= total:
                break
            proc.send_signal(signal.SIGKILL)
            kills += 1
            mid_scan += 0 < cursor < total
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        if kills >= 6:
            break
    env.sandbox.reset()
    proc = await start()
    try:
        while loop.time() < deadline + 60:
            position, pending, _ = _scan_position(db_path)
            if position == total and pending == 0:
                break
            await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert mid_scan >= 2, f"only {mid_scan} of {kills} kills hit a scan: the test proves little"
    assert _scan_position(db_path)[:2] == (total, 0)
    found = [(i, o) for n, i, rule, o in matches(env) if rule == "release"]
    assert found == [(i, "unexpected_signer") for i in expected]
    assert env.receiver.titles().count(
        "[HIGH] unexpected_signer: tiles-sandbox, rule release"
    ) == len(expected)


async def test_shard_rollover_drains_the_old_shard(env: Env) -> None:
    """Entries appended to a v1 shard after the last poll and before it froze are still scanned
    (up to the frozen shard's final checkpoint), and the new shard is scanned from its start."""
    scan_config(env, v1=True)
    sb = env.sandbox
    await sb.append("v1", 20)
    async with env.open() as m:
        assert (await m.check()).alerts == []
        late = (await sb.append("v1", 1, {"uri": OTHER, "issuer": GITHUB})).first
        await sb.append("v1", 5)
        await sb.rotate()
        await sb.append("v1", 3)
        fresh = (await sb.append("v1", 1, {"uri": OTHER, "issuer": GITHUB})).first
        outcome = await m.check()
        assert outcome.errors == []
        found = sorted(
            a.details["log_index"] for _, a in outcome.alerts if a.kind.value == "unexpected_signer"
        )
        assert found == [late, fresh]
        assert (await m.check()).alerts == []
    with sqlite3.connect(env.dir / "monitor.db") as db:
        trees = db.execute(
            "SELECT verified_size, scan_cursor FROM log_state s JOIN logs l ON l.id = s.log_id "
            "WHERE l.name = 'rekor-sandbox' ORDER BY s.rowid"
        ).fetchall()
    assert trees == [(26, 26), (4, 4)], "each shard scanned to its verified end"
    # Matches keep the index in the tree (the fact) and the global one (what users look up).
    store = Store.open_readonly(env.dir / "monitor.db")
    try:
        rows = matches_report(store, rule="release").rows
    finally:
        store.close()
    assert sorted((r["tree_index"], r["log_index"]) for r in rows) == [(3, fresh), (20, late)]
