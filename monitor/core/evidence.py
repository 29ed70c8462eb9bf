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
against edits, not forgery: the proof is the log's signatures, and anyone can sign two trees
under a key that merely carries the log's name. So a verdict is only "proven" when the document's
key is one the verifier knows (`KnownKey`: a pinned key, a configured log's key, a trusted root's
log), or when the caller explicitly accepts an unknown key (`any_key`), in which case the verdict
says that it proves only that whoever holds that key equivocated.
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

from monitor.core.errors import MonitorError, ParseError, VerificationError
from monitor.core.fields import MISSING, JsonReader, reject_constant
from monitor.core.keys import verifier_from_der
from monitor.core.merkle import ProofError, verify_consistency
from monitor.core.note import (
    EcdsaNoteVerifier,
    Ed25519NoteVerifier,
    NoteVerifier,
    Rfc6962NoteVerifier,
    VerifiedCheckpoint,
    verify_checkpoint,
)

__all__ = [
    "FORMAT",
    "MAX_EVIDENCE_BYTES",
    "MAX_EVIDENCE_DEPTH",
    "VERSION",
    "EvidenceInvalid",
    "EvidenceUnreadable",
    "KnownKey",
    "Verdict",
    "build_split_view",
    "dump",
    "known_key",
    "verify",
]

FORMAT = "tlog-monitor/evidence"
VERSION = 1
MAX_EVIDENCE_BYTES = 1 << 20
"""Two notes of at most 256 KiB each, a proof of at most 64 hashes, and some names fit easily."""
MAX_EVIDENCE_DEPTH = 8
"""Deepest JSON nesting accepted; a document written by `dump` is 3 levels deep."""
_MAX_PROOF_HASHES = 128


class EvidenceUnreadable(ParseError):
    """The file is not an evidence document at all (not UTF-8 JSON of the expected shape)."""


class EvidenceInvalid(VerificationError):
    """The document was edited, or its signatures or claims do not hold."""


@dataclass(frozen=True)
class KnownKey:
    """A public key the verifier holds to be a log's, and where that belief comes from.

    `spki` is the DER SubjectPublicKeyInfo; `label` names the key for people ("log 'rekor'",
    "https://rekor.sigstore.dev", "rekor.pub") and `source` where it was found ("the
    configuration /etc/tlog-monitor/config.toml", "sigstore's production trusted root", ...).
    """

    spki: bytes
    label: str
    source: str


def known_key(verifier: NoteVerifier, label: str, source: str) -> KnownKey:
    """The `KnownKey` of a note verifier's public key (ECDSA P-256 or Ed25519)."""
    return KnownKey(spki=_spki(verifier), label=label, source=source)


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying a document that is intact and validly signed.

    `equivocation` is True when the notes show their key signed two different trees of one
    size; `known` is the entry of the caller's known keys that the document's key matched, if
    any. `proven` is the verdict: an equivocation by a known key, or by any key when the caller
    accepted unknown keys. `lines` explain it for people (key, its fingerprint and whether it is
    known, origin, sizes, roots, what was checked).
    """

    proven: bool
    lines: tuple[str, ...]
    equivocation: bool = False
    known: KnownKey | None = None


def _spki(verifier: NoteVerifier) -> bytes:
    if not isinstance(verifier, EcdsaNoteVerifier | Ed25519NoteVerifier | Rfc6962NoteVerifier):
        raise ValueError(f"evidence: cannot export a key of type {type(verifier).__name__}")
    return verifier.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


KEY_TYPE_RFC6962 = "rfc6962"
"""`log.key.type` of a CT log's key: its notes carry RFC 6962 STH signatures (C2SP type 0x05,
see `monitor.core.ct.sth_note`). Absent: a checkpoint key (ECDSA P-256 with Rekor v1's hint, or
Ed25519), as in documents written before CT logs were supported."""


def _key_fields(verifier: NoteVerifier) -> dict[str, str]:
    der = _spki(verifier)
    fields = {
        "name": verifier.name,
        "hint": bytes(verifier.key_hint).hex(),
        "spki": base64.b64encode(der).decode("ascii"),
    }
    if isinstance(verifier, Rfc6962NoteVerifier):
        fields["type"] = KEY_TYPE_RFC6962
    return fields


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


def _too_deep(value: object, limit: int) -> bool:
    """Whether `value` nests containers deeper than `limit`; iterative, so any depth is safe."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: list[object]
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _parse(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceUnreadable(
            f"evidence: expected at most {MAX_EVIDENCE_BYTES} bytes (a document is a few KiB), "
            "got more"
        )
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=reject_constant)
    except RecursionError as e:
        # The C parser stops at the interpreter's recursion limit; anything that deep is an
        # attack on the parser, not a document.
        raise EvidenceUnreadable(
            "evidence: expected a JSON document, got one nested too deeply to parse"
        ) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise EvidenceUnreadable(
            f"evidence: expected a JSON document, got unreadable data ({e})"
        ) from e
    # A document is 3 levels deep: anything deeper is not one (unreadable, exit 2), and nothing
    # later (re-serialising for the canonical-form check) recurses on attacker-chosen depth.
    if _too_deep(doc, MAX_EVIDENCE_DEPTH):
        raise EvidenceUnreadable(
            f"evidence: expected JSON nested at most {MAX_EVIDENCE_DEPTH} deep (a document is 3)"
        )
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EvidenceUnreadable(f"evidence: expected a JSON object with format {FORMAT!r}")
    return doc


