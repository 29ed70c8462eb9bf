"""Real checkpoints from public logs (tests/data): they verify with the real keys,
their roots match their inclusion proofs, and any single-byte tampering is rejected."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.config.trust_roots import TrustedLog, trusted_logs
from monitor.core import merkle
from monitor.core.keys import REKOR_V1_LEGACY_ORIGIN, LogApi, rekor_v1_origin, verifier_from_pem
from monitor.core.note import (
    CosignatureVerifier,
    NoteFormatError,
    NoteVerificationError,
    NoteVerifier,
    parse_signed_note,
    parse_vkey,
    verify_checkpoint,
    verify_cosignatures,
    verify_note,
)

REKOR_URL = "https://rekor.sigstore.dev"

# Public vkeys of three staging witnesses of the witness network (witness-network.org) that
# cosign Sigstore's staging Rekor v2 shards, as their operators publish them
# (transparency.dev/witnesses, witness.stagemole.eu/about, geomys.org/witness/navigli). They
# appear identically in several public repositories; that they verify the real cosignatures
# below is the strongest check that they are the right keys.
STAGING_WITNESS_VKEYS = (
    "witness.navigli.sunlight.geomys.org+a3e00fe2+BNy/co4C1Hn1p+INwJrfUlgz7W55dSZReusH/GhUhJ/G",
    "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
    "staging.witness.transparency.goog/ring-any-bells+2e1a8dc9+BG5JTpLc3FJtwzgh1Uv+Qelz9qeOH2bfWjS1s0s+y4rL",
)


# --- helpers ------------------------------------------------------------------------------------


def _tamperings(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Every position, each changed to: each single-bit flip, and a few bytes with meaning in
    the format (newline, space, '+', 'A', '0', the em dash's lead byte). About 14 per byte,
    which covers all kinds of damage at each position and keeps the whole sweep fast."""
    specials = b"\n +A0\xe2"
    for pos, old in enumerate(data):
        values = {old ^ (1 << bit) for bit in range(8)} | set(specials)
        values.discard(old)
        for value in sorted(values):
            yield pos, data[:pos] + bytes([value]) + data[pos + 1 :]


def assert_every_tampering_rejected(data: bytes, verifiers: Sequence[NoteVerifier]) -> int:
    """Each single-byte change to `data` fails parsing or verification with our own error
    types, or (when a change turns a signature line's name or hint into an unknown key's) at
    least loses that signer; it never passes intact and never raises anything else. Returns
    the number of cases tried."""
    signed_by = len(verify_note(parse_signed_note(data), verifiers))
    tried = 0
    for pos, tampered in _tamperings(data):
        tried += 1
        try:
            signers = verify_note(parse_signed_note(tampered), verifiers)
        except (NoteFormatError, NoteVerificationError):
            continue
        if len(signers) >= signed_by:
            raise AssertionError(f"byte {pos} changed, note still verified by {signers}")
    return tried


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


@dataclass(frozen=True)
class BundleEntry:
    """The parts of a bundle's tlog entry these tests use."""

    path: Path
    log_id: bytes
    index: int
    size: int
    root: bytes
    proof: tuple[bytes, ...]
    body: bytes
    envelope: str


def _bundle_entries(fixtures: Path) -> list[BundleEntry]:
    entries = []
    files = sorted(
        [*fixtures.glob("sigstore-bundles/*.sigstore*"), *fixtures.glob("more-bundles/*/*.json")]
    )
    for path in files:
        doc: dict[str, Any] = json.loads(path.read_text())
        for e in doc.get("verificationMaterial", {}).get("tlogEntries", []):
            proof = e.get("inclusionProof") or {}
            if "checkpoint" not in proof:
                continue  # old bundles carry only a promise (SET), no checkpoint
            entries.append(
                BundleEntry(
                    path=path,
                    log_id=_b64(e["logId"]["keyId"]),
                    index=int(proof["logIndex"]),
                    size=int(proof["treeSize"]),
                    root=_b64(proof["rootHash"]),
                    proof=tuple(_b64(h) for h in proof["hashes"]),
                    body=_b64(e["canonicalizedBody"]),
                    envelope=proof["checkpoint"]["envelope"],
                )
            )
    return entries


