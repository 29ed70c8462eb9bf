"""Portable evidence of a split view: a self-contained JSON document anyone can check offline.

Pure: builds and verifies documents; the CLI reads and writes the files.

What is provable offline, with no database and no network, and what is not:

* **Same size, different roots** (proven): two checkpoints of one origin, both validly signed by
  the log's key, claiming the same tree size with different root hashes. A Merkle tree of a given
  size has exactly one root, so the log signed two histories. The verdict needs only the key and
  the two notes.
* **Different sizes** (not proven offline): two validly signed checkpoints whose sizes differ are
  inconsistent only if no consistency proof connects them. The proof the log served is included
  and checked, but a proof that fails shows only that *this* proof is wrong, not that no valid
  proof exists (the log may have served garbage). Such a document verifies as "not proven" and
  says how to settle it: ask the log for a consistency proof between the two sizes; a forked log
  cannot produce one.
* **Rollbacks** carry no offline proof: an older checkpoint is genuine, and a log or a cache may
  legitimately serve it. They are not exported.

Integrity: the document is written in one canonical form (sorted keys, 2-space indent, ASCII) and
carries a SHA-256 digest of its own content, so any edit to any byte makes it fail to verify,
including the parts the log's signatures do not cover (names, reasons). The digest protects
against edits, not forgery: the proof is the log's signatures, so whoever checks a document must
confirm that the key in it (printed by the verifier as a SHA-256 fingerprint) is the log's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from monitor.errors import MonitorError, ParseError, VerificationError
from monitor.keys import verifier_from_der
from monitor.merkle import ProofError, verify_consistency
from monitor.note import (
    EcdsaNoteVerifier,
    Ed25519NoteVerifier,
    NoteVerifier,
    VerifiedCheckpoint,
    verify_checkpoint,
)

__all__ = [
    "FORMAT",
    "MAX_EVIDENCE_BYTES",
    "VERSION",
    "EvidenceInvalid",
    "EvidenceUnreadable",
    "Verdict",
    "build_split_view",
    "dump",
    "verify",
]

FORMAT = "tlog-monitor/evidence"
VERSION = 1
MAX_EVIDENCE_BYTES = 1 << 20
"""Two notes of at most 256 KiB each, a proof of at most 64 hashes, and some names fit easily."""
_MAX_PROOF_HASHES = 128


class EvidenceUnreadable(ParseError):
    """The file is not an evidence document at all (not UTF-8 JSON of the expected shape)."""


class EvidenceInvalid(VerificationError):
    """The document was edited, or its signatures or claims do not hold."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying a document that is intact and validly signed.

    `proven` is True when the notes prove misbehaviour by themselves; `lines` explain the
    verdict for people (key fingerprint, origin, sizes, roots, what was checked).
    """

    proven: bool
    lines: tuple[str, ...]


def _key_fields(verifier: NoteVerifier) -> dict[str, str]:
    if not isinstance(verifier, EcdsaNoteVerifier | Ed25519NoteVerifier):
        raise ValueError(f"evidence: cannot export a key of type {type(verifier).__name__}")
    der = verifier.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "name": verifier.name,
        "hint": bytes(verifier.key_hint).hex(),
        "spki": base64.b64encode(der).decode("ascii"),
    }


def _canonical(body: Mapping[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def _digest(body: Mapping[str, Any]) -> str:
    content = {k: v for k, v in body.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(_canonical(content)).hexdigest()


def build_split_view(
    *,
    log_name: str,
    tree_id: str,
    verifier: NoteVerifier,
    a: tuple[str, str],
    b: tuple[str, str],
    proof: Sequence[bytes] | None,
    reason: str,
) -> dict[str, Any]:
    """The evidence document of a split view between `a` and `b`, each (view, signed note).

    `verifier` is the log's key; `proof` the consistency proof the log served between the two
    sizes (None for same-size conflicts).
    """
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "split_view",
        "log": {"name": log_name, "tree_id": tree_id, "key": _key_fields(verifier)},
        "views": [a[0], b[0]],
        "notes": [a[1], b[1]],
        "proof": None if proof is None else [h.hex() for h in proof],
        "reason": reason,
    }
    body["digest"] = _digest(body)
    return body


def dump(document: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a document (what `tlog-monitor evidence export` writes)."""
    return _canonical(document)


