"""One careful HTTP layer for every log client: bounded bodies, retries, typed errors.

Every request made to a log goes through ``get_bytes`` / ``get_pieces`` / ``get_json`` /
``post_json``:

    budget.acquire()          (optional per-log rate limit, shared by all of the log's requests)
      -> request, bounded by policy.timeout (the whole attempt, body included)
      -> 2xx: read the body in chunks, abort past max_body_bytes -> bytes / the pieces as
             they arrived / parsed JSON
         408, 429, 5xx, connection failures, timeouts, truncated bodies: retry
             (full-jitter exponential backoff, or Retry-After on 429/503)
         other 4xx: raise at once (404 -> LogNotFound, others -> LogStatusError)
         3xx: followed only to the same origin (scheme, host and port), at most
             MAX_REDIRECTS hops; a redirect anywhere else is refused without contacting
             the target (LogRedirectError)

Errors, in the project's families (``monitor.core.errors``):

- ``LogUnavailable`` (NetworkError): the log could not be reached or kept failing; retry later.
- ``LogNotReady`` (NetworkError): the log does not know what was asked *yet* (a lagging
  replica); raised by clients that know which answers mean that; retry later.
- ``LogResponseError`` (ParseError): the log answered garbage (not JSON, too big, wrong shape);
  ``LogStatusError``, ``LogNotFound`` and ``LogRedirectError`` are its status-carrying
  subclasses.

Messages name the method, the URL (credentials in the URL's userinfo are never shown), what was
expected and what came, with body excerpts capped at ``EXCERPT_CHARS`` characters.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Final, TypeVar

import aiohttp
from yarl import URL

from monitor import __version__
from monitor.core.errors import NetworkError, ParseError

__all__ = [
    "MAX_BODY_BYTES_IN_FLIGHT",
    "MAX_JSON_DEPTH",
    "MAX_JSON_ITEMS",
    "MAX_REDIRECTS",
    "HttpLogClient",
    "HttpPolicy",
    "LogNotFound",
    "LogNotReady",
    "LogRedirectError",
    "LogResponseError",
    "LogStatusError",
    "LogUnavailable",
    "RequestBudget",
    "gather_bounded",
    "get_bytes",
    "get_json",
    "get_pieces",
    "parse_json",
    "post_json",
    "safe_url",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_JSON_DEPTH: Final = 64
"""Deepest JSON nesting accepted; log responses we read are less than 10 levels deep."""

EXCERPT_CHARS: Final = 200
"""Longest body excerpt quoted in an error message."""

MAX_REDIRECTS: Final = 5
"""Most same-origin redirects followed for one request."""

MAX_JSON_ITEMS: Final = 1_000_000
"""Most JSON values (counted by their separators and brackets) accepted in one body, checked
before parsing. Parsed, a value costs up to ~100 bytes (an empty object is a 64-byte dict), so
without a count a 16 MiB body of ``[{},{},...]`` would become ~400 MB of objects; the largest
answer we read (an index search of 100,000 UUIDs) has ~100,000."""

MAX_BODY_BYTES_IN_FLIGHT: Final = 128 * 1024 * 1024
"""Most response-body bytes the whole process holds while reading bodies, over every log and
request at once. A read that would go past it fails as ``LogUnavailable`` (retried like any
transient failure) instead of waiting: with per-body caps this bounds what concurrent polls of
many logs can hold, whatever their number (see docs/configuration.md, memory)."""

_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_MAX_LOCATION_CHARS = 200
_ERROR_BODY_BYTES = 1024
_RETRYABLE_4XX: Final = frozenset({408, 429})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


@dataclass(frozen=True)
class HttpPolicy:
    """Limits and retry behaviour of every request to one log.

    ``timeout`` bounds one attempt end to end (connect, headers and the whole body, so a body
    that never ends is cut off); ``retries`` is the number of attempts after the first.
    A Retry-After longer than ``max_retry_after`` is not waited for inline: the request fails
    at once with ``LogUnavailable.retry_after`` set, for the scheduler to honour.
    """

    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_body_bytes: int = 16 * 1024 * 1024
    retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 300.0
    user_agent: str = f"tlog-monitor/{__version__}"

    def __post_init__(self) -> None:
        """Reject limits that would make every request fail or never end (a caller's bug)."""
        if not (self.timeout > 0 and self.connect_timeout > 0):
            raise ValueError("HttpPolicy: timeouts must be positive")
        if self.max_body_bytes < 1:
            raise ValueError("HttpPolicy: max_body_bytes must be positive")
        if self.retries < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("HttpPolicy: retries and backoff must not be negative")
        if self.max_retry_after < 0:
            raise ValueError("HttpPolicy: max_retry_after must not be negative")


# --- errors -------------------------------------------------------------------------------------


class LogUnavailable(NetworkError):
    """The log could not be reached, timed out, or kept answering 5xx/429: retry later.

    ``status`` is the last HTTP status (None for transport failures); ``retry_after`` the
    delay in seconds the log asked for, if it did.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class LogNotReady(NetworkError):
    """The log does not know yet what was asked (e.g. a proof to a size a lagging replica has
    not reached): not tampering; retry later."""


class LogResponseError(ParseError):
    """The log answered, but with garbage: not JSON, too large, or the wrong shape."""


class LogStatusError(LogResponseError):
    """The log answered a non-retryable HTTP error status (4xx other than 408/429)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class LogNotFound(LogStatusError):
    """The log answered 404: it does not have the resource."""


class LogRedirectError(LogStatusError):
    """The log redirected to another origin (scheme, host or port), answered a redirect
    without a usable Location, or redirected more than ``MAX_REDIRECTS`` times.

    A redirect elsewhere is never followed: the request could be steered at an internal
    service (SSRF) or from https to plain http, and whatever that service answered would end
    up in errors, alerts and messages. ``location`` is the (shortened, credential-free)
    target, for messages.
    """

    def __init__(self, message: str, *, status: int, location: str | None) -> None:
        super().__init__(message, status=status)
        self.location = location


# --- message helpers ----------------------------------------------------------------------------


def safe_url(url: str | URL) -> str:
    """``url`` for messages and logs: without the userinfo (``user:password@``) part."""
    try:
        u = URL(url) if isinstance(url, str) else url
        return str(u.with_user(None)) if u.user is not None or u.password is not None else str(u)
    except (ValueError, TypeError):
        return "<unparseable URL>"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def excerpt(data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable, quoted excerpt of a body for an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    clipped = len(text) > limit
    text = _CONTROL.sub(" ", text[:limit])
    return json.dumps(text, ensure_ascii=False) + ("..." if clipped else "")


def _describe(e: BaseException) -> str:
    """An exception's class and message, for an error message."""
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --- rate limiting ------------------------------------------------------------------------------


class RequestBudget:
    """A per-log token bucket: at most ``requests_per_minute`` on average, ``burst`` at once.

    Share one budget between every client of a log (polling, proofs, search, fetches); each
    HTTP attempt (retries included) takes one token. ``used`` counts the tokens taken and
    ``recent()`` those of the last minute. Waiters are served in order (a lock is held while
    waiting for the next token). ``hold(seconds)`` stops every request of the log for that long
    (a 429 or 503 with Retry-After speaks for the whole log, not for one request).
    """

    def __init__(
        self,
        requests_per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``burst`` defaults to ten seconds' worth of requests (at least 1)."""
        if not requests_per_minute > 0:
            raise ValueError(
                f"RequestBudget: requests_per_minute must be positive, got {requests_per_minute}"
            )
        self._rate = requests_per_minute / 60.0
        capacity = burst if burst is not None else max(1, int(self._rate * 10))
        if capacity < 1:
            raise ValueError(f"RequestBudget: burst must be at least 1, got {burst}")
        self._capacity = float(capacity)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = asyncio.Lock()
        self._hold_until = 0.0
        # Times of the last minute's worth of requests, for recent(); bounded by the rate.
        self._times: deque[float] = deque(maxlen=int(requests_per_minute) + capacity + 1)
        self.used = 0

    @property
    def requests_per_minute(self) -> float:
        """The configured average rate."""
        return self._rate * 60.0

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)

    def hold(self, seconds: float) -> None:
        """Make no request for ``seconds`` from now (never shortens an earlier hold)."""
        self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))

    def recent(self, window: float = 60.0) -> int:
        """How many requests were made in the last ``window`` seconds (at most a minute's)."""
        since = self._clock() - window
        return sum(1 for t in self._times if t > since)

    async def acquire(self) -> None:
        """Wait until a request may be made, and count it."""
        async with self._lock:
            while (wait := self._hold_until - self._clock()) > 0:
                await self._sleep(wait)
            self._refill()
            while self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1.0
            self.used += 1
            self._times.append(self._clock())


