"""Messages an on-call engineer can act on (issue 12, item 10), delivered for real.

Every alert kind goes through the real notifier and apprise to a local HTTP receiver (json://)
and a local SMTP server (mailto://) from a real SQLite outbox. Each message must say what
happened, on which log, which host raised it, what to do (the line docs/alerts.md carries) and
where that is explained; `split_view` adds the `evidence export` command; watch alerts name the
signer, the artifact digest and the log index in full. The footer's `report alerts --id N`
command, pasted into a shell from another directory, must print exactly that alert.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.cli.main import main
from monitor.config.settings import load_config
from monitor.core.alerts import ON_CALL, Alert, AlertKind, doc_link, fact_key
from monitor.notify.notifier import (
    MAX_BODY,
    MessageOrigin,
    Notifier,
    delivery_targets,
    render_message,
)
from monitor.sandbox import Sandbox
from monitor.store.database import AsyncStore, Delivery, Store
from tests.helpers import Run, cli_command
from tests.integration.receivers import HttpReceiver, SmtpReceiver
from tests.integration.test_engine import Env
from tests.integration.test_scanner import GITHUB, REPO, RULES

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
PASSWORD = "pw-messages-s3cret"
# A real workflow path is often longer than the 160 characters a short detail is cut to.
LONG_WORKFLOW = (
    f"{REPO}/.github/workflows/"
    "publish-signed-release-artifacts-to-the-package-registry-and-container-registry.yml"
    "@refs/heads/feature/rework-the-release-pipeline-for-reproducible-builds"
)
DIGEST = "sha256:" + "5e" * 32


@dataclass(frozen=True)
class Received:
    """One message as each receiver got it: the HTTP post and the e-mail."""

    title: str
    body: str
    subject: str
    mail: str


async def paste(line: str, cwd: Path) -> Run:
    """Run `line` (a command a message shows) in a POSIX shell from `cwd`, as an engineer
    pasting it would; `tlog-monitor` is this checkout's CLI."""
    assert line.startswith("tlog-monitor "), line
    command = shlex.join(cli_command()) + line.removeprefix("tlog-monitor")
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def field(body: str, key: str) -> str:
    """The value of the body's one `key: value` line."""
    values = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith(f"{key}: ")]
    assert len(values) == 1, (key, body)
    return values[0]


def received(http: HttpReceiver, smtp: SmtpReceiver) -> dict[int, Received]:
    """Every alert's message, by alert id, after checking both receivers got the same text."""
    mails = {str(m["Subject"]): SmtpReceiver.text(m) for m in smtp.messages}
    out: dict[int, Received] = {}
    for post in http.posts:
        title, body = str(post.body["title"]), str(post.body["message"])
        alert_id = int(body.split("alert #", 1)[1].split(",", 1)[0])
        assert alert_id not in out, f"alert #{alert_id} delivered twice"
        mail = mails[title]
        # Mail transports fold and re-encode: compare the words.
        assert mail.split() == body.split(), (body, mail)
        out[alert_id] = Received(title, body, title, mail)
    assert len(mails) == len(out)
    return out


def assert_actionable(
    message: Received, alert_id: int, kind: AlertKind, log: str, config_path: Path
) -> str:
    """The lines every message has; returns its report command."""
    body = message.body
    lines = body.splitlines()
    assert message.title.startswith(f"[{kind.severity.value.upper()}] {kind.value}")
    assert f"log: {log}" in lines
    assert f"host: {HOST}" in lines, body
    assert f"to do: {ON_CALL[kind]}" in lines, body
    assert f"guide: {doc_link(kind)}" in lines, body
    assert f"alert #{alert_id}, {kind.severity.value}, raised " in body
    report = field(body, "full record")
    assert shlex.split(report)[1:3] == ["--config", str(config_path)]
    assert report.endswith(f"report alerts --id {alert_id} --format json"), report
    assert len(body) <= MAX_BODY
    return report


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver("monitor", PASSWORD)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path, smtp: SmtpReceiver) -> AsyncIterator[Env]:
    """The sandbox's logs scanned with the release rules, a mirror view of the v1 log, and one
    channel delivering every severity to both receivers."""
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path / "monitor", tmp_path / "monitor" / "config.toml", receiver)
    e.dir.mkdir()
    (e.dir / "ca.pem").write_bytes(sandbox.ca_pem)
    e.write_config(
        views=[sandbox.view_url("mirror")],
        notify=(
            f'[[notify]]\nname = "ops"\nurls = ["{receiver.url("alerts")}", "{smtp.url()}"]\n'
            'min_severity = "info"\n' + RULES
        ),
    )
    text = e.config_path.read_text().replace(
        'origin = "sandbox.tiles.local"\n',
        'origin = "sandbox.tiles.local"\nscan = true\nstart = 0\nfulcio_roots = "ca.pem"\n',
    )
    e.config_path.write_text(text)
    try:
        yield e
    finally:
        await receiver.stop()


