"""Logs kept at their final checkpoint, against the real sandbox: a log whose validity window
has ended (`LogConfig.valid_until`, from a [[sigstore]] trust root) is frozen at the checkpoint
polled after its end, never counts as stale, and a consistent growth after that is a
`frozen_log_grew` while the verified state follows the log; an inactive Rekor v1 shard that grows
is the same alert.

Everything is real: the sandbox serves HTTP on 127.0.0.1, the database is a SQLite file, the
configuration is loaded from a file and goes through the daemon's wiring.
"""

from __future__ import annotations

import time
from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config.settings import Config, load_config
from monitor.sandbox import Sandbox
from monitor.sandbox.notes import sign_checkpoint
from monitor.service.daemon import CheckOutcome, Monitor, open_monitor
from tests.helpers import monitor_table, write_keys

TILES = "tiles-sandbox"
V1 = "rekor-sandbox"


def config(sandbox: Sandbox, tmp_path: Path, ended: dict[str, datetime]) -> Config:
    """Both sandbox logs as [[log]] tables; `ended` gives some of them a validity end, as
    discovery from a trust root would."""
    write_keys(tmp_path, sandbox)
    path = tmp_path / "config.toml"
    path.write_text(
        monitor_table(request_timeout="5s")
        + f"""
[[log]]
name = "{V1}"
type = "rekor-v1"
url = "{sandbox.url}"
public_key = "v1.pem"
origin = "{sandbox.v1_key_name}"

[[log]]
name = "{TILES}"
type = "tiles"
url = "{sandbox.tiles_url}"
public_key = "tiles.pem"
origin = "{sandbox.tiles_origin}"
"""
    )
    loaded = load_config(path)
    logs = tuple(replace(log, valid_until=ended.get(log.name)) for log in loaded.logs)
    return replace(loaded, logs=logs)


def kinds(outcome: CheckOutcome) -> list[str]:
    assert outcome.errors == []
    return sorted(a.kind.value for _, a in outcome.alerts)


def trees(monitor: Monitor, log_id: int) -> dict[str, tuple[int, bool]]:
    return {
        s.tree_id: (s.verified_size, s.frozen)
        for s in monitor.store.store.log_states()
        if s.log_id == log_id
    }


def log_ids(monitor: Monitor) -> dict[str, int]:
    return {name: i for i, name in monitor.store.store.log_names().items()}


async def test_an_ended_log_is_frozen_never_stale_and_alerts_when_it_grows(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    now = [datetime.now(UTC)]
    await sandbox.append("tiles", 300)
    await sandbox.append("v1", 20)
    cfg = config(sandbox, tmp_path, {TILES: now[0] - timedelta(hours=1)})
    async with open_monitor(cfg, lambda: now[0]) as m:
        assert kinds(await m.check()) == []
        tiles = log_ids(m)[TILES]
        assert trees(m, tiles) == {"tiles": (300, True)}
        # Past max_stale (1h) without growth: only the open log is stale.
        now[0] += timedelta(minutes=61)
        outcome = await m.check()
        assert kinds(outcome) == ["log_stale"]
        assert [a.log for _, a in outcome.alerts] == [V1]
        # The frozen log grows: one alert, and the verified state follows the proven tree.
        await sandbox.append("tiles", 7)
        await sandbox.append("v1", 1)
        outcome = await m.check()
        assert kinds(outcome) == ["frozen_log_grew"]
        [(_, alert)] = outcome.alerts
        assert alert.log == TILES
        assert (alert.details["frozen_size"], alert.details["size"]) == (300, 307)
        assert trees(m, tiles) == {"tiles": (307, True)}
        assert kinds(await m.check()) == []  # nothing new: nothing more


async def test_a_log_is_frozen_at_the_first_poll_after_its_end(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    now = [datetime.now(UTC)]
    await sandbox.append("tiles", 100)
    cfg = config(sandbox, tmp_path, {TILES: now[0] + timedelta(minutes=5)})
    async with open_monitor(cfg, lambda: now[0]) as m:
        assert kinds(await m.check()) == []
        tiles = log_ids(m)[TILES]
        assert trees(m, tiles) == {"tiles": (100, False)}
        # Entries integrated before the end, seen at the first poll after it: the last growth.
        await sandbox.append("tiles", 5)
        now[0] += timedelta(minutes=6)
        assert kinds(await m.check()) == []
        assert trees(m, tiles) == {"tiles": (105, True)}
        await sandbox.append("tiles", 1)
        assert kinds(await m.check()) == ["frozen_log_grew"]
        assert trees(m, tiles) == {"tiles": (106, True)}


def _grow_inactive_shard(sandbox: Sandbox, bodies: AbstractSet[bytes]) -> None:
    """Append to the sandbox's last inactive v1 shard and re-sign its final checkpoint: a
    frozen shard whose log keeps writing to it (the sandbox has no admin call for this)."""
    core = sandbox.core
    with core.lock:
        old = core.shards[-2]
        old.log.append(sorted(bodies), int(time.time()))
        old.final_checkpoint = sign_checkpoint(
            core.v1_origin(old.tree_id), old.log.size, old.log.root(), core.v1_note_key
        )


async def test_an_inactive_rekor_v1_shard_that_grows_is_alerted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await sandbox.append("v1", 10)
    cfg = config(sandbox, tmp_path, {})
    async with open_monitor(cfg) as m:
        assert kinds(await m.check()) == []
        old_tree = str(sandbox.state()["v1"]["treeID"])
        await sandbox.rotate()
        await sandbox.append("v1", 3)
        assert kinds(await m.check()) == []
        v1 = log_ids(m)[V1]
        assert trees(m, v1)[old_tree] == (10, True)
        _grow_inactive_shard(sandbox, {b"late entry 1", b"late entry 2"})
        outcome = await m.check()
        assert kinds(outcome) == ["frozen_log_grew"]
        assert outcome.alerts[0][1].details["tree_id"] == old_tree
        assert trees(m, v1)[old_tree] == (12, True)
