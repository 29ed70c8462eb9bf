"""SQLite state: the only module that speaks SQL.

One `Store` owns one connection and is used from one thread; async code goes through
`AsyncStore`, which runs every call on a single dedicated writer thread, so SQLite never sees two
writers from this process and the event loop never blocks on disk.

Units of work are methods that run in one transaction (`BEGIN IMMEDIATE ... COMMIT`): state that
depends on a verification is written together with the record of that verification, or not at all.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import sqlite_utils

from monitor.core.alerts import Alert
from monitor.core.decide import LogState
from monitor.core.errors import MonitorError
from monitor.core.instants import to_ms
from monitor.core.trust import TrustChange, TrustItem
from monitor.store import reports

# Re-exported: the store's callers take its time format from it.
from monitor.store.times import parse_utc as parse_utc  # noqa: PLC0414
from monitor.store.times import utc_iso as utc_iso  # noqa: PLC0414

log = logging.getLogger(__name__)

SCHEMA_PACKAGE = "monitor.store.schema"
BUSY_TIMEOUT_MS = 10_000
MAX_ALERT_RANGES = 20
"""At most this many ranges of alert ids are read for a digest (`DueGroup.alert_ranges`)."""
# Delivery order: most severe first. An unknown severity (a newer database) counts as critical,
# as `monitor.notify.notifier.notify_type` treats it.
_SEVERITY_RANK = (
    "CASE a.severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 WHEN 'high' THEN 2 ELSE 3 END"
)
# A group: one target, one kind, severity, log and rule (NULLs group together in a window).
_GROUP_BY = "d.channel, a.kind, a.severity, a.log_id, a.rule"
_DUE = "d.status = 'pending' AND (d.next_try <= ? OR d.next_try > ?)"
_IN_GROUP = (
    f"{_DUE} AND d.channel = ? AND d.id <= ? AND a.kind = ? AND a.severity = ? "
    "AND a.log_id IS ? AND a.rule IS ?"
)
# The columns `_delivery` reads, of deliveries d JOIN alerts a LEFT JOIN logs l.
_DELIVERY_COLUMNS = (
    "d.id, d.alert_id, d.channel, d.attempts, a.kind, a.severity, a.summary, a.details, l.name, "
    "a.rule, a.created_at, d.maybe_sent OR d.sending_since IS NOT NULL"
)
# What each step of a send writes on its deliveries (one row, or every row of a group). A send
# still marked as begun when the next begins was cut off: the receiver may have had it since.
_SENDING = "maybe_sent = (maybe_sent OR sending_since IS NOT NULL), sending_since = ?"
_DELIVERED = (
    "status = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL, "
    "sending_since = NULL"
)
_FAILED = (
    "attempts = attempts + 1, last_error = ?, next_try = ?, maybe_sent = (maybe_sent OR ?), "
    "sending_since = NULL"
)


class StoreError(MonitorError):
    """The database cannot be opened, migrated or written."""


class StaleState(StoreError):
    """A compare-and-swap of a tree's verified state or scan cursor lost a race: the row moved
    after it was read. The caller decides again from fresh state."""


def _migrations() -> list[tuple[str, str]]:
    """The schema files shipped with the package, as (name, sql), in order."""
    files = [
        f
        for f in resources.files(SCHEMA_PACKAGE).iterdir()
        if f.name.endswith(".sql") and f.name[:3].isdigit()
    ]
    return [
        (f.name.removesuffix(".sql"), f.read_text(encoding="utf-8"))
        for f in sorted(files, key=lambda f: f.name)
    ]


_SQLITE_MAGIC = b"SQLite format 3\x00"
_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps next to the database and opens by name: as trusted as the database."""


def _refuse(path: Path, problem: str, fix: str) -> StoreError:
    return StoreError(f"database {path}: {problem}; {fix}. Nothing was changed")


def _check_owner_and_mode(path: Path, st: os.stat_result, what: str) -> None:
    """Refuse a file another user owns or can write: whoever can write the database can move
    the verified state back (and re-trust a forked log) and mark alerts delivered."""
    euid = os.geteuid()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != euid:
        raise _refuse(
            path,
            f"{what} is owned by uid {st.st_uid}, not by this user (uid {euid})",
            "run tlog-monitor as the user that owns it, or give a database path of this user's",
        )
    if mode & 0o022:
        raise _refuse(
            path,
            f"{what} is writable by group or others (mode {mode:04o})",
            f"check nobody else has written to it, then run: chmod go-w {path}",
        )


def _check_directory(path: Path) -> None:
    """Refuse a database directory that another user owns (root excepted) or can write: they
    could replace the database, or plant its -wal or -shm before SQLite opens them."""
    directory = path.parent
    # Followed on purpose: under DynamicUser= the state directory is a symlink that systemd
    # made into /var/lib/private.
    st = directory.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, f"{directory} is not a directory", "correct [monitor] database")
    if st.st_uid not in (os.geteuid(), 0):
        raise _refuse(
            path,
            f"its directory {directory} is owned by uid {st.st_uid}, not by this user "
            f"(uid {os.geteuid()}) or root",
            "keep the database in a directory of its own (systemd: StateDirectory=)",
        )
    if mode & 0o022:
        raise _refuse(
            path,
            f"its directory {directory} is writable by group or others (mode {mode:04o})",
            "keep the database in a directory only this user can write "
            "(systemd: StateDirectory=, StateDirectoryMode=0700)",
        )


def _prepare_directory(path: Path) -> None:
    """Create the database's own directory (0700) when it is missing and its parent exists,
    as systemd's StateDirectory= would; never a longer chain, which is most likely a typo that
    would start a fresh database and trust every log's next checkpoint anew."""
    directory = path.parent
    if directory.exists():
        return
    if not directory.parent.is_dir():
        raise _refuse(
            path,
            f"directory {directory.parent} does not exist",
            "correct [monitor] database, or create the directory (tlog-monitor creates at most "
            "the database's own directory)",
        )
    directory.mkdir(mode=0o700)
    directory.chmod(0o700)  # whatever the umask
    log.info("created database directory %s (mode 0700)", directory)


def _tighten(fd: int, file: Path, st: os.stat_result) -> None:
    """Take read permission away from group and others on a file that is ours and that
    nobody else can write (a copied or restored file may arrive world-readable), saying so."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        os.fchmod(fd, mode & 0o700)
        log.warning(
            "database file %s was readable by others (mode %04o); made it owner-only (%04o)",
            file,
            mode,
            mode & 0o700,
        )


def _open_nofollow(file: Path) -> int | None:
    """An O_NOFOLLOW descriptor of `file`, None when it does not exist; StoreError for a
    symbolic link (whose target we would otherwise chmod and write)."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the open.
        return os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refuse(
                file,
                "is a symbolic link",
                "give the real path of the database in [monitor] database",
            ) from e
        raise


def _make_private(path: Path) -> bool:
    """Check the database (if it exists) and its companions before SQLite opens them: regular
    files, ours, writable by nobody else, the database an SQLite file (or empty); then take
    read permission away from others. Nothing is changed unless every check passes. Returns
    whether the database exists."""
    checked: list[tuple[int, Path, os.stat_result]] = []
    exists = False
    try:
        for suffix in ("", *_COMPANIONS):
            file = Path(f"{path}{suffix}")
            fd = _open_nofollow(file)
            if fd is None:
                continue
            exists = exists or not suffix
            checked.append((fd, file, os.fstat(fd)))
            st = checked[-1][2]
            what = "the database" if not suffix else f"its {suffix[1:]} file {file}"
            if not stat.S_ISREG(st.st_mode):
                kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                raise _refuse(path, f"{what} is {kind}", "correct [monitor] database")
            _check_owner_and_mode(path, st, what)
            if not suffix and st.st_size:
                header = os.pread(fd, len(_SQLITE_MAGIC), 0)
                if header != _SQLITE_MAGIC:
                    raise _refuse(
                        path,
                        "is not an SQLite database",
                        "correct [monitor] database (it must name the monitor's own file)",
                    )
        for fd, file, st in checked:
            _tighten(fd, file, st)
    finally:
        for fd, _, _ in checked:
            os.close(fd)
    return exists


