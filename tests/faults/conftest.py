"""Fixtures of the fault-injection suite: the sandbox behind a hostile proxy, a receiver, and the
session tally (printed at the end of the run by tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from tests.faults.harness import TALLY_FILE, Tally, write_config
from tests.faults.hostile import HostileProxy
from tests.integration.receivers import HttpReceiver

_TALLY = Tally()


@pytest.fixture(scope="session")
def tally(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tally]:
    """The session's fault tally, written for the run's summary when the session ends
    (`tests/conftest.py` adds up every process's: pytest-xdist runs several)."""
    yield _TALLY
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # A worker's base temporary directory is inside the run's: write where the run reads.
    base = tmp_path_factory.getbasetemp()
    _TALLY.write((base.parent if worker else base) / TALLY_FILE.format(worker or "main"))


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """A started sandbox (both logs empty) on a free 127.0.0.1 port, state in tmp_path."""
    sb = Sandbox(tmp_path / "sandbox-state")
    await sb.start("127.0.0.1", 0)
    try:
        yield sb
    finally:
        await sb.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    """A started receiver to deliver alerts to (apprise `json://`), stopped at the end."""
    r = HttpReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@dataclass
class Hostile:
    """The sandbox, the proxy in front of it, the receiver, and a configuration using both."""

    sandbox: Sandbox
    proxy: HostileProxy
    receiver: HttpReceiver
    dir: Path
    config_path: Path

    @property
    def db(self) -> Path:
        """The monitor's database."""
        return self.dir / "monitor.db"


@pytest.fixture
async def hostile(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Hostile]:
    """An empty sandbox behind a started proxy, a started receiver and a config pointing at
    them (both logs scanned, interval 1s, request timeout 2s, error_grace 0s)."""
    proxy = HostileProxy(sandbox.url)
    receiver = HttpReceiver()
    await proxy.start()
    await receiver.start()
    config = write_config(tmp_path, sandbox, receiver, base_url=proxy.url)
    try:
        yield Hostile(sandbox, proxy, receiver, tmp_path, config)
    finally:
        await receiver.stop()
        await proxy.stop()