# --- JSON ---------------------------------------------------------------------------------------

# A JSON string (escapes included), removed before counting brackets, which may appear in text.
# Possessive quantifiers and "or the end of the text" make every match attempt succeed without
# backtracking, so the scan stays linear even on unterminated strings full of escaped quotes.
# Matched on the UTF-8 bytes: no byte of a multi-byte sequence is a quote or a backslash, and
# the bytes are at most as large as the str (which can be 4x when one character is astral).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_DEPTH_DELTA = [0] * 256
_DEPTH_DELTA[ord("[")] = _DEPTH_DELTA[ord("{")] = 1
_DEPTH_DELTA[ord("]")] = _DEPTH_DELTA[ord("}")] = -1


def json_depth(text: str | bytes) -> int:
    """The deepest bracket nesting of a JSON text (strings ignored); cheap, no recursion."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _json_shape(data)[0]


def _json_shape(data: bytes) -> tuple[int, int]:
    """(deepest bracket nesting, an upper bound of the number of values) of a UTF-8 JSON
    text, strings ignored: cheap, no recursion, no objects built."""
    stripped = _JSON_STRING.sub(b"", data)
    brackets = stripped.translate(None, _NOT_BRACKETS)
    depth = max(accumulate(map(_DEPTH_DELTA.__getitem__, brackets)), default=0)
    # Every value but the first follows a comma or opens a container: commas + brackets + 1
    # bounds the values (and object keys) json.loads would build.
    items = stripped.count(b",") + len(brackets) + 1
    return depth, items


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_json(data: bytes, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Parse a JSON body strictly: UTF-8, no NaN/Infinity, at most ``max_depth`` deep and
    ``MAX_JSON_ITEMS`` values.

    ``where`` names the request in messages ("GET https://log/api/v1/log"). Raises
    LogResponseError.
    """
    # Shape first, on the bytes: a body refused here never costs its str or its objects.
    depth, items = _json_shape(data)
    if depth > max_depth:
        raise LogResponseError(
            f"{where}: expected JSON nested at most {max_depth} deep, got {depth} levels"
        )
    if items > MAX_JSON_ITEMS:
        raise LogResponseError(
            f"{where}: expected JSON of at most {MAX_JSON_ITEMS} values, got up to {items}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LogResponseError(
            f"{where}: expected a UTF-8 JSON body, got invalid UTF-8 at byte {e.start}: "
            f"{excerpt(data)}"
        ) from e
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as e:  # belt and braces: the depth check should prevent this
        raise LogResponseError(f"{where}: expected JSON, got a too deeply nested body") from e
    except ValueError as e:  # JSONDecodeError, huge integers, NaN/Infinity
        raise LogResponseError(f"{where}: expected JSON, got {e}: {excerpt(text)}") from e


