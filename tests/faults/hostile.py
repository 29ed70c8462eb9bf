"""A hostile HTTP proxy on 127.0.0.1: forwards to a real log (the sandbox) and, per switch, breaks
the answers in the ways a log, a load balancer or the network can.

    monitor --HTTP--> HostileProxy --HTTP--> sandbox
                          |
                          +-- a matching fault replaces or mutates the answer

Nothing here allocates a hostile body in memory: endless and 1 GB bodies are streamed in 64 KiB
chunks until the client hangs up. Each fault counts the answers it spoiled (`Fault.hits`), which
the suite reports as "faults injected".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp import web

from tests.integration.receivers import LOCALHOST, free_port

CHUNK = b"\0" * (64 * 1024)
GIB = 1 << 30


class Kind(StrEnum):
    """What a fault does to a matching request."""

    STATUS = "status"  # answer `status` (with Retry-After `retry_after` if set), body from `body`
    RESET = "reset"  # accept, then reset the TCP connection (RST) without answering
    TRUNCATE = "truncate"  # forward, but announce the full length and send only half, then reset
    NON_JSON = "non_json"  # 200 with an HTML page labelled application/json
    CONTENT_TYPE = "content_type"  # forward the body under another Content-Type (`content_type`)
    HUGE = "huge"  # 200, Content-Length 1 GiB, zeros streamed until the client hangs up
    ENDLESS = "endless"  # 200, chunked, zeros streamed until the client hangs up
    STALL = "stall"  # accept and never answer (no status line) until the client hangs up
    SLOW_BODY = "slow_body"  # 200, headers at once, then one byte a second forever
    INVALID_UTF8 = "invalid_utf8"  # forward with bytes 0xff 0xfe spliced into the body
    DEEP_JSON = "deep_json"  # 200, JSON nested `depth` levels
    PROOF_LENGTH = "proof_length"  # v1 proof: one hash dropped (`delta` < 0) or added
    TILE_LENGTH = "tile_length"  # a hash tile cut to a length that is not a multiple of 32
    NOTE_SIGNATURES = "note_signatures"  # checkpoint note with `lines` extra signature lines


@dataclass
class Fault:
    """One switch: `kind` applied to requests whose path and query match the regular expression
    `path` (all when empty), for at most `count` requests (None: until cleared)."""

    kind: Kind
    path: str = ""
    count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def matches(self, path: str) -> bool:
        """Whether this fault still applies to a request for `path`."""
        if self.count is not None and self.hits >= self.count:
            return False
        return re.search(self.path, path) is not None


Handler = Callable[[web.Request, Fault], Awaitable[web.StreamResponse]]


class HostileProxy:
    """The proxy. `inject()` adds a fault, `clear()` removes them all; `injected` counts every
    answer spoiled since start, across clears."""

    def __init__(self, upstream: str, port: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port or free_port()
        self.faults: list[Fault] = []
        self.injected = 0
        self.forwarded = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._handlers: dict[Kind, Handler] = {
            Kind.STATUS: self._status,
            Kind.RESET: self._reset,
            Kind.TRUNCATE: self._truncate,
            Kind.NON_JSON: self._non_json,
            Kind.CONTENT_TYPE: self._content_type,
            Kind.HUGE: self._huge,
            Kind.ENDLESS: self._endless,
            Kind.STALL: self._stall,
            Kind.SLOW_BODY: self._slow_body,
            Kind.INVALID_UTF8: self._invalid_utf8,
            Kind.DEEP_JSON: self._deep_json,
            Kind.PROOF_LENGTH: self._proof_length,
            Kind.TILE_LENGTH: self._tile_length,
            Kind.NOTE_SIGNATURES: self._note_signatures,
        }

    @property
    def url(self) -> str:
        """The proxy's base URL (the upstream's paths are the same here)."""
        return f"http://{LOCALHOST}:{self.port}"

    def inject(self, kind: Kind, path: str = "", count: int | None = None, **params: Any) -> Fault:
        """Add a fault; the first matching fault (in order of injection) handles a request."""
        fault = Fault(kind, path, count, dict(params))
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forward everything honestly again."""
        self.faults.clear()

    async def start(self) -> None:
        """Listen on `self.port`."""
        # Proxying must not itself time out before the monitor's own timeouts do.
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOCALHOST, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Stop listening and close the upstream session."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- dispatch ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path_qs
        fault = next((f for f in self.faults if f.matches(path)), None)
        if fault is None:
            status, headers, body = await self._forward(request)
            self.forwarded += 1
            return web.Response(status=status, headers=headers, body=body)
        fault.hits += 1
        self.injected += 1
        return await self._handlers[fault.kind](request, fault)

    async def _forward(self, request: web.Request) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        data = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=data or None,
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as resp:
            body = await resp.read()
            headers = {"Content-Type": resp.headers.get("Content-Type", "application/json")}
            if "Retry-After" in resp.headers:
                headers["Retry-After"] = resp.headers["Retry-After"]
            return resp.status, headers, body

    # -- faults --------------------------------------------------------------------------------

    async def _status(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status = int(fault.params.get("status", 500))
        headers = {}
        if "retry_after" in fault.params:
            headers["Retry-After"] = str(fault.params["retry_after"])
        body = fault.params.get("body", "<html><body>Too many requests</body></html>")
        return web.Response(status=status, text=body, content_type="text/html", headers=headers)

    async def _reset(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        _abort(request)
        return web.Response()  # never sent: the connection is gone

    async def _truncate(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status, headers, body = await self._forward(request)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        _abort(request)
        return resp

    async def _non_json(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        return web.Response(
            status=200, body=b"<html><body>maintenance</body></html>", content_type="text/plain"
        )

    async def _content_type(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status, _, body = await self._forward(request)
        ctype = str(fault.params.get("content_type", "text/html"))
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})

    async def _stream_zeros(self, request: web.Request, length: int | None) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        if length is not None:
            resp.content_length = length
        await resp.prepare(request)
        sent = 0
        # Stops when the client hangs up (the write fails) or, for a declared length, when
        # all of it went out; never holds more than one chunk.
        with contextlib.suppress(ConnectionError, RuntimeError):
            while length is None or sent < length:
                await resp.write(CHUNK)
                sent += len(CHUNK)
        return resp

    async def _huge(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        return await self._stream_zeros(request, GIB)

    async def _endless(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        return await self._stream_zeros(request, None)

    async def _stall(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        # Cancelled by aiohttp when the client hangs up (handler_cancellation=True).
        await asyncio.sleep(3600)
        raise AssertionError("unreachable: the client hangs up first")

    async def _slow_body(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await resp.write(b" ")
                await asyncio.sleep(1.0)
        return resp

    async def _invalid_utf8(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status, headers, body = await self._forward(request)
        middle = len(body) // 2
        return web.Response(
            status=status, headers=headers, body=body[:middle] + b"\xff\xfe" + body[middle:]
        )

    async def _deep_json(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        depth = int(fault.params.get("depth", 100_000))
        return web.Response(
            status=200, body=b"[" * depth + b"]" * depth, content_type="application/json"
        )

    async def _proof_length(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status, headers, body = await self._forward(request)
        obj = json.loads(body)
        hashes = list(obj.get("hashes") or [])
        if int(fault.params.get("delta", -1)) < 0:
            hashes = hashes[:-1]
        else:
            hashes.append("ab" * 32)
        obj["hashes"] = hashes
        return web.Response(status=status, headers=headers, body=json.dumps(obj).encode())

    async def _tile_length(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status, headers, body = await self._forward(request)
        return web.Response(status=status, headers=headers, body=body[: max(0, len(body) - 7)])

    async def _note_signatures(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        status, headers, body = await self._forward(request)
        lines = int(fault.params.get("lines", 1000))
        if status != 200:
            return web.Response(status=status, headers=headers, body=body)
        if request.path.endswith("/checkpoint"):
            return web.Response(
                status=status, headers=headers, body=_add_signatures(body.decode(), lines).encode()
            )
        obj = json.loads(body)  # v1 log info: the note is signedTreeHead
        obj["signedTreeHead"] = _add_signatures(obj["signedTreeHead"], lines)
        return web.Response(status=status, headers=headers, body=json.dumps(obj).encode())


def _add_signatures(note: str, lines: int) -> str:
    """`note` with `lines` more signature lines by keys nobody trusts (distinct hints)."""
    extra = "".join(
        f"\u2014 junk{i}.example {base64.b64encode(struct.pack('>I', i) + bytes(64)).decode()}\n"
        for i in range(lines)
    )
    return note + extra


def _abort(request: web.Request) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), not a clean FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
