"""The shipped unit under a real systemd (issue 17): a minimal Debian 12 root booted with
systemd as PID 1 (tests/systemd/container.py), the wheel installed into /opt/tlog-monitor with
Debian's python3, the unit and a configuration installed as docs/systemd.md says, the sandbox log
and a receiver on the host's loopback. Run with `make test-systemd` (root; network to Debian's
mirror and PyPI the first time, then everything is cached under /var/cache/tlog-monitor).

The tests run in file order against one service: start, a misbehaviour, journald, reloads,
hardening, a report from a shell, the watchdog, stop. The unit is installed as shipped plus one
drop-in that shortens `WatchdogSec=` (120 s) to WATCHDOG_S so the watchdog check takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitor.core.durations import parse_duration
from monitor.sandbox import Sandbox
from tests.helpers import monitor_table, write_keys
from tests.integration.receivers import HttpReceiver
from tests.systemd.container import CACHE, Container, Unavailable, check_host, ensure_root

pytestmark = pytest.mark.systemd

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "tlog-monitor.service"
#: What `python -m build` needs of the working tree (as tests/integration/test_packaging.py).
SOURCES = ("pyproject.toml", "README.md", "config.toml", "docs", "systemd", "monitor")
SERVICE = "tlog-monitor"
WATCHDOG_S = 8


def _unit_seconds(key: str) -> float:
    """A duration setting of the shipped unit, in seconds."""
    [value] = re.findall(rf"^{key}=(\S+)$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)
    return parse_duration(value).total_seconds()


STOP_TIMEOUT_S = _unit_seconds("TimeoutStopSec")
RESTART_S = _unit_seconds("RestartSec")
STATE = "/var/lib/private/tlog-monitor"
ALICE = {"email": "alice@example.com"}

T = TypeVar("T")

#: How long each phase took, printed at the end of the run (tests/systemd/conftest.py).
TIMINGS: dict[str, float] = {}


class Loop:
    """An asyncio loop in a thread: the sandbox log and the receiver serve from it while the
    test blocks on commands in the container."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        async def on_loop() -> T:
            return fn()

        return self.run(on_loop())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Deployment:
    """The booted container with the service installed, and the host's side of the drill."""

    container: Container
    loop: Loop
    sandbox: Sandbox
    receiver: HttpReceiver
    share: Path
    timings: dict[str, float]

    def titles(self) -> list[str]:
        return self.loop.call(self.receiver.titles)

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not within {timeout:g}s; receiver got {self.titles()}; "
                    f"journal:\n{self.journal_tail()}"
                )
            time.sleep(0.25)

    def show(self, *props: str) -> dict[str, str]:
        out = self.container.run("systemctl", "show", SERVICE, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self) -> list[dict[str, Any]]:
        out = self.container.run(
            "journalctl", "-u", SERVICE, "-o", "json", "--no-pager", check=False
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def journal_tail(self) -> str:
        return self.container.run(
            "journalctl", "-u", SERVICE, "-n", "30", "-o", "cat", "--no-pager", check=False
        ).stdout

    def install_config(self, text: str) -> None:
        (self.share / "config.toml").write_text(text, encoding="utf-8")
        self.container.run(
            "install", "-m", "0644", "/run/tlog-test/config.toml", "/etc/tlog-monitor/config.toml"
        )

    def alerts(self) -> list[dict[str, Any]]:
        """`report alerts --format json`, run the way docs/systemd.md says."""
        out = self.container.run(*REPORT_COMMAND, "report", "alerts", "--format", "json").stdout
        rows: list[dict[str, Any]] = json.loads(out)
        return rows


#: docs/systemd.md: a report from a shell, as the service's dynamic user with its state directory.
REPORT_COMMAND = (
    "systemd-run",
    "--pipe",
    "--wait",
    "--quiet",
    "-p",
    "DynamicUser=yes",
    "-p",
    "User=tlog-monitor",
    "-p",
    "StateDirectory=tlog-monitor",
    # The configuration names urls_env variables: without them it does not load.
    "-p",
    "EnvironmentFile=-/etc/tlog-monitor/notify.env",
    "/usr/bin/tlog-monitor",
    "--config",
    "/etc/tlog-monitor/config.toml",
)


def _config(sb: Sandbox, receiver: HttpReceiver, *, v1: bool) -> str:
    """The test's configuration: the tiled log (scanned, a watch rule for alice), and with `v1`
    the Rekor v1 log too; every alert to the receiver, whose URL is in notify.env (urls_env)."""
    text = monitor_table(request_timeout="5s", database="tlog-monitor.db") + (
        f"""
[[log]]
name = "tiles-sandbox"
type = "tiles"
url = "{sb.tiles_url}"
public_key = "tiles.pem"
origin = "{sb.tiles_origin}"
fulcio_roots = "ca.pem"
scan = true
"""
    )
    if v1:
        text += f"""
[[log]]
name = "rekor-sandbox"
type = "rekor-v1"
url = "{sb.url}"
public_key = "v1.pem"
origin = "{sb.v1_key_name}"
"""
    return (
        text
        + """
[[watch]]
name = "alice"
issuer = "https://accounts.google.com"
email = "alice@example.com"
"""
        + """
[[notify]]
name = "ops"
urls_env = ["TLOG_MONITOR_NOTIFY_URLS"]
min_severity = "info"
"""
    )


def _build_wheels(share: Path, work: Path) -> None:
    """The project's wheel (from a copy of the sources) in share/dist, its dependencies' wheels
    in share/wheels (cached in CACHE/wheels: PyPI is asked only for what is not there)."""
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = share / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = dist.glob("*.whl")
    cache = CACHE / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(cache)]
    pip += ["--find-links", str(cache), str(wheel)]
    got = subprocess.run([*pip, "--no-index"], capture_output=True, text=True, check=False)
    if got.returncode != 0:  # a dependency not cached yet: ask the index
        got = subprocess.run(pip, capture_output=True, text=True, timeout=600, check=False)
    # The project's own wheel is never taken from the cache: a stale one would be tested.
    for stale in cache.glob("tlog_monitor-*.whl"):
        stale.unlink()
    if got.returncode != 0:
        raise Unavailable(f"the dependencies' wheels could not be fetched:\n{got.stderr[-2000:]}")
    shutil.copytree(cache, share / "wheels")