# --- requests -----------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date); None if
    absent or unparseable. A date in the past means 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _backoff(policy: HttpPolicy, attempt: int) -> float:
    """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**attempt)]."""
    ceiling = min(policy.backoff_max, policy.backoff_base * (2.0**attempt))
    return random.uniform(0.0, ceiling)  # noqa: S311 (jitter, not cryptography)


class _BodyBytes:
    """Response-body bytes held by the reads in progress, process-wide, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Count ``n`` more bytes, unless that would pass the limit (then count nothing)."""
        with self._lock:
            if self.held + n > self.limit:
                return False
            self.held += n
            return True

    def give(self, n: int) -> None:
        """Stop counting ``n`` bytes."""
        with self._lock:
            self.held -= n


_IN_FLIGHT = _BodyBytes(MAX_BODY_BYTES_IN_FLIGHT)


_PIECE_BYTES: Final = 16 * 1024
"""Smaller pieces of a body are gathered into pieces of about this size as they arrive: each
bytes object kept costs about 40 bytes beyond its data, so a log trickling a body a byte at a
time would make us hold some 40 times what the caps count."""


class _OverBudget(Exception):
    """Reading on would pass MAX_BODY_BYTES_IN_FLIGHT."""


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, where: str) -> list[bytes]:
    """Read the whole body as the pieces it arrived in, failing as soon as it is larger than
    ``limit`` bytes, or (``_OverBudget``) when the process would hold more than
    MAX_BODY_BYTES_IN_FLIGHT."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise LogResponseError(
            f"{where}: expected a body of at most {limit} bytes, got Content-Length {declared}"
        )
    # Pieces as they arrived, never joined here (a growing buffer copied each byte about three
    # times; a scan reads gigabytes, and a backfill copies the pieces straight into shared
    # memory). Counted as they arrive, never as declared: a log that declares much and sends
    # little holds no more of the process-wide budget than it sent.
    pieces: list[bytes] = []
    small = bytearray()  # pieces under _PIECE_BYTES, gathered
    held = 0
    try:
        async for piece in resp.content.iter_any():
            if not _IN_FLIGHT.take(len(piece)):
                raise _OverBudget
            held += len(piece)
            if held > limit:
                raise LogResponseError(
                    f"{where}: expected a body of at most {limit} bytes, got more (stopped reading)"
                )
            if len(piece) >= _PIECE_BYTES:
                if small:
                    pieces.append(bytes(small))
                    small.clear()
                pieces.append(piece)
                continue
            small += piece
            if len(small) >= _PIECE_BYTES:
                pieces.append(bytes(small))
                small.clear()
        if small:
            pieces.append(bytes(small))
        return pieces
    finally:
        _IN_FLIGHT.give(held)


@dataclass(frozen=True)
class _Response:
    status: int
    content_type: str
    pieces: list[bytes]

    @property
    def body(self) -> bytes:
        """The pieces joined, on each access (one piece: that piece, not a copy)."""
        return b"".join(self.pieces)


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    """What a redirect must keep: scheme, host (case-insensitive) and effective port."""
    return url.scheme.lower(), (url.host or "").lower() or None, url.port


def _shown_location(url: URL | str) -> str:
    """A redirect target for messages: no credentials, no control characters, shortened (the
    Location header is the log's text)."""
    text = _CONTROL.sub(" ", safe_url(url))
    if len(text) > _MAX_LOCATION_CHARS:
        text = text[: _MAX_LOCATION_CHARS - 3] + "..."
    return text


def _redirect_target(current: URL, resp: aiohttp.ClientResponse, where: str) -> URL:
    """Where a 3xx answer points, if it may be followed (same origin as ``current``); raises
    LogRedirectError naming the target otherwise. The target is never contacted here."""
    status = resp.status
    location = resp.headers.get("Location")
    if not location:
        raise LogRedirectError(
            f"{where}: HTTP {status} redirect without a Location header",
            status=status,
            location=None,
        )
    try:
        target = current.join(URL(location))
        same = target.is_absolute() and _origin(target) == _origin(current)
    except (ValueError, TypeError) as e:
        raise LogRedirectError(
            f"{where}: HTTP {status} redirect to an unparseable Location "
            f"{excerpt(location, _MAX_LOCATION_CHARS)}",
            status=status,
            location=None,
        ) from e
    shown = _shown_location(target)
    if not same:
        raise LogRedirectError(
            f"{where}: HTTP {status} redirect to {shown} refused: it leaves "
            f"{_shown_location(current.origin())} (redirects are followed only to "
            "the same scheme, host and port); if the log really moved, configure its new URL",
            status=status,
            location=shown,
        )
    return target


async def _attempt(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    policy: HttpPolicy,
    *,
    where: str,
    data: bytes | None,
    headers: dict[str, str],
    max_bytes: int,
) -> _Response | LogUnavailable:
    """One attempt: a 2xx response, or a retryable failure (returned), or a raised error.

    Redirects are followed here, by hand, only within the request's origin: aiohttp would
    follow them anywhere, https to http included, and quote whatever the target answered.
    """
    timeout = aiohttp.ClientTimeout(total=policy.timeout, connect=policy.connect_timeout)
    target = URL(url)
    requested = where
    try:
        # asyncio.timeout bounds the body too, whatever aiohttp does with its own timeout;
        # and it bounds every hop of a redirect chain together.
        async with asyncio.timeout(policy.timeout):
            for _hop in range(MAX_REDIRECTS + 1):
                async with session.request(
                    method,
                    target,
                    data=data,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    if status in _REDIRECT_STATUSES:
                        target = _redirect_target(target, resp, where)
                        # Later messages name where the request actually went.
                        where = f"{requested} -> {_shown_location(target)}"
                        continue
                    if 200 <= status < 300:
                        try:
                            pieces = await _read_capped(resp, max_bytes, where)
                        except _OverBudget:
                            return LogUnavailable(
                                f"{where}: the monitor already holds "
                                f"{MAX_BODY_BYTES_IN_FLIGHT // (1024 * 1024)} MiB of responses "
                                "being read (other requests); retrying"
                            )
                        return _Response(status, resp.content_type, pieces)
                    return await _failure(resp, where)
            raise LogRedirectError(
                f"{where}: expected an answer after at most {MAX_REDIRECTS} redirects, got "
                "another redirect",
                status=status,
                location=_shown_location(target),
            )
    except aiohttp.TooManyRedirects as e:  # not raised with allow_redirects=False; kept safe
        raise LogResponseError(f"{where}: too many redirects") from e
    except aiohttp.ClientConnectorCertificateError as e:
        # Not retried: a certificate that does not verify will not verify in a second either,
        # and an interception attempt must not be given more tries.
        why = getattr(e.certificate_error, "verify_message", None) or str(e.certificate_error)
        raise LogUnavailable(
            f"{where}: TLS certificate verification failed ({why}); the server's certificate "
            "must be valid for the host and chain to a CA the system trusts (SSL_CERT_FILE "
            "names another CA bundle)"
        ) from e
    except (
        aiohttp.ClientConnectionError,  # refused, reset, DNS, socket/connect timeouts
        aiohttp.ClientPayloadError,  # truncated or undecodable body
        aiohttp.ClientResponseError,  # malformed HTTP
        TimeoutError,
    ) as e:
        if isinstance(e, aiohttp.ConnectionTimeoutError):
            reason = f"could not connect within {policy.connect_timeout:g}s"
        elif isinstance(e, TimeoutError):
            reason = f"timed out after {policy.timeout:g}s"
        else:
            reason = _describe(e)
        failure = LogUnavailable(f"{where}: {reason}")
        failure.__cause__ = e
        return failure
    except aiohttp.ClientError as e:  # invalid URL and the like: retrying cannot help
        raise LogUnavailable(f"{where}: {_describe(e)}") from e


async def _failure(resp: aiohttp.ClientResponse, where: str) -> LogUnavailable:
    """A non-2xx, non-redirect answer: returned when worth retrying, raised otherwise."""
    status = resp.status
    text = await resp.content.read(_ERROR_BODY_BYTES)
    reason = _CONTROL.sub(" ", resp.reason or "")[:80]
    detail = f"{where}: HTTP {status} {reason}".rstrip()
    if text:
        detail += f": {excerpt(text)}"
    if status in _RETRYABLE_4XX or status >= 500:
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return LogUnavailable(detail, status=status, retry_after=retry_after)
    if status == 404:
        raise LogNotFound(detail, status=status)
    raise LogStatusError(detail, status=status)


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    policy: HttpPolicy,
    *,
    data: bytes | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    max_bytes: int | None = None,
    budget: RequestBudget | None = None,
) -> _Response:
    """Make a request with retries; returns a 2xx response or raises one of our errors."""
    where = f"{method} {safe_url(url)}"
    headers = {"User-Agent": policy.user_agent}
    if accept:
        headers["Accept"] = accept
    if content_type:
        headers["Content-Type"] = content_type
    limit = policy.max_body_bytes if max_bytes is None else max_bytes
    attempt = 0
    while True:
        if budget is not None:
            await budget.acquire()
        outcome = await _attempt(
            session,
            method,
            url,
            policy,
            where=where,
            data=data,
            headers=headers,
            max_bytes=limit,
        )
        if isinstance(outcome, _Response):
            return outcome
        if outcome.retry_after is not None and outcome.retry_after > policy.max_retry_after:
            # Never come back sooner than asked; let the scheduler wait that long instead.
            raise outcome
        if attempt >= policy.retries:
            if not attempt:
                raise outcome
            raise LogUnavailable(
                f"{outcome} (after {attempt + 1} attempts)",
                status=outcome.status,
                retry_after=outcome.retry_after,
            ) from outcome.__cause__
        delay = outcome.retry_after
        if delay is None:
            delay = _backoff(policy, attempt)
        elif budget is not None:
            budget.hold(delay)
        log.debug("%s; retrying in %.2fs", outcome, delay)
        await asyncio.sleep(delay)
        attempt += 1


async def get_bytes(
    session: aiohttp.ClientSession,
    url: str,
    policy: HttpPolicy,
    *,
    expect_json: bool = False,
    max_bytes: int | None = None,
    budget: RequestBudget | None = None,
) -> bytes:
    """GET ``url`` and return the body (at most ``max_bytes``, default policy.max_body_bytes).

    With ``expect_json``, asks for JSON and rejects an HTML answer (rate limiters and proxies
    answer with HTML pages). Raises LogUnavailable, LogResponseError (and subclasses).
    """
    resp = await _request(
        session,
        "GET",
        url,
        policy,
        accept="application/json" if expect_json else None,
        max_bytes=max_bytes,
        budget=budget,
    )
    if expect_json:
        _check_not_html(resp, f"GET {safe_url(url)}")
    return resp.body


async def get_pieces(
    session: aiohttp.ClientSession,
    url: str,
    policy: HttpPolicy,
    *,
    max_bytes: int | None = None,
    budget: RequestBudget | None = None,
) -> list[bytes]:
    """``get_bytes`` unjoined: the body as the pieces it arrived in, for a caller that copies
    them on anyway (a backfill, into shared memory: joining them first copied each byte once
    more, a tenth of the backfill's own CPU)."""
    resp = await _request(session, "GET", url, policy, max_bytes=max_bytes, budget=budget)
    return resp.pieces


def _check_not_html(resp: _Response, where: str) -> None:
    if resp.content_type in ("text/html", "application/xhtml+xml"):
        raise LogResponseError(
            f"{where}: expected JSON, got {resp.content_type}: {excerpt(resp.body)}"
        )


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    policy: HttpPolicy,
    *,
    max_bytes: int | None = None,
    budget: RequestBudget | None = None,
) -> object:
    """GET ``url`` and parse the body with ``parse_json``; the caller checks the shape."""
    body = await get_bytes(
        session, url, policy, expect_json=True, max_bytes=max_bytes, budget=budget
    )
    return parse_json(body, f"GET {safe_url(url)}")


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: object,
    policy: HttpPolicy,
    *,
    max_bytes: int | None = None,
    budget: RequestBudget | None = None,
) -> object:
    """POST ``payload`` as JSON and parse the JSON answer.

    Retried like a GET: use it only for requests that are safe to repeat (Rekor's retrieve
    and search endpoints are reads).
    """
    where = f"POST {safe_url(url)}"
    resp = await _request(
        session,
        "POST",
        url,
        policy,
        data=json.dumps(payload, separators=(",", ":")).encode(),
        content_type="application/json",
        accept="application/json",
        max_bytes=max_bytes,
        budget=budget,
    )
    _check_not_html(resp, where)
    return parse_json(resp.body, where)


