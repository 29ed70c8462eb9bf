"""Issue 12 item 14: what the documentation tells an operator to do works as written.

The sandbox README's configuration and its vkey-to-PEM recipe are taken from the README itself
and run: the recipe's PEM is the tiled log's key, and the README's `[[log]]` tables, pointed at
a running sandbox, pass a real `tlog-monitor check`. docs/reports.md's sqlite3 recipes run on
the database a real `tlog-monitor demo` leaves behind, and answer its questions.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from tests.helpers import Run, cli_command

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_README = ROOT / "monitor" / "sandbox" / "README.md"
REPORTS = ROOT / "docs" / "reports.md"


async def _run(*args: str, cwd: Path) -> Run:
    """`args` in a subprocess (asynchronous: the sandbox shares the event loop)."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def _section(text: str, heading: str) -> str:
    match = re.search(
        rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL
    )
    assert match, f"no '## {heading}' section"
    return match.group(1)


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_readme_recipe_and_config_are_where_the_test_reads_them() -> None:
    section = _section(SANDBOX_README.read_text(encoding="utf-8"), "Monitoring it")
    assert len(_blocks(section, "toml")) == 1
    assert len(_blocks(section, "sh")) == 1


async def test_sandbox_readme_vkey_recipe_and_config_work(sandbox: Sandbox, tmp_path: Path) -> None:
    section = _section(SANDBOX_README.read_text(encoding="utf-8"), "Monitoring it")
    (toml,) = _blocks(section, "toml")
    (recipe,) = _blocks(section, "sh")
    await sandbox.append("tiles", 3)
    await sandbox.append("v1", 3)
    # The README's paths are relative to a config file next to "sandbox-state", where the
    # fixture keeps the sandbox's state.
    assert sandbox.core.state_dir == tmp_path / "sandbox-state"

    # The recipe is a `python3 -c '...' FILE > OUT` line: run its program with this Python.
    match = re.fullmatch(r"python3 -c '(.*)' (\S+) > (\S+)\n", recipe, re.DOTALL)
    assert match, recipe
    program, vkey_file, out_file = match.groups()
    converted = await _run(sys.executable, "-c", program, vkey_file, cwd=tmp_path)
    assert converted.code == 0, converted
    assert converted.out.encode() == sandbox.tiles_public_key_pem
    assert (sandbox.core.state_dir / "tiles.pub.pem").read_bytes() == sandbox.tiles_public_key_pem
    assert out_file == "tiles.pub.pem"

    # Something that is not an Ed25519 vkey is refused with a message, not a traceback.
    for bad in ("name+01234567+AAAA", "no plus signs", "name+01234567+not base64!"):
        (tmp_path / "bad.vkey").write_text(bad + "\n")
        refused = await _run(sys.executable, "-c", program, "bad.vkey", cwd=tmp_path)
        assert refused.code == 1 and "not an Ed25519 vkey" in refused.err, refused

    port = sandbox.url.rsplit(":", 1)[1]
    config = tmp_path / "config.toml"
    config.write_text(
        '[monitor]\ndatabase = "monitor.db"\nhttp_listen = ""\n\n'
        + toml.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    )
    checked = await _run(*cli_command(), "--config", str(config), "check", cwd=tmp_path)
    assert checked.code == 0, checked
    assert "bad_signature" not in checked.out + checked.err


@pytest.mark.parametrize("name", ["rekor.pub.pem", "tiles.pub.pem", "tiles.vkey", "ca.pem"])
def test_sandbox_state_files_named_in_the_readme_exist(sandbox: Sandbox, name: str) -> None:
    assert name in SANDBOX_README.read_text(encoding="utf-8")
    assert (sandbox.core.state_dir / name).is_file()


def test_sqlite3_recipes_answer_on_a_real_database(tmp_path: Path) -> None:
    recipes = _blocks(_section(REPORTS.read_text(encoding="utf-8"), "sqlite3 recipes"), "sql")
    assert len(recipes) >= 4
    demo = subprocess.run(
        [*cli_command(), "demo", "--state", str(tmp_path / "demo")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    (database,) = (tmp_path / "demo").glob("*.db")
    # Read-only, as the recipes tell operators to open it.
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        answers = [[dict(r) for r in db.execute(sql)] for sql in recipes]
        digest = db.execute(
            "SELECT json_extract(identity, '$.artifact_digest') FROM matches "
            "WHERE outcome = 'unexpected_signer'"
        ).fetchone()[0]
        by_digest = [dict(r) for r in db.execute(recipes[2].replace("sha256:" + "0" * 64, digest))]

    # "What signed as my identity this week": the demo's release rule saw the release workflow
    # and the wrong one, each with its signer, digest and global index.
    this_week = answers[0]
    outcomes = {r["outcome"] for r in this_week}
    assert outcomes == {"identity_seen", "unexpected_signer"}, this_week
    for row in this_week:
        assert row["signer"].startswith("https://github.com/example/project/.github/workflows/")
        assert row["artifact_digest"].startswith("sha256:")
        assert isinstance(row["log_index"], int)
    assert sum(r["entries"] for r in answers[1]) == len(this_week)
    assert [r["outcome"] for r in by_digest] == ["unexpected_signer"]
    assert {r["kind"] for r in answers[3]} >= {"split_view", "rollback", "unexpected_signer"}
    assert answers[4] == [], "the demo delivers every alert: nothing is pending"


SYSTEMD_DOC = ROOT / "docs" / "systemd.md"
UNIT = ROOT / "systemd" / "tlog-monitor.service"


def test_systemd_install_sets_secrets_before_enabling_the_unit() -> None:
    install = _blocks(_section(SYSTEMD_DOC.read_text(encoding="utf-8"), "Install"), "sh")[0]
    lines = install.splitlines()

    def first(needle: str) -> int:
        return next(i for i, line in enumerate(lines) if needle in line)

    env_file = re.search(r"^EnvironmentFile=-(\S+)$", UNIT.read_text(encoding="utf-8"), re.M)
    assert env_file, "the unit reads no optional EnvironmentFile"
    secrets = first(f"install -m 0600 /dev/null {env_file.group(1)}")
    assert secrets < first(f"sudoedit {env_file.group(1)}") < first("systemctl enable")
    assert first("config check") < first("systemctl enable")
    assert "install -m 0644" in lines[first("/etc/tlog-monitor/config.toml")]


def test_config_ownership_is_the_same_in_the_unit_and_the_docs() -> None:
    unit_header = "\n".join(
        line.lstrip("# ")
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    systemd_doc = " ".join(SYSTEMD_DOC.read_text(encoding="utf-8").split())
    security_doc = " ".join((ROOT / "docs" / "security.md").read_text(encoding="utf-8").split())
    header = " ".join(unit_header.split())
    assert "/etc/tlog-monitor/config.toml, root:root 0644" in header
    assert "/etc/tlog-monitor/notify.env, root:root 0600" in header
    for text in (systemd_doc, security_doc):
        assert "`0644 root:root`" in text and "`0600 root:root`" in text
        assert "/etc/tlog-monitor/notify.env" in text
