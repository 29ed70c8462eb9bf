"""The operator's command line (issue 12, items 6, 12, 13): reports from a shell find the
service's database and never suggest a command that would fork the state; report tables fit
the terminal while JSON and CSV keep everything; global options work after the command;
filters a report does not have are refused; every command has a description; usage errors
are not called configuration errors; a clean `check` ends with one summary line.

Real sandbox logs on 127.0.0.1, real SQLite files, the real CLI as a subprocess."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import pytest

from monitor.cli import reports
from monitor.cli.main import build_parser
from monitor.config.settings import parse_config
from monitor.sandbox import Sandbox
from monitor.store.database import Store
from tests.helpers import Run
from tests.integration.receivers import HttpReceiver
from tests.integration.test_engine import Env
from tests.integration.test_scanner import GITHUB, REPO, scan_config

ROOT = Path(__file__).resolve().parents[2]
# The CLI with the system configuration directory and the service's state directory moved
# into the test's own directory (the rule is the code's; only the two places are the test's).
RELOCATED = (
    "import sys; from pathlib import Path; import monitor.config.settings as c; "
    "c.SYSTEM_CONFIG_DIRECTORY = Path(sys.argv.pop(1)); "
    "c.SYSTEM_STATE_DIRECTORY = Path(sys.argv.pop(1)); "
    "from monitor.cli.main import main; sys.exit(main())"
)
LONG_SIGNER = f"{REPO}/.github/workflows/{'release-' * 12}pipeline.yml@refs/tags/v1.2.3"


async def cli(
    *args: str, cwd: Path, env: Mapping[str, str | None] | None = None, prefix: tuple[str, ...] = ()
) -> Run:
    """`tlog-monitor ARGS...` as a subprocess (`prefix` replaces `-m monitor.cli.main`); `env` adds
    variables to the test's environment, or removes those given as None."""
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    environ.update(PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *(prefix or ("-m", "monitor.cli.main")), *args,
        cwd=cwd, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode("utf-8"), err.decode("utf-8"))


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    e.write_config()
    try:
        yield e
    finally:
        await receiver.stop()


# --- item 6: one database for the service and the shell --------------------------------------


def test_service_and_shell_resolve_the_same_default_database() -> None:
    text = '[[log]]\nname = "r"\ntype = "rekor-v1"\nurl = "https://rekor.sigstore.dev"\n'
    text += 'trust_root = "production"\n'
    system = Path("/etc/tlog-monitor/config.toml")
    service = parse_config(text, path=system, environ={"STATE_DIRECTORY": "/var/lib/tlog-monitor"})
    shell = parse_config(text, path=system, environ={})
    expected = Path("/var/lib/tlog-monitor/tlog-monitor.db")
    assert service.monitor.database == shell.monitor.database == expected
    assert "state directory" in shell.monitor.database_source
    # Anywhere else, a relative database stays next to the configuration file.
    other = parse_config(text, path=Path("/srv/mon/config.toml"), environ={})
    assert other.monitor.database == Path("/srv/mon/tlog-monitor.db")
    assert "configuration file's directory" in other.monitor.database_source


async def test_a_report_from_a_shell_reads_the_services_database(env: Env) -> None:
    etc = env.dir / "etc" / "tlog-monitor"
    state = env.dir / "var" / "lib" / "tlog-monitor"
    etc.mkdir(parents=True)
    state.mkdir(parents=True, mode=0o700)
    config = etc / "config.toml"
    text = env.config_path.read_text().replace('database = "monitor.db"\n', "")
    config.write_text(text.replace('= "v1.pem"', f'= "{env.dir}/v1.pem"').replace(
        '= "tiles.pem"', f'= "{env.dir}/tiles.pem"'
    ))  # fmt: skip
    relocated = ("-c", RELOCATED, str(etc), str(state))
    await env.sandbox.append("v1", 3)

    # The service: systemd sets $STATE_DIRECTORY.
    service = await cli(
        "--config", str(config), "check", cwd=state, env={"STATE_DIRECTORY": str(state)},
        prefix=relocated,
    )  # fmt: skip
    assert service.code == 0, service
    assert (state / "tlog-monitor.db").exists()

    # An operator's shell, same configuration, no $STATE_DIRECTORY: the same database.
    shell = await cli(
        "--config", str(config), "report", "status", "--format", "json", cwd=env.dir,
        env={"STATE_DIRECTORY": None}, prefix=relocated,
    )  # fmt: skip
    assert shell.code == 0, shell
    assert {row["log"] for row in json.loads(shell.out)} == {"rekor-sandbox", "tiles-sandbox"}
    again = await cli(
        "--config", str(config), "check", cwd=env.dir, env={"STATE_DIRECTORY": None},
        prefix=relocated,
    )  # fmt: skip
    assert again.code == 0, again
    assert sorted(p.name for p in etc.iterdir()) == ["config.toml"], "a second database"


