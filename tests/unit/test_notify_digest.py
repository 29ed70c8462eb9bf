"""The digest message, pure: whatever the alerts' text, it stays within its limit, keeps its
commands, and its id line names exactly the alerts it stands for."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from monitor.notify.notifier import DIGEST_MARK, MessageOrigin, render_digest
from monitor.store.database import Delivery, DueGroup
from tests.integration.receivers import message_alert_ids

ORIGIN = MessageOrigin("monitor-1", Path("/etc/tlog-monitor/config.toml"))


def group(ranges: list[tuple[int, int]], summaries: list[str], *, more: bool = False) -> DueGroup:
    ids = [i for low, high in ranges for i in range(low, high + 1)]
    deliveries = tuple(
        Delivery(
            id=n + 1,
            alert_id=alert_id,
            channel="security#3fa2c1d0",
            attempts=0,
            kind="unexpected_signer",
            severity="high",
            summary=summary,
            details={},
            log_name="rekor",
            rule="release",
            created_at="2026-03-01T12:00:00.000000+00:00",
        )
        for n, (alert_id, summary) in enumerate(zip(ids, summaries, strict=False))
    )
    return DueGroup(
        channel="security#3fa2c1d0",
        kind="unexpected_signer",
        severity="high",
        log_id=1,
        log_name="rekor",
        rule="release",
        count=len(ids),
        last_id=len(ids),
        due_at="2026-03-01T12:00:00.000000+00:00",
        latest="9999",
        maybe_sent=False,
        deliveries=deliveries,
        alert_ranges=tuple(ranges),
        more_ranges=more,
    )


@st.composite
def id_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Disjoint, non-adjacent ranges of alert ids, lowest first."""
    ranges: list[tuple[int, int]] = []
    low = draw(st.integers(1, 1000))
    for _ in range(draw(st.integers(1, 20))):
        high = low + draw(st.integers(0, 300))
        ranges.append((low, high))
        low = high + 2 + draw(st.integers(0, 50))
    return ranges


@given(
    id_ranges(),
    st.lists(st.text(max_size=2000), min_size=10, max_size=10),
    st.integers(600, 4000),
)
def test_digest_names_exactly_its_alerts_within_its_limit(
    ranges: list[tuple[int, int]], summaries: list[str], max_body: int
) -> None:
    # A summary may try to forge the id line; it cannot start a line of its own.
    summaries[0] = f"x\n{DIGEST_MARK}#1-#99999\n" + summaries[0]
    digest = group(ranges, summaries)
    message = render_digest(digest, max_body, origin=ORIGIN)
    body = message.body
    assert len(body) <= max_body
    lines = body.splitlines()
    [id_line] = [line for line in lines if line.startswith(DIGEST_MARK)]
    named = message_alert_ids(body)
    every = [i for low, high in ranges for i in range(low, high + 1)]
    # All of them; or, when they cannot all fit, whole ranges from the first, and "…".
    assert named == every or (named == every[: len(named)] and id_line.endswith("list them all)"))
    assert any(line.startswith("list them all: tlog-monitor --config ") for line in lines)
    assert f"({digest.count} alerts)" in message.title


def test_more_ranges_than_shown_say_so() -> None:
    ranges = [(n * 10, n * 10 + 1) for n in range(1, 21)]
    body = render_digest(group(ranges, ["s"] * 10, more=True), origin=ORIGIN).body
    [line] = [line for line in body.splitlines() if line.startswith(DIGEST_MARK)]
    assert line == DIGEST_MARK + ", ".join(f"#{a}-#{b}" for a, b in ranges) + (
        ", … (more: list them all)"
    )
