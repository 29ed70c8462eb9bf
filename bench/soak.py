"""The soak: `tlog-monitor run` for N minutes against a sandbox growing at 500 entries/s, through
a hostile proxy that breaks an answer every few seconds, alerting to a local receiver that is
sometimes down. At the end it prints what was scanned, injected, raised and delivered, and the
monitor's resident memory, and exits 1 if an invariant broke.

    this process:  sandbox (grows) <-- HostileProxy (faults) <-- monitor subprocess --> receiver
                                                                      | RSS sampled each second

Invariants: the monitor never dies; no critical or high alert (the log is honest, only the
transport lies); every watched entry is matched and alerted exactly once; every alert is
delivered and received exactly once; RSS after warm-up grows by less than `--rss-growth-mib`.

    python -m bench.soak --minutes 30 [--rate 500] [--seed 1] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monitor.sandbox import Sandbox
from tests.faults.harness import (
    WATCHED,
    alert_kinds,
    audit_deliveries,
    integrity,
    match_count,
    states,
    urgent_alerts,
    write_config,
)
from tests.faults.hostile import HostileProxy, Kind
from tests.integration.receivers import HttpReceiver

ROOT = Path(__file__).resolve().parents[1]

# (kind, path regex, answers spoiled, params): each transient, so the monitor keeps up overall.
FAULTS: list[tuple[Kind, str, int, dict[str, Any]]] = [
    (Kind.STATUS, r"^/tiles/", 3, {"status": 503, "retry_after": 0}),
    (Kind.STATUS, r"^/api/v1/", 2, {"status": 429, "retry_after": 1}),
    (Kind.STATUS, r"^/tiles/tile/entries/", 2, {"status": 500}),
    (Kind.RESET, r"^/tiles/", 2, {}),
    (Kind.TRUNCATE, r"^/tiles/tile/entries/", 1, {}),
    (Kind.NON_JSON, r"^/api/v1/log$", 2, {}),
    (Kind.NON_JSON, r"^/tiles/checkpoint$", 2, {}),
    (Kind.CONTENT_TYPE, r"^/api/v1/log$", 1, {"content_type": "text/html"}),
    (Kind.HUGE, r"^/tiles/tile/entries/", 1, {}),
    (Kind.ENDLESS, r"^/tiles/tile/\d", 1, {}),
    (Kind.STALL, r"^/tiles/checkpoint$", 1, {}),
    (Kind.SLOW_BODY, r"^/api/v1/log$", 1, {}),
    (Kind.INVALID_UTF8, r"^/tiles/checkpoint$", 2, {}),
    (Kind.INVALID_UTF8, r"^/api/v1/log$", 1, {}),
    (Kind.DEEP_JSON, r"^/api/v1/log$", 1, {}),
    (Kind.PROOF_LENGTH, r"^/api/v1/log/proof", 2, {"delta": -1}),
    (Kind.TILE_LENGTH, r"^/tiles/tile/", 2, {}),
    (Kind.NOTE_SIGNATURES, r"^/tiles/checkpoint$", 2, {"lines": 1000}),
]


@dataclass
class SoakResult:
    """The figures of one soak."""

    seconds: float = 0.0
    appended: int = 0
    scanned: int = 0
    watched_appended: int = 0
    matches: int = 0
    matches_distinct: int = 0
    faults_injected: int = 0
    receiver_outages: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    urgent: list[str] = field(default_factory=list)
    delivered_rows: int = 0
    pending_rows: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    repeated_marked: int = 0
    rss_start_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_end_mib: float = 0.0
    monitor_exit: int | None = None
    integrity: str = ""
    problems: list[str] = field(default_factory=list)


def rss_mib(pid: int) -> float | None:
    """Resident memory of `pid` in MiB (Linux /proc), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _grow(sb: Sandbox, rate: int, stop: asyncio.Event, result: SoakResult) -> None:
    """`rate` entries a second into the tiled log, a watched one every 5 s, a v1 entry a second."""
    tick, beat = 0.2, 0
    while not stop.is_set():
        started = time.monotonic()
        await sb.append("tiles", max(1, int(rate * tick)))
        result.appended += max(1, int(rate * tick))
        beat += 1
        if beat % 5 == 0:
            await sb.append("v1", 1)
        if beat % 25 == 0:
            await sb.append("tiles", 1, WATCHED)
            result.appended += 1
            result.watched_appended += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, tick - (time.monotonic() - started)))


async def _inject(
    proxy: HostileProxy,
    receiver: HttpReceiver,
    rng: random.Random,
    stop: asyncio.Event,
    result: SoakResult,
    receiver_outage_every: float | None,
) -> None:
    """A fault every 2-5 s; the receiver down for 15 s every `receiver_outage_every` s."""
    last_outage = time.monotonic()
    while not stop.is_set():
        kind, path, count, params = rng.choice(FAULTS)
        proxy.inject(kind, path, count, **params)
        if receiver_outage_every and time.monotonic() - last_outage > receiver_outage_every:
            receiver.failing = True
            result.receiver_outages += 1
            last_outage = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(2.0, 5.0))
        proxy.clear()
        if receiver.failing and time.monotonic() - last_outage > 15:
            receiver.failing = False
    proxy.clear()
    receiver.failing = False