async def test_a_missing_database_says_where_it_looked_and_never_suggests_check(
    env: Env,
) -> None:
    env.config_path.write_text(env.config_path.read_text().replace('database = "monitor.db"\n', ""))
    for args in (("report", "alerts"), ("evidence", "export", "1")):
        run = await cli("--config", str(env.config_path), *args, cwd=env.dir)
        assert run.code == 2, run
        assert str(env.dir / "tlog-monitor.db") in run.err, run
        assert "the configuration file's directory" in run.err, run
        assert "check'" not in run.err and "run'" not in run.err, run
        assert "configuration error" not in run.err, run
        assert "Traceback" not in run.err, run
    assert not (env.dir / "tlog-monitor.db").exists(), "a report created the database"


# --- item 12: tables that fit ------------------------------------------------------------------


async def _busy_database(env: Env) -> None:
    """A database with every long value a real run gives: a mirror's long view URL, a failing
    log's long error, a watch rule's long signer and summary."""
    mirror = env.sandbox.view_url("mirror-of-the-production-transparency-log-in-another-region")
    scan_config(env)
    text = env.config_path.read_text().replace("views = []", f'views = ["{mirror}"]')
    env.config_path.write_text(text)
    await env.sandbox.append("v1", 4)
    await env.sandbox.append("tiles", 2)
    await env.sandbox.append("tiles", 1, {"uri": LONG_SIGNER, "issuer": GITHUB})
    first = await cli("--config", str(env.config_path), "check", cwd=env.dir)
    assert first.code == 1, first  # the unexpected signer
    env.sandbox.misbehave("tiles", "errors", status=503)
    second = await cli("--config", str(env.config_path), "check", cwd=env.dir)
    assert second.code == 3, second


REPORTS = {
    "alerts": reports.ALERT_COLUMNS,
    "matches": reports.MATCH_COLUMNS,
    "checkpoints": reports.CHECKPOINT_COLUMNS,
    "status": reports.STATUS_COLUMNS,
}


async def test_report_tables_fit_the_terminal_and_json_csv_keep_everything(env: Env) -> None:
    await _busy_database(env)
    cfg = str(env.config_path)
    # The command as an operator runs it: not a terminal, no $COLUMNS, so 100 columns.
    tables = await asyncio.gather(
        *(cli("--config", cfg, "report", what, cwd=env.dir) for what in REPORTS),
        cli("--config", cfg, "report", "status", cwd=env.dir, env={"COLUMNS": "80"}),
    )
    for what, table in zip([*REPORTS, "status at 80"], tables, strict=True):
        width = 80 if what.endswith("80") else 100
        assert table.code == 0, table
        too_wide = [line for line in table.out.splitlines() if len(line) > width]
        assert not too_wide, f"report {what}, {width} columns:\n{table.out}"
    # ...the signer that does not fit on the row is wrapped onto lines of its own, not lost.
    assert LONG_SIGNER in "".join(line.strip() for line in tables[1].out.splitlines())
    # The same reports of the same database file, in every format and at 80 columns.
    store = Store.open_readonly(env.dir / "monitor.db")
    try:
        built = {
            "alerts": reports.alerts_report(store, details=True),
            "matches": reports.matches_report(store, details=True),
            "checkpoints": reports.checkpoints_report(store),
            "status": reports.status_report(store),
        }
    finally:
        store.close()
    for what, columns in REPORTS.items():
        report = built[what]
        table = reports.render(report, reports.ReportFormat.TABLE, width=80)
        assert max(len(line) for line in table.splitlines()) <= 80, table
        rows = json.loads(reports.render(report, reports.ReportFormat.JSON))
        assert rows and all(tuple(row)[: len(columns)] == columns for row in rows), what
        text = reports.render(report, reports.ReportFormat.CSV)
        parsed = list(csv.reader(io.StringIO(text)))
        assert tuple(parsed[0])[: len(columns)] == columns, what
        assert len(parsed) == len(rows) + 1, what
    # What the table leaves out, cuts or wraps is whole in JSON: the signer, the error, the root.
    assert LONG_SIGNER in {row["signer"] for row in built["matches"].rows}
    status = built["status"].rows
    assert any("503" in (row["last_error"] or "") for row in status), status
    assert all(len(row["verified_root"]) == 64 for row in status if row["verified_root"])
    views = {row["view"] for row in built["checkpoints"].rows}
    assert any("another-region" in view for view in views), views


@pytest.mark.parametrize("width", [40, 60, 80, 100, 160])
def test_render_fits_hostile_long_values_at_every_width(width: int) -> None:
    long = "x" * 500 + " " + "y" * 300
    time = "2026-11-23T11:02:31.645253+00:00"
    cases = [
        (reports.ALERT_COLUMNS, reports.ALERT_TABLE, {"id": 123456, "created_at": time,
            "severity": "critical", "kind": "unexpected_signer", "delivered": 10,
            "pending": 10}),
        (reports.MATCH_COLUMNS, reports.MATCH_TABLE, {"id": 99999, "created_at": time,
            "log_index": 10**12, "outcome": "unexpected_signer", "source": "backfill",
            "alert_id": 99999}),
        (reports.CHECKPOINT_COLUMNS, reports.CHECKPOINT_TABLE, {"size": 10**12,
            "root": "ab" * 32, "first_seen": time, "last_seen": time}),
        (reports.STATUS_COLUMNS, reports.STATUS_TABLE, {"verified_size": 10**12,
            "high_water": 10**12, "frozen": True, "last_ok_at": time, "error_since": time,
            "verified_root": "cd" * 32}),
    ]  # fmt: skip
    for columns, layout, fixed in cases:
        row = {c: fixed.get(c, long) for c in columns}
        text = reports.render(reports.Report(columns, [row], layout), reports.ReportFormat.TABLE,
                              width=width)  # fmt: skip
        assert max(len(line) for line in text.splitlines()) <= width, text
        # Times to the second, hashes shortened on the row; CSV keeps the exact values.
        assert time not in text and "2026-11-23T11:02:31Z" in text
        exact = reports.render(reports.Report(columns, [row], layout), reports.ReportFormat.CSV)
        assert long in exact and time in exact


