"""Reports over the database: alerts, checkpoints, matches, status, trust. Columns are a stable
contract (docs/reports.md); formats are an aligned table, JSON (a list of objects) or CSV."""

from __future__ import annotations

import csv
import io
import json
import shutil
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from monitor.core.terminal import printable
from monitor.store import reports as queries
from monitor.store.database import Store


class ReportFormat(StrEnum):
    """Output formats of `tlog-monitor report`."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True)
class TableLayout:
    """How `--format table` shows a report in a terminal's width; JSON and CSV show every
    column in full. Columns in neither `row` nor `under` are left out of the table."""

    row: tuple[str, ...]
    """Columns on the row, in this order."""
    under: tuple[str, ...] = ()
    """Long text, each on its own wrapped line under the row (`name: value`) when not empty."""
    shrink: tuple[str, ...] = ()
    """Row columns cut with "…" when the row is wider than the terminal."""
    cut_middle: tuple[str, ...] = ()
    """Shrunk columns cut in the middle, keeping the end (a view's URL ends with its name)."""


@dataclass(frozen=True)
class Report:
    """Named columns and rows of values."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    layout: TableLayout | None = None
    """The table's layout; None: every column on the row."""


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
    "source",
)
TRUST_SOURCE_COLUMNS = (
    "source",
    "origin",
    "root_version",
    "timestamp_version",
    "snapshot_version",
    "targets_version",
    "sha256",
    "recorded_at",
    "last_refresh",
    "last_success",
    "error_since",
    "errors",
    "last_error",
)
TRUST_CHANGE_COLUMNS = (
    "id",
    "recorded_at",
    "source",
    "change",
    "section",
    "name",
    "root_version",
    "targets_version",
    "alert_id",
    "before",
    "after",
)
CONFIG_SOURCE = "config"
"""`report status`'s `source` of a log from a [[log]] table."""
DEFAULT_TRUST_CHANGES = 100
"""How many trust changes `report trust` shows unless --limit says otherwise."""


ALERT_TABLE = TableLayout(
    row=("id", "created_at", "severity", "kind", "log", "rule", "delivered", "pending"),
    under=("summary",),
    shrink=("log", "rule"),
)
CHECKPOINT_TABLE = TableLayout(
    row=("log", "tree_id", "view", "size", "root", "last_seen"),
    under=("cosigners",),
    shrink=("view", "log", "tree_id"),
    cut_middle=("view",),
)
MATCH_TABLE = TableLayout(
    row=("id", "created_at", "log", "log_index", "rule", "outcome", "source", "alert_id"),
    under=("signer", "issuer"),
    shrink=("log", "rule"),
)
STATUS_TABLE = TableLayout(
    row=("log", "tree_id", "verified_size", "high_water", "frozen", "last_ok_at", "source"),
    under=("error_since", "last_error"),
    shrink=("log", "tree_id", "source"),
)
TRUST_SOURCE_TABLE = TableLayout(
    row=("source", "origin", "root_version", "targets_version", "recorded_at", "last_success"),
    under=("error_since", "last_error"),
    shrink=("source",),
)
TRUST_CHANGE_TABLE = TableLayout(
    row=("id", "recorded_at", "source", "change", "section", "targets_version", "alert_id"),
    under=("name",),
    shrink=("source", "section"),
)

DEFAULT_TABLE_WIDTH = 100
"""The table's width when the output is not a terminal and $COLUMNS is not set."""
MIN_TABLE_WIDTH = 40
_TIME_COLUMNS = frozenset(
    {
        "created_at",
        "first_seen",
        "last_seen",
        "updated_at",
        "last_ok_at",
        "error_since",
        "recorded_at",
        "last_refresh",
        "last_success",
    }
)
_HASH_COLUMNS = frozenset({"root", "verified_root"})
_HASH_SHOWN = 12
"""Hex digits of a root hash on a table row (as git shortens commit ids)."""
_MAX_UNDER = 600
"""Characters of one under-the-row value; longer ones (a hostile server's error) are cut."""


