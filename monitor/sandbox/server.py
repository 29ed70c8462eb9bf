"""The sandbox's HTTP server (aiohttp), the in-process :class:`Sandbox` and ``run_sandbox``.

Routes (``<p>`` is empty for the main endpoints or ``/view/<name>`` for a named view, which
serves the same logs and is honest unless a misbehaviour targets it)::

    GET  <p>/api/v1/log                      Rekor v1 log info (+ inactiveShards)
    GET  <p>/api/v1/log/proof                ?firstSize&lastSize[&treeID]
    GET  <p>/api/v1/log/entries              ?logIndex=N (global index)
    POST <p>/api/v1/log/entries/retrieve     {"logIndexes"|"entryUUIDs": [...]} (at most 10)
    POST <p>/api/v1/index/retrieve           search index: email, subject, hash, publicKey
    GET  <p>/api/v1/log/publicKey            PEM
    GET  <p>/tiles/checkpoint                C2SP tlog-tiles
    GET  <p>/tiles/tile/<L>/<N>[.p/<W>]
    GET  <p>/tiles/tile/entries/<N>[.p/<W>]
    GET  <p>/ct/v1/get-sth | get-sth-consistency | get-entries | get-entry-and-proof  (RFC 6962)
    GET  <p>/static-ct/checkpoint | tile/<L>/<N>[.p/<W>] | tile/data/<N>[.p/<W>] | issuer/<hex>
    POST /admin/append | /admin/rotate | /admin/misbehave | /admin/reset | /admin/index
    GET  /admin/state | /admin/ca.pem
    GET  /witness/<log>/checkpoint | POST /admin/witness   (witness.py: a cosigning witness)

See README.md in this package for the admin API.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from monitor.core.errors import MonitorError
from monitor.core.note import EcdsaNoteVerifier, Ed25519NoteVerifier, Rfc6962NoteVerifier
from monitor.sandbox import witness as sandbox_witness
from monitor.sandbox.ca import Identity
from monitor.sandbox.core import AppendResult, LogName, Reply, SandboxCore, SandboxError

log = logging.getLogger(__name__)

_VIEW = "/view/{view:[A-Za-z0-9._~-]+}"
_SANDBOX_KEY: web.AppKey[SandboxCore] = web.AppKey("sandbox_core", SandboxCore)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _FileSpanResponse(web.StreamResponse):
    """Bytes of a file sent with sendfile (a stored entry bundle): no copy through Python."""

    def __init__(self, status: int, span: tuple[BinaryIO, int, int]) -> None:
        super().__init__(status=status)
        self._span = span
        self.content_length = span[2]

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        file, offset, count = self._span
        if count and request.method != "HEAD" and request.transport is not None:
            try:
                # Not asyncio's fallback: it reads from the file's shared position.
                await asyncio.get_running_loop().sendfile(
                    request.transport, file, offset, count, fallback=False
                )
            except asyncio.SendfileNotAvailableError:
                await self.write(os.pread(file.fileno(), count, offset))
        await super().write_eof()
        return writer


def _to_response(reply: Reply) -> web.StreamResponse:
    resp = (
        web.Response(status=reply.status, body=reply.body)
        if reply.file is None
        else _FileSpanResponse(reply.status, reply.file)
    )
    resp.headers["Content-Type"] = reply.content_type
    for k, v in reply.headers:
        resp.headers[k] = v
    return resp


def _api(
    name: LogName,
    endpoint: str,
    render: Callable[[SandboxCore, web.Request, str | None], Awaitable[Reply]],
) -> Handler:
    """Wrap a log endpoint: count it, apply slow/errors, render the reply."""

    async def handler(request: web.Request) -> web.StreamResponse:
        core = request.app[_SANDBOX_KEY]
        view = request.match_info.get("view")
        delay, error = core.before_request(name, view, endpoint)
        if delay:
            await asyncio.sleep(delay)
        if error is not None:
            return _to_response(error)
        return _to_response(await render(core, request, view))

    return handler


async def _v1_log(core: SandboxCore, _req: web.Request, view: str | None) -> Reply:
    return core.v1_log_info(view)


async def _v1_proof(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    q = req.query
    return core.v1_proof(view, q.get("firstSize"), q.get("lastSize"), q.get("treeID"))


async def _v1_entries(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    return core.v1_get_entry(view, req.query.get("logIndex"))


async def _v1_retrieve(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    try:
        query = json.loads(await req.read() or b"null")
    except ValueError:
        return Reply.rekor_error(400, "request body is not valid JSON")
    return core.v1_retrieve(view, query)


async def _v1_index(core: SandboxCore, req: web.Request, _view: str | None) -> Reply:
    try:
        query = json.loads(await req.read() or b"null")
    except ValueError:
        return Reply.rekor_error(400, "request body is not valid JSON")
    return core.v1_index_retrieve(query)


async def _v1_public_key(core: SandboxCore, _req: web.Request, _view: str | None) -> Reply:
    return core.v1_public_key()


async def _tiles_checkpoint(core: SandboxCore, _req: web.Request, view: str | None) -> Reply:
    return core.tiles_checkpoint(view)


async def _tiles_tile(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    return core.tiles_tile(view, req.match_info["path"])


async def _ct_sth(core: SandboxCore, _req: web.Request, view: str | None) -> Reply:
    return core.ct_get_sth(view)


async def _ct_consistency(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    return core.ct_consistency(view, req.query.get("first"), req.query.get("second"))


async def _ct_entries(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    return core.ct_entries(view, req.query.get("start"), req.query.get("end"))


async def _ct_entry_and_proof(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    q = req.query
    return core.ct_entry_and_proof(view, q.get("leaf_index"), q.get("tree_size"))


async def _static_ct_checkpoint(core: SandboxCore, _req: web.Request, view: str | None) -> Reply:
    return core.static_ct_checkpoint(view)


async def _static_ct_tile(core: SandboxCore, req: web.Request, view: str | None) -> Reply:
    return core.static_ct_tile(view, req.match_info["path"])


async def _static_ct_issuer(core: SandboxCore, req: web.Request, _view: str | None) -> Reply:
    return core.static_ct_issuer(req.match_info["name"])


def _static_ct_tile_handler() -> Handler:
    """Hash and data tiles share a route but are counted separately."""
    handlers = {
        ep: _api(LogName.STATIC_CT, ep, _static_ct_tile)
        for ep in ("static-ct.tile", "static-ct.data")
    }

    async def handler(request: web.Request) -> web.StreamResponse:
        data = request.match_info["path"].startswith("tile/data/")
        return await handlers["static-ct.data" if data else "static-ct.tile"](request)

    return handler


def _tile_endpoint(path: str) -> str:
    return "tiles.entries" if path.startswith("tile/entries/") else "tiles.tile"


def _tiles_tile_handler() -> Handler:
    """Tiles and entry bundles share a route but are counted separately."""
    handlers = {ep: _api(LogName.TILES, ep, _tiles_tile) for ep in ("tiles.tile", "tiles.entries")}

    async def handler(request: web.Request) -> web.StreamResponse:
        return await handlers[_tile_endpoint(request.match_info["path"])](request)

    return handler


# --- admin ------------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise SandboxError(f"request body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise SandboxError("request body must be a JSON object")
    return data


def _admin(fn: Callable[[SandboxCore, dict[str, Any]], Awaitable[object]]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        core = request.app[_SANDBOX_KEY]
        try:
            result = await fn(core, await _json_body(request))
        except SandboxError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(result)

    return handler


async def _admin_append(core: SandboxCore, body: dict[str, Any]) -> object:
    result = await asyncio.to_thread(
        core.append_blocking,
        str(body.get("log", "tiles")),
        body.get("count", 1),
        body.get("identity"),
        bool(body.get("self_signed", False)),
        entry_type=str(body.get("entry_type", "mixed")),
        malformed=bool(body.get("malformed", False)),
    )
    return result.to_json()


async def _admin_rotate(core: SandboxCore, _body: dict[str, Any]) -> object:
    return await asyncio.to_thread(core.rotate)


async def _admin_misbehave(core: SandboxCore, body: dict[str, Any]) -> object:
    params = dict(body)
    log_name, mode, view = (
        params.pop("log", None),
        params.pop("mode", None),
        params.pop("view", None),
    )
    if not isinstance(log_name, str) or not isinstance(mode, str):
        raise SandboxError("misbehave: 'log' and 'mode' are required strings")
    return await asyncio.to_thread(lambda: core.misbehave(log_name, mode, view, **params))


async def _admin_reset(core: SandboxCore, body: dict[str, Any]) -> object:
    removed = core.reset(body.get("log"), body.get("view"), body.get("mode"))
    return {"removed": removed}


async def _admin_index(core: SandboxCore, body: dict[str, Any]) -> object:
    return core.set_index(body.get("lag"), body.get("paused"))


async def _admin_state(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[_SANDBOX_KEY].state())


async def _admin_ca(request: web.Request) -> web.StreamResponse:
    core = request.app[_SANDBOX_KEY]
    return web.Response(body=core.ca.root_pem, content_type="application/x-pem-file")


def make_app(core: SandboxCore) -> web.Application:
    """The aiohttp application serving ``core``."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[_SANDBOX_KEY] = core
    r = app.router
    tile_handler = _tiles_tile_handler()
    static_ct_tile = _static_ct_tile_handler()
    for p in ("", _VIEW):
        r.add_get(f"{p}/api/v1/log", _api(LogName.V1, "v1.log", _v1_log))
        r.add_get(f"{p}/api/v1/log/proof", _api(LogName.V1, "v1.proof", _v1_proof))
        r.add_get(f"{p}/api/v1/log/entries", _api(LogName.V1, "v1.entries", _v1_entries))
        r.add_post(
            f"{p}/api/v1/log/entries/retrieve", _api(LogName.V1, "v1.retrieve", _v1_retrieve)
        )
        r.add_get(f"{p}/api/v1/log/publicKey", _api(LogName.V1, "v1.publicKey", _v1_public_key))
        r.add_post(f"{p}/api/v1/index/retrieve", _api(LogName.V1, "v1.index", _v1_index))
        r.add_get(
            f"{p}/tiles/checkpoint", _api(LogName.TILES, "tiles.checkpoint", _tiles_checkpoint)
        )
        r.add_get(p + "/tiles/{path:tile/.+}", tile_handler)
        r.add_get(f"{p}/ct/v1/get-sth", _api(LogName.CT, "ct.sth", _ct_sth))
        r.add_get(
            f"{p}/ct/v1/get-sth-consistency",
            _api(LogName.CT, "ct.consistency", _ct_consistency),
        )
        r.add_get(f"{p}/ct/v1/get-entries", _api(LogName.CT, "ct.entries", _ct_entries))
        r.add_get(
            f"{p}/ct/v1/get-entry-and-proof",
            _api(LogName.CT, "ct.entry-and-proof", _ct_entry_and_proof),
        )
        r.add_get(
            f"{p}/static-ct/checkpoint",
            _api(LogName.STATIC_CT, "static-ct.checkpoint", _static_ct_checkpoint),
        )
        r.add_get(p + "/static-ct/{path:tile/.+}", static_ct_tile)
        r.add_get(
            p + "/static-ct/issuer/{name}",
            _api(LogName.STATIC_CT, "static-ct.issuer", _static_ct_issuer),
        )
    r.add_post("/admin/append", _admin(_admin_append))
    r.add_post("/admin/rotate", _admin(_admin_rotate))
    r.add_post("/admin/misbehave", _admin(_admin_misbehave))
    r.add_post("/admin/reset", _admin(_admin_reset))
    r.add_post("/admin/index", _admin(_admin_index))
    r.add_get("/admin/state", _admin_state)
    r.add_get("/admin/ca.pem", _admin_ca)
    sandbox_witness.register(app, core)
    return app


