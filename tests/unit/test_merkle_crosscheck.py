"""Cross-check monitor.core.merkle against an implementation we did not write: sigstore-python.

sigstore-python verifies Rekor inclusion proofs in ``sigstore._internal.merkle`` with
``verify_merkle_inclusion(entry)``. It takes a ``TransparencyLogEntry`` (it reads only
``entry._inner``: the ``canonicalized_body`` it hashes into the leaf, and the ``inclusion_proof``),
so there is no raw-values entry point; we give it real sigstore objects:

- real bundles are loaded with sigstore's ``Bundle`` model. A few real files are valid log
  entries that the ``Bundle`` model refuses for reasons unrelated to the Merkle proof (a v0.1
  bundle without a checkpoint, a public-key bundle without a certificate, a bare v2 entry
  fixture); those are parsed with sigstore's own wire model for log entries
  (``sigstore_models.rekor.v1.TransparencyLogEntry``) instead; ``NOT_BUNDLE_LOADABLE`` lists
  them, so a change in which loader is used fails the test. Files that carry no inclusion proof
  at all are skipped, by name.
- random trees: each proof from our ``MerkleTree`` is wrapped in a wire-model entry built from raw
  values (the leaf data is the "canonicalized body"), then in sigstore's ``TransparencyLogEntry``.

Our side parses the same JSON independently (json + base64), never through sigstore's models.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.models import Bundle, InvalidBundle, TransparencyLogEntry
from sigstore_models.rekor import v1 as rekor_v1

from monitor.core.merkle import MerkleTree, ProofError, leaf_hash, verify_inclusion
from tests.conftest import REAL_DATA, real_files

# --- the two verifiers, on the same JSON --------------------------------------------------------

Doc = dict[str, Any]


@dataclass(frozen=True)
class _EntryView:
    """What ``verify_merkle_inclusion`` reads from a ``TransparencyLogEntry``: its ``_inner``.

    Used only for a real entry that sigstore's ``TransparencyLogEntry`` refuses to wrap because
    it has no checkpoint (a client invariant, not part of the Merkle proof).
    """

    _inner: rekor_v1.TransparencyLogEntry


def _tlog_entry(doc: Doc) -> Doc:
    """The first (only) transparency log entry of a bundle document."""
    entries: list[Doc] = doc["verificationMaterial"]["tlogEntries"]
    return entries[0]


def sigstore_entry(doc: Doc) -> tuple[TransparencyLogEntry, str]:
    """Load the bundle's log entry with sigstore; return it and which loader accepted it."""
    try:
        return Bundle.from_json(json.dumps(doc)).log_entry, "bundle"
    except InvalidBundle:
        pass
    inner = rekor_v1.TransparencyLogEntry.from_dict(_tlog_entry(doc))
    try:
        return TransparencyLogEntry(inner), "entry"
    except InvalidBundle:
        return cast(TransparencyLogEntry, _EntryView(inner)), "entry-no-checkpoint"


def sigstore_accepts(entry: TransparencyLogEntry) -> bool:
    try:
        verify_merkle_inclusion(entry)
    except SigstoreVerificationError:
        return False
    return True


def ours_accepts(tlog_entry: Doc) -> bool:
    """Our verifier on the raw JSON: leaf = leaf_hash(body), index and size within the shard."""
    proof = tlog_entry["inclusionProof"]
    try:
        verify_inclusion(
            leaf_hash(base64.b64decode(tlog_entry["canonicalizedBody"])),
            int(proof["logIndex"]),
            int(proof["treeSize"]),
            [base64.b64decode(h) for h in proof["hashes"]],
            base64.b64decode(proof["rootHash"]),
        )
    except ProofError:
        return False
    return True