async def wait_for_mail(smtp: SmtpReceiver, count: int) -> None:
    for _ in range(100):
        if len(smtp.messages) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} e-mails, got {len(smtp.messages)}")


async def test_split_view_and_unexpected_signer_messages_from_the_sandbox(
    env: Env, smtp: SmtpReceiver, tmp_path: Path
) -> None:
    """End to end: the sandbox's mirror forks and a release is signed by a workflow that is not
    allowed; the messages sent by the real monitor carry everything, and their commands work."""
    await env.sandbox.append("v1", 20)
    await env.sandbox.append("tiles", 5)
    async with env.open() as m:
        assert (await m.check()).alerts == []
        env.sandbox.misbehave("v1", "fork", view="mirror", at=15)
        await env.sandbox.append("v1", 4)
        signed = await env.sandbox.append("tiles", 1, {"uri": LONG_WORKFLOW, "issuer": GITHUB})
        outcome = await m.check()
    alerts = {alert.kind: alert_id for alert_id, alert in outcome.alerts}
    assert set(alerts) == {AlertKind.SPLIT_VIEW, AlertKind.UNEXPECTED_SIGNER}, outcome
    await wait_for_mail(smtp, 2)
    messages = received(env.receiver, smtp)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    split_id = alerts[AlertKind.SPLIT_VIEW]
    split = messages[split_id]
    report = assert_actionable(
        split, split_id, AlertKind.SPLIT_VIEW, "rekor-sandbox", env.config_path
    )
    evidence = field(split.body, "evidence")
    assert evidence.split(" > ")[0].endswith(f"evidence export {split_id}"), evidence

    signer_id = alerts[AlertKind.UNEXPECTED_SIGNER]
    signer = messages[signer_id]
    assert_actionable(
        signer, signer_id, AlertKind.UNEXPECTED_SIGNER, "tiles-sandbox", env.config_path
    )
    assert "rule: release" in signer.body.splitlines()
    # In full: the workflow (the SAN), the index the entry is looked up by, the digest.
    assert field(signer.body, "sans") == f"uri:{LONG_WORKFLOW}"
    assert field(signer.body, "issuer") == GITHUB
    assert field(signer.body, "log_index") == str(signed.first)
    assert any(
        line.startswith("reason: ") and LONG_WORKFLOW in line for line in signer.body.splitlines()
    ), signer.body
    assert "…" not in signer.body
    assert LONG_WORKFLOW in " ".join(signer.mail.split())

    # Pasted from another directory, the footer's command prints that alert and no other; the
    # split view's evidence command writes a document `evidence verify` accepts.
    runs = await asyncio.gather(
        paste(report, elsewhere), paste(field(signer.body, "full record"), elsewhere)
    )
    for run, (alert_id, kind) in zip(
        runs, [(split_id, "split_view"), (signer_id, "unexpected_signer")], strict=True
    ):
        assert run.code == 0, run
        [row] = json.loads(run.out)
        assert (row["id"], row["kind"]) == (alert_id, kind)
    [row] = json.loads(runs[1].out)
    assert row["details"]["identity"]["artifact_digest"] == field(signer.body, "artifact_digest")
    assert row["details"]["log_index"] == signed.first
    run = await paste(evidence, elsewhere)
    assert run.code == 0, run
    document = elsewhere / f"split-view-{split_id}.json"
    assert json.loads(document.read_text())["format"] == "tlog-monitor/evidence"
    verdict = await paste(
        f"tlog-monitor --config {shlex.quote(str(env.config_path))} evidence verify "
        f"{document.name}",
        elsewhere,
    )
    assert verdict.code == 0, verdict


