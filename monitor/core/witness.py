"""Witness cosignatures on checkpoints and the quorum policy. Pure: no IO, no clock.

A witness vouches that a checkpoint is consistent with everything it saw of the log before. Two
kinds of witness signature exist in the wild, and a `[[log.witness]]` key says which it is:

* cosignature/v1 (C2SP tlog-cosignature, vkey type 0x04): an 8-byte timestamp and an Ed25519
  signature over ``"cosignature/v1\\ntime <t>\\n" || note text``; what current witnesses (the
  transparency-dev omniwitness, Sigsum witnesses) produce;
* a plain Ed25519 note signature (vkey type 0x01) over the note text, as early witnesses and
  distributors did (no timestamp).

Flow::

    verified note --check_witnesses(note, witnesses)--> WitnessReport(valid, invalid)
                        |
                        +-- quorum_shortfall(report, quorum) --> how many are missing (0: met)

A witness signature that names a configured witness but does not verify is reported in
`invalid` and does not count: a broken or forged cosignature must never help reach a quorum,
and it must not hide the log's own valid signature either (the log did nothing wrong).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.core.note import (
    MAX_SIGNATURES,
    CosignatureVerifier,
    Ed25519NoteVerifier,
    NoteVerificationError,
    SignedNote,
    index_keys,
    parse_signed_note,
    parse_vkey,
)

__all__ = [
    "WitnessKey",
    "WitnessReport",
    "WitnessSignature",
    "check_witnesses",
    "parse_witness_vkey",
    "quorum_shortfall",
    "with_cosignatures",
]

WitnessKey = CosignatureVerifier | Ed25519NoteVerifier
"""A witness's public key: cosignature/v1 (0x04) or a plain Ed25519 note key (0x01)."""


@dataclass(frozen=True)
class WitnessSignature:
    """A verified witness signature on a note: who signed, and when (cosignature/v1 only)."""

    name: str
    key_hint: bytes
    timestamp: int | None
    line: str
    """The signature line as served, to re-serve it with another copy of the same body."""

    @property
    def key_id(self) -> str:
        """``name+hint`` in hex, as vkeys spell a key."""
        return f"{self.name}+{self.key_hint.hex()}"


@dataclass(frozen=True)
class WitnessReport:
    """The configured witnesses' signatures on one note: `valid` (one per witness, in note
    order) and `invalid` (messages naming the witness whose line did not verify)."""

    valid: tuple[WitnessSignature, ...]
    invalid: tuple[str, ...]

    @property
    def cosigners(self) -> tuple[str, ...]:
        """The key ids (``name+hint``) of the witnesses whose signature verified."""
        return tuple(w.key_id for w in self.valid)


def parse_witness_vkey(vkey: str) -> WitnessKey:
    """A witness key from a C2SP vkey (type 0x04 cosignature/v1 or 0x01 Ed25519).

    Raises `ConfigError` (a `NoteKeyError`) naming what is wrong with it.
    """
    return parse_vkey(vkey)


def check_witnesses(note: SignedNote, witnesses: Sequence[WitnessKey]) -> WitnessReport:
    """Verify every signature line of `note` that names one of `witnesses`.

    Lines by other keys (the log's, unknown witnesses) are ignored. A witness that signed twice
    counts once; a line that names a witness but fails is listed in `invalid`.
    """
    index = index_keys(witnesses)
    valid: dict[tuple[str, bytes], WitnessSignature] = {}
    invalid: list[str] = []
    message = note.text.encode("utf-8")
    for sig in note.signatures:
        key = index.get((sig.name, sig.key_hint))
        if key is None:
            continue
        if isinstance(key, CosignatureVerifier):
            try:
                cosig = key.verify_cosignature(note, sig)
            except NoteVerificationError as e:
                invalid.append(str(e))
                continue
            found = WitnessSignature(sig.name, sig.key_hint, cosig.timestamp, sig.to_line())
        elif key.verify(message, sig.signature):
            found = WitnessSignature(sig.name, sig.key_hint, None, sig.to_line())
        else:
            invalid.append(f"witness signature: expected a valid signature from {sig.key_id}")
            continue
        valid.setdefault((sig.name, sig.key_hint), found)
    return WitnessReport(valid=tuple(valid.values()), invalid=tuple(invalid))


def quorum_shortfall(report: WitnessReport, quorum: int) -> int:
    """How many more valid witness signatures `quorum` needs (0: the quorum is met)."""
    return max(0, quorum - len(report.valid))


def with_cosignatures(note: str, lines: Sequence[str]) -> str:
    """`note` with the witness signature `lines` (recorded for the same body, possibly from
    other views) appended, skipping keys that already signed it, at most `MAX_SIGNATURES`
    lines in all. Cosignatures cover the note text only, so they stay valid on any copy of it.
    """
    signed = parse_signed_note(note)
    extra = parse_signed_note(signed.text + "\n" + "".join(lines)).signatures if lines else ()
    seen = {(s.name, s.key_hint) for s in signed.signatures}
    sigs = list(signed.signatures)
    for sig in extra:
        if (sig.name, sig.key_hint) not in seen and len(sigs) < MAX_SIGNATURES:
            seen.add((sig.name, sig.key_hint))
            sigs.append(sig)
    return SignedNote(text=signed.text, signatures=tuple(sigs)).to_text()
