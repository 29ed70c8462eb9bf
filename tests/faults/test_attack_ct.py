"""Attacks by a hostile RFC 6962 log (a real aiohttp server on 127.0.0.1) on the CT client and
the monitor: every malformed answer is a typed failure of that log (`log_error`), never an
accusation (`bad_signature`, `split_view`) and never a hang or a crash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.config.settings import load_config
from monitor.core.ct import ct_leaf_hash, parse_merkle_tree_leaf
from monitor.core.merkle import MerkleTree, leaf_hash
from monitor.logs.ct.client import CtClient
from monitor.logs.ct.static import MAX_ISSUER_BYTES, StaticCtClient
from monitor.logs.http import HttpPolicy, LogResponseError
from monitor.sandbox.ctlog import sign_sth
from monitor.sandbox.staticct import checkpoint as staticct_checkpoint
from monitor.service.daemon import open_monitor
from monitor.service.wiring import TILES_TREE, StaticCtSource
from tests.faults.test_attack_wire import Server
from tests.helpers import monitor_table

POLICY = HttpPolicy(timeout=5.0, retries=0)
KEY = ec.generate_private_key(ec.SECP256R1())
CERT = b"\x30\x03\x02\x01\x05"


def _leaf(i: int, cert: bytes = CERT) -> bytes:
    return (
        b"\x00\x00"
        + i.to_bytes(8, "big")
        + b"\x00\x00"
        + len(cert).to_bytes(3, "big")
        + cert
        + b"\x00\x00"
    )


def _json(data: object) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response(data)

    return handler


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[CtClient]:
    async with aiohttp.ClientSession() as session:
        yield CtClient(session, server.url, POLICY)


async def test_more_entries_than_asked_are_refused(server: Server, client: CtClient) -> None:
    entry = {"leaf_input": _b64(_leaf(0)), "extra_data": ""}
    server.routes["/ct/v1/get-entries"] = _json({"entries": [entry] * 3})
    with pytest.raises(LogResponseError, match="expected 1 to 2 entries, got 3"):
        await client.entries(0, 2)


async def test_an_empty_entries_answer_is_refused_not_looped_on(
    server: Server, client: CtClient
) -> None:
    server.routes["/ct/v1/get-entries"] = _json({"entries": []})
    with pytest.raises(LogResponseError, match="expected 1 to 5 entries, got 0"):
        await client.entries(0, 5)
    assert len(server.seen) == 1


async def test_short_answers_are_completed_by_asking_again(
    server: Server, client: CtClient
) -> None:
    async def one_at_a_time(request: web.Request) -> web.StreamResponse:
        start = int(request.query["start"])
        return web.json_response(
            {"entries": [{"leaf_input": _b64(_leaf(start)), "extra_data": ""}]}
        )

    server.routes["/ct/v1/get-entries"] = one_at_a_time
    got = await client.entries(3, 8)
    assert got == [_leaf(i) for i in range(3, 8)]
    assert len(server.seen) == 5


@pytest.mark.parametrize(
    "entry",
    [
        {"leaf_input": "not base64!", "extra_data": ""},
        {"leaf_input": "", "extra_data": ""},
        {"extra_data": ""},
        {"leaf_input": _b64(b"x")},
        {"leaf_input": 5, "extra_data": ""},
        "entry",
    ],
)
async def test_malformed_entries_are_refused(
    server: Server, client: CtClient, entry: object
) -> None:
    server.routes["/ct/v1/get-entries"] = _json({"entries": [entry]})
    with pytest.raises(LogResponseError):
        await client.entries(0, 1)


@pytest.mark.parametrize("count", [0, 1, 3, 5, 100])
async def test_a_consistency_proof_of_the_wrong_length_is_garbage_not_evidence(
    server: Server, client: CtClient, count: int
) -> None:
    # 5 -> 8 needs exactly 4 hashes (monitor.core.merkle.consistency_proof_size).
    server.routes["/ct/v1/get-sth-consistency"] = _json(
        {"consistency": [_b64(b"\x00" * 32)] * count}
    )
    with pytest.raises(LogResponseError, match="expected 4 hashes"):
        await client.consistency_proof(5, 8)


async def test_proof_hashes_of_the_wrong_size_are_refused(server: Server, client: CtClient) -> None:
    server.routes["/ct/v1/get-sth-consistency"] = _json({"consistency": [_b64(b"\x00" * 31)] * 4})
    with pytest.raises(LogResponseError, match="32-byte hash"):
        await client.consistency_proof(5, 8)


async def test_an_overlong_audit_path_is_refused(server: Server, client: CtClient) -> None:
    server.routes["/ct/v1/get-entry-and-proof"] = _json(
        {"leaf_input": _b64(_leaf(0)), "extra_data": "", "audit_path": [_b64(b"\x00" * 32)] * 64}
    )
    with pytest.raises(LogResponseError, match="at most 63 hashes"):
        await client.entry_and_proof(0, 2)


@pytest.mark.parametrize(
    "sth",
    [
        {
            "tree_size": 1 << 63,
            "timestamp": 1,
            "sha256_root_hash": _b64(b"\x00" * 32),
            "tree_head_signature": _b64(b"\x04\x03\x00\x01a"),
        },
        {
            "tree_size": 1,
            "timestamp": -1,
            "sha256_root_hash": _b64(b"\x00" * 32),
            "tree_head_signature": _b64(b"\x04\x03\x00\x01a"),
        },
        {
            "tree_size": 1,
            "timestamp": 1,
            "sha256_root_hash": _b64(b"\x00" * 33),
            "tree_head_signature": _b64(b"\x04\x03\x00\x01a"),
        },
        {
            "tree_size": 1,
            "timestamp": 1,
            "sha256_root_hash": _b64(b"\x00" * 32),
            "tree_head_signature": _b64(b"\x04\x03\x00\x09a"),
        },
        [],
    ],
)
async def test_malformed_sths_are_refused(server: Server, client: CtClient, sth: object) -> None:
    server.routes["/ct/v1/get-sth"] = _json(sth)
    with pytest.raises(LogResponseError):
        await client.get_sth()


async def test_a_malformed_sth_is_log_error_never_bad_signature(
    server: Server, tmp_path: Path
) -> None:
    """Through the whole monitor: a log that first serves a valid STH, then garbage, is a
    failing log (log_error), and the verified state stays."""
    tree = MerkleTree()
    tree.extend(leaf_hash(_leaf(i)) for i in range(4))
    good = sign_sth(KEY, 1_700_000_000_000, 4, tree.root())
    server.routes["/ct/v1/get-sth"] = _json(good)
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "ct.pem").write_bytes(pem)
    (tmp_path / "config.toml").write_text(
        monitor_table(request_timeout="5s")
        + f"""