def _install(c: Container, sb: Sandbox, receiver: HttpReceiver, share: Path) -> None:
    """docs/systemd.md's install steps, with the files the test wrote in /run/tlog-test."""
    write_keys(share, sb, ca=True)
    (share / "notify.env").write_text(f"TLOG_MONITOR_NOTIFY_URLS={receiver.url('alerts')}\n")
    (share / "config.toml").write_text(_config(sb, receiver, v1=False), encoding="utf-8")
    (share / "watchdog.conf").write_text(f"[Service]\nWatchdogSec={WATCHDOG_S}s\n")
    (wheel,) = (share / "dist").glob("*.whl")
    c.sh(
        f"""
python3 -m venv /opt/tlog-monitor
/opt/tlog-monitor/bin/pip install --quiet --no-index --find-links /run/tlog-test/wheels \
    /run/tlog-test/dist/{wheel.name}
ln -s /opt/tlog-monitor/bin/tlog-monitor /usr/bin/tlog-monitor
DOC=/opt/tlog-monitor/share/doc/tlog-monitor
install -d -m 0755 /etc/tlog-monitor
install -m 0644 /run/tlog-test/config.toml /etc/tlog-monitor/config.toml
install -m 0644 /run/tlog-test/tiles.pem /run/tlog-test/v1.pem /run/tlog-test/ca.pem \
    /etc/tlog-monitor/
install -m 0600 /run/tlog-test/notify.env /etc/tlog-monitor/notify.env
sh -c 'set -a; . /etc/tlog-monitor/notify.env; \
    tlog-monitor --config /etc/tlog-monitor/config.toml config check' > /dev/null
install -m 0644 "$DOC/systemd/tlog-monitor.service" /etc/systemd/system/
install -d /etc/systemd/system/tlog-monitor.service.d
install -m 0644 /run/tlog-test/watchdog.conf /etc/systemd/system/tlog-monitor.service.d/
systemctl daemon-reload
""",
        timeout=600,
    )
    shipped = c.run("cat", "/etc/systemd/system/tlog-monitor.service").stdout
    assert shipped == UNIT.read_text(encoding="utf-8"), "the wheel's unit is not the repository's"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    try:
        check_host()
        work = tmp_path_factory.mktemp("systemd")
        timings: dict[str, float] = {}
        root, timings["root build (s)"] = ensure_root(work / "debootstrap.log")
        share = work / "share"
        share.mkdir()
        started = time.monotonic()
        _build_wheels(share, work)
        timings["wheels (s)"] = time.monotonic() - started
    except Unavailable as e:
        pytest.skip(str(e))
    share.chmod(0o755)
    loop = Loop()
    sandbox = Sandbox(work / "sandbox")
    receiver = HttpReceiver()
    loop.run(sandbox.start("127.0.0.1", 0))
    loop.run(receiver.start())
    loop.run(sandbox.append("tiles", 20))
    loop.run(sandbox.append("v1", 5))
    container = Container(root, share, work / "console.log")
    try:
        timings["boot (s)"] = container.wait_booted()
        started = time.monotonic()
        _install(container, sandbox, receiver, share)
        timings["install (s)"] = time.monotonic() - started
        yield Deployment(container, loop, sandbox, receiver, share, timings)
    finally:
        container.poweroff()
        loop.run(receiver.stop())
        loop.run(sandbox.stop())
        loop.close()
        TIMINGS.update(timings)