async def _sample(pid: int, stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        value = rss_mib(pid)
        if value is not None:
            samples.append(value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _caught_up(db: Path, sb: Sandbox, receiver: HttpReceiver) -> bool:
    """Whether the monitor verified and scanned the whole tiled log and emptied its outbox."""
    if not db.exists():
        return False
    tiles = sb.state()["tiles"]
    assert isinstance(tiles, dict)
    size = int(tiles["treeSize"])
    st = await asyncio.to_thread(states, db)
    scanned = [(s[0], s[3]) for (log, _), s in st.items() if log == "tiles"]
    if scanned != [(size, size)]:
        return False
    audit = await asyncio.to_thread(audit_deliveries, db, receiver)
    return audit.pending_rows == 0 and audit.received >= audit.alerts


async def soak(
    seconds: float,
    workdir: Path,
    *,
    rate: int = 500,
    seed: int = 1,
    receiver_outage_every: float | None = 120.0,
    drain_timeout: float = 600.0,
    rss_growth_mib: float = 64.0,
) -> SoakResult:
    """Run one soak in `workdir`; returns its figures (`problems` empty when it held)."""
    result = SoakResult()
    rng = random.Random(seed)
    sb = Sandbox(workdir / "sandbox-state")
    await sb.start("127.0.0.1", 0)
    proxy = HostileProxy(sb.url)
    receiver = HttpReceiver()
    await proxy.start()
    await receiver.start()
    config = write_config(workdir, sb, receiver, base_url=proxy.url, scan_v1=False)
    db = workdir / "monitor.db"
    log_file = (workdir / "monitor.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", "--config", str(config), "run",
        cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log_file, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    stop, stop_sampling = asyncio.Event(), asyncio.Event()
    samples: list[float] = []
    began = time.monotonic()
    tasks = [
        asyncio.create_task(_grow(sb, rate, stop, result)),
        asyncio.create_task(_inject(proxy, receiver, rng, stop, result, receiver_outage_every)),
        asyncio.create_task(_sample(proc.pid, stop_sampling, samples)),
    ]
    try:
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks[:2])
        # Honest from here on: wait for the monitor to verify, scan and deliver everything.
        deadline = time.monotonic() + drain_timeout
        while not await _caught_up(db, sb, receiver):
            if proc.returncode is not None or time.monotonic() > deadline:
                result.problems.append("the monitor did not catch up before the deadline")
                break
            await asyncio.sleep(1.0)
        result.seconds = time.monotonic() - began
        if proc.returncode is not None:
            result.problems.append(f"the monitor died with exit code {proc.returncode}")
        else:
            proc.send_signal(signal.SIGTERM)
            result.monitor_exit = await asyncio.wait_for(proc.wait(), 60)
    finally:
        stop.set()
        stop_sampling.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log_file.close()
        result.faults_injected = proxy.injected + result.receiver_outages
        await receiver.stop()
        await proxy.stop()
        await sb.stop()
    _account(result, db, receiver, samples, rss_growth_mib)
    return result


def _account(
    result: SoakResult,
    db: Path,
    receiver: HttpReceiver,
    samples: list[float],
    rss_growth_mib: float,
) -> None:
    """Fill in the database's figures and check the invariants."""
    st = states(db)
    result.scanned = sum(s[3] or 0 for (log, _), s in st.items() if log == "tiles")
    result.matches, result.matches_distinct = match_count(db)
    result.alerts = {f"{k}/{sev}": n for (k, sev), n in sorted(alert_kinds(db).items())}
    result.urgent = urgent_alerts(db)
    audit = audit_deliveries(db, receiver)
    result.delivered_rows, result.pending_rows = audit.delivered_rows, audit.pending_rows
    result.received, result.lost, result.duplicated = audit.received, audit.lost, audit.duplicated
    result.repeated_marked = audit.repeats
    result.integrity = integrity(db)
    if samples:
        # The first tenth is warm-up (imports, first scans, caches filling).
        warm = samples[max(1, len(samples) // 10) - 1]
        result.rss_start_mib, result.rss_peak_mib = warm, max(samples)
        result.rss_end_mib = samples[-1]
        if result.rss_peak_mib - warm > rss_growth_mib:
            result.problems.append(
                f"RSS grew {result.rss_peak_mib - warm:.1f} MiB after warm-up "
                f"(bound {rss_growth_mib:g})"
            )
    identity_seen = sum(n for k, n in result.alerts.items() if k.startswith("identity_seen/"))
    checks = {
        "a critical or high alert was raised": bool(result.urgent),
        "a watched entry was matched twice": result.matches != result.matches_distinct,
        "watched entries and identity_seen alerts differ": (
            identity_seen != result.watched_appended or result.matches != result.watched_appended
        ),
        "an alert was lost": result.lost > 0 or result.pending_rows > 0,
        "an alert was received twice unmarked": result.duplicated > 0,
        "the database is damaged": result.integrity != "ok",
        "the monitor did not stop cleanly": result.monitor_exit not in (0, None),
    }
    result.problems.extend(problem for problem, broke in checks.items() if broke)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.soak`: run, print the figures as JSON, exit 1 if an invariant broke."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=500, help="entries a second (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(soak(args.minutes * 60, workdir, rate=args.rate, seed=args.seed))
    print(json.dumps(asdict(result), indent=2))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
