"""`tlog-monitor run` as systemd runs it: a real subprocess speaking the notify protocol to a
socket the test listens on, polling the sandbox, delivering alerts, reloading on SIGHUP and
stopping cleanly on SIGTERM. Also: malformed log responses never crash it or move state."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from monitor.sandbox import Sandbox
from monitor.store.database import Store
from tests.integration.receivers import LOCALHOST, free_port
from tests.integration.test_engine import Env, started_env, states

ROOT = Path(__file__).resolve().parents[2]


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until `text` has arrived `count` times in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while sum(text in m for m in self.messages) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {text!r} from the daemon; got {self.messages}")
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), remaining)
            except TimeoutError:
                continue
            self.messages.append(data.decode())

    def close(self) -> None:
        self.sock.close()


async def wait_until(predicate: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    views = [sandbox.view_url("mirror")]
    async with started_env(sandbox, tmp_path, v1=10, tiles=100, views=views) as e:
        yield e


async def start_run(env: Env, notify: NotifySocket, cwd: Path) -> asyncio.subprocess.Process:
    """`tlog-monitor run` on the env's config as a subprocess, speaking sd_notify to `notify`;
    stdout and stderr together on its stdout pipe."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor.cli.main",
        "--config",
        str(env.config_path),
        "run",
        cwd=cwd,
        env={**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_run_under_systemd_notify_delivers_reloads_and_stops_cleanly(
    env: Env, tmp_path: Path
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = await start_run(env, notify, tmp_path)
    try:
        try:
            await notify.wait_for("READY=1")
        except AssertionError:
            proc.kill()
            output = (await proc.communicate())[0].decode(errors="replace")
            raise AssertionError(f"the daemon did not start:\n{output[-3000:]}") from None
        await wait_until((tmp_path / "monitor.db").exists)
        env.sandbox.misbehave("v1", "fork", view="mirror")
        await env.sandbox.append("v1", 2)
        await wait_until(lambda: env.receiver.titles() == ["[CRITICAL] split_view: rekor-sandbox"])

        proc.send_signal(signal.SIGHUP)
        await notify.wait_for("RELOADING=1")
        await notify.wait_for("READY=1", count=2)

        # A broken configuration on reload is refused; the running one goes on monitoring.
        good = env.config_path.read_text()
        env.config_path.write_text(
            good.replace('public_key = "tiles.pem"', 'trust_root = "staging"')
        )
        proc.send_signal(signal.SIGHUP)
        await notify.wait_for("READY=1", count=3)
        env.sandbox.reset()
        env.sandbox.misbehave("tiles", "bad_signature")
        await wait_until(lambda: len(env.receiver.titles()) == 2)
        assert env.receiver.titles()[1] == "[CRITICAL] bad_signature: tiles-sandbox"

        proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1")
        code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()
    # The fork stayed one alert across the reloads, and each alert was delivered once.
    assert env.receiver.titles() == [
        "[CRITICAL] split_view: rekor-sandbox",
        "[CRITICAL] bad_signature: tiles-sandbox",
    ]
    store = Store.open(tmp_path / "monitor.db")
    try:
        runs = store.query("SELECT command, outcome FROM runs ORDER BY id")
        assert [r["outcome"] for r in runs] == ["reload", "reload", "stopped"]
    finally:
        store.close()


GARBAGE: dict[str, tuple[int, str, bytes]] = {
    "not json": (200, "application/json", b"<html>rate limited</html>"),
    "wrong types": (200, "application/json", b'{"treeSize": "x", "rootHash": 5}'),
    "deep nesting": (200, "application/json", b"[" * 100_000 + b"]" * 100_000),
    "truncated": (200, "application/json", b'{"rootHash": "ab'),
    "invalid utf-8 note": (
        200,
        "application/json",
        b'{"rootHash":"00","treeSize":1,"treeID":"1","signedTreeHead":"\xff\xfe\\n"}',
    ),
    "html 500": (500, "text/html", b"<h1>oops</h1>"),
}


async def test_malformed_responses_never_crash_or_move_state(env: Env) -> None:
    mode = {"name": "not json"}

    async def garbage(request: web.Request) -> web.Response:
        status, ctype, body = GARBAGE[mode["name"]]
        return web.Response(status=status, body=body, content_type=ctype.split(";")[0])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", garbage)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOCALHOST, port).start()
    try:
        env.write_config(views=[f"http://{LOCALHOST}:{port}"])
        async with env.open() as m:
            first = await m.check()
            assert [a.kind.value for _, a in first.alerts] == ["log_error"]
            before = states(m)
            for name in GARBAGE:
                mode["name"] = name
                outcome = await m.check()
                assert outcome.errors, name
                assert all(a.kind.value == "log_error" for _, a in outcome.alerts), name
                assert states(m) == before, name
            # The honest endpoints kept working throughout and still advance state.
            await env.sandbox.append("v1", 3)
            await m.check()
            assert states(m) != before
    finally:
        await runner.cleanup()