def alerts_report(
    store: Store,
    *,
    log: str | None = None,
    since: datetime | None = None,
    details: bool = False,
    alert_id: int | None = None,
    kind: str | None = None,
) -> Report:
    """Every alert, newest first, with its delivery progress (and its details, for JSON);
    only alert `alert_id` when given (the command in every notification's footer); only alerts
    of `kind` when given (the command in a digest notification)."""
    rows = queries.alert_rows(store, log=log, since=since, alert_id=alert_id, kind=kind)
    columns = ALERT_COLUMNS + (("details",) if details else ())
    for row in rows:
        row["details"] = json.loads(row["details"])
    return Report(columns, [{c: r[c] for c in columns} for r in rows], ALERT_TABLE)


def checkpoints_report(
    store: Store, *, log: str | None = None, since: datetime | None = None
) -> Report:
    """Every distinct checkpoint seen, per view, newest first."""
    rows = queries.checkpoint_rows(store, log=log, since=since)
    for row in rows:
        row["root"] = row["root"].hex()
        row["cosigners"] = ", ".join(json.loads(row["cosigners"])) or None
    return Report(CHECKPOINT_COLUMNS, rows, CHECKPOINT_TABLE)


def matches_report(
    store: Store,
    *,
    log: str | None = None,
    since: datetime | None = None,
    rule: str | None = None,
    details: bool = False,
) -> Report:
    """Every entry that matched a watch rule, newest first (with the identity, for JSON)."""
    rows = queries.match_rows(store, log=log, since=since, rule=rule)
    columns = MATCH_COLUMNS + (("identity",) if details else ())
    for row in rows:
        identity = json.loads(row["identity"])
        row["identity"] = identity
        sans = identity.get("sans") or []
        row["signer"] = identity.get("build_signer_uri") or (
            ", ".join(str(s) for s in sans) if sans else identity.get("key_fingerprint")
        )
        row["issuer"] = identity.get("issuer")
    return Report(columns, [{c: r.get(c) for c in columns} for r in rows], MATCH_TABLE)


def status_report(store: Store, *, log: str | None = None) -> Report:
    """Per log and tree: verified state and the health of the log's own endpoint."""
    rows = queries.status_rows(store, log=log)
    for row in rows:
        if row["verified_root"] is not None:
            row["verified_root"] = row["verified_root"].hex()
        if row["frozen"] is not None:
            row["frozen"] = bool(row["frozen"])
        row["source"] = row["source"] or CONFIG_SOURCE
    return Report(STATUS_COLUMNS, rows, STATUS_TABLE)


@dataclass(frozen=True)
class TrustReport:
    """`report trust`: the [[sigstore]] sources, then their recorded changes."""

    sources: Report
    changes: Report
    limit: int


def trust_report(
    store: Store, *, since: datetime | None = None, limit: int = DEFAULT_TRUST_CHANGES
) -> TrustReport:
    """Per [[sigstore]] source, where its current trust came from and the refresh health; then
    the recorded trust changes, newest first, at most `limit` (from `since`)."""
    sources = queries.trust_source_rows(store)
    changes = queries.trust_change_rows(store, since=since, limit=limit)
    for row in changes:
        for side in ("before", "after"):
            row[side] = None if row[side] is None else json.loads(row[side])
    return TrustReport(
        Report(
            TRUST_SOURCE_COLUMNS,
            [{c: r[c] for c in TRUST_SOURCE_COLUMNS} for r in sources],
            TRUST_SOURCE_TABLE,
        ),
        Report(
            TRUST_CHANGE_COLUMNS,
            [{c: r[c] for c in TRUST_CHANGE_COLUMNS} for r in changes],
            TRUST_CHANGE_TABLE,
        ),
        limit,
    )


def render_trust(report: TrustReport, fmt: ReportFormat, *, width: int | None = None) -> str:
    """`report trust` as text: JSON is one object {"sources": [...], "changes": [...]}; the
    table format shows the two tables one after the other. CSV has one table per file, so
    `report trust` has none (the command refuses it)."""
    if fmt is ReportFormat.CSV:
        raise ValueError("report trust: no CSV format (two tables); use table or json")
    if fmt is ReportFormat.JSON:
        both = {"sources": report.sources.rows, "changes": report.changes.rows}
        return json.dumps(both, indent=2, default=str) + "\n"
    shown = len(report.changes.rows)
    more = f", the newest {report.limit} (--limit)" if shown == report.limit else ""
    return (
        "trust sources ([[sigstore]]):\n"
        + render(report.sources, fmt, width=width)
        + f"\ntrust changes, newest first{more}:\n"
        + render(report.changes, fmt, width=width)
    )


