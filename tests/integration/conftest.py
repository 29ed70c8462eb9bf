"""Integration fixtures: a real sandbox log on 127.0.0.1, a permissive umask and an HTTP client
session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from monitor.sandbox import Sandbox


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
def permissive_umask() -> Iterator[None]:
    """A umask that would make every file world-readable, as on many desktops (modules that
    test file modes use it for every test: `pytest.mark.usefixtures("permissive_umask")`)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session (real HTTP; the sandbox is the only server it talks to)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
