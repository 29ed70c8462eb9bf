"""`tlog-monitor reload --pid PID`, the unit's ExecReload= (issue 17: a minimal Debian has no
/bin/kill): it checks the configuration, refuses a broken one without signalling, and makes a
running daemon reload. tests/systemd runs the same through `systemctl reload`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Run, cli_command
from tests.integration.test_daemon import NotifySocket, env, start_run
from tests.integration.test_engine import Env

__all__ = ["env"]  # the fixture, imported for pytest


async def _reload(config: Path, pid: int | str) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *cli_command(),
        "--config",
        str(config),
        "reload",
        "--pid",
        str(pid),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_reload_checks_the_config_then_signals_the_daemon(env: Env, tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = await start_run(env, notify, tmp_path)
    try:
        await notify.wait_for("READY=1")
        done = await _reload(env.config_path, proc.pid)
        assert done.code == 0, done
        await notify.wait_for("RELOADING=1")
        await notify.wait_for("READY=1", count=2)

        # A broken configuration: refused with the error, and the daemon is never signalled.
        good = env.config_path.read_text()
        env.config_path.write_text(good.replace('public_key = "tiles.pem"', "interval = 5"))
        refused = await _reload(env.config_path, proc.pid)
        assert refused.code == 2, refused
        assert "configuration error" in refused.err, refused
        assert "reload refused, the daemon keeps its running configuration" in refused.err
        await asyncio.sleep(1)
        assert sum("RELOADING=1" in m for m in notify.messages) == 1, notify.messages
        assert proc.returncode is None
        env.config_path.write_text(good)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        notify.close()


@pytest.mark.parametrize(
    ("pid", "message"),
    [
        ("0", "not the PID of a daemon"),  # os.kill(0) would signal our own process group
        ("-1", "not the PID of a daemon"),  # ... and -1 every process we may signal
        ("1", "not the PID of a daemon"),
        ("4194305", "not the PID of a daemon"),
        ("x", "invalid int value"),
    ],
)
async def test_reload_refuses_a_pid_that_is_no_daemons(env: Env, pid: str, message: str) -> None:
    refused = await _reload(env.config_path, pid)
    assert refused.code == 2, refused
    assert message in refused.err, refused


async def test_reload_of_a_process_that_is_gone(env: Env) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    refused = await _reload(env.config_path, gone.pid)
    assert refused.code == 2, refused
    assert "no such process" in refused.err, refused
