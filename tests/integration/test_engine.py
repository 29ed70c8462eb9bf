"""The checkpoint monitor against the real sandbox log: consistency, split views, rollbacks, bad
signatures and proofs, shard rotation, outages, alert delivery through apprise, and the CLI.

Everything is real: the sandbox serves HTTP on 127.0.0.1, the database is a SQLite file, alerts
go through apprise to a local HTTP receiver and a local SMTP server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.service.daemon import CheckOutcome, Monitor, open_monitor
from monitor.store.database import Store
from tests.helpers import monitor_table, notify_table, write_keys
from tests.integration.receivers import HttpReceiver, SmtpReceiver

CLI = [sys.executable, "-m", "monitor.cli.main"]


@dataclass
class Env:
    """A sandbox, a config file pointing at it, and the receivers its channels deliver to."""

    sandbox: Sandbox
    dir: Path
    config_path: Path
    receiver: HttpReceiver

    def write_config(
        self, *, views: Sequence[str] = (), extra_monitor: str = "", notify: str = ""
    ) -> Path:
        sb = self.sandbox
        write_keys(self.dir, sb)
        views_toml = json.dumps(list(views))
        channel = notify or notify_table(self.receiver, "warning")
        self.config_path.write_text(
            monitor_table(request_timeout="5s", extra=extra_monitor)
            + f"""
[[log]]
name = "rekor-sandbox"
type = "rekor-v1"
url = "{sb.url}"
public_key = "v1.pem"
origin = "{sb.v1_key_name}"
views = {views_toml}

[[log]]
name = "tiles-sandbox"
type = "tiles"
url = "{sb.tiles_url}"
public_key = "tiles.pem"
origin = "{sb.tiles_origin}"

{channel}
"""
        )
        return self.config_path

    def open(
        self, clock: Callable[[], datetime] | None = None
    ) -> AbstractAsyncContextManager[Monitor]:
        config = load_config(self.config_path)
        return open_monitor(config, clock) if clock else open_monitor(config)


@asynccontextmanager
async def started_env(
    sandbox: Sandbox, tmp_path: Path, *, v1: int, tiles: int, views: Sequence[str] = ()
) -> AsyncIterator[Env]:
    """An Env in `tmp_path` with a started receiver and its config written (`views` of the
    rekor log), after `v1` and `tiles` entries are appended to the sandbox's logs."""
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    e.write_config(views=views)
    await sandbox.append("v1", v1)
    await sandbox.append("tiles", tiles)
    try:
        yield e
    finally:
        await receiver.stop()


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    async with started_env(sandbox, tmp_path, v1=20, tiles=300) as e:
        yield e


def kinds(outcome: CheckOutcome) -> list[str]:
    return [a.kind.value for _, a in outcome.alerts]


def states(monitor: Monitor) -> dict[tuple[int, str], tuple[int, int, bool]]:
    return {
        (s.log_id, s.tree_id): (s.verified_size, s.high_water, s.frozen)
        for s in monitor.store.store.log_states()
    }


async def test_honest_growth_over_many_polls_raises_nothing(env: Env) -> None:
    async with env.open() as m:
        for round_ in range(8):
            await env.sandbox.append("v1", 3 + round_)
            await env.sandbox.append("tiles", 97 * round_ + 1)
            outcome = await m.check()
            assert outcome.alerts == [] and outcome.errors == []
        sizes = {tree: size for (_, tree), (size, _, _) in states(m).items()}
    st = env.sandbox.state()
    assert sizes[st["v1"]["treeID"]] == st["v1"]["treeSize"]
    assert sizes["tiles"] == st["tiles"]["treeSize"]
    assert env.receiver.posts == []


async def test_fork_between_two_views_is_one_split_view_with_both_notes(env: Env) -> None:
    env.write_config(views=[env.sandbox.view_url("mirror")])
    async with env.open() as m:
        assert (await m.check()).alerts == []
        env.sandbox.misbehave("v1", "fork", view="mirror", at=15)
        await env.sandbox.append("v1", 4)
        first = await m.check()
        assert kinds(first) == ["split_view"]
        _, alert = first.alerts[0]
        details = alert.details
        assert details["note_a"] != details["note_b"]
        assert "/view/mirror" in details["view_b"]
        assert len(set(details["roots"])) == 2
        # The fork goes on growing with the log, conflicting at every new size: still the one
        # alert (the view serves an inconsistent tree), while honest growth is still verified.
        for _ in range(3):
            await env.sandbox.append("v1", 2)
            assert (await m.check()).alerts == []
        assert states(m)[(1, env.sandbox.state()["v1"]["treeID"])][0] == 30
        assert (
            m.store.store.query("SELECT count(*) AS n FROM checkpoints WHERE view != 'primary'")[0][
                "n"
            ]
            >= 4
        ), "every conflicting checkpoint is kept as evidence"
    assert [t for t in env.receiver.titles() if "split_view" in t] == [
        "[CRITICAL] split_view: rekor-sandbox"
    ]


