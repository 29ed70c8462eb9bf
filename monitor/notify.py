"""Alert delivery: the SQLite outbox, sent through apprise, retried until delivered.

    engine:  store.add_alert(conn, alert, log_id, delivery_targets(...), now)
             one transaction: the alert and one pending `deliveries` row per delivery target
                 |
                 v
    Notifier.deliver_due()          one round at a time (an asyncio.Lock)
        store.due_deliveries(now)   pending rows whose next_try has come, oldest first
        group by target             each target's rows are sent in order, one at a time;
                                    targets run concurrently, at most `concurrency` at once
        send (apprise, timeout)  -> mark_delivered(id)          right after the send
                                 -> mark_failed(id, error, now + backoff(attempts))

Delivery targets. A `[[notify]]` channel may list several apprise URLs; each URL is its own
delivery target, named "<channel>#<id>" where id is the first 8 hex digits of the URL's SHA-256
("security#3fa2c1d0"; see `url_id`). The name is what the database stores: never the URL, which
carries secrets. One row per URL means a channel whose e-mail works and whose Slack webhook fails
re-sends only to Slack. The name follows the URL, not its position: removing, adding or
reordering a channel's URLs never re-points a pending delivery to another recipient. Messages
add the position for people: "security#3fa2c1d0 (URL 2 of 3)".

Guarantees.
- Never lost: the pending row is written in the alert's own transaction, and only
  `mark_delivered` ends it. Failures, timeouts, a target missing from the configuration and
  crashes all leave it pending, retried with exponential backoff (30 s doubling up to 1 h, minus
  up to 20 % jitter, by default).
- Not duplicated by us: one round runs at a time; a round takes each due row once; each row is
  marked right after its own send (the mark is shielded from cancellation).
- At-least-once at the transport, honestly: a receiver can see an alert twice when the process
  dies between a successful send and the commit of `mark_delivered`, or when a send is abandoned
  on our side (timeout, shutdown) although the receiver got it: apprise sends from worker threads
  that cannot be interrupted, so an abandoned send may still complete. Such a repeat is never
  silent: `mark_sending` records each send's start, and a retry of a row whose last send was cut
  off is titled "(possible repeat)". Every message names its alert id ("alert #42"). One
  process per database (the daemon; its delivery job runs with max_instances=1).

A target whose channel or URL is no longer configured (the channel was renamed or removed, or the
URL was removed or edited) is marked failed with an explanation and stays pending: a configuration
that has the URL again delivers it, and `pending_count` keeps it visible to health checks.

A send that times out defers the rest of that target's rows in the round (marked failed, "not
attempted"), so a hanging receiver costs one timeout per round, not one per alert.

Secrets. Nothing this module logs or stores contains a URL or a part of one: errors are built
here from the target name and apprise's status, and exception messages pass through the redactor.
apprise (and urllib3 beneath it) may log URLs, paths and tokens at debug level: a `logging.Filter`
on their loggers replaces every configured URL, and every userinfo, host, path segment and query
value of one, with "***". It is installed when a `Notifier` is built or `send_test` runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from apprise.manager_plugins import NotificationManager

from monitor.errors import MonitorError
from monitor.severity import Severity
from monitor.store import AsyncStore, Delivery

log = logging.getLogger(__name__)

TARGET_SEPARATOR = "#"
URL_ID_HEX = 8
MAX_BODY = 4000
MAX_TITLE = 200
DEFAULT_SEND_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 8
REDACTED = "***"
REPORT_HINT = "tlog-monitor report alerts"

# Loggers that may print URLs: apprise's own, and urllib3's request lines (path and query).
REDACTED_LOGGERS = ("apprise", "urllib3.connectionpool")

# Shorter URL components are not redacted on their own (they would blank out ordinary words);
# the whole URL and the password always are.
_MIN_SECRET_LEN = 4
# apprise query options whose values are settings, not secrets.
_PLAIN_OPTIONS = frozenset({"mode", "format", "overflow", "method", "verify", "rto", "cto"})


class NotifyError(MonitorError):
    """A channel could not be reached; the message names the target ("security#3fa2c1d0"), not
    its URL."""

    def __init__(self, message: str, failed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.failed = tuple(failed)
        """The delivery targets that failed."""


class ChannelConfig(Protocol):
    """What the notifier needs of a `[[notify]]` channel (`monitor.config.NotifyChannel`)."""

    @property
    def name(self) -> str: ...

    @property
    def urls(self) -> tuple[str, ...]: ...

    @property
    def min_severity(self) -> Severity: ...


# --- routing (pure) ----------------------------------------------------------------------


_URL_ID_RE = re.compile(rf"[0-9a-f]{{{URL_ID_HEX}}}")


def url_id(url: str) -> str:
    """A stable, non-secret identifier of an apprise URL: the first 8 hex digits of its SHA-256.

    Stable: the same URL gets the same id in every process and configuration, wherever it sits
    in the channel's list, so a pending delivery always goes to the URL it was written for.
    Non-secret: the id is stored in the database, logged and shown in reports, where the URL
    must never be. SHA-256 is one-way and 32 bits of it cannot be turned back into a URL (every
    id is shared by countless URLs), so it reveals nothing usable about the tokens, keys and
    passwords in the URL, which are far longer than 32 bits. The one thing any hash of a secret
    allows is checking a guess of the whole URL offline: a URL whose only secret is a weak,
    guessable password (the rest being known) could be confirmed from its id. Such a URL is
    weak with or without the id; keep URL secrets unguessable.
    Uniqueness is needed only among the URLs of one channel (at most 50, deduplicated by the
    configuration); a collision there is refused (`channel_targets`), never resolved by guessing.
    """
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:URL_ID_HEX]


def target_name(channel: str, url: str) -> str:
    """The delivery target of `url` in `channel`: "security#3fa2c1d0" (see `url_id`)."""
    return f"{channel}{TARGET_SEPARATOR}{url_id(url)}"


def parse_target(target: str) -> tuple[str, str]:
    """Inverse of `target_name`: (channel, URL id); ValueError when `target` is not
    "<channel>#<8 hex digits>" (for example an old positional name, "security#0")."""
    channel, sep, ident = target.rpartition(TARGET_SEPARATOR)
    if not sep or not channel or not _URL_ID_RE.fullmatch(ident):
        raise ValueError(
            f"notify: expected a delivery target like 'security#3fa2c1d0', got {target!r}"
        )
    return channel, ident


def channel_targets(channel: ChannelConfig) -> list[tuple[str, str]]:
    """(target name, URL) for every URL of `channel`, in configuration order.

    Raises NotifyError when two different URLs of the channel have the same id (a SHA-256
    prefix collision: under one chance in a million even for a channel of 50 URLs). The
    configuration must then change (for example an extra query option on one URL); delivering
    anyway could send one URL's alerts to the other.
    """
    targets: dict[str, str] = {}
    for position, url in enumerate(channel.urls, 1):
        target = target_name(channel.name, url)
        other = targets.setdefault(target, url)
        if other != url:
            first = list(targets).index(target) + 1
            raise NotifyError(
                f"channel {channel.name}: URL {first} and URL {position} of "
                f"{len(channel.urls)} have the same id ({target}); change one of them (for "
                "example add or reorder a query option) so alerts cannot go to the wrong one",
                (target,),
            )
    return list(targets.items())


def describe_target(target: str, position: int, count: int) -> str:
    """A target for people: "security#3fa2c1d0 (URL 2 of 3)"."""
    return f"{target} (URL {position} of {count})"


def delivery_targets(
    channels: Sequence[ChannelConfig], severity: Severity, only: Sequence[str] | None = None
) -> list[str]:
    """The delivery targets an alert of `severity` goes to, in configuration order.

    A channel receives the alert when its `min_severity` admits it (severity >= min_severity).
    `only` is the `notify` list of the watch rule that raised the alert: when it names channels,
    only those are candidates; None or empty means every channel (log-level alerts, and rules
    that name none). Names in `only` that match no channel are ignored here (configuration
    validation rejects them). Each admitted channel contributes one target per URL; NotifyError
    if two URLs of a channel share an id (`channel_targets`).
    """
    names = set(only) if only else None
    return [
        target
        for channel in channels
        if (names is None or channel.name in names) and severity >= channel.min_severity
        for target, _ in channel_targets(channel)
    ]


# --- messages (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A notification as sent: a one-line title and a plain-text body."""

    title: str
    body: str


