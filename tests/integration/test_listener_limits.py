"""`http_listen` cannot starve the daemon: a running `tlog-monitor run` (a real subprocess with
256 file descriptors) flooded with idle connections to its endpoint keeps polling the sandbox
log, still alerts a misbehaviour during the flood, refuses connections over its cap, closes idle
ones after the idle timeout, and keeps its stderr small."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from monitor.config.settings import ListenAddress
from monitor.sandbox import Sandbox
from monitor.service.httpd import IDLE_TIMEOUT_S, HttpServer, connection_cap
from monitor.store.database import AsyncStore, Store
from tests.integration.receivers import LOCALHOST, HttpReceiver, free_port
from tests.integration.test_daemon import NotifySocket, start_run, wait_until
from tests.integration.test_engine import Env

FD_LIMIT = 256
FLOOD = 300
"""More idle connections than the daemon has file descriptors."""
STDERR_BUDGET = 16 * 1024
"""What the daemon may write during the flood: a few rate-limited lines, not one per accept."""


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    e.write_config()
    await sandbox.append("v1", 10)
    await sandbox.append("tiles", 100)
    try:
        yield e
    finally:
        await receiver.stop()


class Output:
    """Drains the daemon's merged stdout and stderr (a full pipe would block its logging),
    counting the bytes and keeping the tail for failure messages."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.size = 0
        self.tail = b""
        self.task = asyncio.create_task(self._drain(stream))

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.size += len(chunk)
            self.tail = (self.tail + chunk)[-8000:]

    def text(self) -> str:
        return self.tail.decode(errors="replace")


def flood(port: int, count: int) -> list[socket.socket]:
    """`count` connections to 127.0.0.1:`port` that never send a byte (non-blocking connects:
    one the daemon never accepts must not block the test's event loop)."""
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        code = s.connect_ex((LOCALHOST, port))
        assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code, code)
        socks.append(s)
    return socks


def closed_by_peer(s: socket.socket) -> bool:
    """True once the daemon has closed (or reset) the connection; data before the close (a 503)
    is read and ignored."""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