async def test_rollback_is_alerted_once_and_the_high_water_mark_holds(env: Env) -> None:
    async with env.open() as m:
        await m.check()
        env.sandbox.misbehave("tiles", "rollback", size=200)
        outcome = await m.check()
        assert kinds(outcome) == ["rollback"]
        _, alert = outcome.alerts[0]
        assert alert.details["size"] == 200 and alert.details["high_water"] == 300
        assert alert.details["consistent_with_verified"] is True
        assert (await m.check()).alerts == []
        assert states(m)[(2, "tiles")] == (300, 300, False)


@pytest.mark.parametrize("how", ["corrupt", "wrong_key"])
async def test_bad_signature_is_alerted_and_state_does_not_move(env: Env, how: str) -> None:
    async with env.open() as m:
        await m.check()
        before = states(m)
        env.sandbox.misbehave("v1", "bad_signature", how=how)
        await env.sandbox.append("v1", 5)
        outcome = await m.check()
        # v1 re-signs on every request: the same body badly signed again is the same fact.
        assert kinds(outcome) == ["bad_signature"]
        assert (await m.check()).alerts == []
        assert states(m) == before
        env.sandbox.reset()
        assert (await m.check()).alerts == []
        assert states(m) != before


async def test_bad_consistency_proof_is_a_split_view_with_the_proof_kept(env: Env) -> None:
    async with env.open() as m:
        await m.check()
        before = states(m)
        env.sandbox.misbehave("v1", "bad_proof")
        await env.sandbox.append("v1", 7)
        outcome = await m.check()
        assert kinds(outcome) == ["split_view"]
        _, alert = outcome.alerts[0]
        assert alert.details["proof"], "the failing proof is kept as evidence"
        assert "consistency proof" in alert.details["reason"]
        assert states(m) == before


async def test_shard_rotation_raises_nothing_and_keeps_the_old_tree(env: Env) -> None:
    async with env.open() as m:
        await m.check()
        old_tree = env.sandbox.state()["v1"]["treeID"]
        await env.sandbox.append("v1", 5)
        await env.sandbox.rotate()
        await env.sandbox.append("v1", 9)
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == []
        await env.sandbox.append("v1", 2)
        assert (await m.check()).alerts == []
        st = states(m)
        new_tree = env.sandbox.state()["v1"]["treeID"]
        assert st[(1, old_tree)] == (25, 25, True)
        assert st[(1, new_tree)][0] == 11 and st[(1, new_tree)][2] is False


async def test_unreachable_log_is_log_error_once_and_state_does_not_move(env: Env) -> None:
    async with env.open() as m:
        await m.check()
        before = states(m)
        env.sandbox.misbehave("tiles", "errors", status=500)
        await env.sandbox.append("tiles", 50)
        first = await m.check()
        assert kinds(first) == ["log_error"] and first.errors
        assert (await m.check()).alerts == []
        assert states(m) == before
        env.sandbox.reset()
        assert (await m.check()).errors == []
        assert states(m)[(2, "tiles")][0] == 350


async def test_stale_log_raises_log_stale_once(env: Env) -> None:
    now = [datetime.now(UTC)]
    async with env.open(clock=lambda: now[0]) as m:
        await m.check()
        now[0] += timedelta(minutes=61)
        outcome = await m.check()
        assert sorted(kinds(outcome)) == ["log_stale", "log_stale"]
        now[0] += timedelta(minutes=5)
        assert (await m.check()).alerts == []