class HttpLogClient:
    """What every log client keeps: the session, the log's URL (without a trailing slash), the
    HTTP policy and the optional request budget, and a repr that never shows credentials."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        policy: HttpPolicy,
        budget: RequestBudget | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.budget = budget

    def __repr__(self) -> str:
        """Show the log's URL without credentials."""
        return f"{type(self).__name__}({safe_url(self.base_url)!r})"

    async def get_text(self, url: str, *, encoding: str, expected: str, max_bytes: int) -> str:
        """GET ``url`` (at most ``max_bytes``) and decode the body as ``encoding`` ("ASCII",
        "UTF-8"); a body that does not decode raises LogResponseError saying what was
        ``expected`` ("a checkpoint")."""
        body = await get_bytes(
            self.session, url, self.policy, max_bytes=max_bytes, budget=self.budget
        )
        try:
            return body.decode(encoding)
        except UnicodeDecodeError as e:
            raise LogResponseError(
                f"GET {safe_url(url)}: expected {expected}, got non-{encoding} bytes: "
                f"{excerpt(body)}"
            ) from e


async def gather_bounded(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``jobs`` with at most ``limit`` in flight; results in order.

    On the first failure the other jobs are cancelled (and awaited) and that error is raised
    as itself, not wrapped in an ExceptionGroup.
    """
    if limit < 1:
        raise ValueError(f"gather_bounded: limit must be at least 1, got {limit}")
    sem = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