def _cell(value: Any) -> str:
    """A table or CSV cell: stored text (SANs, summaries, servers' errors) comes from the
    network, so control and bidi characters are escaped (`monitor.core.terminal`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)  # ASCII only: every such character escaped
    return printable(str(value))


def table_width() -> int:
    """The width tables fit: $COLUMNS, else the terminal's, else `DEFAULT_TABLE_WIDTH`."""
    columns = shutil.get_terminal_size((DEFAULT_TABLE_WIDTH, 24)).columns
    return max(columns, MIN_TABLE_WIDTH)


def render(report: Report, fmt: ReportFormat, *, width: int | None = None) -> str:
    """The report as text in `fmt`; a table fits `width` columns (default `table_width()`)."""
    if fmt is ReportFormat.JSON:
        return json.dumps(report.rows, indent=2, sort_keys=False, default=str) + "\n"
    if fmt is ReportFormat.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(report.columns)
        for row in report.rows:
            writer.writerow([_cell(row.get(c)) for c in report.columns])
        return out.getvalue()
    layout = report.layout or TableLayout(row=report.columns)
    return _table(layout, report.rows, table_width() if width is None else width)


def _row_cell(column: str, value: Any) -> str:
    """A cell on a table row: one line; times to the second (UTC, `Z`), root hashes shortened.
    The JSON and CSV formats keep the exact values."""
    if column in _TIME_COLUMNS and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if column in _HASH_COLUMNS and isinstance(value, str) and len(value) > _HASH_SHOWN:
        return _cell(value[:_HASH_SHOWN]) + "…"
    return " ".join(_cell(value).split())


def _cut(text: str, width: int, *, middle: bool = False) -> str:
    if len(text) <= width:
        return text
    if middle and width >= 8:
        head = (width - 1) // 3
        return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return text[: max(width - 1, 0)] + "…"


def _table(layout: TableLayout, rows: list[dict[str, Any]], width: int) -> str:
    # A column empty on every row says nothing: left out, so the others get its width.
    columns = [c for c in layout.row if any(r.get(c) not in (None, "") for r in rows)]
    under = list(layout.under)
    if not columns:
        columns = list(layout.row[:1])
    cells = [{c: _row_cell(c, r.get(c)) for c in columns} for r in rows]
    widths = {c: max([len(c)] + [len(row[c]) for row in cells]) for c in columns}

    def total() -> int:
        return sum(widths[c] for c in columns) + 2 * (len(columns) - 1)

    while total() > width:
        shrinkable = [c for c in layout.shrink if c in widths and widths[c] > max(len(c), 8)]
        if shrinkable:
            widest = max(shrinkable, key=lambda c: widths[c])
            widths[widest] = max(widths[widest] - (total() - width), len(widest), 8)
        elif len(columns) > 2:
            # Still too wide (a narrow terminal): the last column goes under the row instead.
            moved = columns.pop()
            under.insert(0, moved)
            del widths[moved]
        else:
            break
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in columns))
    for row, cell in zip(rows, cells, strict=True):
        fitted = [
            _cut(cell[c], widths[c], middle=c in layout.cut_middle).ljust(widths[c])
            for c in columns
        ]
        lines.append("  ".join(fitted).rstrip())
        for name in under:
            value = row.get(name)
            if value in (None, ""):
                continue
            shown = _row_cell(name, value) if name in _TIME_COLUMNS else _cell(value)
            text = _cut(f"{name}: {' '.join(shown.split())}", _MAX_UNDER)
            lines.extend(
                textwrap.wrap(
                    text,
                    width=width,
                    initial_indent="    ",
                    subsequent_indent="      ",
                    break_long_words=True,
                    break_on_hyphens=False,
                )
            )
    if not rows:
        lines.append("(none)")
    return "\n".join(lines) + "\n"