# A representative alert of every kind, with the evidence keys docs/alerts.md lists.
def every_kind() -> list[Alert]:
    identity = {
        "kind": "hashedrekord",
        "api_version": "0.0.1",
        "sans": [f"uri:{LONG_WORKFLOW}"],
        "issuer": GITHUB,
        "build_signer_uri": LONG_WORKFLOW,
        "source_repository_uri": REPO,
        "source_repository_ref": "refs/heads/feature/rework-the-release-pipeline",
        "cert_fingerprint": "ab" * 32,
        "key_fingerprint": "cd" * 32,
        "artifact_digest": DIGEST,
    }
    reasons = [
        f"san {LONG_WORKFLOW} matches {REPO}/.github/workflows/*",
        f"signer {LONG_WORKFLOW} is not among allowed_signers "
        f"({REPO}/.github/workflows/release.yml@refs/tags/*)",
    ]
    watch = {
        "tree_id": "1193050959916656506",
        "tree_index": 90210,
        "log_index": 1234567890123,
        "signer_index": 0,
        "identity": identity,
        "reasons": reasons,
    }
    note = "rekor.sigstore.dev - 1193050959916656506\n1001\nq83=\n\n— rekor.sigstore.dev wNI9aj\n"
    details: dict[AlertKind, dict[str, Any]] = {
        AlertKind.SPLIT_VIEW: {"tree_id": "1", "sizes": [1001, 1001], "note_a": note},
        AlertKind.ROLLBACK: {"tree_id": "1", "view": "primary", "size": 900, "high_water": 1001},
        AlertKind.BAD_SIGNATURE: {"view": "primary", "error": "signed note: no signature"},
        AlertKind.BAD_ENTRY: {"tree_id": "1", "scan_cursor": 4096, "verified_size": 9000},
        AlertKind.UNEXPECTED_SIGNER: watch,
        AlertKind.IDENTITY_SEEN: watch,
        AlertKind.CERTIFICATE_ISSUED: {
            "tree_id": "tiles",
            "tree_index": 90210,
            "log_index": 90210,
            "entry_type": "precert_entry",
            "timestamp": 1_767_225_600_000,
            "certificate_id": "ab" * 32 + ":2c9603ee",
            "identity": {**identity, "kind": "precert_entry", "artifact_digest": None},
            "reasons": reasons[:1],
        },
        AlertKind.UNREADABLE_ENTRY: {"tree_id": "1", "log_index": 77, "error": "not JSON"},
        AlertKind.LOG_STALE: {"tree_id": "1", "verified_size": 1001},
        AlertKind.LOG_ERROR: {"view": "primary", "last_error": "ClientConnectorError: refused"},
        AlertKind.WITNESS_QUORUM: {"view": "witness", "size": 1001, "quorum": 2},
        AlertKind.VIEW_ERROR: {"view": "peer", "reason": "wrong origin"},
        AlertKind.TRUST_CHANGED: {
            "source": "production",
            "change": "key_changed",
            "section": "tlogs",
            "name": "https://log2025-1.rekor.sigstore.dev",
            "before": {"key_id": "ab" * 32},
            "after": {"key_id": "cd" * 32},
            "tuf_versions": {"root": 13, "timestamp": 900, "snapshot": 400, "targets": 21},
        },
        AlertKind.TRUST_ERROR: {"source": "production", "reason": "expired", "errors": 3},
        AlertKind.FROZEN_LOG_GREW: {"tree_id": "tiles", "frozen_size": 1001, "size": 1002},
        AlertKind.SCT_NOT_INCORPORATED: {
            "ct_log": "fulcio-ct",
            "found_in": "rekor entry 90210",
            "sct": {"log_id": "dd" * 32, "timestamp_ms": 1_767_225_600_000},
            "leaf_hash": "ee" * 32,
            "covered_ms": 1_767_398_400_000,
        },
        AlertKind.UNLOGGED_CERTIFICATE: {
            "tree_id": "ct",
            "tree_index": 90210,
            "log_index": 90210,
            "entry_type": "precert_entry",
            "certificate_id": "ab" * 32 + ":2c9603ee",
            "ct_timestamp_ms": 1_767_225_600_000,
            "deadline_ms": 1_767_227_400_000,
            "signer": LONG_WORKFLOW,
            "identity": {**identity, "kind": "precert_entry", "artifact_digest": None},
            "looked": [
                {
                    "log": "rekor",
                    "how": "scan",
                    "trees": {"tiles": 90300},
                    "since_ms": 0,
                    "covered_ms": 1_767_227_500_000,
                }
            ],
        },
    }
    return [
        Alert(
            kind=kind,
            dedup_key=fact_key(kind, "rekor", n),
            summary=f"rekor: what happened, told by the {kind.value} alert\x1b[2J",
            log="rekor",
            rule="release"
            if kind in (AlertKind.UNEXPECTED_SIGNER, AlertKind.IDENTITY_SEEN)
            else None,
            details=details[kind],
        )
        for n, kind in enumerate(AlertKind)
    ]


