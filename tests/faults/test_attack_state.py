"""The verified state never goes backwards, however many processes write the database.

A `check` run next to the daemon reads a tree's state, fetches a proof, and writes what it
decided; the daemon may have moved the state on meanwhile. Both write through a compare-and-swap
(`Store.put_state`, `Store.advance_scan`), so the loser decides again from fresh state instead of
writing its stale decision over the winner's. Here two real processes poll one SQLite database
against the sandbox: the daemon at full speed, `check` through a view of the log that answers
slowly (so its proofs arrive after the daemon has moved on), while the log grows and the test
watches every state the database goes through.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.service.daemon import open_monitor
from tests.faults.harness import alert_kinds, connect, integrity, states, write_config
from tests.integration.receivers import HttpReceiver

ROOT = Path(__file__).resolve().parents[2]
SLOW_VIEW = "slow"
SLOW_S = 1.0
"""How long the slow view takes for every answer: longer than the daemon's poll interval."""

RACED = b"moved under another process"
"""What the engine logs when it lost a race and decides again."""

Row = tuple[str, str, int, int, int | None]


def _rows(db: Path) -> list[Row]:
    """(log, tree, verified size, high-water mark, scan cursor) of every tree."""
    try:
        with closing(connect(db)) as conn:
            return [
                (r[0], r[1], r[2], r[3], r[4])
                for r in conn.execute(
                    "SELECT l.name, s.tree_id, s.verified_size, s.high_water, s.scan_cursor "
                    "FROM log_state s JOIN logs l ON l.id = s.log_id"
                )
            ]
    except sqlite3.OperationalError:
        return []  # not created yet


def _shared_configs(
    sandbox: Sandbox, receiver: HttpReceiver, tmp_path: Path, fast_name: str, slow_name: str
) -> tuple[Path, Path, Path]:
    """(the shared database, a config polling the sandbox directly in `tmp_path / fast_name`,
    one polling it through the slow view in `tmp_path / slow_name`): both on that database."""
    db = tmp_path / "shared.db"
    fast_dir, slow_dir = tmp_path / fast_name, tmp_path / slow_name
    fast_dir.mkdir()
    slow_dir.mkdir()
    fast = write_config(fast_dir, sandbox, receiver, base_url=sandbox.url, database=str(db))
    slow = write_config(
        slow_dir, sandbox, receiver, base_url=sandbox.view_url(SLOW_VIEW), database=str(db)
    )
    return db, fast, slow


async def _spawn(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", "-v", "--config", str(config), *args,
        cwd=config.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _race(sandbox: Sandbox, tmp_path: Path, checks: int, *, until_raced: bool) -> None:
    """Up to `checks` slow `check` runs, one after another, next to the daemon (`until_raced`:
    until one has lost a race to it); then the assertions."""
    receiver = HttpReceiver()
    await receiver.start()
    db, fast, slow = _shared_configs(sandbox, receiver, tmp_path, "daemon", "check")
    for log in ("v1", "tiles"):
        sandbox.misbehave(log, "slow", view=SLOW_VIEW, delay=SLOW_S)
    await sandbox.append("v1", 5)
    await sandbox.append("tiles", 300)

    seen: dict[tuple[str, str], list[Row]] = defaultdict(list)
    stop = asyncio.Event()

    async def grow() -> None:
        while not stop.is_set():
            await sandbox.append("v1", 1)
            await sandbox.append("tiles", 37)
            await asyncio.sleep(0.1)

    async def watch() -> None:
        while not stop.is_set():
            for row in await asyncio.to_thread(_rows, db):
                history = seen[row[0], row[1]]
                if not history or history[-1] != row:
                    history.append(row)
            await asyncio.sleep(0.01)

    daemon = await _spawn(fast, "run")
    tasks = [asyncio.create_task(grow()), asyncio.create_task(watch())]
    outcomes: list[tuple[int | None, bytes]] = []
    try:
        deadline = time.monotonic() + 20
        while not _rows(db) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for _ in range(checks):
            check = await _spawn(slow, "check")
            _, err = await check.communicate()
            outcomes.append((check.returncode, err))
            if until_raced and RACED in err:
                break
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        daemon.send_signal(signal.SIGTERM)
        await daemon.wait()
        await receiver.stop()

    v1 = sandbox.state()["v1"]
    assert isinstance(v1, dict)
    assert set(seen) >= {("v1", v1["treeID"]), ("tiles", "tiles")}
    for tree, history in seen.items():
        sizes = [r[2] for r in history]
        assert sizes == sorted(sizes), f"{tree}: verified size went backwards: {sizes}"
        marks = [r[3] for r in history]
        assert marks == sorted(marks), f"{tree}: high-water mark went backwards: {marks}"
        ahead = [r for r in history if r[4] is not None and r[4] > r[2]]
        assert ahead == [], f"{tree}: scan cursor ahead of the verified size: {ahead}"
    for code, err in outcomes:
        assert code == 0, err.decode()[-2000:]
    raced = b"".join(err for _, err in outcomes)
    assert RACED in raced, "the race was never run: tune SLOW_S"
    kinds = {kind for kind, _ in alert_kinds(db)}
    # Only what was verified before a view was asked can be rolled back from.
    assert kinds.isdisjoint({"split_view", "rollback"}), kinds
    assert integrity(db) == "ok"


async def test_a_check_next_to_the_daemon_never_moves_state_backwards(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await _race(sandbox, tmp_path, checks=4, until_raced=True)


@pytest.mark.slow
async def test_many_checks_next_to_the_daemon_never_move_state_backwards(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await _race(sandbox, tmp_path, checks=8, until_raced=False)


async def test_a_decision_overtaken_by_another_process_is_made_again_from_fresh_state(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """In one process, deterministically: the slow monitor has fetched a checkpoint of size 10
    and waits for its proof from 5 while the fast one verifies 15. Its write of 10 must not
    land; decided again, 10 is older than 15 and consistent with it: no rollback."""
    receiver = HttpReceiver()
    await receiver.start()
    db, fast, slow = _shared_configs(sandbox, receiver, tmp_path, "fast", "slow")
    sandbox.misbehave("v1", "slow", view=SLOW_VIEW, delay=SLOW_S)
    await sandbox.append("v1", 5)
    try:
        async with (
            open_monitor(load_config(fast)) as ahead,
            open_monitor(load_config(slow)) as behind,
        ):
            assert (await ahead.logs["v1"].poll()).errors == []
            await sandbox.append("v1", 5)
            late = asyncio.create_task(behind.logs["v1"].poll())
            # Its head (size 10) is rendered after SLOW_S; its proof 5 -> 10 after 2 x SLOW_S.
            await asyncio.sleep(SLOW_S * 1.5)
            await sandbox.append("v1", 5)
            assert (await ahead.logs["v1"].poll()).errors == []
            result = await late
    finally:
        await receiver.stop()
    ((size, _, high_water, _),) = [s for (log, _), s in states(db).items() if log == "v1"]
    assert (size, high_water) == (15, 15)
    assert result.errors == [] and result.alerts == [], "an older checkpoint seen first"
    with closing(connect(db)) as conn:
        sizes = [r[0] for r in conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    assert 10 in sizes, "the overtaken checkpoint is still recorded"
