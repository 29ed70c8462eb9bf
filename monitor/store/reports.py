"""The read-only queries behind reports, `/metrics` and evidence export: rows as dicts (through
sqlite-utils), their shaping and columns left to the callers (`monitor.cli.reports`,
`monitor.service.metrics`, `monitor.cli.evidence_export`). Run them on the store's thread
(`AsyncStore.reports`) or on a `Store.open_readonly` store.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from monitor.store.times import utc_iso


class Store(Protocol):
    """What these queries need of `monitor.store.database.Store` (which imports them)."""

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]: ...

    def log_names(self) -> dict[int, str]: ...


@dataclass(frozen=True)
class Gauges:
    """The part of `/metrics` re-read whole on each refresh: every query here is bounded by
    the configuration (logs, trees, views) or answered from an index."""

    trees: tuple[dict[str, Any], ...]
    views: tuple[dict[str, Any], ...]
    deliveries: dict[str, int]
    log_names: dict[int, str]
    seconds: float
    """How long the reads took on the database thread."""


def _filters(
    log: str | None,
    since: datetime | None,
    time_column: str,
    equal: Sequence[tuple[str, Any]] = (),
) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters: the log's name, `time_column` from `since`, and
    each (column, value) of `equal` whose value is not None."""
    # The columns are constants of this module's callers, never data.
    clauses: list[str] = []
    params: list[Any] = []
    if log is not None:
        clauses.append("l.name = ?")
        params.append(log)
    if since is not None:
        clauses.append(f"{time_column} >= ?")
        params.append(utc_iso(since))
    for column, value in equal:
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def alert_rows(
    store: Store,
    *,
    log: str | None = None,
    since: datetime | None = None,
    alert_id: int | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """Alerts, newest first, each with its log's name, its details (JSON text) and its
    delivered and pending delivery counts."""
    where, params = _filters(log, since, "a.created_at", [("a.id", alert_id), ("a.kind", kind)])
    # `+d.status` keeps SQLite on the (alert_id, channel) index: on the status index each
    # alert's count scanned every pending row, minutes for a flood of 100,000 alerts.
    return store.query(
        "SELECT a.id, a.created_at, a.severity, a.kind, l.name AS log, a.rule, a.summary, "
        "a.details, "
        "(SELECT count(*) FROM deliveries d WHERE d.alert_id = a.id AND +d.status = 'delivered') "
        "AS delivered, "
        "(SELECT count(*) FROM deliveries d WHERE d.alert_id = a.id AND +d.status = 'pending') "
        "AS pending "
        f"FROM alerts a LEFT JOIN logs l ON l.id = a.log_id{where} ORDER BY a.id DESC",
        params,
    )


def checkpoint_rows(
    store: Store, *, log: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Every distinct checkpoint seen, per view, newest first (root as bytes, cosigners as
    JSON text)."""
    where, params = _filters(log, since, "c.last_seen")
    return store.query(
        "SELECT l.name AS log, c.tree_id, c.view, c.origin, c.size, c.root, c.first_seen, "
        f"c.last_seen, c.cosigners FROM checkpoints c JOIN logs l ON l.id = c.log_id{where} "
        "ORDER BY c.id DESC",
        params,
    )


def match_rows(
    store: Store,
    *,
    log: str | None = None,
    since: datetime | None = None,
    rule: str | None = None,
) -> list[dict[str, Any]]:
    """Every watch-rule match, newest first: `tree_index` (in its tree) and `log_index` (the
    global index users look the entry up by), identity as JSON text."""
    where, params = _filters(log, since, "m.created_at", [("m.rule", rule)])
    return store.query(
        "SELECT m.id, m.created_at, l.name AS log, m.tree_id, m.tree_index, "
        "m.global_index AS log_index, m.rule, m.outcome, m.source, m.identity, m.alert_id "
        f"FROM matches m JOIN logs l ON l.id = m.log_id{where} ORDER BY m.id DESC",
        params,
    )


def status_rows(store: Store, *, log: str | None = None) -> list[dict[str, Any]]:
    """Per log and tree: verified state, the health of the log's own endpoint, the search's
    progress and where the log came from (`source`: NULL for a [[log]] table, else the
    [[sigstore]] source); the active tree first."""
    where, params = _filters(log, None, "")
    return store.query(
        "SELECT l.name AS log, s.tree_id, s.origin, s.verified_size, s.verified_root, "
        "s.high_water, s.frozen, s.updated_at, h.last_ok_at, h.error_since, h.last_error, "
        "p.terms AS search_terms, p.fetched AS search_fetched, p.requests_last_min, "
        "p.requests_per_minute, l.source "
        "FROM logs l LEFT JOIN log_state s ON s.log_id = l.id "
        "LEFT JOIN view_health h ON h.log_id = l.id AND h.view = 'primary' "
        "LEFT JOIN search_progress p ON p.log_id = l.id"
        f"{where} ORDER BY l.name, s.frozen, s.updated_at DESC",
        params,
    )


def trust_source_rows(store: Store) -> list[dict[str, Any]]:
    """Per [[sigstore]] source: where its current trust came from, its TUF versions and content
    digest, when it was recorded, and the refresh health; ordered by source."""
    return store.query(
        "SELECT s.source, t.origin, t.root_version, t.timestamp_version, t.snapshot_version, "
        "t.targets_version, t.sha256, t.recorded_at, s.last_refresh, s.last_success, "
        "s.error_since, s.errors, s.last_error "
        "FROM trust_sources s LEFT JOIN trust_snapshots t ON t.id = s.snapshot_id "
        "ORDER BY s.source"
    )


def trust_change_rows(
    store: Store,
    *,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Recorded trust changes, newest first, at most `limit`: each with the TUF versions of
    the snapshot that brought it and its alert (`before` / `after` as JSON text)."""
    where, params = _filters(None, since, "c.recorded_at", [("c.source", source)])
    return store.query(
        "SELECT c.id, c.recorded_at, c.source, c.change, c.section, c.name, "
        "t.root_version, t.targets_version, c.alert_id, c.before, c.after "
        f"FROM trust_changes c JOIN trust_snapshots t ON t.id = c.snapshot_id{where} "
        "ORDER BY c.id DESC LIMIT ?",
        [*params, limit],
    )


def alert_evidence(store: Store, alert_id: int) -> dict[str, Any] | None:
    """Alert `alert_id`'s kind, details (JSON text) and log name, or None when there is none."""
    rows = store.query(
        "SELECT a.kind, a.details, l.name AS log FROM alerts a LEFT JOIN logs l "
        "ON l.id = a.log_id WHERE a.id = ?",
        (alert_id,),
    )
    return rows[0] if rows else None


def read_gauges(store: Store) -> Gauges:
    """Read `/metrics`' gauges."""
    started = time.perf_counter()
    trees = store.query(
        "SELECT l.name AS log, s.tree_id, s.verified_size, s.scan_cursor, s.frozen, "
        # The largest size, not the newest row: the (log_id, tree_id, size) index answers it
        # without reading the tree's whole checkpoint history on every refresh.
        "(SELECT max(c.size) FROM checkpoints c WHERE c.log_id = s.log_id "
        " AND c.tree_id = s.tree_id AND c.view = 'primary') AS tree_size "
        "FROM log_state s JOIN logs l ON l.id = s.log_id ORDER BY l.name, s.tree_id"
    )
    views = store.query(
        "SELECT l.name AS log, h.view, h.last_ok_at, h.error_since FROM view_health h "
        "JOIN logs l ON l.id = h.log_id ORDER BY l.name, h.view"
    )
    # Counted from the (status, next_try) index without reading the rows; only pending rows
    # (the outbox's backlog, not its history) are read, for their attempts.
    by_status = {
        str(r["status"]): int(r["n"])
        for r in store.query("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    }
    failing = int(
        store.query(
            "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND attempts > 0"
        )[0]["n"]
    )
    return Gauges(
        trees=tuple(trees),
        views=tuple(views),
        deliveries={
            "delivered": by_status.get("delivered", 0),
            "pending": by_status.get("pending", 0) - failing,
            "failing": failing,
        },
        log_names=store.log_names(),
        seconds=time.perf_counter() - started,
    )


def read_new_alerts(
    store: Store, after: int, limit: int
) -> tuple[list[tuple[int | None, str, str, int]], int, int]:
    """Alerts with an id above `after`, at most `limit` of them, counted by (log id, kind,
    severity); returns the counts, the last id read and how many rows were read. Alerts are
    never deleted and a new alert's id is above every earlier one, so counting from the last
    id read never misses or repeats one."""
    rows = store.query(
        "SELECT log_id, kind, severity, count(*) AS n, max(id) AS last FROM "
        "(SELECT id, log_id, kind, severity FROM alerts WHERE id > ? ORDER BY id LIMIT ?) "
        "GROUP BY 1, 2, 3",
        (after, limit),
    )
    counts = [(r["log_id"], str(r["kind"]), str(r["severity"]), int(r["n"])) for r in rows]
    last = max((int(r["last"]) for r in rows), default=after)
    return counts, last, sum(n for *_, n in counts)
