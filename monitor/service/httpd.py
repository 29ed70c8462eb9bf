"""The daemon's HTTP endpoint on `[monitor].http_listen` (aiohttp), started and stopped by
`tlog-monitor run`.

Routes (read-only; every answer is small, built from the database, and names no secret)::

    GET /healthz              "ok": the process serves
    GET /readyz               "ready" once the database answers and every configured log has
                              been polled since the daemon started; 503 and what is missing
    GET /metrics              Prometheus text exposition (`monitor.service.metrics`)
    GET /checkpoints/<log>    the log's latest verified checkpoint: the signed note with every
                              witness cosignature recorded for its body (text/plain); 404 for a
                              log that is not configured or has no verified checkpoint yet

`/checkpoints/<log>` is what peer monitors poll (`kind = "peer"` views): they verify every note
against the log's key, so a peer is never trusted, only compared with.

Nobody who can connect can starve the daemon (docs/operations.md, "Limits of the endpoint"):
the server accepts connections itself and holds at most `connection_cap()` at once (at most
`MAX_CONNECTIONS`, and an eighth of the open-file limit), so polls and deliveries always keep
descriptors of their own; a connection over the cap is answered 503 and closed at once. A
connection that has not sent a complete request within `IDLE_TIMEOUT_S` of connecting or of its
last answer is closed. Refusals and accept failures are logged at most once a minute each.

Adding an endpoint: write a handler taking the `web.Request` (the `Endpoint` context is
`request.app[ENDPOINT]`) and list it in `ROUTES`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress
from dataclasses import dataclass, field

from aiohttp import web

from monitor.config.settings import ListenAddress
from monitor.core.errors import MonitorError, ParseError
from monitor.core.witness import with_cosignatures
from monitor.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from monitor.service.metrics import MetricsSource, PollStats, render
from monitor.store.database import AsyncStore, StoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


MAX_CONNECTIONS = 64
"""The most connections the endpoint holds at once (fewer under a low open-file limit, see
`connection_cap`): Prometheus and a few peer monitors need a handful."""
FD_SHARE = 8
"""The endpoint's connections take at most 1/FD_SHARE of the process's open-file limit."""
IDLE_TIMEOUT_S = 5.0
"""A connection is closed when it has not sent a complete request (line and headers) within this
many seconds of connecting or of its last answer: scrapers and peers send theirs at once."""
ACCEPT_BATCH = 16
"""Connections accepted per wake-up of the event loop (polls run in between)."""
BACKLOG = 128
"""Connections the kernel queues while the endpoint is busy or paused: they use none of the
daemon's descriptors."""
ACCEPT_RETRY_S = 1.0
"""After an accept failed for lack of descriptors or memory, accepting pauses this long."""
LOG_EVERY_S = 60.0
"""Each kind of listener trouble (refusals, accept failures) is logged at most this often."""

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n\r\ntoo many connections\n"
)


