"""Attacks by a hostile RFC 6962 log (a real aiohttp server on 127.0.0.1) on the CT client and
the monitor: every malformed answer is a typed failure of that log (`log_error`), never an
accusation (`bad_signature`, `split_view`) and never a hang or a crash.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.config.settings import load_config
from monitor.core.merkle import MerkleTree, leaf_hash
from monitor.logs.ct.client import CtClient
from monitor.logs.http import HttpPolicy, LogResponseError
from monitor.sandbox.ctlog import sign_sth
from monitor.service.daemon import open_monitor
from tests.faults.test_attack_wire import Server
from tests.helpers import monitor_table

POLICY = HttpPolicy(timeout=5.0, retries=0)
KEY = ec.generate_private_key(ec.SECP256R1())
CERT = b"\x30\x03\x02\x01\x05"


def _leaf(i: int) -> bytes:
    return (
        b"\x00\x00"
        + i.to_bytes(8, "big")
        + b"\x00\x00"
        + len(CERT).to_bytes(3, "big")
        + CERT
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