[[log]]
name = "hostile-ct"
type = "ct"
url = "{server.url}"
public_key = "ct.pem"
origin = "hostile.ct"
"""
    )
    async with open_monitor(load_config(tmp_path / "config.toml")) as m:
        first = await m.check()
        assert first.alerts == [] and first.errors == []
        bad = dict(good, tree_head_signature=_b64(b"\x04\x03\xff\xff" + b"a"))
        server.routes["/ct/v1/get-sth"] = _json(bad)
        second = await m.check()
        assert [a.kind.value for _, a in second.alerts] == ["log_error"]
        (state,) = m.store.store.log_states()
        assert state.verified_size == 4
        # A well-formed STH signed by another key is the log's misbehaviour: bad_signature.
        other = ec.generate_private_key(ec.SECP256R1())
        server.routes["/ct/v1/get-sth"] = _json(sign_sth(other, 1_700_000_000_001, 4, tree.root()))
        third = await m.check()
        assert [a.kind.value for _, a in third.alerts] == ["bad_signature"]
    assert json.loads(json.dumps(good))  # the fixture itself is plain JSON


# --- static-ct-api: hostile data tiles, issuers and checkpoints -------------------------------

SUNLIGHT = Path(__file__).parents[1] / "data" / "ct" / "sunlight-navigli2025h2"


def _tile_leaf(i: int, cert: bytes = CERT) -> bytes:
    """A data tile entry of `_leaf(i, cert)`: its TimestampedEntry and an empty chain."""
    return _leaf(i, cert)[2:] + b"\x00\x00"


def _bytes(data: bytes) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, content_type="application/octet-stream")

    return handler


@pytest.fixture
async def static_client(server: Server) -> AsyncIterator[StaticCtClient]:
    async with aiohttp.ClientSession() as session:
        yield StaticCtClient(session, server.url, POLICY)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"".join(_tile_leaf(i) for i in range(3)), "expected 4 entries, got 3"),
        (b"".join(_tile_leaf(i) for i in range(5)), "expected 4 entries, got 5"),
        (b"".join(_tile_leaf(i) for i in range(4)) + b"\x00", "entry 4"),
        (b"".join(_tile_leaf(i) for i in range(4))[:-1], "entry 3"),
        (_tile_leaf(0)[:8] + b"\x00\x09" + _tile_leaf(0)[10:], "entry type"),
        (_tile_leaf(0)[:-2] + b"\x00\x1f" + b"\x00" * 31, "multiples of 32"),
        (b"\xff" * 64, "entry 0"),
        (b"", "expected 4 entries, got 0"),
    ],
)
async def test_malformed_data_tiles_are_log_response_errors(
    server: Server, static_client: StaticCtClient, body: bytes, match: str
) -> None:
    server.routes["/tile/data/000.p/4"] = _bytes(body)
    with pytest.raises(LogResponseError, match=match):
        await static_client.data_tile(0, 4)


async def test_a_gone_partial_data_tile_is_read_from_the_full_one(
    server: Server, static_client: StaticCtClient
) -> None:
    server.routes["/tile/data/000"] = _bytes(b"".join(_tile_leaf(i) for i in range(256)))
    got = await static_client.data_tile(0, 4)
    assert [t.merkle_tree_leaf for t in got] == [_leaf(i) for i in range(4)]
    assert server.seen == ["/tile/data/000.p/4", "/tile/data/000"]


async def test_a_data_tile_over_the_size_cap_is_refused_unread(server: Server) -> None:
    server.routes["/tile/data/000"] = _bytes(_tile_leaf(0) * 40_000)
    async with aiohttp.ClientSession() as session:
        client = StaticCtClient(
            session, server.url, HttpPolicy(timeout=5.0, retries=0, max_body_bytes=64 * 1024)
        )
        with pytest.raises(LogResponseError):
            await client.data_tile(0, 256)


async def test_an_issuer_that_is_not_the_fingerprinted_one_is_refused(
    server: Server, static_client: StaticCtClient
) -> None:
    fingerprint = hashlib.sha256(CERT).digest()
    server.routes[f"/issuer/{fingerprint.hex()}"] = _bytes(CERT + b"\x00")
    with pytest.raises(LogResponseError, match="fingerprint"):
        await static_client.issuer(fingerprint)
    server.routes[f"/issuer/{fingerprint.hex()}"] = _bytes(CERT)
    assert await static_client.issuer(fingerprint) == CERT
    server.routes[f"/issuer/{fingerprint.hex()}"] = _bytes(b"\x30" * (MAX_ISSUER_BYTES + 1))
    with pytest.raises(LogResponseError):
        await static_client.issuer(fingerprint)


async def test_real_sunlight_data_tiles_hash_to_their_hash_tiles(server: Server) -> None:
    """Production static-ct-api tiles (Sunlight, tests/data/ct), served from 127.0.0.1: the
    source's entries are MerkleTreeLeafs whose RFC 6962 leaf hashes are the level-0 tiles'."""
    for rel in ("tile/0/000", "tile/data/000", "tile/0/003.p/10", "tile/data/003.p/10"):
        server.routes[f"/{rel}"] = _bytes((SUNLIGHT / rel).read_bytes())
    async with aiohttp.ClientSession() as session:
        source = StaticCtSource(StaticCtClient(session, server.url, POLICY))
        for start, end in ((0, 256), (768, 778)):
            leaves = await source.entries(TILES_TREE, start, end, 778)
            hashes = await source.client.hash_tile(0, start // 256, end - start)
            assert [ct_leaf_hash(leaf) for leaf in leaves] == hashes
            assert all(parse_merkle_tree_leaf(leaf) for leaf in leaves)


def _hostile_static_ct(
    server: Server,
    tmp_path: Path,
    timestamp: int,
    *,
    served: int,
    certs: dict[int, bytes] | None = None,
) -> MerkleTree:
    """`server` as a static-ct log "hostile.static-ct" of 4 entries (the certificate of entry
    i `certs[i]`, else CERT), its checkpoint signed at `timestamp` and honest, its data tile
    holding the first `served`; a config scanning it from entry 0 in `tmp_path`. Returns the
    tree."""
    cert = (certs or {}).get
    tree = MerkleTree()
    tree.extend(leaf_hash(_leaf(i, cert(i, CERT))) for i in range(4))
    name = "hostile.static-ct"
    note = staticct_checkpoint(KEY, name, timestamp, 4, tree.root())
    server.routes["/checkpoint"] = _bytes(note.encode())
    server.routes["/tile/0/000.p/4"] = _bytes(b"".join(tree.node(0, i) for i in range(4)))
    tile = b"".join(_tile_leaf(i, cert(i, CERT)) for i in range(served))
    server.routes["/tile/data/000.p/4"] = _bytes(tile)
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "ct.pem").write_bytes(pem)
    (tmp_path / "config.toml").write_text(
        monitor_table(request_timeout="5s")
        + f"""
