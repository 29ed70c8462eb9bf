"""The database fails under the monitor: held locked by another process, read-only, full (a file
size limit, RLIMIT_FSIZE, the unprivileged way to fill a disk). Each time: a clear error naming
the database, exit code 3 (never 1, which means "alert"), no traceback, the daemon alive, and a
sound database that the next honest pass brings to the log's state."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.service.daemon import open_monitor
from tests.faults.conftest import Hostile
from tests.faults.harness import (
    WATCHED,
    Tally,
    integrity,
    match_count,
    states,
    urgent_alerts,
)

ROOT = Path(__file__).resolve().parents[2]
EXIT_OPERATIONAL = 3


async def monitor_cli(
    config: Path,
    *args: str,
    preexec: Callable[[], None] | None = None,
    wrapper: Sequence[str] = (),
) -> asyncio.subprocess.Process:
    """`tlog-monitor --config CONFIG ARGS...` as a subprocess (under `wrapper`, a command
    prefix), stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        *wrapper, sys.executable, "-m", "monitor.cli.main", "--config", str(config), *args,
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
             "HOME": str(config.parent)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60) -> tuple[int, str]:
    """Exit code and stderr of a finished subprocess."""
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def honest_pass(env: Hostile, config: Path | None = None) -> None:
    """One in-process check that must succeed and leave the log's own state."""
    async with open_monitor(load_config(config or env.config_path)) as m:
        outcome = await m.check()
        assert outcome.errors == []
    db = (config or env.config_path).parent / "monitor.db"
    st = env.sandbox.state()
    tiles = st["tiles"]
    assert isinstance(tiles, dict)
    final = {log: s[0] for (log, _), s in states(db).items()}
    assert final["tiles"] == tiles["treeSize"]
    assert integrity(db) == "ok"
    total, distinct = match_count(db)
    assert total == distinct
    assert urgent_alerts(db) == []


async def populate(env: Hostile) -> None:
    await env.sandbox.append("v1", 5)
    await env.sandbox.append("tiles", 600)
    await env.sandbox.append("tiles", 1, WATCHED)


def hold_write_lock(db: Path, release: threading.Event) -> threading.Thread:
    """Another writer (a thread with its own connection) holding the write lock until
    `release` is set (at most a minute)."""
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            ready.set()
            release.wait(60)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(30), "could not take the write lock"
    return thread


async def caught_up(env: Hostile, timeout: float = 30) -> None:
    """Wait until the monitor's database holds the tiled log's true size, verified and scanned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tiles = env.sandbox.state()["tiles"]
        assert isinstance(tiles, dict)
        found = [(s[0], s[3]) for (log, _), s in states(env.db).items() if log == "tiles"]
        if found == [(tiles["treeSize"], tiles["treeSize"])]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the monitor did not catch up")


async def test_database_locked_by_another_writer(hostile: Hostile, tally: Tally) -> None:
    env = hostile
    figures = tally.scenario("database locked by another writer")
    await populate(env)
    await honest_pass(env)

    # Locked briefly: the busy timeout rides it out.
    await env.sandbox.append("tiles", 300)
    await env.sandbox.append("tiles", 1, WATCHED)
    release = threading.Event()
    holder = hold_write_lock(env.db, release)
    asyncio.get_running_loop().call_later(1.5, release.set)
    figures.injected += 1
    await honest_pass(env)
    holder.join()

    # Locked past the busy timeout: `check` fails cleanly while a running daemon survives.
    daemon = await monitor_cli(env.config_path, "run")
    await env.sandbox.append("tiles", 300)
    await caught_up(env)  # the daemon is past start-up and polling
    release = threading.Event()
    holder = hold_write_lock(env.db, release)
    before = states(env.db)
    await env.sandbox.append("tiles", 300, WATCHED)  # news the daemon cannot record yet
    figures.injected += 1
    code, err = await finish(await monitor_cli(env.config_path, "check"))
    assert code == EXIT_OPERATIONAL, err
    figures.notes["error"] = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "database is locked" in err and "monitor.db" in err, err
    assert "one tlog-monitor per database" in err
    assert states(env.db) == before
    release.set()
    await asyncio.to_thread(holder.join)
    assert daemon.returncode is None, "the daemon died while the database was locked"
    await caught_up(env)  # and it records the news once the lock is gone
    daemon.send_signal(signal.SIGTERM)
    code, err = await finish(daemon)
    assert code == 0, err
    await honest_pass(env)
    figures.survived = True


def without_file_override() -> list[str]:
    """A command prefix under which file permissions bind: none for an ordinary user; for root,
    setpriv dropping the capabilities that bypass them (CAP_DAC_OVERRIDE and friends)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to bind")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


async def test_database_read_only(hostile: Hostile, tally: Tally) -> None:
    env = hostile
    figures = tally.scenario("database read-only")
    await populate(env)
    await honest_pass(env)
    await env.sandbox.append("tiles", 300)
    work = env.dir / "read-only"
    work.mkdir()
    try:
        for name in ("config.toml", "v1.pem", "tiles.pem", "ca.pem"):
            shutil.copy(env.dir / name, work / name)
        async with open_monitor(load_config(work / "config.toml")):
            pass  # an empty, migrated database, then the copy of the populated one
        shutil.copy(env.db, work / "monitor.db")
        for leftover in ("monitor.db-wal", "monitor.db-shm"):
            (work / leftover).unlink(missing_ok=True)
        before = states(work / "monitor.db")
        (work / "monitor.db").chmod(0o444)
        work.chmod(0o555)
        wrapper = without_file_override()
        figures.injected += 1
        code, err = await finish(await monitor_cli(work / "config.toml", "check", wrapper=wrapper))
        assert code == EXIT_OPERATIONAL, err
        figures.notes["error"] = err.strip().splitlines()[-1]
        assert "Traceback" not in err and "monitor.db" in err, err
        assert "readonly" in err or "read-only" in err or "unable to open" in err, err
        work.chmod(0o755)
        (work / "monitor.db").chmod(0o644)
        assert states(work / "monitor.db") == before
        assert integrity(work / "monitor.db") == "ok"
        await honest_pass(env, work / "config.toml")
    finally:
        work.chmod(0o755)
        shutil.rmtree(work)
    figures.survived = True


async def test_disk_full(hostile: Hostile, tally: Tally) -> None:
    env = hostile
    figures = tally.scenario("disk full (file size limit)")
    await populate(env)
    await honest_pass(env)
    # The disk fills at different points of a pass: at the first write, or a few pages in.
    for round_, limit in enumerate((8 * 1024, 20 * 1024, 40 * 1024)):

        def fill(limit: int = limit) -> None:
            # No file may grow past `limit` bytes: the WAL fills up; a checkpoint into the
            # (larger) database file fails too.
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            # Without this the kernel kills the writer (SIGXFSZ) instead of failing the write.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

        await env.sandbox.append("tiles", 2000)
        await env.sandbox.append("tiles", 1, WATCHED)
        await env.sandbox.append("v1", 3)
        figures.injected += 1
        code, err = await finish(await monitor_cli(env.config_path, "check", preexec=fill))
        assert code == EXIT_OPERATIONAL, err
        figures.notes[f"error {round_}"] = err.strip().splitlines()[-1]
        assert "Traceback" not in err and "monitor.db" in err, err
        assert "full" in err or "I/O" in err or "too large" in err, err
        assert integrity(env.db) == "ok", round_
        total, distinct = match_count(env.db)
        assert total == distinct
    await honest_pass(env)
    total, _ = match_count(env.db)
    assert total == 4
    figures.survived = True