# --- item 13: rough edges ----------------------------------------------------------------------


async def test_global_options_are_accepted_after_the_command(env: Env) -> None:
    cfg = str(env.config_path)
    elsewhere = env.dir / "elsewhere"  # no ./config.toml: only the option finds it
    elsewhere.mkdir()
    check = await cli("check", "--config", cfg, "--log-format", "json", "-v", cwd=elsewhere)
    assert check.code == 0, check
    assert '"level":"debug"' in check.err.replace(" ", ""), check.err[-2000:]
    for args in (
        ("report", "alerts", "--config", cfg, "--format", "csv"),
        ("config", "check", "--config", cfg),
        ("notify", "test", "--config", cfg),
    ):
        run = await cli(*args, cwd=elsewhere)
        assert run.code == 0, (args, run)
    # Given before and after the command, the one after wins.
    run = await cli("--config", "missing.toml", "config", "check", "--config", cfg, cwd=elsewhere)
    assert run.code == 0, run


async def test_filters_a_report_does_not_have_are_refused(env: Env) -> None:
    cfg = str(env.config_path)
    assert (await cli("--config", cfg, "check", cwd=env.dir)).code == 0
    for args, option in (
        (("report", "alerts", "--rule", "release"), "--rule"),
        (("report", "status", "--rule", "release"), "--rule"),
        (("report", "checkpoints", "--rule", "release"), "--rule"),
        (("report", "status", "--since", "2h"), "--since"),
    ):
        run = await cli("--config", cfg, *args, cwd=env.dir)
        assert run.code == 2 and option in run.err and not run.out, (args, run)
    run = await cli("--config", cfg, "report", "matches", "--rule", "release", cwd=env.dir)
    assert run.code == 0, run


async def test_usage_errors_are_not_called_configuration_errors(env: Env) -> None:
    cfg = str(env.config_path)
    assert (await cli("--config", cfg, "check", cwd=env.dir)).code == 0
    for args, needle in (
        (("report", "alerts", "--since", "soon"), "--since"),
        (("evidence", "export", "424242"), "424242"),
        (("notify", "test", "--channel", "nope"), "nope"),
    ):
        run = await cli("--config", cfg, *args, cwd=env.dir)
        assert run.code == 2, (args, run)
        assert needle in run.err and "configuration error" not in run.err, (args, run)
        assert run.err.startswith("tlog-monitor: error: "), (args, run)
    # A real configuration error still says so.
    env.config_path.write_text(env.config_path.read_text().replace('"1s"', '"soon"'))
    run = await cli("--config", cfg, "report", "alerts", cwd=env.dir)
    assert run.code == 2 and "configuration error" in run.err, run


async def test_a_clean_check_prints_one_summary_line(env: Env) -> None:
    scan_config(env)
    await env.sandbox.append("v1", 7)
    await env.sandbox.append("tiles", 5)
    run = await cli("--config", str(env.config_path), "check", cwd=env.dir)
    assert run.code == 0, run
    assert run.out.splitlines() == [
        "checked 2 logs (rekor-sandbox 7, tiles-sandbox 5): 5 entries scanned, "
        "0 new alert(s), 0 error(s)"
    ], run
    await env.sandbox.append("tiles", 2)
    run = await cli("--config", str(env.config_path), "check", cwd=env.dir)
    assert run.out.splitlines()[-1].startswith("checked 2 logs (rekor-sandbox 7, tiles-sandbox 7)")
    assert "2 entries scanned" in run.out, run


def _leaf_commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _leaf_commands(sub, (*prefix, name))


@pytest.mark.parametrize(
    ("path", "sub"), list(_leaf_commands(build_parser())), ids=lambda v: " ".join(v) if
    isinstance(v, tuple) else "",
)  # fmt: skip
def test_every_command_has_a_description(
    path: tuple[str, ...], sub: argparse.ArgumentParser
) -> None:
    assert sub.description and len(sub.description) > 20, f"'{' '.join(path)}' has no description"


async def test_help_of_run_check_and_sandbox_describes_them(tmp_path: Path) -> None:
    for command, words in (("run", "SIGHUP"), ("check", "summary"), ("sandbox", "admin API")):
        run = await cli(command, "--help", cwd=tmp_path)
        assert run.code == 0 and words in run.out, run
        assert "global options" in run.out, run
