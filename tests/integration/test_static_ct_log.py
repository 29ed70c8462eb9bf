"""What only a `type = "static-ct"` log (C2SP static-ct-api) has, against the sandbox's
static-ct log: its key and defaults, and the sandbox speaking static-ct-api. What both CT log
kinds share is tested over both in test_ct_engine.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.core.errors import ConfigError
from monitor.sandbox import Sandbox
from tests.integration.test_ct_engine import STATIC_CT, CtEnv, ct_env


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[CtEnv]:
    yield await ct_env(sandbox, tmp_path, STATIC_CT)


def test_static_ct_config_needs_an_ecdsa_p256_key_from_a_pin_or_a_trust_root(
    env: CtEnv,
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


async def test_the_sandbox_static_ct_log_speaks_static_ct_api(env: CtEnv) -> None:
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
