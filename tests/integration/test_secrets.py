"""Notify URL secrets never leave the configuration: not in logs (debug level, text and JSON),
not in any command's stdout or stderr, not in reports of any format, not in the database file.

One scenario, every path: a channel whose URLs come from the config file (`urls`), the
environment (`urls_env`) and a file (`urls_file`), each carrying tokens in the password, the
path and the query. A real daemon (`tlog-monitor -v run`, a subprocess) polls the sandbox log,
which is made to fork, and delivers the split_view to two URLs that work, one receiver that
answers 500, one port that refuses connections and one URL apprise does not know; then `check`,
`notify test`, `config check` and every report run as the operator would run them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from tests.integration.receivers import LOCALHOST, HttpReceiver, free_port
from tests.integration.test_daemon import NotifySocket, wait_until
from tests.integration.test_engine import Env

ROOT = Path(__file__).resolve().parents[2]

# Every secret of every URL below; each must be absent from everything the monitor writes.
INLINE_PASSWORD = "inlinePw-7Hq2"
INLINE_TOKEN = "inlineTok-Zx81"
ENV_TOKEN = "envTok-Kp40"
ENV_QUERY_SECRET = "envQuery-Ur55"
FILE_PASSWORD = "filePw-Mm03"
FILE_TOKEN = "fileTok-Qa19"
DOWN_TOKEN = "downTok-Lw62"
ODD_TOKEN = "oddSchemeTok-Ee27"
SECRETS = (
    INLINE_PASSWORD,
    INLINE_TOKEN,
    ENV_TOKEN,
    ENV_QUERY_SECRET,
    FILE_PASSWORD,
    FILE_TOKEN,
    DOWN_TOKEN,
    ODD_TOKEN,
)
ENV_VAR = "TLOG_TEST_NOTIFY_URLS"


def assert_clean(where: str, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} leaked into {where}"


class Scene:
    """The sandbox, the receivers, the config and its secret-carrying environment."""

    def __init__(self, env: Env, good: HttpReceiver, failing: HttpReceiver) -> None:
        self.env = env
        self.good = good
        self.failing = failing
        self.dir = env.dir
        self.environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            ENV_VAR: (
                f"{failing.url(f'hooks/{ENV_TOKEN}')}?token={ENV_QUERY_SECRET} "
                f"json://{LOCALHOST}:{free_port()}/hooks/{DOWN_TOKEN}"
            ),
        }

    async def cli(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.cli.main",
            "--config",
            str(self.env.config_path),
            *args,
            cwd=self.dir,
            env=self.environ,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def scene(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Scene]:
    good, failing = HttpReceiver(), HttpReceiver()
    failing.failing = True
    await good.start()
    await failing.start()
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text(
        "# the pager\n"
        f"{good.url(f'hooks/{FILE_TOKEN}', user='monitor', password=FILE_PASSWORD)}\n"
        # A scheme whose every part is redacted (kodi://***); it fails at once (nothing listens).
        f"kodi://monitor:{ODD_TOKEN}@{LOCALHOST}:{free_port()}/\n"
    )
    urls_file.chmod(0o600)
    env = Env(sandbox, tmp_path, tmp_path / "config.toml", good)
    inline = good.url(f"hooks/{INLINE_TOKEN}", user="monitor", password=INLINE_PASSWORD)
    env.write_config(
        views=[sandbox.view_url("mirror")],
        notify=(
            '[[notify]]\nname = "ops"\n'
            f'urls = ["{inline}"]\nurls_env = ["{ENV_VAR}"]\nurls_file = "urls.txt"\n'
            'min_severity = "warning"\n'
        ),
    )
    env.config_path.chmod(0o600)
    await sandbox.append("v1", 10)
    await sandbox.append("tiles", 10)
    try:
        yield Scene(env, good, failing)
    finally:
        await good.stop()
        await failing.stop()


async def run_daemon_until_delivered(scene: Scene, log_format: str) -> str:
    """`-v run` until the split_view reached both working URLs and every other URL failed;
    SIGTERM; returns everything the daemon wrote."""
    notify = NotifySocket(scene.dir / "notify.sock")
    log_file = scene.dir / f"daemon-{log_format}.log"
    with log_file.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.cli.main",
            "-v",
            "--log-format",
            log_format,
            "--config",
            str(scene.env.config_path),
            "run",
            cwd=scene.dir,
            env={**scene.environ, "NOTIFY_SOCKET": str(notify.path)},
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await notify.wait_for("READY=1")
            scene.env.sandbox.misbehave("v1", "fork", view="mirror")
            await scene.env.sandbox.append("v1", 2)
            await wait_until(lambda: len(scene.good.posts) == 2)
            await wait_until(lambda: scene.failing.refused_posts >= 1)
            db = scene.dir / "monitor.db"
            await wait_until(lambda: _failed_deliveries(db) == 3)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            notify.close()
    return log_file.read_text(errors="replace")


def _failed_deliveries(db: Path) -> int:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts > 0"
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def _database_text(db: Path) -> str:
    """Every value of every table, as text."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        values: list[str] = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                values.extend(repr(v) for v in row)
    finally:
        conn.close()
    return "\n".join(values)


def _database_bytes(db: Path) -> Sequence[tuple[str, bytes]]:
    return [
        (f.name, f.read_bytes()) for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if f.exists()
    ]


async def test_notify_secrets_never_appear_in_logs_output_reports_or_database(
    scene: Scene,
) -> None:
    code, out, err = await scene.cli("config", "check")
    assert code == 0, err
    assert "json://***@127.0.0.1" in out and "kodi://***" in out
    assert_clean("config check", out + err)

    daemon_log = await run_daemon_until_delivered(scene, "json")
    # The tokens were really in use: the receivers saw them.
    paths = sorted(p.path for p in scene.good.posts)
    assert paths == [f"/hooks/{FILE_TOKEN}", f"/hooks/{INLINE_TOKEN}"]
    assert '"level":"debug"' in daemon_log and "apprise" in daemon_log
    assert "not delivered" in daemon_log
    assert_clean("the daemon's debug log (JSON)", daemon_log)

    # Debug text logs of a one-shot check, and a notify test that fails for three URLs.
    code, out, err = await scene.cli("-v", "--log-format", "text", "check")
    assert code in (0, 1), err
    assert "DEBUG" in err
    assert_clean("check -v", out + err)
    code, out, err = await scene.cli("-v", "notify", "test")
    assert code == 3, err
    assert "ops#" in err and "URL 3 of 5" in err
    assert_clean("notify test -v", out + err)

    reports = [
        ("report", what, "--format", fmt)
        for what in ("alerts", "matches", "checkpoints", "status")
        for fmt in ("table", "json", "csv")
    ]
    results = await asyncio.gather(*(scene.cli(*args) for args in reports))
    for args, (code, out, err) in zip(reports, results, strict=True):
        assert code == 0, (args, err)
        assert_clean(" ".join(args), out + err)
    alerts_json = results[1][1]
    assert "split_view" in alerts_json

    db = scene.dir / "monitor.db"
    errors = _database_text(db)
    assert "channel ops#" in errors  # deliveries.last_error names the target, not the URL
    assert_clean("the database's rows", errors)
    for name, data in _database_bytes(db):
        assert_clean(f"the database file {name}", data)
