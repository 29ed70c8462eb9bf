"""Attacks on the wire parsers and the HTTP layer (issue 11, items 1, 9 and 13), each against
real servers on 127.0.0.1: a hostile log of the test's own, next to the sandbox as an honest log.

- Out-of-range integers: a *validly signed* checkpoint of size 2^63 (or a Rekor tree ID past
  2^63 - 1) is a failed poll of that log, recorded, `log_error` after `error_grace`; the other
  log of the same run is still polled, and `check` exits 3 without a traceback.
- Redirects: a log redirecting to another host, scheme or port is not followed (the target is
  never contacted), the error names the target, and nothing the target would say reaches
  `last_error`, alerts, delivered messages or logs; same-origin redirects still work.
- Memory: a response cap that would take the daemon past the unit's MemoryMax is refused, and
  the largest allowed hostile bodies keep a `check` well under it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.config.settings import load_config
from monitor.core.note import sign_note
from monitor.logs.http import (
    MAX_REDIRECTS,
    HttpPolicy,
    LogRedirectError,
    get_bytes,
)
from monitor.sandbox import Sandbox
from monitor.sandbox.notes import NoteKey
from monitor.service.daemon import open_monitor
from tests.helpers import monitor_table, notify_table, write_keys
from tests.integration.receivers import HttpReceiver, LocalServer, free_port
from tests.integration.test_tls import _self_signed

ROOT = Path(__file__).resolve().parents[2]
SECRET = "INTERNAL-SECRET-7f3a9c"
"""What an internal service behind a redirect would answer: must never surface anywhere."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server(LocalServer):
    """A small aiohttp server on 127.0.0.1: `routes` maps a path to a handler; every request's
    path is recorded in `seen`."""

    routes: dict[str, Handler] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    seen: list[str] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.path)
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)


@pytest.fixture
async def sandbox(sandbox: Sandbox) -> Sandbox:
    """The honest log (the suite's sandbox), with a few entries."""
    await sandbox.append("v1", 3)
    await sandbox.append("tiles", 3)
    return sandbox


@pytest.fixture
async def servers() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Start servers on demand; all stopped at the end."""
    started: list[Server] = []

    async def make(**kwargs: object) -> Server:
        server = Server(**kwargs)  # type: ignore[arg-type]
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


def write_config(
    directory: Path,
    sandbox: Sandbox,
    receiver: HttpReceiver,
    hostile_type: str,
    hostile_url: str,
    *,
    max_response_bytes: str = "16MiB",
) -> Path:
    """Two logs: "honest" (the sandbox's v1 log) and "hostile" (`hostile_type` at
    `hostile_url`, signed with the sandbox's keys); error_grace 0s, alerts to `receiver`."""
    write_keys(directory, sandbox)
    key, origin = (
        ("v1.pem", sandbox.v1_key_name)
        if hostile_type == "rekor-v1"
        else ("tiles.pem", sandbox.tiles_origin)
    )
    path = directory / "config.toml"
    path.write_text(
        monitor_table(
            interval="60s",
            request_timeout="5s",
            extra=f'max_response_bytes = "{max_response_bytes}"',
        )
        + f"""
[[log]]
name = "honest"
type = "rekor-v1"
url = "{sandbox.url}"
public_key = "v1.pem"
origin = "{sandbox.v1_key_name}"

[[log]]
name = "hostile"
type = "{hostile_type}"
url = "{hostile_url}"
public_key = "{key}"
origin = "{origin}"
"""
        + notify_table(receiver)
    )
    return path


async def run_check(config: Path, *, python: list[str] | None = None) -> tuple[int, str, str]:
    """`tlog-monitor --config CONFIG check` as a subprocess: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *(python or [sys.executable, "-m", "monitor.cli.main"]),
        "--config",
        str(config),
        "check",
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of `sql` against the monitor's database."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def trees_of(db: Path, log: str) -> list[tuple[object, ...]]:
    """(tree_id, verified_size) of `log`'s verified trees."""
    return query(
        db,
        "SELECT s.tree_id, s.verified_size FROM log_state s JOIN logs l ON l.id = s.log_id "
        f"WHERE l.name = '{log}'",
    )


def health_of(db: Path, log: str) -> list[tuple[object, ...]]:
    """(view, error_since, last_error) of `log`'s views."""
    return query(
        db,
        "SELECT h.view, h.error_since, h.last_error FROM view_health h "
        f"JOIN logs l ON l.id = h.log_id WHERE l.name = '{log}'",
    )


def alerts_of(db: Path) -> list[tuple[object, ...]]:
    """(kind, log, summary, details) of every alert."""
    return query(
        db,
        "SELECT a.kind, l.name, a.summary, a.details FROM alerts a JOIN logs l ON l.id = a.log_id",
    )


# --- item 1: out-of-range integers -------------------------------------------------------------

TOO_BIG = 2**63


def sign_text(origin: str, size: int, root: bytes, key: NoteKey) -> str:
    """A checkpoint note signed by `key`, written by hand: `monitor.core.note.Checkpoint` itself
    refuses such sizes, but a hostile log's signer does not."""
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return sign_note(text, [key.signer]).to_text()


def out_of_range_routes(sandbox: Sandbox, case: str) -> dict[str, Handler]:
    """The hostile log's answers for `case`: every note validly signed by the sandbox's key."""
    root = bytes(range(32))

    async def tiles_checkpoint(_req: web.Request) -> web.StreamResponse:
        note = sign_text(sandbox.tiles_origin, TOO_BIG, root, sandbox.core.tiles_note_key)
        return web.Response(text=note)

    async def v1_log(_req: web.Request) -> web.StreamResponse:
        tree_id, size = ("5", TOO_BIG) if case == "v1 size 2^63" else (str(TOO_BIG), 5)
        origin = f"{sandbox.v1_key_name} - {tree_id}"
        note = sign_text(origin, size, root, sandbox.core.v1_note_key)
        # The JSON's own treeSize is honest-looking: only the signed note is out of range.
        body = {"rootHash": root.hex(), "signedTreeHead": note, "treeID": tree_id, "treeSize": 5}
        return web.json_response(body)

    if case == "tiles size 2^63":
        return {"/tiles/checkpoint": tiles_checkpoint}
    return {"/api/v1/log": v1_log}


@pytest.mark.parametrize("case", ["tiles size 2^63", "v1 size 2^63", "v1 tree ID 2^63"])
async def test_out_of_range_signed_checkpoint_is_a_failed_poll_of_that_log_only(
    sandbox: Sandbox,
    servers: Callable[..., Awaitable[Server]],
    receiver: HttpReceiver,
    tmp_path: Path,
    case: str,
) -> None:
    hostile = await servers(routes=out_of_range_routes(sandbox, case))
    kind, url = (
        ("tiles", f"{hostile.url}/tiles") if case.startswith("tiles") else ("rekor-v1", hostile.url)
    )
    config = write_config(tmp_path, sandbox, receiver, kind, url)

    code, out, err = await run_check(config)

    assert "Traceback" not in err and "OverflowError" not in out + err, err
    assert code == 3, (code, out, err)  # a log could not be polled; not 1 (no urgent alert)
    db = tmp_path / "monitor.db"
    assert trees_of(db, "honest") == [(str(sandbox.v1_tree_id), 3)], "the other log was polled"
    assert trees_of(db, "hostile") == []
    ((view, error_since, last_error),) = health_of(db, "hostile")
    assert view == "primary" and error_since is not None
    assert "2^63" in str(last_error), last_error
    kinds = [(k, log) for k, log, _, _ in alerts_of(db)]
    assert kinds == [("log_error", "hostile")]
    assert receiver.titles() == ["[WARNING] log_error: hostile"]


# --- item 9: redirects -------------------------------------------------------------------------


def redirect_to(location: str, status: int = 302) -> Handler:
    """A handler answering `status` with `Location: location` (and a body of its own)."""

    async def handle(_req: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location}, text="moved")

    return handle


