"""A minimal Debian 12 root booted with systemd as PID 1, for tests/systemd.

The root is built once with debootstrap (`--variant=minbase` plus systemd, dbus and Debian's
python3) and cached outside the checkout; every boot mounts it read-only under a tmpfs overlay
(`systemd-nspawn --volatile=overlay`), so what a test installs is gone at power-off and the cache
stays pristine. The container shares the host's network namespace, so its 127.0.0.1 is the
host's: the sandbox log and the receivers the test starts on the host are reachable from the
service. Commands run inside with `nsenter` into the container's PID 1 (`--register=no` leaves
no machined to ask), so neither host nor container needs D-Bus for the test itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

CACHE = Path(os.environ.get("TLOG_MONITOR_SYSTEMD_CACHE", "/var/cache/tlog-monitor"))
"""Where the root and the dependency wheels are kept between runs (outside the git tree)."""

MIRROR = os.environ.get("TLOG_MONITOR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv")
#: Written last by a successful build; a root without it (an interrupted build) is rebuilt.
STAMP_NAME = ".tlog-monitor-root"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """The machine cannot run the test (not root, tools missing, no network for the first
    build): the test is skipped with this message."""


def _stamp_text() -> str:
    return f"{SUITE} {MIRROR} {' '.join(PACKAGES)}\n"


def check_host() -> None:
    """Raise `Unavailable` unless this machine can build and boot the container."""
    if os.geteuid() != 0:
        raise Unavailable("the systemd test needs root (debootstrap, systemd-nspawn, nsenter)")
    missing = [t for t in ("debootstrap", "systemd-nspawn", "nsenter") if not shutil.which(t)]
    if missing:
        raise Unavailable(
            f"{', '.join(missing)} not found: apt-get install debootstrap systemd-container"
        )


def ensure_root(log: Path) -> tuple[Path, float]:
    """The cached Debian root, built now if missing (debootstrap's output goes to `log`), and
    the seconds the build took (0.0 when reused)."""
    root = CACHE / "systemd-root"
    stamp = root / STAMP_NAME
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == _stamp_text():
        return root, 0.0
    host = urlsplit(MIRROR).hostname or ""
    try:
        socket.create_connection((host, urlsplit(MIRROR).port or 80), timeout=10).close()
    except OSError as e:
        raise Unavailable(
            f"no cached root at {root} and the Debian mirror {MIRROR} is unreachable ({e}): "
            "the first run needs network access to Debian's packages"
        ) from e
    building = CACHE / "systemd-root.building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("wb") as out:
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(building),
                MIRROR,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1200,
            check=False,
        )
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AssertionError(f"debootstrap failed (exit {result.returncode}):\n{tail}")
    (building / STAMP_NAME).write_text(_stamp_text(), encoding="utf-8")
    building.rename(root)
    return root, time.monotonic() - started


class Container:
    """A booted container: `run` executes a command inside, `poweroff` stops it."""

    def __init__(self, root: Path, share: Path, console: Path) -> None:
        self.root = root
        self.share = share
        self._console = console.open("wb")
        # --keep-unit and --register=no: no D-Bus on the host (PID 1 there need not be systemd).
        self.process = subprocess.Popen(
            [
                "systemd-nspawn",
                "--quiet",
                "--register=no",
                "--keep-unit",
                "--volatile=overlay",
                "--machine=tlog-monitor-test",
                f"--bind-ro={share}:/run/tlog-test",
                "--console=passive",
                "-b",
                "-D",
                str(root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
        )
        self.pid = 0

    def wait_booted(self, timeout: float = 60.0) -> float:
        """Wait until systemd in the container reports the boot finished; its duration (s)."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"systemd-nspawn exited {self.process.returncode} during boot: "
                    f"{self.console_tail()}"
                )
            if not self.pid:
                self.pid = self._init_pid()
            if self.pid:
                state = self.run("systemctl", "is-system-running", "--wait", check=False)
                if state.stdout.strip() in ("running", "degraded"):
                    if state.stdout.strip() == "degraded":
                        failed = self.run("systemctl", "--failed", "--no-pager", check=False)
                        raise AssertionError(f"the container booted degraded:\n{failed.stdout}")
                    return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"the container did not boot in {timeout:g}s: {self.console_tail()}")

    def _init_pid(self) -> int:
        """The host PID of the container's PID 1: the child of systemd-nspawn."""
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            try:
                pids = children.read_text().split()
            except OSError:
                continue
            if pids:
                return int(pids[0])
        return 0

    def console_tail(self) -> str:
        self._console.flush()
        text = Path(self._console.name).read_text(encoding="utf-8", errors="replace")
        return text[-2000:]

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 120.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the container as root, in a clean environment."""
        command = [
            "nsenter",
            "-t",
            str(self.pid),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-r",
            "-w",
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={CONTAINER_PATH}",
            "LANG=C.UTF-8",
            "SYSTEMD_PAGER=",
            "SYSTEMD_COLORS=0",
            *argv,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container, {' '.join(argv)!r} exited {result.returncode}:\n"
                f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
            )
        return result

    def sh(self, script: str, *, check: bool = True, timeout: float = 120.0) -> str:
        """Run a shell script inside (`set -eu`); its stdout."""
        return self.run("sh", "-euc", script, check=check, timeout=timeout).stdout

    def poweroff(self, timeout: float = 30.0) -> None:
        """Shut the container down cleanly; kill systemd-nspawn if it does not stop in time."""
        if self.process.poll() is None and self.pid:
            self.run("systemctl", "poweroff", "--no-block", check=False, timeout=10)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._console.close()