# Details shown first when present, in this order; the rest follow sorted by key.
_PREFERRED_DETAILS = (
    "tree_id",
    "origin",
    "view",
    "views",
    "size",
    "old_size",
    "new_size",
    "high_water",
    "root",
    "old_root",
    "new_root",
    "index",
    "log_index",
    "entry_index",
    "uuid",
    "signer",
    "san",
    "issuer",
    "identity",
    "allowed_signers",
    "error",
)
_MAX_VALUE = 160
_MAX_SUMMARY = 1000
_MAX_LIST = 5


def _clean(text: str, limit: int) -> str:
    """One line: control characters (newlines included) become spaces; cut to `limit` chars.

    Summaries and details carry data from the log (certificate SANs, URIs), so nothing in them may
    break the line structure of a message or its title.
    """
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail_value(value: Any) -> str | None:
    """A short rendering of a detail value, or None when it is evidence for the full report
    (multi-line text such as signed notes and PEM certificates, nested objects, long lists)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return None if "\n" in value.strip() else _clean(value, _MAX_VALUE)
    if isinstance(value, list | tuple) and len(value) <= _MAX_LIST:
        items = [_detail_value(v) for v in value]
        if all(isinstance(i, str) for i in items) and not any(
            isinstance(v, list | tuple | dict) for v in value
        ):
            return _clean(", ".join(i for i in items if i is not None), _MAX_VALUE) or "(none)"
    return None


REPEAT_MARK = " (possible repeat)"
"""Appended to the title of a message whose earlier send was cut off before its outcome was
recorded: the receiver may already have it."""
REPEAT_NOTE = (
    "possible repeat: an earlier send of this alert was cut off (the monitor stopped or the "
    "send timed out) before it was recorded; if you already have alert #N, this is the same one"
)


def render_message(delivery: Delivery, max_body: int = MAX_BODY) -> Message:
    """The title and body for one delivery.

    Title: "[CRITICAL] split_view: rekor" (plus ", rule NAME" for watch alerts). Body: the
    alert's summary, the short details as "key: value" lines (evidence such as notes and
    certificates stays in the database), then the alert id and how to see it in full. The body
    is at most `max_body` characters; details that do not fit are counted, not cut mid-line.
    The message holds only alert data: never a channel URL.
    """
    severity = delivery.severity.upper()
    title = f"[{severity}] {delivery.kind}"
    if delivery.log_name:
        title += f": {delivery.log_name}"
    if delivery.rule:
        title += f", rule {delivery.rule}"
    if delivery.maybe_sent:
        title += REPEAT_MARK
    title = _clean(title, MAX_TITLE)

    lines: list[str] = []
    if delivery.log_name:
        lines.append(f"log: {_clean(delivery.log_name, _MAX_VALUE)}")
    if delivery.rule:
        lines.append(f"rule: {_clean(delivery.rule, _MAX_VALUE)}")
    details = delivery.details
    keys = [k for k in _PREFERRED_DETAILS if k in details]
    keys += sorted(k for k in details if k not in _PREFERRED_DETAILS and isinstance(k, str))
    omitted = 0
    for key in keys:
        value = _detail_value(details[key])
        if value is None:
            omitted += 1
        else:
            lines.append(f"{_clean(key, 40)}: {value}")

    summary = _clean(delivery.summary, min(_MAX_SUMMARY, max(1, max_body // 4)))
    footer = [
        f"alert #{delivery.alert_id}, {delivery.severity}, raised {delivery.created_at}",
        f"full record: {REPORT_HINT} --format json",
    ]
    if delivery.maybe_sent:
        footer.append(REPEAT_NOTE.replace("#N", f"#{delivery.alert_id}"))

    def assemble(shown: list[str], more: int) -> str:
        parts = [summary, ""]
        if shown:
            parts += [*shown, ""]
        if more:
            noun = "field" if more == 1 else "fields"
            parts += [f"({more} more detail {noun} in the full record)", ""]
        return "\n".join(parts + footer)

    shown = list(lines)
    body = assemble(shown, omitted)
    while len(body) > max_body and shown:
        shown.pop()
        body = assemble(shown, omitted + len(lines) - len(shown))
    if len(body) > max_body:  # only a tiny max_body gets here
        body = body[: max_body - 1] + "…"
    return Message(title=title, body=body)


def notify_type(severity: str) -> apprise.NotifyType:
    """apprise's message type for an alert severity: critical/high -> FAILURE, warning ->
    WARNING, info -> INFO. An unknown value (a newer database) is treated as critical."""
    try:
        sev = Severity(severity)
    except ValueError:
        return apprise.NotifyType.FAILURE
    if sev >= Severity.HIGH:
        return apprise.NotifyType.FAILURE
    if sev is Severity.WARNING:
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


# --- backoff (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """When to retry a failed delivery: `initial` doubling per failed attempt up to `cap`, then
    shortened by a random fraction up to `jitter` (so retries of many alerts spread out and the
    cap is never exceeded)."""

    initial: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial <= timedelta(0) or self.cap < self.initial:
            raise ValueError(
                f"notify backoff: expected 0 < initial <= cap, got {self.initial} and {self.cap}"
            )
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"notify backoff: expected 0 <= jitter < 1, got {self.jitter}")

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after a failure, given the `attempts` already recorded before it."""
        base = min(self.cap, self.initial * (1 << min(max(attempts, 0), 40)))
        factor: float = 1.0 - self.jitter * rng.random()
        return base * factor


