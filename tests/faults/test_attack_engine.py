"""Attacks on the consistency engine's poll (issue 11, items 2, 4, 8 and 10), against the real
sandbox log and hostile servers of the test's own on 127.0.0.1, with real SQLite databases.

    sandbox (v1, tiles) ───────────────> monitor ──> monitor.db
    NoteServer (a hostile peer, or a log) ──┘
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.config.settings import load_config
from monitor.core.note import sign_note
from monitor.sandbox import Sandbox
from monitor.sandbox.notes import NoteKey, corrupt_signature, sign_checkpoint
from monitor.service.daemon import PRIMARY_VIEW, open_monitor
from monitor.service.engine import Head
from monitor.service.scanner import ScanResult
from tests.faults.harness import Tally, connect, run_check
from tests.helpers import monitor_table, notify_table, write_keys
from tests.integration.receivers import HttpReceiver, LocalServer, free_port


class NoteServer(LocalServer):
    """A hostile HTTP server on 127.0.0.1: every GET is answered by `answer()` (a peer serving
    notes, or a tiled log serving a checkpoint). `hits` counts the requests."""

    methods = "GET"

    def __init__(self, answer: Callable[[], web.Response]) -> None:
        self.port = free_port()
        self.answer = answer
        self.hits = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return self.answer()


def log_table(
    name: str, kind: str, url: str, pem: str, origin: str, views: Sequence[str], scan: bool
) -> str:
    """One `[[log]]` table with `views` as `[[log.view]]` tables ("kind url")."""
    text = f'\n[[log]]\nname = "{name}"\ntype = "{kind}"\nurl = "{url}"\n'
    text += f'public_key = "{pem}"\norigin = "{origin}"\n'
    if scan:
        text += 'scan = true\nstart = 0\nfulcio_roots = "ca.pem"\n'
    for view in views:
        view_kind, view_url = view.split(" ", 1)
        text += f'\n[[log.view]]\nurl = "{view_url}"\nkind = "{view_kind}"\n'
    return text


def write_config(
    directory: Path,
    sb: Sandbox,
    receiver: HttpReceiver,
    *,
    v1_url: str | None = None,
    tiles_url: str | None = None,
    v1_views: Sequence[str] = (),
    tiles_views: Sequence[str] = (),
    scan_tiles: bool = False,
    request_timeout: str = "2s",
) -> Path:
    """Two logs (the sandbox's, unless `v1_url` / `tiles_url` point elsewhere), interval 1s,
    error_grace 0s, every alert delivered to `receiver`."""
    write_keys(directory, sb, ca=True)
    path = directory / "config.toml"
    path.write_text(
        monitor_table(request_timeout=request_timeout)
        + notify_table(receiver)
        + log_table(
            "v1", "rekor-v1", v1_url or sb.url, "v1.pem", sb.v1_key_name, v1_views, scan=False
        )
        + log_table(
            "tiles",
            "tiles",
            tiles_url or sb.tiles_url,
            "tiles.pem",
            sb.tiles_origin,
            tiles_views,
            scan=scan_tiles,
        )
    )
    return path


def rows(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    with closing(connect(db)) as conn:
        return list(conn.execute(sql, params).fetchall())


def health(db: Path, log: str, view: str) -> sqlite3.Row | None:
    found = rows(
        db,
        "SELECT h.* FROM view_health h JOIN logs l ON l.id = h.log_id "
        "WHERE l.name = ? AND h.view = ?",
        log,
        view,
    )
    return found[0] if found else None


def alerts(db: Path) -> list[tuple[str, str, str]]:
    """(kind, severity, log) of every alert."""
    return [
        (r["kind"], r["severity"], r["log"])
        for r in rows(
            db,
            "SELECT a.kind, a.severity, l.name AS log FROM alerts a "
            "LEFT JOIN logs l ON l.id = a.log_id ORDER BY a.id",
        )
    ]


def verified(db: Path) -> dict[str, int]:
    """Each log's largest verified size."""
    return {
        r["name"]: r["size"]
        for r in rows(
            db,
            "SELECT l.name, max(s.verified_size) AS size FROM log_state s "
            "JOIN logs l ON l.id = s.log_id GROUP BY l.name",
        )
    }


def text_answer(note: str) -> web.Response:
    return web.Response(text=note, content_type="text/plain")


# --- item 2: any exception in a poll is a failed poll of that log ------------------------------


async def test_out_of_range_checkpoint_is_a_failed_poll_and_other_logs_are_polled(
    sandbox: Sandbox, receiver: HttpReceiver, tmp_path: Path, tally: Tally
) -> None:
    """A tiled log serving a validly signed checkpoint of size 2^63 (more than SQLite holds):
    `check` exits 3 (not 1, no traceback), records the failure with error_since and raises
    log_error (error_grace 0s), and still polls the other log."""
    figures = tally.scenario("engine: checkpoint of size 2^63")
    await sandbox.append("v1", 5)
    key = sandbox.core.tiles_note_key
    root = base64.b64encode(bytes(32)).decode()
    note = sign_note(f"{sandbox.tiles_origin}\n{2**63}\n{root}\n", [key.signer]).to_text()
    evil = NoteServer(lambda: text_answer(note))
    await evil.start()
    try:
        config = write_config(tmp_path, sandbox, receiver, tiles_url=evil.url)
        for _ in range(2):
            code, err = await run_check(config)
            assert code == 3, err
            assert "Traceback" not in err, err
    finally:
        await evil.stop()
    db = tmp_path / "monitor.db"
    figures.injected += evil.hits
    assert verified(db) == {"v1": 5}, "the other log was not polled"
    failing = health(db, "tiles", PRIMARY_VIEW)
    assert failing is not None and failing["error_since"] and failing["errors"] == 2
    assert ("log_error", "warning", "tiles") in alerts(db)
    assert all(severity not in ("critical", "high") for _, severity, _ in alerts(db))
    figures.survived = True


class Exploding:
    """Stands for any bug a hostile input could reach: every call raises a non-project error."""

    def __init__(self, what: str) -> None:
        self.what = what

    async def heads(self) -> Sequence[Head]:
        raise RuntimeError(f"{self.what} exploded")

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        raise RuntimeError(f"{self.what} exploded")

    async def scan(self) -> ScanResult:
        raise KeyError(self.what)


async def test_any_exception_of_a_view_or_the_scan_is_a_failed_poll_of_that_log(
    sandbox: Sandbox, receiver: HttpReceiver, tmp_path: Path
) -> None:
    """Whatever a view's client or the scanner raises becomes a failed poll recorded with
    error_since (and log_error past error_grace); the scheduled job never raises, and every other
    log and view is still polled."""
    peer = NoteServer(lambda: web.Response(status=404))
    await peer.start()
    await sandbox.append("v1", 5)
    await sandbox.append("tiles", 10)
    config = write_config(
        tmp_path,
        sandbox,
        receiver,
        v1_views=[f"peer {peer.url}/checkpoints/v1", f"mirror {sandbox.view_url('m')}"],
        scan_tiles=True,
    )
    db = tmp_path / "monitor.db"
    try:
        async with open_monitor(load_config(config)) as m:
            v1 = m.logs["v1"]
            peer_view = next(v for v in v1.sources if "/checkpoints/" in v)
            v1.sources[peer_view] = Exploding("peer client")  # type: ignore[index]
            scanner = m.scanners["tiles"]
            m.scanners["tiles"] = Exploding("scanner")  # type: ignore[assignment]
            outcome = await m.check()
            assert any("RuntimeError: peer client exploded" in e for e in outcome.errors)
            assert any("KeyError" in e for e in outcome.errors)
            assert verified(db) == {"v1": 5, "tiles": 10}
            # The primary of a log explodes too: its poll fails, the job does not.
            v1.sources[PRIMARY_VIEW] = Exploding("primary client")  # type: ignore[index]
            await m.poll_and_alert("v1")
            outcome = await m.check()
            assert any("primary client exploded" in e for e in outcome.errors)
            scan = health(db, "tiles", "scan")
            assert scan is not None and scan["error_since"]
            # A scan that completes again ends the scan's outage.
            m.scanners["tiles"] = scanner
            await m.poll("tiles")
    finally:
        await peer.stop()
    for log, view in (("v1", peer_view), ("v1", PRIMARY_VIEW)):
        row = health(db, log, view)
        assert row is not None and row["error_since"], (log, view)
    scan = health(db, "tiles", "scan")
    assert scan is not None and scan["error_since"] is None and scan["last_ok_at"]
    mirror = health(db, "v1", next(v for v in v1.sources if v.endswith("/view/m")))
    assert mirror is not None and mirror["error_since"] is None, "a healthy view was not polled"
    assert sorted(a for a in alerts(db) if a[0] == "log_error") == [
        ("log_error", "warning", "tiles"),
        ("log_error", "warning", "v1"),
        ("log_error", "warning", "v1"),
    ]


# --- item 4: a rollback does not depend on the log serving a proof -----------------------------


@pytest.mark.parametrize(
    ("log", "size", "endpoint", "status"),
    [("v1", 10, "v1.proof", 400), ("tiles", 200, "tiles.tile", 404)],
)
async def test_rollback_is_raised_when_the_log_refuses_the_proof(
    sandbox: Sandbox,
    receiver: HttpReceiver,
    tmp_path: Path,
    tally: Tally,
    log: str,
    size: int,
    endpoint: str,
    status: int,
) -> None:
    """A log restored from a backup serves a smaller validly signed checkpoint and refuses the
    proofs (and tiles) that would relate it to the verified one: `rollback` at once, the note
    recorded, `consistent_with_verified` null with the reason."""
    figures = tally.scenario(f"engine: rollback to {size} with proofs refused ({log})")
    await sandbox.append("v1", 20)
    await sandbox.append("tiles", 300)
    config = write_config(tmp_path, sandbox, receiver)
    async with open_monitor(load_config(config)) as m:
        assert (await m.check()).alerts == []
        sandbox.misbehave(log, "rollback", size=size)
        sandbox.misbehave(log, "errors", status=status, endpoints=[endpoint])
        outcome = await m.check()
        figures.injected += 1
        rollbacks = [a for _, a in outcome.alerts if a.kind.value == "rollback"]
        assert len(rollbacks) == 1, outcome
        details = rollbacks[0].details
        assert details["size"] == size and details["consistent_with_verified"] is None
        assert str(status) in details["proof_error"]
        assert outcome.urgent
        assert (await m.check()).alerts == [], "the same rollback is one fact"
    recorded = rows(
        tmp_path / "monitor.db",
        "SELECT c.size FROM checkpoints c JOIN logs l ON l.id = c.log_id "
        "WHERE l.name = ? AND c.view = 'primary' AND c.size = ?",
        log,
        size,
    )
    assert len(recorded) == 1, "the smaller signed checkpoint was not recorded"
    figures.survived = True


# --- item 8: a peer, witness or mirror cannot make us accuse the log ---------------------------


def bogus_notes(sb: Sandbox, how: str) -> Callable[[], web.Response]:
    """A peer answering with a new, distinct note on every request that does not verify as the
    tiled log's checkpoint: signed by another key under the log's name, for another origin, or
    with a corrupted signature."""
    real = sb.core.tiles_note_key
    other = NoteKey.ed25519(sb.tiles_origin, Ed25519PrivateKey.generate())
    counter = iter(range(1000, 10**6))

    def answer() -> web.Response:
        size, root = next(counter), os.urandom(32)
        if how == "other key":
            note = sign_checkpoint(sb.tiles_origin, size, root, other)
        elif how == "other origin":
            note = sign_checkpoint("evil.example/another-log", size, root, real)
        else:
            note = corrupt_signature(sign_checkpoint(sb.tiles_origin, size, root, real))
        return text_answer(note)

    return answer


@pytest.mark.parametrize("how", ["other key", "other origin", "corrupt signature"])
async def test_bogus_notes_from_a_peer_are_a_failing_view_never_an_alert_on_the_log(
    sandbox: Sandbox, receiver: HttpReceiver, tmp_path: Path, tally: Tally, how: str
) -> None:
    figures = tally.scenario(f"engine: peer serving notes with {how}")
    peer = NoteServer(bogus_notes(sandbox, how))
    await peer.start()
    await sandbox.append("tiles", 50)
    config = write_config(
        tmp_path, sandbox, receiver, tiles_views=[f"peer {peer.url}/checkpoints/tiles"]
    )
    db = tmp_path / "monitor.db"
    try:
        async with open_monitor(load_config(config)) as m:
            for _ in range(4):
                await sandbox.append("tiles", 3)
                outcome = await m.check()
                assert outcome.errors, "the failing view went unreported"
                assert not outcome.urgent, outcome.alerts
            await m.deliver()
    finally:
        await peer.stop()
    figures.injected += peer.hits
    assert peer.hits == 4
    found = alerts(db)
    assert [a for a in found if a[0] == "bad_signature"] == []
    assert all(severity not in ("critical", "high") for _, severity, _ in found), found
    # One warning about the view, however many distinct bogus notes it served.
    assert [a for a in found if a[0] == "view_error"] == [("view_error", "warning", "tiles")]
    details = rows(db, "SELECT details FROM alerts WHERE kind = 'view_error'")[0]["details"]
    assert "/checkpoints/tiles" in details
    view = next(r["view"] for r in rows(db, "SELECT view FROM view_health") if "/checkp" in r[0])
    row = health(db, "tiles", view)
    assert row is not None and row["error_since"] and row["errors"] == 4
    # The log's own checkpoints were verified all along; nothing of the peer's was recorded.
    assert verified(db)["tiles"] == 62
    assert rows(db, "SELECT view FROM checkpoints WHERE view = ?", view) == []
    assert [p for p in receiver.posts if "bad_signature" in str(p.body)] == []
    figures.survived = True


# --- item 10: slow views are polled concurrently under one deadline ----------------------------


async def test_slow_peers_do_not_delay_the_primary_or_the_other_log(
    sandbox: Sandbox, receiver: HttpReceiver, tmp_path: Path, tally: Tally
) -> None:
    """Two peers answering 429 with Retry-After: 20 are waited for concurrently, at most until
    the poll's deadline (max(interval, 4 x request_timeout) = 4 s here), then counted as failed
    views; the log's own checkpoint is verified and recorded at once."""
    figures = tally.scenario("engine: two peers answering 429 Retry-After 20")

    def throttled() -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "20"}, text="slow down")

    peers = [NoteServer(throttled), NoteServer(throttled)]
    for p in peers:
        await p.start()
    await sandbox.append("v1", 7)
    await sandbox.append("tiles", 9)
    config = write_config(
        tmp_path,
        sandbox,
        receiver,
        v1_views=[f"peer {p.url}/checkpoints/v1" for p in peers],
        request_timeout="1s",
    )
    db = tmp_path / "monitor.db"
    try:
        async with open_monitor(load_config(config)) as m:
            started = datetime.now(UTC)
            clock = time.monotonic()
            outcome = await asyncio.wait_for(m.check(), 30)
            took = time.monotonic() - clock
    finally:
        for p in peers:
            await p.stop()
    figures.injected += sum(p.hits for p in peers)
    assert took < 8, f"one check took {took:.1f}s"
    assert verified(db) == {"v1": 7, "tiles": 9}
    first_seen = rows(
        db,
        "SELECT c.first_seen FROM checkpoints c JOIN logs l ON l.id = c.log_id "
        "WHERE l.name = 'v1' AND c.view = 'primary'",
    )[0]["first_seen"]
    delay = (datetime.fromisoformat(first_seen) - started).total_seconds()
    assert delay < 2, f"the primary's checkpoint was recorded {delay:.1f}s into the poll"
    deadline_errors = [e for e in outcome.errors if "deadline" in e]
    assert len(deadline_errors) == 2, outcome.errors
    for r in rows(
        db, "SELECT view, error_since FROM view_health WHERE view LIKE '%/checkpoints/%'"
    ):
        assert r["error_since"], r["view"]
    figures.survived = True
