"""Identity monitoring against the real sandbox: every new entry scanned, proven part of the
verified tree, matched against watch rules; unexpected signers alerted once; self-signed spam
recorded but not alerted; bad entries caught; a daemon killed mid-scan resumes exactly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.cli.reports import matches_report
from monitor.core.note import Rfc6962NoteVerifier
from monitor.core.watch.prefilter import PreFilter
from monitor.sandbox import Sandbox
from monitor.service import scanner as scanner_module
from monitor.service import worker_pool
from monitor.service.chunk_slots import examine_shared
from monitor.service.daemon import CheckOutcome
from monitor.service.sct_watch import CtLedger
from monitor.service.worker_pool import WorkerPool
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


def found_alerts(outcome: CheckOutcome) -> list[tuple[str, int]]:
    """(kind, log index) of each alert a check raised, sorted."""
    return sorted((a.kind.value, a.details["log_index"]) for _, a in outcome.alerts)


def expected_alerts(at: dict[str, int]) -> list[tuple[str, int]]:
    """What a scan of the entries `populate` appended raises: both release entries and the
    e-mail seen, the other workflow an unexpected signer (the self-signed spam recorded only)."""
    return sorted(
        [
            ("identity_seen", at["release"]),
            ("identity_seen", at["release"] + 1),
            ("unexpected_signer", at["other"]),
            ("identity_seen", at["email"]),
        ]
    )


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
        assert found_alerts(outcome) == expected_alerts(at)
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


@pytest.mark.parametrize("log", ["tiles", "v1"])
async def test_backfill_in_worker_processes_finds_the_same_and_proves_every_entry(
    env: Env, caplog: pytest.LogCaptureFixture, log: str
) -> None:
    """Workers read a tiled log's bundles, or a v1 log's bodies, from shared memory."""
    caplog.set_level(logging.INFO, "monitor.service.scanner")
    scan_config(env, v1=log == "v1")
    name = "rekor-sandbox" if log == "v1" else "tiles-sandbox"
    at = await populate(env.sandbox, log)
    async with env.open() as m:
        backfill_in_workers(m, name)
        log_id = m.scanners[name].log_id
        if log == "tiles":  # (a v1 client refuses a tampered body itself, by its UUID)
            env.sandbox.misbehave(log, "bad_entries")
            outcome = await m.check()
            kinds = [a.kind.value for _, a in outcome.alerts]
            assert kinds == ["bad_entry"], "every chunk proven"
            (state,) = m.store.store.log_states(log_id)
            assert state.scan_cursor == 0, "nothing committed past bad data"
            env.sandbox.reset()
        outcome = await m.check()
        assert outcome.errors == []
        assert "in 2 worker processes" in caplog.text
        assert found_alerts(outcome) == expected_alerts(at)
        (state,) = m.store.store.log_states(log_id)
        assert state.scan_cursor == state.verified_size
    found = [(i, rule, o) for n, i, rule, o in matches(env) if n == name]
    assert (at["spam"], "security-email", "untrusted") in found and len(found) == 5


async def test_backfill_goes_on_in_this_process_when_its_workers_are_killed(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers killed (out of memory, an operator) as they start, and any started after: every
    chunk is examined here instead, from its bytes still in shared memory; the same matches,
    every entry proven."""
    caplog.set_level(logging.INFO, "monitor.service.scanner")
    scan_config(env)
    at = await populate(env.sandbox, "tiles")
    async with env.open() as m:
        backfill_in_workers(m, "tiles-sandbox")
        check = asyncio.create_task(m.check())
        killed = 0
        while not check.done():
            for child in multiprocessing.active_children():
                if child.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)
                        killed += 1
            await asyncio.sleep(0.001)
        outcome = await check
        assert killed and "a scan worker process died; going on without" in caplog.text
        assert outcome.errors == []
        assert found_alerts(outcome) == expected_alerts(at)
        (state,) = m.store.store.log_states(m.scanners["tiles-sandbox"].log_id)
        assert state.scan_cursor == state.verified_size


