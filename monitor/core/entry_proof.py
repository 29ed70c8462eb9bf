"""Proof that one Rekor v1 entry belongs to the log, from what the log served with it (pure).

The scanner proves entries by hashing a contiguous run of them into the verified tree. Entries
found through the search index arrive one at a time, from anywhere in the log, so each must
carry its own evidence, and each piece is checked here:

- the **signed entry timestamp** (SET): the log key's signature over the canonical JSON of
  ``{"body", "integratedTime", "logID", "logIndex"}`` (keys sorted, no whitespace; ``body`` in
  base64, ``logIndex`` global). It binds the body to its index and integration time, so the time
  used to tell past entries from new ones is the log's signed word, not a JSON field.
- the **inclusion proof** against the signed checkpoint served with it: the checkpoint's
  signature and origin are verified with the log's key, its size and root must be the proof's,
  and the leaf hash of the body must hash up to that root at its index within the shard.

What is left for the caller (it needs the network) is to prove that checkpoint consistent with
the verified state; ``consistency_sizes`` says which proof that takes.

Every check raises ``EntryProofError`` (a VerificationError: the log misbehaved) naming what
was expected and what came.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.core.errors import VerificationError
from monitor.core.merkle import ProofError, leaf_hash, verify_inclusion
from monitor.core.note import (
    Checkpoint,
    EcdsaNoteVerifier,
    NoteFormatError,
    NoteVerificationError,
    NoteVerifier,
    VerifiedCheckpoint,
    verify_checkpoint,
)

__all__ = [
    "EntryEvidence",
    "EntryProofError",
    "check_inclusion",
    "check_proof_checkpoint",
    "consistency_sizes",
    "integration_time",
    "set_message",
    "verify_entry",
    "verify_inclusion_evidence",
    "verify_set",
]


class EntryProofError(VerificationError):
    """An entry's SET or inclusion proof does not verify: the log misbehaved."""


@dataclass(frozen=True)
class EntryEvidence:
    """One Rekor v1 entry and the evidence the log served with it.

    ``log_index`` is global; ``tree_index`` (``inclusionProof.logIndex``) is within the shard.
    Evidence the log left out is None / empty, and fails verification.
    """

    body: bytes
    log_index: int
    integrated_time: int
    log_id: str
    signed_entry_timestamp: bytes | None
    tree_index: int | None
    proof_tree_size: int | None
    proof_root: bytes | None
    proof_hashes: tuple[bytes, ...]
    checkpoint: str | None


