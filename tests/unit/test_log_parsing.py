"""The log clients' pure parts (monitor.logs): parsing real Rekor production responses, JSON
limits, Retry-After, URL redaction and the request budget; no network."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.core.errors import VerificationError
from monitor.core.merkle import leaf_hash, verify_inclusion
from monitor.logs.http import (
    LogResponseError,
    RequestBudget,
    json_depth,
    parse_json,
    parse_retry_after,
    safe_url,
)
from monitor.logs.rekor_v1.client import (
    EntryMismatch,
    parse_consistency_proof,
    parse_entries,
    parse_entry_map,
    parse_log_info,
)


def _load(real_data: Path, name: str) -> object:
    return json.loads((real_data / "rekor-production" / name).read_text())


# === pure parsing: real production responses ==================================================


def test_parse_log_info_production_shard(real_data: Path) -> None:
    info = parse_log_info(_load(real_data, "securesign_mock_withdata_api_v1_log.json"))
    assert info.active.tree_id == "1193050959916656506"
    assert info.active.size == 266_676_745
    assert info.active.root.hex() == (
        "dd984b288de629496979d43d86220c6c92232abdef4dcfae7958b2c56ab04060"
    )
    assert info.active.note.startswith("rekor.sigstore.dev - 1193050959916656506\n266676745\n")
    assert info.inactive == ()


def test_parse_log_info_empty_log(real_data: Path) -> None:
    info = parse_log_info(_load(real_data, "securesign_mock_empty_log_api_v1_log.json"))
    assert info.active.size == 0
    assert info.active.root == hashlib.sha256(b"").digest()


def test_parse_log_info_legacy_without_tree_id_is_refused(real_data: Path) -> None:
    # A 2022 Rekor answer (origin "Rekor", no treeID): state is kept per tree, so no tree, no go.
    with pytest.raises(LogResponseError, match="treeID"):
        parse_log_info(_load(real_data, "sidekick_rekor-api-log.json"))


def test_parse_log_info_inactive_shards() -> None:
    head = {"rootHash": "ab" * 32, "signedTreeHead": "note\n", "treeID": "1", "treeSize": 3}
    info = parse_log_info({**head, "inactiveShards": [{**head, "treeID": "2"}]})
    assert [t.tree_id for t in info.inactive] == ["2"]
    assert parse_log_info({**head, "inactiveShards": None}).inactive == ()


_HEAD = {"rootHash": "ab" * 32, "signedTreeHead": "note\n", "treeID": "7", "treeSize": 3}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"treeSize": "3"}, r"treeSize: expected an integer from 0 to 2\^63 - 1, got a string"),
        ({"treeSize": True}, r"treeSize: expected an integer from 0 to 2\^63 - 1, got a boolean"),
        ({"treeSize": -1}, r"treeSize: expected an integer from 0 to 2\^63 - 1, got an integer -1"),
        # Out of range integers: a parse error of the answer, never an OverflowError later.
        (
            {"treeSize": 2**63},
            rf"treeSize: expected an integer from 0 to 2\^63 - 1, got an integer {2**63}",
        ),
        ({"treeSize": 2**64}, r"treeSize: expected an integer from 0 to 2\^63 - 1"),
        ({"treeID": str(2**63)}, r"treeID: expected a decimal tree ID from 0 to 2\^63 - 1"),
        ({"treeID": "9" * 20}, r"treeID: expected a decimal tree ID"),
        (
            {"treeSize": 2**63 - 1, "inactiveShards": [{**_HEAD, "treeID": "8", "treeSize": 1}]},
            r"sizes to add up to at most 2\^63 - 1",
        ),
        ({"treeSize": 3.0}, r"treeSize: expected an integer"),
        ({"rootHash": "ab" * 31}, r"rootHash: expected a 32-byte hash"),
        ({"rootHash": "zz" * 32}, r"rootHash: expected a 32-byte hash"),
        ({"treeID": 7}, r"treeID: expected a decimal tree ID .* as a string, got an integer"),
        ({"treeID": "7a"}, r"treeID: expected a decimal tree ID"),
        ({"signedTreeHead": None}, r"signedTreeHead: expected a string, got null"),
        ({"signedTreeHead": ""}, r"signedTreeHead: expected a signed note"),
        ({"inactiveShards": {}}, r"inactiveShards: expected an array, got an object"),
        ({"inactiveShards": [_HEAD]}, r"expected distinct tree IDs"),
        ({"inactiveShards": [{"treeID": "8"}]}, r"inactiveShards\[0\]: expected a field"),
    ],
)
def test_parse_log_info_rejects_wrong_types(patch: dict[str, object], message: str) -> None:
    with pytest.raises(LogResponseError, match=message):
        parse_log_info({**_HEAD, **patch})


def test_parse_log_info_rejects_non_objects() -> None:
    bad: object
    for bad in ([], "x", None, 3):
        with pytest.raises(LogResponseError, match="expected an object"):
            parse_log_info(bad)


def test_parse_entry_production_legacy_entry(real_data: Path) -> None:
    """logIndex 1 of the first production tree; its inclusion proof verifies against the root
    of the legacy checkpoint (size 1025778) served by /api/v1/log at the time."""
    [entry] = parse_entry_map(_load(real_data, "sidekick_rekor-api-log-entry.json"))
    assert entry.uuid == "073970a07c978b7a9ff15b69fe15d87dfb58fd5756086e3d1fb671c2d0bd95c0"
    assert entry.log_index == 1
    assert entry.tree_index == 1
    assert entry.integrated_time == 1610469905
    assert entry.log_id.startswith("c0d23d6a")
    assert entry.body.startswith(b'{"apiVersion":"0.0.1"')
    assert entry.proof_tree_size == 1_025_778
    assert len(entry.proof_hashes) == 20
    assert entry.checkpoint is None
    assert entry.set is not None and entry.set.startswith(b"0D")  # DER ECDSA signature
    info = _load(real_data, "sidekick_rekor-api-log.json")
    assert isinstance(info, dict)
    assert entry.proof_root == bytes.fromhex(info["rootHash"])
    verify_inclusion(
        entry.leaf_hash, 1, info["treeSize"], entry.proof_hashes, bytes.fromhex(info["rootHash"])
    )


def test_entry_uuid_not_matching_body_is_entry_mismatch(real_data: Path) -> None:
    obj = _load(real_data, "sidekick_rekor-api-log-entry.json")
    assert isinstance(obj, dict)
    [(uuid, entry)] = obj.items()
    body = base64.b64decode(entry["body"]).replace(b"sha256", b"sha512")
    tampered = {uuid: {**entry, "body": base64.b64encode(body).decode()}}
    with pytest.raises(EntryMismatch, match="logIndex 1") as e:
        parse_entry_map(tampered)
    assert isinstance(e.value, VerificationError)
    assert e.value.log_index == 1
    assert e.value.computed == leaf_hash(body)
    # An 80-digit UUID (16 hex digits of tree ID first) is checked on its last 64 digits.
    assert parse_entry_map({"24296fb24b8ad77a" + uuid: entry})[0].log_index == 1


def _entry_patch(real_data: Path, path: list[str], value: object) -> object:
    obj = copy.deepcopy(_load(real_data, "sidekick_rekor-api-log-entry.json"))
    assert isinstance(obj, dict)
    target = next(iter(obj.values()))
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return [obj]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["body"], "not base64!", r"\.body: expected a base64 string"),
        (["body"], KeyError, r"expected a field 'body'"),
        (["logIndex"], True, r"logIndex: expected an integer from 0 to 2\^63 - 1, got a boolean"),
        (["logIndex"], 2**63, r"logIndex: expected an integer from 0 to 2\^63 - 1"),
        (["integratedTime"], -1, r"integratedTime: expected an integer from 0 to 253402300799"),
        (["integratedTime"], 253402300800, r"integratedTime: expected an integer from 0 to"),
        (["integratedTime"], 2**63, r"integratedTime: expected an integer from 0 to"),
        (["verification", "inclusionProof", "logIndex"], 2**63, r"logIndex: expected an integer"),
        (["verification", "inclusionProof", "treeSize"], 2**63, r"treeSize: expected an integer"),
        (["integratedTime"], "1610469905", r"integratedTime: expected an integer"),
        (["logID"], "c0d23d6a", r"logID: expected 64 hex digits"),
        (["verification"], [], r"verification: expected an object, got an array"),
        (["verification", "inclusionProof", "hashes"], "ab", r"hashes: expected an array"),
        (["verification", "inclusionProof", "hashes", 0], "ab", r"hashes\[0\]: expected a 32"),
        (
            ["verification", "inclusionProof", "logIndex"],
            1_025_778,
            r"expected logIndex < treeSize",
        ),
        (
            ["verification", "inclusionProof", "treeSize"],
            0,
            r"treeSize: expected an integer from 1",
        ),
        (["verification", "signedEntryTimestamp"], 5, r"signedEntryTimestamp: expected a base64"),
    ],
)
def test_parse_entries_rejects_wrong_shapes(
    real_data: Path, path: list[str], value: object, message: str
) -> None:
    with pytest.raises(LogResponseError, match=message):
        parse_entries(_entry_patch(real_data, path, value))


def test_parse_entries_shapes() -> None:
    assert parse_entries([]) == []
    with pytest.raises(LogResponseError, match="expected an array of log entries, got an object"):
        parse_entries({})
    with pytest.raises(LogResponseError, match="UUID of 64 or 80 hex digits"):
        parse_entries([{"abc": {}}])


def test_parse_consistency_proof_returns_only_hashes() -> None:
    hashes = [bytes([i]) * 32 for i in range(3)]
    obj = {"rootHash": "cd" * 32, "hashes": [h.hex() for h in hashes]}
    assert parse_consistency_proof(obj) == hashes
    assert parse_consistency_proof({"rootHash": "cd" * 32, "hashes": []}) == []
    with pytest.raises(LogResponseError, match=r"hashes\[1\]"):
        parse_consistency_proof({"rootHash": "cd" * 32, "hashes": ["ab" * 32, "ab"]})
    with pytest.raises(LogResponseError, match="rootHash"):
        parse_consistency_proof({"hashes": []})


# === pure: the HTTP layer's helpers ===========================================================


def test_parse_json_limits() -> None:
    assert parse_json(b'{"a": ["[[[[", {"b": 1}]}', "t") == {"a": ["[[[[", {"b": 1}]}
    assert json_depth('{"a": "[[[[\\"[[[", "b": [[1]]}') == 3
    with pytest.raises(LogResponseError, match="nested at most 64 deep, got 100000"):
        parse_json(b"[" * 100_000 + b"]" * 100_000, "t")
    with pytest.raises(LogResponseError, match="invalid UTF-8"):
        parse_json(b'{"a": "\xff"}', "t")
    with pytest.raises(LogResponseError, match="NaN"):
        parse_json(b"[NaN]", "t")
    with pytest.raises(LogResponseError, match="expected JSON"):
        parse_json(b"<html>nope</html>", "t")
    with pytest.raises(LogResponseError, match="expected JSON"):
        parse_json(b"1" * 10_000, "t")  # longer than Python's int digit limit
    # Unterminated strings full of escaped quotes: the depth scan stays linear (was quadratic).
    start = time.monotonic()
    with pytest.raises(LogResponseError, match="expected JSON"):
        parse_json(b'"' + b'\\"' * 1_000_000, "t")
    assert time.monotonic() - start < 1
    # Unbalanced garbage that *looks* shallow still fails cleanly in the parser.
    with pytest.raises(LogResponseError):
        parse_json(b"]]]]{", "t")


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=42), usegmt=True), now) == 42
    assert parse_retry_after(format_datetime(now - timedelta(days=1), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) is None


def test_safe_url_strips_credentials() -> None:
    assert safe_url("https://user:s3cret@log.example/api?x=1") == "https://log.example/api?x=1"
    assert safe_url("https://token@log.example/") == "https://log.example/"
    assert safe_url("https://log.example/a") == "https://log.example/a"


async def test_request_budget_token_bucket() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = RequestBudget(60, burst=2, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(5):
        await budget.acquire()
    assert budget.used == 5
    # Two at once (the burst), then one a second: 3 waits of ~1s each.
    assert len(slept) == 3
    assert now[0] == pytest.approx(3.0)
    now[0] += 100  # idle refills only up to the burst
    slept.clear()
    for _ in range(3):
        await budget.acquire()
    assert len(slept) == 1
    with pytest.raises(ValueError):
        RequestBudget(0)
    assert RequestBudget(600).requests_per_minute == 600