class _HinderedPool(ProcessPoolExecutor):
    """A real pool failing as CPython's can while its workers die (`how`)."""

    how = ""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.how == "failing to start" and fn is os.getpid:
            raise OSError("Resource temporarily unavailable")
        if self.how == "refusing work" and fn is examine_shared:
            raise OSError("handle is closed")  # not BrokenProcessPool
        if self.how == "never answering" and fn is examine_shared:
            # A worker dies and the job is left unresolved, as the manager thread's race with
            # a submit leaves it.
            for process in list(getattr(self, "_processes", {}).values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
            return Future()
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize(
    "hindrance", ["huge chunks", "failing to start", "refusing work", "never answering"]
)
async def test_backfill_examines_chunks_here_when_workers_cannot_have_them(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, hindrance: str
) -> None:
    """Chunks the workers cannot have are examined in this process, with the same results and
    no scan error:
    - huge chunks: a log of huge entries cannot make a backfill hold `workers + 3` chunks at
      once, nor grow the shared memory past its cap (both thresholds at one byte: each chunk is
      examined here, the next fetched only once the last is committed);
    - workers failing to start (no processes left): this backfill runs here, the next one
      tries workers again;
    - a pool that fails to take a chunk (its worker dying as it is handed one) broke;
    - a job never answered while a worker is dead: the pool broke (it waited forever)."""
    caplog.set_level(logging.INFO, "monitor.service")
    monkeypatch.setattr(worker_pool, "CHECK_SECONDS", 0.05)
    if hindrance == "huge chunks":
        monkeypatch.setattr(scanner_module, "SLOT_MAX_BYTES", 1)
        monkeypatch.setattr(scanner_module, "BACKFILL_HELD_BYTES", 1)
    else:
        monkeypatch.setattr(_HinderedPool, "how", hindrance)
        monkeypatch.setattr(worker_pool, "ProcessPoolExecutor", _HinderedPool)
    scan_config(env)
    at = await populate(env.sandbox, "tiles")
    async with env.open() as m:
        backfill_in_workers(m, "tiles-sandbox")
        outcome = await asyncio.wait_for(m.check(), 60)
        assert outcome.errors == []
        assert found_alerts(outcome) == expected_alerts(at)
        (state,) = m.store.store.log_states(m.scanners["tiles-sandbox"].log_id)
        assert state.scan_cursor == state.verified_size
        assert m.scanners["tiles-sandbox"].workers == 2
    if hindrance in ("refusing work", "never answering"):
        assert "a scan worker process died; going on without" in caplog.text
    if hindrance == "failing to start":
        assert caplog.text.count("failed to start (Resource temporarily unavailable)") == 1
        assert "going on from the fresh cursor" not in caplog.text  # no second commit


async def test_backfill_of_huge_chunks_holds_one_at_a_time(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log of huge entries is read one chunk at a time (both thresholds at one byte, as
    above), and a chunk is let go of before the next is fetched: what stays held while the
    event loop waits (measured with tracemalloc at every turn of it) is about one chunk, not
    two (the scan and the feeder each held on to the last chunk until the next arrived)."""
    monkeypatch.setattr(scanner_module, "SLOT_MAX_BYTES", 1)
    monkeypatch.setattr(scanner_module, "BACKFILL_HELD_BYTES", 1)
    scan_config(env)
    await env.sandbox.append("tiles", 1024)  # two chunks of small entries, fetched together
    await env.sandbox.append("tiles", 1536, {"uri": "https://example.com/" + "a" * 10_000})
    url = f"{env.sandbox.tiles_url}/tile/entries/004"
    async with aiohttp.ClientSession() as http, http.get(url) as bundle:
        chunk_bytes = 2 * len(await bundle.read())  # a chunk: two full bundles
    held = 0

    async def watch() -> None:
        nonlocal held
        while True:
            held = max(held, tracemalloc.get_traced_memory()[0])
            await asyncio.sleep(0)

    async with env.open() as m:
        scanner = m.scanners["tiles-sandbox"]
        scanner.backfill, scanner.workers, scanner.chunk = 0, 2, 512
        tracemalloc.start()
        watching = asyncio.create_task(watch())
        try:
            outcome = await m.check()
        finally:
            watching.cancel()
            tracemalloc.stop()
        assert outcome.errors == []
        (state,) = m.store.store.log_states(scanner.log_id)
        assert state.scan_cursor == state.verified_size == 2560
    assert chunk_bytes > 4 << 20 and held < 1.5 * chunk_bytes


@pytest.mark.parametrize("broken", [False, True])
def test_closing_a_broken_pool_kills_its_processes(broken: bool) -> None:
    """Closing a pool that broke kills its processes rather than trusting CPython to stop them
    (one a submit racing the pool breaking started is never stopped, and the interpreter waits
    for it at exit); a pool that did not break lets its workers exit."""
    pool = WorkerPool(2, PreFilter([]))
    processes = pool._processes
    assert len(processes) == 2 and all(p.is_alive() for p in processes)
    pool.broken = broken
    pool.close()
    deadline = time.monotonic() + 30
    while any(p.exitcode is None for p in processes) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [p.exitcode for p in processes] == [-signal.SIGKILL if broken else 0] * 2


# A main script that imports much, as the `tlog-monitor` script imports the whole daemon; it
# prints whether a worker process of the given context has the aiohttp extension mapped.
_HEAVY_MAIN = """
import multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
import aiohttp
from monitor.service.worker_pool import worker_context

if __name__ == "__main__":
    spawn = sys.argv[1] == "spawn"
    context = multiprocessing.get_context("spawn") if spawn else worker_context()
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pid = pool.submit(os.getpid).result()
        with open(f"/proc/{pid}/maps") as maps:
            print("aiohttp" in maps.read())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/<pid>/maps")
def test_worker_processes_do_not_run_the_main_script(tmp_path: Path) -> None:
    """Spawn runs the parent's main script in each worker first (`spawn`: the worker maps
    aiohttp); the scanner's workers skip it, importing only what they run."""
    script = tmp_path / "main.py"
    script.write_text(_HEAVY_MAIN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for context, expected in (("spawn", "True"), ("worker", "False")):
        done = subprocess.run(
            [sys.executable, str(script), context],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout.strip() == expected, (context, done.stderr)


async def test_a_scan_keeping_a_ct_ledger_never_uses_worker_processes(
    env: Env,
) -> None:
    """A scan that keeps a CT ledger records every proven leaf: its backlog is never handed to
    worker processes, which keep no leaf hashes (that path once moved the cursor past leaves
    it never recorded)."""
    scan_config(env)
    await populate(env.sandbox, "tiles")
    async with env.open() as m:
        backfill_in_workers(m, "tiles-sandbox")
        key = Rfc6962NoteVerifier(
            "tiles-sandbox", ec.generate_private_key(ec.SECP256R1()).public_key()
        )
        m.scanners["tiles-sandbox"].ledger = CtLedger("tiles-sandbox", 2, key, 0)
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


# --- [monitor] scan_workers ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def set_scan_workers(env: Env, workers: int) -> None:
    """Put `scan_workers = workers` in the env's `[monitor]` table."""
    text = env.config_path.read_text()
    assert text.count("[monitor]\n") == 1
    env.config_path.write_text(
        text.replace("[monitor]\n", f"[monitor]\nscan_workers = {workers}\n")
    )


async def test_scan_workers_reaches_every_rekor_scanner_and_a_reload_changes_it(env: Env) -> None:
    scan_config(env, v1=True)
    set_scan_workers(env, 2)
    async with env.open() as m:
        assert m.scanners["tiles-sandbox"].workers == 2
        assert m.scanners["rekor-sandbox"].workers == 2
    # A reload opens the monitor again from the file as it is then: the next scan's value.
    env.config_path.write_text(env.config_path.read_text().replace("scan_workers = 2\n", ""))
    async with env.open() as m:
        assert m.scanners["tiles-sandbox"].workers == 1
        assert m.scanners["rekor-sandbox"].workers == 1


# Run in a mount namespace of its own whose /dev/shm is read-only: the monitor from the config
# at argv[1], its tiles log's backlog treated as a long backfill (as `BACKFILL` entries would be).
_READ_ONLY_SHM_CHECK = """
import asyncio, json, sys
from pathlib import Path
from monitor.config.settings import load_config
from monitor.service.daemon import open_monitor

async def main() -> None:
    async with open_monitor(load_config(Path(sys.argv[1]))) as m:
        scanner = m.scanners["tiles-sandbox"]
        scanner.backfill, scanner.chunk = 0, 128
        outcome = await m.check()
        state = m.store.store.log_state(scanner.log_id, "tiles")
        print(json.dumps({
            "workers": scanner.workers,
            "errors": outcome.errors,
            "alerts": sorted([a.kind.value, a.details["log_index"]] for _, a in outcome.alerts),
            "scanned": state is not None and state.scan_cursor == state.verified_size,
        }))

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("mount", "workers", "warning"),
    [
        # The shipped unit's `ReadOnlyPaths=-/dev/shm`: no worker process can be made there.
        (
            "mount -o remount,ro,bind /dev/shm",
            1,
            "[monitor] scan_workers = 2: no shared memory for the scan's worker processes",
        ),
        # A /dev/shm with room for the pool's semaphores but not for a chunk (a container's
        # small one): the chunk's pages are reserved before they are written, so this is an
        # error answered by scanning here, not a SIGBUS killing the daemon.
        (
            "mount -t tmpfs -o size=128k tmpfs /dev/shm",
            2,
            "tiles-sandbox: no shared memory for the scan's worker processes",
        ),
    ],
    ids=["read-only", "full"],
)
async def test_without_usable_shared_memory_the_scan_goes_on_in_this_process(
    env: Env, mount: str, workers: int, warning: str
) -> None:
    """Where worker processes cannot share memory, the scan runs in this process (one
    warning) and finds the same, rather than failing."""
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare(1) to mount /dev/shm in a namespace")
    scan_config(env)
    set_scan_workers(env, 2)
    at = await populate(env.sandbox, "tiles")
    script = f'{mount} || exit 77; exec "$@"'
    check = [sys.executable, "-c", _READ_ONLY_SHM_CHECK, str(env.config_path)]
    done = await _run([unshare, "-m", "sh", "-c", script, "sh", *check])
    if done.returncode == 77:
        pytest.skip(f"cannot mount /dev/shm here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["errors"] == []
    assert result["workers"] == workers
    warnings = [line for line in done.stderr.splitlines() if "no shared memory" in line]
    assert len(warnings) == 1, done.stderr
    assert warning in warnings[0]
    assert "scanning in this process" in warnings[0]
    assert [tuple(a) for a in result["alerts"]] == expected_alerts(at)
    assert result["scanned"], "every entry scanned and proven"


async def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`argv` run from the checkout (so it imports this tree's `monitor`), without blocking the
    event loop that serves the sandbox."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
