"""Reports over the database: alerts, checkpoints, status. Columns are a stable contract
(docs/reports.md); formats are an aligned table, JSON (a list of objects) or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.store import Store, utc_iso
from monitor.terminal import printable


class ReportFormat(StrEnum):
    """Output formats of `tlog-monitor report`."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True)
class Report:
    """Named columns and rows of values."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


ALERT_COLUMNS = (
    "id",
    "created_at",
    "severity",
    "kind",
    "log",
    "rule",
    "summary",
    "delivered",
    "pending",
)
CHECKPOINT_COLUMNS = (
    "log",
    "tree_id",
    "view",
    "origin",
    "size",
    "root",
    "first_seen",
    "last_seen",
    "cosigners",
)
MATCH_COLUMNS = (
    "id",
    "created_at",
    "log",
    "tree_id",
    "tree_index",
    "log_index",
    "rule",
    "outcome",
    "source",
    "signer",
    "issuer",
    "alert_id",
)
STATUS_COLUMNS = (
    "log",
    "tree_id",
    "origin",
    "verified_size",
    "verified_root",
    "high_water",
    "frozen",
    "updated_at",
    "last_ok_at",
    "error_since",
    "last_error",
    "search_terms",
    "search_fetched",
    "requests_last_min",
    "requests_per_minute",
)


def _filters(log: str | None, since: datetime | None, time_column: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if log is not None:
        clauses.append("l.name = ?")
        params.append(log)
    if since is not None:
        clauses.append(f"{time_column} >= ?")
        params.append(utc_iso(since))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def alerts_report(
    store: Store, *, log: str | None = None, since: datetime | None = None, details: bool = False
) -> Report:
    """Every alert, newest first, with its delivery progress (and its details, for JSON)."""
    where, params = _filters(log, since, "a.created_at")
    rows = store.query(
        "SELECT a.id, a.created_at, a.severity, a.kind, l.name AS log, a.rule, a.summary, "
        "a.details, "
        "(SELECT count(*) FROM deliveries d WHERE d.alert_id = a.id AND d.status = 'delivered') "
        "AS delivered, "
        "(SELECT count(*) FROM deliveries d WHERE d.alert_id = a.id AND d.status = 'pending') "
        "AS pending "
        f"FROM alerts a LEFT JOIN logs l ON l.id = a.log_id{where} ORDER BY a.id DESC",
        params,
    )
    columns = ALERT_COLUMNS + (("details",) if details else ())
    for row in rows:
        row["details"] = json.loads(row["details"])
    return Report(columns, [{c: r[c] for c in columns} for r in rows])


def checkpoints_report(
    store: Store, *, log: str | None = None, since: datetime | None = None
) -> Report:
    """Every distinct checkpoint seen, per view, newest first."""
    where, params = _filters(log, since, "c.last_seen")
    rows = store.query(
        "SELECT l.name AS log, c.tree_id, c.view, c.origin, c.size, c.root, c.first_seen, "
        f"c.last_seen, c.cosigners FROM checkpoints c JOIN logs l ON l.id = c.log_id{where} "
        "ORDER BY c.id DESC",
        params,
    )
    for row in rows:
        row["root"] = row["root"].hex()
        row["cosigners"] = ", ".join(json.loads(row["cosigners"])) or None
    return Report(CHECKPOINT_COLUMNS, rows)


def matches_report(
    store: Store,
    *,
    log: str | None = None,
    since: datetime | None = None,
    rule: str | None = None,
    details: bool = False,
) -> Report:
    """Every entry that matched a watch rule, newest first (with the identity, for JSON)."""
    where, params = _filters(log, since, "m.created_at")
    if rule is not None:
        where += (" AND " if where else " WHERE ") + "m.rule = ?"
        params.append(rule)
    # A database the daemon has not migrated yet (reports open it read-only) has no
    # global_index; there, and on rows from before it, the tree index is the best known.
    known = {r["name"] for r in store.query("PRAGMA table_info(matches)")}
    log_index = (
        "COALESCE(m.global_index, m.log_index)" if "global_index" in known else "m.log_index"
    )
    rows = store.query(
        "SELECT m.id, m.created_at, l.name AS log, m.tree_id, m.log_index AS tree_index, "
        f"{log_index} AS log_index, m.rule, m.outcome, m.source, m.identity, m.alert_id "
        f"FROM matches m JOIN logs l ON l.id = m.log_id{where} ORDER BY m.id DESC",
        params,
    )
    columns = MATCH_COLUMNS + (("identity",) if details else ())
    for row in rows:
        identity = json.loads(row["identity"])
        row["identity"] = identity
        sans = identity.get("sans") or []
        row["signer"] = identity.get("build_signer_uri") or (
            ", ".join(str(s) for s in sans) if sans else identity.get("key_fingerprint")
        )
        row["issuer"] = identity.get("issuer")
    return Report(columns, [{c: r.get(c) for c in columns} for r in rows])


def status_report(store: Store, *, log: str | None = None) -> Report:
    """Per log and tree: verified state and the health of the log's own endpoint."""
    where, params = _filters(log, None, "")
    # A database the daemon has not migrated yet (reports open it read-only) has no
    # search_progress table: its search columns are empty.
    progress = (
        "search_progress"
        if store.query("SELECT 1 FROM sqlite_master WHERE name = 'search_progress'")
        else "(SELECT NULL AS log_id, NULL AS terms, NULL AS fetched, "
        "NULL AS requests_last_min, NULL AS requests_per_minute)"
    )
    rows = store.query(
        "SELECT l.name AS log, s.tree_id, s.origin, s.verified_size, s.verified_root, "
        "s.high_water, s.frozen, s.updated_at, h.last_ok_at, h.error_since, h.last_error, "
        "p.terms AS search_terms, p.fetched AS search_fetched, p.requests_last_min, "
        "p.requests_per_minute "
        "FROM logs l LEFT JOIN log_state s ON s.log_id = l.id "
        "LEFT JOIN view_health h ON h.log_id = l.id AND h.view = 'primary' "
        f"LEFT JOIN {progress} p ON p.log_id = l.id"
        f"{where} ORDER BY l.name, s.frozen, s.updated_at DESC",
        params,
    )
    for row in rows:
        if row["verified_root"] is not None:
            row["verified_root"] = row["verified_root"].hex()
        if row["frozen"] is not None:
            row["frozen"] = bool(row["frozen"])
    return Report(STATUS_COLUMNS, rows)


def _cell(value: Any) -> str:
    """A table or CSV cell: stored text (SANs, summaries, servers' errors) comes from the
    network, so control and bidi characters are escaped (`monitor.terminal`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)  # ASCII only: every such character escaped
    return printable(str(value))


def render(report: Report, fmt: ReportFormat, *, max_width: int = 80) -> str:
    """The report as text in `fmt`; table cells longer than `max_width` are shortened."""
    if fmt is ReportFormat.JSON:
        return json.dumps(report.rows, indent=2, sort_keys=False, default=str) + "\n"
    if fmt is ReportFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(report.columns)
        for row in report.rows:
            writer.writerow([_cell(row.get(c)) for c in report.columns])
        return out.getvalue()
    return _table(
        report.columns, [[_cell(r.get(c)) for c in report.columns] for r in report.rows], max_width
    )


def _table(columns: Sequence[str], cells: list[list[str]], max_width: int) -> str:
    def fit(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    body = [[fit(c) for c in row] for row in cells]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(columns)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body
    )
    if not body:
        lines.append("(none)")
    return "\n".join(lines) + "\n"
