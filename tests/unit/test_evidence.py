"""Portable split-view evidence: what it proves, and that no edited byte ever verifies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cli.main import main
from monitor.core import evidence
from monitor.core.evidence import EvidenceInvalid, EvidenceUnreadable, KnownKey, known_key
from monitor.core.keys import verifier_from_pem
from monitor.core.merkle import MerkleTree, leaf_hash
from monitor.core.note import (
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


def known(*signers: Ed25519NoteSigner | EcdsaNoteSigner) -> list[KnownKey]:
    return [known_key(s.verifier(), f"test key {s.name}", "the test") for s in signers]


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
    verdict = evidence.verify(split(signer), known(ED_LOG, EC_LOG))
    assert verdict.proven and verdict.equivocation
    assert verdict.known is not None and verdict.known.label == f"test key {signer.name}"
    assert any(line.startswith("PROVEN: the log signed") for line in verdict.lines)
    assert signer.verifier().key_hint.hex() in verdict.lines[0]
    assert verdict.lines[1] == f"key known: test key {signer.name}, from the test"


# Anyone can make a key and give it the log's name: the signatures verify, the key is not the log's.
FORGER = Ed25519NoteSigner(ED_LOG.name, Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))


@pytest.mark.parametrize(
    ("keys", "any_key", "proven", "key_line", "verdict"),
    [
        ([], False, False, "key UNKNOWN: not one of the known keys (checked: none)", "not proven"),
        (known(ED_LOG), False, False, "key UNKNOWN: not one of", "not proven: this key signed"),
        (known(ED_LOG), True, True, "key UNKNOWN (accepted with --any-key)", "PROVEN for an"),
        (known(FORGER), False, True, "key known: test key", "PROVEN: the log signed"),
    ],
    ids=["no-keys", "other-key", "any-key", "forger-pinned"],
)
def test_only_a_known_key_proves_unless_any_key(
    keys: list[KnownKey], any_key: bool, proven: bool, key_line: str, verdict: str
) -> None:
    result = evidence.verify(split(FORGER), keys, any_key=any_key)
    assert result.equivocation
    assert result.proven is proven
    assert result.lines[1].startswith(key_line), result.lines
    assert result.lines[-1].startswith(verdict), result.lines


def test_a_key_is_known_by_its_public_key_not_its_name_or_hint() -> None:
    # Same public key under another name (a config's origin override): still the key.
    renamed = known_key(
        Ed25519NoteSigner("another.name", ED_LOG._key).verifier(), "renamed", "the test"
    )
    assert evidence.verify(split(ED_LOG), [renamed]).proven
    # Same name, another key: never.
    assert not evidence.verify(split(FORGER), known(ED_LOG)).proven


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
    # Not even with the key known or any key accepted: the notes alone do not prove a fork.
    honest = _tree(9)
    forked = _tree(9, b"fork")
    small_root, large_root = honest.root(5), forked.root(9)
    proof = honest.consistency_proof(5, 9)
    verdict = evidence.verify(
        split(sizes=(5, 9), roots=(small_root, large_root), proof=proof), known(ED_LOG)
    )
    assert not verdict.proven and "proof fails" in verdict.lines[-1]
    assert "ask the log for a consistency proof from size 5 to 9" in verdict.lines[-1]
    consistent = split(sizes=(5, 9), roots=(honest.root(5), honest.root(9)), proof=proof)
    assert "consistent" in evidence.verify(consistent).lines[-1]
    assert not evidence.verify(split(sizes=(5, 9), proof=None), any_key=True).proven


def test_same_checkpoint_twice_proves_nothing() -> None:
    same = split(roots=(b"\x01" * 32, b"\x01" * 32))
    assert not evidence.verify(same, known(ED_LOG), any_key=True).proven


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": "something else"}',
        b"\xff\xfe",
        b"x" * (2 << 20),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 900 + b"1" + b"}" * 900,
        b'{"format": "tlog-monitor/evidence", "x": ' + b"[" * 9 + b"]" * 9 + b"}",
        b'{"format": "tlog-monitor/evidence", "x": NaN}',
        b'{"format": "tlog-monitor/evidence", "x": ' + b"9" * 5000 + b"}",
    ],
    ids=[
        "empty",
        "text",
        "array",
        "format",
        "binary",
        "huge",
        "100k-deep",
        "900-deep",
        "9-deep",
        "nan",
        "huge-int",
    ],
)
def test_unreadable_input(data: bytes) -> None:
    with pytest.raises(EvidenceUnreadable):
        evidence.verify(data)


# --- no input makes the CLI entry point raise: exit 0, 1 or 2, never a traceback ------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def _run_verify(path: str, *args: str) -> int:
    # main() is the console script: an exception escaping it is a traceback for the user.
    return main(["evidence", "verify", path, *args])


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=400) | st.builds(lambda n: b"[" * n, st.integers(1, 200_000)))
def test_cli_random_bytes_exit_1_or_2(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "e.json"
    path.write_bytes(data)
    assert _run_verify(str(path), "--any-key") in (1, 2)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_cli_documents_with_any_field_replaced_never_raise(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Intact digests and canonical form, so verification reaches every later check.
    doc = json.loads(split(EC_LOG))
    where = data.draw(st.sampled_from(["top", "log", "key", "notes"]))
    value = data.draw(_JSON)
    if where == "top":
        doc[data.draw(st.sampled_from(sorted(doc)))] = value
    elif where == "log":
        doc["log"][data.draw(st.sampled_from(["name", "tree_id", "key"]))] = value
    elif where == "key":
        doc["log"]["key"][data.draw(st.sampled_from(["name", "hint", "spki"]))] = value
    else:
        doc["notes"][data.draw(st.integers(0, 1))] = value
    doc["digest"] = evidence._digest(doc)
    path = tmp_path_factory.mktemp("fuzz") / "e.json"
    path.write_bytes(evidence.dump(doc))
    assert _run_verify(str(path), "--any-key") in (0, 1, 2)


def test_real_rekor_checkpoints_are_signed_by_a_key_of_sigstores_trusted_root(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two genuine production checkpoints of one tree: the key is known without any option,
    # from the embedded trusted root; different sizes prove nothing by themselves (exit 1).
    prod = real_data / "rekor-production"
    withdata = json.loads((prod / "securesign_mock_withdata_api_v1_log.json").read_text())
    pem = (prod / "rekor_v1_prod.pub.pem").read_bytes()
    verifier = verifier_from_pem("rekor.sigstore.dev", pem)
    doc = evidence.build_split_view(
        log_name="rekor",
        tree_id=str(withdata["treeID"]),
        verifier=verifier,
        a=(
            "primary",
            (prod / "sigstore-python_npm_bundle_checkpoint_size46800506.txt").read_text(),
        ),
        b=("view1:https://mirror.example", str(withdata["signedTreeHead"])),
        proof=None,
        reason="test",
    )
    path = tmp_path / "real.json"
    path.write_bytes(evidence.dump(doc))
    (tmp_path / "prod.pem").write_bytes(pem)
    assert main(["evidence", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "key known: https://rekor.sigstore.dev, from sigstore's production trusted root" in out
    assert "not proven offline" in out
    assert main(["evidence", "verify", "--key", str(tmp_path / "prod.pem"), str(path)]) == 1
    out = capsys.readouterr().out
    assert f"key known: {tmp_path / 'prod.pem'}, from the keys pinned with --key" in out
