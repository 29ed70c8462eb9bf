"""`tlog-monitor demo`: a guided tour, offline, in a few seconds.

It starts the sandbox log (`monitor.sandbox`) on 127.0.0.1, writes a real config.toml for it, opens
the monitor on that config (`monitor.service.daemon.open_monitor`) with a local notification
receiver as its only channel, then makes the sandbox misbehave step by step. After each step the
monitor polls every log once and runs one delivery round, as the daemon's jobs do; the demo prints
each alert as the monitor raises it and each notification as the receiver gets it, and ends with the
`report alerts` table.

Exit status: 0 when every expected alert was raised and delivered exactly once (and nothing else
was raised), 1 otherwise (the failed expectations are named), 2 when the state directory cannot be
used.

The state directory (default `demo-state`) is wiped and recreated on each run; to protect a
directory given by mistake, only an empty directory or one this demo created (it holds a marker
file) is wiped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.cli.reports import ReportFormat, alerts_report, render
from monitor.config.settings import load_config
from monitor.core.alerts import Alert
from monitor.core.errors import MonitorError
from monitor.sandbox import Sandbox
from monitor.sandbox.ca import Identity
from monitor.service.daemon import Monitor, open_monitor
from monitor.store.database import Store

__all__ = ["run_demo"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

HOST = "127.0.0.1"
MARKER = ".tlog-monitor-demo"
V1_LOG = "rekor-sandbox"
TILES_LOG = "tiles-sandbox"
CT_LOG = "ct-sandbox"
MIRROR = "mirror"
CHANNEL = "ops"
RULE = "release-signing"
CT_RULE = "deploy-certificates"
UNLOGGED_AFTER = timedelta(minutes=5)
GITHUB = "https://token.actions.githubusercontent.com"
REPO = "https://github.com/example/project"
RELEASE = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.4.0"
INTRUDER = f"{REPO}/.github/workflows/ci.yml@refs/heads/fix-typo"
DEPLOY = f"{REPO}/.github/workflows/deploy.yml@refs/heads/main"
DELIVERY_WAIT_S = 5.0
"""How long to wait for the receiver to get a notification the monitor has sent."""
TTY_PAUSE_S = 1.5
"""Pause between steps when a person is watching (stdout is a terminal)."""

# Loggers quieted during the demo (the CLI logs at INFO): the narration says what happens.
_QUIET_LOGGERS = ("monitor", "aiohttp", "apprise", "urllib3", "apscheduler", "asyncio")

_ALERT_ID_RE = re.compile(r"alert #(\d+)")


@dataclass(frozen=True)
class _Marks:
    """The symbols that start narration lines; ASCII when the output cannot encode the others."""

    alert: str = "⚠"
    mail: str = "✉"
    ok: str = "✓"
    bad: str = "✗"

    @classmethod
    def for_stream(cls, stream: TextIO) -> _Marks:
        marks = cls()
        try:
            "".join((marks.alert, marks.mail, marks.ok, marks.bad, "…")).encode(
                getattr(stream, "encoding", None) or "utf-8"
            )
        except (UnicodeError, LookupError):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors="replace")  # the report table shortens cells with "…"
            return cls(alert="[!]", mail="[>]", ok="[ok]", bad="[FAILED]")
        return marks


def run_demo(state: Path, *, out: TextIO | None = None, pause: float | None = None) -> int:
    """Run the demo in `state` (wiped first); returns the exit status.

    `out` receives the narration (default stdout); `pause` is the delay between steps (default
    `TTY_PAUSE_S` when `out` is a terminal, else none).
    """
    stream = out if out is not None else sys.stdout
    if pause is None:
        pause = TTY_PAUSE_S if _isatty(stream) else 0.0
    try:
        _fresh_state_dir(state)
    except (OSError, MonitorError) as e:
        print(f"tlog-monitor demo: {e}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    with _quiet_logging():
        code = asyncio.run(_Demo(state, stream, pause, _Marks.for_stream(stream)).run())
    stream.write(f"\n(demo finished in {time.monotonic() - started:.1f} s)\n")
    stream.flush()
    return code


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _fresh_state_dir(state: Path) -> None:
    """Wipe and recreate `state`, refusing a non-empty directory the demo did not create."""
    if state.exists():
        if not state.is_dir():
            raise MonitorError(f"{state} exists and is not a directory")
        if any(state.iterdir()) and not (state / MARKER).exists():
            raise MonitorError(
                f"{state} is not empty and was not created by the demo; refusing to wipe it "
                "(choose another directory with --state)"
            )
        shutil.rmtree(state)
    # Private whatever the umask: the monitor refuses a database directory others can write.
    state.mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    (state / MARKER).write_text("created by `tlog-monitor demo`; wiped on every demo run\n")


@contextmanager
def _quiet_logging() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    try:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# --- the local notification receiver ---------------------------------------------------------


@dataclass
class _Receiver:
    """An HTTP endpoint for apprise's json:// plugin: prints and counts what arrives."""

    out: TextIO
    channel: str
    marks: _Marks
    port: int = 0
    by_alert: Counter[int] = field(default_factory=Counter)
    unrecognised: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://{HOST}:{self.port}/alerts"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            post: dict[str, Any] = await request.json()
        except ValueError:
            return web.Response(status=400, text="expected JSON")
        title = str(post.get("title", ""))
        message = str(post.get("message", post.get("body", "")))
        found = _ALERT_ID_RE.search(message)
        if found is None:
            self.unrecognised += 1
            self.out.write(f"  {self.marks.mail} delivered to {self.channel}: {title}\n")
        else:
            alert_id = int(found.group(1))
            self.by_alert[alert_id] += 1
            self.out.write(
                f"  {self.marks.mail} delivered to {self.channel}: {title} (alert #{alert_id})\n"
            )
        self.out.flush()
        return web.Response(text="ok")

    async def wait_for(self, alert_ids: list[int], timeout: float) -> bool:
        """Whether every alert in `alert_ids` arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not all(self.by_alert[i] for i in alert_ids):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


# --- the configuration -------------------------------------------------------------------------


def _tiles_pem(sb: Sandbox) -> bytes:
    key = Ed25519PublicKey.from_public_bytes(sb.tiles_verifier().public_bytes)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_config(state: Path, sb: Sandbox, notify_url: str) -> Path:
    """Write the demo's config.toml (with the two log keys and the sandbox's CA) into `state`;
    returns its path."""
    (state / "rekor-sandbox.pem").write_bytes(sb.v1_public_key_pem)
    (state / "tiles-sandbox.pem").write_bytes(_tiles_pem(sb))
    (state / "sandbox-ca.pem").write_bytes(sb.ca_pem)
    (state / "ct-sandbox.pem").write_bytes(sb.ct_public_key_pem)
    path = state / "config.toml"
    path.write_text(
        f"""\
