"""A `type = "ct"` log (RFC 6962) against the sandbox's CT log, all real: HTTP on 127.0.0.1,
a SQLite file, the daemon's check pass, the CLI's evidence commands.

Each signed tree head becomes a checkpoint note with an RFC 6962 note signature, so the engine
verifies, compares and keeps CT logs like any other: consistency, rollback, bad signatures,
split views with offline-provable evidence, log_error; and a scan proves every entry into the
verified tree and parses each MerkleTreeLeaf.
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

ORIGIN = "sandbox.ct.local"


@dataclass
class CtEnv:
    sandbox: Sandbox
    dir: Path

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    def write_config(
        self, *, scan: bool = False, views: tuple[str, ...] = (), extra: str = ""
    ) -> None:
        (self.dir / "ct.pem").write_bytes(self.sandbox.ct_public_key_pem)
        views_toml = "[" + ", ".join(f'"{v}"' for v in views) + "]"
        self.config_path.write_text(
            monitor_table(request_timeout="5s")
            + f"""
[[log]]
name = "ct-sandbox"
type = "ct"
url = "{self.sandbox.ct_url}"
public_key = "ct.pem"
origin = "{ORIGIN}"
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


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[CtEnv]:
    e = CtEnv(sandbox, tmp_path)
    e.write_config()
    # 300 entries: the CA logs the signer's precertificate (its SCT is embedded) when it
    # first issues the certificate, then the 299 appended.
    await sandbox.append("ct", 299)
    assert sandbox.state()["ct"]["treeSize"] == 300
    yield e


async def test_honest_growth_verifies_every_sth_and_raises_nothing(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        for round_ in range(4):
            outcome = await m.check()
            assert outcome.alerts == [] and outcome.errors == []
            assert verified(m)[0] == env.sandbox.state()["ct"]["treeSize"]
            await env.sandbox.append("ct", 37 * round_ + 1)
        # The stored checkpoint is the STH as a note, signed with an RFC 6962 note signature.
        (state,) = m.store.store.log_states()
        assert state.verified_note is not None and state.verified_note.startswith(f"{ORIGIN}\n")
        assert env.sandbox.request_count("ct.consistency") >= 3


async def test_rollback_is_alerted_once_and_the_high_water_mark_holds(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "rollback", size=200)
        outcome = await m.check()
        assert kinds(outcome) == ["rollback"]
        assert (await m.check()).alerts == []
        assert verified(m) == (300, 300)


@pytest.mark.parametrize("how", ["corrupt", "wrong_key"])
async def test_bad_sth_signature_is_alerted_and_state_does_not_move(env: CtEnv, how: str) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "bad_signature", how=how)
        await env.sandbox.append("ct", 5)
        outcome = await m.check()
        assert kinds(outcome) == ["bad_signature"]
        assert verified(m) == (300, 300)
        env.sandbox.reset()
        assert (await m.check()).alerts == []
        assert verified(m)[0] == 305


async def test_bad_consistency_proof_is_a_split_view_with_the_proof_kept(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "bad_proof")
        await env.sandbox.append("ct", 7)
        outcome = await m.check()
        assert kinds(outcome) == ["split_view"]
        assert outcome.alerts[0][1].details["proof"]
        assert verified(m) == (300, 300)


async def test_unreachable_log_is_log_error_and_state_does_not_move(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "errors", status=500)
        await env.sandbox.append("ct", 3)
        first = await m.check()
        assert kinds(first) == ["log_error"] and first.errors
        assert verified(m) == (300, 300)
        env.sandbox.reset()
        assert (await m.check()).errors == []
        assert verified(m)[0] == 303


async def test_garbage_sth_is_log_error_not_an_accusation(env: CtEnv) -> None:
    """A get-sth answer that is not an STH is the log failing, never a bad_signature."""
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "errors", status=404, endpoints=["ct.sth"])
        outcome = await m.check()
        assert kinds(outcome) == ["log_error"]


