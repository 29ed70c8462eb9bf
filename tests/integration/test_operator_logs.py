"""Quiet daemon logs (issue 12, item 9): a short `tlog-monitor run` against the sandbox, polling
every second, logs tlog-monitor's own lines and the libraries' warnings only; APScheduler's
per-job INFO lines ("Running job ...", ~23,000 a day) appear only with -v. A real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from tests.integration.test_engine import Env, started_env

ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 4.0


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    async with started_env(sandbox, tmp_path, v1=5, tiles=5) as e:
        yield e


async def run_for(env: Env, *options: str) -> list[str]:
    """The lines `tlog-monitor [options] run` logs in RUN_SECONDS (text format), then SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", *options, "--log-format", "text",
        "--config", str(env.config_path), "run",
        cwd=env.dir,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(RUN_SECONDS)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    # A record's first line starts with the date; continuation lines (tracebacks) do not.
    return [line for line in err.decode().splitlines() if line[:2] == "20"]


def logger_of(line: str) -> str:
    """`2026-03-01 12:00:00,000 INFO monitor.service.daemon: ...` -> `monitor.service.daemon`."""
    return line.split(" ", 4)[3].rstrip(":")


async def test_a_short_run_logs_only_its_own_lines_and_library_warnings(env: Env) -> None:
    lines = await run_for(env)
    assert lines, "the daemon logged nothing at all"
    for line in lines:
        level = line.split(" ", 3)[2]
        assert logger_of(line).startswith("monitor") or level in ("WARNING", "ERROR"), line
    assert not any("Running job" in line or "executed successfully" in line for line in lines)
    # Four seconds of polling two logs every second, and delivering: a handful of lines, not the
    # two scheduler lines per job run (about ten a second here) that drowned the journal.
    assert len(lines) <= 25, "\n".join(lines)


async def test_verbose_shows_the_libraries_again(env: Env) -> None:
    lines = await run_for(env, "-v")
    assert any(logger_of(line).startswith("apscheduler") for line in lines)
    assert any("Running job" in line for line in lines)