# The configuration `tlog-monitor demo` used: a complete monitor for the sandbox log.
# Relative paths are relative to this file. Copy it to start your own; docs/ explains every key.
# The sandbox ran on a random port, which is gone now. To use this file as it is, serve the same
# sandbox again on that port:
#   tlog-monitor sandbox --state {state / "sandbox"} --port {sb.url.rsplit(":", 1)[1]}
#   tlog-monitor --config {path} check
# (any other port works after changing the URLs below). The demo's notification receiver is gone
# too: put your own apprise URL in [[notify]].

[monitor]
database = "tlog-monitor.db"    # SQLite: checkpoints seen, verified state, alerts, deliveries
interval = "1s"                 # poll every log this often (production: "60s")
error_grace = "0s"              # raise log_error on the first failure (production: "10m")
http_listen = ""                # no /metrics, /healthz, /checkpoints endpoint for the demo

# The sandbox's Rekor v1 REST API, pinned to its ECDSA P-256 key.
[[log]]
name = "{V1_LOG}"
type = "rekor-v1"
url = "{sb.url}"
public_key = "rekor-sandbox.pem"   # production Rekor: trust_root = "production" instead
origin = "{sb.v1_key_name}"   # the signing key name; each tree's origin is "<name> - <treeID>"
# A second place serving the same log's checkpoint (a mirror, a peer, a witness): two validly
# signed checkpoints from any pair of views that cannot both be true raise split_view.
views = ["{sb.view_url(MIRROR)}"]

# The sandbox's tiled log (C2SP tlog-tiles, like Rekor v2), pinned to its Ed25519 key.
# Every new entry is fetched and hashed into the tree (scan = true is the default for tiles).
[[log]]
name = "{TILES_LOG}"
type = "tiles"
url = "{sb.tiles_url}"
public_key = "tiles-sandbox.pem"
origin = "{sb.tiles_origin}"
start = 0                       # scan from the first entry (default: from the first poll's size)
# The CA that issues this log's signing certificates (production: trust_root's Fulcio CAs).
# Certificates from elsewhere never count as a watched identity: anyone can self-sign one.
fulcio_roots = "sandbox-ca.pem"