async def test_split_view_between_views_is_proven_offline_by_exported_evidence(
    env: CtEnv, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    env.write_config(views=(env.sandbox.view_url("mirror"),))
    async with open_monitor(load_config(env.config_path)) as m:
        assert (await m.check()).alerts == []
        env.sandbox.misbehave("ct", "fork", view="mirror", at=250)
        await env.sandbox.append("ct", 4)
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
    # Pinned with --key (the CT log's PEM), no configuration: proven too.
    assert main(["evidence", "verify", "--key", str(env.dir / "ct.pem"), str(evidence)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out
    # Any edit breaks it.
    evidence.write_bytes(document.replace(b"sandbox.ct.local", b"sandbox.ct.locam", 1))
    assert main(["--config", config, "evidence", "verify", str(evidence)]) != 0


async def test_scan_proves_and_parses_every_entry(env: CtEnv) -> None:
    env.write_config(scan=True, extra="start = 0")
    async with open_monitor(load_config(env.config_path)) as m:
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == []
        assert outcome.scanned == 300
        # More than one get-entries answer's worth (the sandbox caps them at 256).
        await env.sandbox.append("ct", 600, entry_type="precert")
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == [] and outcome.scanned == 600
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 900


async def test_scan_from_latest_reads_the_frontier_from_get_entry_and_proof(env: CtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        assert (await m.check()).scanned == 0
        assert env.sandbox.request_count("ct.entry-and-proof") == 1
        await env.sandbox.append("ct", 21)
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.scanned == 21


async def test_a_malformed_leaf_is_unreadable_entry_and_the_scan_goes_on(env: CtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        await env.sandbox.append("ct", 2)
        await env.sandbox.append("ct", 1, malformed=True)
        await env.sandbox.append("ct", 2)
        outcome = await m.check()
        assert kinds(outcome) == ["unreadable_entry"]
        details = outcome.alerts[0][1].details
        assert details["log_index"] == 302 and "entry type" in str(details["error"])
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 305


async def test_entries_that_do_not_hash_into_the_tree_are_bad_entry(env: CtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "bad_entries")
        await env.sandbox.append("ct", 10)
        outcome = await m.check()
        assert kinds(outcome) == ["bad_entry"]
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 300


def test_ct_log_key_from_a_trust_root(env: CtEnv) -> None:
    """`trust_root` names the trusted root whose `ctlogs` entry for the URL holds the key."""
    from monitor.config.trust_roots import trusted_ct_logs
    from monitor.service.wiring import log_key_der, resolve_logs

    env.write_config()
    text = env.config_path.read_text().replace('public_key = "ct.pem"', 'trust_root = "production"')
    env.config_path.write_text(text)
    # The sandbox's URL is in no Sigstore trusted root: refused when the keys are resolved.
    with pytest.raises(ConfigError, match="expected a CT log with URL"):
        resolve_logs(load_config(env.config_path))
    fulcio = "https://ctfe.sigstore.dev/2022"
    text = text.replace(f'url = "{env.sandbox.ct_url}"', f'url = "{fulcio}"')
    env.config_path.write_text(text.replace(f'origin = "{ORIGIN}"', ""))
    config = load_config(env.config_path)
    (log,) = config.logs
    (trusted,) = [ct for ct in trusted_ct_logs("production") if ct.base_url == fulcio]
    assert log.public_key_der is None and log_key_der(log) == trusted.key
    (verifier,) = resolve_logs(config)["ct-sandbox"].verifiers
    assert verifier.key_id == trusted.log_id
    assert verifier.name == "ctfe.sigstore.dev/2022"


def test_ct_defaults_and_key_type(env: CtEnv) -> None:
    (log,) = load_config(env.config_path).logs
    assert (log.scan, log.requests_per_minute) == (False, 300)
    # An Ed25519 key cannot sign RFC 6962 STHs: refused when the keys are resolved.
    from monitor.service.wiring import resolve_logs

    (env.dir / "ct.pem").write_bytes(env.sandbox.tiles_public_key_pem)
    with pytest.raises(ConfigError, match="ECDSA P-256"):
        resolve_logs(load_config(env.config_path))


async def test_the_sandbox_ct_log_speaks_rfc6962(env: CtEnv) -> None:
    """The sandbox's answers, read by the client: a verifiable STH, entries that parse as
    x509 and precert leaves, audit paths and consistency proofs that verify."""
    import aiohttp

    from monitor.core.ct import EntryType, ct_leaf_hash, parse_merkle_tree_leaf, sth_note
    from monitor.core.merkle import verify_consistency, verify_inclusion
    from monitor.core.note import verify_checkpoint
    from monitor.logs.ct.client import CtClient
    from monitor.logs.http import HttpPolicy

    key = env.sandbox.ct_verifier(ORIGIN)
    async with aiohttp.ClientSession() as session:
        client = CtClient(session, env.sandbox.ct_url, HttpPolicy(timeout=5.0))
        sth = await client.get_sth()
        note = sth_note(ORIGIN, sth, key.name, key.key_hint)
        assert verify_checkpoint(note.to_text(), [key], ORIGIN).checkpoint.size == 300
        leaves = await client.entries(0, 300)
        kinds = {parse_merkle_tree_leaf(leaf).entry_type for leaf in leaves}
        assert kinds == {EntryType.X509, EntryType.PRECERT}
        got = await client.entry_and_proof(123, 300)
        verify_inclusion(ct_leaf_hash(got.leaf_input), 123, 300, got.audit_path, sth.root)
        small = sth
        await env.sandbox.append("ct", 50)
        big = await client.get_sth()
        proof = await client.consistency_proof(small.tree_size, big.tree_size)
        verify_consistency(small.tree_size, big.tree_size, small.root, big.root, proof)