# A document that parses but does not hold together is invalid (exit 1), not unreadable.
_JSON = JsonReader(EvidenceInvalid)


def _verify_note(note: object, verifier: NoteVerifier, which: str) -> VerifiedCheckpoint:
    if not isinstance(note, str):
        raise EvidenceInvalid(f"evidence: expected note {which} to be text")
    try:
        return verify_checkpoint(note, [verifier])
    except MonitorError as e:
        raise EvidenceInvalid(
            f"evidence: note {which} does not verify with the log's key: {e}"
        ) from e


def _key_status(
    der: bytes, known: Sequence[KnownKey], any_key: bool
) -> tuple[KnownKey | None, str]:
    """The known key matching `der` (or None) and the line that tells people which."""
    for candidate in known:
        if candidate.spki == der:
            return candidate, f"key known: {candidate.label}, from {candidate.source}"
    checked = ", ".join(dict.fromkeys(k.source for k in known)) or "none"
    accepted = " (accepted with --any-key)" if any_key else ""
    return None, f"key UNKNOWN{accepted}: not one of the known keys (checked: {checked})"


def verify(data: bytes, known: Sequence[KnownKey] = (), *, any_key: bool = False) -> Verdict:
    """Verify an evidence document offline against the keys the caller knows.

    Raises `EvidenceUnreadable` when the data is not an evidence document, `EvidenceInvalid`
    when it was edited or its signatures do not verify; otherwise returns a `Verdict` that says
    whether the notes prove misbehaviour by themselves. A document's own key is trusted only if
    it is one of `known` (compared as DER SubjectPublicKeyInfo); with `any_key` an equivocation
    by an unknown key is also `proven`, and the verdict says the key is unknown.
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
    log = _JSON.obj(doc.get("log", MISSING), "evidence.log")
    key = _JSON.obj(log.get("key", MISSING), "evidence.log.key")
    name = _JSON.text(key.get("name", MISSING), "evidence.log.key.name")
    spki = _JSON.text(key.get("spki", MISSING), "evidence.log.key.spki")
    key_type = key.get("type")
    if key_type not in (None, KEY_TYPE_RFC6962):
        raise EvidenceInvalid(
            f"evidence: expected log.key.type {KEY_TYPE_RFC6962!r} or none, got {key_type!r:.40}"
        )
    verifier: NoteVerifier
    try:
        der = base64.b64decode(spki, validate=True)
        if key_type == KEY_TYPE_RFC6962:
            verifier = Rfc6962NoteVerifier.from_der(name, der)
        else:
            verifier = verifier_from_der(name, der)
    except (binascii.Error, ValueError, MonitorError) as e:
        raise EvidenceInvalid(f"evidence: the log's key does not load: {e}") from e
    notes = doc.get("notes", MISSING)
    if not isinstance(notes, list):
        raise _JSON.fail("evidence.notes", "an array", notes)
    if len(notes) != 2:
        raise EvidenceInvalid(f"evidence: expected 2 notes, got {len(notes)}")
    a, b = (_verify_note(n, verifier, w) for n, w in zip(notes, "ab", strict=True))
    cpa, cpb = a.checkpoint, b.checkpoint
    match, key_line = _key_status(der, known, any_key)
    lines = [
        f"log key: {name}+{bytes(verifier.key_hint).hex()}, SHA-256 of the public key "
        f"{hashlib.sha256(der).hexdigest()}",
        key_line,
        f"note a: origin {cpa.origin!r}, size {cpa.size}, root {cpa.root.hex()}: signature valid",
        f"note b: origin {cpb.origin!r}, size {cpb.size}, root {cpb.root.hex()}: signature valid",
    ]
    if cpa.origin != cpb.origin:
        return Verdict(
            False, (*lines, "not proven: the notes are of different logs (origins)"), known=match
        )
    if cpa.size != cpb.size:
        return Verdict(False, (*lines, _different_sizes(doc, a, b)), known=match)
    if cpa.root == cpb.root:
        return Verdict(
            False, (*lines, "not proven: both notes describe the same tree"), known=match
        )
    two_trees = f"two different trees of size {cpa.size}"
    if match is not None:
        last = (
            f"PROVEN: the log signed {two_trees}: a tree of a given size has exactly one root, "
            "so it showed at least two histories"
        )
    elif any_key:
        last = (
            f"PROVEN for an UNKNOWN key: whoever holds this key signed {two_trees}; this says "
            "nothing about a log unless the key is that log's published key"
        )
    else:
        last = (
            f"not proven: this key signed {two_trees}, but it is not a key this verifier knows, "
            "and anyone can make a key that carries a log's name: check that it is the log's "
            "published key, then pass it with --key FILE (or --config), or accept any key "
            "with --any-key"
        )
    proven = match is not None or any_key
    return Verdict(proven, (*lines, last), equivocation=True, known=match)


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