def test_start_returns_after_ready_with_the_status_text(deployment: Deployment) -> None:
    d = deployment
    started = time.monotonic()
    d.container.run("systemctl", "enable", "--now", SERVICE, timeout=120)
    d.timings["start (s)"] = time.monotonic() - started
    state = d.show("ActiveState", "SubState", "Type", "MainPID")
    assert state["Type"] == "notify"
    # Type=notify: `start` returned once READY=1 came, which the daemon sends after opening the
    # database, so both are there the moment it returns.
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (
        f"systemctl start returned before the service was ready: {state}\n{d.journal_tail()}"
    )
    d.container.run("test", "-f", f"{STATE}/tlog-monitor.db")
    d.wait_for(
        "systemctl status shows the daemon's STATUS=",
        lambda: (
            'Status: "monitoring 1 log(s)"'
            in d.container.run("systemctl", "status", SERVICE, check=False).stdout
        ),
        timeout=10,
    )


def test_a_misbehaviour_reaches_the_receiver(deployment: Deployment) -> None:
    d = deployment
    d.wait_for(
        "the service polls the tiled log",
        lambda: d.loop.call(lambda: d.sandbox.request_count("tiles.checkpoint")) >= 2,
    )
    d.loop.call(lambda: d.sandbox.misbehave("tiles", "rollback", size=10))
    d.wait_for(
        "the rollback alert delivered through the running service",
        lambda: "[CRITICAL] rollback: tiles-sandbox" in d.titles(),
    )
    d.loop.call(d.sandbox.reset)
    # A warning-severity alert for the journald check: the log answers 500 (error_grace 0s).
    d.loop.call(lambda: d.sandbox.misbehave("tiles", "errors", status=500))
    d.wait_for(
        "a log_error alert delivered", lambda: "[WARNING] log_error: tiles-sandbox" in d.titles()
    )
    d.loop.call(d.sandbox.reset)


def _alert_entries(d: Deployment, kind: str) -> list[dict[str, Any]]:
    return [e for e in d.journal() if f" {kind}: " in str(e.get("MESSAGE", ""))]


def test_journald_gets_warnings_at_priority_4(deployment: Deployment) -> None:
    d = deployment
    entries = _alert_entries(d, "log_error")
    assert entries, f"no log_error alert line in the journal:\n{d.journal_tail()}"
    for entry in entries:
        assert entry["PRIORITY"] == "4", f"a warning reached journald at {entry['PRIORITY']}"
        message = json.loads(entry["MESSAGE"])  # JSON lines under the journal, prefix stripped
        assert message["level"] == "warning", message


def test_journald_gets_critical_alerts_at_priority_2(deployment: Deployment) -> None:
    entries = _alert_entries(deployment, "rollback")
    assert entries, "no rollback alert line in the journal"
    assert {e["PRIORITY"] for e in entries} == {"2"}, [e["MESSAGE"] for e in entries]


