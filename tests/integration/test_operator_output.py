"""Terminal-safe output (issue 12, item 11): a certificate whose SAN carries ESC sequences, BEL,
a carriage return and a bidi override is logged by the sandbox and scanned; `check`'s output,
the daemon's log (text and JSON) and `report` tables and CSV show those characters escaped,
never raw. Real sandbox, real subprocesses; the printing helper itself has a property test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.terminal import json_printable, printable
from monitor.sandbox import Sandbox
from tests.integration.receivers import HttpReceiver
from tests.integration.test_engine import Env
from tests.integration.test_scanner import GITHUB, REPO, scan_config

ROOT = Path(__file__).resolve().parents[2]
# Set the window title, ring the bell, clear the screen, return to the line's start, delete (a
# URI SAN is ASCII: C1 controls and bidi overrides are covered by the property tests below).
HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\r\x7fyml"
EVIL_SAN = f"{REPO}/.github/workflows/{HOSTILE}@refs/heads/main"
ESCAPED = "evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x7fyml"
RAW = ("\x1b", "\x07", "\r", "\x7f", "\u202e", "\x9b")


def assert_terminal_safe(where: str, text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"{ch!r} reached {where}"


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    scan_config(e)
    try:
        yield e
    finally:
        await receiver.stop()


async def cli(env: Env, *args: str, run_for: float | None = None) -> tuple[int, str, str]:
    """`tlog-monitor --config CONFIG ARGS...` as a subprocess; with `run_for`, SIGTERM after that
    many seconds. Output decoded without touching any character."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", "--config", str(env.config_path), *args,
        cwd=env.dir,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    if run_for is not None:
        await asyncio.sleep(run_for)
        proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


async def test_certificate_control_characters_never_reach_check_or_reports(env: Env) -> None:
    await env.sandbox.append("tiles", 3)
    await env.sandbox.append("tiles", 1, {"uri": EVIL_SAN, "issuer": GITHUB})

    code, out, err = await cli(env, "check")
    assert code == 1, err
    assert "unexpected_signer" in out and ESCAPED in out, out
    assert_terminal_safe("check", out + err)

    reports = [(what, fmt) for what in ("matches", "alerts") for fmt in ("table", "csv")]
    results = await asyncio.gather(*(cli(env, "report", w, "--format", f) for w, f in reports))
    for (what, fmt), (code, out, err) in zip(reports, results, strict=True):
        assert code == 0, err
        if what == "matches" or fmt == "csv":  # the alerts table cuts long summaries
            assert "\\x1b" in out, (what, fmt, out)
        assert_terminal_safe(f"report {what} --format {fmt}", out + err)
    # JSON keeps the exact value (its escapes are JSON's own).
    code, out, _ = await cli(env, "report", "matches", "--format", "json")
    assert code == 0
    assert_terminal_safe("report matches --format json", out)
    assert EVIL_SAN in {row["signer"] for row in json.loads(out)}


async def test_certificate_control_characters_never_reach_the_daemon_log(env: Env) -> None:
    """As text and as JSON lines: a new hostile signer alerted while each run lasts."""
    await env.sandbox.append("tiles", 3)
    await env.sandbox.append("tiles", 1, {"uri": EVIL_SAN + "2", "issuer": GITHUB})
    code, _, log_text = await cli(env, "--log-format", "text", "run", run_for=3)
    assert code == 0, log_text
    assert "unexpected_signer" in log_text and ESCAPED in log_text, log_text
    assert_terminal_safe("the daemon's text log", log_text)

    await env.sandbox.append("tiles", 1, {"uri": EVIL_SAN + "3", "issuer": GITHUB})
    code, _, log_json = await cli(env, "--log-format", "json", "run", run_for=3)
    assert code == 0, log_json
    assert_terminal_safe("the daemon's JSON log", log_json)
    messages = [json.loads(line)["message"] for line in log_json.splitlines()]
    assert any(EVIL_SAN + "3" in m for m in messages), messages


@given(st.text())
def test_printable_is_one_inert_line(text: str) -> None:
    shown = printable(text)
    assert "\n" not in shown
    assert_terminal_safe("printable", shown)
    assert all(ch.isprintable() or ch == " " or ord(ch) > 0x9F for ch in shown)
    if all(ch.isprintable() for ch in text):
        assert shown == text or any(ch in text for ch in "\u2028\u2029")


@given(st.text())
def test_json_printable_keeps_the_value(text: str) -> None:
    document = json.dumps({"m": text}, ensure_ascii=False)
    shown = json_printable(document)
    assert json.loads(shown) == {"m": text}
    assert_terminal_safe("json_printable", shown)
