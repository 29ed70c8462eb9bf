"""`report trust` and the `source` of `report status` over a real SQLite database filled through
the Store API with Sigstore's real production trust (and a changed copy of it), run through the
real CLI: table, JSON, the refused CSV and filters, an empty database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.trust_roots import embedded_trust_files
from monitor.core.alerts import trust_changed_alert, trust_error_alert
from monitor.core.trust import ChangeKind, diff, trust_snapshot
from monitor.store.database import Store, utc_iso

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
VERSIONS = {"root": 13, "timestamp": 900, "snapshot": 400, "targets": 20}
NEW_END = "2030-01-01T00:00:00Z"

CONFIG = """
[monitor]
database = "{database}"
http_listen = ""

[[log]]
name = "rekor"
type = "rekor-v1"
url = "http://127.0.0.1:9"
trust_root = "production"
"""


def ended_copy(trusted_root: bytes) -> tuple[bytes, str]:
    """The production trusted root with the last Rekor log's validity window given an end."""
    doc = json.loads(trusted_root)
    tlog = doc["tlogs"][-1]
    tlog["publicKey"]["validFor"]["end"] = NEW_END
    return json.dumps(doc, indent=2).encode(), str(tlog["baseUrl"])


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, str]:
    """A config and a database: production's trust, then a change (a window given an end, with
    its alert), then a failed refresh past the grace; a discovered log and a [[log]] log."""
    db = tmp_path / "monitor.db"
    root, signing = embedded_trust_files("production")
    changed, url = ended_copy(root)
    store = Store.open(db)
    try:
        store.record_trust(
            "production",
            origin="tuf",
            trusted_root=root,
            signing_config=signing,
            versions=VERSIONS,
            changes=(),
            alerts=(),
            now=NOW,
        )
        changes = diff(trust_snapshot(root, signing), trust_snapshot(changed, signing))
        assert [c.kind for c in changes] == [ChangeKind.WINDOW_CHANGED]
        versions = {**VERSIONS, "targets": 21}
        store.record_trust(
            "production",
            origin="tuf",
            trusted_root=changed,
            signing_config=signing,
            versions=versions,
            changes=changes,
            alerts=[(trust_changed_alert("production", c, versions), ["ops"]) for c in changes],
            now=NOW + timedelta(hours=6),
        )
        store.record_trust_failure(
            "production",
            "unreachable: connection refused",
            NOW + timedelta(hours=12),
            timedelta(0),
            lambda since, errors, last: trust_error_alert(
                "production",
                error_since=since,
                errors=errors,
                last_error=last,
                reason="unreachable",
            ),
            lambda _alert: ["ops"],
        )
        store.ensure_log("production-log2025-1", "tiles", url, NOW, "production")
        store.ensure_log("rekor", "rekor-v1", "http://127.0.0.1:9", NOW)
    finally:
        store.close()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(database=db))
    return config, url


def report(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_trust_table(filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, url = filled
    code, out, err = report(config, capsys, "trust")
    assert (code, err) == (0, "")
    sources, changes = out.split("\ntrust changes, newest first:\n")
    assert sources.startswith("trust sources ([[sigstore]]):\nSOURCE")
    row = sources.splitlines()[3]
    assert row.split()[:4] == ["production", "tuf", "13", "21"]
    assert "error_since: 2026-03-04T22:00:00Z" in sources
    assert "last_error: unreachable: connection refused" in sources
    lines = changes.splitlines()
    assert lines[2].split()[2:6] == ["production", "window_changed", "tlogs", "21"]
    assert lines[3].strip() == f"name: {url}"


def test_trust_json(filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, url = filled
    code, out, _ = report(config, capsys, "trust", "--format", "json")
    assert code == 0
    data = json.loads(out)
    [source] = data["sources"]
    assert source["source"] == "production" and source["origin"] == "tuf"
    assert [source[f"{r}_version"] for r in ("root", "timestamp", "snapshot", "targets")] == [
        13,
        900,
        400,
        21,
    ]
    assert source["recorded_at"] == utc_iso(NOW + timedelta(hours=6))
    assert source["last_success"] == utc_iso(NOW + timedelta(hours=6))
    assert source["error_since"] == utc_iso(NOW + timedelta(hours=12)) and source["errors"] == 1
    [change] = data["changes"]
    assert (change["change"], change["section"], change["name"]) == ("window_changed", "tlogs", url)
    assert change["before"]["valid_for"]["end"] is None
    assert change["after"]["valid_for"]["end"].startswith("2030-01-01T00:00:00")
    assert isinstance(change["alert_id"], int)
    assert list(change) == [
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
    ]
    # The alert the change row names is the trust_changed alert.
    code, out, _ = report(
        config, capsys, "alerts", "--id", str(change["alert_id"]), "--format", "json"
    )
    assert code == 0 and json.loads(out)[0]["kind"] == "trust_changed"


def test_trust_limit_and_since(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = filled
    code, out, _ = report(config, capsys, "trust", "--limit", "1")
    assert code == 0 and "newest first, the newest 1 (--limit):" in out
    code, out, _ = report(config, capsys, "trust", "--format", "json", "--since", "2026-03-05")
    assert code == 0 and json.loads(out)["changes"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trust", "--format", "csv"], "--format csv: 'report trust' is two tables"),
        (["trust", "--log", "rekor"], "--log: 'report trust' is per [[sigstore]] source"),
        (["status", "--limit", "5"], "--limit: only 'report trust' has a limit"),
        (["trust", "--kind", "split_view"], "--kind: only 'report alerts'"),
    ],
)
def test_trust_refuses_what_it_does_not_have(
    filled: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    config, _ = filled
    code, out, err = report(config, capsys, *args)
    assert (code, out) == (2, "")
    assert message in err


def test_bad_limit_is_a_usage_error(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = filled
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(config), "report", "trust", "--limit", "0"])
    assert exc.value.code == 2
    assert "expected a whole number from 1" in capsys.readouterr().err


def test_status_says_where_each_log_came_from(
    filled: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = filled
    code, out, _ = report(config, capsys, "status", "--format", "json")
    assert code == 0
    assert {r["log"]: r["source"] for r in json.loads(out)} == {
        "production-log2025-1": "production",
        "rekor": "config",
    }
    code, out, _ = report(config, capsys, "status", "--format", "csv")
    assert code == 0 and out.splitlines()[0].endswith(",requests_per_minute,source")
    code, out, _ = report(config, capsys, "status")
    assert code == 0 and out.splitlines()[0].split()[-1] == "SOURCE"


def test_trust_of_a_database_without_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "monitor.db"
    Store.open(db).close()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(database=db))
    code, out, _ = report(config, capsys, "trust")
    assert code == 0 and out.count("(none)") == 2
    code, out, _ = report(config, capsys, "trust", "--format", "json")
    assert code == 0 and json.loads(out) == {"sources": [], "changes": []}