def _parse(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceUnreadable(
            f"evidence: expected at most {MAX_EVIDENCE_BYTES} bytes, got {len(data)}"
        )
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EvidenceUnreadable(
            f"evidence: expected a JSON document, got unreadable data ({e})"
        ) from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EvidenceUnreadable(f"evidence: expected a JSON object with format {FORMAT!r}")
    return doc


def _field(doc: Mapping[str, Any], key: str, kind: type, where: str = "evidence") -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise EvidenceInvalid(f"{where}: expected {key!r} to be a {kind.__name__}")
    return value


def _verify_note(note: object, verifier: NoteVerifier, which: str) -> VerifiedCheckpoint:
    if not isinstance(note, str):
        raise EvidenceInvalid(f"evidence: expected note {which} to be text")
    try:
        return verify_checkpoint(note, [verifier])
    except MonitorError as e:
        raise EvidenceInvalid(
            f"evidence: note {which} does not verify with the log's key: {e}"
        ) from e


def verify(data: bytes) -> Verdict:
    """Verify an evidence document offline.

    Raises `EvidenceUnreadable` when the data is not an evidence document, `EvidenceInvalid`
    when it was edited or its signatures do not verify; otherwise returns a `Verdict` that says
    whether the notes prove misbehaviour by themselves.
    """
    doc = _parse(data)
    if _canonical(doc) != data:
        raise EvidenceInvalid("evidence: not in the canonical form it was written in (edited?)")
    if doc.get("digest") != _digest(doc):
        raise EvidenceInvalid("evidence: the digest does not match the content (edited?)")
    if doc.get("version") != VERSION or doc.get("kind") != "split_view":
        raise EvidenceInvalid(
            f"evidence: expected version {VERSION} and kind 'split_view', "
            f"got version {doc.get('version')!r} and kind {doc.get('kind')!r}"
        )
    log = _field(doc, "log", dict)
    key = _field(log, "key", dict, "evidence.log")
    name, spki = _field(key, "name", str, "log.key"), _field(key, "spki", str, "log.key")
    try:
        der = base64.b64decode(spki, validate=True)
        verifier = verifier_from_der(name, der)
    except (binascii.Error, ValueError, MonitorError) as e:
        raise EvidenceInvalid(f"evidence: the log's key does not load: {e}") from e
    notes = _field(doc, "notes", list)
    if len(notes) != 2:
        raise EvidenceInvalid(f"evidence: expected 2 notes, got {len(notes)}")
    a, b = (_verify_note(n, verifier, w) for n, w in zip(notes, "ab", strict=True))
    cpa, cpb = a.checkpoint, b.checkpoint
    lines = [
        f"log key: {name}+{bytes(verifier.key_hint).hex()}, SHA-256 of the public key "
        f"{hashlib.sha256(der).hexdigest()} (check that it is the log's)",
        f"note a: origin {cpa.origin!r}, size {cpa.size}, root {cpa.root.hex()}: signature valid",
        f"note b: origin {cpb.origin!r}, size {cpb.size}, root {cpb.root.hex()}: signature valid",
    ]
    if cpa.origin != cpb.origin:
        return Verdict(False, (*lines, "not proven: the notes are of different logs (origins)"))
    if cpa.size == cpb.size:
        if cpa.root == cpb.root:
            return Verdict(False, (*lines, "not proven: both notes describe the same tree"))
        return Verdict(
            True,
            (
                *lines,
                f"PROVEN: the log signed two different trees of size {cpa.size}: a tree of a "
                "given size has exactly one root, so it showed at least two histories",
            ),
        )
    return Verdict(False, (*lines, _different_sizes(doc, a, b)))


def _different_sizes(doc: Mapping[str, Any], a: VerifiedCheckpoint, b: VerifiedCheckpoint) -> str:
    small, large = sorted((a.checkpoint, b.checkpoint), key=lambda c: c.size)
    raw = doc.get("proof")
    ask = (
        f"ask the log for a consistency proof from size {small.size} to {large.size}: "
        "if it cannot give one that verifies against these roots, it forked"
    )
    if not isinstance(raw, list) or len(raw) > _MAX_PROOF_HASHES:
        return f"not proven offline: no usable consistency proof in the document; {ask}"
    try:
        proof = [bytes.fromhex(h) for h in raw if isinstance(h, str)]
    except ValueError:
        return f"not proven offline: the proof is not hex; {ask}"
    try:
        verify_consistency(small.size, large.size, small.root, large.root, proof)
    except ProofError as e:
        return f"not proven offline: the log's consistency proof fails ({e}); {ask}"
    return "not proven: the consistency proof holds, the two checkpoints are consistent"