def connection_cap(open_files: int) -> int:
    """How many connections the endpoint holds at once under an open-file limit of
    `open_files`: `MAX_CONNECTIONS`, or 1/FD_SHARE of the limit if lower (at least 1)."""
    return max(1, min(MAX_CONNECTIONS, open_files // FD_SHARE))


def open_file_limit() -> int:
    """The process's soft limit on open files (RLIMIT_NOFILE; systemd's LimitNOFILE=)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_CONNECTIONS * FD_SHARE if soft == resource.RLIM_INFINITY else int(soft)


class _Throttled:
    """A warning logged at most once per `every` seconds, saying how often it happened since
    it was last logged: a flood of connections must not become a flood of log lines."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._next = float("-inf")
        self._count = 0

    def __call__(self, message: str, *args: object) -> None:
        self._count += 1
        now = self._clock()
        if now < self._next:
            return
        log.warning(f"{message} (%d time(s) since last said)", *args, self._count)
        self._count = 0
        self._next = now + self._every


class HttpdError(MonitorError):
    """The endpoint cannot listen on its address."""


@dataclass(frozen=True)
class Endpoint:
    """What handlers may read: the store, the configured log names and the poll counters."""

    store: AsyncStore
    log_names: frozenset[str]
    stats: PollStats = field(default_factory=PollStats)
    metrics: MetricsSource | None = None
    """What /metrics serves (made from the fields above when not given)."""
    on_request: Callable[[asyncio.BaseTransport], None] = lambda _transport: None
    """Told the connection of every request that reached a handler (the idle timeout)."""

    def __post_init__(self) -> None:
        if self.metrics is None:
            # Frozen for the handlers; the source is made once, here.
            object.__setattr__(
                self, "metrics", MetricsSource(self.store, self.stats, self.log_names)
            )


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
    found = await ctx.store.state.latest_checkpoint(name)
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
        await ctx.store.reports.ping()
    except (StoreError, sqlite3.Error, RuntimeError) as e:  # RuntimeError: the store is closing
        return _text(f"not ready: database: {type(e).__name__}\n", 503)
    waiting = sorted(ctx.log_names - ctx.stats.polled())
    if waiting:
        return _text(f"not ready: not polled yet: {', '.join(waiting)}\n", 503)
    return _text("ready\n")


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus metrics (text format 0.0.4), from `MetricsSource`: cheap however often and
    by however many clients it is scraped."""
    ctx = request.app[ENDPOINT]
    assert ctx.metrics is not None  # set by Endpoint.__post_init__
    try:
        families = await ctx.metrics.families()
    except (StoreError, RuntimeError) as e:  # RuntimeError: the store is closing
        log.warning("httpd: /metrics: cannot read the database: %s", e)
        return _text("metrics unavailable: the database cannot be read; see the log\n", 503)
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


@web.middleware
async def _note_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.transport is not None:
        request.app[ENDPOINT].on_request(request.transport)
    return await handler(request)


def make_app(ctx: Endpoint) -> web.Application:
    """The application serving `ROUTES`; request bodies are refused (nothing takes input)."""
    app = web.Application(client_max_size=1024, middlewares=[_note_request])
    app[ENDPOINT] = ctx
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app


class HttpServer:
    """The endpoint, running inside the daemon's event loop. It accepts connections itself (not
    through aiohttp's site) to cap them, see the module's docstring."""

    def __init__(
        self,
        listen: ListenAddress,
        store: AsyncStore,
        log_names: Collection[str],
        stats: PollStats | None = None,
    ):
        self.listen = listen
        polls = PollStats() if stats is None else stats
        self.ctx = Endpoint(
            store=store,
            log_names=frozenset(log_names),
            stats=polls,
            on_request=self._requested_on,
        )
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self.port = 0
        self.cap = MAX_CONNECTIONS
        """Connections held at most at once (set by `start` from the open-file limit)."""
        self._live: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}
        """Open connections, each with the deadline of its first request."""
        self._requested: set[asyncio.BaseTransport] = set()
        self._opening: set[asyncio.Task[None]] = set()
        self._pending = 0
        """Connections accepted and not set up yet: counted until they are in `_live`."""
        self._resume: asyncio.TimerHandle | None = None
        self._warn_refused = _Throttled(LOG_EVERY_S)
        self._warn_accept = _Throttled(LOG_EVERY_S)

    async def start(self) -> None:
        """Listen on `listen` (port 0 picks a free port, then `port` says which)."""
        family = socket.AF_INET6 if ":" in self.listen.host else socket.AF_INET
        try:
            infos = socket.getaddrinfo(self.listen.host, self.listen.port, family)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(infos[0][4])
                sock.listen(BACKLOG)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
        except OSError as e:
            raise HttpdError(
                f"http_listen {self.listen}: cannot listen ({e.strerror or e}); choose another "
                'address or set http_listen = "" to turn the endpoint off'
            ) from e
        self.port = sock.getsockname()[1]
        self.cap = connection_cap(open_file_limit())
        # keepalive_timeout closes a connection idle after an answer (and, in recent aiohttp,
        # one that never sends a request; `_deadline` does that for every version).
        self._runner = web.AppRunner(
            make_app(self.ctx), access_log=None, keepalive_timeout=IDLE_TIMEOUT_S
        )
        await self._runner.setup()
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept)
        log.info(
            "serving /healthz, /readyz, /metrics and /checkpoints on %s (at most %d connections)",
            self.url,
            self.cap,
        )

    @property
    def url(self) -> str:
        """The base URL the endpoint answers on."""
        host = f"[{self.listen.host}]" if ":" in self.listen.host else self.listen.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections held now (accepted and not closed, or being set up)."""
        self._prune()
        return len(self._live) + self._pending

    def _accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                # Retrying at once would spin (and log) as fast as the loop runs; meanwhile new
                # connections wait in the kernel's queue, using none of our descriptors.
                self._pause(sock)
                self._warn_accept(
                    "http_listen: cannot accept connections (%s); pausing %gs%s",
                    e.strerror or e,
                    ACCEPT_RETRY_S,
                    " (out of file descriptors: see LimitNOFILE= in docs/systemd.md)"
                    if e.errno in _OUT_OF_RESOURCES
                    else "",
                )
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        if self.connections >= self.cap:
            with suppress(OSError):
                conn.setblocking(False)
                conn.send(_REFUSAL)
            conn.close()
            self._warn_refused(
                "http_listen: refused a connection: %d open, the most it serves at once",
                self.cap,
            )
            return
        self._pending += 1
        task = asyncio.get_running_loop().create_task(self._open(conn))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            runner = self._runner
            if runner is None or runner.server is None:
                conn.close()
                return
            try:
                transport, _ = await loop.connect_accepted_socket(runner.server, conn)
            except (OSError, RuntimeError) as e:
                conn.close()
                self._warn_accept("http_listen: cannot set up a connection: %s", e)
                return
            self._live[transport] = loop.call_later(IDLE_TIMEOUT_S, self._deadline, transport)
        finally:
            # In the same step as the insertion into `_live`: never counted twice or not at all.
            self._pending -= 1

    def _requested_on(self, transport: asyncio.BaseTransport) -> None:
        self._requested.add(transport)

    def _deadline(self, transport: asyncio.BaseTransport) -> None:
        """The first request's deadline: a connection that has sent none is closed."""
        if transport not in self._requested and not transport.is_closing():
            transport.close()

    def _prune(self) -> None:
        for transport in [t for t in self._live if t.is_closing()]:
            self._live.pop(transport).cancel()
            self._requested.discard(transport)

    def _pause(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        if self._resume is None:
            self._resume = loop.call_later(ACCEPT_RETRY_S, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self._sock is not None:
            asyncio.get_running_loop().add_reader(self._sock.fileno(), self._accept)

    async def stop(self) -> None:
        """Stop serving (idempotent): no new connections, then the open ones are closed."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        for task in list(self._opening):
            task.cancel()
        if self._opening:
            await asyncio.wait(list(self._opening))
        for deadline in self._live.values():
            deadline.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Connections the runner did not know yet (not set up) are closed here.
        for transport in self._live:
            transport.close()
        self._live.clear()
        self._requested.clear()