# --- secrets in logs ---------------------------------------------------------------------


def url_secrets(url: str) -> set[str]:
    """The substrings of an apprise URL that must never appear in a log line or an error.

    The whole URL, its password, and its userinfo, host, path segments, fragment and query values
    of at least four characters, both as written and percent-decoded. Hosts are included because
    many apprise schemes put a token there (slack://TOKEN_A/TOKEN_B/TOKEN_C).
    """
    url = url.strip()
    found = {url}
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return found | {p for p in re.split(r"[/:@?&=#]+", url) if len(p) >= _MIN_SECRET_LEN}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    host = hostport.rsplit(":", 1)[0] if not hostport.endswith("]") else hostport
    candidates = [user, hostport, host, parts.fragment, *parts.path.split("/")]
    candidates += [value for key, value in query if key.lower() not in _PLAIN_OPTIONS]
    for text in candidates:
        for form in (text, unquote(text)):
            if len(form) >= _MIN_SECRET_LEN:
                found.add(form)
    for form in (password, unquote(password)):
        if form:
            found.add(form)
    return found


class RedactingFilter(logging.Filter):
    """Replaces every registered secret in log records with "***" (records are kept, not dropped).

    Thread-safe: apprise logs from its worker threads. The record's message is formatted, redacted
    and stored with its arguments cleared; exception and stack text are redacted too.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._local = threading.local()

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Drop the records of the current thread while the block runs (other threads, such as
        apprise's delivery workers, keep logging)."""
        self._local.muted = True
        try:
            yield
        finally:
            self._local.muted = False

    def add_urls(self, urls: Iterable[str]) -> None:
        """Register the secrets of `urls` (kept for the life of the process)."""
        with self._lock:
            new = set().union(*(url_secrets(u) for u in urls)) - self._secrets
            if not new:
                return
            self._secrets |= new
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self._local, "muted", False):
            return False
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format string: keep the raw text
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_REDACTOR = RedactingFilter()


