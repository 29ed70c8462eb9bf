"""SIGKILL at random points of a poll, a scan and a delivery round, many times over, then one
honest pass: every watched entry matched and alerted exactly once, every alert delivered, the
database sound, the state the log's.

The kill points are drawn (seeded) as "after the k-th answer the proxy forwards" or "after the
j-th message the receiver accepts", so they land inside polls, scans and deliveries rather than
in interpreter start-up.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

from monitor.config.settings import load_config
from monitor.service.daemon import open_monitor
from tests.faults.conftest import Hostile
from tests.faults.harness import (
    WATCHED,
    Tally,
    audit_deliveries,
    integrity,
    match_count,
    states,
    urgent_alerts,
)

ROOT = Path(__file__).resolve().parents[2]
KILLS = 10
SEED = 20261123


async def _run_until(env: Hostile, trigger: str, target: int) -> str:
    """Start `tlog-monitor run`, SIGKILL it once `trigger` reaches `target` (or after 15 s);
    returns where it was killed."""
    forwarded, posts = env.proxy.forwarded, len(env.receiver.posts)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", "--config", str(env.config_path), "run",
        cwd=env.dir, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    where = "timeout"
    while time.monotonic() < deadline and proc.returncode is None:
        if trigger == "request" and env.proxy.forwarded - forwarded >= target:
            where = f"after answer {target} of a poll or scan"
            break
        if trigger == "post" and len(env.receiver.posts) - posts >= target:
            where = f"after message {target} of a delivery round"
            break
        await asyncio.sleep(0.005)
    assert proc.returncode is None, "the monitor exited on its own"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    return where


async def test_sigkill_at_random_points_loses_and_repeats_nothing(
    hostile: Hostile, tally: Tally
) -> None:
    env = hostile
    rng = random.Random(SEED)
    figures = tally.scenario("SIGKILL during poll, scan and delivery")
    watched = {"v1": 0, "tiles": 0}
    where: list[str] = []
    for _ in range(KILLS):
        await env.sandbox.append("tiles", rng.randrange(100, 700))
        for _ in range(2):
            await env.sandbox.append("tiles", 1, WATCHED)
            await env.sandbox.append("tiles", rng.randrange(1, 90))
        await env.sandbox.append("v1", rng.randrange(1, 12))
        await env.sandbox.append("v1", 1, WATCHED)
        watched["tiles"] += 2
        watched["v1"] += 1
        if rng.random() < 0.7:
            where.append(await _run_until(env, "request", rng.randrange(1, 16)))
        else:
            where.append(await _run_until(env, "post", rng.randrange(1, 3)))
        figures.injected += 1
        assert integrity(env.db) == "ok"
    figures.notes["kill_points"] = where
    assert sum(w != "timeout" for w in where) >= KILLS - 2, where

    # One honest pass (a second only if the first's scan was cut by growth: there is none now).
    async with open_monitor(load_config(env.config_path)) as m:
        outcome = await m.check()
        assert outcome.errors == []
        assert await m.store.call(m.store.store.pending_count) == 0
    st = env.sandbox.state()
    tiles, v1 = st["tiles"], st["v1"]
    assert isinstance(tiles, dict) and isinstance(v1, dict)
    final = {log: (s[0], s[3]) for (log, _), s in states(env.db).items()}
    assert final == {
        "tiles": (tiles["treeSize"], tiles["treeSize"]),
        "v1": (v1["treeSize"], v1["treeSize"]),
    }
    assert urgent_alerts(env.db) == []
    total, distinct = match_count(env.db)
    assert total == distinct == sum(watched.values())
    audit = audit_deliveries(env.db, env.receiver)
    figures.alerts_lost = audit.lost
    figures.alerts_duplicated = audit.duplicated
    figures.alerts_repeated_marked = audit.repeats
    figures.notes["alerts"] = audit.alerts
    figures.notes["repeats"] = (
        "a kill between the receiver accepting a message and the outbox recording it repeats "
        "that message on restart (at-least-once at the transport), always marked "
        "'(possible repeat)'; at most one per kill with one receiver"
    )
    assert audit.lost == 0 and audit.unknown == 0
    assert audit.duplicated == 0, "a repeat without the possible-repeat mark"
    assert audit.received - audit.repeats == audit.alerts == audit.delivered_rows
    # One kill cuts off at most one send; that message (a digest may stand for many alerts)
    # is the one repeated.
    assert audit.repeat_messages <= len(where)
    assert integrity(env.db) == "ok"
    figures.survived = True