def _trusted_log_for(log_id: bytes) -> tuple[str, TrustedLog] | None:
    for root in ("production", "staging"):
        for log in trusted_logs(root):
            if log.log_id == log_id:
                return root, log
    return None


@pytest.fixture(scope="module")
def prod(real_data: Path) -> Path:
    return real_data / "rekor-production"


@pytest.fixture(scope="module")
def prod_verifier(prod: Path) -> NoteVerifier:
    return verifier_from_pem("rekor.sigstore.dev", (prod / "rekor_v1_prod.pub.pem").read_bytes())


def _legacy_sth(prod: Path) -> str:
    doc = json.loads((prod / "sidekick_rekor-api-log.json").read_text())
    return str(doc["signedTreeHead"])


# --- Rekor v1 production checkpoints ----------------------------------------------------------


def test_production_key_hint_is_c0d23d6a(prod_verifier: NoteVerifier) -> None:
    assert prod_verifier.key_hint.hex() == "c0d23d6a"


def _production_notes(prod: Path) -> dict[str, tuple[str, str]]:
    """name -> (note, expected origin)."""
    withdata = json.loads((prod / "securesign_mock_withdata_api_v1_log.json").read_text())
    return {
        "legacy Rekor origin with Timestamp line": (_legacy_sth(prod), REKOR_V1_LEGACY_ORIGIN),
        "tree 2605736670972794746 size 79317123": (
            (
                prod / "rekor-issue2069_checkpoint_tree2605736670972794746_size79317123.txt"
            ).read_text(),
            rekor_v1_origin(REKOR_URL, 2605736670972794746),
        ),
        "tree 1193050959916656506 size 46800506": (
            (prod / "sigstore-python_npm_bundle_checkpoint_size46800506.txt").read_text(),
            rekor_v1_origin(REKOR_URL, 1193050959916656506),
        ),
        "tree 1193050959916656506 api/v1/log": (
            withdata["signedTreeHead"],
            rekor_v1_origin(REKOR_URL, withdata["treeID"]),
        ),
    }


PRODUCTION_NOTE_NAMES = [
    "legacy Rekor origin with Timestamp line",
    "tree 2605736670972794746 size 79317123",
    "tree 1193050959916656506 size 46800506",
    "tree 1193050959916656506 api/v1/log",
]


@pytest.mark.parametrize("name", PRODUCTION_NOTE_NAMES)
def test_production_checkpoint_verifies_with_pem_and_trust_root(
    prod: Path, prod_verifier: NoteVerifier, name: str
) -> None:
    note, origin = _production_notes(prod)[name]
    by_pem = verify_checkpoint(note, [prod_verifier], origin=origin)
    trust_root_log = next(log for log in trusted_logs("production") if log.base_url == REKOR_URL)
    by_root = verify_checkpoint(note.encode(), [trust_root_log.verifier], origin=origin)
    assert by_pem.checkpoint == by_root.checkpoint
    assert by_pem.signers == ("rekor.sigstore.dev",)
    assert by_pem.note.to_text() == note  # byte-exact round trip
    with pytest.raises(NoteVerificationError, match="origin"):
        verify_checkpoint(note, [prod_verifier], origin=origin + "0")


def test_legacy_checkpoint_fields(prod: Path, prod_verifier: NoteVerifier) -> None:
    doc = json.loads((prod / "sidekick_rekor-api-log.json").read_text())
    cp = verify_checkpoint(doc["signedTreeHead"], [prod_verifier]).checkpoint
    assert cp.origin == "Rekor"
    assert cp.size == doc["treeSize"] == 1025778
    assert cp.root.hex() == doc["rootHash"]
    assert cp.extensions == ("Timestamp: 1641356019166006899",)


def test_securesign_empty_log_checkpoint(prod: Path) -> None:
    doc = json.loads((prod / "securesign_mock_empty_log_api_v1_log.json").read_text())
    # A private Rekor names its key after its hostname, here a container ID.
    v = verifier_from_pem("c45c80833111", (prod / "test_key_securesign_mock.pub.pem").read_bytes())
    got = verify_checkpoint(doc["signedTreeHead"], [v], origin=f"c45c80833111 - {doc['treeID']}")
    assert got.checkpoint.size == 0
    assert got.checkpoint.root.hex() == doc["rootHash"]  # SHA-256 of the empty string
    assert_every_tampering_rejected(doc["signedTreeHead"].encode(), [v])
    # Not signed by the production key, whatever the name.
    prod_pem = (prod / "rekor_v1_prod.pub.pem").read_bytes()
    with pytest.raises(NoteVerificationError):
        verify_checkpoint(doc["signedTreeHead"], [verifier_from_pem("c45c80833111", prod_pem)])


