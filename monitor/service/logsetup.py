"""Logging for the CLI: readable text on a terminal, JSON lines in the journal, secrets redacted.

Only the CLI configures logging (`configure_logging`); every module logs through
`logging.getLogger(__name__)`.

Formats (`--log-format`):

- `text`: `2026-03-01 12:00:00,000 WARNING monitor.service.engine: message`, for people at a
  terminal.
- `json`: one JSON object per line (`time`, `level`, `priority`, `logger`, `message`, and
  `exception` with the traceback), for the journal and log shippers: a traceback stays one record.
- `auto` (default): `json` when stderr is connected to the journal, `text` otherwise.

Levels. tlog-monitor's own records from INFO, other libraries' from WARNING (APScheduler logs
every job run at INFO); `-v` shows every record from DEBUG.

The journal. systemd connects a service's stderr to journald and sets `JOURNAL_STREAM` to the
"<device>:<inode>" of that stream (systemd.exec(5)); the variable is inherited by children whose
stderr goes elsewhere, so stderr is compared with it (fstat), as sd_journal_stream_fd(3) advises.
On that stream journald reads a `<N>` prefix at the start of each line as the syslog priority
(sd-daemon(3), `SyslogLevelPrefix=yes`, the default) and strips it, so `journalctl -p warning`
filters by level. Every line we write there carries one: a text record's continuation lines (a
traceback) too, since journald splits entries at newlines.

Secrets. The handler passes every record of a third-party logger (apprise, urllib3, requests,
asyncio, ...) through the notify URL redactor (`monitor.notify.notifier`), so a URL token reaching
any of them is replaced by "***", whichever of their loggers it comes from. tlog-monitor's own
records (`monitor.*`) are left alone: they never hold a URL by construction (tests/integration/
test_secrets.py checks), and the redactor, which also blanks URL user names and hosts, would
otherwise mangle ordinary words and log URLs in them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from monitor.core.terminal import json_printable, printable
from monitor.notify.notifier import install_log_redaction

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "is_journal_stream",
    "syslog_priority",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormat(StrEnum):
    """`--log-format` choices."""

    AUTO = "auto"
    TEXT = "text"
    JSON = "json"


def syslog_priority(levelno: int) -> int:
    """The syslog priority (journald's PRIORITY) of a logging level: CRITICAL 2, ERROR 3,
    WARNING 4, INFO 6, DEBUG 7; levels between standard ones take the next lower standard one."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def is_journal_stream(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is the journald stream systemd gave this process (`JOURNAL_STREAM`)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's StringIO) or a closed one
        return False
    return st.st_dev == int(device) and st.st_ino == int(inode)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as `{"time", "level", "priority", "logger", "message"[, "exception"]}`."""
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "priority": syslog_priority(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        # json.dumps escapes C0 controls itself; DEL, C1 and bidi overrides too, here.
        return json_printable(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))


class _ThirdPartyRedaction(logging.Filter):
    """Applies the notify URL redactor to records from loggers outside `monitor`."""

    def __init__(self, redactor: logging.Filter) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "monitor" or record.name.startswith("monitor."):
            return True
        return self._redactor.filter(record)


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT` lines whose message cannot act on a terminal or forge a line: control and
    bidi characters are escaped (`monitor.core.terminal`); a traceback keeps its line breaks, each
    of its lines escaped."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _lines_printable(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _lines_printable(super().formatStack(stack_info))


def _lines_printable(text: str) -> str:
    return "\n".join(printable(line) for line in text.split("\n"))


class _QuietLibraries(logging.Filter):
    """Drops records below WARNING from loggers outside `monitor` (without `-v`): APScheduler
    alone logs two INFO lines per job run, some 23,000 a day, which would drown ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return record.name == "monitor" or record.name.startswith("monitor.")


class _PriorityPrefix(logging.Formatter):
    """Puts journald's `<N>` priority prefix before every line another formatter produces."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = self._inner.format(record)
        return "\n".join(prefix + line for line in text.split("\n"))


_INSTALLED: list[logging.Handler] = []
"""The handler `configure_logging` installed last (at most one)."""


def configure_logging(
    *,
    verbose: bool = False,
    fmt: LogFormat = LogFormat.AUTO,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler | None:
    """Send log records to `stream` (default stderr) in `fmt`: tlog-monitor's own from INFO,
    other libraries' (APScheduler, aiohttp, apprise, ...) from WARNING; with `verbose`, every
    record from DEBUG. Returns the handler.

    Like `logging.basicConfig`, it leaves a root logger that something else configured (an
    application embedding the CLI, a test runner) as it is, apart from adding the redaction
    filter to its handlers, and returns None. Calling it again replaces its own handler.
    """
    # The notify redactor holds the secrets of every configured notify URL (registered when
    # channels are loaded); on the handler it covers every third-party logger.
    redactor = install_log_redaction(())
    root = logging.getLogger()
    for old in _INSTALLED:
        root.removeHandler(old)
    _INSTALLED.clear()
    redaction = _ThirdPartyRedaction(redactor)
    if root.handlers:
        for foreign in root.handlers:
            if not any(isinstance(f, _ThirdPartyRedaction) for f in foreign.filters):
                foreign.addFilter(redaction)
        return None
    out = sys.stderr if stream is None else stream
    journal = is_journal_stream(out, environ)
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.JSON if journal else LogFormat.TEXT
    formatter: logging.Formatter = JsonFormatter() if fmt is LogFormat.JSON else TextFormatter()
    if journal:
        formatter = _PriorityPrefix(formatter)
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    if not verbose:
        handler.addFilter(_QuietLibraries())
    handler.addFilter(redaction)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    _INSTALLED.append(handler)
    return handler