async def test_channel_down_then_back_delivers_exactly_once_across_a_restart(
    env: Env, tmp_path: Path
) -> None:
    smtp = SmtpReceiver("monitor", "s3cret-pass")
    smtp.start()
    try:
        env.write_config(
            views=[env.sandbox.view_url("mirror")],
            notify=(
                '[[notify]]\nname = "ops"\n'
                f'urls = ["{env.receiver.url("alerts")}", "{smtp.url()}"]\n'
                'min_severity = "warning"\n'
            ),
        )
        await env.receiver.stop()
        async with env.open() as m:
            await m.check()
            env.sandbox.misbehave("v1", "fork", view="mirror")
            await env.sandbox.append("v1", 1)
            outcome = await m.check()
            assert kinds(outcome) == ["split_view"]
            assert outcome.undelivered == 1  # the email went out; the HTTP receiver is down
        # Restart while the receiver is still down: nothing is lost.
        async with env.open() as m:
            await m.deliver()
            assert m.store.store.pending_count() == 1
        await env.receiver.start()
        now = [datetime.now(UTC) + timedelta(hours=2)]  # past every backoff
        async with env.open(clock=lambda: now[0]) as m:
            await m.deliver()
            await m.deliver()
            assert m.store.store.pending_count() == 0
        assert env.receiver.titles() == ["[CRITICAL] split_view: rekor-sandbox"]
        for _ in range(50):
            if smtp.messages:
                break
            await asyncio.sleep(0.1)
        assert len(smtp.messages) == 1
        assert "split_view" in str(smtp.messages[0]["Subject"])
    finally:
        smtp.stop()


async def run_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_exit_codes_and_reports(env: Env) -> None:
    cfg = str(env.config_path)
    code, out, err = await run_cli("--config", cfg, "check", cwd=env.dir)
    assert code == 0, err
    env.sandbox.misbehave("tiles", "bad_signature")
    code, out, _ = await run_cli("--config", cfg, "check", cwd=env.dir)
    assert code == 1 and "bad_signature" in out
    code, out, _ = await run_cli("--config", cfg, "check", cwd=env.dir)
    assert code == 0, "a known alert is not new"
    env.sandbox.reset()
    env.sandbox.misbehave("v1", "errors", status=503)
    code, out, err = await run_cli("--config", cfg, "check", cwd=env.dir)
    # log_error is a warning: an operational failure (3), not an urgent alert (1).
    assert code == 3 and "log_error" in out, (out, err)
    for what in ("alerts", "checkpoints", "status"):
        for fmt in ("table", "json", "csv"):
            code, out, err = await run_cli(
                "--config", cfg, "report", what, "--format", fmt, cwd=env.dir
            )
            assert code == 0, err
            assert out.strip()
    code, out, _ = await run_cli(
        "--config",
        cfg,
        "report",
        "alerts",
        "--format",
        "json",
        "--log",
        "tiles-sandbox",
        cwd=env.dir,
    )
    rows = json.loads(out)
    assert [r["kind"] for r in rows] == ["bad_signature"]
    assert rows[0]["details"]["note"]


async def test_malformed_config_is_exit_2_naming_the_key(env: Env) -> None:
    env.config_path.write_text(
        env.config_path.read_text().replace('interval = "1s"', 'interval = "soon"')
    )
    code, _, err = await run_cli("--config", str(env.config_path), "check", cwd=env.dir)
    assert code == 2
    assert "interval" in err and "soon" in err


async def test_cli_usage_errors_are_exit_2_with_a_message(env: Env) -> None:
    cfg = str(env.config_path)
    code, _, err = await run_cli("--config", cfg, "check", cwd=env.dir)
    assert code == 0, err
    code, _, err = await run_cli(
        "--config", cfg, "report", "alerts", "--since", "soon", cwd=env.dir
    )
    assert code == 2 and "--since" in err and "Traceback" not in err
    code, _, err = await run_cli(
        "--config", cfg, "notify", "test", "--channel", "nope", cwd=env.dir
    )
    assert code == 2 and "nope" in err and "Traceback" not in err
    code, out, err = await run_cli("--config", cfg, "config", "check", cwd=env.dir)
    assert code == 0 and "rekor-sandbox" in out, err
    # A log the trusted root does not list is caught by `config check`, not at the first poll.
    env.config_path.write_text(
        env.config_path.read_text().replace('public_key = "tiles.pem"', 'trust_root = "production"')
    )
    code, _, err = await run_cli("--config", cfg, "config", "check", cwd=env.dir)
    assert code == 2 and "tiles-sandbox" in err, err


async def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Store.open(path)
    with store.transaction() as c:
        c.execute("INSERT INTO schema_migrations VALUES ('999_future', 'now')")
    store.close()
    from monitor.store.database import StoreError

    with pytest.raises(StoreError, match="newer tlog-monitor"):
        Store.open(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
