"""The log clients (monitor.logs) over real HTTP on 127.0.0.1: round trips against the sandbox
log, and the HTTP layer's limits against a deliberately broken server started in the test (huge,
endless and garbage bodies, resets, rate limits). Parsing: tests/unit/test_log_parsing.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web

from monitor.core.errors import NetworkError, ParseError
from monitor.core.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from monitor.core.note import verify_checkpoint
from monitor.logs.http import (
    HttpPolicy,
    LogNotFound,
    LogNotReady,
    LogResponseError,
    LogStatusError,
    LogUnavailable,
    RequestBudget,
    get_bytes,
    get_json,
    get_pieces,
    post_json,
)
from monitor.logs.rekor_v1.client import (
    EntryMismatch,
    RekorV1Client,
)
from monitor.logs.tiles.client import TilesClient
from monitor.sandbox import Sandbox
from monitor.service.wiring import TILES_TREE, TilesSource

FAST = HttpPolicy(timeout=5, connect_timeout=2, retries=2, backoff_base=0.01, backoff_max=0.05)


# === the sandbox: Rekor v1 =====================================================================


async def test_v1_round_trip(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    budget = RequestBudget(6000)
    client = RekorV1Client(http, sandbox.url + "/", FAST, budget)
    verifier = sandbox.v1_verifier()

    await sandbox.append("v1", 13)
    info1 = await client.log_info()
    cp1 = verify_checkpoint(info1.active.note, [verifier], sandbox.v1_origin).checkpoint
    assert (cp1.size, cp1.root) == (info1.active.size, info1.active.root) == (13, cp1.root)
    assert info1.active.tree_id == str(sandbox.v1_tree_id)
    await sandbox.append("v1", 40)
    info2 = await client.log_info()
    cp2 = verify_checkpoint(info2.active.note, [verifier], sandbox.v1_origin).checkpoint
    assert cp2.size == 53

    proof = await client.consistency_proof(cp1.size, cp2.size, info2.active.tree_id)
    verify_consistency(cp1.size, cp2.size, cp1.root, cp2.root, proof)
    assert await client.consistency_proof(0, cp2.size, info2.active.tree_id) == []
    assert await client.consistency_proof(cp2.size, cp2.size, info2.active.tree_id) == []

    before = sandbox.request_count("v1.retrieve")
    got = await client.entries([*range(25), 3, 10_000])  # a duplicate and a missing index
    assert sandbox.request_count("v1.retrieve") - before == 3  # 26 distinct -> 10 + 10 + 6
    assert sorted(got) == list(range(25))
    for index, entry in got.items():
        assert entry.log_index == entry.tree_index == index
        assert entry.checkpoint is not None and entry.proof_root is not None
        cp = verify_checkpoint(entry.checkpoint, [verifier], sandbox.v1_origin).checkpoint
        assert (cp.size, cp.root) == (entry.proof_tree_size, entry.proof_root)
        verify_inclusion(entry.leaf_hash, index, cp.size, entry.proof_hashes, cp.root)

    one = await client.entry(7)
    assert one is not None
    assert (one.uuid, one.body, one.log_index) == (got[7].uuid, got[7].body, 7)  # SETs vary
    assert await client.entry(10_000) is None
    assert await client.public_key() == sandbox.v1_public_key_pem
    assert budget.used == sum(
        sandbox.request_count(e)
        for e in ("v1.log", "v1.proof", "v1.retrieve", "v1.entries", "v1.publicKey")
    )


async def test_v1_shards_and_global_indexes(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    await sandbox.append("v1", 5)
    old_tree = str(sandbox.v1_tree_id)
    await sandbox.rotate()
    await sandbox.append("v1", 3)
    info = await client.log_info()
    assert [t.tree_id for t in info.inactive] == [old_tree]
    assert info.inactive[0].size == 5
    assert info.active.size == 3 and info.active.tree_id != old_tree
    got = await client.entries(range(8))
    assert [(e.log_index, e.tree_index) for e in got.values()] == [
        (0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 0), (6, 1), (7, 2),
    ]  # fmt: skip
    assert got[6].uuid.startswith(f"{int(info.active.tree_id):016x}")


async def test_v1_proof_beyond_a_lagging_replica_is_not_ready(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    await sandbox.append("v1", 4)
    tree = str(sandbox.v1_tree_id)
    with pytest.raises(LogNotReady) as e:
        await client.consistency_proof(2, 9, tree)
    assert isinstance(e.value, NetworkError) and not isinstance(e.value, ParseError)
    assert sandbox.request_count("v1.proof") == 1  # a 400 is not retried by the HTTP layer


async def test_v1_bad_proof_fails_verification(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    await sandbox.append("v1", 5)
    cp1 = (await client.log_info()).active
    await sandbox.append("v1", 6)
    cp2 = (await client.log_info()).active
    sandbox.misbehave("v1", "bad_proof")
    proof = await client.consistency_proof(cp1.size, cp2.size, cp2.tree_id)
    with pytest.raises(ProofError):
        verify_consistency(cp1.size, cp2.size, cp1.root, cp2.root, proof)


async def test_v1_bad_entries_are_entry_mismatch(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    await sandbox.append("v1", 3)
    sandbox.misbehave("v1", "bad_entries")
    with pytest.raises(EntryMismatch) as e:
        await client.entries([0, 1, 2])
    assert e.value.log_index == 0
    with pytest.raises(EntryMismatch):
        await client.entry(2)


# === the sandbox: tiles ========================================================================

TILE_SIZES = [1, 2, 255, 256, 257, 600, 65535, 65536, 65537, 70_000]


async def test_tiles_proofs_verify_against_signed_checkpoints(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    verifier = sandbox.tiles_verifier()
    client = TilesClient(http, sandbox.tiles_url, FAST)
    checkpoints: dict[int, bytes] = {}
    for size in TILE_SIZES:
        await sandbox.append("tiles", size - max(checkpoints, default=0))
        text = await client.checkpoint()
        cp = verify_checkpoint(text, [verifier], sandbox.tiles_origin).checkpoint
        assert cp.size == size
        checkpoints[size] = cp.root

    # Roots folded from the tiles of each size match the signed roots.
    for size, root in checkpoints.items():
        assert await client.root(size) == root

    # Consistency between every pair, computed from the tiles of the larger size.
    for size1, root1 in checkpoints.items():
        for size2, root2 in checkpoints.items():
            if size1 <= size2:
                proof = await client.consistency_proof(size1, size2)
                verify_consistency(size1, size2, root1, root2, proof)

    # Inclusion of real entries (from entry bundles) at each size.
    source = TilesSource(client)
    for size, root in checkpoints.items():
        for index in {0, size // 2, size - 1}:
            [entry] = await source.entries(TILES_TREE, index, index + 1, size)
            proof = await client.inclusion_proof(index, size)
            verify_inclusion(leaf_hash(entry), index, size, proof, root)

    # Everything above came from the cache after the first fetches: asking again is free.
    before = sandbox.request_count("tiles.tile")
    await client.consistency_proof(257, 70_000)
    assert sandbox.request_count("tiles.tile") == before


async def test_tiles_bad_tiles_fail_verification(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = TilesClient(http, sandbox.tiles_url, FAST)
    verifier = sandbox.tiles_verifier()
    await sandbox.append("tiles", 300)
    cp1 = verify_checkpoint(await client.checkpoint(), [verifier]).checkpoint
    await sandbox.append("tiles", 300)
    cp2 = verify_checkpoint(await client.checkpoint(), [verifier]).checkpoint
    sandbox.misbehave("tiles", "bad_proof")
    proof = await client.consistency_proof(cp1.size, cp2.size)
    with pytest.raises(ProofError):
        verify_consistency(cp1.size, cp2.size, cp1.root, cp2.root, proof)
    assert await client.root(cp2.size) != cp2.root


async def test_tiles_bad_entries_do_not_hash_to_the_tile(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = TilesClient(http, sandbox.tiles_url, FAST)
    source = TilesSource(client)
    await sandbox.append("tiles", 10)
    good = await client.hash_tile(0, 0, 10)
    assert [leaf_hash(e) for e in await source.entries(TILES_TREE, 0, 10, 10)] == good
    sandbox.misbehave("tiles", "bad_entries")
    assert [leaf_hash(e) for e in await source.entries(TILES_TREE, 0, 10, 10)] != good
    with pytest.raises(LogNotFound):  # the second bundle, 5 wide: neither it nor a full one
        await source.entries(TILES_TREE, 256, 261, 261)


# === misbehaving sandbox: errors, rate limits, slowness ========================================


async def test_500_storm_is_retried_then_unavailable(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    sandbox.misbehave("v1", "errors", status=500)
    with pytest.raises(LogUnavailable, match=r"HTTP 500.*after 3 attempts") as e:
        await client.log_info()
    assert e.value.status == 500
    assert sandbox.request_count("v1.log") == 3


async def test_transient_500s_are_retried_to_success(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    client = TilesClient(http, sandbox.tiles_url, FAST)
    await sandbox.append("tiles", 3)
    sandbox.misbehave("tiles", "errors", status=503, count=2, retry_after=0)
    assert (await client.checkpoint()).startswith(sandbox.tiles_origin + "\n3\n")
    assert sandbox.request_count("tiles.checkpoint") == 3


async def test_429_retry_after_is_honoured(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    sandbox.misbehave("v1", "errors", status=429, count=1, retry_after=1)
    start = time.monotonic()
    await client.log_info()
    assert time.monotonic() - start >= 1.0
    assert sandbox.request_count("v1.log") == 2


async def test_429_asking_too_long_fails_at_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    policy = HttpPolicy(retries=4, backoff_base=0.01, max_retry_after=5)
    client = RekorV1Client(http, sandbox.url, policy)
    sandbox.misbehave("v1", "errors", status=429, retry_after=3600)
    start = time.monotonic()
    with pytest.raises(LogUnavailable, match="HTTP 429") as e:
        await client.log_info()
    assert time.monotonic() - start < 1
    assert (e.value.status, e.value.retry_after) == (429, 3600)
    assert sandbox.request_count("v1.log") == 1


async def test_other_4xx_are_not_retried(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    client = RekorV1Client(http, sandbox.url, FAST)
    sandbox.misbehave("v1", "errors", status=403)
    with pytest.raises(LogStatusError, match="HTTP 403") as e:
        await client.log_info()
    assert e.value.status == 403
    assert sandbox.request_count("v1.log") == 1


async def test_slow_log_times_out(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    policy = HttpPolicy(timeout=0.3, retries=1, backoff_base=0.01)
    client = TilesClient(http, sandbox.tiles_url, policy)
    sandbox.misbehave("tiles", "slow", delay=1)  # the server's shutdown waits for its handlers
    start = time.monotonic()
    with pytest.raises(LogUnavailable, match=r"timed out after 0\.3s") as e:
        await client.checkpoint()
    assert time.monotonic() - start < 2
    assert e.value.status is None


# === a deliberately broken server ==============================================================


@dataclass
class Broken:
    url: str
    hits: Counter[str] = field(default_factory=Counter)


@pytest.fixture
async def broken() -> AsyncIterator[Broken]:
    """A tiny server on 127.0.0.1 that answers badly in every way a log could."""
    state = Broken("")
    hits = state.hits

    def counted(
        fn: Callable[[web.Request], object],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            hits[request.path] += 1
            result = fn(request)
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, web.StreamResponse)
            return result

        return handler

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b"[" + b"0," * 32767 + b"0"
        try:
            for _ in range(1024):  # 64 MiB
                await resp.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        return resp

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b" ")
                await asyncio.sleep(0.05)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        return resp

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for n in range(2_000):  # 20,000 bytes, ten at a time, each seen by the client alone
            await resp.write(bytes([n % 256]) * 10)
            await asyncio.sleep(0)
        return resp

    async def reset(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    def declared(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"{}", headers={"Content-Length": str(64 << 20)})

    app = web.Application()
    routes: dict[str, Callable[[web.Request], object]] = {
        "/huge": huge,
        "/endless": endless,
        "/reset": reset,
        "/trickle": trickle,
        "/declared": declared,
        "/html": lambda r: web.Response(text="<html>hi</html>", content_type="text/html"),
        "/notjson": lambda r: web.Response(text="hello", content_type="application/json"),
        "/deep": lambda r: web.Response(body=b"[" * 200_000 + b"]" * 200_000),
        "/api/v1/log": lambda r: web.json_response(
            {"rootHash": 5, "signedTreeHead": "x", "treeID": "1", "treeSize": "big"}
        ),
        "/api/v1/log/entries": lambda r: web.json_response({"ab" * 32: "nope"}),
        "/api/v1/log/entries/retrieve": lambda r: web.json_response([]),
        "/api/v1/log/publicKey": lambda r: web.Response(text="<html>login</html>"),
        "/date503": lambda r: web.Response(
            status=503,
            headers={
                "Retry-After": format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
            },
        ),
        "/tiles/checkpoint": lambda r: web.Response(text="<!doctype html><p>maintenance</p>"),
        "/tiles/tile/0/000": lambda r: web.Response(body=b"\x11" * 8192),
        "/tiles/tile/0/001.p/3": lambda r: web.Response(body=b"\x22" * 95),
        "/tiles/tile/entries/000": lambda r: web.Response(
            body=b"".join(b"\x00\x01" + bytes([i]) for i in range(256))
        ),
    }
    for path, fn in routes.items():
        app.router.add_route("*", path, counted(fn))
    app.router.add_route("*", "/{tail:.*}", counted(lambda r: web.Response(status=404)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_huge_streaming_body_is_cut_off_with_bounded_memory(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    policy = HttpPolicy(max_body_bytes=4 << 20, retries=3, backoff_base=0.01)
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(LogResponseError, match="at most 4194304 bytes, got more"):
            await get_json(http, broken.url + "/huge", policy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 5
    assert peak < 16 << 20  # the 64 MiB body was never held
    assert broken.hits["/huge"] == 1  # a body that is too large is not retried


async def test_a_trickled_body_is_held_in_few_pieces(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    """Each bytes object costs ~40 bytes beyond its data: a body sent ten bytes at a time is
    gathered as it arrives, not kept as 2,000 pieces holding five times what the caps count."""
    pieces = await get_pieces(http, broken.url + "/trickle", FAST)
    assert b"".join(pieces) == b"".join(bytes([n % 256]) * 10 for n in range(2_000))
    assert len(pieces) <= 2 and all(len(piece) >= 16 * 1024 for piece in pieces[:-1])


async def test_declared_huge_body_is_refused_unread(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(LogResponseError, match="got Content-Length 67108864"):
        await get_bytes(http, broken.url + "/declared", FAST)


async def test_endless_body_is_cut_off_by_the_timeout(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    policy = HttpPolicy(timeout=0.5, retries=1, backoff_base=0.01)
    start = time.monotonic()
    with pytest.raises(LogUnavailable, match=r"timed out after 0\.5s.*after 2 attempts"):
        await get_bytes(http, broken.url + "/endless", policy)
    assert time.monotonic() - start < 3
    assert broken.hits["/endless"] == 2


async def test_cancellation_is_not_swallowed(broken: Broken, http: aiohttp.ClientSession) -> None:
    task = asyncio.ensure_future(get_bytes(http, broken.url + "/endless", HttpPolicy()))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/html", LogResponseError, "expected JSON, got text/html"),
        ("/notjson", LogResponseError, 'expected JSON, got Expecting value.*"hello"'),
        ("/deep", LogResponseError, "nested at most 64 deep, got 200000 levels"),
        ("/nowhere", LogNotFound, "HTTP 404"),
        ("/reset", LogUnavailable, "after 3 attempts"),
        ("/date503", LogUnavailable, "HTTP 503"),
    ],
)
async def test_garbage_answers(
    broken: Broken,
    http: aiohttp.ClientSession,
    path: str,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        await get_json(http, broken.url + path, FAST)


async def test_date_retry_after_beyond_the_cap_fails_at_once(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(LogUnavailable) as e:
        await get_json(http, broken.url + "/date503", FAST)
    assert e.value.retry_after is not None and 3500 < e.value.retry_after <= 3600
    assert broken.hits["/date503"] == 1


async def test_connection_refused_is_unavailable(http: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LogUnavailable, match="after 3 attempts") as e:
        await get_json(http, f"http://127.0.0.1:{port}/api/v1/log", FAST)
    assert e.value.status is None
    assert isinstance(e.value.__cause__, aiohttp.ClientConnectionError)


async def test_credentials_never_appear_in_messages(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    url = broken.url.replace("http://", "http://monitor:hunter2@") + "/notjson"
    with pytest.raises(LogResponseError) as e:
        await get_json(http, url, FAST)
    assert "hunter2" not in str(e.value) and "monitor:" not in str(e.value)
    client = RekorV1Client(http, broken.url.replace("http://", "http://u:hunter2@"), FAST)
    assert "hunter2" not in repr(client)
    with pytest.raises(LogResponseError) as e2:
        await client.log_info()
    assert "hunter2" not in str(e2.value)


async def test_v1_client_rejects_wrong_types_over_http(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    client = RekorV1Client(http, broken.url, FAST)
    with pytest.raises(LogResponseError, match=r"/api/v1/log: \$\.treeSize: expected an integer"):
        await client.log_info()
    with pytest.raises(LogResponseError, match="expected an object, got a string"):
        await client.entry(3)
    assert await client.entries([1, 2]) == {}
    with pytest.raises(LogResponseError, match="expected a PEM public key"):
        await client.public_key()


async def test_post_json_round_trip(broken: Broken, http: aiohttp.ClientSession) -> None:
    assert await post_json(http, broken.url + "/api/v1/log/entries/retrieve", {"a": 1}, FAST) == []


async def test_tiles_partial_fallback_and_wrong_lengths(
    broken: Broken, http: aiohttp.ClientSession
) -> None:
    client = TilesClient(http, broken.url + "/tiles", FAST)
    # The partial tile is gone (404): the full tile is fetched and trimmed.
    assert await client.hash_tile(0, 0, 5) == [b"\x11" * 32] * 5
    assert broken.hits["/tiles/tile/0/000.p/5"] == 1 and broken.hits["/tiles/tile/0/000"] == 1
    assert await TilesSource(client).entries(TILES_TREE, 0, 3, 3) == [b"\x00", b"\x01", b"\x02"]
    with pytest.raises(LogResponseError, match=r"expected 3 hashes \(96 bytes\), got 95 bytes"):
        await client.hash_tile(0, 1, 3)
    with pytest.raises(LogNotFound):
        await client.hash_tile(0, 2, 256)
    with pytest.raises(ValueError):
        await client.hash_tile(0, 0, 0)
    # An HTML page served as the checkpoint is garbage (log_error), not a bad signature.
    with pytest.raises(LogResponseError, match="expected a checkpoint, got markup"):
        await client.checkpoint()
