"""tests/systemd boots a Debian root under systemd-nspawn (root, minutes the first time): `make
test` must not collect it. It is collected when `make test-systemd` sets
TLOG_MONITOR_SYSTEMD_TEST=1, or when this directory (or a file in it) is named on the command
line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _asked_for(config: pytest.Config) -> bool:
    if os.environ.get("TLOG_MONITOR_SYSTEMD_TEST") == "1":
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the directory out of every run that did not ask for it."""
    if collection_path.resolve().is_relative_to(HERE) and not _asked_for(config):
        return True
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "systemd: runs the service under a real systemd (make test-systemd)"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The phases' durations (root build, wheels, boot, install, start, watchdog, stop)."""
    from tests.systemd.test_service import TIMINGS

    if TIMINGS:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in TIMINGS.items())
        terminalreporter.write_line(f"tests/systemd timings: {phases}")
