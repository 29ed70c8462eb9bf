"""Every way a log's HTTP answers can break, through the hostile proxy, against the real monitor.

Each case: the logs grow, a fault is switched on, one `check` pass runs, the fault is switched
off, another pass runs. After the faulty pass: no exception escaped, no critical or high alert,
each log's state is either where it was or the honest new state (never anything else), and a
failing log reported an error; memory stayed bounded. After the honest pass: the state is the
sandbox's and every alert was delivered exactly once.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pytest

from monitor.config.settings import load_config
from monitor.core.severity import Severity
from monitor.service.daemon import Monitor, open_monitor
from tests.faults.conftest import Hostile
from tests.faults.harness import (
    WATCHED,
    Tally,
    audit_deliveries,
    run_check,
    states,
    urgent_alerts,
)
from tests.faults.hostile import Kind

MEMORY_BOUND = 64 * 1024 * 1024
"""Peak Python allocations of one faulty pass; the 16 MiB response cap plus working room."""

V1_INFO = r"^/api/v1/log$"
V1_PROOF = r"^/api/v1/log/proof"
V1_RETRIEVE = r"^/api/v1/log/entries/retrieve"
TILES_CHECKPOINT = r"^/tiles/checkpoint$"
TILES_HASH = r"^/tiles/tile/\d"
TILES_ENTRIES = r"^/tiles/tile/entries/"


class Then(StrEnum):
    """What the faulty pass must do for the log the fault hits."""

    FAILS = "fails"  # the log's poll or scan fails: an error, its state unmoved
    RECOVERS = "recovers"  # the HTTP layer's retries ride it out: no error, honest state
    EITHER = "either"  # harmless or refused, as long as the state is honest or unmoved


@dataclass(frozen=True)
class Case:
    """One fault: what, where, how many answers, and what the pass must do."""

    name: str
    kind: Kind
    path: str
    hits: str  # "v1", "tiles" or "both"
    then: Then
    count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    workers: bool = False  # the tiles scan as a long backfill, in worker processes


CASES = [
    Case("503 storm, Retry-After 0", Kind.STATUS, "", "both", Then.FAILS, None,
         {"status": 503, "retry_after": 0}),
    Case("429 HTML storm, Retry-After 1", Kind.STATUS, V1_INFO, "v1", Then.RECOVERS, 2,
         {"status": 429, "retry_after": 1}),
    Case("500 burst", Kind.STATUS, TILES_ENTRIES, "tiles", Then.RECOVERS, 2, {"status": 500}),
    Case("404 on the proof", Kind.STATUS, V1_PROOF, "v1", Then.FAILS, None, {"status": 404}),
    Case("connection reset", Kind.RESET, TILES_CHECKPOINT, "tiles", Then.RECOVERS, 2),
    Case("connection reset on retrieve", Kind.RESET, V1_RETRIEVE, "v1", Then.RECOVERS, 2),
    Case("truncated body", Kind.TRUNCATE, V1_RETRIEVE, "v1", Then.RECOVERS, 2),
    Case("truncated bundle", Kind.TRUNCATE, TILES_ENTRIES, "tiles", Then.RECOVERS, 1),
    Case("non-JSON body", Kind.NON_JSON, V1_INFO, "v1", Then.FAILS),
    Case("non-JSON checkpoint", Kind.NON_JSON, TILES_CHECKPOINT, "tiles", Then.FAILS),
    Case("HTML content type", Kind.CONTENT_TYPE, V1_PROOF, "v1", Then.FAILS, None,
         {"content_type": "text/html"}),
    Case("odd content type on tiles", Kind.CONTENT_TYPE, "^/tiles/", "tiles", Then.EITHER,
         None, {"content_type": "application/x-unexpected"}),
    Case("1 GiB body", Kind.HUGE, V1_RETRIEVE, "v1", Then.FAILS),
    Case("1 GiB tile", Kind.HUGE, TILES_HASH, "tiles", Then.FAILS),
    Case("endless body", Kind.ENDLESS, TILES_ENTRIES, "tiles", Then.FAILS),
    Case("endless log info", Kind.ENDLESS, V1_INFO, "v1", Then.FAILS),
    Case("no answer", Kind.STALL, TILES_CHECKPOINT, "tiles", Then.RECOVERS, 1),
    Case("body never ends", Kind.SLOW_BODY, V1_INFO, "v1", Then.RECOVERS, 1),
    Case("invalid UTF-8 JSON", Kind.INVALID_UTF8, V1_INFO, "v1", Then.FAILS),
    Case("invalid UTF-8 note", Kind.INVALID_UTF8, TILES_CHECKPOINT, "tiles", Then.FAILS),
    Case("deeply nested JSON", Kind.DEEP_JSON, V1_RETRIEVE, "v1", Then.FAILS),
    Case("proof one hash short", Kind.PROOF_LENGTH, V1_PROOF, "v1", Then.FAILS, None,
         {"delta": -1}),
    Case("proof one hash long", Kind.PROOF_LENGTH, V1_PROOF, "v1", Then.FAILS, None,
         {"delta": 1}),
    Case("hash tile of a wrong length", Kind.TILE_LENGTH, TILES_HASH, "tiles", Then.FAILS),
    Case("bundle of a wrong length", Kind.TILE_LENGTH, TILES_ENTRIES, "tiles", Then.FAILS),
    # A backfill's workers split the bundles in shared memory: the same faults, the same end.
    Case("truncated bundle, workers", Kind.TRUNCATE, TILES_ENTRIES, "tiles", Then.RECOVERS, 1,
         workers=True),
    Case("bundle of a wrong length, workers", Kind.TILE_LENGTH, TILES_ENTRIES, "tiles",
         Then.FAILS, workers=True),
    Case("1000 signature lines", Kind.NOTE_SIGNATURES, TILES_CHECKPOINT, "tiles", Then.EITHER),
    Case("1000 signature lines v1", Kind.NOTE_SIGNATURES, V1_INFO, "v1", Then.EITHER),
]  # fmt: skip


async def grow(env: Hostile) -> None:
    """Honest growth with watched entries in both logs (and a partial tile)."""
    await env.sandbox.append("v1", 4)
    await env.sandbox.append("v1", 1, WATCHED)
    await env.sandbox.append("tiles", 290)
    await env.sandbox.append("tiles", 1, WATCHED)


def honest(env: Hostile) -> dict[str, tuple[int, bytes]]:
    """Each log's true (size, root) right now."""
    st = env.sandbox.state()
    v1, tiles = st["v1"], st["tiles"]
    assert isinstance(v1, dict) and isinstance(tiles, dict)
    return {
        "v1": (int(v1["treeSize"]), bytes.fromhex(str(v1["rootHash"]))),
        "tiles": (int(tiles["treeSize"]), bytes.fromhex(str(tiles["rootHash"]))),
    }