# --- in-process use ---------------------------------------------------------------------------


class Sandbox:
    """A sandbox log server running inside the current event loop (tests, demo, benchmarks).

    ``url = await sb.start()`` listens on 127.0.0.1 (port 0 picks a free port); ``await
    sb.stop()`` stops it and closes the state (a stopped Sandbox cannot be restarted: make a
    new one on the same state directory). The methods mirror the admin API.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        v1_name: str | None = None,
        tiles_origin: str | None = None,
        workers: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = SandboxCore(
            state_dir, v1_name=v1_name, tiles_origin=tiles_origin, workers=workers, clock=clock
        )
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port``; returns the base URL (``http://host:port``)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        bound = sock.getsockname()[1]
        self._runner = web.AppRunner(make_app(self.core), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{bound}"
        return self.url

    async def stop(self) -> None:
        """Stop serving and close the state files."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.core.close()

    async def __aenter__(self) -> Sandbox:
        if not self.url:
            await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- URLs and keys ---

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API."""
        return f"{self.url}/admin"

    @property
    def tiles_url(self) -> str:
        """The tiled log's URL prefix."""
        return f"{self.url}/tiles"

    def view_url(self, view: str) -> str:
        """Base URL of a named view (append ``/api/v1/...`` or ``/tiles/...``)."""
        return f"{self.url}/view/{view}"

    @property
    def v1_key_name(self) -> str:
        """Key name on the v1 log's signature lines."""
        return self.core.v1_name

    @property
    def v1_origin(self) -> str:
        """Origin of the active v1 shard: ``<name> - <treeID>``."""
        return self.core.v1_origin(self.core.active.tree_id)

    @property
    def v1_tree_id(self) -> int:
        """Tree ID of the active v1 shard."""
        return self.core.active.tree_id

    @property
    def v1_public_key_pem(self) -> bytes:
        """The v1 log's public key (PEM)."""
        return self.core.v1_public_pem

    def v1_verifier(self) -> EcdsaNoteVerifier:
        """A note verifier for the v1 log's checkpoints."""
        return EcdsaNoteVerifier(self.core.v1_name, self.core.v1_key.public_key())

    @property
    def tiles_origin(self) -> str:
        """Origin (and key name) of the tiled log."""
        return self.core.tiles_origin

    @property
    def tiles_vkey(self) -> str:
        """The tiled log's C2SP verifier key."""
        return self.core.tiles_vkey

    @property
    def tiles_public_key_pem(self) -> bytes:
        """The tiled log's Ed25519 public key, PEM (for a config's `public_key`)."""
        return self.core.tiles_public_pem

    def tiles_verifier(self) -> Ed25519NoteVerifier:
        """A note verifier for the tiled log's checkpoints."""
        return Ed25519NoteVerifier(self.core.tiles_origin, self.core.tiles_key.public_key())

    @property
    def ct_url(self) -> str:
        """The CT log's URL (append ``/ct/v1/...``): the sandbox's own."""
        return f"{self.url}"

    @property
    def ct_public_key_pem(self) -> bytes:
        """The CT log's ECDSA P-256 public key, PEM (for a config's `public_key`)."""
        return self.core.ct_public_pem

    def ct_verifier(self, name: str) -> Rfc6962NoteVerifier:
        """A verifier of the CT log's STHs as notes under the key name `name`."""
        return Rfc6962NoteVerifier(name, self.core.ct_key.public_key())

    @property
    def static_ct_url(self) -> str:
        """The static-ct-api log's URL prefix (append ``/checkpoint``, ``/tile/...``)."""
        return f"{self.url}/static-ct"

    @property
    def static_ct_origin(self) -> str:
        """Origin (and key name) of the static-ct-api log's checkpoints."""
        return self.core.static_ct_origin

    def static_ct_verifier(self) -> Rfc6962NoteVerifier:
        """A verifier of the static-ct-api log's checkpoints (the CT key, its origin)."""
        return Rfc6962NoteVerifier(self.core.static_ct_origin, self.core.ct_key.public_key())

    @property
    def ca_pem(self) -> bytes:
        """The local Fulcio-like root certificate (PEM)."""
        return self.core.ca.root_pem

    # --- admin ---

    async def append(
        self,
        log: str = "tiles",
        count: int = 1,
        identity: Identity | dict[str, Any] | None = None,
        self_signed: bool = False,
        *,
        entry_type: str = "mixed",
        malformed: bool = False,
    ) -> AppendResult:
        """Append ``count`` entries to ``log`` ("v1", "tiles", "ct" or "static-ct"); see POST
        /admin/append."""
        return await asyncio.to_thread(
            functools.partial(
                self.core.append_blocking,
                log,
                count,
                identity,
                self_signed,
                entry_type=entry_type,
                malformed=malformed,
            )
        )

    async def rotate(self) -> dict[str, object]:
        """Rotate the v1 log to a new shard; see POST /admin/rotate."""
        return await asyncio.to_thread(self.core.rotate)

    def misbehave(
        self, log: str, mode: str, view: str | None = None, **params: Any
    ) -> dict[str, object]:
        """Start a misbehaviour; see POST /admin/misbehave."""
        return self.core.misbehave(log, mode, view, **params)

    def reset(
        self, log: str | None = None, view: str | None = None, mode: str | None = None
    ) -> int:
        """Be honest again (everywhere, or only the matching misbehaviours)."""
        return self.core.reset(log, view, mode)

    def set_index(self, lag: int | None = None, paused: bool | None = None) -> dict[str, object]:
        """Make the v1 search index lag or pause; see POST /admin/index."""
        return self.core.set_index(lag, paused)

    def request_times(self, view: str | None = None) -> list[float]:
        """Monotonic times of the recent requests to ``view`` (every endpoint)."""
        with self.core.lock:
            return [t for t, v, _ in self.core.request_log if v == (view or "main")]

    def state(self) -> dict[str, object]:
        """Sizes, modes, tree IDs and request counters; see GET /admin/state."""
        return self.core.state()

    def request_count(self, endpoint: str, view: str | None = None) -> int:
        """Requests served so far to ``endpoint`` (e.g. "v1.log", "tiles.entries")."""
        with self.core.lock:
            return self.core.requests[view or "main"].get(endpoint, 0)