@pytest.mark.parametrize("name", PRODUCTION_NOTE_NAMES)
def test_every_single_byte_tampering_of_production_checkpoint_is_rejected(
    prod: Path, prod_verifier: NoteVerifier, name: str
) -> None:
    note, _ = _production_notes(prod)[name]
    assert assert_every_tampering_rejected(note.encode(), [prod_verifier]) > 10 * len(note)


def test_sidekick_entry_index_1_is_in_the_legacy_tree(
    prod: Path, prod_verifier: NoteVerifier
) -> None:
    cp = verify_checkpoint(_legacy_sth(prod), [prod_verifier], origin="Rekor").checkpoint
    ((uuid, entry),) = json.loads((prod / "sidekick_rekor-api-log-entry.json").read_text()).items()
    body = base64.b64decode(entry["body"])
    leaf = merkle.leaf_hash(body)
    assert uuid[-64:] == leaf.hex()  # the UUID's last 64 hex chars are SHA-256(0x00 || body)
    proof = entry["verification"]["inclusionProof"]
    assert proof["treeSize"] == cp.size and proof["rootHash"] == cp.root.hex()
    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
    merkle.verify_inclusion(leaf, entry["logIndex"], cp.size, hashes, cp.root)
    # A tampered body, proof or root does not verify.
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(body + b" "), 1, cp.size, hashes, cp.root)
    bad = [hashes[0][:-1] + bytes([hashes[0][-1] ^ 1]), *hashes[1:]]
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, 1, cp.size, bad, cp.root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaf, 1, cp.size, hashes, bytes([cp.root[0] ^ 1]) + cp.root[1:])


# --- bundles: v1 production, v2 staging and production -------------------------------------------

# Bundles whose log is not in either embedded trusted root: a private test deployment.
PRIVATE_LOG_BUNDLES = {"othername.sigstore.json"}


def test_bundles_found(real_data: Path) -> None:
    entries = _bundle_entries(real_data)
    roots = {found[0] if (found := _trusted_log_for(e.log_id)) else "private" for e in entries}
    assert len(entries) >= 15
    assert roots == {"production", "staging", "private"}


def test_every_bundle_checkpoint_verifies_and_proves_its_entry(real_data: Path) -> None:
    checked = {"production": 0, "staging": 0, LogApi.TILES: 0, LogApi.REKOR_V1: 0}
    for e in _bundle_entries(real_data):
        found = _trusted_log_for(e.log_id)
        if found is None:
            assert e.path.name in PRIVATE_LOG_BUNDLES, e.path
            continue
        root_name, log = found
        note = parse_signed_note(e.envelope)
        origin = note.text.split("\n", 1)[0]
        if log.api is LogApi.TILES:
            expected_origin = log.expected_origin()
        else:
            expected_origin = log.expected_origin(origin.rpartition(" - ")[2])
        got = verify_checkpoint(e.envelope, [log.verifier], origin=expected_origin)
        assert got.signers == (log.key_name,), e.path
        assert (got.checkpoint.size, got.checkpoint.root) == (e.size, e.root), e.path
        merkle.verify_inclusion(
            merkle.leaf_hash(e.body), e.index, e.size, list(e.proof), got.checkpoint.root
        )
        checked[root_name] += 1
        checked[log.api] += 1
    assert all(checked.values()), checked


