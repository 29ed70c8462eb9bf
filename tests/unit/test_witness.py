"""Witness signatures and quorums: real cosigned checkpoints from independent witnesses, tables,
and property tests over notes this project signs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.trust_roots import find_trusted_log
from monitor.core.errors import ConfigError
from monitor.core.note import (
    CosignatureSigner,
    Ed25519NoteSigner,
    NoteSignature,
    SignedNote,
    cosign_note,
    parse_signed_note,
    sign_note,
    verify_checkpoint,
    verify_note,
)
from monitor.core.witness import (
    WitnessReport,
    WitnessSignature,
    check_witnesses,
    parse_witness_vkey,
    quorum_shortfall,
    with_cosignatures,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "witness"
VKEYS = json.loads((DATA / "vkeys.json").read_text())
CP_TEXT = "example.com/log\n42\n" + "A" * 43 + "=\n"


def _key(n: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"witness test %d" % n).digest())


LOG = Ed25519NoteSigner("example.com/log", _key(0))
WITNESSES = [CosignatureSigner(f"w{n}.example", _key(n)) for n in range(1, 6)]


# --- real data ---------------------------------------------------------------------------------


def test_real_cosignature_v1_checkpoint_from_three_public_witnesses() -> None:
    entry = VKEYS["arche2025h1-cosigned.checkpoint"]
    data = (DATA / "arche2025h1-cosigned.checkpoint").read_bytes()
    vc = verify_checkpoint(data, [parse_witness_vkey(entry["log"])])
    assert (vc.checkpoint.origin, vc.checkpoint.size) == (
        "arche2025h1.staging.ct.transparency.dev",
        1432088532,
    )
    report = check_witnesses(vc.note, [parse_witness_vkey(v) for v in entry["witnesses"]])
    assert report.invalid == ()
    assert [w.name for w in report.valid] == [
        "transparency.dev/DEV:witness-little-garden",
        "remora.n621.de",
        "witness.stagemole.eu",
    ]
    assert {w.timestamp for w in report.valid} == {1779573024}
    assert quorum_shortfall(report, 3) == 0 and quorum_shortfall(report, 4) == 1


def test_real_legacy_ed25519_witness_signatures_on_production_rekor() -> None:
    entry = VKEYS["rekor-2022-witnessed.checkpoint"]
    rekor = find_trusted_log("production", "https://rekor.sigstore.dev").verifier
    vc = verify_checkpoint((DATA / "rekor-2022-witnessed.checkpoint").read_bytes(), [rekor])
    assert (vc.checkpoint.origin, vc.checkpoint.size) == ("Rekor", 907929)
    report = check_witnesses(vc.note, [parse_witness_vkey(v) for v in entry["witnesses"]])
    assert sorted(report.cosigners) == [
        "mhutchinson.witness+384b3dbc",
        "wolsey-bank-alfred+0336ecb0",
    ]
    assert all(w.timestamp is None for w in report.valid)


@pytest.mark.parametrize("name", sorted(VKEYS))
def test_real_cosignatures_fail_on_any_other_body(name: str) -> None:
    note = parse_signed_note((DATA / name).read_bytes())
    size = note.text.split("\n")[1]
    forged = SignedNote(note.text.replace(size, str(int(size) + 1), 1), note.signatures)
    report = check_witnesses(forged, [parse_witness_vkey(v) for v in VKEYS[name]["witnesses"]])
    assert report.valid == ()
    assert len(report.invalid) == len(VKEYS[name]["witnesses"])


# --- tables --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid", "quorum", "missing"),
    [(0, 0, 0), (0, 1, 1), (1, 2, 1), (2, 2, 0), (3, 2, 0), (0, 5, 5)],
)
def test_quorum_shortfall(valid: int, quorum: int, missing: int) -> None:
    sigs = tuple(WitnessSignature(f"w{i}", b"\0" * 4, None, "") for i in range(valid))
    assert quorum_shortfall(WitnessReport(valid=sigs, invalid=()), quorum) == missing


def test_bad_cosignature_is_reported_not_counted_and_unknown_lines_are_ignored() -> None:
    w1, w2 = WITNESSES[:2]
    note = cosign_note(sign_note(CP_TEXT, [LOG]), [w1, w2], 1_700_000_000)
    log_sig, good, bad = note.signatures
    broken = NoteSignature(
        bad.name, bad.key_hint, bad.signature[:-1] + bytes([bad.signature[-1] ^ 1])
    )
    tampered = SignedNote(note.text, (log_sig, good, broken))
    report = check_witnesses(tampered, [w1.verifier(), w2.verifier()])
    assert report.cosigners == (f"w1.example+{w1.key_hint.hex()}",)
    assert len(report.invalid) == 1 and "w2.example" in report.invalid[0]
    # The log's own signature is never a witness signature.
    assert check_witnesses(sign_note(CP_TEXT, [LOG]), [w1.verifier()]).valid == ()


def test_legacy_ed25519_witness_key_verifies_plain_signatures() -> None:
    legacy = Ed25519NoteSigner("old.witness", _key(9))
    note = sign_note(CP_TEXT, [LOG, legacy])
    report = check_witnesses(note, [legacy.verifier()])
    assert [(w.name, w.timestamp) for w in report.valid] == [("old.witness", None)]


def test_two_keys_under_one_name_and_hint_are_a_config_error() -> None:
    w = WITNESSES[0].verifier()
    other = CosignatureSigner(w.name, _key(99)).verifier()
    forged = type(other).from_bytes(w.name, other.public_bytes)
    object.__setattr__(forged, "_key_id", w.key_id)  # same hint, different key
    with pytest.raises(ConfigError, match="one key per name and hint"):
        check_witnesses(sign_note(CP_TEXT, [LOG]), [w, forged])


def test_with_cosignatures_merges_dedupes_and_stays_verifiable() -> None:
    w1, w2, w3 = WITNESSES[:3]
    base = sign_note(CP_TEXT, [LOG])
    from_view_a = cosign_note(base, [w1, w2], 10)
    from_view_b = cosign_note(base, [w2, w3], 20)
    lines = [s.to_line() for s in from_view_a.signatures[1:] + from_view_b.signatures[1:]]
    merged = parse_signed_note(with_cosignatures(base.to_text(), lines))
    assert [s.name for s in merged.signatures] == [
        "example.com/log",
        "w1.example",
        "w2.example",
        "w3.example",
    ]
    assert verify_note(merged, [LOG.verifier()])
    report = check_witnesses(merged, [w.verifier() for w in (w1, w2, w3)])
    assert len(report.valid) == 3 and report.invalid == ()
    assert with_cosignatures(base.to_text(), []) == base.to_text()


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    signers=st.lists(st.integers(0, len(WITNESSES) - 1), max_size=8),
    known=st.sets(st.integers(0, len(WITNESSES) - 1)),
    quorum=st.integers(0, len(WITNESSES)),
)
def test_count_is_distinct_known_cosigners(
    signers: list[int], known: set[int], quorum: int
) -> None:
    note = sign_note(CP_TEXT, [LOG])
    for t, i in enumerate(signers):
        note = cosign_note(note, [WITNESSES[i]], t)
    report = check_witnesses(note, [WITNESSES[i].verifier() for i in sorted(known)])
    distinct = set(signers) & known
    assert len(report.valid) == len(distinct) and report.invalid == ()
    assert quorum_shortfall(report, quorum) == max(0, quorum - len(distinct))
    # Re-serving the body with the recorded lines keeps exactly those cosigners.
    served = parse_signed_note(
        with_cosignatures(sign_note(CP_TEXT, [LOG]).to_text(), [w.line for w in report.valid])
    )
    assert (
        check_witnesses(served, [WITNESSES[i].verifier() for i in sorted(known)]).cosigners
        == report.cosigners
    )