def install_log_redaction(urls: Iterable[str]) -> RedactingFilter:
    """Register the secrets of `urls` and make sure the filter sits on apprise's loggers."""
    _REDACTOR.add_urls(urls)
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
    return _REDACTOR


# --- checking URLs -------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why apprise cannot send to `url`, or None when it can: the URL is parsed and its plugin
    built (no network), as a delivery would. The text never contains a part of the URL."""
    redactor = RedactingFilter()
    redactor.add_urls([url])
    scheme = url.partition("://")[0].lower()
    # apprise's own error lines would repeat the URL (partly masked) next to our message.
    with install_log_redaction(()).muted():
        try:
            plugin = apprise.Apprise.instantiate(url, suppress_exceptions=False)
        except Exception as e:  # noqa: BLE001 - a plugin's constructor raises anything
            reason = _clean(redactor.redact(str(e)), 200) or type(e).__name__
            if scheme in ("mailto", "mailtos") and "from" in reason.lower():
                reason += " (an e-mail URL needs a sender: add ?from=alerts@example.com)"
            return reason
    if plugin is None:
        if scheme not in NotificationManager():  # type: ignore[no-untyped-call]
            return f'unknown scheme "{_clean(scheme, 40)}"'
        return (
            f"apprise cannot parse it as a {scheme}:// URL (tokens missing or malformed), or "
            "that plugin is not available here"
        )
    return None


# --- sending -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    reason: str = ""
    timed_out: bool = False


async def _send(url: str, message: Message, kind: apprise.NotifyType, timeout: float) -> _Outcome:
    """Send one message to one apprise URL. Never raises for a delivery problem; the reason is
    built here (or redacted) and never contains the URL."""
    apobj = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    try:
        added = apobj.add(url)
    except Exception as e:  # noqa: BLE001 - a library error must become a recorded failure
        return _Outcome(False, f"apprise rejected the URL ({type(e).__name__})")
    if not added:
        return _Outcome(
            False, "apprise rejected the URL; check it with `tlog-monitor config check`"
        )
    try:
        # apprise's own deadline first; ours (a little later) in case a plugin ignores it.
        result = await asyncio.wait_for(
            apobj.async_notify(
                body=message.body,
                title=message.title,
                notify_type=kind,
                body_format=apprise.NotifyFormat.TEXT,
                timeout=timeout,
            ),
            timeout + 1.0,
        )
    except TimeoutError:
        return _Outcome(False, f"no answer within {timeout:g} s", timed_out=True)
    except Exception as e:  # noqa: BLE001 - a library error must become a recorded failure
        return _Outcome(False, f"{type(e).__name__}: {_REDACTOR.redact(str(e))[:300]}")
    if result:
        return _Outcome(True)
    status = getattr(getattr(result, "status", None), "name", "failure").lower()
    if status == "timeout":
        return _Outcome(False, f"no answer within {timeout:g} s", timed_out=True)
    return _Outcome(False, f"delivery failed (apprise reported {status})")


@dataclass(frozen=True)
class _Target:
    """A configured delivery target: its URL (secret) and how messages name it (not secret)."""

    url: str = field(repr=False)
    label: str


@dataclass(frozen=True)
class DeliveryRound:
    """What one `deliver_due` round did."""

    delivered: int
    failed: int
    """Failed, deferred or unroutable deliveries (all still pending)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """Delivers pending alerts from the outbox through apprise (see the module docstring).

    `channels` is the `[[notify]]` configuration; `store` the daemon's AsyncStore. `clock`,
    `backoff`, `rng`, `send_timeout` (seconds per send) and `concurrency` (targets sent to at
    once) exist for tests and tuning.
    """

    def __init__(
        self,
        channels: Sequence[ChannelConfig],
        store: AsyncStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
        backoff: Backoff | None = None,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_body: int = MAX_BODY,
        rng: random.Random | None = None,
    ) -> None:
        if send_timeout <= 0 or concurrency < 1:
            raise ValueError("notifier: expected send_timeout > 0 and concurrency >= 1")
        self._store = store
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._send_timeout = send_timeout
        self._concurrency = concurrency
        self._max_body = max_body
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._lock = asyncio.Lock()
        self._targets: dict[str, _Target] = {}
        self._channel_sizes: dict[str, int] = {}
        self.set_channels(channels)

    def set_channels(self, channels: Sequence[ChannelConfig]) -> None:
        """Use a new channel configuration (a reload) from the next round on.

        Pending deliveries follow their URL (targets are named by URL id, not position), so
        removing or reordering URLs never sends one to a different recipient. NotifyError (and
        the previous configuration kept) when two URLs of a channel share an id.
        """
        targets: dict[str, _Target] = {}
        sizes: dict[str, int] = {}
        for channel in channels:
            named = channel_targets(channel)
            sizes[channel.name] = len(named)
            for position, (target, url) in enumerate(named, 1):
                targets[target] = _Target(url, describe_target(target, position, len(named)))
        install_log_redaction(url for channel in channels for url in channel.urls)
        self._targets = targets
        self._channel_sizes = sizes

    @property
    def targets(self) -> tuple[str, ...]:
        """Every configured delivery target."""
        return tuple(self._targets)

    def _unrouted(self, target: str) -> str:
        """Why `target` cannot be delivered now: no such channel, or no URL with its id."""
        channel, _, ident = target.rpartition(TARGET_SEPARATOR)
        size = self._channel_sizes.get(channel)
        if size is None:
            why = f"no channel {channel!r}"
        else:
            noun = "URL" if size == 1 else "URLs"
            why = f"channel {channel} has {size} {noun}, none with this id"
            if not _URL_ID_RE.fullmatch(ident):
                why += " (a positional name from an older tlog-monitor)"
        return (
            f"channel {target}: not in the configuration ({why}); kept pending until the "
            "channel and URL are configured again"
        )

    async def deliver_due(
        self, limit: int = 100, *, send_timeout: float | None = None
    ) -> DeliveryRound:
        """Send up to `limit` due deliveries once each and record every outcome.

        Rounds never overlap: a second caller waits for the first round to finish. A store error
        is raised after every started send has been recorded. `send_timeout` (seconds) replaces
        the notifier's own for this round (the daemon's last round before exiting is short).
        """
        timeout = self._send_timeout if send_timeout is None else send_timeout
        async with self._lock:
            store = self._store.store
            now = self._clock()
            due = await self._store.call(
                store.due_deliveries, now, limit, latest=now + self._backoff.cap
            )
            if not due:
                return DeliveryRound(0, 0)
            by_target: dict[str, list[Delivery]] = {}
            for delivery in due:
                by_target.setdefault(delivery.channel, []).append(delivery)
            targets = self._targets
            gate = asyncio.Semaphore(self._concurrency)
            outcomes = await asyncio.gather(
                *(
                    self._deliver_target(target, rows, targets.get(target), gate, timeout)
                    for target, rows in by_target.items()
                ),
                return_exceptions=True,
            )
            delivered = failed = 0
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                delivered += outcome.delivered
                failed += outcome.failed
            if failed:
                log.warning("delivery round: %d delivered, %d failed", delivered, failed)
            else:
                log.info("delivery round: %d delivered", delivered)
            return DeliveryRound(delivered, failed)

    async def _deliver_target(
        self,
        target: str,
        rows: list[Delivery],
        route: _Target | None,
        gate: asyncio.Semaphore,
        timeout: float,
    ) -> DeliveryRound:
        delivered = failed = 0
        async with gate:
            for position, delivery in enumerate(rows):
                if route is None:
                    await self._failed(delivery, self._unrouted(target))
                    failed += 1
                    continue
                message = render_message(delivery, self._max_body)
                await asyncio.shield(
                    self._store.call(self._store.store.mark_sending, delivery.id, self._clock())
                )
                outcome = await _send(route.url, message, notify_type(delivery.severity), timeout)
                if outcome.ok:
                    await self._delivered(delivery)
                    delivered += 1
                    continue
                await self._failed(
                    delivery,
                    f"channel {route.label}: {outcome.reason}",
                    maybe_sent=outcome.timed_out,
                )
                failed += 1
                if outcome.timed_out:
                    for later in rows[position + 1 :]:
                        await self._failed(
                            later,
                            f"channel {route.label}: not attempted: an earlier delivery to this "
                            "target timed out in the same round",
                        )
                        failed += 1
                    break
        return DeliveryRound(delivered, failed)

    async def _delivered(self, delivery: Delivery) -> None:
        # Shielded: once the receiver has the message, a cancelled round must still record it.
        await asyncio.shield(
            self._store.call(self._store.store.mark_delivered, delivery.id, self._clock())
        )
        log.info("alert #%d delivered to %s", delivery.alert_id, delivery.channel)

    async def _failed(self, delivery: Delivery, error: str, *, maybe_sent: bool = False) -> None:
        # `error` is built from the target name and redacted reasons; redacting it again could
        # blank a channel name that happens to equal a URL component.
        next_try = self._clock() + self._backoff.delay(delivery.attempts, self._rng)
        await asyncio.shield(
            self._store.call(
                self._store.store.mark_failed, delivery.id, error, next_try, maybe_sent=maybe_sent
            )
        )
        log.warning(
            "alert #%d not delivered (attempt %d): %s; next try at %s",
            delivery.alert_id,
            delivery.attempts + 1,
            error,
            next_try.isoformat(timespec="seconds"),
        )


