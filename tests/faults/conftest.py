"""Fixtures of the fault-injection suite: the sandbox behind a hostile proxy, a receiver, and the
session tally printed at the end of the run (and written to `fault-summary.json` in pytest's base
temporary directory, or to `$FAULT_SUMMARY` when set)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from tests.faults.harness import Tally, write_config
from tests.faults.hostile import HostileProxy
from tests.integration.receivers import HttpReceiver

_TALLY = Tally()


@pytest.fixture(scope="session")
def tally(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tally]:
    """The session's fault tally; written as JSON when the session ends."""
    yield _TALLY
    target = os.environ.get("FAULT_SUMMARY")
    path = Path(target) if target else tmp_path_factory.getbasetemp() / "fault-summary.json"
    _TALLY.write(path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the totals of the fault suite when it ran."""
    if not _TALLY.scenarios:
        return
    summary = _TALLY.summary()
    terminalreporter.section("fault injection")
    totals = {k: v for k, v in summary.items() if k != "detail"}
    terminalreporter.write_line(json.dumps(totals, sort_keys=True))


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
