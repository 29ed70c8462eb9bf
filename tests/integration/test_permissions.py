"""Files the monitor creates are owner-only (database, its -wal and -shm, directories), whatever
the umask; loose permissions on an existing database are tightened; secrets in files others can
read are warned about. Real files, real SQLite."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.store.database import Store
from tests.helpers import REKOR_PRODUCTION

NOTIFY_INLINE = '[[notify]]\nname = "ops"\nurls = ["json://hooks.example/secret-path"]\n'

pytestmark = pytest.mark.usefixtures("permissive_umask")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_database_directory_and_wal_files_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "state" / "monitor.db"
    store = Store.open(db)
    try:
        store.ensure_log("rekor", "rekor-v1", "https://rekor.example", datetime.now(UTC))
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        assert mode(db.parent) == 0o700
        assert {p.name: mode(p) for p in (db, wal, shm)} == {
            "monitor.db": 0o600,
            "monitor.db-wal": 0o600,
            "monitor.db-shm": 0o600,
        }
    finally:
        store.close()


def test_loose_existing_database_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "monitor.db"
    Store.open(db).close()
    db.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="monitor.store.database"):
        Store.open(db).close()
    assert mode(db) == 0o600
    assert "made it owner-only" in caplog.text and "0644" in caplog.text


def write_config(tmp_path: Path, text: str, file_mode: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(file_mode)
    return path


@pytest.mark.parametrize(
    ("file_mode", "inline", "expected"),
    [
        (0o600, True, []),
        (0o640, True, []),  # root:tlog-monitor 0640, as the unit's header suggests
        (0o644, False, []),  # no secrets in it
        (0o644, True, ["readable by every user (mode 0644) and lists notify URLs"]),
        (0o646, False, ["writable by every user (mode 0646)"]),
    ],
)
def test_config_file_permissions(
    tmp_path: Path, file_mode: int, inline: bool, expected: list[str]
) -> None:
    path = write_config(tmp_path, REKOR_PRODUCTION + (NOTIFY_INLINE if inline else ""), file_mode)
    warnings = [w for w in load_config(path, environ={}).warnings if "(mode 0" in w]
    assert len(warnings) == len(expected), warnings
    for warning, text in zip(warnings, expected, strict=True):
        assert text in warning
        assert "secret-path" not in warning


@pytest.mark.parametrize(("file_mode", "warned"), [(0o600, False), (0o400, False), (0o640, True)])
def test_urls_file_permissions(tmp_path: Path, file_mode: int, warned: bool) -> None:
    urls = tmp_path / "urls"
    urls.write_text("json://hooks.example/secret-path\n")
    urls.chmod(file_mode)
    path = write_config(
        tmp_path, REKOR_PRODUCTION + '[[notify]]\nname = "ops"\nurls_file = "urls"\n', 0o644
    )
    warnings = load_config(path, environ={}).warnings
    assert [("urls_file" in w and "chmod 0600" in w) for w in warnings] == (
        [True] if warned else []
    )
    assert all("secret-path" not in w for w in warnings)
