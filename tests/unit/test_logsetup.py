"""Log formats: JSON lines with journald priorities when stderr is the journal, text otherwise;
third-party log records redacted. The journal is detected the way systemd documents it
(JOURNAL_STREAM = "<device>:<inode>" of the stream), here with a real file as the stream."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest

from monitor.notify.notifier import install_log_redaction
from monitor.service.logsetup import (
    JsonFormatter,
    LogFormat,
    configure_logging,
    is_journal_stream,
    syslog_priority,
)

SECRET_URL = "json://127.0.0.1:9/hooks/logsetupSecret-9Xw"


@pytest.fixture
def clean_root() -> Iterator[Callable[[], None]]:
    """Call it to take every handler off the root logger (pytest adds its own only around the
    test call, after fixtures ran); they are put back afterwards."""
    root = logging.getLogger()
    saved: list[logging.Handler] = []
    level = root.level

    def strip() -> None:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            saved.append(handler)

    yield strip
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def journal_env(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (logging.INFO + 5, 6),
        (1, 7),
    ],
)
def test_syslog_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_journal_stream_is_recognised_only_for_the_stream_it_names(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        env = journal_env(a)
        assert is_journal_stream(a, env)
        assert not is_journal_stream(b, env)  # inherited variable, stderr redirected elsewhere
        assert not is_journal_stream(a, {})
        assert not is_journal_stream(a, {"JOURNAL_STREAM": "garbage"})


def test_json_formatter_keeps_a_traceback_in_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "monitor.x", logging.ERROR, __file__, 1, "failed: %s", ("a",), None
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "error" and doc["priority"] == 3 and doc["logger"] == "monitor.x"
    assert doc["message"] == "failed: a"
    assert "ValueError: boom" in doc["exception"]


def test_auto_under_the_journal_writes_prefixed_json(
    clean_root: Callable[[], None], tmp_path: Path
) -> None:
    clean_root()
    with (tmp_path / "journal").open("w+") as stream:
        handler = configure_logging(stream=stream, environ=journal_env(stream))
        assert handler is not None
        logging.getLogger("monitor.service.engine").warning("log %s failed", "rekor")
        logging.getLogger("monitor.service.engine").debug("not shown without -v")
        handler.flush()
        stream.seek(0)
        lines = stream.read().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("<4>{")
    doc = json.loads(lines[0][3:])
    assert doc["message"] == "log rekor failed" and doc["priority"] == 4


def test_text_under_the_journal_prefixes_every_line(
    clean_root: Callable[[], None], tmp_path: Path
) -> None:
    clean_root()
    with (tmp_path / "journal").open("w+") as stream:
        configure_logging(
            verbose=True, fmt=LogFormat.TEXT, stream=stream, environ=journal_env(stream)
        )
        log = logging.getLogger("monitor.service.daemon")
        try:
            raise RuntimeError("inner")
        except RuntimeError:
            log.exception("crashed")
        log.debug("detail")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[0].startswith("<3>") and "ERROR monitor.service.daemon: crashed" in lines[0]
    assert all(line.startswith("<3>") for line in lines[1:-1])  # the traceback stays an error
    assert lines[-1].startswith("<7>")


def test_terminal_gets_plain_text(clean_root: Callable[[], None], tmp_path: Path) -> None:
    clean_root()
    with (tmp_path / "tty").open("w+") as stream:
        configure_logging(stream=stream, environ={})
        logging.getLogger("monitor.cli.main").info("hello")
        stream.seek(0)
        text = stream.read()
    assert " INFO monitor.cli.main: hello" in text and not text.startswith("<")


def test_third_party_records_are_redacted_ours_are_not(
    clean_root: Callable[[], None], tmp_path: Path
) -> None:
    clean_root()
    install_log_redaction([SECRET_URL])
    with (tmp_path / "log").open("w+") as stream:
        configure_logging(verbose=True, fmt=LogFormat.JSON, stream=stream, environ={})
        logging.getLogger("requests.sessions").debug("GET %s", SECRET_URL)
        logging.getLogger("urllib3.poolmanager").debug("Redirecting to /hooks/logsetupSecret-9Xw")
        logging.getLogger("monitor.service.daemon").info("monitoring 127.0.0.1")
        stream.seek(0)
        text = stream.read()
    assert "logsetupSecret-9Xw" not in text
    assert text.count("***") >= 2
    assert "monitoring 127.0.0.1" in text


def test_a_configured_root_logger_is_left_alone_but_redacted(
    clean_root: Callable[[], None],
) -> None:
    clean_root()
    install_log_redaction([SECRET_URL])
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    keep = Keep()
    root.addHandler(keep)
    assert configure_logging(fmt=LogFormat.JSON) is None
    assert root.handlers == [keep]
    logging.getLogger("apprise.plugin").warning("posting to %s", SECRET_URL)
    assert seen == ["posting to ***"]


def test_libraries_log_warnings_only_unless_verbose(
    clean_root: Callable[[], None], tmp_path: Path
) -> None:
    clean_root()
    for verbose in (False, True):
        with (tmp_path / f"log-{verbose}").open("w+") as stream:
            configure_logging(verbose=verbose, fmt=LogFormat.TEXT, stream=stream, environ={})
            logging.getLogger("apscheduler.executors.default").info('Running job "poll"')
            logging.getLogger("aiohttp.access").info("GET /metrics")
            # A word no other test registers as a secret: the redactor is process-wide.
            logging.getLogger("apprise").warning("apprise: delivery-q7 late")
            logging.getLogger("monitor.service.daemon").info("polled rekor")
            stream.seek(0)
            text = stream.read()
        assert "polled rekor" in text and "delivery-q7 late" in text
        assert ("Running job" in text) is verbose and ("GET /metrics" in text) is verbose


def test_text_and_json_lines_escape_control_characters(
    clean_root: Callable[[], None], tmp_path: Path
) -> None:
    """A SAN with ESC, BEL, a newline (a forged second line) and a bidi override."""
    clean_root()
    san = (
        "evil\x1b]0;x\x07\n2026-01-01 00:00:00,000 INFO monitor.service.daemon: all clear\u202e\x9b"
    )
    for fmt in (LogFormat.TEXT, LogFormat.JSON):
        with (tmp_path / f"log-{fmt}").open("w+", encoding="utf-8") as stream:
            configure_logging(fmt=fmt, stream=stream, environ={})
            logging.getLogger("monitor.service.scanner").warning("signed by %s", san)
            stream.seek(0)
            text = stream.read()
        assert text.count("\n") == 1, text
        for ch in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert ch not in text
        if fmt is LogFormat.JSON:
            assert json.loads(text)["message"] == f"signed by {san}"
        else:
            assert "evil\\x1b]0;x\\x07\\x0a2026" in text