async def test_every_kind_says_what_where_who_and_what_to_do(
    env: Env,
    smtp: SmtpReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = load_config(env.config_path)
    store = Store.open(config.monitor.database)
    astore = AsyncStore(store)
    try:
        log_id = store.ensure_log("rekor", "rekor-v1", "https://rekor.example", _now())
        raised: dict[int, Alert] = {}
        for alert in every_kind():
            targets = delivery_targets(config.channels, alert.severity)
            with store.transaction() as conn:
                alert_id = store.add_alert(conn, alert, log_id, targets, _now())
            assert alert_id is not None
            raised[alert_id] = alert
        # As the daemon builds it: this host, this configuration.
        notifier = Notifier(
            config.channels, astore, send_timeout=10.0, origin=MessageOrigin.local(config.path)
        )
        round_ = await notifier.deliver_due()
        assert (round_.delivered, round_.failed) == (2 * len(raised), 0)
    finally:
        astore.close()
    await wait_for_mail(smtp, len(raised))
    messages = received(env.receiver, smtp)
    assert set(messages) == set(raised)

    reports: list[tuple[int, str]] = []
    for alert_id, alert in raised.items():
        message = messages[alert_id]
        # What happened: the summary first, its escape sequence shown, not acted on.
        first = message.body.splitlines()[0]
        assert first == f"rekor: what happened, told by the {alert.kind.value} alert\\x1b[2J"
        reports.append(
            (alert_id, assert_actionable(message, alert_id, alert.kind, "rekor", env.config_path))
        )
        has_evidence = any(line.startswith("evidence: ") for line in message.body.splitlines())
        assert has_evidence == (alert.kind is AlertKind.SPLIT_VIEW), message.body
        if alert.kind in (AlertKind.UNEXPECTED_SIGNER, AlertKind.IDENTITY_SEEN):
            body = message.body
            assert field(body, "log_index") == "1234567890123"
            assert field(body, "build_signer_uri") == LONG_WORKFLOW
            assert field(body, "sans") == f"uri:{LONG_WORKFLOW}"
            assert field(body, "artifact_digest") == DIGEST
            assert field(body, "source_repository_ref") == (
                "refs/heads/feature/rework-the-release-pipeline"
            )
            reasons = [line for line in body.splitlines() if line.startswith("reason: ")]
            assert reasons == [f"reason: {r}" for r in alert.details["reasons"]]
            assert "…" not in body

    # Each footer's command, run by the CLI's own entry point from another directory (the
    # sandbox test above pastes them into a shell; in-process keeps eleven runs fast).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for alert_id, command in reports:
        capsys.readouterr()
        assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
        [row] = json.loads(capsys.readouterr().out)
        assert row["id"] == alert_id
        assert row["kind"] == raised[alert_id].kind.value


def _now() -> datetime:
    return datetime.now(UTC)


def delivery(alert: Alert, alert_id: int = 7, **changes: Any) -> Delivery:
    fields: dict[str, Any] = {
        "id": 1,
        "alert_id": alert_id,
        "channel": "ops#00000000",
        "attempts": 0,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "details": alert.details,
        "log_name": alert.log,
        "rule": alert.rule,
        "created_at": "2026-03-01T12:00:00+00:00",
    }
    fields.update(changes)
    return Delivery(**fields)


ORIGIN = MessageOrigin("monitor-01.example", Path("/etc/tlog monitor/config.toml"))


@pytest.mark.parametrize("max_body", [4000, 1500, 600])
@pytest.mark.parametrize("san_length", [200, 5000, 200_000])
def test_hostile_identity_never_pushes_out_the_footer(max_body: int, san_length: int) -> None:
    """A certificate can carry a SAN of any length (any_issuer rules accept any CA): the body
    stays within its limit and the to-do line and commands are always whole."""
    [alert] = [a for a in every_kind() if a.kind is AlertKind.UNEXPECTED_SIGNER]
    san = "uri:https://x.example/" + "a" * san_length + "\x1b]0;pwned\x07"
    identity = {**alert.details["identity"], "sans": [san] * 3}
    details = {**alert.details, "identity": identity, "reasons": [san] * 3}
    details |= {f"field_{i}": "x" * 150 for i in range(40)}
    message = render_message(delivery(alert, details=details), max_body, origin=ORIGIN)
    body = message.body
    assert len(body) <= max_body
    assert "\x1b" not in body and "\x07" not in body
    lines = body.splitlines()
    assert lines[-1] == (
        "full record: tlog-monitor --config '/etc/tlog monitor/config.toml' report alerts "
        "--id 7 --format json"
    )
    assert f"to do: {ON_CALL[AlertKind.UNEXPECTED_SIGNER]}" in lines
    assert "host: monitor-01.example" in lines
    assert "log_index: 1234567890123" in lines
    if san_length == 200 and max_body == 4000:
        assert field(body, "artifact_digest") == DIGEST
        assert field(body, "build_signer_uri") == LONG_WORKFLOW


def test_an_unknown_kind_from_a_newer_database_still_renders() -> None:
    [alert] = [a for a in every_kind() if a.kind is AlertKind.LOG_ERROR]
    body = render_message(delivery(alert, kind="log_on_fire"), origin=ORIGIN).body
    assert "to do: see docs/alerts.md" in body.splitlines()
    assert body.splitlines()[-1].endswith("report alerts --id 7 --format json")


def test_origin_commands_are_quoted_for_a_shell() -> None:
    origin = MessageOrigin("h", Path("/srv/it's here/config.toml"))
    assert shlex.split(origin.report_command(42)) == [
        "tlog-monitor", "--config", "/srv/it's here/config.toml",
        "report", "alerts", "--id", "42", "--format", "json",
    ]  # fmt: skip
    assert shlex.split(origin.evidence_command(42))[-2:] == [">", "split-view-42.json"]
    assert MessageOrigin("h").report_command(3) == "tlog-monitor report alerts --id 3 --format json"


async def test_report_alerts_id_refuses_what_it_cannot_show(env: Env, tmp_path: Path) -> None:
    config = load_config(env.config_path)
    store = Store.open(config.monitor.database)
    try:
        log_id = store.ensure_log("rekor", "rekor-v1", "https://rekor.example", _now())
        alerts = every_kind()[:2]
        ids: list[int] = []
        for alert in alerts:
            with store.transaction() as conn:
                alert_id = store.add_alert(conn, alert, log_id, [], _now())
            assert alert_id is not None
            ids.append(alert_id)
    finally:
        store.close()
    base = f"tlog-monitor --config {shlex.quote(str(env.config_path))} report"
    cases: Sequence[tuple[str, int, str]] = [
        (f"alerts --id {ids[1]}", 0, alerts[1].kind.value),
        (f"alerts --id '#{ids[0]}' --format csv", 0, alerts[0].kind.value),
        ("alerts --id 999", 2, "no alert #999 in the database"),
        (f"alerts --id {ids[0]} --log other", 2, f"no alert #{ids[0]} matching the other filters"),
        ("alerts --id 0", 2, "expected an alert id"),
        ("alerts --id 99999999999999999999", 2, "expected an alert id"),
        ("alerts --id x", 2, "expected an alert id"),
        (f"matches --id {ids[0]}", 2, "--id: only 'report alerts' selects one alert"),
    ]
    runs = await asyncio.gather(*(paste(f"{base} {args}", tmp_path) for args, _, _ in cases))
    for (args, code, text), run in zip(cases, runs, strict=True):
        assert run.code == code, (args, str(run))
        assert text in (run.out if code == 0 else run.err), (args, str(run))
        if code:
            assert "configuration error" not in run.err, (args, run.err)
            assert "Traceback" not in run.err
    assert alerts[0].kind.value not in runs[0].out  # only the alert asked for
