"""Following Sigstore's trust as it changes (issue 14), against real parts: a TUF repository
built with python-tuf's Metadata API and served on 127.0.0.1 (tests/tuf_repo.py) lists the
sandbox's tiled logs as Rekor v2 shards; the monitor reads it through `[[sigstore]]`.

- a running daemon picks up a new shard (verified and scanned from index 0) and a key rotation
  (`trust_changed`, then the old key's checkpoints fail) with no restart and no config edit;
- every TUF failure (expired timestamp, targets rollback, metadata signed by a wrong key) is a
  `trust_error` and the last good trust is kept; a root rotation is followed;
- a shard whose window ended is kept frozen at its checkpoint, and alerted if it grows;
- a Rekor log whose key type cannot be verified is alerted, not silently dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from monitor.config.settings import Config, load_config
from monitor.core.chain import MAX_BUNDLE_CERTIFICATES
from monitor.sandbox import Sandbox
from monitor.service.daemon import Daemon, open_monitor
from monitor.service.trust_watch import TrustWatcher
from monitor.store.database import AsyncStore, Store
from tests.helpers import monitor_table, tiles_pem
from tests.tuf_repo import Tlog, TufRepo, serve, trusted_root

pytestmark = pytest.mark.usefixtures("permissive_umask")

TRUSTED_ROOT = "trusted_root.json"
ORIGIN = "127.0.0.1/tiles"
"""The origin of every sandbox shard: its URL without scheme and port (Sigstore's convention)."""
EMAIL = "security@example.com"


def fresh_key_pem() -> bytes:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@dataclass
class World:
    """Sandbox shards, the TUF repository listing them, and a monitor configuration."""

    dir: Path
    repo: TufRepo
    url: str
    shards: list[Sandbox] = field(default_factory=list)

    def tlog(self, shard: Sandbox, **kw: str | None) -> Tlog:
        return Tlog(shard.tiles_url, tiles_pem(shard).encode(), **kw)  # type: ignore[arg-type]

    def publish(self, *tlogs: Tlog) -> None:
        # Each sandbox has its own Fulcio-like CA: the trust root lists them all.
        ca = [shard.ca_pem for shard in self.shards]
        self.repo.publish_targets({TRUSTED_ROOT: trusted_root(tlogs, ca)})

    def config(self, *, refresh: str = "1s", interval: str = "1s", extra: str = "") -> Config:
        (self.dir / "root.json").write_bytes(self.repo.bootstrap)
        path = self.dir / "config.toml"
        path.write_text(
            monitor_table(request_timeout="5s", interval=interval)
            + f"""
[[sigstore]]
name = "local"
url = "{self.url}"
root = "root.json"
refresh = "{refresh}"
allow_insecure_http = true

[[watch]]
name = "security-email"
issuer = "https://accounts.google.com"
email = "{EMAIL}"
{extra}
"""
        )
        return load_config(path)

    def alerts(self, kind: str | None = None) -> list[sqlite3.Row]:
        return query(
            self.dir / "monitor.db",
            "SELECT a.*, l.name AS log_name FROM alerts a LEFT JOIN logs l ON l.id = a.log_id"
            + (" WHERE a.kind = ?" if kind else "")
            + " ORDER BY a.id",
            (kind,) if kind else (),
        )

    def states(self) -> dict[str, sqlite3.Row]:
        rows = query(
            self.dir / "monitor.db",
            "SELECT l.name, l.source, s.* FROM log_state s JOIN logs l ON l.id = s.log_id",
        )
        return {r["name"]: r for r in rows}


def query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


async def new_shard(world: World, name: str) -> Sandbox:
    shard = Sandbox(world.dir / name, tiles_origin=ORIGIN)
    await shard.start()
    world.shards.append(shard)
    return shard


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    repo = TufRepo(tmp_path / "repo", {})
    with serve(repo.directory) as url:
        w = World(tmp_path, repo, url)
        try:
            yield w
        finally:
            for shard in w.shards:
                await shard.stop()


async def eventually(predicate: object, timeout: float = 30.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        await asyncio.sleep(0.2)


async def test_a_running_daemon_follows_a_new_shard_and_a_key_rotation(world: World) -> None:
    a = await new_shard(world, "a")
    b = await new_shard(world, "b")
    await a.append("tiles", 3)
    # The new shard already holds a watched identity at index 0: it must be scanned from 0.
    await b.append("tiles", 1, {"email": EMAIL})
    await b.append("tiles", 2)
    world.publish(world.tlog(a))
    config = world.config()
    daemon = Daemon(config.path, config)
    task = asyncio.create_task(daemon.run())
    try:
        await eventually(lambda: len(world.states()) == 1, what="shard a verified")
        [(name_a, state_a)] = world.states().items()
        assert state_a["source"] == "local" and state_a["verified_size"] == 3
        assert not world.alerts("trust_changed")  # the first trust seen is recorded, not alerted

        world.publish(world.tlog(a), world.tlog(b))
        await eventually(
            lambda: len(world.states()) == 2 and world.alerts("identity_seen"),
            what="shard b verified and scanned from index 0",
        )
        name_b = next(n for n in world.states() if n != name_a)
        assert world.states()[name_b]["verified_size"] == 3
        [seen] = world.alerts("identity_seen")
        assert seen["log_name"] == name_b
        [added] = world.alerts("trust_changed")
        assert '"added"' in added["details"] and b.tiles_url in added["details"]

        # The log's key rotates in the trust root; the log keeps signing with the old key.
        world.publish(Tlog(a.tiles_url, fresh_key_pem()), world.tlog(b))
        await eventually(lambda: len(world.alerts("trust_changed")) == 2, what="key change alerted")
        assert '"key_changed"' in world.alerts("trust_changed")[1]["details"]
        await a.append("tiles", 1)
        await eventually(
            lambda: any(r["log_name"] == name_a for r in world.alerts("bad_signature")),
            what="the old key's checkpoint refused",
        )
        assert world.states()[name_a]["verified_size"] == 3
        await asyncio.sleep(1.5)  # more refreshes of the same trust: nothing alerted twice
        assert len(world.alerts("trust_changed")) == 2
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)


async def check(config: Config) -> tuple[list[str], list[str]]:
    """One `check` pass: the kinds alerted and the errors."""
    async with open_monitor(config) as monitor:
        outcome = await monitor.check()
        return [a.kind.value for _, a in outcome.alerts], outcome.errors


async def test_tuf_failures_keep_the_last_good_trust(world: World) -> None:
    a = await new_shard(world, "a")
    await a.append("tiles", 2)
    world.publish(world.tlog(a))
    config = world.config()
    assert (await check(config)) == ([], [])
    listed = [world.tlog(a)]
    for breakage, reason in (
        (world.repo.expire_timestamp, "expired"),
        (world.repo.sign_timestamp_with_wrong_key, "bad_signature"),
        (lambda: world.repo.corrupt_target(TRUSTED_ROOT), "hash_mismatch"),
    ):
        changes = len(world.alerts("trust_changed"))
        listed.append(world.tlog(await new_shard(world, reason)))
        world.publish(*listed)
        breakage()
        kinds, errors = await check(config)
        assert kinds == ["trust_error"], (reason, kinds, errors)
        assert any(reason in e for e in errors), errors
        # The last good trust is kept: the new log is not monitored before it verifies.
        assert len(world.states()) == len(listed) - 1
        assert len(world.alerts("trust_changed")) == changes
        # The repository recovers (a target fixed in place: the client's cached copy is
        # checked against the signed hash again): the new trust is taken.
        world.repo.publish_timestamp()
        if reason == "hash_mismatch":
            world.repo.corrupt_target(TRUSTED_ROOT)  # flips the same bit back
        kinds, errors = await check(config)
        # The new log and its CA (each sandbox has its own).
        assert kinds == ["trust_changed"] * 2 and not errors, (kinds, errors)


async def test_a_targets_rollback_is_refused(world: World) -> None:
    a = await new_shard(world, "a")
    world.publish(world.tlog(a))
    config = world.config()
    await check(config)
    world.publish(world.tlog(a), Tlog("http://127.0.0.1:1/tiles", fresh_key_pem()))
    await check(config)
    world.repo.rollback_targets()
    kinds, errors = await check(config)
    assert "trust_error" in kinds and any("rollback" in e for e in errors), errors
    [added] = world.alerts("trust_changed")
    assert '"added"' in added["details"]  # the rolled-back removal is not believed


async def test_a_root_rotation_is_followed(world: World) -> None:
    a = await new_shard(world, "a")
    b = await new_shard(world, "b")
    world.publish(world.tlog(a))
    config = world.config()
    await check(config)
    world.repo.rotate_root()
    world.publish(world.tlog(a), world.tlog(b))
    kinds, errors = await check(config)
    assert not errors and "trust_changed" in kinds
    assert len(world.states()) == 2


async def test_an_ended_shard_is_frozen_and_alerted_if_it_grows(world: World) -> None:
    a = await new_shard(world, "a")
    b = await new_shard(world, "b")
    await a.append("tiles", 2)
    ended = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.publish(
        world.tlog(a, start="2020-01-01T00:00:00Z", end=ended),
        world.tlog(b, start=ended),
    )
    config = world.config()
    await check(config)
    await check(config)
    frozen = {n: bool(s["frozen"]) for n, s in world.states().items()}
    assert sorted(frozen.values()) == [False, True], frozen
    await a.append("tiles", 1)
    kinds, _ = await check(config)
    assert "frozen_log_grew" in kinds
    assert "log_stale" not in kinds


async def test_an_unverifiable_key_is_alerted_and_other_logs_are_monitored(world: World) -> None:
    a = await new_shard(world, "a")
    await a.append("tiles", 1)
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    world.publish(world.tlog(a), Tlog("https://rekor.example", rsa_pem))
    config = world.config()
    kinds, _ = await check(config)
    assert kinds.count("trust_error") == 1, kinds
    [alert] = world.alerts("trust_error")
    assert "unsupported_key" in alert["details"] and "rekor.example" in alert["summary"]
    assert [s["verified_size"] for s in world.states().values()] == [1]
    kinds, _ = await check(config)
    assert "trust_error" not in kinds  # once per log and key


async def test_offline_start_uses_the_cached_trust(world: World, tmp_path: Path) -> None:
    a = await new_shard(world, "a")
    world.publish(world.tlog(a))
    config = world.config()
    await check(config)
    # The repository goes away: the next start uses the copy that verified last time.
    offline = config.path.read_text().replace(world.url, "http://127.0.0.1:1")
    (tmp_path / "offline.toml").write_text(offline)
    _, errors = await check(load_config(tmp_path / "offline.toml"))
    assert any("unreachable" in e for e in errors), errors
    assert len(world.states()) == 1


async def test_never_reached_the_embedded_trust_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Sigstore's repository itself is never contacted by a test: the production source is
    # pointed at a closed local port, as if the network were down at the first start.
    path = tmp_path / "config.toml"
    path.write_text(
        monitor_table(request_timeout="5s") + '\n[[sigstore]]\ninstance = "production"\n'
    )
    config = load_config(path)
    offline = dataclasses.replace(
        config.sigstore[0],
        metadata_url="http://127.0.0.1:1",
        targets_url="http://127.0.0.1:1/targets",
    )
    config = dataclasses.replace(config, sigstore=(offline,))
    watcher = TrustWatcher(config, lambda: datetime.now(UTC))
    store = AsyncStore(Store.open(config.monitor.database))
    try:
        update = await watcher.start(store, lambda _alert: [])
    finally:
        store.close()
    assert watcher.status() == {"production": "embedded"}
    assert any("unreachable" in e for e in update.errors), update.errors
    names = {log.name for log in watcher.logs()}
    assert {"production-rekor-sigstore-dev", "production-log2025-1-rekor-sigstore-dev"} <= names
    assert "may be out of date" in caplog.text


async def test_older_metadata_is_refused_even_after_the_cache_is_lost(
    world: World, tmp_path: Path
) -> None:
    # A mirror keeps a copy of the repository as it was; the TUF cache is lost (a fresh
    # state directory restored without it): the database's versions still refuse the copy.
    a = await new_shard(world, "a")
    world.publish(world.tlog(a))
    old = tmp_path / "old-repo"
    shutil.copytree(world.repo.directory, old)
    config = world.config()
    await check(config)
    world.publish(world.tlog(a), world.tlog(await new_shard(world, "b")))
    kinds, errors = await check(config)
    assert "trust_changed" in kinds and not errors, (kinds, errors)
    shutil.rmtree(config.sigstore[0].cache_dir)
    with serve(old) as mirror:
        stale = tmp_path / "stale.toml"
        stale.write_text(config.path.read_text().replace(world.url, mirror))
        kinds, errors = await check(load_config(stale))
    assert kinds == ["trust_error"] and any("rollback" in e for e in errors), (kinds, errors)
    assert len(world.states()) == 2  # both logs still monitored: nothing was removed
    assert len(world.alerts("trust_changed")) == 2  # the log and its CA, once


async def test_a_shard_added_before_a_stop_is_still_scanned_from_its_first_entry(
    world: World,
) -> None:
    # The trust change that added shard b is recorded, then the process stops before b is
    # ever polled: the next process must still scan b from entry 0.
    a = await new_shard(world, "a")
    b = await new_shard(world, "b")
    await b.append("tiles", 1, {"email": EMAIL})
    await b.append("tiles", 2)
    world.publish(world.tlog(a))
    config = world.config()
    await check(config)
    world.publish(world.tlog(a), world.tlog(b))
    watcher = TrustWatcher(config, lambda: datetime.now(UTC))
    store = AsyncStore(Store.open(config.monitor.database))
    try:
        await watcher.start(store, lambda _alert: [])
    finally:
        store.close()
    assert len(world.alerts("trust_changed")) == 1  # shard b added, recorded
    kinds, _ = await check(config)
    assert "identity_seen" in kinds, kinds


def _self_signed_ca_pem(n: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ca {n}")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(n + 1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


async def test_a_discovered_log_whose_settings_cannot_be_used_is_alerted(world: World) -> None:
    # More Fulcio CAs than a CA bundle may hold: the log's settings are refused. It must be
    # said (trust_error unusable_log, once), not just logged, and the daemon must go on.
    a = await new_shard(world, "a")
    await a.append("tiles", 1)
    cas = [_self_signed_ca_pem(n) for n in range(MAX_BUNDLE_CERTIFICATES + 1)]
    world.repo.publish_targets({TRUSTED_ROOT: trusted_root([world.tlog(a)], cas)})
    config = world.config()
    kinds, _ = await check(config)
    assert kinds == ["trust_error"], kinds
    [alert] = world.alerts("trust_error")
    assert "unusable_log" in alert["details"] and a.tiles_url in alert["summary"]
    assert not world.states()
    kinds, _ = await check(config)
    assert "trust_error" not in kinds  # once