def by_log(env: Hostile) -> dict[str, tuple[int, bytes, int | None]]:
    """Each log's (verified size, root, scan cursor) in the monitor's database."""
    return {log: (s[0], s[1], s[3]) for (log, _), s in states(env.db).items()}


async def deliver_all(m: Monitor) -> None:
    """Delivery rounds until the outbox is empty (the receiver is up: one round suffices)."""
    await m.deliver()
    assert await m.store.call(m.store.store.pending_count) == 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_http_fault(hostile: Hostile, tally: Tally, case: Case) -> None:
    env = hostile
    figures = tally.scenario(f"http: {case.name}")
    await grow(env)
    async with open_monitor(load_config(env.config_path)) as m:
        if case.workers:
            (scanner,) = [s for name, s in m.scanners.items() if "tiles" in name]
            scanner.backfill, scanner.workers, scanner.chunk = 0, 2, 128
        first = await m.check()
        assert first.errors == []
        before = by_log(env)
        await grow(env)
        truth = honest(env)

        fault = env.proxy.inject(case.kind, case.path, case.count, **case.params)
        tracemalloc.start()
        try:
            outcome = await m.check()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        env.proxy.clear()
        figures.injected += fault.hits
        figures.notes["peak_bytes"] = peak
        assert fault.hits > 0, "the fault never fired"

        urgent = [a.summary for _, a in outcome.alerts if a.severity >= Severity.HIGH]
        assert urgent == [], "a fault raised a critical or high alert"
        assert {a.kind.value for _, a in outcome.alerts} <= {"log_error", "identity_seen"}
        after = by_log(env)
        hit = {"v1", "tiles"} if case.hits == "both" else {case.hits}
        for log in ("v1", "tiles"):
            size, root, cursor = after[log]
            assert (size, root) in (before[log][:2], truth[log]), f"{log} moved to a bad state"
            assert cursor is not None and cursor <= size
            if log not in hit or case.then is Then.RECOVERS:
                assert (size, root, cursor) == (*truth[log], truth[log][0]), log
        if case.then is Then.FAILS:
            assert outcome.errors, "the fault went unnoticed"
            for log in hit:
                # The poll refused the checkpoint, or the scan stopped short of the new size.
                assert after[log][0] == before[log][0] or after[log][2] == before[log][2], log
        if case.then is Then.RECOVERS:
            assert outcome.errors == []
        assert peak < MEMORY_BOUND

        healed = await m.check()
        assert healed.errors == []
        assert all(a.severity < Severity.HIGH for _, a in healed.alerts)
        assert {log: (s, r) for log, (s, r, _) in by_log(env).items()} == truth
        assert all(c == s for s, _, c in by_log(env).values()), "the scan did not catch up"
        await deliver_all(m)
    audit = audit_deliveries(env.db, env.receiver)
    figures.alerts_lost = audit.lost
    figures.alerts_duplicated = audit.duplicated
    assert (audit.lost, audit.duplicated, audit.unknown) == (0, 0, 0)
    assert audit.received == audit.delivered_rows == audit.alerts
    figures.survived = True


async def test_check_exits_3_not_1_on_a_faulty_log(hostile: Hostile, tally: Tally) -> None:
    env = hostile
    figures = tally.scenario("http: `check` against faulty logs")
    await grow(env)
    assert (await run_check(env.config_path))[0] == 0
    await grow(env)
    proof = env.proxy.inject(Kind.PROOF_LENGTH, V1_PROOF, params={"delta": 1})
    note = env.proxy.inject(Kind.INVALID_UTF8, TILES_CHECKPOINT)
    code, err = await run_check(env.config_path)
    figures.injected += proof.hits + note.hits
    assert code == 3, err
    assert "Traceback" not in err
    assert "expected" in err and "hashes" in err, err
    assert urgent_alerts(env.db) == []
    figures.survived = True
