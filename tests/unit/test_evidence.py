"""Portable split-view evidence: what it proves, and that no edited byte ever verifies."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import evidence
from monitor.evidence import EvidenceInvalid, EvidenceUnreadable
from monitor.merkle import MerkleTree, leaf_hash
from monitor.note import (
    Checkpoint,
    EcdsaNoteSigner,
    Ed25519NoteSigner,
    format_checkpoint,
    sign_note,
)

ED_LOG = Ed25519NoteSigner(
    "example.com/log",
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"evidence test log").digest()),
)
EC_LOG = EcdsaNoteSigner(
    "rekor.example", ec.derive_private_key(12345678901234567890, ec.SECP256R1())
)
ORIGIN = "example.com/log"


def note(signer: Ed25519NoteSigner | EcdsaNoteSigner, size: int, root: bytes) -> str:
    text = format_checkpoint(Checkpoint(origin=ORIGIN, size=size, root=root))
    return sign_note(text, [signer]).to_text()


def split(
    signer: Ed25519NoteSigner | EcdsaNoteSigner = ED_LOG,
    sizes: tuple[int, int] = (7, 7),
    roots: tuple[bytes, bytes] = (b"\x01" * 32, b"\x02" * 32),
    proof: list[bytes] | None = None,
) -> bytes:
    doc = evidence.build_split_view(
        log_name="example",
        tree_id="tiles",
        verifier=signer.verifier(),
        a=("primary", note(signer, sizes[0], roots[0])),
        b=("view1:https://mirror.example", note(signer, sizes[1], roots[1])),
        proof=proof,
        reason="same size, different roots",
    )
    return evidence.dump(doc)


@pytest.mark.parametrize("signer", [ED_LOG, EC_LOG], ids=["ed25519", "ecdsa"])
def test_same_size_different_roots_is_proven(signer: Ed25519NoteSigner | EcdsaNoteSigner) -> None:
    verdict = evidence.verify(split(signer))
    assert verdict.proven
    assert any(line.startswith("PROVEN") for line in verdict.lines)
    assert signer.verifier().key_hint.hex() in verdict.lines[0]


def test_every_single_byte_edit_fails() -> None:
    data = split(EC_LOG)
    for i in range(len(data)):
        edited = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        with pytest.raises((EvidenceInvalid, EvidenceUnreadable)):
            evidence.verify(edited)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_edits_insertions_and_deletions_fail(data: st.DataObject) -> None:
    doc = split()
    i = data.draw(st.integers(0, len(doc) - 1))
    op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    byte = data.draw(st.integers(0, 255))
    if op == "replace":
        if byte == doc[i]:
            return
        edited = doc[:i] + bytes([byte]) + doc[i + 1 :]
    elif op == "insert":
        edited = doc[:i] + bytes([byte]) + doc[i:]
    else:
        edited = doc[:i] + doc[i + 1 :]
    with pytest.raises((EvidenceInvalid, EvidenceUnreadable)):
        evidence.verify(edited)


def test_re_signed_by_another_key_does_not_verify_against_the_documented_key() -> None:
    doc = json.loads(split())
    other = Ed25519NoteSigner("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    doc["notes"][1] = note(other, 7, b"\x02" * 32)
    doc["digest"] = evidence._digest(doc)
    with pytest.raises(EvidenceInvalid, match="note b does not verify"):
        evidence.verify(evidence.dump(doc))


def _tree(n: int, salt: bytes = b"") -> MerkleTree:
    tree = MerkleTree()
    for i in range(n):
        tree.append(leaf_hash(salt + i.to_bytes(4, "big")))
    return tree


def test_different_sizes_are_not_proven_offline_whatever_the_proof() -> None:
    honest = _tree(9)
    forked = _tree(9, b"fork")
    small_root, large_root = honest.root(5), forked.root(9)
    proof = honest.consistency_proof(5, 9)
    verdict = evidence.verify(split(sizes=(5, 9), roots=(small_root, large_root), proof=proof))
    assert not verdict.proven and "proof fails" in verdict.lines[-1]
    assert "ask the log for a consistency proof from size 5 to 9" in verdict.lines[-1]
    consistent = split(sizes=(5, 9), roots=(honest.root(5), honest.root(9)), proof=proof)
    assert "consistent" in evidence.verify(consistent).lines[-1]
    assert not evidence.verify(split(sizes=(5, 9), proof=None)).proven


def test_same_checkpoint_twice_proves_nothing() -> None:
    assert not evidence.verify(split(roots=(b"\x01" * 32, b"\x01" * 32))).proven


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"format": "something else"}', b"\xff\xfe", b"x" * (2 << 20)],
    ids=["empty", "text", "array", "format", "binary", "huge"],
)
def test_unreadable_input(data: bytes) -> None:
    with pytest.raises(EvidenceUnreadable):
        evidence.verify(data)
