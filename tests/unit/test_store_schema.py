"""The one initial schema: columns named for what they hold (issue 13)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitor.store.database import Store


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, int]:
    return {str(r[1]): int(r[3]) for r in conn.execute(f"PRAGMA table_info({table})")}


def test_one_initial_schema_with_tree_indexes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db" / "m.db")
    try:
        with store.reading() as conn:
            applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
            matches = _columns(conn, "matches")
            scan_errors = _columns(conn, "scan_errors")
            search_seen = _columns(conn, "search_seen")
    finally:
        store.close()
    assert applied == [
        "001_initial",
        "002_trust",
        "003_certificates",
        "004_sct_promises",
        "005_unlogged_certificates",
        "006_unlogged_searches",
        "007_ct_leaves_age",
    ]
    # name -> NOT NULL: every match knows both its tree index and its global index.
    assert matches["tree_index"] == 1 and matches["global_index"] == 1
    assert "log_index" not in matches
    assert "tree_index" in scan_errors and "log_index" not in scan_errors
    assert "tree_index" in search_seen and "log_index" not in search_seen
