"""Prometheus metrics: what `/metrics` serves, in the text exposition format (version 0.0.4).

    PollStats (in-process)  ─┐
                             ├─> collect(store, stats, now) ─> [Family] ─> render() ─> text
    SQLite (log_state, ...) ─┘     (on the store's writer thread)          (pure)

Where each number comes from, and why:

- From the database, so they survive restarts and reloads and agree with `report status`:
  tree size (the largest checkpoint the log's own endpoint served), verified size, scan lag,
  last success time per view, alerts by kind and severity (a counter: alerts are never
  deleted), deliveries by status (a gauge: pending rows become delivered).
- In-process, in `PollStats`: polls by outcome. Counting every poll in SQLite would add a write
  per poll for a number Prometheus handles fine as a counter that restarts at zero
  (`rate()` and `increase()` treat a reset as such); `tlog_monitor_start_time_seconds` marks it.

Cardinality is bounded by the configuration: labels are log names, tree ids, view names, alert
kinds and severities, and a fixed set of outcomes and statuses; never entry data.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.store import Store, parse_utc

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "PollOutcome",
    "PollStats",
    "Sample",
    "collect",
    "escape_label_value",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "tlog_monitor_"


class PollOutcome(StrEnum):
    """How one poll of one log (and its scan) ended."""

    OK = "ok"
    """Every view answered, nothing new was alerted."""
    ALERT = "alert"
    """It raised at least one alert (and no view failed)."""
    ERROR = "error"
    """At least one view or the scan failed (network, garbage); see `report status`."""


def classify_poll(alerts: int, errors: int) -> PollOutcome:
    """The outcome of a poll that raised `alerts` alerts and recorded `errors` failures."""
    if errors:
        return PollOutcome.ERROR
    return PollOutcome.ALERT if alerts else PollOutcome.OK


@dataclass
class PollStats:
    """Polls counted by this process since it started (shared across reloads)."""

    started_at: float = field(default_factory=time.time)
    """Unix time the counters started from."""
    polls: Counter[tuple[str, PollOutcome]] = field(default_factory=Counter)

    def record(self, log: str, outcome: PollOutcome) -> None:
        """Count one finished poll of `log`."""
        self.polls[log, outcome] += 1

    def polled(self) -> set[str]:
        """The logs polled at least once (whatever the outcome)."""
        return {log for log, _ in self.polls}


# --- the exposition format (pure) ----------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One time series value: labels (name, value) in output order."""

    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class Family:
    """A metric family: `name` without the prefix; counters end in `_total`."""

    name: str
    kind: str
    """"gauge" or "counter"."""
    help: str
    samples: tuple[Sample, ...]


