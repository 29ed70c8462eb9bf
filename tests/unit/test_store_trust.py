"""The trust of [[sigstore]] sources on a real SQLite file (migration 002_trust): snapshots are
recorded once per content, every change with its alert, refresh failures as one run per outage;
an existing 001-only database upgrades in place."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from monitor.core.alerts import Alert, trust_changed_alert, trust_error_alert
from monitor.core.trust import ChangeKind, LogKind, TrustChange, TrustedLogInfo, Window
from monitor.store.database import Store, StoreError, trust_digest, utc_iso

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VERSIONS = {"root": 13, "timestamp": 900, "snapshot": 400, "targets": 20}
GRACE = timedelta(minutes=10)


def shard(key: bytes) -> TrustedLogInfo:
    return TrustedLogInfo(
        kind=LogKind.REKOR_V2,
        base_url="https://log2025-1.rekor.sigstore.dev",
        origin="log2025-1.rekor.sigstore.dev",
        key_id=key[:32],
        key=key,
        key_details="PKIX_ED25519",
        window=Window(datetime(2025, 1, 1, tzinfo=UTC), None),
        verifier=None,
    )


ROTATION = TrustChange(
    ChangeKind.KEY_CHANGED,
    "tlogs",
    shard(b"\1" * 44).base_url,
    shard(b"\1" * 44),
    shard(b"\2" * 44),
)
ADDITION = TrustChange(
    ChangeKind.ADDED, "tlogs", "https://log2026-1.example", None, shard(b"\3" * 44)
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "monitor.db")
    try:
        yield s
    finally:
        s.close()


def targets(_alert: Alert) -> Sequence[str]:
    return ["ops#00000000"]


def record(
    store: Store,
    root: bytes,
    *,
    origin: str = "tuf",
    versions: dict[str, int] | None = VERSIONS,
    changes: Sequence[TrustChange] = (),
    now: datetime = NOW,
) -> tuple[int, list[tuple[int, Alert]]]:
    alerts = [(trust_changed_alert("production", c, versions), ["ops#00000000"]) for c in changes]
    return store.record_trust(
        "production",
        origin=origin,
        trusted_root=root,
        signing_config=b"{}",
        versions=versions,
        changes=changes,
        alerts=alerts,
        now=now,
    )


def fail(store: Store, now: datetime, error: str = "unreachable: refused") -> list[int]:
    created = store.record_trust_failure(
        "production",
        error,
        now,
        GRACE,
        lambda since, errors, last: trust_error_alert(
            "production", error_since=since, errors=errors, last_error=last, reason="unreachable"
        ),
        targets,
    )
    return [alert_id for alert_id, _ in created]


def test_first_trust_is_recorded_without_changes(store: Store) -> None:
    assert store.current_trust("production") is None
    snapshot_id, alerts = record(store, b"root-1")
    current = store.current_trust("production")
    assert current is not None
    assert (current.snapshot_id, current.origin, current.versions) == (snapshot_id, "tuf", VERSIONS)
    assert current.trusted_root == b"root-1" and current.signing_config == b"{}"
    assert current.sha256 == trust_digest(b"root-1", b"{}")
    assert alerts == [] and store.trust_changes() == []
    [source] = store.trust_sources()
    assert source["origin"] == "tuf" and source["last_success"] == utc_iso(NOW)


def test_same_content_reuses_the_snapshot(store: Store) -> None:
    first, _ = record(store, b"root-1")
    later = NOW + timedelta(hours=6)
    again, _ = record(store, b"root-1", origin="cache", versions=None, now=later)
    assert again == first
    current = store.current_trust("production")
    assert current is not None
    # The cache served the same bytes: the origin says so, the known versions stay.
    assert current.origin == "cache" and current.versions == VERSIONS
    assert store.query("SELECT count(*) AS n FROM trust_snapshots")[0]["n"] == 1


def test_changes_are_recorded_with_their_alerts_once(store: Store, tmp_path: Path) -> None:
    record(store, b"root-1")
    versions = {**VERSIONS, "targets": 21}
    snapshot_id, created = record(store, b"root-2", versions=versions, changes=[ROTATION, ADDITION])
    assert [a.kind.value for _, a in created] == ["trust_changed", "trust_changed"]
    rows = store.trust_changes("production", limit=10)
    assert [r["change"] for r in rows] == ["added", "key_changed"]  # newest first
    assert [r["alert_id"] for r in rows] == [created[1][0], created[0][0]]
    assert rows[1]["targets_version"] == 21
    # A second process recording the same change: no second alert, the row still links it.
    other = Store.open(tmp_path / "monitor.db")
    try:
        again_id, again = other.record_trust(
            "production",
            origin="tuf",
            trusted_root=b"root-2",
            signing_config=b"{}",
            versions=versions,
            changes=[ROTATION],
            alerts=[(trust_changed_alert("production", ROTATION, versions), ["ops#00000000"])],
            now=NOW,
        )
    finally:
        other.close()
    assert again_id == snapshot_id and again == []
    assert store.trust_changes(limit=1)[0]["alert_id"] == created[0][0]
    assert store.trust_changes(limit=1)[0]["before"] is not None
    assert store.query("SELECT count(*) AS n FROM alerts")[0]["n"] == 2


def test_a_failed_refresh_alerts_once_per_outage_after_grace(store: Store) -> None:
    record(store, b"root-1")
    assert fail(store, NOW) == []
    assert fail(store, NOW + GRACE / 2) == []
    first = fail(store, NOW + GRACE)
    assert len(first) == 1
    assert fail(store, NOW + 2 * GRACE) == []  # the same outage
    [source] = store.trust_sources()
    assert source["error_since"] == utc_iso(NOW) and source["errors"] == 4
    # The cache's copy is no successful refresh: the outage goes on.
    record(store, b"root-1", origin="cache", versions=None, now=NOW + 3 * GRACE)
    assert store.trust_sources()[0]["error_since"] == utc_iso(NOW)
    # A refresh from the repository ends it; the next failure is a new outage.
    record(store, b"root-1", now=NOW + 4 * GRACE)
    [source] = store.trust_sources()
    assert source["error_since"] is None and source["errors"] == 0
    assert source["last_success"] == utc_iso(NOW + 4 * GRACE)
    assert fail(store, NOW + 5 * GRACE) == []
    assert len(fail(store, NOW + 6 * GRACE)) == 1


def test_failure_before_any_trust_is_recorded(store: Store) -> None:
    assert len(fail(store, NOW, "expired: timestamp expired")) == 0
    [source] = store.trust_sources()
    assert source["origin"] is None and source["last_error"] == "expired: timestamp expired"


def test_unknown_origin_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="origin"):
        record(store, b"root-1", origin="mirror")


def test_ensure_log_records_its_source(store: Store) -> None:
    log_id = store.ensure_log(
        "production-log2025-1", "tiles", "https://l.example", NOW, "production"
    )
    assert store.ensure_log("rekor", "rekor-v1", "https://rekor.example", NOW) != log_id
    rows = store.query("SELECT name, source FROM logs ORDER BY id")
    assert rows == [
        {"name": "production-log2025-1", "source": "production"},
        {"name": "rekor", "source": None},
    ]
    # A [[log]] that takes the discovered log's name over: the source follows.
    store.ensure_log("production-log2025-1", "tiles", "https://l.example", NOW)
    assert store.query("SELECT source FROM logs WHERE id = ?", (log_id,)) == [{"source": None}]


def _old_database(path: Path) -> None:
    """A database as the previous release left it: only 001_initial applied, with a log."""
    sql = (resources.files("monitor.store.schema") / "001_initial.sql").read_text()
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL) "
            f"STRICT;\n{sql}\n"
            "INSERT INTO schema_migrations VALUES ('001_initial', '2026-01-01T00:00:00+00:00');\n"
            "INSERT INTO logs (name, type, url, created_at) "
            "VALUES ('rekor', 'rekor-v1', 'https://rekor.example', '2026-01-01T00:00:00+00:00');"
        )
        conn.commit()
    finally:
        conn.close()
    path.chmod(0o600)


def test_an_old_database_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    _old_database(path)
    # Reports never migrate: they say what to do.
    with pytest.raises(StoreError, match="run the daemon"):
        Store.open_readonly(path)
    store = Store.open(path)
    try:
        applied = [r["name"] for r in store.query("SELECT name FROM schema_migrations")]
        assert applied == [
            "001_initial",
            "002_trust",
            "003_certificates",
            "004_sct_promises",
            "005_unlogged_certificates",
            "006_unlogged_searches",
            "007_ct_leaves_age",
        ]
        assert store.query("SELECT name, source FROM logs") == [{"name": "rekor", "source": None}]
        record(store, b"root-1")
        assert store.current_trust("production") is not None
    finally:
        store.close()
    Store.open_readonly(path).close()
