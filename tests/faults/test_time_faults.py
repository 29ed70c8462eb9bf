"""Faults in time: the notification channel down for hours, and the clock jumping forward and
back. The monitor's clock is injectable (`open_monitor(config, clock)`), so hours pass in
milliseconds: the real notifier, store and engine run against a real receiver and sandbox; only
the time they read is ours."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

from monitor.config.settings import load_config
from monitor.core.severity import Severity
from monitor.service.daemon import Monitor, open_monitor
from tests.faults.conftest import Hostile
from tests.faults.harness import WATCHED, Tally, audit_deliveries, connect, states


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


async def raise_watched(env: Hostile, m: Monitor, count: int = 1) -> int:
    """Append `count` watched entries and poll: that many new identity_seen alerts."""
    for _ in range(count):
        await env.sandbox.append("tiles", 3)
        await env.sandbox.append("tiles", 1, WATCHED)
    outcome = await m.check()
    assert outcome.errors == []
    assert all(a.severity < Severity.HIGH for _, a in outcome.alerts)
    return len(outcome.alerts)


def attempts(env: Hostile) -> list[int]:
    with closing(connect(env.db)) as conn:
        return [int(r[0]) for r in conn.execute("SELECT attempts FROM deliveries ORDER BY id")]


async def test_channel_down_for_hours_then_everything_delivered_once(
    hostile: Hostile, tally: Tally
) -> None:
    env = hostile
    figures = tally.scenario("notification channel down for 8 hours")
    clock = Clock()
    env.receiver.failing = True
    async with open_monitor(load_config(env.config_path), clock) as m:
        raised = await raise_watched(env, m, 3)
        # Eight hours of delivery rounds every 10 s would be 2880 rounds; a round every
        # 2 minutes of clock time sees every retry come due (the backoff is 30 s .. 1 h).
        # The first four hours it answers 500, the next four it refuses connections.
        for minute in range(0, 8 * 60, 2):
            clock.advance(timedelta(minutes=2))
            if minute % 90 == 0:
                raised += await raise_watched(env, m)
            if minute == 4 * 60:
                env.receiver.failing = False
                await env.receiver.stop()
            outcome = await m.deliver()
            assert outcome.delivered == 0
        tries = attempts(env)
        figures.injected += sum(tries)
        # Backoff keeps the attempts few: 30 s doubling to the 1 h cap, not one per round.
        assert max(tries) <= 18, tries
        assert env.receiver.posts == []

        await env.receiver.start()
        clock.advance(timedelta(hours=1))
        await m.deliver()
        assert await m.store.call(m.store.store.pending_count) == 0
    audit = audit_deliveries(env.db, env.receiver)
    figures.alerts_lost, figures.alerts_duplicated = audit.lost, audit.duplicated
    figures.notes.update(alerts=raised, refused_posts=env.receiver.refused_posts, attempts=tries)
    assert audit.alerts == raised == audit.received
    assert (audit.lost, audit.duplicated, audit.unknown) == (0, 0, 0)
    figures.survived = True


async def test_clock_jumps_forward_and_back(hostile: Hostile, tally: Tally) -> None:
    env = hostile
    figures = tally.scenario("clock jumps forward 3 days and back 2 days")
    clock = Clock()
    async with open_monitor(load_config(env.config_path), clock) as m:
        await raise_watched(env, m)
        before = states(env.db)

        # Forward: the log looks stale (a warning, true from the monitor's point of view);
        # nothing else changes.
        clock.advance(timedelta(days=3))
        figures.injected += 1
        outcome = await m.check()
        assert outcome.errors == []
        assert {a.kind.value for _, a in outcome.alerts} <= {"log_stale"}
        assert states(env.db) == before

        # A delivery fails, and then the clock goes back two days: its retry, scheduled in the
        # old timeline, must not wait two days.
        env.receiver.failing = True
        raised = await raise_watched(env, m)
        assert raised == 1
        env.receiver.failing = False
        clock.advance(timedelta(days=-2))
        figures.injected += 1
        await m.deliver()
        assert await m.store.call(m.store.store.pending_count) == 0
        # The log keeps being verified and scanned in the new timeline.
        assert await raise_watched(env, m) == 1
        await m.deliver()
    audit = audit_deliveries(env.db, env.receiver)
    figures.alerts_lost, figures.alerts_duplicated = audit.lost, audit.duplicated
    assert audit.received == audit.alerts and audit.lost == audit.duplicated == 0
    figures.survived = True