# The sandbox CA's certificate transparency log (RFC 6962, like Fulcio's ctfe.sigstore.dev):
# every certificate the CA issues is logged here, whether or not it is ever used in Rekor.
[[log]]
name = "{CT_LOG}"
type = "ct"
url = "{sb.view_url("ctfe")}"
public_key = "ct-sandbox.pem"
scan = true
start = 0
fulcio_roots = "sandbox-ca.pem"

# Identity monitoring: releases of example/project must be signed by its release workflow
# on a tag. Any other workflow of the repository signing is unexpected_signer (high); the
# release workflow itself is identity_seen (info).
[[watch]]
name = "{RULE}"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/*"
allowed_signers = ["{REPO}/.github/workflows/release.yml@refs/tags/*"]
logs = ["{V1_LOG}", "{TILES_LOG}"]

# Certificates: every certificate issued to the deploy workflow shows in CT (certificate_issued,
# info); one that no Rekor log shows used within unlogged_after is unlogged_certificate (high):
# someone signed with the workflow's identity without Rekor (production: the default "30m").
[[watch]]
name = "{CT_RULE}"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/deploy.yml@*"
logs = ["{TILES_LOG}", "{CT_LOG}"]
unlogged_after = "{int(UNLOGGED_AFTER.total_seconds() // 60)}m"

# Where alerts go: any apprise URL (slack://, mailtos://, ntfys://, ...). The demo's is a small
# HTTP receiver it ran itself.
[[notify]]
name = "{CHANNEL}"
urls = ["{notify_url}"]
min_severity = "info"           # everything; production channels often use "warning"
"""
    )
    return path


# --- the tour ------------------------------------------------------------------------------


@dataclass
class _Step:
    title: str
    expected: list[str]
    raised: list[tuple[int, Alert]] = field(default_factory=list)


class _Demo:
    def __init__(self, state: Path, out: TextIO, pause: float, marks: _Marks) -> None:
        self.state = state
        self.out = out
        self.pause = pause
        self.marks = marks
        self.failures: list[str] = []
        self.steps: list[_Step] = []
        self.receiver = _Receiver(out, CHANNEL, marks)
        self.offset = timedelta(0)
        """How far the demo has moved the monitor's clock ahead (step 7)."""

    def clock(self) -> datetime:
        """The monitor's clock: the real one, moved ahead by `offset`."""
        return datetime.now(UTC) + self.offset

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def run(self) -> int:
        state = self.state
        self.say(f"tlog-monitor demo: a local sandbox log, the monitor, and a receiver ({state})")
        await self.receiver.start()
        sb = Sandbox(state / "sandbox")
        try:
            await sb.start(HOST, 0)
            config_path = write_config(state, sb, self.receiver.url)
            self.say(f"  sandbox log:  {sb.url}  (Rekor v1 API, a tiled log, a CT log, views)")
            self.say(f"  receiver:     http://{HOST}:{self.receiver.port}/alerts  (channel ops)")
            self.say(f"  config:       {config_path}")
            config = load_config(config_path)
            async with open_monitor(config, clock=self.clock) as m:
                await self._tour(m, sb)
        finally:
            await sb.stop()
            await self.receiver.stop()
        self._check_deliveries()
        self._report(config_path)
        return self._verdict(config_path)

    async def _tour(self, m: Monitor, sb: Sandbox) -> None:
        await self._section(
            "1. Both logs grow honestly. At each poll the monitor verifies the signed checkpoint",
            "   and proves the new tree extends the one it verified before (consistency).",
        )
        step = self._step("honest growth", [])
        for v1_count, tiles_count in ((5, 300), (7, 500), (4, 200)):
            await sb.append("v1", v1_count)
            tiles = await sb.append("tiles", tiles_count)
            v1_size = _v1_size(sb)
            self.say(f"   poll: {V1_LOG} has {v1_size} entries, {TILES_LOG} has {tiles.size}")
            await self._poll(m, step)
        if not step.raised:
            self.say(f"  {self.marks.ok} no alerts: the log only grew")
        self._expect(step)
        tiles_size = _tiles_size(sb)

        await self._section(
            f"2. The mirror of {V1_LOG} now shows a different tree of the same size "
            "(a split view):",
            "   both checkpoints are validly signed, but they cannot both be true. "
            "Expect split_view.",
        )
        sb.misbehave("v1", "fork", view=MIRROR)
        await sb.append("v1", 3)
        await self._poll_step(m, "fork on the mirror", ["split_view"])

        rollback_to = tiles_size - 700
        await self._section(
            f"3. Honest again; then {TILES_LOG} serves an old, validly signed checkpoint: size "
            f"{rollback_to}",
            f"   after the monitor has seen {tiles_size}. Expect rollback.",
        )
        sb.reset()
        sb.misbehave("tiles", "rollback", size=rollback_to)
        await self._poll_step(m, "rollback", ["rollback"])

        await self._section(
            f"4. Honest again; then {TILES_LOG} signs badly: one bit of its checkpoint "
            "signature is",
            "   flipped. Expect bad_signature.",
        )
        sb.reset()
        sb.misbehave("tiles", "bad_signature")
        await self._poll_step(m, "bad signature", ["bad_signature"])

        await self._section(
            f"5. Honest again; then {V1_LOG} grows but serves a consistency proof that does not "
            "hold:",
            "   the new tree may have rewritten history. Expect split_view (a failed proof).",
        )
        sb.reset()
        sb.misbehave("v1", "bad_proof")
        await sb.append("v1", 5)
        await self._poll_step(m, "bad proof", ["split_view"])

        await self._section(
            f"6. Identities: {TILES_LOG} logs a release signed by example/project's release "
            "workflow,",
            "   then one signed by its CI workflow on a branch. The monitor scans every new entry,",
            f"   proves it is in the verified tree and matches rule {RULE}. Expect identity_seen "
            "and",
            "   unexpected_signer.",
        )
        sb.reset()
        await sb.append("tiles", 40)
        await sb.append("tiles", 1, {"uri": RELEASE, "issuer": GITHUB})
        await sb.append("tiles", 25)
        await sb.append("tiles", 1, {"uri": INTRUDER, "issuer": GITHUB})
        await self._poll_step(m, "unexpected signer", ["identity_seen", "unexpected_signer"])

        minutes = int(UNLOGGED_AFTER.total_seconds() // 60)
        await self._section(
            "7. Certificates never used in Rekor: the sandbox CA (Fulcio's stand-in) issues a "
            "certificate",
            f"   to example/project's deploy workflow and logs it in {CT_LOG}, but no signature "
            "with it",
            f"   reaches Rekor ({TILES_LOG}). Expect certificate_issued now; then, the monitor's "
            f"clock moved",
            f"   {minutes + 1} minutes on (rule {CT_RULE} allows {minutes}), unlogged_certificate.",
        )
        step = self._step("unlogged certificate", ["certificate_issued", "unlogged_certificate"])
        sb.core.ca.signer(Identity(uri=DEPLOY, issuer=GITHUB))
        await self._poll(m, step)
        self.offset += UNLOGGED_AFTER + timedelta(minutes=1)
        # Rekor keeps growing with other signatures: a tree it first serves after the deadline
        # holds everything an honest log was given before it, and none of it uses the certificate.
        await sb.append("tiles", 5)
        self.say(
            f"   {minutes + 1} minutes later (the monitor's clock), {TILES_LOG} has grown, "
            "still no entry with it:"
        )
        await self._poll(m, step)
        self._expect(step)

    async def _section(self, *lines: str) -> None:
        """Start a step of the tour: a pause for a watching person, a blank line, its narration."""
        await self._pause()
        self.say()
        for line in lines:
            self.say(line)

    async def _poll_step(self, m: Monitor, title: str, expected: list[str]) -> None:
        """A step that is one poll: record it, poll, and check it raised the kinds expected."""
        step = self._step(title, expected)
        await self._poll(m, step)
        self._expect(step)

    def _step(self, title: str, expected: list[str]) -> _Step:
        step = _Step(title, expected)
        self.steps.append(step)
        return step

    async def _pause(self) -> None:
        if self.pause:
            await asyncio.sleep(self.pause)

    async def _poll(self, m: Monitor, step: _Step) -> None:
        """Poll every log once, show what was raised, deliver, and wait for the receiver.

        Polling and delivery are the daemon's two jobs (`Monitor.check` runs them back to back);
        they are called one after the other here so that each alert is shown before its
        notification arrives.
        """
        results = await asyncio.gather(*(m.poll(name) for name in m.logs))
        raised = [pair for result in results for pair in result.alerts]
        for result in results:
            for error in result.errors:
                self.say(f"  ! error: {error}")
        for alert_id, alert in raised:
            severity, kind = alert.severity.value, alert.kind.value
            self.say(f"  {self.marks.alert} alert #{alert_id} {severity} {kind}: {alert.summary}")
        step.raised.extend(raised)
        await m.deliver()
        ids = [alert_id for alert_id, _ in raised]
        if ids and not await self.receiver.wait_for(ids, DELIVERY_WAIT_S):
            missing = [i for i in ids if not self.receiver.by_alert[i]]
            self.say(f"  ! not delivered within {DELIVERY_WAIT_S:g} s: alert(s) {missing}")

    def _expect(self, step: _Step) -> None:
        """Record a failure unless the step raised exactly the alert kinds it expected."""
        kinds = [alert.kind.value for _, alert in step.raised]
        if sorted(kinds) != sorted(step.expected):
            expected = ", ".join(step.expected) or "no alert"
            got = ", ".join(kinds) or "no alert"
            self.failures.append(f"step '{step.title}': expected {expected}, got {got}")
            self.say(f"  ! expected {expected}, got {got}")

    def _check_deliveries(self) -> None:
        raised = [alert_id for step in self.steps for alert_id, _ in step.raised]
        for alert_id in raised:
            count = self.receiver.by_alert[alert_id]
            if count != 1:
                self.failures.append(f"alert #{alert_id} was delivered {count} time(s), not once")
        strays = sorted(set(self.receiver.by_alert) - set(raised))
        if strays or self.receiver.unrecognised:
            self.failures.append(
                f"the receiver got notifications for alerts the demo did not raise: {strays} "
                f"(+{self.receiver.unrecognised} unrecognised)"
            )

    def _report(self, config_path: Path) -> None:
        self.say()
        self.say(f"$ tlog-monitor --config {config_path} report alerts")
        config = load_config(config_path)
        store = Store.open(config.monitor.database)
        try:
            report = alerts_report(store)
        finally:
            store.close()
        self.out.write(render(report, ReportFormat.TABLE))
        for row in report.rows:
            if row["delivered"] != 1 or row["pending"] != 0:
                self.failures.append(
                    f"alert #{row['id']}: the database records {row['delivered']} delivery(ies) "
                    f"and {row['pending']} pending, expected 1 and 0"
                )

    def _verdict(self, config_path: Path) -> int:
        self.say()
        if self.failures:
            self.say(f"{self.marks.bad} the demo did not go as expected:")
            for failure in self.failures:
                self.say(f"  - {failure}")
            return EXIT_FAILED
        count = sum(len(step.raised) for step in self.steps)
        self.say(
            f"{self.marks.ok} every misbehaviour and signer was caught: {count} alerts, "
            f"each delivered once to {CHANNEL}."
        )
        self.say()
        self.say("What to try next:")
        hints = (
            (
                "tlog-monitor sandbox --state sandbox-state",
                "serve the sandbox log; make it lie with its admin API",
            ),
            (str(config_path), "the commented config this demo used: copy it"),
            ("tlog-monitor config example", "the complete example config for the public logs"),
            (_docs_dir(), "operator guide, alert and report reference, threat model"),
        )
        width = max(len(what) for what, _ in hints)
        for what, why in hints:
            self.say(f"  {what.ljust(width)}  {why}")
        return EXIT_OK


def _docs_dir() -> str:
    """Where the documentation is: installed with the package (a wheel puts it under the
    environment's share/doc), else the checkout this module runs from, else the package's name
    for a search."""
    for docs in (
        Path(sys.prefix) / "share" / "doc" / "tlog-monitor" / "docs",
        Path(__file__).resolve().parents[1] / "docs",
    ):
        if (docs / "alerts.md").is_file():
            return f"{docs}/"
    return "docs/ of the tlog-monitor sources"


def _v1_size(sb: Sandbox) -> int:
    state = sb.state()["v1"]
    assert isinstance(state, dict)
    return int(state["globalSize"])


def _tiles_size(sb: Sandbox) -> int:
    state = sb.state()["tiles"]
    assert isinstance(state, dict)
    return int(state["treeSize"])