def test_reload_reads_a_new_log_and_refuses_a_broken_config(deployment: Deployment) -> None:
    d = deployment
    before = d.loop.call(lambda: d.sandbox.request_count("v1.log"))
    assert before == 0
    pid = d.show("MainPID")["MainPID"]
    good = _config(d.sandbox, d.receiver, v1=True)
    d.install_config(good)
    reload = d.container.run("systemctl", "reload", SERVICE, check=False)
    assert reload.returncode == 0, f"systemctl reload failed:\n{reload.stderr}\n{d.journal_tail()}"
    d.wait_for(
        "the [[log]] added on reload is polled",
        lambda: d.loop.call(lambda: d.sandbox.request_count("v1.log")) > 0,
    )
    d.wait_for(
        "the status text after the reload",
        lambda: d.show("StatusText")["StatusText"] == "monitoring 2 log(s)",
        timeout=10,
    )
    assert d.show("MainPID")["MainPID"] == pid, "a reload must not restart the daemon"

    d.install_config(good.replace('public_key = "v1.pem"', 'public_key = "missing.pem"'))
    broken = d.container.run("systemctl", "reload", SERVICE, check=False)
    journal = d.journal_tail()
    assert broken.returncode != 0, f"a broken configuration was accepted on reload:\n{journal}"
    assert "missing.pem" in journal, f"the refused reload does not say why:\n{journal}"
    refusals = [e for e in d.journal() if "reload refused" in str(e.get("MESSAGE"))]
    assert [e["PRIORITY"] for e in refusals] == ["3"], (
        f"the refused reload is not one journal entry at priority 3 (err): {refusals}"
    )
    state = d.show("ActiveState", "MainPID", "StatusText")
    assert state == {
        "ActiveState": "active",
        "MainPID": pid,
        "StatusText": "monitoring 2 log(s)",
    }, f"the running configuration did not survive a refused reload: {state}"
    polled = d.loop.call(lambda: d.sandbox.request_count("v1.log"))
    d.wait_for(
        "the old configuration keeps polling after a refused reload",
        lambda: d.loop.call(lambda: d.sandbox.request_count("v1.log")) > polled + 1,
    )
    d.install_config(good)


def _status(d: Deployment, pid: str) -> dict[str, str]:
    out = d.container.run("cat", f"/proc/{pid}/status").stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


#: Tries to create a file in each directory given; prints "<dir> writable" or "<dir> <errno>".
WRITE_PROBE = """
import errno, os, sys
for path in sys.argv[1:]:
    name = os.path.join(path, ".tlog-monitor-write-probe")
    try:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        print(path, errno.errorcode.get(e.errno, e.errno))
    else:
        os.unlink(name)
        print(path, "writable")
"""
#: Where the service may write: its state and cache directories, and its private /tmp, /var/tmp.
WRITABLE = ["/var/lib/tlog-monitor", "/var/cache/tlog-monitor", "/tmp", "/var/tmp"]
#: Places a process might write to; none of them may be writable by the service.
NOT_WRITABLE = [
    "/", "/etc", "/etc/tlog-monitor", "/opt/tlog-monitor", "/opt/tlog-monitor/bin", "/usr",
    "/usr/local/bin", "/var", "/var/lib", "/var/lib/private", "/var/cache", "/var/log", "/root",
    "/home", "/run", "/run/lock", "/run/systemd", "/dev", "/dev/shm", "/dev/mqueue",
]  # fmt: skip


def _probe(d: Deployment, pid: str, *identity: str) -> dict[str, str]:
    """WRITE_PROBE in the daemon's own mount (and, with `identity`, user) namespace."""
    out = d.container.run(
        "nsenter", "-t", pid, "-m", *identity, "--",
        "/usr/bin/python3", "-c", WRITE_PROBE, *WRITABLE, *NOT_WRITABLE,
    ).stdout  # fmt: skip
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_hardening_holds_at_run_time(deployment: Deployment) -> None:
    d = deployment
    pid = d.show("MainPID")["MainPID"]
    status = _status(d, pid)
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, f"the daemon has capabilities: {caps} {status[caps]}"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2", "no seccomp filter on the daemon"
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    # systemd allocates dynamic users from this range (a minimal Debian has no libnss-systemd to
    # name them).
    assert 61184 <= int(uid) <= 65519, f"the daemon's uid {uid} is not a dynamic user's"

    # As the daemon's user, in its user namespace (PrivateUsers=yes) and mount namespace.
    as_daemon = _probe(d, pid, "-U", "-S", uid, "-G", gid)
    # As root in its mount namespace: what the read-only mounts alone forbid.
    as_root = _probe(d, pid)
    for who, results in (("the service", as_daemon), ("root in the service's namespace", as_root)):
        for path in WRITABLE:
            assert results[path] == "writable", f"{who} cannot write {path}: {results[path]}"
        wrote = [path for path in NOT_WRITABLE if results[path] == "writable"]
        assert wrote == [], f"{who} can write {wrote}"
    # /tmp and /var/tmp are the service's own (PrivateTmp=yes), not the system's.
    inode = "stat -c %d:%i /tmp /var/tmp"
    private = d.container.sh(f"nsenter -t {pid} -m -- {inode}")
    assert private != d.container.sh(inode), "the service's /tmp is the system's"

    stat = d.container.run(
        "stat", "-c", "%a %u %n", STATE, f"{STATE}/tlog-monitor.db"
    ).stdout.splitlines()
    assert stat == [f"700 {uid} {STATE}", f"600 {uid} {STATE}/tlog-monitor.db"], (
        f"the state directory and database are not the dynamic user's, 0700 and 0600: {stat}"
    )


