"""A `type = "static-ct"` log (C2SP static-ct-api) against the sandbox's static-ct log, all
real: HTTP on 127.0.0.1, a SQLite file, the daemon's check pass, the CLI's evidence commands.

The checkpoint is a signed note with an RFC 6962 STH note signature, verified as is; proofs come
from hash tiles (as for tlog-tiles) and entries from data tiles of TileLeaf, each turned into
the MerkleTreeLeaf whose RFC 6962 leaf hash the scan proves into the verified tree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.settings import load_config
from monitor.core.errors import ConfigError
from monitor.sandbox import Sandbox
from monitor.service.daemon import CheckOutcome, Monitor, open_monitor
from tests.helpers import monitor_table


@dataclass
class StaticCtEnv:
    sandbox: Sandbox
    dir: Path

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    def write_config(
        self, *, scan: bool = False, views: tuple[str, ...] = (), extra: str = ""
    ) -> None:
        (self.dir / "ct.pem").write_bytes(self.sandbox.ct_public_key_pem)
        views_toml = "[" + ", ".join(f'"{v}/static-ct"' for v in views) + "]"
        self.config_path.write_text(
            monitor_table(request_timeout="5s")
            + f"""
[[log]]
name = "static-ct-sandbox"
type = "static-ct"
url = "{self.sandbox.static_ct_url}"
public_key = "ct.pem"
origin = "{self.sandbox.static_ct_origin}"
scan = {"true" if scan else "false"}
views = {views_toml}
{extra}
"""
        )


def kinds(outcome: CheckOutcome) -> list[str]:
    return [a.kind.value for _, a in outcome.alerts]


def verified(m: Monitor) -> tuple[int, int]:
    (state,) = m.store.store.log_states()
    return state.verified_size, state.high_water


def size(sandbox: Sandbox) -> int:
    state = sandbox.state()["static-ct"]
    assert isinstance(state, dict)
    return int(state["treeSize"])


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[StaticCtEnv]:
    e = StaticCtEnv(sandbox, tmp_path)
    e.write_config()
    await sandbox.append("static-ct", 300)
    yield e


async def test_honest_growth_verifies_every_checkpoint_and_raises_nothing(
    env: StaticCtEnv,
) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        for round_ in range(4):
            outcome = await m.check()
            assert outcome.alerts == [] and outcome.errors == []
            assert verified(m)[0] == size(env.sandbox)
            await env.sandbox.append("static-ct", 137 * round_ + 1)
        (state,) = m.store.store.log_states()
        assert state.verified_note is not None
        assert state.verified_note.startswith(f"{env.sandbox.static_ct_origin}\n")
        # Consistency proofs were computed from hash tiles.
        assert env.sandbox.request_count("static-ct.tile") >= 3


async def test_rollback_is_alerted_once_and_the_high_water_mark_holds(env: StaticCtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("static-ct", "rollback", size=200)
        outcome = await m.check()
        assert kinds(outcome) == ["rollback"]
        assert (await m.check()).alerts == []
        assert verified(m) == (300, 300)


@pytest.mark.parametrize("how", ["corrupt", "wrong_key"])
async def test_bad_checkpoint_signature_is_alerted_and_state_does_not_move(
    env: StaticCtEnv, how: str
) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("static-ct", "bad_signature", how=how)
        await env.sandbox.append("static-ct", 5)
        outcome = await m.check()
        assert kinds(outcome) == ["bad_signature"]
        assert verified(m) == (300, 300)
        env.sandbox.reset()
        assert (await m.check()).alerts == []
        assert verified(m)[0] == 305


async def test_bad_hash_tiles_are_a_split_view_with_the_proof_kept(env: StaticCtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("static-ct", "bad_proof")
        await env.sandbox.append("static-ct", 7)
        outcome = await m.check()
        assert kinds(outcome) == ["split_view"]
        assert outcome.alerts[0][1].details["proof"]
        assert verified(m) == (300, 300)


async def test_unreachable_log_is_log_error_and_state_does_not_move(env: StaticCtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("static-ct", "errors", status=500)
        await env.sandbox.append("static-ct", 3)
        first = await m.check()
        assert kinds(first) == ["log_error"] and first.errors
        assert verified(m) == (300, 300)
        env.sandbox.reset()
        assert (await m.check()).errors == []
        assert verified(m)[0] == 303


async def test_split_view_between_views_is_proven_offline_by_exported_evidence(
    env: StaticCtEnv, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    env.write_config(views=(env.sandbox.view_url("mirror"),))
    async with open_monitor(load_config(env.config_path)) as m:
        assert (await m.check()).alerts == []
        env.sandbox.misbehave("static-ct", "fork", view="mirror", at=250)
        await env.sandbox.append("static-ct", 4)
        outcome = await m.check()
        assert kinds(outcome) == ["split_view"]
        alert_id, alert = outcome.alerts[0]
        assert len(set(alert.details["roots"])) == 2
    config = str(env.config_path)
    capsysbinary.readouterr()
    assert main(["--config", config, "evidence", "export", str(alert_id)]) == 0
    document = capsysbinary.readouterr().out
    assert b'"type": "rfc6962"' in document
    evidence = env.dir / "evidence.json"
    evidence.write_bytes(document)
    assert main(["--config", config, "evidence", "verify", str(evidence)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out
    assert main(["evidence", "verify", "--key", str(env.dir / "ct.pem"), str(evidence)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out
    origin = env.sandbox.static_ct_origin.encode()
    evidence.write_bytes(document.replace(origin, origin[:-1] + b"m", 1))
    assert main(["--config", config, "evidence", "verify", str(evidence)]) != 0


async def test_scan_proves_and_parses_every_entry_from_data_tiles(env: StaticCtEnv) -> None:
    env.write_config(scan=True, extra="start = 0")
    async with open_monitor(load_config(env.config_path)) as m:
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == []
        assert outcome.scanned == 300
        # Across full and partial data tiles, precertificates included.
        await env.sandbox.append("static-ct", 600, entry_type="precert")
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == [] and outcome.scanned == 600
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 900
        assert env.sandbox.request_count("static-ct.data") >= 4
        # Issuers are not needed to scan: none was fetched.
        assert env.sandbox.request_count("static-ct.issuer") == 0


async def test_scan_from_latest_reads_the_frontier_from_hash_tiles(env: StaticCtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        assert (await m.check()).scanned == 0
        assert env.sandbox.request_count("static-ct.data") == 0
        await env.sandbox.append("static-ct", 21)
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.scanned == 21


async def test_a_malformed_leaf_is_unreadable_entry_and_the_scan_goes_on(
    env: StaticCtEnv,
) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        await env.sandbox.append("static-ct", 2)
        await env.sandbox.append("static-ct", 1, malformed=True)
        await env.sandbox.append("static-ct", 2)
        outcome = await m.check()
        assert kinds(outcome) == ["unreadable_entry"]
        details = outcome.alerts[0][1].details
        assert details["log_index"] == 302
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 305


async def test_a_tampered_data_tile_is_bad_entry(env: StaticCtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("static-ct", "bad_entries")
        await env.sandbox.append("static-ct", 10)
        outcome = await m.check()
        assert kinds(outcome) == ["bad_entry"]
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 300


def test_static_ct_config_needs_an_ecdsa_p256_key_from_a_pin_or_a_trust_root(
    env: StaticCtEnv,
) -> None:
    (log,) = load_config(env.config_path).logs
    assert (log.scan, log.requests_per_minute) == (False, 600)
    text = env.config_path.read_text()
    env.config_path.write_text(text.replace('public_key = "ct.pem"', 'trust_root = "staging"'))
    from monitor.service.wiring import resolve_logs

    # The sandbox's URL is no CT log of the staging trusted root: refused when keys resolve.
    with pytest.raises(ConfigError, match="expected a CT log with URL"):
        resolve_logs(load_config(env.config_path))

    env.config_path.write_text(text)
    (env.dir / "ct.pem").write_bytes(env.sandbox.tiles_public_key_pem)
    with pytest.raises(ConfigError, match="ECDSA P-256"):
        resolve_logs(load_config(env.config_path))


async def test_the_sandbox_static_ct_log_speaks_static_ct_api(env: StaticCtEnv) -> None:
    """The sandbox's answers, read by the client: a checkpoint that verifies with the RFC 6962
    note key, data tiles whose leaves hash to the hash tiles, the leaf_index extension, a
    consistency proof that verifies, and the issuer named by the chain's fingerprint."""
    import hashlib

    import aiohttp

    from monitor.core.ct import EntryType, ct_leaf_hash
    from monitor.core.merkle import verify_consistency
    from monitor.core.note import verify_checkpoint
    from monitor.logs.ct.static import StaticCtClient
    from monitor.logs.http import HttpPolicy, LogNotFound
    from monitor.sandbox.staticct import leaf_index_extension

    key = env.sandbox.static_ct_verifier()
    origin = env.sandbox.static_ct_origin
    async with aiohttp.ClientSession() as session:
        client = StaticCtClient(session, env.sandbox.static_ct_url, HttpPolicy(timeout=5.0))
        small = verify_checkpoint(await client.checkpoint(), [key], origin).checkpoint
        assert small.size == 300
        tile = await client.data_tile(1, 44)
        assert {t.leaf.entry_type for t in tile} == {EntryType.X509, EntryType.PRECERT}
        assert all(t.pre_certificate for t in tile if t.leaf.entry_type is EntryType.PRECERT)
        assert [t.leaf.extensions for t in tile] == [
            leaf_index_extension(256 + i) for i in range(44)
        ]
        hashes = await client.hash_tile(0, 1, 44)
        assert [ct_leaf_hash(t.merkle_tree_leaf) for t in tile] == hashes
        assert await client.root(300) == small.root
        issuer = await client.issuer(tile[0].chain[0])
        assert hashlib.sha256(issuer).digest() == tile[0].chain[0]
        with pytest.raises(LogNotFound):
            await client.issuer(bytes(32))
        await env.sandbox.append("static-ct", 50)
        big = verify_checkpoint(await client.checkpoint(), [key], origin).checkpoint
        proof = await client.consistency_proof(small.size, big.size)
        verify_consistency(small.size, big.size, small.root, big.root, proof)
        # The partial tile of 300 is still served after growth (or replaced by the full one).
        assert len(await client.data_tile(1, 44)) == 44