def secret_answer(status: int) -> Handler:
    """An internal service's answer: `status` with a secret in the body."""

    async def handle(_req: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=f"{SECRET} token=abc", content_type="text/plain")

    return handle


@pytest.mark.parametrize("status", [500, 404, 200])
@pytest.mark.parametrize("redirect", [301, 302, 307, 308])
async def test_redirect_to_another_host_is_not_followed_and_leaks_nothing(
    sandbox: Sandbox,
    servers: Callable[..., Awaitable[Server]],
    receiver: HttpReceiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    redirect: int,
) -> None:
    internal = await servers(routes={"/admin/secret": secret_answer(status)})
    target = f"{internal.url}/admin/secret"
    log = await servers(routes={"/tiles/checkpoint": redirect_to(target, redirect)})
    config = write_config(tmp_path, sandbox, receiver, "tiles", f"{log.url}/tiles")

    caplog.set_level(logging.DEBUG)
    async with open_monitor(load_config(config)) as m:
        outcome = await m.check()
        await m.deliver()

    assert internal.seen == [], "the redirect target must never be contacted"
    assert log.seen == ["/tiles/checkpoint"], "a refused redirect is not retried"
    db = tmp_path / "monitor.db"
    ((_, _, last_error),) = health_of(db, "hostile")
    assert f"HTTP {redirect} redirect to {target} refused" in str(last_error), last_error
    assert f"GET {log.url}/tiles/checkpoint" in str(last_error), "names the request made"
    assert [(k, name) for k, name, _, _ in alerts_of(db)] == [("log_error", "hostile")]
    assert trees_of(db, "honest") != [], "the other log is polled"
    everything = "\n".join(
        [
            *outcome.errors,
            json.dumps(alerts_of(db)),
            json.dumps([p.body for p in receiver.posts]),
            caplog.text,
        ]
    )
    assert SECRET not in everything
    assert target in everything  # the error names where the request was sent


