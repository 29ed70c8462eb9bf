"""The Prometheus text exposition of monitor.service.metrics, cross-checked with the reference
parser (prometheus_client, which we did not write): escaping, value spelling, counter naming."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from monitor.service.metrics import (
    Family,
    PollOutcome,
    PollStats,
    Sample,
    classify_poll,
    escape_label_value,
    format_value,
    render,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ('say "hi"', 'say \\"hi\\"'),
        ("a\\b", "a\\\\b"),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),
        ("ünïcode ✓", "ünïcode ✓"),
    ],
)
def test_escape_label_value(value: str, expected: str) -> None:
    assert escape_label_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (42, "42"),
        (1.5, "1.5"),
        (1_700_000_000.25, "1700000000.25"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (2.0**60, repr(2.0**60)),
    ],
)
def test_format_value(value: float, expected: str) -> None:
    assert format_value(value) == expected


@pytest.mark.parametrize(
    ("alerts", "errors", "outcome"),
    [
        (0, 0, PollOutcome.OK),
        (2, 0, PollOutcome.ALERT),
        (0, 1, PollOutcome.ERROR),
        (1, 1, PollOutcome.ERROR),
    ],
)
def test_classify_poll(alerts: int, errors: int, outcome: PollOutcome) -> None:
    assert classify_poll(alerts, errors) is outcome


def test_poll_stats_count_and_know_which_logs_were_polled() -> None:
    stats = PollStats()
    assert stats.polled() == set()
    stats.record("a", PollOutcome.OK)
    stats.record("a", PollOutcome.OK)
    stats.record("b", PollOutcome.ERROR)
    assert stats.polls["a", PollOutcome.OK] == 2
    assert stats.polls["a", PollOutcome.ERROR] == 0
    assert stats.polled() == {"a", "b"}


def test_render_layout() -> None:
    text = render(
        [
            Family("up", "gauge", "Whether it is up.", (Sample((), 1),)),
            Family(
                "polls_total",
                "counter",
                "Polls.\nBy outcome \\ log.",
                (Sample((("log", "a"), ("outcome", "ok")), 3),),
            ),
            Family("empty", "gauge", "No samples yet.", ()),
        ]
    )
    assert text == (
        "# HELP tlog_monitor_up Whether it is up.\n"
        "# TYPE tlog_monitor_up gauge\n"
        "tlog_monitor_up 1\n"
        "# HELP tlog_monitor_polls_total Polls.\\nBy outcome \\\\ log.\n"
        "# TYPE tlog_monitor_polls_total counter\n"
        'tlog_monitor_polls_total{log="a",outcome="ok"} 3\n'
        "# HELP tlog_monitor_empty No samples yet.\n"
        "# TYPE tlog_monitor_empty gauge\n"
    )


def test_reference_parser_reads_counters_and_help() -> None:
    text = render(
        [Family("polls_total", "counter", 'A "help" \\ text\nover lines', (Sample((), 7),))]
    )
    [family] = text_string_to_metric_families(text)
    assert family.name == "tlog_monitor_polls"
    assert family.type == "counter"
    assert family.documentation == 'A "help" \\ text\nover lines'
    [sample] = family.samples
    assert sample.name == "tlog_monitor_polls_total" and sample.value == 7


@given(
    values=st.lists(
        st.tuples(
            st.text(max_size=40),
            st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 2**53),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda t: t[0],
    )
)
def test_any_label_value_and_number_round_trips_through_the_reference_parser(
    values: list[tuple[str, float]],
) -> None:
    family = Family(
        "tree_size",
        "gauge",
        "Any text.",
        tuple(Sample((("log", label), ("tree", "1")), value) for label, value in values),
    )
    [parsed] = text_string_to_metric_families(render([family]))
    assert parsed.type == "gauge"
    assert len(parsed.samples) == len(values)
    for sample, (label, value) in zip(parsed.samples, values, strict=True):
        assert sample.labels == {"log": label, "tree": "1"}
        if math.isnan(value):
            assert math.isnan(sample.value)
        else:
            assert sample.value == float(value)
