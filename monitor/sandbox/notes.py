"""Checkpoint signing for the sandbox, on top of :mod:`monitor.core.note` (honest and dishonest).

Honest checkpoints are :func:`monitor.core.note.sign_note` over
:func:`monitor.core.note.format_checkpoint`.
The dishonest variants are built from valid notes by editing the signature line:
:func:`corrupt_signature` flips one bit of the signature (the hint is kept, so a verifier
finds the key and must reject the signature); :func:`replace_hint` presents a signature by
another key under the real key's hint.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from monitor.core.note import (
    Checkpoint,
    EcdsaNoteSigner,
    Ed25519NoteSigner,
    NoteSignature,
    SignedNote,
    encode_vkey,
    format_checkpoint,
    parse_signed_note,
    sign_note,
)


@dataclass(frozen=True)
class NoteKey:
    """A log's checkpoint signing key: an Ed25519 (C2SP) or ECDSA (Rekor v1) note signer."""

    signer: Ed25519NoteSigner | EcdsaNoteSigner

    @classmethod
    def ecdsa(cls, name: str, key: ec.EllipticCurvePrivateKey) -> NoteKey:
        """An ECDSA P-256 key, Rekor v1 conventions (hint = SHA-256(SPKI)[:4])."""
        return cls(EcdsaNoteSigner(name, key))

    @classmethod
    def ed25519(cls, name: str, key: ed25519.Ed25519PrivateKey) -> NoteKey:
        """An Ed25519 key, C2SP signed-note conventions."""
        return cls(Ed25519NoteSigner(name, key))

    @property
    def name(self) -> str:
        """The key name of the signature lines."""
        return self.signer.name

    @property
    def hint(self) -> bytes:
        """The 4-byte key hint."""
        return bytes(self.signer.key_hint)

    def vkey(self) -> str:
        """The C2SP verifier key string (Ed25519 keys only; ECDSA keys have none)."""
        if not isinstance(self.signer, Ed25519NoteSigner):
            raise TypeError("vkey: only Ed25519 note keys have a C2SP vkey")
        return encode_vkey(self.signer.verifier())


def sign_checkpoint(origin: str, size: int, root: bytes, key: NoteKey) -> str:
    """A checkpoint note signed by ``key``, in its wire form."""
    text = format_checkpoint(Checkpoint(origin=origin, size=size, root=root))
    return sign_note(text, [key.signer]).to_text()


def _with_signature(note: SignedNote, sig: NoteSignature) -> str:
    return SignedNote(text=note.text, signatures=(sig, *note.signatures[1:])).to_text()


def corrupt_signature(text: str) -> str:
    """``text`` (a signed note) with one bit of its first signature flipped."""
    note = parse_signed_note(text)
    first = note.signatures[0]
    bad = first.signature[:-1] + bytes([first.signature[-1] ^ 0x01])
    return _with_signature(note, NoteSignature(first.name, first.key_hint, bad))


def replace_hint(text: str, hint: bytes) -> str:
    """``text`` (a signed note) with its first signature's key hint replaced by ``hint``."""
    note = parse_signed_note(text)
    first = note.signatures[0]
    return _with_signature(note, NoteSignature(first.name, hint, first.signature))
