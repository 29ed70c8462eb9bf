"""Prometheus metrics: what `/metrics` serves, in the text exposition format (version 0.0.4).

    PollStats (in-process)  ──────────────────────────────┐
                                                          ├─> families() ─> render() ─> text
    SQLite ─> read_gauges(), read_new_alerts() ─> DatabaseFigures       (pure)
              (monitor.store.reports, on the store thread; MetricsSource decides when)

Where each number comes from, and why:

- From the database, so they survive restarts and reloads and agree with `report status`:
  tree size (the largest checkpoint the log's own endpoint served), verified size, scan lag,
  last success time per view, alerts by kind and severity (a counter: alerts are never
  deleted), deliveries by status (a gauge: pending rows become delivered).
- In-process, in `PollStats`: polls by outcome. Counting every poll in SQLite would add a write
  per poll for a number Prometheus handles fine as a counter that restarts at zero
  (`rate()` and `increase()` treat a reset as such); `tlog_monitor_start_time_seconds` marks it.

A scrape costs the database next to nothing whatever its size and however many clients
scrape: see `MetricsSource` (one shared refresh, only after a change, at most a tenth of the
database thread; alerts counted incrementally by id).

Cardinality is bounded by the configuration: labels are log names, tree ids, view names, alert
kinds and severities, and a fixed set of outcomes and statuses; never entry data.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from monitor.store.database import AsyncStore, parse_utc

__all__ = [
    "CONTENT_TYPE",
    "DatabaseFigures",
    "Family",
    "MetricsSource",
    "PollOutcome",
    "PollStats",
    "Sample",
    "escape_label_value",
    "families",
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


@dataclass(frozen=True)
class DatabaseFigures:
    """What `/metrics` shows from the database, read at one moment (see `MetricsSource`)."""

    trees: tuple[dict[str, Any], ...] = ()
    """Rows of log, tree_id, verified_size, scan_cursor, frozen, tree_size."""
    views: tuple[dict[str, Any], ...] = ()
    """Rows of log, view, last_ok_at, error_since."""
    alerts: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    """(log name, kind, severity) to the number of alerts ever raised."""
    deliveries: Mapping[str, int] = field(default_factory=dict)
    """delivered, pending (never tried) and failing (pending after a failed attempt)."""


ALERT_CHUNK = 5000
"""Alerts counted per call on the database thread: a first count of a large database is split
so that polls' own database calls run in between (about 10 ms each at 5,000 alerts)."""
REFRESH_SHARE = 10
"""After a refresh that took t seconds on the database thread, the next one waits at least
(REFRESH_SHARE - 1) * t: `/metrics` never takes more than 1/REFRESH_SHARE of that thread,
however often and by however many clients it is scraped."""


class MetricsSource:
    """Everything `/metrics` serves, kept cheap however often it is scraped.

    - Concurrent scrapes share one refresh: at most one read of the database is queued on its
      thread at a time.
    - A refresh re-reads nothing when the database has not changed since the last one
      (`Store.change_marker`), and not before the last refresh's cost has been paid back
      (`REFRESH_SHARE`); otherwise the last figures are served.
    - Alerts are counted incrementally, from the last alert id counted (never a count over the
      whole table); the gauges come from tables bounded by the configuration, and the
      deliveries from the outbox's index.
    """

    def __init__(
        self,
        store: AsyncStore,
        stats: PollStats,
        log_names: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.stats = stats
        self.log_names = sorted(log_names)
        self._clock = clock
        self._figures: DatabaseFigures | None = None
        self._marker: tuple[int, int] | None = None
        self._not_before = 0.0
        self._alerts: Counter[tuple[int | None, str, str]] = Counter()
        self._alert_cursor = 0
        self._refreshing: asyncio.Future[DatabaseFigures] | None = None

    async def families(self) -> list[Family]:
        """Every metric family, refreshing the database figures if due. Raises StoreError
        when the database cannot be read."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        # Shielded: a scraper that goes away does not cancel the refresh others wait for.
        figures = await asyncio.shield(self._refreshing)
        return families(figures, self.stats, self.log_names)

    def _refreshed(self, done: asyncio.Future[DatabaseFigures]) -> None:
        self._refreshing = None
        if not done.cancelled():
            done.exception()  # retrieved: the scrapes that awaited it have it

    async def _refresh(self) -> DatabaseFigures:
        if self._figures is not None and self._clock() < self._not_before:
            return self._figures
        store = self.store
        # Read before the figures: a write in between only makes the next refresh re-read.
        marker = await store.reports.change_marker()
        if self._figures is not None and marker == self._marker:
            return self._figures
        gauges = await store.reports.gauges()
        while True:
            counts, last, read = await store.reports.new_alerts(self._alert_cursor, ALERT_CHUNK)
            for log_id, kind, severity, n in counts:
                self._alerts[log_id, kind, severity] += n
            self._alert_cursor = last
            if read < ALERT_CHUNK:
                break
        alerts: Counter[tuple[str, str, str]] = Counter()
        for (log_id, kind, severity), n in self._alerts.items():
            name = "" if log_id is None else gauges.log_names.get(log_id, str(log_id))
            alerts[name, kind, severity] += n
        self._figures = DatabaseFigures(gauges.trees, gauges.views, alerts, gauges.deliveries)
        self._marker = marker
        self._not_before = self._clock() + (REFRESH_SHARE - 1) * gauges.seconds
        return self._figures


def families(figures: DatabaseFigures, stats: PollStats, log_names: Sequence[str]) -> list[Family]:
    """Every metric family, from the database figures and `stats`; `log_names` are the
    configured logs (each gets a polls series per outcome, zero included, so `rate()` works
    from the start). Pure. Samples carry no timestamps: Prometheus stamps each scrape itself.
    """
    trees = figures.trees
    views = figures.views

    def tree_labels(row: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
        return (("log", str(row["log"])), ("tree", str(row["tree_id"])))

    by_status = figures.deliveries
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
                Sample((("log", log), ("kind", kind), ("severity", severity)), n)
                for (log, kind, severity), n in sorted(figures.alerts.items())
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