def escape_label_value(value: str) -> str:
    """A label value for the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, and Go's spelling of NaN and infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render(families: Iterable[Family]) -> str:
    """The families as Prometheus text: `# HELP`, `# TYPE`, then one line per sample.

    Families without samples still get their HELP and TYPE lines, so a dashboard sees that the
    metric exists. Label names are fixed by this module; label values are escaped.
    """
    lines: list[str] = []
    for family in families:
        # Format 0.0.4 names a counter's family with its `_total` suffix (OpenMetrics drops it).
        name = PREFIX + family.name
        lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {family.kind}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.labels)
            series = f"{name}{{{labels}}}" if labels else name
            lines.append(f"{series} {format_value(sample.value)}")
    return "\n".join(lines) + "\n"


# --- collection (reads the database) -------------------------------------------------------


def _unix(text: str | None) -> float | None:
    return parse_utc(text).timestamp() if text else None


def _family(name: str, kind: str, help_: str, samples: Iterable[Sample]) -> Family:
    return Family(name, kind, help_, tuple(samples))


def collect(store: Store, stats: PollStats, log_names: Sequence[str]) -> list[Family]:
    """Every metric family, from the database and `stats`; `log_names` are the configured logs
    (each gets a polls series per outcome, zero included, so `rate()` works from the start).

    Runs queries: call it on the store's thread (`AsyncStore.call`). Samples carry no
    timestamps: Prometheus stamps each scrape itself.
    """
    trees = store.query(
        "SELECT l.name AS log, s.tree_id, s.verified_size, s.scan_cursor, s.frozen, "
        # The largest size, not the newest row: the (log_id, tree_id, size) index answers it
        # without reading the tree's whole checkpoint history on every scrape.
        "(SELECT max(c.size) FROM checkpoints c WHERE c.log_id = s.log_id "
        " AND c.tree_id = s.tree_id AND c.view = 'primary') AS tree_size "
        "FROM log_state s JOIN logs l ON l.id = s.log_id ORDER BY l.name, s.tree_id"
    )
    views = store.query(
        "SELECT l.name AS log, h.view, h.last_ok_at, h.error_since FROM view_health h "
        "JOIN logs l ON l.id = h.log_id ORDER BY l.name, h.view"
    )
    alerts = store.query(
        "SELECT coalesce(l.name, '') AS log, a.kind, a.severity, count(*) AS n FROM alerts a "
        "LEFT JOIN logs l ON l.id = a.log_id GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    deliveries = store.query(
        "SELECT CASE WHEN status = 'pending' AND attempts > 0 THEN 'failing' ELSE status END "
        "AS status, count(*) AS n FROM deliveries GROUP BY 1"
    )

    def tree_labels(row: dict[str, object]) -> tuple[tuple[str, str], ...]:
        return (("log", str(row["log"])), ("tree", str(row["tree_id"])))

    by_status = {str(r["status"]): int(r["n"]) for r in deliveries}
    return [
        _family(
            "start_time_seconds",
            "gauge",
            "Unix time this process started counting polls.",
            [Sample((), stats.started_at)],
        ),
        _family(
            "tree_size",
            "gauge",
            "Largest size of a validly signed checkpoint the log's own endpoint served.",
            (Sample(tree_labels(r), int(r["tree_size"] or r["verified_size"])) for r in trees),
        ),
        _family(
            "verified_size",
            "gauge",
            "Size of the newest checkpoint proven consistent with everything seen before.",
            (Sample(tree_labels(r), int(r["verified_size"])) for r in trees),
        ),
        _family(
            "scan_lag_entries",
            "gauge",
            "Entries of the tree not yet scanned for watched identities (tree size minus scan "
            "cursor); only trees of logs with scan = true.",
            (
                Sample(
                    tree_labels(r),
                    max(
                        0,
                        max(int(r["tree_size"] or 0), int(r["verified_size"]))
                        - int(r["scan_cursor"]),
                    ),
                )
                for r in trees
                if r["scan_cursor"] is not None
            ),
        ),
        _family(
            "frozen",
            "gauge",
            "1 for a frozen (inactive) Rekor v1 shard, 0 for the active tree.",
            (Sample(tree_labels(r), 1 if r["frozen"] else 0) for r in trees),
        ),
        _family(
            "last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful poll of each view of each log ('primary' is the "
            "log's own url).",
            (
                Sample((("log", str(r["log"])), ("view", str(r["view"]))), ts)
                for r in views
                if (ts := _unix(r["last_ok_at"])) is not None
            ),
        ),
        _family(
            "view_failing",
            "gauge",
            "1 while the view's polls fail (since the time in report status), else 0.",
            (
                Sample(
                    (("log", str(r["log"])), ("view", str(r["view"]))), 1 if r["error_since"] else 0
                )
                for r in views
            ),
        ),
        _family(
            "polls_total",
            "counter",
            "Polls of each log by outcome (ok, alert, error) since this process started.",
            (
                Sample((("log", name), ("outcome", outcome.value)), stats.polls[name, outcome])
                for name in sorted(set(log_names) | stats.polled())
                for outcome in PollOutcome
            ),
        ),
        _family(
            "alerts_total",
            "counter",
            "Alerts raised, by log, kind and severity (from the database: survives restarts).",
            (
                Sample(
                    (
                        ("log", str(r["log"])),
                        ("kind", str(r["kind"])),
                        ("severity", str(r["severity"])),
                    ),
                    int(r["n"]),
                )
                for r in alerts
            ),
        ),
        _family(
            "deliveries",
            "gauge",
            "Alert deliveries (alert x delivery target) by status: delivered; pending, never "
            "tried; failing, pending after at least one failed attempt.",
            (
                Sample((("status", status),), by_status.get(status, 0))
                for status in ("delivered", "pending", "failing")
            ),
        ),
    ]
