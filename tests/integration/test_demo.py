"""`tlog-monitor demo`, end to end: the real console script, sandbox, monitor and receiver."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from monitor.cli.demo import MARKER, run_demo
from tests.helpers import cli_command

KINDS = ("split_view", "rollback", "bad_signature")


def _run_demo(state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [*cli_command(), "demo", "--state", str(state)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=env,
        check=False,
    )


def _check_output(out: str) -> None:
    assert "no alerts: the log only grew" in out
    for kind in KINDS:
        assert f"critical {kind}: " in out, f"no {kind} alert line"
        assert f"✉ delivered to ops: [CRITICAL] {kind}: " in out, f"no {kind} delivery line"
    raised = [line for line in out.splitlines() if line.startswith("  ⚠ alert #")]
    delivered = [line for line in out.splitlines() if line.startswith("  ✉ delivered to ops")]
    assert len(raised) == len(delivered) == 8
    assert "high unexpected_signer: tiles-sandbox: entry " in out
    assert "✉ delivered to ops: [HIGH] unexpected_signer: tiles-sandbox, rule " in out
    # Step 7: a certificate issued to the deploy workflow, in CT, never used in Rekor.
    step7 = out[out.index("7. Certificates never used in Rekor") :]
    assert "info certificate_issued: ct-sandbox: entry " in step7
    assert "high unlogged_certificate: ct-sandbox: a certificate for " in step7
    assert "deploy.yml@refs/heads/main (rule deploy-certificates)" in step7
    assert "looked in tiles-sandbox (scan to " in step7
    assert "✉ delivered to ops: [HIGH] unlogged_certificate: ct-sandbox, rule " in step7
    assert "report alerts" in out
    assert "DELIVERED  PENDING" in out
    assert "every misbehaviour and signer was caught" in out
    assert "What to try next" in out


def test_demo_runs_and_can_run_again(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    first = _run_demo(state)
    assert first.returncode == 0, first.stdout + first.stderr
    _check_output(first.stdout)
    assert (state / "config.toml").is_file()
    assert (state / MARKER).is_file()

    second = _run_demo(state)  # wipes and recreates the same directory
    assert second.returncode == 0, second.stdout + second.stderr
    _check_output(second.stdout)
    # A fresh database each time: alert ids start again at 1.
    assert "⚠ alert #1 critical split_view" in second.stdout


def test_demo_refuses_to_wipe_a_directory_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    assert run_demo(tmp_path) == 2
    assert precious.read_text() == "keep me"