def set_message(body: bytes, integrated_time: int, log_id: str, log_index: int) -> bytes:
    """The bytes a Rekor v1 SET signs: canonical JSON of the entry's body (base64),
    integratedTime, logID (hex) and global logIndex."""
    payload = {
        "body": base64.b64encode(body).decode("ascii"),
        "integratedTime": integrated_time,
        "logID": log_id,
        "logIndex": log_index,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def verify_set(evidence: EntryEvidence, key: EcdsaNoteVerifier) -> None:
    """Check the entry's SET with the log key ``key``; the logID must be that key's ID
    (SHA-256 of its DER SubjectPublicKeyInfo). Raises EntryProofError."""
    where = f"entry {evidence.log_index}"
    if evidence.signed_entry_timestamp is None:
        raise EntryProofError(f"{where}: expected a signedEntryTimestamp, got none")
    if evidence.log_id.lower() != key.key_id.hex():
        raise EntryProofError(
            f"{where}: expected logID {key.key_id.hex()} (the log key's ID), "
            f"got {evidence.log_id[:64]}"
        )
    message = set_message(
        evidence.body, evidence.integrated_time, evidence.log_id, evidence.log_index
    )
    if not key.verify(message, evidence.signed_entry_timestamp):
        raise EntryProofError(
            f"{where}: signedEntryTimestamp is not a valid signature by the log key over the "
            f"entry's body, integratedTime {evidence.integrated_time} and logIndex"
        )


def check_inclusion(evidence: EntryEvidence) -> None:
    """Check that the body's leaf hash, at its index within the shard, hashes up to the
    inclusion proof's root. Raises EntryProofError."""
    index, size, root = _proof_of(evidence)
    try:
        verify_inclusion(leaf_hash(evidence.body), index, size, evidence.proof_hashes, root)
    except ProofError as e:
        raise EntryProofError(f"entry {evidence.log_index}: {e}") from e


def _proof_of(evidence: EntryEvidence) -> tuple[int, int, bytes]:
    """The inclusion proof's (tree index, tree size, root); EntryProofError when absent."""
    if (
        evidence.tree_index is None
        or evidence.proof_tree_size is None
        or evidence.proof_root is None
    ):
        raise EntryProofError(f"entry {evidence.log_index}: expected an inclusion proof, got none")
    return evidence.tree_index, evidence.proof_tree_size, evidence.proof_root


def check_proof_checkpoint(
    evidence: EntryEvidence, note: str, verifiers: Sequence[NoteVerifier], origin: str | None
) -> VerifiedCheckpoint:
    """Check that ``note`` is a checkpoint signed by ``verifiers`` (with ``origin``, unless
    None) whose size and root are the inclusion proof's. Raises EntryProofError."""
    where = f"entry {evidence.log_index}"
    try:
        verified = verify_checkpoint(note, verifiers, origin)
    except (NoteVerificationError, NoteFormatError) as e:
        raise EntryProofError(f"{where}: the inclusion proof's checkpoint: {e}") from e
    cp = verified.checkpoint
    if (cp.size, cp.root) != (evidence.proof_tree_size, evidence.proof_root):
        got_root = evidence.proof_root.hex() if evidence.proof_root is not None else None
        raise EntryProofError(
            f"{where}: expected the inclusion proof's treeSize and rootHash to be its signed "
            f"checkpoint's ({cp.size}, {cp.root.hex()}), got "
            f"({evidence.proof_tree_size}, {got_root})"
        )
    return verified


def verify_inclusion_evidence(
    evidence: EntryEvidence, verifiers: Sequence[NoteVerifier], origin: str | None
) -> Checkpoint:
    """Check the inclusion proof against the signed checkpoint served with it.

    The checkpoint must verify with ``verifiers`` and carry ``origin``; its size and root must
    be the proof's (``check_proof_checkpoint``), and the body must hash up to that root
    (``check_inclusion``). Returns the verified checkpoint, which the caller must still prove
    consistent with its verified state. Raises EntryProofError.
    """
    _proof_of(evidence)
    if evidence.checkpoint is None:
        raise EntryProofError(
            f"entry {evidence.log_index}: expected a signed checkpoint with the inclusion proof"
        )
    cp = check_proof_checkpoint(evidence, evidence.checkpoint, verifiers, origin).checkpoint
    check_inclusion(evidence)
    return cp


def verify_entry(
    evidence: EntryEvidence,
    key: EcdsaNoteVerifier,
    verifiers: Sequence[NoteVerifier],
    origin: str | None,
) -> Checkpoint:
    """``verify_set`` then ``verify_inclusion_evidence``; returns the proof's checkpoint."""
    verify_set(evidence, key)
    return verify_inclusion_evidence(evidence, verifiers, origin)


def integration_time(seconds: int) -> datetime | None:
    """The time a log says it integrated an entry, or None for 0.

    0 is "no time": what protobuf JSON leaves out and Rekor v2 entries carry. It is still the
    value a SET signs, but never a time: an entry without one is not in the past (the search
    path alerts on it) and a certificate is not checked against 1970.
    """
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def consistency_sizes(proof_size: int, verified_size: int) -> tuple[int, int] | None:
    """The (smaller, larger) sizes of the consistency proof that ties a proof's checkpoint to
    the verified one; None when the sizes are equal (the roots must then be equal)."""
    if proof_size == verified_size:
        return None
    return (min(proof_size, verified_size), max(proof_size, verified_size))
