"""The database an operator points the monitor at (issue 12, items 4 and 5): a path that is a
symbolic link, a file or directory another user owns or can write, a typo'd directory chain, a
directory or non-database file given as the path, and a damaged database. Each is refused or
reported in one line naming the database, exit 3, with nothing changed. Real files, real SQLite,
the real CLI."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.core.alerts import Alert, AlertKind
from monitor.store.database import Store, StoreError

OTHER_UID = 65534  # nobody: "another user" (the tests run as root or as a normal user)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("permissive_umask")

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


def write_config(tmp_path: Path, database: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(database=database))
    path.chmod(0o600)
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Every path under `root` (symlinks not followed): mode, owner, size and content or
    target, to show that a refusal changed nothing."""
    seen: dict[str, tuple[int, int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content: bytes | str = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        else:
            content = b""
        seen[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_size, content)
    return seen


def make_database(path: Path) -> None:
    store = Store.open(path)
    try:
        store.ensure_log("rekor", "rekor-v1", "https://rekor.example", NOW)
    finally:
        store.close()


def symlink_to_database(tmp_path: Path) -> Path:
    target = tmp_path / "real" / "monitor.db"
    target.parent.mkdir(mode=0o700)
    make_database(target)
    target.chmod(0o644)
    (tmp_path / "state").mkdir(mode=0o700)
    link = tmp_path / "state" / "monitor.db"
    link.symlink_to(target)
    return link


def dangling_symlink(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir(mode=0o700)
    link = tmp_path / "state" / "monitor.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    return link


def other_users_database(tmp_path: Path) -> Path:
    db = tmp_path / "state" / "monitor.db"
    db.parent.mkdir(mode=0o700)
    make_database(db)
    os.chown(db, OTHER_UID, OTHER_UID)
    db.chmod(0o666)
    return db


def world_writable_database(tmp_path: Path) -> Path:
    db = tmp_path / "state" / "monitor.db"
    db.parent.mkdir(mode=0o700)
    make_database(db)
    db.chmod(0o666)
    return db


def world_writable_directory(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: the sticky bit does not stop a planted -wal
    return shared / "monitor.db"


def other_users_directory(tmp_path: Path) -> Path:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    return theirs / "monitor.db"


def planted_wal(tmp_path: Path) -> Path:
    db = tmp_path / "state" / "monitor.db"
    db.parent.mkdir(mode=0o700)
    make_database(db)
    wal = Path(f"{db}-wal")
    wal.write_bytes(b"")
    os.chown(wal, OTHER_UID, OTHER_UID)
    wal.chmod(0o666)
    return db


def typo_chain(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "tlog-monitr" / "monitor.db"


def directory_as_path(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o755)
    return directory


def text_file_as_path(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir(mode=0o700)
    notes = tmp_path / "state" / "notes.txt"
    notes.write_text("not a database\n")
    notes.chmod(0o644)
    return notes


REFUSED: list[tuple[str, Callable[[Path], Path], str]] = [
    ("symlink to a database", symlink_to_database, "symbolic link"),
    ("dangling symlink", dangling_symlink, "symbolic link"),
    ("database of another user, mode 0666", other_users_database, "owned by uid 65534"),
    ("our database, mode 0666", world_writable_database, "writable by group or others"),
    ("world-writable directory", world_writable_directory, "writable by group or others"),
    ("directory of another user", other_users_directory, "owned by uid 65534"),
    ("-wal planted by another user", planted_wal, "wal file"),
    ("typo'd directory chain", typo_chain, "does not exist"),
    ("a directory", directory_as_path, "is a directory"),
    ("a text file", text_file_as_path, "not an SQLite database"),
]


@pytest.mark.parametrize(
    ("setup", "expected"), [(s, e) for _, s, e in REFUSED], ids=[n for n, _, _ in REFUSED]
)
def test_unsafe_database_path_is_refused_and_nothing_changes(
    tmp_path: Path, setup: Callable[[Path], Path], expected: str
) -> None:
    area = tmp_path / "area"
    area.mkdir(mode=0o700)
    db = setup(area)
    before = snapshot(area)
    with pytest.raises(StoreError) as refused:
        Store.open(db).close()
    message = str(refused.value)
    assert expected in message, message
    assert str(db) in message and "\n" not in message
    assert snapshot(area) == before


@pytest.mark.parametrize(
    "setup", [symlink_to_database, other_users_database, typo_chain], ids=lambda f: f.__name__
)
def test_check_and_run_exit_3_with_one_line_on_an_unsafe_database(
    tmp_path: Path, setup: Callable[[Path], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    area = tmp_path / "area"
    area.mkdir(mode=0o700)
    db = setup(area)
    config = write_config(tmp_path, db)
    before = snapshot(area)
    for command in ("check", "run"):
        assert main(["--config", str(config), command]) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"tlog-monitor: database {db}: "), err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert snapshot(area) == before


def test_the_state_directory_is_created_but_only_one_level(tmp_path: Path) -> None:
    """What systemd's StateDirectory= would create (one private directory) is created."""
    db = tmp_path / "tlog-monitor" / "monitor.db"
    make_database(db)
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_our_readable_database_is_still_tightened(tmp_path: Path) -> None:
    """A restored copy that is ours and only readable by others is fixed, not refused."""
    db = tmp_path / "monitor.db"
    make_database(db)
    db.chmod(0o644)
    Store.open(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


# -- item 5: a damaged database is one line and exit 3, from every read ---------------------


def damage(db: Path) -> None:
    """Overwrite the root page of every table and index but the migrations table's with
    garbage: the file still opens and its schema reads, every other table is malformed."""
    conn = sqlite3.connect(db)
    try:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        roots = [
            int(r[0])
            for r in conn.execute(
                "SELECT rootpage FROM sqlite_master "
                "WHERE rootpage > 0 AND tbl_name != 'schema_migrations'"
            )
        ]
    finally:
        conn.close()
    with db.open("r+b") as fh:
        for page in roots:
            fh.seek((page - 1) * page_size)
            fh.write(b"\x07" * page_size)


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    db = tmp_path / "monitor.db"
    store = Store.open(db)
    try:
        log_id = store.ensure_log("rekor", "rekor-v1", "https://rekor.example", NOW)
        alert = Alert(
            kind=AlertKind.LOG_ERROR,
            dedup_key="log_error:rekor:1",
            summary="rekor unreachable",
            details={},
        )
        store.raise_alerts(log_id, [(alert, ["ops"])], NOW)
    finally:
        store.close()
    damage(db)
    return db


@pytest.mark.parametrize("what", ["status", "alerts", "matches", "checkpoints", "trust"])
def test_report_on_a_damaged_database_is_one_line_and_exit_3(
    damaged: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(damaged.parent, damaged)
    assert main(["--config", str(config), "report", what]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"tlog-monitor: database {damaged}: cannot read: "), err
    assert "malformed" in err and "backup" in err
    assert err.count("\n") == 1


def test_every_store_read_raises_store_error(damaged: Path) -> None:
    store = Store.open_readonly(damaged)
    reads: list[Callable[[], object]] = [
        store.log_names,
        lambda: store.latest_checkpoint("rekor"),
        lambda: store.checkpoints_at(1, "t", 1),
        lambda: store.log_state(1, "t"),
        store.log_states,
        lambda: store.search_seen(1, [b"\x00" * 32]),
        lambda: store.view_health(1, "primary"),
        lambda: store.due_deliveries(NOW),
        store.pending_count,
        lambda: store.query("SELECT * FROM alerts"),
    ]
    try:
        for read in reads:
            with pytest.raises(StoreError, match="cannot read: database disk image is malformed"):
                read()
    finally:
        store.close()