async def test_redirect_from_https_to_http_is_refused(
    servers: Callable[..., Awaitable[Server]], tmp_path: Path
) -> None:
    plain = await servers(routes={"/checkpoint": secret_answer(200)})
    cert_file, key_file, _ = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    # The same host, only the scheme (and port) change: still another origin.
    tls = await servers(
        routes={"/checkpoint": redirect_to(f"{plain.url}/checkpoint")}, ssl_context=server_ctx
    )
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
        with pytest.raises(
            LogRedirectError, match=r"redirect to http://127\.0\.0\.1:\d+/checkpoint"
        ) as e:
            await get_bytes(session, f"{tls.url}/checkpoint", HttpPolicy(retries=0))
    assert plain.seen == []
    assert SECRET not in str(e.value)
    assert e.value.status == 302


async def test_same_origin_redirects_are_followed_and_bounded(
    sandbox: Sandbox,
    servers: Callable[..., Awaitable[Server]],
    receiver: HttpReceiver,
    tmp_path: Path,
) -> None:
    async def moved(request: web.Request) -> web.StreamResponse:
        return web.Response(body=await sandbox_get(sandbox, "/tiles/checkpoint"))

    async def tile(request: web.Request) -> web.StreamResponse:
        return web.Response(body=await sandbox_get(sandbox, request.path))

    routes: dict[str, Handler] = {
        "/tiles/tile/0/000.p/3": tile,
        "/tiles/tile/entries/000.p/3": tile,
        "/tiles/checkpoint": redirect_to("/v2/checkpoint", 301),  # relative: same origin
        "/v2/checkpoint": redirect_to("/v3/checkpoint", 307),
        "/v3/checkpoint": moved,
        "/loop": redirect_to("/loop"),
    }
    log = await servers(routes=routes)
    config = write_config(tmp_path, sandbox, receiver, "tiles", f"{log.url}/tiles")
    async with open_monitor(load_config(config)) as m:
        outcome = await m.check()
    assert outcome.errors == []
    assert trees_of(tmp_path / "monitor.db", "hostile") == [("tiles", 3)]

    async with aiohttp.ClientSession() as session:
        with pytest.raises(LogRedirectError, match=f"after at most {MAX_REDIRECTS} redirects"):
            await get_bytes(session, f"{log.url}/loop", HttpPolicy(retries=0))
    assert log.seen.count("/loop") == MAX_REDIRECTS + 1


async def sandbox_get(sandbox: Sandbox, path: str) -> bytes:
    """The sandbox's answer to GET `path`."""
    async with aiohttp.ClientSession() as session, session.get(sandbox.url + path) as r:
        assert r.status == 200, path
        return await r.read()


# --- item 13: memory ---------------------------------------------------------------------------


async def test_response_cap_past_the_memory_limit_is_refused(
    sandbox: Sandbox, receiver: HttpReceiver, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, sandbox, receiver, "tiles", sandbox.tiles_url, max_response_bytes="256MiB"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", "--config", str(config), "config", "check",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "monitor.max_response_bytes: must be at most 32MiB" in err.decode()
    assert "MemoryMax=1G" in err.decode()


MEMORY_MAX = 1024**3
"""systemd/tlog-monitor.service's MemoryMax=1G."""

_MEASURE = (
    "import resource, sys\n"
    "from monitor.cli.main import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "
    "file=sys.stderr)\n"
    "sys.exit(code)\n"
)


async def test_largest_allowed_hostile_bodies_stay_under_the_memory_limit(
    sandbox: Sandbox,
    servers: Callable[..., Awaitable[Server]],
    receiver: HttpReceiver,
    tmp_path: Path,
) -> None:
    cap = 32 * 1024**2
    # Bodies just under the cap that parse into the most Python memory a body can: many tiny
    # values (refused by counting before parsing), and one huge string with an astral
    # character (a str of 4 bytes per character).
    many = b"[" + b"{}," * ((cap - 2) // 3 - 1) + b"{}]"
    astral = json.dumps(
        {"rootHash": "00" * 32, "treeID": "1", "treeSize": 1, "signedTreeHead": "\U0001f600"}
    ).encode()
    astral = astral.replace(
        b"\\ud83d\\ude00", "\U0001f600".encode() + b"a" * (cap - len(astral) - 8)
    )
    assert len(many) <= cap and len(astral) <= cap

    def body(data: bytes) -> Handler:
        async def handle(_req: web.Request) -> web.StreamResponse:
            return web.Response(body=data, content_type="application/json")

        return handle

    hostile = await servers(routes={"/api/v1/log": body(many), "/b/api/v1/log": body(astral)})
    config = write_config(
        tmp_path, sandbox, receiver, "rekor-v1", hostile.url, max_response_bytes="32MiB"
    )
    config.write_text(
        config.read_text()
        + f"""
[[log]]
name = "hostile-b"
type = "rekor-v1"
url = "{hostile.url}/b"
public_key = "v1.pem"
origin = "{sandbox.v1_key_name}"
"""
    )
    code, _, err = await run_check(config, python=[sys.executable, "-c", _MEASURE])
    assert code == 3, err
    assert "Traceback" not in err
    peak = int(err.rsplit("MAXRSS ", 1)[1].split()[0])
    assert peak < MEMORY_MAX // 2, f"peak RSS {peak / 2**20:.0f} MiB"
    print(f"peak RSS {peak / 2**20:.0f} MiB")
    assert "expected JSON of at most 1000000 values" in err