# --- CLI --------------------------------------------------------------------------------------


async def _serve(host: str, port: int, state_dir: str) -> None:
    sandbox = Sandbox(state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await sandbox.start(host, port)
        with sandbox.core.lock:
            v1_size, tiles_size = sandbox.core.v1_global_size(), sandbox.core.tiles.size
        lines = [
            f"sandbox log serving on {url}  (state: {Path(state_dir).resolve()})",
            f"  rekor v1 API:  {url}/api/v1/log",
            f"  tiles prefix:  {url}/tiles",
            f"  admin API:     {url}/admin  (README: monitor/sandbox/README.md)",
            f"  views:         {url}/view/<name>/...",
            f"  v1 key name:   {sandbox.v1_key_name}",
            f"  v1 origin:     {sandbox.v1_origin}  (size {v1_size})",
            f"  v1 public key: {Path(state_dir) / 'rekor.pub.pem'}",
            f"  tiles origin:  {sandbox.tiles_origin}  (size {tiles_size})",
            f"  tiles vkey:    {sandbox.tiles_vkey}",
            f"  tiles public key: {Path(state_dir) / 'tiles.pub.pem'}",
            f"  static-ct:     {url}/static-ct  (origin {sandbox.static_ct_origin}, key "
            f"{Path(state_dir) / 'ct.pub.pem'})",
            f"  fulcio root:   {Path(state_dir) / 'ca.pem'}  ({url}/admin/ca.pem)",
        ]
        print("\n".join(lines), flush=True)
        await stop.wait()
        print("sandbox: stopping", file=sys.stderr, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sandbox.stop()


def run_sandbox(host: str, port: int, state_dir: str) -> None:
    """Serve the sandbox until SIGINT or SIGTERM (blocking); see ``tlog-monitor sandbox``.

    Raises MonitorError when the address cannot be bound or the state directory is unusable.
    """
    try:
        asyncio.run(_serve(host, port, state_dir))
    except OSError as e:
        raise MonitorError(f"sandbox: cannot serve {host}:{port} from {state_dir}: {e}") from e
    except SandboxError as e:
        raise MonitorError(f"sandbox: bad state in {state_dir}: {e}") from e
