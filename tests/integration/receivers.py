"""Real notification receivers on 127.0.0.1 for integration tests.

`HttpReceiver` is an aiohttp server that records the JSON bodies posted to it (what apprise's
`json://` plugin sends); it can answer 500 (`failing = True`) or stop listening altogether and come
back on the same port. `SmtpReceiver` is an aiosmtpd server (its own thread) that requires AUTH
over plain SMTP and collects the messages it accepts. `LocalServer` is the base of the tests' own
small servers (hostile logs, peers).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import math
import re
import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from monitor.notify.notifier import DIGEST_MARK

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


class LocalServer(ABC):
    """An aiohttp server on 127.0.0.1, `self.port`, that hands every request (of `methods`, any
    path) to `_handle`; over TLS when `ssl_context` is set. Subclasses set `port`."""

    port: int
    methods = "*"
    ssl_context: ssl.SSLContext | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL."""
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{LOCALHOST}:{self.port}"

    @abstractmethod
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request."""

    async def start(self) -> None:
        """Listen on `self.port`."""
        app = web.Application()
        app.router.add_route(self.methods, "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOCALHOST, self.port, ssl_context=self.ssl_context).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass(frozen=True)
class Post:
    """One JSON document posted to the HTTP receiver."""

    path: str
    body: dict[str, Any]
    authorization: str | None


class HttpReceiver:
    """Records JSON posts; `failing` makes it answer 500, `delay` makes it answer late (the post is
    recorded on arrival), `stop()` makes it refuse connections. `rate_limit` (seconds) makes it
    a rate-limited receiver: a post less than that long after the last accepted one is refused
    with 429 Too Many Requests and a Retry-After header (counted in `rate_limited_posts`)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.posts: list[Post] = []
        self.failing = False
        self.delay = 0.0
        self.refused_posts = 0
        self.rate_limit = 0.0
        self.rate_limited_posts = 0
        self._last_accepted = float("-inf")
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "hook", user: str | None = None, password: str | None = None) -> str:
        """The apprise URL (`json://[user:password@]host:port/path`) that posts here."""
        auth = f"{user}:{password}@" if user and password else ""
        return f"json://{auth}{LOCALHOST}:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        if self.failing:
            self.refused_posts += 1
            return web.Response(status=500, text="receiver failing on purpose")
        if self.rate_limit:
            wait = self._last_accepted + self.rate_limit - time.monotonic()
            if wait > 0:
                self.rate_limited_posts += 1
                retry = str(max(1, math.ceil(wait)))
                return web.Response(status=429, text="slow down", headers={"Retry-After": retry})
            self._last_accepted = time.monotonic()
        body = json.loads(await request.read())
        self.posts.append(Post(request.path, body, request.headers.get("Authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        """Listen on `self.port` (the same port across restarts)."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, LOCALHOST, self.port, reuse_address=True)
        await site.start()
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def titles(self) -> list[str]:
        """The titles of every accepted post, in arrival order."""
        return [str(p.body.get("title")) for p in self.posts]


_DIGEST_RANGE = re.compile(r"#(\d+)(?:-#(\d+))?")
_ALERT_ID = re.compile(r"alert #(\d+)")


def message_alert_ids(text: str) -> list[int]:
    """The ids of the alerts a message body stands for: every id of a digest's
    `DIGEST_MARK` line (ranges expanded), else the first "alert #N"."""
    for line in text.splitlines():
        if line.startswith(DIGEST_MARK):
            ids: list[int] = []
            for found in _DIGEST_RANGE.finditer(line):
                low = int(found.group(1))
                ids += range(low, int(found.group(2) or low) + 1)
            return ids
    found = _ALERT_ID.search(text)
    return [int(found.group(1))] if found else []


class _Collector:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 OK"


class SmtpReceiver:
    """A plain (no TLS) SMTP server on 127.0.0.1 offering AUTH for one user and password.

    AUTH is offered without TLS (`auth_require_tls=False`) but not demanded (demanding it without
    TLS makes aiosmtpd warn on every connection); a client that logs in with wrong credentials is
    refused and counted in `failed_logins`.
    """

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.port = free_port()
        self.failed_logins = 0
        self._collector = _Collector()
        self._controller = Controller(
            self._collector,
            hostname=LOCALHOST,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.user.encode()
            and data.password == self.password.encode()
        )
        if not ok:
            self.failed_logins += 1
        return AuthResult(success=ok)

    def url(self, to: str = "ops@example.com") -> str:
        """The apprise URL that delivers here: plain SMTP (`mode=insecure`), AUTH, no TLS."""
        return (
            f"mailto://{self.user}:{self.password}@{LOCALHOST}:{self.port}"
            f"?from=monitor@example.com&to={to}&mode=insecure"
        )

    def start(self) -> None:
        """Start the server thread."""
        self._controller.start()

    def stop(self) -> None:
        """Stop the server thread."""
        self._controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the accepted messages."""
        with self._collector.lock:
            return list(self._collector.messages)

    @staticmethod
    def text(message: EmailMessage) -> str:
        """The plain-text body of a message."""
        part = message.get_body(preferencelist=("plain", "html"))
        assert part is not None
        content = part.get_content()
        assert isinstance(content, str)
        return content