def _create(path: Path) -> None:
    """Create the database file, 0600 before SQLite touches it (it holds alert details and
    evidence; SQLite gives -wal and -shm the database's mode). O_EXCL: an existing name, a
    dangling symbolic link included, is never followed or reused."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredCheckpoint:
    """A distinct checkpoint seen from one view."""

    id: int
    log_id: int
    tree_id: str
    view: str
    origin: str
    size: int
    root: bytes
    note: str
    first_seen: str
    last_seen: str


@dataclass(frozen=True)
class Delivery:
    """One alert to be delivered to one channel."""

    id: int
    alert_id: int
    channel: str
    attempts: int
    kind: str
    severity: str
    summary: str
    details: Mapping[str, Any]
    log_name: str | None
    rule: str | None
    created_at: str
    maybe_sent: bool = False
    """An earlier send of this row began and was never recorded: the receiver may have it."""


@dataclass(frozen=True)
class DueGroup:
    """The due deliveries of one target for one alert kind, severity, log and rule: what one
    round sends as separate messages or, when there are many, as one digest.

    `count` and `last_id` describe every due row of the group when it was read; `deliveries`
    holds only the oldest few (see `Store.due_groups`), so a flood is never loaded whole.
    The `mark_group_*` methods act on exactly the rows counted: pending, due at `due_at`
    (`latest` as in `due_deliveries`), with a delivery id up to `last_id`.
    """

    channel: str
    kind: str
    severity: str
    log_id: int | None
    log_name: str | None
    rule: str | None
    count: int
    last_id: int
    due_at: str
    latest: str
    maybe_sent: bool
    """Some row of the group may already have reached the receiver (see `Delivery.maybe_sent`)."""
    deliveries: tuple[Delivery, ...]
    alert_ranges: tuple[tuple[int, int], ...] = ()
    """For a group larger than its sample: the ids of its alerts as ranges of consecutive ids
    (at most `MAX_ALERT_RANGES`), lowest first."""
    more_ranges: bool = False
    """More ranges exist than `alert_ranges` holds."""


@dataclass(frozen=True)
class ViewHealth:
    """Reachability of one view of one log."""

    log_id: int
    view: str
    last_ok_at: str | None
    last_growth_at: str | None
    error_since: str | None
    last_error: str | None
    errors: int


# Column lists are constants of this module, never data: the S608 exemptions below rely on it.
_STATE_COLUMNS = (
    "log_id, tree_id, origin, verified_size, verified_root, verified_note, high_water, "
    "scan_cursor, compact_range, frozen, updated_at"
)
_STATE_PLACEHOLDERS = ", ".join("?" * len(_STATE_COLUMNS.split(",")))

TRUST_ORIGINS = ("tuf", "cache", "embedded")
"""Where a source's trust came from: a refresh of its TUF repository, the cache of the last
good refresh, or the copy embedded in sigstore."""
TUF_ROLES = ("root", "timestamp", "snapshot", "targets")
_TRUST_COLUMNS = (
    "t.id, t.source, t.origin, t.sha256, t.trusted_root, t.signing_config, t.root_version, "
    "t.timestamp_version, t.snapshot_version, t.targets_version, t.recorded_at"
)


@dataclass(frozen=True)
class PendingUnlogged:
    """A CT certificate of a watched identity not yet found in Rekor (schema 005)."""

    id: int
    certificate_id: str
    rule: str
    ct_log_id: int
    ct_log: str
    ct_ms: int
    evidence: dict[str, Any]
    stored_ms: int = 0
    """When the monitor first stored the check (ms, its clock)."""

    def deadline_ms(self, window_ms: int) -> int:
        """When a Rekor entry using the certificate is due: `window_ms` after the later of its
        CT timestamp and when the monitor first stored the check, so a CT log's backdated
        timestamp cannot put the deadline before the certificate could be used."""
        return max(self.ct_ms, self.stored_ms) + window_ms


@dataclass(frozen=True)
class StoredTrust:
    """One trust a [[sigstore]] source held, as recorded."""

    snapshot_id: int
    source: str
    origin: str
    sha256: str
    trusted_root: bytes = field(repr=False)
    signing_config: bytes | None = field(repr=False)
    versions: dict[str, int] | None
    """The TUF metadata versions ("root", "timestamp", "snapshot", "targets"); None when the
    trust did not come from TUF."""
    recorded_at: datetime


def trust_digest(trusted_root: bytes, signing_config: bytes | None) -> str:
    """What identifies a trust's content: the SHA-256 (hex) of the trusted root's SHA-256 and,
    when there is one, the signing config's."""
    parts = hashlib.sha256(trusted_root).digest()
    if signing_config is not None:
        parts += hashlib.sha256(signing_config).digest()
    return hashlib.sha256(parts).hexdigest()


def _version_columns(versions: Mapping[str, int] | None) -> tuple[int | None, ...]:
    """The four version columns of `versions` (None: not from TUF). A missing or out-of-range
    version raises ValueError: it comes from verified metadata, so that is a bug."""
    if versions is None:
        return (None,) * len(TUF_ROLES)
    values: list[int | None] = []
    for role in TUF_ROLES:
        value = versions.get(role)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise ValueError(f"TUF version of {role}: expected a whole number, got {value!r}")
        values.append(value)
    return tuple(values)


def _stored_trust(r: Sequence[Any]) -> StoredTrust:
    versions = None
    if r[6] is not None:
        versions = dict(zip(TUF_ROLES, (int(v) for v in r[6:10]), strict=True))
    return StoredTrust(
        snapshot_id=int(r[0]),
        source=str(r[1]),
        origin=str(r[2]),
        sha256=str(r[3]),
        trusted_root=bytes(r[4]),
        signing_config=None if r[5] is None else bytes(r[5]),
        versions=versions,
        recorded_at=parse_utc(str(r[10])),
    )


def _side_json(item: TrustItem | None) -> str | None:
    return None if item is None else json.dumps(item.summary(), sort_keys=True, default=str)