def _flip_b64(value: str, byte: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[byte % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --- real bundles -------------------------------------------------------------------------------


def _has_inclusion_proof(path: Path) -> bool:
    try:
        return bool(_tlog_entry(json.loads(path.read_bytes())).get("inclusionProof"))
    except (KeyError, IndexError, TypeError):
        return False  # not a bundle with a transparency log entry


def _bundle_files() -> list[Path]:
    return sorted(
        {
            *real_files("sigstore-bundles/*.sigstore"),
            *real_files("sigstore-bundles/*.sigstore.json"),
            *real_files("more-bundles/**/*.json"),
        }
    )


ALL_BUNDLES = _bundle_files()
# Filtered at collection rather than skipped at run time: a skip would hide a vector that
# silently went missing among the files that legitimately have nothing to check.
BUNDLES = [p for p in ALL_BUNDLES if _has_inclusion_proof(p)]
WITHOUT_PROOF = {
    # Inclusion-promise-only entries (a SET, no inclusion proof) and one file that is no bundle.
    "bundle-provenance.json",
    "bundle-publish.json",
    "dsse.sigstore.json",
    "bundleV01-dsse-no-proof.sigstore.json",
    "bundleV01-full-cert-chain.sigstore.json",
    "bundleV01-intoto-no-proof.sigstore.json",
    "statement.json.json",
}


def _bundle_id(path: Path) -> str:
    return str(path.relative_to(REAL_DATA))


def _load_bundle(path: Path) -> Doc:
    doc: Doc = json.loads(path.read_bytes())
    return doc


Tamper = Callable[[Doc], None]


def _tampers(entry: Doc) -> list[tuple[str, Tamper]]:
    """Every single-field corruption of the proof we check: each hash, the root, the leaf."""
    n = len(entry["inclusionProof"]["hashes"])

    def flip_hash(k: int) -> Tamper:
        def tamper(e: Doc) -> None:
            hashes = e["inclusionProof"]["hashes"]
            hashes[k] = _flip_b64(hashes[k], byte=k)

        return tamper

    def flip_root(e: Doc) -> None:
        e["inclusionProof"]["rootHash"] = _flip_b64(e["inclusionProof"]["rootHash"], byte=31)

    def flip_body(e: Doc) -> None:
        e["canonicalizedBody"] = _flip_b64(e["canonicalizedBody"], byte=7)

    def drop_last(e: Doc) -> None:
        e["inclusionProof"]["hashes"].pop()

    def repeat_last(e: Doc) -> None:
        e["inclusionProof"]["hashes"].append(e["inclusionProof"]["hashes"][-1])

    found: list[tuple[str, Tamper]] = [(f"hash {k}", flip_hash(k)) for k in range(n)]
    found += [("root", flip_root), ("body", flip_body), ("extra hash", repeat_last)]
    if n:
        found.append(("dropped hash", drop_last))
    return found


# Real entries that sigstore's Bundle model refuses, and why (none of it concerns the proof).
NOT_BUNDLE_LOADABLE = {
    "Python-3.12.5.tgz.sigstore": "entry-no-checkpoint",  # v0.1 bundle: proof, no checkpoint
    "managed-key-happy-path.json": "entry",  # public-key bundle: no certificate
    "rekor-v2-prod-entry-412114.json": "entry",  # bare entry fixture, mediaType "fixture"
}


@pytest.mark.parametrize("path", BUNDLES, ids=_bundle_id)
def test_real_bundle_inclusion_both_accept(real_data: Path, path: Path) -> None:
    doc = _load_bundle(path)
    entry, loader = sigstore_entry(doc)
    assert loader == NOT_BUNDLE_LOADABLE.get(path.name, "bundle")
    assert sigstore_accepts(entry), f"sigstore rejects {path.name} (loaded as {loader})"
    assert ours_accepts(_tlog_entry(doc)), f"we reject {path.name} (sigstore loaded it as {loader})"


@pytest.mark.parametrize("path", BUNDLES, ids=_bundle_id)
def test_real_bundle_tampered_both_reject(real_data: Path, path: Path) -> None:
    doc = _load_bundle(path)
    for what, tamper in _tampers(_tlog_entry(doc)):
        bad = copy.deepcopy(doc)
        tamper(_tlog_entry(bad))
        entry, loader = sigstore_entry(bad)
        assert not sigstore_accepts(entry), f"sigstore accepts {what} flipped ({loader})"
        assert not ours_accepts(_tlog_entry(bad)), f"we accept {what} flipped"


def test_real_bundles_are_present(real_data: Path) -> None:
    """Guard against the parametrized tests silently running on nothing."""
    names = {p.name for p in BUNDLES}
    assert {"Python-3.12.5.tgz.sigstore", "bundle_v3_github.whl.sigstore"} <= names
    assert {p.name for p in ALL_BUNDLES} - names == WITHOUT_PROOF
    assert len([p for p in BUNDLES if p.name.endswith(".sigstore.json")]) >= 4


# --- random trees through sigstore's verifier ---------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sigstore_verdict(body: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """sigstore's verdict on raw values, via a wire-model entry built from them."""
    inner = rekor_v1.TransparencyLogEntry.from_dict(
        {
            "logIndex": str(index),
            "logId": {"keyId": _b64(bytes(32))},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in proof],
                # Required by sigstore's TransparencyLogEntry, not read by the Merkle check.
                "checkpoint": {"envelope": "unused\n"},
            },
            "canonicalizedBody": _b64(body),
        }
    )
    return sigstore_accepts(TransparencyLogEntry(inner))


def our_verdict(body: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf_hash(body), index, size, proof, root)
    except ProofError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(
    leaves=st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=300, unique=True),
    data=st.data(),
)
def test_random_tree_proofs_sigstore_agrees(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree()
    tree.extend(leaf_hash(x) for x in leaves)
    n = data.draw(st.integers(1, len(leaves)), label="size")
    i = data.draw(st.integers(0, n - 1), label="index")
    proof, root = tree.inclusion_proof(i, n), tree.root(n)
    assert sigstore_verdict(leaves[i], i, n, proof, root)
    assert our_verdict(leaves[i], i, n, proof, root)

    # One random corruption; the two verifiers must give the same verdict on it. (Some size
    # changes are legitimately accepted by both: the proof shape, not the size, is checked.)
    kind = data.draw(st.sampled_from(["hash", "root", "index", "size", "drop", "add"]))
    args: tuple[bytes, int, int, list[bytes], bytes] = (leaves[i], i, n, proof, root)
    if kind == "hash" and proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[k])
        bad[bit // 8] ^= 1 << (bit % 8)
        args = (leaves[i], i, n, [*proof[:k], bytes(bad), *proof[k + 1 :]], root)
    elif kind == "root":
        args = (leaves[i], i, n, proof, bytes([root[0] ^ 0x80]) + root[1:])
    elif kind == "index" and n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
        args = (leaves[j], j, n, proof, root)
    elif kind == "size":
        args = (leaves[i], i, data.draw(st.integers(i + 1, 2 * n + 2)), proof, root)
    elif kind == "drop" and proof:
        args = (leaves[i], i, n, proof[:-1], root)
    elif kind == "add":
        args = (leaves[i], i, n, [*proof, root], root)
    assert sigstore_verdict(*args) == our_verdict(*args), kind