async def send_test(channel: ChannelConfig, *, timeout: float = DEFAULT_SEND_TIMEOUT) -> None:
    """Send a test message to every URL of `channel` (for `tlog-monitor notify test`).

    Every URL is tried; raises NotifyError naming each target that failed
    ("security#3fa2c1d0 (URL 2 of 3): ..."), or before sending when two URLs share an id.
    """
    install_log_redaction(channel.urls)
    if not channel.urls:
        raise NotifyError(f"channel {channel.name}: no URLs configured")
    targets = channel_targets(channel)
    failures: list[str] = []
    failed: list[str] = []
    for position, (target, url) in enumerate(targets, 1):
        label = describe_target(target, position, len(targets))
        message = Message(
            title=f"[TEST] tlog-monitor: channel {_clean(channel.name, 100)}",
            body=(
                f"A test message from tlog-monitor to {_clean(label, 200)}.\n"
                "Alerts for this channel will arrive like this. No action is needed."
            ),
        )
        outcome = await _send(url, message, apprise.NotifyType.INFO, timeout)
        if outcome.ok:
            log.info("test message delivered to %s", label)
        else:
            failed.append(target)
            failures.append(f"{label}: {outcome.reason}")
    if failures:
        raise NotifyError(f"channel {channel.name}: " + "; ".join(failures), failed)
