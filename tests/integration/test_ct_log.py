"""What only a `type = "ct"` log (RFC 6962) has, against the sandbox's CT log: its get-sth
answers, its key from a trusted root, its defaults, and the sandbox speaking RFC 6962. What both
CT log kinds share is tested over both in test_ct_engine.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.core.errors import ConfigError
from monitor.sandbox import Sandbox
from monitor.service.daemon import open_monitor
from tests.integration.test_ct_engine import CT, CT_ORIGIN, CtEnv, ct_env, kinds

ORIGIN = CT_ORIGIN


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[CtEnv]:
    yield await ct_env(sandbox, tmp_path, CT)


async def test_garbage_sth_is_log_error_not_an_accusation(env: CtEnv) -> None:
    """A get-sth answer that is not an STH is the log failing, never a bad_signature."""
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.sandbox.misbehave("ct", "errors", status=404, endpoints=["ct.sth"])
        outcome = await m.check()
        assert kinds(outcome) == ["log_error"]


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