class Store:
    """The monitor's database. Open with `Store.open(path)`; close with `close()`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing database for reading only (reports): no file is created or written,
        so running a report as another user never leaves files the daemon cannot write."""
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            store = cls(conn)
            applied = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        except sqlite3.Error as e:
            raise StoreError(
                f"database {path}: cannot open for reading: {_with_hint(e, reading=True)}"
            ) from e
        known = {name for name, _ in _migrations()}
        if applied != known:
            conn.close()
            raise StoreError(
                f"database {path}: schema {sorted(applied)} differs from this tlog-monitor's "
                f"{sorted(known)}; run the daemon (or 'check') once to migrate, or upgrade"
            )
        return store

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating with owner-only permissions if needed) and migrate the database.

        Raises StoreError when the file cannot be opened or was written by a newer version.
        """
        try:
            _prepare_directory(path)
            _check_directory(path)
            if not _make_private(path):
                _create(path)
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"database {path}: cannot open: {e}") from e
        store = cls(conn)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            store._migrate()
        except sqlite3.Error as e:
            conn.close()
            raise StoreError(f"database {path}: {_with_hint(e)}") from e
        except StoreError:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _migrate(self) -> None:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL) STRICT"
        )
        applied = {r[0] for r in self._conn.execute("SELECT name FROM schema_migrations")}
        known = _migrations()
        unknown = applied - {name for name, _ in known}
        if unknown:
            raise StoreError(
                f"written by a newer tlog-monitor (unknown migrations {sorted(unknown)}); "
                "upgrade tlog-monitor or point it at another database"
            )
        for name, sql in known:
            if name in applied:
                continue
            log.info("applying database migration %s", name)
            now = utc_iso(datetime.now(UTC))
            # One script so the migration and its record commit together or not at all.
            script = (
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO schema_migrations (name, applied_at) VALUES ('{name}', '{now}');\n"
                "COMMIT;"
            )
            try:
                self._conn.executescript(script)
            except sqlite3.Error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        SQLite's own failures (locked past the busy timeout, disk full, read-only file) raise
        StoreError: an operational failure the daemon survives and `check` exits 3 on, never a
        library exception (found by the fault suite, tests/faults/test_storage_faults.py).
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _write_failed(self._conn, e) from e
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as e:
            if self._conn.in_transaction:
                # A failed COMMIT may already have rolled back; nothing of the unit stays.
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise _write_failed(self._conn, e) from e
            raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read: SQLite's failures (a damaged file, an I/O error, locked past the busy
        timeout) raise StoreError naming the database, never a library exception, so every
        command reports them in one line with exit 3."""
        try:
            yield self._conn
        except sqlite3.Error as e:
            raise _read_failed(self._conn, e) from e

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a read query (see `reading`)."""
        with self.reading() as c:
            return c.execute(sql, params).fetchall()

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a read query, or None (see `reading`)."""
        with self.reading() as c:
            return c.execute(sql, params).fetchone()

    # -- logs ------------------------------------------------------------------------------

    def ensure_log(
        self, name: str, type_: str, url: str, now: datetime, source: str | None = None
    ) -> int:
        """The id of the log named `name`, recording it on first sight (its type, URL and
        `source` kept current: None for a [[log]] table, else the [[sigstore]] source that
        listed it)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO logs (name, type, url, created_at, source) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET type = excluded.type, url = excluded.url, "
                "source = excluded.source",
                (name, type_, url, utc_iso(now), source),
            )
            row = c.execute("SELECT id FROM logs WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def log_names(self) -> dict[int, str]:
        """Every known log, id to name."""
        with self.reading() as c:
            return {int(r[0]): str(r[1]) for r in c.execute("SELECT id, name FROM logs")}

    # -- checkpoints -----------------------------------------------------------------------

    def record_checkpoint(
        self,
        conn: sqlite3.Connection,
        *,
        log_id: int,
        tree_id: str,
        view: str,
        origin: str,
        size: int,
        root: bytes,
        note: str,
        cosigners: Sequence[str],
        now: datetime,
    ) -> bool:
        """Record a checkpoint seen from `view` inside the caller's transaction.

        Returns True when this (view, origin, size, root) is new.
        """
        ts = utc_iso(now)
        cur = conn.execute(
            "INSERT INTO checkpoints (log_id, tree_id, view, origin, size, root, note, cosigners, "
            "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (log_id, view, origin, size, root) DO NOTHING",
            (
                log_id,
                tree_id,
                view,
                origin,
                size,
                root,
                note,
                json.dumps(sorted(cosigners)),
                ts,
                ts,
            ),
        )
        if cur.rowcount:
            return True
        conn.execute(
            "UPDATE checkpoints SET last_seen = ? "
            "WHERE log_id = ? AND view = ? AND origin = ? AND size = ? AND root = ?",
            (ts, log_id, view, origin, size, root),
        )
        if cosigners:
            # A witness view gathers cosignatures over time: keep everyone who cosigned.
            row = conn.execute(
                "SELECT cosigners FROM checkpoints "
                "WHERE log_id = ? AND view = ? AND origin = ? AND size = ? AND root = ?",
                (log_id, view, origin, size, root),
            ).fetchone()
            merged = sorted(set(json.loads(row[0])) | set(cosigners))
            conn.execute(
                "UPDATE checkpoints SET cosigners = ? "
                "WHERE log_id = ? AND view = ? AND origin = ? AND size = ? AND root = ?",
                (json.dumps(merged), log_id, view, origin, size, root),
            )
        return False

    def record_cosignatures(
        self,
        conn: sqlite3.Connection,
        *,
        log_id: int,
        tree_id: str,
        origin: str,
        size: int,
        root: bytes,
        view: str,
        signatures: Sequence[tuple[str, int | None, str]],
        now: datetime,
    ) -> None:
        """Record verified witness signatures, (witness key id, timestamp, signature line), on
        one checkpoint body inside the caller's transaction; the first line per witness stays."""
        conn.executemany(
            "INSERT INTO cosignatures (log_id, tree_id, origin, size, root, witness, timestamp, "
            "line, view, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (log_id, origin, size, root, witness) DO NOTHING",
            [
                (log_id, tree_id, origin, size, root, w, t, line, view, utc_iso(now))
                for w, t, line in signatures
            ],
        )

    def latest_checkpoint(self, log_name: str) -> tuple[str, list[str]] | None:
        """The latest verified checkpoint of a log's active tree (the most recently advanced
        one), as (signed note, witness signature lines recorded for its body); None before the
        first verified checkpoint or for an unknown log."""
        row = self._read_one(
            "SELECT s.log_id, s.origin, s.verified_size, s.verified_root, s.verified_note "
            "FROM log_state s JOIN logs l ON l.id = s.log_id WHERE l.name = ? "
            "ORDER BY s.frozen, s.updated_at DESC LIMIT 1",
            (log_name,),
        )
        if row is None:
            return None
        lines = [
            str(r[0])
            for r in self._read(
                "SELECT line FROM cosignatures WHERE log_id = ? AND origin = ? AND size = ? "
                "AND root = ? ORDER BY id",
                (row[0], row[1], row[2], row[3]),
            )
        ]
        return str(row[4]), lines

    def checkpoints_at(self, log_id: int, tree_id: str, size: int) -> list[StoredCheckpoint]:
        """Every checkpoint of a tree recorded at `size`, from any view."""
        rows = self._read(
            "SELECT id, log_id, tree_id, view, origin, size, root, note, first_seen, last_seen "
            "FROM checkpoints WHERE log_id = ? AND tree_id = ? AND size = ? ORDER BY id",
            (log_id, tree_id, size),
        )
        return [StoredCheckpoint(*r) for r in rows]

    # -- verified state --------------------------------------------------------------------

    def _state_from_row(self, r: Sequence[Any]) -> LogState:
        return LogState(
            log_id=r[0],
            tree_id=r[1],
            origin=r[2],
            verified_size=r[3],
            verified_root=r[4],
            verified_note=r[5],
            high_water=r[6],
            scan_cursor=r[7],
            compact_range=r[8],
            frozen=bool(r[9]),
            updated_at=r[10],
        )

    def log_state(self, log_id: int, tree_id: str) -> LogState | None:
        """The verified state of one tree, or None before its first verified checkpoint."""
        row = self._read_one(
            f"SELECT {_STATE_COLUMNS} FROM log_state WHERE log_id = ? AND tree_id = ?",
            (log_id, tree_id),
        )
        return None if row is None else self._state_from_row(row)

    def log_states(self, log_id: int | None = None) -> list[LogState]:
        """Verified state of every tree (of one log, or of all)."""
        sql = f"SELECT {_STATE_COLUMNS} FROM log_state"
        params: tuple[Any, ...] = ()
        if log_id is not None:
            sql += " WHERE log_id = ?"
            params = (log_id,)
        rows = self._read(sql + " ORDER BY log_id, updated_at", params)
        return [self._state_from_row(r) for r in rows]

    def put_state(
        self, conn: sqlite3.Connection, state: LogState, *, expected: LogState | None
    ) -> None:
        """Write one tree's verified state inside the caller's transaction, as a compare-and-swap
        from `expected`, the state the decision to write it was made on (None: there was no row).

        Raises StaleState when the row no longer holds `expected`'s verified size and root (or a
        row appeared meanwhile): another process on the same database (a `check` next to the
        daemon) moved it, and the caller must decide again from fresh state. Whatever the
        caller passes, the verified size never goes below `expected`'s, the high-water mark is
        never lowered and a frozen tree stays frozen. The scan position is set only when the
        row is created; after that only `advance_scan` moves it, so a stale copy of the state
        can never undo a scan.
        """
        if expected is not None and (
            (state.log_id, state.tree_id) != (expected.log_id, expected.tree_id)
            or state.verified_size < expected.verified_size
        ):
            raise StoreError(
                f"log {state.log_id} tree {state.tree_id}: refusing to replace verified size "
                f"{expected.verified_size} of tree {expected.tree_id} with {state.verified_size}"
                " (the verified state only grows)"
            )
        if expected is None:
            cur = conn.execute(
                f"INSERT INTO log_state ({_STATE_COLUMNS}) VALUES ({_STATE_PLACEHOLDERS}) "
                "ON CONFLICT (log_id, tree_id) DO NOTHING",
                (
                    state.log_id,
                    state.tree_id,
                    state.origin,
                    state.verified_size,
                    state.verified_root,
                    state.verified_note,
                    max(state.high_water, state.verified_size),
                    state.scan_cursor,
                    state.compact_range,
                    int(state.frozen),
                    state.updated_at,
                ),
            )
        else:
            cur = conn.execute(
                "UPDATE log_state SET origin = ?, verified_size = ?, verified_root = ?, "
                "verified_note = ?, high_water = max(high_water, ?, ?), frozen = max(frozen, ?), "
                "updated_at = ? "
                "WHERE log_id = ? AND tree_id = ? AND verified_size = ? AND verified_root = ?",
                (
                    state.origin,
                    state.verified_size,
                    state.verified_root,
                    state.verified_note,
                    state.high_water,
                    state.verified_size,
                    int(state.frozen),
                    state.updated_at,
                    state.log_id,
                    state.tree_id,
                    expected.verified_size,
                    expected.verified_root,
                ),
            )
        if cur.rowcount != 1:
            raise StaleState(
                f"log {state.log_id} tree {state.tree_id}: the verified state changed while "
                "this process was deciding (another tlog-monitor process writes this database)"
            )

    def advance_scan(
        self,
        conn: sqlite3.Connection,
        log_id: int,
        tree_id: str,
        cursor: int,
        compact_range: bytes,
        now: datetime,
        *,
        expected: int | None,
    ) -> None:
        """Move a tree's scan position, inside the transaction that stores what the scan of the
        entries before it found, as a compare-and-swap from `expected`, the cursor the scan
        started from (None: not set yet). The cursor never passes the verified size and never
        goes backwards.

        Raises StaleState when another process moved the cursor meanwhile (the caller re-reads
        the state), StoreError when `cursor` is behind `expected` or beyond the verified size.
        """
        if expected is not None and cursor < expected:
            raise StoreError(
                f"scan of log {log_id} tree {tree_id}: refusing to move the cursor back from "
                f"{expected} to {cursor}"
            )
        cur = conn.execute(
            "UPDATE log_state SET scan_cursor = ?, compact_range = ?, updated_at = ? "
            "WHERE log_id = ? AND tree_id = ? AND verified_size >= ? AND scan_cursor IS ?",
            (cursor, compact_range, utc_iso(now), log_id, tree_id, cursor, expected),
        )
        if cur.rowcount == 1:
            return
        row = conn.execute(
            "SELECT scan_cursor FROM log_state WHERE log_id = ? AND tree_id = ?",
            (log_id, tree_id),
        ).fetchone()
        if row is not None and row[0] != expected:
            raise StaleState(
                f"scan of log {log_id} tree {tree_id}: the cursor moved from {expected} to "
                f"{row[0]} while this process scanned (another tlog-monitor process writes "
                "this database)"
            )
        raise StoreError(
            f"scan of log {log_id} tree {tree_id}: cannot move the cursor to {cursor} "
            "(beyond the verified size)"
        )

    def add_match(
        self,
        conn: sqlite3.Connection,
        *,
        log_id: int,
        tree_id: str,
        tree_index: int,
        global_index: int,
        rule: str,
        signer_index: int,
        outcome: str,
        source: str,
        identity: Mapping[str, Any],
        certificate: bytes | None,
        alert_id: int | None,
        now: datetime,
        certificate_id: str | None = None,
    ) -> bool:
        """Record a watch-rule match (`tree_index`: its index in the tree; `global_index`: in the
        log; `certificate_id`: the signer's `monitor.core.certs.certificate_id`); False when this
        entry, rule and signer were recorded already (a search can find what a scan found)."""
        cur = conn.execute(
            "INSERT INTO matches (log_id, tree_id, tree_index, global_index, rule, signer_index, "
            "outcome, source, identity, certificate, alert_id, created_at, certificate_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (log_id, tree_id, tree_index, rule, signer_index) DO NOTHING",
            (
                log_id,
                tree_id,
                tree_index,
                global_index,
                rule,
                signer_index,
                outcome,
                source,
                json.dumps(identity, sort_keys=True, default=str),
                certificate,
                alert_id,
                utc_iso(now),
                certificate_id,
            ),
        )
        return bool(cur.rowcount)

    def certificate_alert(
        self, conn: sqlite3.Connection, rule: str, certificate_id: str, kind: str
    ) -> int | None:
        """The id of an alert of `kind` that a match of `rule` on the certificate
        `certificate_id` raised (in any log), None when none did."""
        row = conn.execute(
            "SELECT a.id FROM matches m JOIN alerts a ON a.id = m.alert_id "
            "WHERE m.certificate_id = ? AND m.rule = ? AND a.kind = ? ORDER BY a.id LIMIT 1",
            (certificate_id, rule, kind),
        ).fetchone()
        return None if row is None else int(row[0])

    def alert_id(self, conn: sqlite3.Connection, dedup_key: str) -> int | None:
        """The id of the alert with this dedup key, None when there is none."""
        row = conn.execute("SELECT id FROM alerts WHERE dedup_key = ?", (dedup_key,)).fetchone()
        return None if row is None else int(row[0])

    def add_scan_error(
        self,
        conn: sqlite3.Connection,
        log_id: int,
        tree_id: str,
        tree_index: int,
        error: str,
        now: datetime,
    ) -> None:
        """Record an entry the scan could not parse."""
        conn.execute(
            "INSERT INTO scan_errors (log_id, tree_id, tree_index, error, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (log_id, tree_id, tree_index) DO NOTHING",
            (log_id, tree_id, tree_index, error[:1000], utc_iso(now)),
        )

    # -- SCT promises (monitor/service/sct_watch.py; schema 004) --------------------------------

    def add_sct_promise(
        self,
        conn: sqlite3.Connection,
        ct_log_id: int,
        leaf_hash: bytes,
        sct_ms: int,
        deadline_ms: int,
        evidence: Mapping[str, object],
        now: datetime,
    ) -> None:
        """Record, inside the caller's transaction, a CT log's promise to add the leaf
        `leaf_hash` by `deadline_ms`; resolved at once when its scan already proved that leaf
        (a certificate is often in CT before it is seen in Rekor). A known promise is kept."""
        row = conn.execute(
            "SELECT tree_index FROM ct_leaves WHERE log_id = ? AND leaf_hash = ?",
            (ct_log_id, leaf_hash),
        ).fetchone()
        state = "pending" if row is None else "incorporated"
        if row is None:
            # The scan keeps no leaf at or before `since_ms` (pruned, or never read): such an
            # SCT's leaf cannot be looked for, so the promise is unknowable, never alerted.
            coverage = self.ct_coverage(conn, ct_log_id)
            if coverage is not None and sct_ms <= coverage[1]:
                state = "unknowable"
        conn.execute(
            "INSERT INTO sct_promises (ct_log_id, leaf_hash, sct_ms, deadline_ms, state, "
            "tree_index, evidence, created_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ct_log_id, leaf_hash) DO NOTHING",
            (
                ct_log_id,
                leaf_hash,
                sct_ms,
                deadline_ms,
                state,
                None if row is None else row[0],
                json.dumps(evidence, sort_keys=True),
                utc_iso(now),
                None if state == "pending" else utc_iso(now),
            ),
        )

    def record_ct_leaves(
        self,
        conn: sqlite3.Connection,
        log_id: int,
        first: int,
        hashes: Sequence[bytes],
        now: datetime,
        entry_ms: Sequence[int] | None = None,
    ) -> int:
        """Inside the scan's transaction: the leaf hashes of a CT log's entries
        [first, first + len(hashes)) are in its verified tree (with their MerkleTreeLeaf
        timestamps `entry_ms`, for pruning); pending promises of those leaves are kept. Returns
        how many promises that resolved."""
        times: Sequence[int | None] = entry_ms if entry_ms is not None else [None] * len(hashes)
        conn.executemany(
            "INSERT INTO ct_leaves (log_id, leaf_hash, tree_index, entry_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (log_id, leaf_hash) DO NOTHING",
            [(log_id, h, first + i, t) for i, (h, t) in enumerate(zip(hashes, times, strict=True))],
        )
        cur = conn.execute(
            "UPDATE sct_promises SET state = 'incorporated', resolved_at = ?, tree_index = "
            "(SELECT l.tree_index FROM ct_leaves l WHERE l.log_id = sct_promises.ct_log_id "
            "AND l.leaf_hash = sct_promises.leaf_hash) "
            "WHERE ct_log_id = ? AND state = 'pending' AND leaf_hash IN "
            "(SELECT leaf_hash FROM ct_leaves WHERE log_id = ? AND tree_index >= ? "
            "AND tree_index < ?)",
            (utc_iso(now), log_id, log_id, first, first + len(hashes)),
        )
        return cur.rowcount

    def cover_ct_log(
        self,
        conn: sqlite3.Connection,
        log_id: int,
        from_index: int,
        since_ms: int,
        covered_ms: int,
        now: datetime,
    ) -> None:
        """Inside the scan's transaction: every entry of a CT log from `from_index` up to a
        verified tree signed at `covered_ms` is scanned. The first call fixes `from_index` and
        `since_ms`; later ones only move `covered_ms` forward."""
        conn.execute(
            "INSERT INTO ct_coverage (log_id, from_index, since_ms, covered_ms, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (log_id) DO UPDATE SET "
            "covered_ms = max(covered_ms, excluded.covered_ms), updated_at = excluded.updated_at",
            (log_id, from_index, since_ms, covered_ms, utc_iso(now)),
        )

    def prune_ct_leaves(
        self, conn: sqlite3.Connection, log_id: int, until_ms: int, limit: int, now: datetime
    ) -> int:
        """Inside the scan's transaction: raise the coverage's `since_ms` to `until_ms` (never
        lower it; never below a pending promise, which must stay judgeable) and delete at most
        `limit` leaves whose timestamp is at or before it. Needs the coverage row (nothing is
        pruned without it). Returns how many leaves were deleted."""
        row = conn.execute(
            "SELECT min(sct_ms) FROM sct_promises WHERE ct_log_id = ? AND state = 'pending'",
            (log_id,),
        ).fetchone()
        if row is not None and row[0] is not None:
            until_ms = min(until_ms, int(row[0]) - 1)
        conn.execute(
            "UPDATE ct_coverage SET since_ms = max(since_ms, ?), updated_at = ? WHERE log_id = ?",
            (until_ms, utc_iso(now), log_id),
        )
        coverage = self.ct_coverage(conn, log_id)
        if coverage is None:
            return 0
        cur = conn.execute(
            "DELETE FROM ct_leaves WHERE log_id = ? AND leaf_hash IN (SELECT leaf_hash FROM "
            "ct_leaves WHERE log_id = ? AND entry_ms <= ? LIMIT ?)",
            (log_id, log_id, coverage[1], limit),
        )
        return cur.rowcount

    def ct_coverage(self, conn: sqlite3.Connection, log_id: int) -> tuple[int, int, int] | None:
        """(from_index, since_ms, covered_ms) of a CT log's scan, None before its first scan."""
        row = conn.execute(
            "SELECT from_index, since_ms, covered_ms FROM ct_coverage WHERE log_id = ?",
            (log_id,),
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def due_sct_promises(
        self, conn: sqlite3.Connection, ct_log_id: int, until_ms: int
    ) -> list[tuple[int, int, dict[str, Any]]]:
        """(id, sct_ms, evidence) of the pending promises of a CT log due by `until_ms`."""
        rows = conn.execute(
            "SELECT id, sct_ms, evidence FROM sct_promises WHERE ct_log_id = ? "
            "AND state = 'pending' AND deadline_ms <= ? ORDER BY id",
            (ct_log_id, until_ms),
        ).fetchall()
        return [(int(r[0]), int(r[1]), json.loads(r[2])) for r in rows]

    def resolve_sct_promise(
        self,
        conn: sqlite3.Connection,
        promise_id: int,
        state: str,
        alert_id: int | None,
        now: datetime,
    ) -> None:
        """Close a pending promise ('alerted' or 'unknowable') inside the caller's transaction."""
        conn.execute(
            "UPDATE sct_promises SET state = ?, alert_id = ?, resolved_at = ? "
            "WHERE id = ? AND state = 'pending'",
            (state, alert_id, utc_iso(now), promise_id),
        )

    # -- certificates never logged in Rekor (monitor/service/unlogged.py; schema 005) ---------

    def expect_in_rekor(
        self,
        conn: sqlite3.Connection,
        certificate_id: str,
        rule: str,
        ct_log_id: int,
        ct_ms: int,
        evidence: Mapping[str, object],
        now: datetime,
    ) -> None:
        """Inside the scan's transaction: a CT log shows `certificate_id` for `rule`, to be
        looked for in Rekor. 'logged' at once when a Rekor log's match already uses it; a known
        pending check keeps the earliest CT timestamp (a precertificate and its certificate)."""
        row = conn.execute(
            "SELECT m.log_id, m.tree_id, m.tree_index FROM matches m JOIN logs l ON l.id = "
            "m.log_id WHERE m.certificate_id = ? AND l.type NOT IN ('ct', 'static-ct') "
            "ORDER BY m.id LIMIT 1",
            (certificate_id,),
        ).fetchone()
        ts = utc_iso(now)
        conn.execute(
            "INSERT INTO unlogged_checks (certificate_id, rule, ct_log_id, ct_ms, evidence, "
            "state, rekor_log_id, rekor_tree_id, rekor_index, created_at, resolved_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (certificate_id, rule) DO UPDATE "
            "SET ct_ms = min(ct_ms, excluded.ct_ms) WHERE state = 'pending'",
            (
                certificate_id,
                rule,
                ct_log_id,
                ct_ms,
                json.dumps(evidence, sort_keys=True, default=str),
                "pending" if row is None else "logged",
                None if row is None else row[0],
                None if row is None else row[1],
                None if row is None else row[2],
                ts,
                None if row is None else ts,
            ),
        )

    def certificate_in_rekor(
        self,
        conn: sqlite3.Connection,
        certificate_id: str,
        log_id: int,
        tree_id: str,
        tree_index: int,
        now: datetime,
    ) -> int:
        """Inside the scan's or search's transaction: a Rekor entry uses `certificate_id`; its
        pending checks are 'logged'. Returns how many."""
        cur = conn.execute(
            "UPDATE unlogged_checks SET state = 'logged', rekor_log_id = ?, rekor_tree_id = ?, "
            "rekor_index = ?, resolved_at = ? WHERE certificate_id = ? AND state = 'pending'",
            (log_id, tree_id, tree_index, utc_iso(now), certificate_id),
        )
        return cur.rowcount

    def pending_unlogged(self, conn: sqlite3.Connection) -> list[PendingUnlogged]:
        """Every pending check, oldest CT timestamp first, with its CT log's name."""
        rows = conn.execute(
            "SELECT u.id, u.certificate_id, u.rule, u.ct_log_id, l.name, u.ct_ms, u.evidence, "
            "u.created_at FROM unlogged_checks u JOIN logs l ON l.id = u.ct_log_id "
            "WHERE u.state = 'pending' ORDER BY u.ct_ms, u.id"
        ).fetchall()
        return [
            PendingUnlogged(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                int(r[3]),
                str(r[4]),
                int(r[5]),
                json.loads(r[6]),
                to_ms(parse_utc(str(r[7]))),
            )
            for r in rows
        ]

    def resolve_unlogged(
        self,
        conn: sqlite3.Connection,
        check_id: int,
        state: str,
        alert_id: int | None,
        now: datetime,
    ) -> None:
        """Close a pending check ('alerted', 'not_expected', 'unwatched', 'unknowable') inside
        the caller's transaction."""
        conn.execute(
            "UPDATE unlogged_checks SET state = ?, alert_id = ?, resolved_at = ? "
            "WHERE id = ? AND state = 'pending'",
            (state, alert_id, utc_iso(now), check_id),
        )

    def rekor_scan_since(
        self, conn: sqlite3.Connection, log_id: int, since_ms: int, now: datetime
    ) -> int:
        """Since when (ms) a scanned Rekor log's scan reads every entry: the first call records
        `since_ms`, later ones return what it recorded (read first: it is asked every poll)."""
        row = conn.execute(
            "SELECT since_ms FROM rekor_scan_since WHERE log_id = ?", (log_id,)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO rekor_scan_since (log_id, since_ms, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (log_id) DO NOTHING",
                (log_id, since_ms, utc_iso(now)),
            )
            row = conn.execute(
                "SELECT since_ms FROM rekor_scan_since WHERE log_id = ?", (log_id,)
            ).fetchone()
        return int(row[0])

    def pending_unlogged_for_search(
        self, log_id: int, windows: Mapping[str, int], now_ms: int
    ) -> list[tuple[PendingUnlogged, bytes | None]]:
        """Pending checks due for a lookup in `log_id`'s search index, oldest CT timestamp
        first: their rule is in `windows` (rule -> `unlogged_after` in ms), their deadline
        (`PendingUnlogged.deadline_ms`) has passed at `now_ms`, and no lookup yet covered a tree
        the log served at or after it. Each with a certificate (DER, or a precertificate's TBS)
        that a match stored for it, None when there is none."""
        out: list[tuple[PendingUnlogged, bytes | None]] = []
        with self.transaction() as conn:
            for check in self.pending_unlogged(conn):
                window = windows.get(check.rule)
                if window is None or now_ms < check.deadline_ms(window):
                    continue
                row = conn.execute(
                    "SELECT covered_ms FROM unlogged_searches WHERE check_id = ? AND log_id = ?",
                    (check.id, log_id),
                ).fetchone()
                if row is not None and int(row[0]) >= check.deadline_ms(window):
                    continue
                cert = conn.execute(
                    "SELECT certificate FROM matches WHERE certificate_id = ? AND certificate IS "
                    "NOT NULL ORDER BY id LIMIT 1",
                    (check.certificate_id,),
                ).fetchone()
                out.append((check, None if cert is None else bytes(cert[0])))
        return out

    def record_unlogged_search(
        self,
        check_id: int,
        log_id: int,
        tree_id: str,
        tree_size: int,
        covered_ms: int,
        now: datetime,
    ) -> bool:
        """A completed lookup of a pending check in `log_id`'s index found no entry using its
        certificate: the index covered `tree_size` entries of `tree_id`, served at `covered_ms`.
        Recorded only while the check is pending; returns whether it was."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO unlogged_searches (check_id, log_id, tree_id, tree_size, covered_ms, "
                "looked_at) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM unlogged_checks "
                "WHERE id = ? AND state = 'pending') ON CONFLICT (check_id, log_id) DO UPDATE SET "
                "tree_id = excluded.tree_id, tree_size = excluded.tree_size, covered_ms = "
                "max(covered_ms, excluded.covered_ms), looked_at = excluded.looked_at",
                (check_id, log_id, tree_id, tree_size, covered_ms, utc_iso(now), check_id),
            )
            return cur.rowcount > 0

    def unlogged_search(
        self, conn: sqlite3.Connection, check_id: int, log_id: int
    ) -> tuple[str, int, int] | None:
        """(tree_id, tree_size, covered_ms) of the latest lookup of a check in a log's index
        that found nothing, None when there was none."""
        row = conn.execute(
            "SELECT tree_id, tree_size, covered_ms FROM unlogged_searches WHERE check_id = ? "
            "AND log_id = ?",
            (check_id, log_id),
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), int(row[2]))

    def last_seen_verified(
        self, conn: sqlite3.Connection, log_id: int, state: LogState, view: str
    ) -> datetime | None:
        """When `view` last served the tree's verified checkpoint (its size and root), None
        when it never did."""
        return self._seen_verified(conn, log_id, state, view, "max(last_seen)")

    def first_seen_verified(
        self, conn: sqlite3.Connection, log_id: int, state: LogState, view: str
    ) -> datetime | None:
        """When `view` first served the tree's verified checkpoint (its size and root), None
        when it never did: a tree first served then holds what an honest log integrated before
        it, however long the log goes on serving it."""
        return self._seen_verified(conn, log_id, state, view, "min(first_seen)")

    @staticmethod
    def _seen_verified(
        conn: sqlite3.Connection,
        log_id: int,
        state: LogState,
        view: str,
        column: Literal["max(last_seen)", "min(first_seen)"],
    ) -> datetime | None:
        row = conn.execute(
            f"SELECT {column} FROM checkpoints WHERE log_id = ? AND tree_id = ? AND "
            "view = ? AND size = ? AND root = ?",
            (log_id, state.tree_id, view, state.verified_size, state.verified_root),
        ).fetchone()
        return None if row is None or row[0] is None else parse_utc(str(row[0]))

    # -- search index (monitor/service/index_search.py) -----------------------------------------

    def search_baselines(self, log_id: int, terms: Sequence[str], now: datetime) -> dict[str, str]:
        """Each term's `first_searched_at`, recording `now` for terms never searched before."""
        ts = utc_iso(now)
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO search_terms (log_id, term, first_searched_at, last_searched_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (log_id, term) DO NOTHING",
                [(log_id, t, ts, ts) for t in terms],
            )
            rows = c.execute(
                "SELECT term, first_searched_at FROM search_terms WHERE log_id = ?", (log_id,)
            ).fetchall()
        wanted = set(terms)
        return {r[0]: r[1] for r in rows if r[0] in wanted}

    def record_search(
        self, log_id: int, term: str, results: int, error: str | None, now: datetime
    ) -> None:
        """A term's latest lookup: how many UUIDs the index listed, or why it failed."""
        with self.transaction() as c:
            c.execute(
                "UPDATE search_terms SET last_searched_at = ?, "
                "results = CASE WHEN ? IS NULL THEN ? ELSE results END, last_error = ? "
                "WHERE log_id = ? AND term = ?",
                (utc_iso(now), error, results, None if error is None else error[:1000],
                 log_id, term),
            )  # fmt: skip

    def search_seen(self, log_id: int, leaf_hashes: Sequence[bytes]) -> set[bytes]:
        """Which of `leaf_hashes` a search has dealt with already."""
        seen: set[bytes] = set()
        for i in range(0, len(leaf_hashes), 500):
            batch = list(leaf_hashes[i : i + 500])
            marks = ", ".join("?" * len(batch))
            seen.update(
                r[0]
                for r in self._read(
                    "SELECT leaf_hash FROM search_seen WHERE log_id = ? "
                    f"AND leaf_hash IN ({marks})",
                    (log_id, *batch),
                )
            )
        return seen

    def mark_seen(
        self,
        conn: sqlite3.Connection,
        log_id: int,
        leaf: bytes,
        tree_id: str,
        tree_index: int,
        outcome: str,
        now: datetime,
    ) -> None:
        """Record, in the caller's transaction, that a search dealt with this entry."""
        conn.execute(
            "INSERT INTO search_seen (log_id, leaf_hash, tree_id, tree_index, outcome, first_seen) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (log_id, leaf_hash) DO NOTHING",
            (log_id, leaf, tree_id, tree_index, outcome, utc_iso(now)),
        )

    def record_search_progress(
        self,
        log_id: int,
        *,
        terms: int,
        fetched: int,
        requests_last_min: int,
        requests_per_minute: int,
        now: datetime,
    ) -> None:
        """One search round's figures for `report status` (`fetched` adds up)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO search_progress (log_id, terms, fetched, requests_last_min, "
                "requests_per_minute, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (log_id) DO UPDATE SET terms = excluded.terms, "
                "fetched = search_progress.fetched + excluded.fetched, "
                "requests_last_min = excluded.requests_last_min, "
                "requests_per_minute = excluded.requests_per_minute, "
                "updated_at = excluded.updated_at",
                (log_id, terms, fetched, requests_last_min, requests_per_minute, utc_iso(now)),
            )

    # -- view health -----------------------------------------------------------------------

    def view_health(self, log_id: int, view: str) -> ViewHealth | None:
        """Reachability of one view, or None before its first poll."""
        row = self._read_one(
            "SELECT log_id, view, last_ok_at, last_growth_at, error_since, last_error, errors "
            "FROM view_health WHERE log_id = ? AND view = ?",
            (log_id, view),
        )
        return None if row is None else ViewHealth(*row)

    def record_view_ok(
        self, conn: sqlite3.Connection, log_id: int, view: str, *, grew: bool, now: datetime
    ) -> None:
        """A poll of `view` succeeded (and the log grew, if `grew`)."""
        ts = utc_iso(now)
        conn.execute(
            "INSERT INTO view_health (log_id, view, last_ok_at, last_growth_at, errors) "
            "VALUES (?, ?, ?, ?, 0) ON CONFLICT (log_id, view) DO UPDATE SET "
            "last_ok_at = excluded.last_ok_at, "
            "last_growth_at = coalesce(excluded.last_growth_at, view_health.last_growth_at), "
            "error_since = NULL, last_error = NULL, errors = 0",
            (log_id, view, ts, ts if grew else None),
        )

    def record_view_error(self, log_id: int, view: str, error: str, now: datetime) -> ViewHealth:
        """A poll of `view` failed; returns the updated health (error_since is the first failure
        of the current run of failures)."""
        ts = utc_iso(now)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO view_health (log_id, view, error_since, last_error, errors) "
                "VALUES (?, ?, ?, ?, 1) ON CONFLICT (log_id, view) DO UPDATE SET "
                "error_since = coalesce(view_health.error_since, excluded.error_since), "
                "last_error = excluded.last_error, errors = view_health.errors + 1",
                (log_id, view, ts, error[:2000]),
            )
        health = self.view_health(log_id, view)
        if health is None:  # pragma: no cover - the row was just written
            raise StoreError("view_health row vanished")
        return health

    # -- alerts and the outbox ---------------------------------------------------------------

    def add_alert(
        self,
        conn: sqlite3.Connection,
        alert: Alert,
        log_id: int | None,
        channels: Sequence[str],
        now: datetime,
    ) -> int | None:
        """Record an alert and its pending deliveries inside the caller's transaction.

        Returns the new alert's id, or None when an alert with the same dedup key exists (the
        same fact is alerted once, across restarts).
        """
        ts = utc_iso(now)
        cur = conn.execute(
            "INSERT INTO alerts (kind, severity, log_id, rule, dedup_key, summary, details, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING",
            (
                alert.kind.value,
                alert.severity.value,
                log_id,
                alert.rule,
                alert.dedup_key,
                alert.summary,
                json.dumps(alert.details, sort_keys=True),
                ts,
            ),
        )
        if not cur.rowcount:
            return None
        alert_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO deliveries (alert_id, channel, status, attempts, next_try) "
            "VALUES (?, ?, 'pending', 0, ?)",
            [(alert_id, ch, ts) for ch in channels],
        )
        return alert_id

    def raise_alerts(
        self,
        log_id: int | None,
        alerts: Sequence[tuple[Alert, Sequence[str]]],
        now: datetime,
    ) -> list[tuple[int, Alert]]:
        """Record alerts (each with its delivery targets) in one transaction of their own;
        returns the new ones with their ids (known facts are skipped)."""
        created: list[tuple[int, Alert]] = []
        with self.transaction() as conn:
            for alert, channels in alerts:
                alert_id = self.add_alert(conn, alert, log_id, channels, now)
                if alert_id is not None:
                    created.append((alert_id, alert))
        return created

    def due_deliveries(
        self, now: datetime, limit: int = 100, *, latest: datetime | None = None
    ) -> list[Delivery]:
        """Pending deliveries whose next try is due, oldest first.

        `latest` is the furthest a retry can be scheduled from `now`; a next try beyond it was
        scheduled before the clock went back, and is due now rather than once the clock has
        caught up again (found by the fault suite, tests/faults/test_time_faults.py).
        """
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "
            "JOIN alerts a ON a.id = d.alert_id LEFT JOIN logs l ON l.id = a.log_id "
            f"WHERE {_DUE} ORDER BY d.id LIMIT ?",
            (utc_iso(now), _far(latest), limit),
        )
        return [_delivery(r) for r in rows]

    def _update_delivery(self, assignments: str, params: Sequence[Any], delivery_id: int) -> None:
        # `assignments` are this module's constants, never data.
        with self.transaction() as c:
            c.execute(
                f"UPDATE deliveries SET {assignments} WHERE id = ? AND status = 'pending'",
                (*params, delivery_id),
            )

    def mark_sending(self, delivery_id: int, now: datetime) -> None:
        """A send of this delivery begins; until its outcome is recorded, a retry is a possible
        repeat (see `Delivery.maybe_sent`)."""
        self._update_delivery(_SENDING, (utc_iso(now),), delivery_id)

    def mark_delivered(self, delivery_id: int, now: datetime) -> None:
        """A delivery succeeded: it is never attempted again."""
        self._update_delivery(_DELIVERED, (utc_iso(now),), delivery_id)

    def mark_failed(
        self, delivery_id: int, error: str, next_try: datetime, *, maybe_sent: bool = False
    ) -> None:
        """A delivery failed: record why (already redacted by the caller) and when to retry.
        `maybe_sent`: the send was abandoned, not refused (a timeout), so the receiver may
        still get it: every retry is marked as a possible repeat."""
        self._update_delivery(_FAILED, (error[:2000], utc_iso(next_try), maybe_sent), delivery_id)

    def due_groups(
        self,
        now: datetime,
        limit: int = 100,
        *,
        latest: datetime | None = None,
        sample: int = 10,
        exclude: Sequence[str] = (),
    ) -> list[DueGroup]:
        """Due deliveries grouped by target, kind, severity, log and rule; most severe first,
        then oldest first (by the group's oldest row), each group's rows oldest first.

        A group carries its `count` of due rows and at most `sample` of its oldest rows; a group
        larger than `sample` also carries its alert id ranges (a digest lists them). At most
        `limit` rows are read in all, so a round never loads a flood: 100,000 due rows of one
        group cost one sorted pass in SQLite and `sample` rows here. `exclude` names targets
        left out (paused after a failure). `latest` as in `due_deliveries`.
        """
        due_at = utc_iso(now)
        far = _far(latest)
        # The window runs over small columns only; details are joined for the sampled rows.
        rows = self._read(
            "WITH due AS (SELECT d.id, d.alert_id, "
            f"row_number() OVER (PARTITION BY {_GROUP_BY} ORDER BY d.id) AS rn, "
            "count(*) OVER w AS n, min(d.id) OVER w AS first_id, max(d.id) OVER w AS last_id, "
            "max(d.maybe_sent OR d.sending_since IS NOT NULL) OVER w AS any_maybe, "
            f"{_SEVERITY_RANK} AS rank "
            "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            f"WHERE {_DUE} AND d.channel NOT IN (SELECT value FROM json_each(?)) "
            f"WINDOW w AS (PARTITION BY {_GROUP_BY})) "
            f"SELECT {_DELIVERY_COLUMNS}, a.log_id, due.n, due.last_id, due.any_maybe "
            "FROM due JOIN deliveries d ON d.id = due.id "
            "JOIN alerts a ON a.id = due.alert_id LEFT JOIN logs l ON l.id = a.log_id "
            "WHERE due.rn <= ? ORDER BY due.rank DESC, due.first_id, due.id LIMIT ?",
            (due_at, far, json.dumps(list(exclude)), max(1, sample), max(0, limit)),
        )
        groups: dict[tuple[Any, ...], tuple[list[Any], list[Delivery]]] = {}
        for r in rows:
            key = (r[2], r[4], r[5], r[12], r[9])
            groups.setdefault(key, (list(r), []))[1].append(_delivery(r))
        result: list[DueGroup] = []
        for first, deliveries in groups.values():
            group = DueGroup(
                channel=first[2],
                kind=first[4],
                severity=first[5],
                log_id=first[12],
                log_name=first[8],
                rule=first[9],
                count=int(first[13]),
                last_id=int(first[14]),
                due_at=due_at,
                latest=far,
                maybe_sent=bool(first[15]),
                deliveries=tuple(deliveries),
            )
            if group.count > sample:
                ranges = self._alert_ranges(group, MAX_ALERT_RANGES + 1)
                group = replace(
                    group,
                    alert_ranges=tuple(ranges[:MAX_ALERT_RANGES]),
                    more_ranges=len(ranges) > MAX_ALERT_RANGES,
                )
            result.append(group)
        return result

    @staticmethod
    def _group_params(group: DueGroup) -> tuple[Any, ...]:
        return (
            group.due_at,
            group.latest,
            group.channel,
            group.last_id,
            group.kind,
            group.severity,
            group.log_id,
            group.rule,
        )

    def _alert_ranges(self, group: DueGroup, limit: int) -> list[tuple[int, int]]:
        """The group's alert ids as ranges of consecutive ids (gaps and islands), lowest first."""
        rows = self._read(
            "SELECT min(alert_id), max(alert_id) FROM (SELECT d.alert_id, "
            "d.alert_id - row_number() OVER (ORDER BY d.alert_id) AS island "
            f"FROM deliveries d JOIN alerts a ON a.id = d.alert_id WHERE {_IN_GROUP}) "
            "GROUP BY island ORDER BY 1 LIMIT ?",
            (*self._group_params(group), limit),
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    def _update_group(self, assignments: str, params: Sequence[Any], group: DueGroup) -> int:
        # `assignments` are this module's constants, never data.
        with self.transaction() as c:
            cur = c.execute(
                f"UPDATE deliveries SET {assignments} WHERE id IN (SELECT d.id FROM deliveries d "
                f"JOIN alerts a ON a.id = d.alert_id WHERE {_IN_GROUP})",
                (*params, *self._group_params(group)),
            )
            return int(cur.rowcount)

    def mark_group_sending(self, group: DueGroup, now: datetime) -> int:
        """`mark_sending` for every row of `group` (a digest covering them begins)."""
        return self._update_group(_SENDING, (utc_iso(now),), group)

    def mark_group_delivered(self, group: DueGroup, now: datetime) -> int:
        """`mark_delivered` for every row of `group`; returns how many rows that was."""
        return self._update_group(_DELIVERED, (utc_iso(now),), group)

    def mark_group_failed(
        self, group: DueGroup, error: str, next_try: datetime, *, maybe_sent: bool = False
    ) -> int:
        """`mark_failed` for every row of `group`; returns how many rows that was."""
        return self._update_group(_FAILED, (error[:2000], utc_iso(next_try), maybe_sent), group)

    def pending_count(self) -> int:
        """How many deliveries are still pending."""
        return int(self._read_one("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0])

    # -- trust sources ([[sigstore]]) ------------------------------------------------------

    def current_trust(self, source: str) -> StoredTrust | None:
        """The trust `source` holds now (the last one recorded), or None before its first."""
        row = self._read_one(
            f"SELECT {_TRUST_COLUMNS} FROM trust_snapshots t "
            "WHERE t.id = (SELECT snapshot_id FROM trust_sources WHERE source = ?)",
            (source,),
        )
        return None if row is None else _stored_trust(row)

    def record_trust(
        self,
        source: str,
        *,
        origin: str,
        trusted_root: bytes,
        signing_config: bytes | None,
        versions: Mapping[str, int] | None,
        changes: Sequence[TrustChange],
        alerts: Sequence[tuple[Alert, Sequence[str]]],
        now: datetime,
    ) -> tuple[int, list[tuple[int, Alert]]]:
        """Record the trust `source` holds now, in one transaction: the snapshot (a new row only
        when its content differs from the current one; else the current row's origin and
        versions are updated), one `trust_changes` row per change, the alerts (each with its
        delivery targets; when there are as many alerts as changes, `alerts[i]` is the alert of
        `changes[i]` and its id is kept on that row), and the source's current snapshot.

        Only a trust fetched from the repository (`origin` "tuf") is a successful refresh: it
        sets `last_success` and ends a run of failures. A trust from the cache or sigstore's
        embedded copy changes neither, so a failed refresh followed by its fallback stays a
        failure (whichever the caller records first).

        Returns the snapshot id and the new alerts with their ids (known facts are skipped).
        """
        if origin not in TRUST_ORIGINS:
            raise ValueError(f"record_trust: origin must be one of {TRUST_ORIGINS}, not {origin!r}")
        digest = trust_digest(trusted_root, signing_config)
        ts = utc_iso(now)
        columns = _version_columns(versions)
        created: list[tuple[int, Alert]] = []
        with self.transaction() as c:
            current = c.execute(
                "SELECT t.id, t.sha256 FROM trust_snapshots t "
                "WHERE t.id = (SELECT snapshot_id FROM trust_sources WHERE source = ?)",
                (source,),
            ).fetchone()
            if current is not None and current[1] == digest:
                snapshot_id = int(current[0])
                c.execute(
                    "UPDATE trust_snapshots SET origin = ?, "
                    "root_version = coalesce(?, root_version), "
                    "timestamp_version = coalesce(?, timestamp_version), "
                    "snapshot_version = coalesce(?, snapshot_version), "
                    "targets_version = coalesce(?, targets_version) WHERE id = ?",
                    (origin, *columns, snapshot_id),
                )
            else:
                cur = c.execute(
                    "INSERT INTO trust_snapshots (source, origin, sha256, trusted_root, "
                    "signing_config, root_version, timestamp_version, snapshot_version, "
                    "targets_version, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (source, origin, digest, trusted_root, signing_config, *columns, ts),
                )
                snapshot_id = int(cur.lastrowid or 0)
            alert_ids: list[int | None] = []
            for alert, channels in alerts:
                alert_id = self.add_alert(c, alert, None, channels, now)
                if alert_id is not None:
                    created.append((alert_id, alert))
                else:
                    row = c.execute(
                        "SELECT id FROM alerts WHERE dedup_key = ?", (alert.dedup_key,)
                    ).fetchone()
                    alert_id = None if row is None else int(row[0])
                alert_ids.append(alert_id)
            paired = len(alert_ids) == len(changes)
            c.executemany(
                "INSERT INTO trust_changes (source, snapshot_id, change, section, name, before, "
                "after, recorded_at, alert_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        source,
                        snapshot_id,
                        str(change.kind),
                        change.section,
                        change.name,
                        _side_json(change.before),
                        _side_json(change.after),
                        ts,
                        alert_ids[i] if paired else None,
                    )
                    for i, change in enumerate(changes)
                ],
            )
            refreshed = origin == "tuf"
            c.execute(
                "INSERT INTO trust_sources (source, snapshot_id, last_refresh, last_success, "
                "errors) VALUES (?, ?, ?, ?, 0) ON CONFLICT (source) DO UPDATE SET "
                "snapshot_id = excluded.snapshot_id, "
                "last_refresh = coalesce(excluded.last_refresh, trust_sources.last_refresh), "
                "last_success = coalesce(excluded.last_success, trust_sources.last_success), "
                "error_since = CASE WHEN ? THEN NULL ELSE trust_sources.error_since END, "
                "last_error = CASE WHEN ? THEN NULL ELSE trust_sources.last_error END, "
                "errors = CASE WHEN ? THEN 0 ELSE trust_sources.errors END",
                (
                    source,
                    snapshot_id,
                    ts if refreshed else None,
                    ts if refreshed else None,
                    refreshed,
                    refreshed,
                    refreshed,
                ),
            )
        return snapshot_id, created

    def record_trust_failure(
        self,
        source: str,
        error: str,
        now: datetime,
        grace: timedelta,
        alert: Callable[[str, int, str], Alert],
        targets: Callable[[Alert], Sequence[str]],
    ) -> list[tuple[int, Alert]]:
        """A refresh of `source` failed: in one transaction, start or continue its run of
        failures (`error_since`, `errors`, `last_error`) and, once the run has lasted `grace`,
        add `alert(error_since, errors, last_error)` (its dedup key makes it one per run).
        Returns the new alert with its id, if any."""
        ts = utc_iso(now)
        created: list[tuple[int, Alert]] = []
        with self.transaction() as c:
            c.execute(
                "INSERT INTO trust_sources (source, last_refresh, error_since, last_error, errors) "
                "VALUES (?, ?, ?, ?, 1) ON CONFLICT (source) DO UPDATE SET "
                "last_refresh = excluded.last_refresh, "
                "error_since = coalesce(trust_sources.error_since, excluded.error_since), "
                "last_error = excluded.last_error, errors = trust_sources.errors + 1",
                (source, ts, ts, error[:2000]),
            )
            row = c.execute(
                "SELECT error_since, errors, last_error FROM trust_sources WHERE source = ?",
                (source,),
            ).fetchone()
            since, errors, last_error = str(row[0]), int(row[1]), str(row[2])
            if now - parse_utc(since) >= grace:
                raised = alert(since, errors, last_error)
                alert_id = self.add_alert(c, raised, None, targets(raised), now)
                if alert_id is not None:
                    created.append((alert_id, raised))
        return created

    def trust_sources(self) -> list[dict[str, Any]]:
        """Every [[sigstore]] source recorded: its current trust and refresh health
        (`monitor.store.reports.trust_source_rows`)."""
        return reports.trust_source_rows(self)

    def trust_changes(self, source: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded trust changes, newest first (`monitor.store.reports.trust_change_rows`)."""
        return reports.trust_change_rows(self, source=source, limit=limit)

    # -- runs ------------------------------------------------------------------------------

    def start_run(self, command: str, now: datetime) -> int:
        """Record the start of a `run` or `check`."""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, utc_iso(now))
            )
        return int(cur.lastrowid or 0)

    def finish_run(
        self, run_id: int, outcome: str, details: Mapping[str, Any], now: datetime
    ) -> None:
        """Record how a run ended."""
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, details = ? WHERE id = ?",
                (utc_iso(now), outcome, json.dumps(details, sort_keys=True), run_id),
            )

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts (for reports); SQLite's failures raise
        StoreError."""
        with self.reading():
            return list(self.db.query(sql, params))

    def change_marker(self) -> tuple[int, int]:
        """A cheap marker of the database's content: rows this connection has changed since it
        opened, and SQLite's `data_version` (bumped by every commit of another connection). Two
        equal markers mean nothing was written in between, so figures read from the first
        still hold (`/metrics` re-reads only then)."""
        with self.reading() as c:
            return c.total_changes, int(c.execute("PRAGMA data_version").fetchone()[0])


def _far(latest: datetime | None) -> str:
    """The bound of `_DUE` beyond which a next try counts as scheduled before the clock went
    back. Without `latest`, "9999" sorts after every ISO time: no row counts as too far."""
    return utc_iso(latest) if latest else "9999"


def _delivery(r: Sequence[Any]) -> Delivery:
    """A `Delivery` from the `_DELIVERY_COLUMNS` of the outbox queries."""
    return Delivery(
        id=r[0],
        alert_id=r[1],
        channel=r[2],
        attempts=r[3],
        kind=r[4],
        severity=r[5],
        summary=r[6],
        details=json.loads(r[7]),
        log_name=r[8],
        rule=r[9],
        created_at=r[10],
        maybe_sent=bool(r[11]),
    )


def _db_path(conn: sqlite3.Connection) -> str:
    """The file of the connection's main database, for messages."""
    try:
        path = next((str(r[2]) for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
    except sqlite3.Error:
        path = ""
    return path or "(unknown)"


def _write_failed(conn: sqlite3.Connection, e: sqlite3.Error) -> StoreError:
    """A StoreError naming the database file and what the operator can do about `e`."""
    return StoreError(f"database {_db_path(conn)}: cannot write: {_with_hint(e)}")


def _read_failed(conn: sqlite3.Connection, e: sqlite3.Error) -> StoreError:
    """A StoreError naming the database file and what the operator can do about a failed read."""
    return StoreError(f"database {_db_path(conn)}: cannot read: {_with_hint(e, reading=True)}")


def _with_hint(e: sqlite3.Error, *, reading: bool = False) -> str:
    """SQLite's message and what the operator can do about it."""
    text = str(e)
    if "locked" in text or "busy" in text:
        hint = (
            f"another process held it locked for more than {BUSY_TIMEOUT_MS // 1000} s; "
            "run one tlog-monitor per database"
        )
    elif "malformed" in text or "not a database" in text or "corrupt" in text:
        hint = (
            "the file is damaged: stop tlog-monitor, keep a copy of the file, and restore a "
            "backup or rebuild it with sqlite3's .recover"
        )
    elif "full" in text or "readonly" in text or "read-only" in text or "I/O" in text:
        hint = "check free space, file size limits and write permission on the file and directory"
    elif reading:
        hint = "check the file and its directory are readable and the disk is sound"
    else:
        hint = "nothing of the failed write was kept"
    return f"{text} ({hint})"


P = ParamSpec("P")
T = TypeVar("T")


class _OnWriter:
    """A group of `AsyncStore` methods: each runs one `Store` call on the writer thread."""

    def __init__(self, executor: ThreadPoolExecutor, store: Store) -> None:
        self._executor = executor
        self._store = store

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))


class StateAccess(_OnWriter):
    """What the checkpoint engine and the daemon read and write about logs, trees and views."""

    async def ensure_log(
        self, name: str, type_: str, url: str, now: datetime, source: str | None = None
    ) -> int:
        """`Store.ensure_log`."""
        return await self._call(self._store.ensure_log, name, type_, url, now, source)

    async def log_state(self, log_id: int, tree_id: str) -> LogState | None:
        """`Store.log_state`."""
        return await self._call(self._store.log_state, log_id, tree_id)

    async def log_states(self, log_id: int | None = None) -> list[LogState]:
        """`Store.log_states`."""
        return await self._call(self._store.log_states, log_id)

    async def checkpoints_at(self, log_id: int, tree_id: str, size: int) -> list[StoredCheckpoint]:
        """`Store.checkpoints_at`."""
        return await self._call(self._store.checkpoints_at, log_id, tree_id, size)

    async def latest_checkpoint(self, log_name: str) -> tuple[str, list[str]] | None:
        """`Store.latest_checkpoint`."""
        return await self._call(self._store.latest_checkpoint, log_name)

    async def view_health(self, log_id: int, view: str) -> ViewHealth | None:
        """`Store.view_health`."""
        return await self._call(self._store.view_health, log_id, view)

    async def record_view_error(
        self, log_id: int, view: str, error: str, now: datetime
    ) -> ViewHealth:
        """`Store.record_view_error`."""
        return await self._call(self._store.record_view_error, log_id, view, error, now)


class ScanAccess(_OnWriter):
    """What the Rekor v1 index search keeps between rounds (a scan's matches and cursor are
    written in one unit of work: `AsyncStore.run`)."""

    async def search_baselines(
        self, log_id: int, terms: Sequence[str], now: datetime
    ) -> dict[str, str]:
        """`Store.search_baselines`."""
        return await self._call(self._store.search_baselines, log_id, terms, now)

    async def record_search(
        self, log_id: int, term: str, results: int, error: str | None, now: datetime
    ) -> None:
        """`Store.record_search`."""
        await self._call(self._store.record_search, log_id, term, results, error, now)

    async def search_seen(self, log_id: int, leaf_hashes: Sequence[bytes]) -> set[bytes]:
        """`Store.search_seen`."""
        return await self._call(self._store.search_seen, log_id, leaf_hashes)

    async def record_search_progress(
        self,
        log_id: int,
        *,
        terms: int,
        fetched: int,
        requests_last_min: int,
        requests_per_minute: int,
        now: datetime,
    ) -> None:
        """`Store.record_search_progress`."""
        await self._call(
            self._store.record_search_progress,
            log_id,
            terms=terms,
            fetched=fetched,
            requests_last_min=requests_last_min,
            requests_per_minute=requests_per_minute,
            now=now,
        )


class OutboxAccess(_OnWriter):
    """Alerts and their deliveries: what raises them and what the notifier sends."""

    async def raise_alerts(
        self,
        log_id: int | None,
        alerts: Sequence[tuple[Alert, Sequence[str]]],
        now: datetime,
    ) -> list[tuple[int, Alert]]:
        """`Store.raise_alerts`."""
        return await self._call(self._store.raise_alerts, log_id, alerts, now)

    async def due_groups(
        self,
        now: datetime,
        limit: int = 100,
        *,
        latest: datetime | None = None,
        sample: int = 10,
        exclude: Sequence[str] = (),
    ) -> list[DueGroup]:
        """`Store.due_groups`."""
        return await self._call(
            self._store.due_groups, now, limit, latest=latest, sample=sample, exclude=exclude
        )

    async def mark_sending(self, item: Delivery | DueGroup, now: datetime) -> None:
        """A send of one delivery, or of a digest covering a group, begins
        (`Store.mark_sending`, `Store.mark_group_sending`)."""
        if isinstance(item, DueGroup):
            await self._call(self._store.mark_group_sending, item, now)
        else:
            await self._call(self._store.mark_sending, item.id, now)

    async def mark_delivered(self, item: Delivery | DueGroup, now: datetime) -> int:
        """A send succeeded; returns how many deliveries it ended (`Store.mark_delivered`,
        `Store.mark_group_delivered`)."""
        if isinstance(item, DueGroup):
            return await self._call(self._store.mark_group_delivered, item, now)
        await self._call(self._store.mark_delivered, item.id, now)
        return 1

    async def mark_failed(
        self, item: Delivery | DueGroup, error: str, next_try: datetime, *, maybe_sent: bool
    ) -> int:
        """A send failed; returns how many deliveries it covered (`Store.mark_failed`,
        `Store.mark_group_failed`)."""
        if isinstance(item, DueGroup):
            return await self._call(
                self._store.mark_group_failed, item, error, next_try, maybe_sent=maybe_sent
            )
        await self._call(self._store.mark_failed, item.id, error, next_try, maybe_sent=maybe_sent)
        return 1

    async def pending_count(self) -> int:
        """`Store.pending_count`."""
        return await self._call(self._store.pending_count)


class TrustAccess(_OnWriter):
    """What the trust watcher keeps about each [[sigstore]] source: its current trust, the
    changes between trusts and its refresh health."""

    async def current(self, source: str) -> StoredTrust | None:
        """`Store.current_trust`."""
        return await self._call(self._store.current_trust, source)

    async def record_trust(
        self,
        source: str,
        *,
        origin: str,
        trusted_root: bytes,
        signing_config: bytes | None,
        versions: Mapping[str, int] | None,
        changes: Sequence[TrustChange],
        alerts: Sequence[tuple[Alert, Sequence[str]]],
        now: datetime,
    ) -> tuple[int, list[tuple[int, Alert]]]:
        """`Store.record_trust`."""
        return await self._call(
            self._store.record_trust,
            source,
            origin=origin,
            trusted_root=trusted_root,
            signing_config=signing_config,
            versions=versions,
            changes=changes,
            alerts=alerts,
            now=now,
        )

    async def record_trust_failure(
        self,
        source: str,
        error: str,
        now: datetime,
        grace: timedelta,
        alert: Callable[[str, int, str], Alert],
        targets: Callable[[Alert], Sequence[str]],
    ) -> list[tuple[int, Alert]]:
        """`Store.record_trust_failure`."""
        return await self._call(
            self._store.record_trust_failure, source, error, now, grace, alert, targets
        )

    async def raise_trust_alerts(
        self, alerts: Sequence[tuple[Alert, Sequence[str]]], now: datetime
    ) -> list[tuple[int, Alert]]:
        """Alerts that belong to no log (an unverifiable key of the trust root): `raise_alerts`
        with no log."""
        return await self._call(self._store.raise_alerts, None, alerts, now)

    async def trust_sources(self) -> list[dict[str, Any]]:
        """`Store.trust_sources`."""
        return await self._call(self._store.trust_sources)

    async def trust_changes(
        self, source: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """`Store.trust_changes`."""
        return await self._call(self._store.trust_changes, source, limit)


class ReportAccess(_OnWriter):
    """Runs, `/metrics`, `/healthz` and `/checkpoints`: reads for people and their tools."""

    async def start_run(self, command: str, now: datetime) -> int:
        """`Store.start_run`."""
        return await self._call(self._store.start_run, command, now)

    async def finish_run(
        self, run_id: int, outcome: str, details: Mapping[str, Any], now: datetime
    ) -> None:
        """`Store.finish_run`."""
        await self._call(self._store.finish_run, run_id, outcome, details, now)

    async def change_marker(self) -> tuple[int, int]:
        """`Store.change_marker`."""
        return await self._call(self._store.change_marker)

    async def gauges(self) -> reports.Gauges:
        """`monitor.store.reports.read_gauges`."""
        return await self._call(reports.read_gauges, self._store)

    async def new_alerts(
        self, after: int, limit: int
    ) -> tuple[list[tuple[int | None, str, str, int]], int, int]:
        """`monitor.store.reports.read_new_alerts`."""
        return await self._call(reports.read_new_alerts, self._store, after, limit)

    async def ping(self) -> None:
        """Read the database once: StoreError when it cannot be read."""
        await self._call(self._store.query, "SELECT 1")


class AsyncStore(_OnWriter):
    """The store for async code: every call runs on one dedicated thread, the single writer
    of this process, so SQLite never sees two writers from it and the event loop never blocks
    on disk. Methods are grouped by what they serve: `state`, `scan`, `outbox`, `trust`,
    `reports`; `run` takes a unit of work that needs more than one of them in one
    transaction."""

    def __init__(self, store: Store) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        super().__init__(executor, store)
        self.store = store
        self.state = StateAccess(executor, store)
        self.scan = ScanAccess(executor, store)
        self.outbox = OutboxAccess(executor, store)
        self.trust = TrustAccess(executor, store)
        self.reports = ReportAccess(executor, store)

    async def run(self, work: Callable[[Store], T]) -> T:
        """Run `work(store)` on the writer thread: a unit of work that opens its own
        `Store.transaction` (a checkpoint with its proof, a scan batch with its cursor)."""
        return await self._call(work, self.store)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run any `fn(*args, **kwargs)` on the writer thread (tests and tools; the monitor's
        own code uses the typed groups)."""
        return await self._call(fn, *args, **kwargs)

    def close(self) -> None:
        """Finish queued calls, then close the database."""
        self._executor.shutdown(wait=True)
        self.store.close()