async def readyz(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as resp:
            return resp.status
    except aiohttp.ClientError:
        return 0


def test_the_cap_leaves_most_descriptors_to_polls() -> None:
    assert connection_cap(256) <= 256 // 4
    assert connection_cap(1024) <= 1024 // 4
    assert connection_cap(1 << 20) == connection_cap(1 << 16)  # a fixed ceiling
    assert connection_cap(16) >= 1


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def closed_within(s: socket.socket, timeout: float) -> float | None:
    """Seconds until the daemon closed `s`, or None if it is still open after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < timeout:
        if closed_by_peer(s):
            return loop.time() - start
        await asyncio.sleep(0.05)
    return None


async def test_idle_connection_flood_does_not_starve_polls(env: Env, tmp_path: Path) -> None:
    port = free_port()
    env.config_path.write_text(
        env.config_path.read_text().replace(
            'http_listen = ""', f'http_listen = "{LOCALHOST}:{port}"'
        )
    )
    base = f"http://{LOCALHOST}:{port}"
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = await start_run(env, notify, tmp_path)
    # Like systemd's LimitNOFILE=, before the daemon has opened anything but its start-up files.
    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    assert proc.stdout is not None
    output = Output(proc.stdout)
    socks: list[socket.socket] = []
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, open_files(proc.pid))
            await asyncio.sleep(0.02)

    sampler: asyncio.Task[None] | None = None
    try:
        try:
            await notify.wait_for("READY=1")
            await wait_until_async(lambda: readyz(base), 200)
        except AssertionError:
            raise AssertionError(f"the daemon did not start:\n{output.text()}") from None
        # Idle connections are closed after the idle timeout (timed while the flood below
        # stands): one that never sends a byte, one that trickles its headers, one that idles
        # after an answer.
        silent, slow, kept = flood(port, 3)
        await asyncio.sleep(0.2)
        kept.setblocking(True)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        kept.setblocking(False)
        slow.send(b"GET /metrics HTTP/1.1\r\n")
        trickle = asyncio.create_task(trickle_headers(slow))
        idle = [
            asyncio.create_task(closed_within(s, IDLE_TIMEOUT_S + 5)) for s in (silent, slow, kept)
        ]

        before = output.size
        baseline = open_files(proc.pid)
        sampler = asyncio.create_task(sample())
        socks = flood(port, FLOOD)
        await asyncio.sleep(1.0)  # the daemon accepts (or fails to) while the flood stands
        # A misbehaviour during the flood is still seen and alerted: the polls and the
        # delivery keep descriptors of their own.
        env.sandbox.misbehave("tiles", "bad_signature")
        try:
            await wait_until(
                lambda: "[CRITICAL] bad_signature: tiles-sandbox" in env.receiver.titles()
            )
        except AssertionError:
            raise AssertionError(
                f"no alert during the flood; the daemon said:\n{output.text()}"
            ) from None
        sampler.cancel()
        # The endpoint held at most its cap (plus the polls' and the delivery's own sockets),
        # and answered the connections over it with a 503 and a close.
        assert peak - baseline <= connection_cap(FD_LIMIT) + 16, (peak, baseline)
        answers = b"".join(drain(s) for s in socks)
        assert b"HTTP/1.1 503 Service Unavailable" in answers
        assert "refused a connection" in output.text()

        waited = await asyncio.gather(*idle)
        trickle.cancel()
        for s in (silent, slow, kept):
            s.close()
        assert all(w is not None and w >= IDLE_TIMEOUT_S - 1.5 for w in waited), waited
        assert output.size - before < STDERR_BUDGET, output.text()
        assert await readyz(base) == 200  # and the endpoint answers as before
    finally:
        if sampler is not None:
            sampler.cancel()
        for s in socks:
            s.close()
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 20)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await output.task
        notify.close()


def drain(s: socket.socket) -> bytes:
    """What the daemon has sent on `s` so far."""
    data = b""
    with contextlib.suppress(OSError):
        while chunk := s.recv(4096):
            data += chunk
    return data


async def trickle_headers(s: socket.socket) -> None:
    """A header byte a second: never a complete request (slowloris)."""
    with contextlib.suppress(OSError):
        while True:
            await asyncio.sleep(1.0)
            s.send(b"X")


async def wait_until_async(probe: object, expected: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await probe() != expected:  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_a_connection_over_the_cap_gets_503_and_the_cap_frees_up(tmp_path: Path) -> None:
    store = AsyncStore(Store.open(tmp_path / "monitor.db"))
    server = HttpServer(ListenAddress(LOCALHOST, 0), store, ["log"])
    await server.start()
    held: list[socket.socket] = []
    try:
        held = flood(server.port, server.cap)
        await wait_until(lambda: server.connections == server.cap)
        (extra,) = flood(server.port, 1)
        assert (await answer(extra)).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        extra.close()
        held.pop().close()  # one leaves: the next connection is served
        await wait_until(lambda: server.connections < server.cap)
        reader, writer = await asyncio.open_connection(LOCALHOST, server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200 OK")
        writer.close()
    finally:
        for s in held:
            s.close()
        await server.stop()
        store.close()


async def answer(s: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends on `s` until it closes it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    data = b""
    while loop.time() < deadline:
        try:
            chunk = s.recv(4096)
        except BlockingIOError:
            await asyncio.sleep(0.02)
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_the_unit_sets_the_open_file_limit() -> None:
    unit = Path(__file__).resolve().parents[2] / "systemd" / "tlog-monitor.service"
    (limit,) = [
        int(line.partition("=")[2])
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith("LimitNOFILE=")
    ]
    assert limit > 1024  # above systemd's default soft limit
    assert connection_cap(limit) == 64  # the endpoint's share stays the fixed ceiling
