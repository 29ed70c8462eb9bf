"""Signed notes, checkpoints, cosignatures and vkeys: parsing tables, verification rules,
published test vectors, and property tests (round trip, single-byte tampering)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.errors import ConfigError, ParseError, VerificationError
from monitor.core.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    EcdsaNoteSigner,
    EcdsaNoteVerifier,
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    NoteFormatError,
    NoteKeyError,
    NoteSignature,
    NoteVerificationError,
    SignedNote,
    cosign_note,
    cosignature_message,
    encode_vkey,
    format_checkpoint,
    is_valid_key_name,
    parse_checkpoint,
    parse_signed_note,
    parse_vkey,
    sign_note,
    verify_checkpoint,
    verify_cosignatures,
    verify_note,
)

# --- published test vectors -------------------------------------------------------------------
# From the documentation of golang.org/x/mod/sumdb/note (BSD-3-Clause): a key pair and a note
# it signed. Ed25519 is deterministic, so our signer must reproduce the signature exactly.
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_LINE = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
    "qfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG_LINE
# The same note re-signed by a second, randomly generated key whose vkey is not published.
GO_NOTE_TWO_SIGS = (
    GO_NOTE + "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01"
    "oOTGwnWLox33WWd1RvMc+QQ=\n"
)

ED_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"tlog-monitor test ed25519").digest())
EC_KEY = ec.derive_private_key(
    int.from_bytes(hashlib.sha256(b"tlog-monitor test p256").digest(), "big") % (2**255),
    ec.SECP256R1(),
)
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"tlog-monitor test witness").digest()
)

ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
CP_TEXT = f"example.com/log\n42\n{ROOT_B64}\n"


def _go_verifier() -> Ed25519NoteVerifier:
    v = parse_vkey(GO_VKEY)
    assert isinstance(v, Ed25519NoteVerifier)
    return v


def _line(name: str, payload: bytes) -> str:
    return f"— {name} {base64.b64encode(payload).decode()}\n"


# --- parsing: good notes -----------------------------------------------------------------------


def test_go_example_parses_and_round_trips() -> None:
    note = parse_signed_note(GO_NOTE)
    assert note.text == GO_TEXT
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert note.signatures[0].key_hint == bytes.fromhex("c74f20a3")
    assert len(note.signatures[0].signature) == 64
    assert note.to_text() == GO_NOTE
    assert parse_signed_note(GO_NOTE.encode()) == note


def test_go_example_verifies_with_published_vkey() -> None:
    v = _go_verifier()
    assert v.key_hint.hex() == "c74f20a3"
    assert verify_note(parse_signed_note(GO_NOTE), [v]) == (v,)


def test_signer_reproduces_go_example_signature_exactly() -> None:
    signer = Ed25519NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED))
    assert signer.verifier() == _go_verifier()
    assert sign_note(GO_TEXT, [signer]).to_text() == GO_NOTE


def test_unknown_second_signature_is_ignored() -> None:
    note = parse_signed_note(GO_NOTE_TWO_SIGS)
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert verify_note(note, [_go_verifier()]) == (_go_verifier(),)


GOOD_NOTES = {
    "go example": GO_NOTE,
    "text with inner blank lines": "a\n\nb\n\n\n" + "\n" + _line("k", b"\x01\x02\x03\x04\x05"),
    "text that is one empty line": "\n\n" + _line("k", b"12345"),
    "unicode name and text": "é ü 日本\n\n" + _line("例え.example/ログ", b"\x00" * 40),
    "signature line that looks like text": "— x AAAAAAA=\n\n" + _line("k", b"12345"),
    "max signatures": "t\n\n" + _line("k", b"12345") * MAX_SIGNATURES,
    "non-ascii control-free text (NEL, U+2028)": "a\u0085b\u2028c\n\n" + _line("k", b"12345"),
}


@pytest.mark.parametrize("data", GOOD_NOTES.values(), ids=GOOD_NOTES.keys())
def test_good_notes_parse_and_round_trip(data: str) -> None:
    note = parse_signed_note(data)
    assert note.to_text() == data
    assert parse_signed_note(note.to_bytes()) == note


def test_note_of_exactly_max_bytes_is_accepted() -> None:
    tail = "\n" + _line("k", b"12345")
    text = "x" * (MAX_NOTE_BYTES - len(tail.encode()) - 1) + "\n"
    data = text + tail
    assert len(data.encode()) == MAX_NOTE_BYTES
    assert parse_signed_note(data).text == text


def test_text_is_split_at_the_last_blank_line() -> None:
    data = "a\n\n" + _line("k", b"12345") + "\n" + _line("j", b"67890")
    note = parse_signed_note(data)
    assert note.text == "a\n\n" + _line("k", b"12345")
    assert [s.name for s in note.signatures] == ["j"]


# --- parsing: malformed notes ------------------------------------------------------------------

SIG = _line("k", b"\x01" * 20)
BAD_NOTES: dict[str, str | bytes] = {
    "empty": "",
    "missing final newline": GO_NOTE[:-1],
    "no blank line": GO_TEXT + GO_SIG_LINE,
    "only text": GO_TEXT,
    "blank line but no signatures": GO_TEXT + "\n",
    "blank line after signatures": GO_NOTE + "\n",
    "bad utf-8 in text": b"caf\xe9\n\n" + SIG.encode(),
    "bad utf-8 in name": b"t\n\n\xe2\x80\x94 k\xff " + base64.b64encode(b"12345") + b"\n",
    "truncated utf-8 em dash": b"t\n\n\xe2\x80 k " + base64.b64encode(b"12345") + b"\n",
    "lone surrogate in str": "t\ud800\n\n" + SIG,
    "CR in text": "a\r\nb\n\n" + SIG,
    "CRLF line endings": GO_NOTE.replace("\n", "\r\n"),
    "tab in text": "a\tb\n\n" + SIG,
    "NUL in text": "a\x00b\n\n" + SIG,
    "escape in signature line": "t\n\n— k\x1b " + base64.b64encode(b"12345").decode() + "\n",
    "hyphen instead of em dash": "t\n\n- k " + base64.b64encode(b"12345").decode() + "\n",
    "en dash instead of em dash": "t\n\n– k " + base64.b64encode(b"12345").decode() + "\n",
    "no space after dash": "t\n\n—k " + base64.b64encode(b"12345").decode() + "\n",
    "two spaces after dash (empty name)": "t\n\n—  " + base64.b64encode(b"12345").decode() + "\n",
    "no space before base64": "t\n\n— k\n",
    "empty base64": "t\n\n— k \n",
    "two spaces before base64": "t\n\n— k  " + base64.b64encode(b"12345").decode() + "\n",
    "trailing space": "t\n\n— k " + base64.b64encode(b"12345").decode() + " \n",
    "name with plus": "t\n\n— a+b " + base64.b64encode(b"12345").decode() + "\n",
    "name with no-break space": "t\n\n— a\u00a0b " + base64.b64encode(b"12345").decode() + "\n",
    "name with ideographic space": "t\n\n— a\u3000b " + base64.b64encode(b"12345").decode() + "\n",
    "bad base64 alphabet": "t\n\n— k AAAA*AAA\n",
    "url-safe base64": "t\n\n— k "
    + base64.urlsafe_b64encode(b"\xfb\xff\xfe\xfa\xfb\xff").decode()
    + "\n",
    "unpadded base64": "t\n\n— k " + base64.b64encode(b"123456").decode().rstrip("=") + "A\n",
    "missing padding": "t\n\n— k " + base64.b64encode(b"12345").decode().rstrip("=") + "\n",
    "non-canonical base64 padding bits": "t\n\n— k MTIzNDV=\n",
    "short signature (hint only)": "t\n\n— k " + base64.b64encode(b"1234").decode() + "\n",
    "short signature (3 bytes)": "t\n\n— k " + base64.b64encode(b"123").decode() + "\n",
    "too many signature lines": "t\n\n" + SIG * (MAX_SIGNATURES + 1),
    "trailing garbage line": GO_NOTE + "garbage\n",
    "trailing garbage without newline": GO_NOTE + "garbage",
    "trailing garbage after base64": GO_NOTE[:-1] + " extra\n",
    "garbage between signatures": GO_NOTE + "x\n" + SIG,
    "oversized": "x" * MAX_NOTE_BYTES + "\n\n" + SIG,
}


@pytest.mark.parametrize("data", BAD_NOTES.values(), ids=BAD_NOTES.keys())
def test_malformed_notes_are_rejected(data: str | bytes) -> None:
    with pytest.raises(NoteFormatError):
        parse_signed_note(data)


def test_note_format_error_is_a_parse_error_with_a_clear_message() -> None:
    with pytest.raises(ParseError, match=r"signed note: expected .*, got"):
        parse_signed_note(GO_NOTE[:-1])


def test_oversized_note_is_rejected_before_decoding() -> None:
    with pytest.raises(NoteFormatError, match=f"at most {MAX_NOTE_BYTES} bytes"):
        parse_signed_note(b"\xff" * (MAX_NOTE_BYTES + 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "a b", "key_hint": b"1234", "signature": b"x"}, "key name"),
        ({"name": "", "key_hint": b"1234", "signature": b"x"}, "key name"),
        ({"name": "k", "key_hint": b"123", "signature": b"x"}, "4-byte key hint"),
        ({"name": "k", "key_hint": b"1234", "signature": b""}, "non-empty signature"),
    ],
)
def test_note_signature_rejects_invalid_fields(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(NoteFormatError, match=match):
        NoteSignature(**kwargs)  # type: ignore[arg-type]


def test_signed_note_rejects_invalid_fields() -> None:
    sig = NoteSignature("k", b"1234", b"x")
    with pytest.raises(NoteFormatError, match="newline"):
        SignedNote("no newline", (sig,))
    with pytest.raises(NoteFormatError, match="at least one signature"):
        SignedNote("t\n", ())
    with pytest.raises(NoteFormatError, match="control"):
        SignedNote("a\rb\n", (sig,))


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("rekor.sigstore.dev", True),
        ("example.com/log42", True),
        ("ünïcode/ログ", True),
        ("", False),
        ("a b", False),
        ("a+b", False),
        ("a\u2003b", False),
        ("a\u0085b", False),
        ("a\tb", False),
    ],
)
def test_key_name_rules(name: str, valid: bool) -> None:
    assert is_valid_key_name(name) is valid


# --- checkpoints ------------------------------------------------------------------------------

GOOD_CHECKPOINTS = {
    "plain": (CP_TEXT, Checkpoint("example.com/log", 42, ROOT, ())),
    "empty tree": (
        f"o\n0\n{ROOT_B64}\n",
        Checkpoint("o", 0, ROOT, ()),
    ),
    # 2^63 - 1, not C2SP's 2^64 - 1: what SQLite and Go's tlog hold (see note._MAX_TREE_SIZE).
    "max size": (f"o\n{2**63 - 1}\n{ROOT_B64}\n", Checkpoint("o", 2**63 - 1, ROOT, ())),
    "rekor v1 origin with spaces and extensions": (
        f"rekor.sigstore.dev - 1193050959916656506\n7\n{ROOT_B64}\nTimestamp: 1\nx y\n",
        Checkpoint("rekor.sigstore.dev - 1193050959916656506", 7, ROOT, ("Timestamp: 1", "x y")),
    ),
}


@pytest.mark.parametrize(("text", "want"), GOOD_CHECKPOINTS.values(), ids=GOOD_CHECKPOINTS.keys())
def test_good_checkpoints_parse_and_format(text: str, want: Checkpoint) -> None:
    assert parse_checkpoint(text) == want
    assert format_checkpoint(want) == text


BAD_CHECKPOINTS = {
    "two lines": f"o\n{ROOT_B64}\n",
    "one line": "o\n",
    "missing final newline": CP_TEXT[:-1],
    "empty origin": f"\n1\n{ROOT_B64}\n",
    "leading zero": f"o\n01\n{ROOT_B64}\n",
    "plus sign": f"o\n+1\n{ROOT_B64}\n",
    "minus sign": f"o\n-1\n{ROOT_B64}\n",
    "space in size": f"o\n 1\n{ROOT_B64}\n",
    "empty size": f"o\n\n{ROOT_B64}\n",
    "hex size": f"o\n0x10\n{ROOT_B64}\n",
    "underscore size": f"o\n1_000\n{ROOT_B64}\n",
    "fullwidth digit size": f"o\n１\n{ROOT_B64}\n",
    "size 2^63": f"o\n{2**63}\n{ROOT_B64}\n",
    "size 2^64 - 1": f"o\n{2**64 - 1}\n{ROOT_B64}\n",
    "size 2^64": f"o\n{2**64}\n{ROOT_B64}\n",
    "huge size": f"o\n{'9' * 5000}\n{ROOT_B64}\n",
    "root 31 bytes": f"o\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root 33 bytes": f"o\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",
    "root hex": f"o\n1\n{ROOT.hex()}\n",
    "root non-canonical": f"o\n1\n{ROOT_B64[:-2]}B=\n",
    "root unpadded": f"o\n1\n{ROOT_B64.rstrip('=')}\n",
    "empty extension line": f"o\n1\n{ROOT_B64}\n\nx\n",
    "trailing empty extension": f"o\n1\n{ROOT_B64}\n\n",
    "CR in origin": f"o\r\n1\n{ROOT_B64}\n",
}


@pytest.mark.parametrize("text", BAD_CHECKPOINTS.values(), ids=BAD_CHECKPOINTS.keys())
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_checkpoint(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root": ROOT},
        {"origin": "a\nb", "size": 1, "root": ROOT},
        {"origin": "o", "size": -1, "root": ROOT},
        {"origin": "o", "size": 2**63, "root": ROOT},
        {"origin": "o", "size": 2**64, "root": ROOT},
        {"origin": "o", "size": 1, "root": ROOT[:31]},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("",)},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("a\nb",)},
    ],
)
def test_checkpoint_rejects_values_that_would_not_round_trip(kwargs: dict[str, object]) -> None:
    with pytest.raises(NoteFormatError):
        Checkpoint(**kwargs)  # type: ignore[arg-type]


def test_verify_checkpoint_checks_signature_then_origin() -> None:
    signer = Ed25519NoteSigner("example.com/log", ED_KEY)
    data = sign_note(CP_TEXT, [signer]).to_bytes()
    got = verify_checkpoint(data, [signer.verifier()], origin="example.com/log")
    assert got.checkpoint == Checkpoint("example.com/log", 42, ROOT, ())
    assert got.signers == ("example.com/log",)
    assert got.note.to_bytes() == data
    with pytest.raises(NoteVerificationError, match=r"expected origin 'example\.com/other'"):
        verify_checkpoint(data, [signer.verifier()], origin="example.com/other")
    # Exact match only: no prefix, case or whitespace folding.
    for near in ["example.com/lo", "Example.com/log", "example.com/log "]:
        with pytest.raises(NoteVerificationError):
            verify_checkpoint(data, [signer.verifier()], origin=near)


def test_verify_checkpoint_rejects_signed_garbage_body() -> None:
    signer = Ed25519NoteSigner("k", ED_KEY)
    data = sign_note("not a checkpoint\n", [signer]).to_text()
    with pytest.raises(NoteFormatError, match="checkpoint"):
        verify_checkpoint(data, [signer.verifier()])


# --- verify_note rules -------------------------------------------------------------------------


def test_known_key_with_bad_signature_rejects_the_whole_note() -> None:
    good = Ed25519NoteSigner("k", ED_KEY)
    other = Ed25519NoteSigner("k2", WITNESS_KEY)
    note = sign_note("t\n", [other, good])
    bad_sig = bytes([note.signatures[1].signature[0] ^ 1]) + note.signatures[1].signature[1:]
    tampered = SignedNote(
        note.text, (note.signatures[0], NoteSignature("k", good.key_hint, bad_sig))
    )
    # other's valid signature does not rescue it: a bad signature from a known key is fatal.
    with pytest.raises(NoteVerificationError, match=r"expected a valid signature from k\+"):
        verify_note(tampered, [good.verifier(), other.verifier()])


def test_repeated_signature_by_a_known_key_is_verified_too() -> None:
    signer = Ed25519NoteSigner("k", ED_KEY)
    note = sign_note("t\n", [signer])
    sig = note.signatures[0]
    forged = NoteSignature(sig.name, sig.key_hint, b"\x00" * 64)
    assert verify_note(SignedNote(note.text, (sig, sig)), [signer.verifier()]) == (
        signer.verifier(),
    )
    with pytest.raises(NoteVerificationError):
        verify_note(SignedNote(note.text, (sig, forged)), [signer.verifier()])


def test_no_known_signature_is_rejected() -> None:
    signer = Ed25519NoteSigner("k", ED_KEY)
    note = sign_note("t\n", [signer])
    with pytest.raises(NoteVerificationError, match=r"expected a signature by other\+"):
        verify_note(note, [Ed25519NoteSigner("other", ED_KEY).verifier()])


def test_same_name_different_hint_and_same_hint_different_name_are_unknown() -> None:
    signer = Ed25519NoteSigner("k", ED_KEY)
    note = sign_note("t\n", [signer])
    sig = note.signatures[0]
    other_hint = NoteSignature("k", bytes(4), sig.signature)
    other_name = NoteSignature("j", sig.key_hint, sig.signature)
    for decoy in (other_hint, other_name):
        # Ignored as unknown (not verified, so no error), and the real one still counts.
        assert verify_note(SignedNote(note.text, (decoy, sig)), [signer.verifier()]) == (
            signer.verifier(),
        )
        with pytest.raises(NoteVerificationError, match="expected a signature by"):
            verify_note(SignedNote(note.text, (decoy,)), [signer.verifier()])


def test_ambiguous_verifiers_are_a_config_error() -> None:
    a = Ed25519NoteVerifier("k", ED_KEY.public_key())
    with pytest.raises(ConfigError):
        verify_note(parse_signed_note(GO_NOTE), [])
    # The same key twice is fine; two keys under one name and hint are not.
    assert verify_note(sign_note("t\n", [Ed25519NoteSigner("k", ED_KEY)]), [a, a]) == (a,)

    class Impostor:
        name = "k"
        key_hint = a.key_hint

        def verify(self, message: bytes, signature: bytes) -> bool:
            return True

    with pytest.raises(NoteKeyError, match="one key per name and hint"):
        verify_note(parse_signed_note(GO_NOTE), [a, Impostor()])


def test_ecdsa_signer_and_verifier_follow_rekor_v1_conventions() -> None:
    signer = EcdsaNoteSigner("rekor.example", EC_KEY)
    v = signer.verifier()
    spki = v.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert v.key_hint == hashlib.sha256(spki).digest()[:4]
    assert v.key_id == hashlib.sha256(spki).digest()
    note = sign_note(CP_TEXT, [signer])
    assert verify_note(note, [v]) == (v,)
    assert not v.verify(b"other", note.signatures[0].signature)
    assert not v.verify(CP_TEXT.encode(), b"\x30\x00")
    assert not v.verify(CP_TEXT.encode(), b"not der")


def test_ecdsa_verifier_rejects_other_curves() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(NoteKeyError, match="P-256"):
        EcdsaNoteVerifier("k", p384)


def test_ed25519_verifier_hint_and_key_id() -> None:
    v = Ed25519NoteVerifier("example.com/log", ED_KEY.public_key())
    want = hashlib.sha256(b"example.com/log\n\x01" + v.public_bytes).digest()
    assert v.key_id == want
    assert v.key_hint == want[:4]
    assert not v.verify(b"m", b"\x00" * 63)
    with pytest.raises(NoteKeyError):
        Ed25519NoteVerifier("bad name", ED_KEY.public_key())
    with pytest.raises(NoteKeyError, match="32-byte"):
        Ed25519NoteVerifier.from_bytes("k", b"\x00" * 31)


def test_verifiers_compare_by_name_and_key() -> None:
    a = Ed25519NoteVerifier("k", ED_KEY.public_key())
    assert a == Ed25519NoteVerifier.from_bytes("k", a.public_bytes)
    assert a != Ed25519NoteVerifier("j", ED_KEY.public_key())
    assert a != CosignatureVerifier("k", ED_KEY.public_key())
    assert len({a, Ed25519NoteVerifier("k", ED_KEY.public_key())}) == 1
    assert "hint=" in repr(a)


# --- cosignatures -------------------------------------------------------------------------------


def test_cosignature_message_matches_spec_example_layout() -> None:
    # C2SP tlog-cosignature: header line, "time <decimal>" line, then the checkpoint body.
    assert cosignature_message(CP_TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\n" + CP_TEXT.encode()
    )


def test_cosignature_round_trip_and_conventions() -> None:
    log = Ed25519NoteSigner("example.com/log", ED_KEY)
    witness = CosignatureSigner("witness.example/w1", WITNESS_KEY)
    wv = witness.verifier()
    assert (
        wv.key_hint == (hashlib.sha256(b"witness.example/w1\n\x04" + wv.public_bytes).digest()[:4])
    )
    note = cosign_note(sign_note(CP_TEXT, [log]), [witness], timestamp=1_700_000_000)
    cosig = note.signatures[1]
    assert len(cosig.signature) == 8 + 64
    assert cosig.signature[:8] == (1_700_000_000).to_bytes(8, "big")
    assert verify_cosignatures(note, [wv]) == (
        Cosignature("witness.example/w1", wv.key_hint, 1_700_000_000),
    )
    # To the log's verifier the cosignature is an unknown line, ignored.
    assert verify_note(note, [log.verifier()]) == (log.verifier(),)
    # A witness key also works as a NoteVerifier.
    assert verify_note(note, [log.verifier(), wv]) == (log.verifier(), wv)


def test_cosignature_domain_separation_from_plain_ed25519() -> None:
    same_key_plain = Ed25519NoteVerifier("witness.example/w1", WITNESS_KEY.public_key())
    witness = CosignatureSigner("witness.example/w1", WITNESS_KEY)
    assert same_key_plain.key_hint != witness.key_hint
    note = cosign_note(sign_note(CP_TEXT, [Ed25519NoteSigner("l", ED_KEY)]), [witness], 5)
    with pytest.raises(NoteVerificationError):
        verify_note(note, [same_key_plain])


def test_bad_cosignature_from_known_witness_raises() -> None:
    witness = CosignatureSigner("w", WITNESS_KEY)
    note = cosign_note(sign_note(CP_TEXT, [Ed25519NoteSigner("l", ED_KEY)]), [witness], 100)
    log_sig, cosig = note.signatures

    def with_cosig(payload: bytes) -> SignedNote:
        return SignedNote(note.text, (log_sig, NoteSignature("w", witness.key_hint, payload)))

    wrong_time = (101).to_bytes(8, "big") + cosig.signature[8:]
    with pytest.raises(NoteVerificationError, match="invalid"):
        verify_cosignatures(with_cosig(wrong_time), [witness.verifier()])
    with pytest.raises(NoteVerificationError, match="72 bytes"):
        verify_cosignatures(with_cosig(cosig.signature[:-1]), [witness.verifier()])
    too_late = (2**63).to_bytes(8, "big") + cosig.signature[8:]
    with pytest.raises(NoteVerificationError, match="2\\^63"):
        verify_cosignatures(with_cosig(too_late), [witness.verifier()])
    with pytest.raises(NoteVerificationError, match="expected a signature by w"):
        witness.verifier().verify_cosignature(note, log_sig)


def test_cosignatures_unknown_ignored_duplicates_collapsed_none_is_empty() -> None:
    w1 = CosignatureSigner("w1", WITNESS_KEY)
    w2 = CosignatureSigner("w2", ED_KEY)
    base = sign_note(CP_TEXT, [Ed25519NoteSigner("l", ED_KEY)])
    note = cosign_note(cosign_note(base, [w1, w2], 7), [w1], 8)
    got = verify_cosignatures(note, [w1.verifier()])
    assert got == (Cosignature("w1", w1.key_hint, 7),)
    assert verify_cosignatures(base, [w1.verifier()]) == ()


def test_cosignature_signer_rejects_bad_input() -> None:
    witness = CosignatureSigner("w", WITNESS_KEY)
    with pytest.raises(NoteFormatError):
        witness.sign_cosignature(CP_TEXT, -1)
    with pytest.raises(NoteFormatError):
        witness.sign_cosignature(CP_TEXT, 2**63)
    with pytest.raises(NoteFormatError):
        witness.sign_cosignature("no newline", 1)


# --- vkeys -------------------------------------------------------------------------------------


def test_vkey_round_trip() -> None:
    v = _go_verifier()
    assert encode_vkey(v) == GO_VKEY == v.vkey
    w = CosignatureSigner("witness.example/w1", WITNESS_KEY).verifier()
    parsed = parse_vkey(w.vkey)
    assert isinstance(parsed, CosignatureVerifier)
    assert parsed == w
    assert parse_vkey(GO_VKEY.replace("c74f20a3", "C74F20A3")) == v


BAD_VKEYS = {
    "empty": "",
    "name only": "PeterNeumann",
    "no key": "PeterNeumann+c74f20a3",
    "short hint": "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "non-hex hint": "PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "wrong hint": "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "wrong name for hint": "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "bad base64": "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T*",
    "unknown type 0x02": "k+00000000+" + base64.b64encode(b"\x02" + b"\x00" * 32).decode(),
    "short key": "k+00000000+" + base64.b64encode(b"\x01" + b"\x00" * 31).decode(),
    "space in name": "a b+00000000+" + base64.b64encode(b"\x01" + b"\x00" * 32).decode(),
}


@pytest.mark.parametrize("vkey", BAD_VKEYS.values(), ids=BAD_VKEYS.keys())
def test_bad_vkeys_are_config_errors(vkey: str) -> None:
    with pytest.raises(NoteKeyError):
        parse_vkey(vkey)


# --- properties ---------------------------------------------------------------------------------

# Note text: any Unicode scalar except ASCII controls, plus newlines, ending in a newline.
texts = st.text(
    alphabet=st.one_of(st.just("\n"), st.characters(min_codepoint=0x20, codec="utf-8")),
    max_size=120,
).map(lambda t: t + "\n")
names = st.text(
    alphabet=st.characters(min_codepoint=0x21, exclude_categories=("Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=24,
).filter(is_valid_key_name)


def _change_one_byte(wire: bytes, data: st.DataObject) -> bytes:
    """`wire` with one byte replaced by a different value. Drawn independently of the length,
    because ECDSA signatures (and so note lengths) vary from run to run."""
    pos = data.draw(st.integers(0, 1 << 20), label="position seed") % len(wire)
    delta = data.draw(st.integers(1, 255), label="byte delta")
    return wire[:pos] + bytes([(wire[pos] + delta) % 256]) + wire[pos + 1 :]


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(text=texts, ed_name=names, ec_name=names)
def test_sign_parse_verify_round_trip(text: str, ed_name: str, ec_name: str) -> None:
    ed, ecd = Ed25519NoteSigner(ed_name, ED_KEY), EcdsaNoteSigner(ec_name, EC_KEY)
    note = sign_note(text, [ed, ecd])
    wire = note.to_bytes()
    again = parse_signed_note(wire)
    assert again == note
    assert again.to_bytes() == wire
    assert again.text == text
    assert verify_note(again, [ed.verifier(), ecd.verifier()]) == (ed.verifier(), ecd.verifier())


@PROPERTY_SETTINGS
@given(text=texts, name=names, use_ecdsa=st.booleans(), data=st.data())
def test_any_single_byte_change_is_rejected(
    text: str, name: str, use_ecdsa: bool, data: st.DataObject
) -> None:
    signer = EcdsaNoteSigner(name, EC_KEY) if use_ecdsa else Ed25519NoteSigner(name, ED_KEY)
    wire = sign_note(text, [signer]).to_bytes()
    tampered = _change_one_byte(wire, data)
    with pytest.raises((NoteFormatError, NoteVerificationError)):
        verify_note(parse_signed_note(tampered), [signer.verifier()])


@PROPERTY_SETTINGS
@given(text=texts, data=st.data())
def test_single_byte_change_never_keeps_every_signer(text: str, data: st.DataObject) -> None:
    log = Ed25519NoteSigner("log.example", ED_KEY)
    witness = CosignatureSigner("witness.example", WITNESS_KEY)
    wire = cosign_note(sign_note(text, [log]), [witness], 1234).to_bytes()
    tampered = _change_one_byte(wire, data)
    try:
        signers = verify_note(parse_signed_note(tampered), [log.verifier(), witness.verifier()])
    except (NoteFormatError, NoteVerificationError):
        return
    # Only a change to a signature line's name or hint can pass, by making that line unknown.
    assert len(signers) < 2


def test_error_families() -> None:
    assert issubclass(NoteFormatError, ParseError)
    assert issubclass(NoteVerificationError, VerificationError)
    assert issubclass(NoteKeyError, ConfigError)