[[log]]
name = "hostile-static-ct"
type = "static-ct"
url = "{server.url}"
public_key = "ct.pem"
origin = "{name}"
scan = true
start = 0
"""
    )
    return tree


async def test_an_unparseable_data_tile_stops_the_scan_without_accusing_the_log(
    server: Server, tmp_path: Path
) -> None:
    """Through the whole monitor: a static-ct log whose checkpoint and hash tiles are honest but
    whose data tile does not parse is failing to serve its entries (a scan error, the cursor
    held), not serving entries that do not hash into its tree (bad_entry)."""
    _hostile_static_ct(server, tmp_path, 1_700_000_000_000, served=3)
    async with open_monitor(load_config(tmp_path / "config.toml")) as m:
        first = await m.check()
        assert first.alerts == [] and first.errors and "expected 4 entries" in first.errors[0]
        (state,) = m.store.store.log_states()
        assert (state.verified_size, state.scan_cursor) == (4, 0)
        # The whole tile served: every entry proven into the tree and read (CERT is no X.509
        # certificate, so each is unreadable_entry, not bad_entry).
        server.routes["/tile/data/000.p/4"] = _bytes(b"".join(_tile_leaf(i) for i in range(4)))
        second = await m.check()
        assert second.errors == [] and second.scanned == 4
        assert {a.kind.value for _, a in second.alerts} == {"unreadable_entry"}
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 4
        # A garbage checkpoint is the log failing (log_error), never a bad_signature.
        server.routes["/checkpoint"] = _bytes(b"<html>busy</html>")
        third = await m.check()
        assert [a.kind.value for _, a in third.alerts] == ["log_error"]


@pytest.mark.parametrize(
    "not_der",
    [b"\x30\x81\x03\x02\x01\x05", b"\x04\x01\x00", b"\x30\x05\x02\x01\x05"],
    ids=["non-minimal length", "no SEQUENCE", "overrun"],
)
async def test_a_leaf_that_is_not_der_is_its_own_unreadable_entry_not_the_tiles(
    server: Server, tmp_path: Path, not_der: bytes
) -> None:
    """A static-ct log serving a leaf whose certificate is not DER (the leaf in its tree, the
    checkpoint honest): that entry is unreadable_entry and every entry after it is read, as
    from an RFC 6962 log. The whole tile failed to parse before: no later entry was ever read,
    with only a log_error each poll to show for it."""
    _hostile_static_ct(server, tmp_path, 1_700_000_000_000, served=4, certs={1: not_der})
    async with open_monitor(load_config(tmp_path / "config.toml")) as m:
        outcome = await m.check()
        assert outcome.errors == [] and outcome.scanned == 4
        unreadable = {
            a.details["log_index"]: str(a.details["error"])
            for _, a in outcome.alerts
            if a.kind.value == "unreadable_entry"
        }
        assert "DER" in unreadable[1]
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 4


@pytest.mark.parametrize("timestamp", [253_402_300_800_000, (1 << 63) - 1])
async def test_a_checkpoint_dated_past_year_9999_is_a_bad_note_not_a_crash(
    server: Server, tmp_path: Path, timestamp: int
) -> None:
    """Finding 11, through the whole monitor: a static-ct checkpoint the log's own key signed at
    a timestamp past year 9999 fails verification (that poll fails, the verified state stays)
    and the next honest checkpoint is polled and judged as usual."""
    tree = _hostile_static_ct(server, tmp_path, 1_700_000_000_000, served=4)
    name = "hostile.static-ct"
    async with open_monitor(load_config(tmp_path / "config.toml")) as m:
        first = await m.check()
        assert first.errors == [] and first.scanned == 4
        far = staticct_checkpoint(KEY, name, timestamp, 4, tree.root())
        server.routes["/checkpoint"] = _bytes(far.encode())
        second = await m.check()
        # Only the log's key can sign it: the log's misbehaviour, reported on that poll.
        assert [a.kind.value for _, a in second.alerts] == ["bad_signature"]
        assert second.errors == []
        (state,) = m.store.store.log_states()
        assert state.verified_size == 4
        server.routes["/checkpoint"] = _bytes(
            staticct_checkpoint(KEY, name, 1_700_000_000_001, 4, tree.root()).encode()
        )
        third = await m.check()
        assert third.errors == [] and third.alerts == []
