"""Per-entry proofs of Rekor v1 search results, cross-checked against real production entries
(sigstore bundles we did not make: SET, inclusion proof and checkpoint as Rekor served them)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cli.inspect import load_input
from monitor.core.entry_proof import (
    EntryEvidence,
    EntryProofError,
    consistency_sizes,
    integration_time,
    set_message,
    verify_entry,
    verify_set,
)
from monitor.core.keys import verifier_from_pem
from monitor.core.note import EcdsaNoteVerifier
from monitor.logs.rekor_v1.client import parse_entry_map

# Production Rekor v1 entries with their checkpoints: three shards' worth of keyless,
# managed-key, hashedrekord and DSSE entries.
BUNDLES = (
    "sigstore-bundles/bundle_v3_github.whl.sigstore",
    "more-bundles/conformance/happy-path-intoto-in-dsse-v3.json",
    "more-bundles/conformance/happy-path-v0.3.json",
    "more-bundles/conformance/managed-key-happy-path.json",
    "more-bundles/sigstore-js/bundleV03-dsse.sigstore.json",
)
SET_ONLY = "sigstore-bundles/Python-3.12.5.tgz.sigstore"
"""A bundle with a SET and an inclusion proof but no checkpoint."""


def production_key(fixtures: Path) -> EcdsaNoteVerifier:
    pem = (fixtures / "rekor-production" / "rekor_v1_prod.pub.pem").read_bytes()
    key = verifier_from_pem("rekor.sigstore.dev", pem)
    assert isinstance(key, EcdsaNoteVerifier)
    return key


def bundle_evidence(fixtures: Path, name: str) -> tuple[EntryEvidence, str]:
    """A real bundle's tlog entry as the evidence a search result carries, and its origin."""
    doc = json.loads((fixtures / name).read_text())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    proof = entry["inclusionProof"]
    note = proof["checkpoint"]["envelope"] if "checkpoint" in proof else None
    return (
        EntryEvidence(
            body=base64.b64decode(entry["canonicalizedBody"]),
            log_index=int(entry["logIndex"]),
            integrated_time=int(entry["integratedTime"]),
            log_id=base64.b64decode(entry["logId"]["keyId"]).hex(),
            signed_entry_timestamp=base64.b64decode(
                entry["inclusionPromise"]["signedEntryTimestamp"]
            ),
            tree_index=int(proof["logIndex"]),
            proof_tree_size=int(proof["treeSize"]),
            proof_root=base64.b64decode(proof["rootHash"]),
            proof_hashes=tuple(base64.b64decode(h) for h in proof["hashes"]),
            checkpoint=note,
        ),
        note.split("\n", 1)[0] if note else "",
    )


@pytest.mark.parametrize("name", BUNDLES)
def test_real_production_entries_verify(real_data: Path, name: str) -> None:
    key = production_key(real_data)
    ev, origin = bundle_evidence(real_data, name)
    cp = verify_entry(ev, key, [key], origin)
    assert (cp.size, cp.root) == (ev.proof_tree_size, ev.proof_root)


def _replace(ev: EntryEvidence, **changes: object) -> EntryEvidence:
    fields = {f: getattr(ev, f) for f in EntryEvidence.__dataclass_fields__}
    fields.update(changes)
    return EntryEvidence(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"integrated_time": 1}, "signedEntryTimestamp is not a valid signature"),
        ({"log_index": 0}, "signedEntryTimestamp is not a valid signature"),
        ({"signed_entry_timestamp": None}, "expected a signedEntryTimestamp"),
        ({"log_id": "00" * 32}, "expected logID"),
        ({"tree_index": 0}, "inclusion proof"),
        ({"proof_tree_size": 1}, "treeSize and rootHash"),
        ({"proof_root": b"\x00" * 32}, "treeSize and rootHash"),
        ({"proof_hashes": ()}, "inclusion proof"),
        ({"checkpoint": None}, "expected a signed checkpoint"),
        ({"tree_index": None}, "expected an inclusion proof"),
    ],
)
def test_each_piece_of_evidence_is_checked(
    real_data: Path, change: dict[str, object], message: str
) -> None:
    key = production_key(real_data)
    ev, origin = bundle_evidence(real_data, BUNDLES[0])
    with pytest.raises(EntryProofError, match=message):
        verify_entry(_replace(ev, **change), key, [key], origin)


def test_a_checkpoint_of_another_origin_is_refused(real_data: Path) -> None:
    key = production_key(real_data)
    ev, _ = bundle_evidence(real_data, BUNDLES[0])
    with pytest.raises(EntryProofError, match="origin"):
        verify_entry(ev, key, [key], "rekor.sigstore.dev - 1193050959916656506")


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_bit_flip_in_the_body_fails(real_data: Path, position: int, bit: int) -> None:
    key = production_key(real_data)
    ev, _ = bundle_evidence(real_data, SET_ONLY)
    verify_set(ev, key)
    body = bytearray(ev.body)
    body[position % len(body)] ^= 1 << bit
    with pytest.raises(EntryProofError):
        verify_set(_replace(ev, body=bytes(body)), key)


def test_set_message_is_rekors_canonical_json() -> None:
    assert set_message(b"{}", 7, "ab", 3) == (
        b'{"body":"e30=","integratedTime":7,"logID":"ab","logIndex":3}'
    )


@pytest.mark.parametrize(
    ("proof_size", "verified", "expected"),
    [(5, 5, None), (3, 5, (3, 5)), (9, 5, (5, 9)), (1, 0, (0, 1))],
)
def test_consistency_sizes(proof_size: int, verified: int, expected: object) -> None:
    assert consistency_sizes(proof_size, verified) == expected


# --- one way to verify an entry: inspect and the search path agree -----------------------------


@pytest.mark.parametrize("name", BUNDLES)
def test_inspect_reads_the_evidence_the_search_path_verifies(real_data: Path, name: str) -> None:
    """`inspect` hands `monitor.core.entry_proof` the same evidence the search path does, so
    the one `verify_entry` decides both."""
    key = production_key(real_data)
    ev, origin = bundle_evidence(real_data, name)
    loaded = load_input((real_data / name).read_bytes())
    assert loaded.evidence(key.key_id.hex()) == ev
    verify_entry(loaded.evidence(key.key_id.hex()), key, [key], origin)


def test_a_v1_log_entry_is_read_once_for_inspect_and_the_client(real_data: Path) -> None:
    raw = (real_data / "rekor-production" / "sidekick_rekor-api-log-entry.json").read_bytes()
    [entry] = parse_entry_map(json.loads(raw))
    loaded = load_input(raw)
    assert loaded.v1 == entry
    assert loaded.evidence("") == entry.evidence
    key = production_key(real_data)
    verify_set(entry.evidence, key)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, None), (1, "1970-01-01T00:00:01+00:00"), (1610469905, "2021-01-12T16:45:05+00:00")],
)
def test_integrated_time_zero_is_no_time(seconds: int, expected: str | None) -> None:
    at = integration_time(seconds)
    assert (at.isoformat() if at else None) == expected


def test_a_set_over_integrated_time_zero_is_checked_as_served(real_data: Path) -> None:
    """0 is still what the SET signs: it is not dropped before the signature check."""
    key = production_key(real_data)
    ev, _ = bundle_evidence(real_data, BUNDLES[0])
    with pytest.raises(EntryProofError, match="integratedTime 0"):
        verify_set(_replace(ev, integrated_time=0), key)
