"""Alert delivery: the SQLite outbox, sent through apprise, retried until delivered.

    engine:  store.add_alert(conn, alert, log_id, delivery_targets(...), now)
             one transaction: the alert and one pending `deliveries` row per delivery target
                 |
                 v
    Notifier.deliver_due()          one round at a time (an asyncio.Lock)
        store.due_groups(now)       due rows grouped by target, kind, severity, log and rule;
                                    most severe first, then oldest; each group's count and
                                    oldest few rows (a flood is never loaded whole)
        per target                  a group of <= DIGEST_AFTER rows: one message per row;
                                    a larger group: one digest standing for all of its rows;
                                    sent in order, one at a time; targets run concurrently,
                                    at most `concurrency` at once; paused targets skipped
        send (apprise, timeout)  -> mark_delivered(id) / mark_group_delivered(group)
                                 -> mark_failed(...) / mark_group_failed(...), the rest of the
                                    target's messages deferred, the target paused until then

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
  marked right after its own send (the mark is shielded from cancellation); a digest marks every
  row it stands for (exactly the rows it counted: see `DueGroup`) in one transaction.
- Floods summarised, criticals first: however many alerts are due, a round sends at most one
  message per group beyond DIGEST_AFTER alerts, and the most severe go out first.
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

A send that fails or times out defers the rest of that target's messages in the round (marked
failed, "not attempted") and pauses the target until its retry is due, so a hanging receiver
costs one timeout per round and a rate-limited one (HTTP 429) gets one refused message, not one
per alert; other targets go on. apprise does not expose a receiver's Retry-After, so the backoff
is the pace.

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
import shlex
import socket
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from apprise.manager_plugins import NotificationManager

from monitor.core.alerts import ON_CALL, AlertKind, doc_link
from monitor.core.errors import MonitorError
from monitor.core.severity import Severity
from monitor.core.terminal import printable
from monitor.store.database import AsyncStore, Delivery, DueGroup

log = logging.getLogger(__name__)

TARGET_SEPARATOR = "#"
URL_ID_HEX = 8
MAX_BODY = 4000
MAX_TITLE = 200
DEFAULT_SEND_TIMEOUT = 60.0
DEFAULT_CONCURRENCY = 8
REDACTED = "***"

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
    """What the notifier needs of a `[[notify]]` channel
    (`monitor.config.settings.NotifyChannel`)."""

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


def _escape_other(ch: str) -> str:
    if not unicodedata.category(ch).startswith("C"):
        return ch
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _clean(text: str, limit: int) -> str:
    """One line, safe to show: control, bidi and other format characters (newlines included)
    are escaped as `monitor.core.terminal.printable` does (`\\x1b`, `\\u202e`), runs of spaces
    become one; cut to `limit` chars.

    Summaries and details carry data from the log (certificate SANs, URIs, servers' errors), so
    nothing in them may break the line structure of a message or its title, or act on the
    terminal or mail client that shows it; escaping (not dropping) shows that it was there.
    """
    text = "".join(_escape_other(ch) for ch in printable(text))
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


@dataclass(frozen=True)
class MessageOrigin:
    """Where messages come from: the host that raised the alert, and the configuration file the
    commands in a message's footer need (`report alerts --id N`, `evidence export N`)."""

    host: str
    config_path: Path | None = None
    """Absolute; None leaves `--config` out of the commands (its default, ./config.toml)."""

    @classmethod
    def local(cls, config_path: Path | None = None) -> MessageOrigin:
        """This machine (`socket.gethostname()`) running the configuration at `config_path`."""
        try:
            host = socket.gethostname()
        except OSError:  # no name configured: say so rather than name nothing
            host = ""
        return cls(host or "(unknown host)", config_path)

    def command(self, *words: str) -> str:
        """A tlog-monitor command line for this configuration, quoted for a POSIX shell."""
        parts = ["tlog-monitor"]
        if self.config_path is not None:
            parts += ["--config", shlex.quote(str(self.config_path))]
        # The path is the operator's own, but a control character in it must not act on the
        # terminal the command is copied from.
        return printable(" ".join([*parts, *words]))

    def report_command(self, alert_id: int) -> str:
        """The command that prints alert `alert_id` in full, evidence included."""
        return self.command("report", "alerts", "--id", str(alert_id), "--format", "json")

    def evidence_command(self, alert_id: int) -> str:
        """The command that writes split_view alert `alert_id`'s portable evidence to a file."""
        return self.command("evidence", "export", str(alert_id), ">", f"split-view-{alert_id}.json")


# Identity fields of a watch alert shown in full, in this order (keys of `details.identity`,
# see `monitor.core.watch.match.identity_summary`): who signed, vouched by whom, from where, what.
_IDENTITY_FIELDS = (
    "build_signer_uri",
    "sans",
    "issuer",
    "source_repository_uri",
    "source_repository_ref",
    "build_trigger",
    "artifact_digest",
)
_WATCH_KINDS = frozenset(
    {
        AlertKind.UNEXPECTED_SIGNER.value,
        AlertKind.IDENTITY_SEEN.value,
        AlertKind.CERTIFICATE_ISSUED.value,
        AlertKind.UNLOGGED_CERTIFICATE.value,
    }
)
# Details a watch alert shows among its key facts, not again among the short details.
_WATCH_KEY_DETAILS = frozenset({"log_index", "identity", "reasons"})
_MAX_KEY_VALUE = 1000
"""A key fact (a SAN, a Build Signer URI, a reason) is shown whole up to this many characters:
a real one is far shorter; a longer one can only be crafted, and the full record keeps it."""
_MIN_KEY_VALUE = 200
"""What a key fact is cut to when the body would otherwise exceed its limit."""
_MAX_REASONS = 16
"""A match has a reason per matcher of its rule, plus trust and allowed_signers: a handful."""


def _key_value(value: Any, limit: int) -> str | None:
    """A key fact's value on one line, or None when absent."""
    if value is None or value in ("", [], ()):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return _clean(", ".join(str(v) for v in value), limit)
    return _clean(str(value), limit)


def _key_facts(delivery: Delivery, limit: int) -> list[str]:
    """The lines that say who and what a watch alert is about, in full (up to `limit` chars a
    value): the log index to look the entry up by, the signer's identity, the artifact digest,
    and why the signer is not allowed. Other kinds' facts are their short details."""
    if delivery.kind not in _WATCH_KINDS:
        return []
    details = delivery.details
    lines: list[str] = []
    index = _key_value(details.get("log_index"), limit)
    if index is not None:
        lines.append(f"log_index: {index}")
    identity = details.get("identity")
    if isinstance(identity, dict):
        fields = list(_IDENTITY_FIELDS)
        if not identity.get("sans"):  # a bare key: its fingerprint is the identity
            fields.append("key_fingerprint")
        for key in fields:
            value = _key_value(identity.get(key), limit)
            if value is not None:
                lines.append(f"{key}: {value}")
    reasons = details.get("reasons")
    if isinstance(reasons, list | tuple):
        lines += [f"reason: {_clean(str(r), limit)}" for r in reasons[:_MAX_REASONS]]
        if len(reasons) > _MAX_REASONS:
            lines.append(f"({len(reasons) - _MAX_REASONS} more reasons in the full record)")
    return lines


def _title(item: Delivery | DueGroup, suffix: str = "") -> str:
    """A message's title: "[HIGH] kind: log, rule NAME" plus `suffix` and the repeat mark."""
    title = f"[{item.severity.upper()}] {item.kind}"
    if item.log_name:
        title += f": {item.log_name}"
    if item.rule:
        title += f", rule {item.rule}"
    title += suffix
    if item.maybe_sent:
        title += REPEAT_MARK
    return _clean(title, MAX_TITLE)


def _header(item: Delivery | DueGroup, origin: MessageOrigin) -> list[str]:
    """The log, host and rule lines of a message's body."""
    header: list[str] = []
    if item.log_name:
        header.append(f"log: {_clean(item.log_name, _MAX_VALUE)}")
    header.append(f"host: {_clean(origin.host, _MAX_VALUE)}")
    if item.rule:
        header.append(f"rule: {_clean(item.rule, _MAX_VALUE)}")
    return header


def _alert_kind(kind: str) -> AlertKind | None:
    """`kind` as an AlertKind; None for a kind from a newer tlog-monitor sharing the database."""
    try:
        return AlertKind(kind)
    except ValueError:
        return None


def render_message(
    delivery: Delivery, max_body: int = MAX_BODY, *, origin: MessageOrigin | None = None
) -> Message:
    """The title and body for one delivery.

    Title: "[CRITICAL] split_view: rekor" (plus ", rule NAME" for watch alerts). Body: the
    alert's summary (what happened); the log, the host that raised it (`origin`, this machine by
    default) and the rule; for watch alerts the log index, the signer's identity, the artifact
    digest and the reasons in full; the short details as "key: value" lines (evidence such as
    notes and certificates stays in the database); what to do (`monitor.core.alerts.ON_CALL`) and
    the section of docs/alerts.md; for split_view the `evidence export` command; then the alert
    id and the `report alerts --id N` command that shows it in full. The body is at most
    `max_body` characters: short details that do not fit are counted, then key facts are
    shortened, never the footer. Text from logs and certificates is escaped (`_clean`). The
    message holds only alert data: never a channel URL.
    """
    origin = origin or MessageOrigin.local()
    title = _title(delivery)
    header = _header(delivery, origin)
    details = delivery.details
    skip = _WATCH_KEY_DETAILS if delivery.kind in _WATCH_KINDS else frozenset()
    keys = [k for k in _PREFERRED_DETAILS if k in details and k not in skip]
    keys += sorted(
        k for k in details if k not in _PREFERRED_DETAILS and isinstance(k, str) and k not in skip
    )
    lines: list[str] = []
    omitted = 0
    for key in keys:
        value = _detail_value(details[key])
        if value is None:
            omitted += 1
        else:
            lines.append(f"{_clean(key, 40)}: {value}")

    kind = _alert_kind(delivery.kind)
    todo = [
        f"to do: {ON_CALL[kind]}" if kind else "to do: see docs/alerts.md",
        f"guide: {doc_link(kind)}" if kind else "guide: docs/alerts.md",
    ]
    if kind is AlertKind.SPLIT_VIEW:
        todo.append(f"evidence: {origin.evidence_command(delivery.alert_id)}")
    footer = [
        *todo,
        "",
        f"alert #{delivery.alert_id}, {delivery.severity}, raised {delivery.created_at}",
        f"full record: {origin.report_command(delivery.alert_id)}",
    ]
    if delivery.maybe_sent:
        footer.append(REPEAT_NOTE.replace("#N", f"#{delivery.alert_id}"))

    def assemble(summary: str, facts: list[str], shown: list[str], more: int) -> str:
        parts = [summary, "", *header, *facts, *shown, ""]
        if more:
            noun = "field" if more == 1 else "fields"
            parts += [f"({more} more detail {noun} in the full record)", ""]
        return "\n".join(parts + footer)

    summary = _clean(delivery.summary, min(_MAX_SUMMARY, max(1, max_body // 4)))
    facts = _key_facts(delivery, _MAX_KEY_VALUE)
    shown = list(lines)
    body = assemble(summary, facts, shown, omitted)
    while len(body) > max_body and shown:
        shown.pop()
        body = assemble(summary, facts, shown, omitted + len(lines) - len(shown))
    more = omitted + len(lines)
    if len(body) > max_body:
        facts = _key_facts(delivery, _MIN_KEY_VALUE)
        body = assemble(summary, facts, shown, more)
    if len(body) > max_body:
        # What is left too long is the head (summary, facts): cut it, keep the footer whole.
        tail = "\n" + "\n".join(footer)
        room = max_body - len(tail)
        head = assemble(summary, facts, shown, more)[: -len(tail)]
        body = head[: room - 1] + "…" + tail if room > 1 else body
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


# --- digests (pure) ----------------------------------------------------------------------

DIGEST_AFTER = 10
"""A round sends up to this many due alerts of one target, kind, severity, log and rule as
separate messages; a group with more becomes one digest message that stands for all of them."""
DIGEST_MARK = "alerts in this message: "
"""Starts the digest line that lists the ids of every alert the message stands for."""
_DIGEST_LINE = 300


def _id_ranges(ranges: Sequence[tuple[int, int]], more: bool) -> str:
    text = ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in ranges)
    return text + (", … (more: list them all)" if more else "")


def render_digest(
    group: DueGroup, max_body: int = MAX_BODY, *, origin: MessageOrigin | None = None
) -> Message:
    """One message standing for every due alert of `group` (many alerts of one kind, severity,
    log and rule for one target).

    Title: "[HIGH] unexpected_signer: rekor, rule release (5000 alerts)". Body: how many, the
    log, host and rule; one line per alert for the oldest few (id, time, summary); the ids of
    every alert it stands for, as ranges; the `report alerts` command that lists them all and
    the one that shows one in full; what to do and the guide. At most `max_body` characters:
    alert lines that do not fit are dropped (the id ranges and commands still cover them).
    """
    origin = origin or MessageOrigin.local()
    count = group.count
    title = _title(group, f" ({count} alerts)")

    first = group.deliveries[0] if group.deliveries else None
    where = f" on log {_clean(group.log_name, _MAX_VALUE)}" if group.log_name else ""
    head = [f"{count} {_clean(group.kind, 60)} alerts{where} in one message (a digest)", ""]
    head += _header(group, origin)
    lines = [
        f"alert #{d.alert_id}, raised {d.created_at}: {_clean(d.summary, _DIGEST_LINE)}"
        for d in group.deliveries
    ]
    words = ["report", "alerts", "--kind", shlex.quote(group.kind)]
    if group.log_name:
        words += ["--log", shlex.quote(group.log_name)]
    if first is not None:
        words += ["--since", shlex.quote(first.created_at)]
    ranges = _id_ranges(group.alert_ranges, group.more_ranges)
    footer = [f"list them all: {origin.command(*words)}"]
    if first is not None:
        footer.append(f"one in full: {origin.report_command(first.alert_id)}")
    kind = _alert_kind(group.kind)
    if kind is not None:
        footer += [f"to do: {ON_CALL[kind]}", f"guide: {doc_link(kind)}"]
    if group.maybe_sent:
        footer.append(
            "possible repeat: an earlier send of some of these alerts was cut off (the monitor "
            "stopped or the send timed out) before it was recorded; you may have them already"
        )

    def assemble(shown: int, ranges: str) -> str:
        parts = [*head, ""]
        if shown:
            parts += [f"the oldest {shown} of {count}:", *lines[:shown]]
        if shown < count:
            parts.append(f"({count - shown} more not shown here)")
        parts += ["", f"{DIGEST_MARK}{ranges}", *footer]
        return "\n".join(parts)

    shown = len(lines)
    body = assemble(shown, ranges)
    while len(body) > max_body and shown:
        shown -= 1
        body = assemble(shown, ranges)
    # Then whole ranges go, from the end: a range cut mid-number would name another alert.
    kept = list(group.alert_ranges)
    while len(body) > max_body and len(kept) > 1:
        kept.pop()
        body = assemble(0, _id_ranges(kept, True))
    if len(body) > max_body:  # only a tiny max_body gets here
        body = body[: max_body - 1] + "…"
    return Message(title=title, body=body)


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
    """What one `deliver_due` round did, counted in deliveries (one alert to one target): a
    digest message counts every alert it stands for."""

    delivered: int
    failed: int
    """Failed, deferred or unroutable deliveries (all still pending)."""
    messages: int = field(default=0, compare=False)
    """Messages the receivers accepted (a digest is one)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """Delivers pending alerts from the outbox through apprise (see the module docstring).

    `channels` is the `[[notify]]` configuration; `store` the daemon's AsyncStore. `clock`,
    `backoff`, `rng`, `send_timeout` (seconds per send) and `concurrency` (targets sent to at
    once) exist for tests and tuning. `origin` is what messages name as the host that raised an
    alert and the configuration their commands use (`MessageOrigin.local()` by default).
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
        origin: MessageOrigin | None = None,
    ) -> None:
        if send_timeout <= 0 or concurrency < 1:
            raise ValueError("notifier: expected send_timeout > 0 and concurrency >= 1")
        self._store = store
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._send_timeout = send_timeout
        self._concurrency = concurrency
        self._max_body = max_body
        self._origin = origin or MessageOrigin.local()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._lock = asyncio.Lock()
        self._targets: dict[str, _Target] = {}
        self._channel_sizes: dict[str, int] = {}
        self._paused: dict[str, datetime] = {}
        """Targets whose last send failed, and when their retry is due: skipped until then."""
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
        """Send the due deliveries, most severe first, then oldest first, and record every
        outcome.

        Each target's due alerts are grouped by kind, severity, log and rule; a group of up to
        `DIGEST_AFTER` alerts is sent as one message each, a larger one as a single digest that
        stands for all of them (`render_digest`). At most `limit` rows are read per round, so at
        most `limit` messages are sent. A target whose send fails gets nothing more this round
        and is skipped by later rounds until its retry is due (`_paused`): a receiver that
        refuses (a 429 rate limit included) or hangs slows only itself.

        Rounds never overlap: a second caller waits for the first round to finish. A store error
        is raised after every started send has been recorded. `send_timeout` (seconds) replaces
        the notifier's own for this round (the daemon's last round before exiting is short).
        """
        timeout = self._send_timeout if send_timeout is None else send_timeout
        async with self._lock:
            now = self._clock()
            # A pause further ahead than the backoff cap was set before the clock went back:
            # it ends now, as such a row's retry does (`Store.due_deliveries`).
            cap = now + self._backoff.cap
            self._paused = {t: until for t, until in self._paused.items() if now < until <= cap}
            groups = await self._store.outbox.due_groups(
                now,
                limit,
                latest=cap,
                sample=DIGEST_AFTER,
                exclude=sorted(self._paused),
            )
            if not groups:
                return DeliveryRound(0, 0)
            by_target: dict[str, list[Delivery | DueGroup]] = {}
            for group in groups:
                items = by_target.setdefault(group.channel, [])
                if group.count > DIGEST_AFTER:
                    items.append(group)
                else:
                    items.extend(group.deliveries)
            targets = self._targets
            gate = asyncio.Semaphore(self._concurrency)
            outcomes = await asyncio.gather(
                *(
                    self._deliver_target(target, items, targets.get(target), gate, timeout)
                    for target, items in by_target.items()
                ),
                return_exceptions=True,
            )
            delivered = failed = messages = 0
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                delivered += outcome.delivered
                failed += outcome.failed
                messages += outcome.messages
            if failed:
                log.warning(
                    "delivery round: %d delivered in %d messages, %d failed",
                    delivered,
                    messages,
                    failed,
                )
            else:
                log.info("delivery round: %d delivered in %d messages", delivered, messages)
            return DeliveryRound(delivered, failed, messages)

    async def _deliver_target(
        self,
        target: str,
        items: list[Delivery | DueGroup],
        route: _Target | None,
        gate: asyncio.Semaphore,
        timeout: float,
    ) -> DeliveryRound:
        delivered = failed = messages = 0
        async with gate:
            for position, item in enumerate(items):
                if route is None:
                    failed += await self._failed(item, self._unrouted(target))
                    continue
                if isinstance(item, DueGroup):
                    message = render_digest(item, self._max_body, origin=self._origin)
                else:
                    message = render_message(item, self._max_body, origin=self._origin)
                await asyncio.shield(self._store.outbox.mark_sending(item, self._clock()))
                outcome = await _send(route.url, message, notify_type(item.severity), timeout)
                if outcome.ok:
                    delivered += await self._delivered(item)
                    messages += 1
                    continue
                failed += await self._failed(
                    item,
                    f"channel {route.label}: {outcome.reason}",
                    maybe_sent=outcome.timed_out,
                    pause=target,
                )
                # A receiver that refused, failed or hung gets nothing more this round: hammering
                # a rate-limited or broken receiver only gets more refused, and a hang costs one
                # timeout per round, not one per message.
                what = "timed out" if outcome.timed_out else "failed"
                for later in items[position + 1 :]:
                    failed += await self._failed(
                        later,
                        f"channel {route.label}: not attempted: an earlier delivery to this "
                        f"target {what} in the same round",
                    )
                break
        return DeliveryRound(delivered, failed, messages)

    async def _delivered(self, item: Delivery | DueGroup) -> int:
        """Record a successful send; returns how many deliveries it ended."""
        # Shielded: once the receiver has the message, a cancelled round must still record it.
        count = await asyncio.shield(self._store.outbox.mark_delivered(item, self._clock()))
        if isinstance(item, DueGroup):
            first = item.deliveries[0].alert_id if item.deliveries else 0
            log.info(
                "%d %s alerts (oldest #%d) delivered to %s in one digest",
                count,
                item.kind,
                first,
                item.channel,
            )
            return count
        log.info("alert #%d delivered to %s", item.alert_id, item.channel)
        return count

    async def _failed(
        self,
        item: Delivery | DueGroup,
        error: str,
        *,
        maybe_sent: bool = False,
        pause: str | None = None,
    ) -> int:
        """Record a failed (or deferred) send and schedule its retry; with `pause`, that target
        is skipped until then. Returns how many deliveries it covered."""
        # `error` is built from the target name and redacted reasons; redacting it again could
        # blank a channel name that happens to equal a URL component.
        if isinstance(item, DueGroup):
            attempts = max((d.attempts for d in item.deliveries), default=0)
        else:
            attempts = item.attempts
        next_try = self._clock() + self._backoff.delay(attempts, self._rng)
        if pause is not None:
            self._paused[pause] = next_try
        count = await asyncio.shield(
            self._store.outbox.mark_failed(item, error, next_try, maybe_sent=maybe_sent)
        )
        if isinstance(item, DueGroup):
            what = f"{count} {item.kind} alerts (one digest)"
        else:
            what = f"alert #{item.alert_id}"
        log.warning(
            "%s not delivered (attempt %d): %s; next try at %s",
            what,
            attempts + 1,
            error,
            next_try.isoformat(timespec="seconds"),
        )
        return count


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
