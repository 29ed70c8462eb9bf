"""systemd/tlog-monitor.service: declares the hardening we rely on, verifies cleanly, and keeps
systemd-analyze's exposure score low."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "tlog-monitor.service"
UNIT_BINARY = "/usr/bin/tlog-monitor"
MAX_EXPOSURE = 2.0


def _service_settings() -> list[tuple[str, str]]:
    """(key, value) of every line of the [Service] section, in order (keys may repeat)."""
    settings: list[tuple[str, str]] = []
    section = None
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.append((key.strip(), value.strip()))
    return settings


def _values(key: str) -> list[str]:
    return [v for k, v in _service_settings() if k == key]


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not on PATH")
    return tool


def _installed_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart names the installed console script."""
    script = shutil.which("tlog-monitor") or str(Path(sys.executable).parent / "tlog-monitor")
    if not Path(script).is_file():
        pytest.skip("the tlog-monitor console script is not installed")
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={UNIT_BINARY} " in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(UNIT_BINARY, str(Path(script).resolve())), encoding="utf-8")
    return unit


def test_unit_declares_notify_and_a_dedicated_user() -> None:
    assert _values("Type") == ["notify"]
    assert _values("DynamicUser") == ["yes"] or _values("User")
    assert _values("StateDirectory") and _values("StateDirectory")[0]
    assert any(v.endswith(" run") for v in _values("ExecStart"))


def test_unit_declares_hardening() -> None:
    assert _values("ProtectSystem") == ["strict"]
    assert _values("NoNewPrivileges") == ["yes"]
    assert "@system-service" in " ".join(_values("SystemCallFilter")).split()
    # An empty CapabilityBoundingSet= drops every capability; a later non-empty one would add some.
    assert _values("CapabilityBoundingSet") == [""]
    families = " ".join(_values("RestrictAddressFamilies")).split()
    assert families and not families[0].startswith("~")


def test_unit_gives_sigstore_a_writable_cache() -> None:
    env = " ".join(_values("Environment"))
    match = re.search(r"\bXDG_CACHE_HOME=(\S+)", env)
    assert match, "Environment=XDG_CACHE_HOME=... is missing"
    cache_dirs = _values("CacheDirectory")
    assert cache_dirs and match.group(1) == f"/var/cache/{cache_dirs[0]}"


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    tool = _analyze()
    unit = _installed_unit(tmp_path)
    result = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output == "", output


def test_unit_exposure_is_low(tmp_path: Path) -> None:
    tool = _analyze()
    unit = _installed_unit(tmp_path)
    result = subprocess.run(
        [tool, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 and "--offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_keeps_journald_priorities_and_private_mounts() -> None:
    # The daemon's log lines start with "<N>" priorities (monitor.service.logsetup): journald reads
    # them only with SyslogLevelPrefix=yes (the default) and stderr going to the journal.
    assert _values("SyslogLevelPrefix") in ([], ["yes"], ["true"])
    assert _values("StandardError") in ([], ["journal"])
    assert _values("PrivateMounts") == ["yes"]


def test_unit_stop_timeout_covers_the_drain() -> None:
    from monitor.core.durations import parse_duration
    from monitor.service.daemon import DRAIN_TIMEOUT_S, LAST_ROUND_TIMEOUT_S

    [timeout] = _values("TimeoutStopSec")
    # Running jobs, then the last delivery round, then closing: all before systemd's SIGKILL.
    assert parse_duration(timeout).total_seconds() >= DRAIN_TIMEOUT_S + LAST_ROUND_TIMEOUT_S + 5