def test_bundle_tampering_is_rejected(real_data: Path) -> None:
    """For one v1 and one v2 bundle: any changed byte of the checkpoint, any flipped bit of a
    proof hash, and a root that differs from the checkpoint's are all caught."""
    wanted = {"bundle_v3_github.whl.sigstore", "rekor-v2-prod-entry-412114.json"}
    entries = [e for e in _bundle_entries(real_data) if e.path.name in wanted]
    assert {e.path.name for e in entries} == wanted
    for e in entries:
        found = _trusted_log_for(e.log_id)
        assert found is not None
        verifier = found[1].verifier
        assert_every_tampering_rejected(e.envelope.encode(), [verifier])
        leaf = merkle.leaf_hash(e.body)
        for i, h in enumerate(e.proof):
            for bit in (0, 7, 255):
                bad = list(e.proof)
                bad[i] = h[: bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1 :]
                with pytest.raises(merkle.ProofError):
                    merkle.verify_inclusion(leaf, e.index, e.size, bad, e.root)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, e.index, e.size, list(e.proof), e.root[::-1])
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(
                merkle.leaf_hash(e.body + b"\n"), e.index, e.size, list(e.proof), e.root
            )


# --- witness cosignatures -------------------------------------------------------------------------


def _envelope(path: Path) -> str:
    doc = json.loads(path.read_text())
    return str(
        doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"]
    )


def _staging_log(url: str) -> TrustedLog:
    return next(log for log in trusted_logs("staging") if log.base_url == url)


@pytest.mark.parametrize(
    ("fixture", "witness_names"),
    [
        ("rekor2-checkpoint-cosigned.json", ["witness.example"]),
        ("rekor2-checkpoint-multiple-cosigs.json", ["witness.example/w1", "witness.example/w2"]),
    ],
)
def test_conformance_cosigned_checkpoints_ignore_unknown_witnesses(
    real_data: Path, fixture: str, witness_names: list[str]
) -> None:
    """sigstore-conformance's cosigned checkpoints: the witness lines are unknown to the log's
    key and must be ignored. (Their witness keys are test keys that are not published, so the
    cosignatures themselves cannot be checked; see the real witnesses below.)"""
    envelope = _envelope(real_data / "more-bundles" / "conformance" / fixture)
    log = _staging_log("https://log2025-alpha1.rekor.sigstage.dev")
    got = verify_checkpoint(envelope, [log.verifier], origin=log.expected_origin())
    assert [s.name for s in got.note.signatures] == [log.key_name, *witness_names]
    assert got.signers == (log.key_name,)
    for sig in got.note.signatures[1:]:
        assert len(sig.signature) == 8 + 64  # timestamp || Ed25519: cosignature/v1 shaped
    # Unknown witnesses: no cosignature is claimed, and none is an error.
    assert verify_cosignatures(got.note, []) == ()


@pytest.mark.parametrize(
    "path",
    [
        "sigstore-bundles/a.dsse.staging-rekor-v2.txt.sigstore.json",
        "more-bundles/conformance/rekor2-dsse-happy-path.json",
    ],
)
def test_real_witness_cosignatures_verify(real_data: Path, path: str) -> None:
    envelope = _envelope(real_data / path)
    log = _staging_log("https://log2025-alpha3.rekor.sigstage.dev")
    witnesses = [parse_vkey(v) for v in STAGING_WITNESS_VKEYS]
    assert all(isinstance(w, CosignatureVerifier) for w in witnesses)
    cosigners = [w for w in witnesses if isinstance(w, CosignatureVerifier)]
    got = verify_checkpoint(envelope, [log.verifier], origin=log.expected_origin())
    assert got.signers == (log.key_name,)  # the witnesses' lines are ignored by the log key
    cosigs = verify_cosignatures(got.note, cosigners)
    assert {c.name for c in cosigs} == {w.name for w in cosigners}
    assert all(c.timestamp > 1_700_000_000 for c in cosigs)


def test_every_single_byte_tampering_of_cosigned_checkpoint_is_rejected(
    real_data: Path,
) -> None:
    """With the log key and the witnesses together every line is known, so every byte counts.
    (Both real cosigned fixtures carry the same checkpoint; one sweep covers them.)"""
    envelope = _envelope(real_data / "sigstore-bundles/a.dsse.staging-rekor-v2.txt.sigstore.json")
    log = _staging_log("https://log2025-alpha3.rekor.sigstage.dev")
    cosigners = [parse_vkey(v) for v in STAGING_WITNESS_VKEYS]
    assert len(verify_note(parse_signed_note(envelope), [log.verifier, *cosigners])) == 4
    assert_every_tampering_rejected(envelope.encode(), [log.verifier, *cosigners])
