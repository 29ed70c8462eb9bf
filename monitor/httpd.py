"""The daemon's HTTP endpoint on `[monitor].http_listen` (aiohttp), started and stopped by
`tlog-monitor run`.

Routes (read-only; every answer is small, built from the database, and names no secret)::

    GET /healthz              "ok": the process serves
    GET /readyz               "ready" once the database answers and every configured log has
                              been polled since the daemon started; 503 and what is missing
    GET /metrics              Prometheus text exposition (`monitor.metrics`)
    GET /checkpoints/<log>    the log's latest verified checkpoint: the signed note with every
                              witness cosignature recorded for its body (text/plain); 404 for a
                              log that is not configured or has no verified checkpoint yet

`/checkpoints/<log>` is what peer monitors poll (`kind = "peer"` views): they verify every note
against the log's key, so a peer is never trusted, only compared with.

Adding an endpoint: write a handler taking the `web.Request` (the `Endpoint` context is
`request.app[ENDPOINT]`) and list it in `ROUTES`.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiohttp import web

from monitor.config import ListenAddress
from monitor.errors import MonitorError, ParseError
from monitor.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from monitor.metrics import PollStats, collect, render
from monitor.store import AsyncStore, StoreError
from monitor.witness import with_cosignatures

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpdError(MonitorError):
    """The endpoint cannot listen on its address."""


@dataclass(frozen=True)
class Endpoint:
    """What handlers may read: the store, the configured log names and the poll counters."""

    store: AsyncStore
    log_names: frozenset[str]
    stats: PollStats = field(default_factory=PollStats)


ENDPOINT: web.AppKey[Endpoint] = web.AppKey("endpoint", Endpoint)

_TEXT = "text/plain"
_NO_STORE = {"Cache-Control": "no-store"}


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type=_TEXT, headers=_NO_STORE)


async def healthz(_request: web.Request) -> web.StreamResponse:
    """Liveness: the process answers."""
    return _text("ok\n")


async def checkpoints(request: web.Request) -> web.StreamResponse:
    """The latest verified checkpoint of one log, with its recorded cosignatures."""
    ctx = request.app[ENDPOINT]
    name = request.match_info["log"]
    if name not in ctx.log_names:
        # Only configured names reach the database; the name is echoed only once known safe.
        return _text("unknown log\n", 404)
    found = await ctx.store.call(ctx.store.store.latest_checkpoint, name)
    if found is None:
        return _text(f"no verified checkpoint of {name} yet\n", 404)
    note, lines = found
    try:
        body = with_cosignatures(note, lines)
    except ParseError as e:  # a stored note always parses; never serve a broken one
        log.error("httpd: stored checkpoint of %s does not re-serve: %s", name, e)
        return _text("stored checkpoint unusable\n", 500)
    return _text(body)


async def readyz(request: web.Request) -> web.StreamResponse:
    """Readiness: the database answers and every configured log has been polled (whatever the
    outcome) since the daemon started. A log that fails does not make the monitor unready: that
    is an alert (log_error) and a metric, and restarting the monitor would not help."""
    ctx = request.app[ENDPOINT]
    try:
        await ctx.store.call(ctx.store.store.query, "SELECT 1")
    except (StoreError, sqlite3.Error, RuntimeError) as e:  # RuntimeError: the store is closing
        return _text(f"not ready: database: {type(e).__name__}\n", 503)
    waiting = sorted(ctx.log_names - ctx.stats.polled())
    if waiting:
        return _text(f"not ready: not polled yet: {', '.join(waiting)}\n", 503)
    return _text("ready\n")


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus metrics (text format 0.0.4)."""
    ctx = request.app[ENDPOINT]
    families = await ctx.store.call(collect, ctx.store.store, ctx.stats, sorted(ctx.log_names))
    return web.Response(
        body=render(families).encode(),
        headers={"Content-Type": METRICS_CONTENT_TYPE, **_NO_STORE},
    )


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/metrics", metrics),
    ("GET", "/checkpoints/{log}", checkpoints),
)
"""(method, path, handler) of every endpoint; GET routes answer HEAD too."""


def make_app(ctx: Endpoint) -> web.Application:
    """The application serving `ROUTES`; request bodies are refused (nothing takes input)."""
    app = web.Application(client_max_size=1024)
    app[ENDPOINT] = ctx
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app


class HttpServer:
    """The endpoint, running inside the daemon's event loop."""

    def __init__(
        self,
        listen: ListenAddress,
        store: AsyncStore,
        log_names: Collection[str],
        stats: PollStats | None = None,
    ):
        self.listen = listen
        polls = PollStats() if stats is None else stats
        self.ctx = Endpoint(store=store, log_names=frozenset(log_names), stats=polls)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on `listen` (port 0 picks a free port, then `port` says which)."""
        family = socket.AF_INET6 if ":" in self.listen.host else socket.AF_INET
        try:
            infos = socket.getaddrinfo(self.listen.host, self.listen.port, family)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(infos[0][4])
            except OSError:
                sock.close()
                raise
        except OSError as e:
            raise HttpdError(
                f"http_listen {self.listen}: cannot listen ({e.strerror or e}); choose another "
                'address or set http_listen = "" to turn the endpoint off'
            ) from e
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(make_app(self.ctx), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("serving /healthz, /readyz, /metrics and /checkpoints on %s", self.url)

    @property
    def url(self) -> str:
        """The base URL the endpoint answers on."""
        host = f"[{self.listen.host}]" if ":" in self.listen.host else self.listen.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