def test_report_from_a_shell_reads_the_services_database(deployment: Deployment) -> None:
    alerts = deployment.alerts()
    kinds = [(a["kind"], a["log"]) for a in alerts]
    assert ("rollback", "tiles-sandbox") in kinds, f"report alerts does not show them: {alerts}"


def _restarted(state: dict[str, str], old_pid: str) -> bool:
    return state["ActiveState"] == "active" and state["MainPID"] not in ("0", old_pid)


def test_watchdog_restarts_a_stopped_daemon_and_nothing_is_lost_or_repeated(
    deployment: Deployment,
) -> None:
    d = deployment
    before = d.show("MainPID", "NRestarts")
    alerts_before = d.alerts()
    posts_before = d.titles()
    d.container.run("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", SERVICE)
    stopped = time.monotonic()
    # While the loop is stopped: an entry of the watched identity, which must not be lost.
    d.loop.run(d.sandbox.append("tiles", 1, ALICE))
    # Killed: the old process is gone (MainPID 0 while systemd waits RestartSec=, or already
    # the new one).
    d.wait_for(
        "the watchdog kills the stopped daemon",
        lambda: d.show("MainPID")["MainPID"] != before["MainPID"],
        timeout=WATCHDOG_S + 20,
    )
    killed_within = time.monotonic() - stopped
    d.wait_for(
        "the restarted daemon is ready",
        lambda: _restarted(d.show("ActiveState", "MainPID"), before["MainPID"]),
        timeout=RESTART_S + 30,
    )
    restarted_within = time.monotonic() - stopped
    d.timings["watchdog kill (s)"] = killed_within
    d.timings["watchdog kill + restart (s)"] = restarted_within
    assert "Watchdog timeout" in d.journal_tail() or any(
        "Watchdog timeout" in str(e.get("MESSAGE")) for e in d.journal()
    ), "the daemon was not killed by the watchdog"
    after = d.show("NRestarts")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    # Within WatchdogSec (plus slack for a loaded machine), then RestartSec to the new process.
    assert killed_within < WATCHDOG_S + 5, f"killed {killed_within:.1f}s after SIGSTOP"
    assert restarted_within < WATCHDOG_S + RESTART_S + 15, f"ready {restarted_within:.1f}s after"

    d.wait_for(
        "alice's entry, appended while the daemon was stopped, is alerted after the restart",
        lambda: any(t.startswith("[INFO] identity_seen") for t in d.titles()),
        timeout=30,
    )
    time.sleep(3)  # a repeat would come within a few polls and delivery rounds
    alerts = d.alerts()
    new = [a for a in alerts if a["id"] not in {b["id"] for b in alerts_before}]
    assert [a["kind"] for a in new] == ["identity_seen"], f"lost or repeated: {new}"
    titles = d.titles()
    assert titles[: len(posts_before)] == posts_before
    assert titles[len(posts_before) :] == ["[INFO] identity_seen: tiles-sandbox, rule alice"], (
        f"after the restart the receiver got {titles[len(posts_before) :]}"
    )


def test_stop_drains_and_exits_0(deployment: Deployment) -> None:
    d = deployment
    started = time.monotonic()
    d.container.run("systemctl", "stop", SERVICE, timeout=STOP_TIMEOUT_S + 30)
    elapsed = time.monotonic() - started
    d.timings["stop (s)"] = elapsed
    state = d.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert elapsed < STOP_TIMEOUT_S, f"systemctl stop took {elapsed:.1f}s"
    # ExecMainCode 1 is CLD_EXITED: the daemon exited by itself (not killed by a signal).
    assert state == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",
        "ExecMainStatus": "0",
    }, f"the daemon did not stop cleanly: {state}\n{d.journal_tail()}"
