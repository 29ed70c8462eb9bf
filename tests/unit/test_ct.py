"""RFC 6962 / static-ct-api encodings (monitor.core.ct and the RFC 6962 note key), proven on
real data (tests/data/ct): a Sunlight checkpoint, a production get-sth answer and its key,
production static-ct tiles whose leaf hashes must equal the log's own hash tiles."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.ct import (
    CtFormatError,
    CtLeaf,
    EntryType,
    SignedTreeHead,
    ct_leaf_hash,
    encode_merkle_tree_leaf,
    parse_merkle_tree_leaf,
    parse_sth_json,
    parse_tile_leaves,
    sth_note,
)
from monitor.core.errors import ParseError
from monitor.core.note import (
    NoteFormatError,
    NoteVerificationError,
    Rfc6962NoteVerifier,
    encode_digitally_signed,
    parse_signed_note,
    tree_head_signature_input,
    verify_checkpoint,
)
from monitor.service.sct_watch import MAX_STH_MS, sth_timestamp
from tests.conftest import REAL_DATA

CT = REAL_DATA / "ct"
ROME = CT / "sunlight-rome2026h1"
TILES = CT / "sunlight-navigli2025h2" / "tile"


def _rome() -> tuple[Rfc6962NoteVerifier, str]:
    info = json.loads((ROME / "log.v3.json").read_text())
    key = Rfc6962NoteVerifier.from_der(info["description"], base64.b64decode(info["key"]))
    return key, (ROME / "checkpoint").read_text()


def _get_sth() -> tuple[dict[str, Any], bytes]:
    data = json.loads((CT / "rfc6962-get-sth.json").read_text())
    return data["get_sth"], base64.b64decode(data["log_public_key_der_b64"])


# --- the note key -----------------------------------------------------------------------------


def test_sunlight_checkpoint_verifies_with_the_rfc6962_note_key() -> None:
    key, text = _rome()
    info = json.loads((ROME / "log.v3.json").read_text())
    # The log ID of log.v3.json is the key's; the hint is SHA-256(name \n 0x05 log ID)[:4].
    assert key.log_id == base64.b64decode(info["log_id"])
    assert key.key_hint == parse_signed_note(text).signatures[0].key_hint
    got = verify_checkpoint(text, [key], origin="rome2026h1.example.org")
    assert (got.checkpoint.size, got.checkpoint.root) == (
        info["final_tree_head"]["tree_size"],
        base64.b64decode(info["final_tree_head"]["sha256_root_hash"]),
    )


def test_every_flipped_bit_of_the_sunlight_signature_fails() -> None:
    key, text = _rome()
    note = parse_signed_note(text)
    sig = note.signatures[0]
    for i in range(len(sig.signature)):
        for bit in (0x01, 0x80):
            bad = bytearray(sig.signature)
            bad[i] ^= bit
            forged = note.to_text().replace(
                base64.b64encode(sig.key_hint + sig.signature).decode(),
                base64.b64encode(sig.key_hint + bytes(bad)).decode(),
            )
            with pytest.raises(NoteVerificationError):
                verify_checkpoint(forged, [key])


def test_a_changed_size_or_root_line_fails() -> None:
    key, text = _rome()
    for forged in (
        text.replace("\n300\n", "\n301\n"),
        text.replace("lCkHUpkmVBEms2r2T1K6Og69", "mCkHUpkmVBEms2r2T1K6Og69"),
    ):
        with pytest.raises(NoteVerificationError):
            verify_checkpoint(forged, [key])


def test_extension_lines_are_refused_as_they_are_not_signed() -> None:
    key, text = _rome()
    body, _, sigs = text.partition("\n\n")
    with pytest.raises(NoteVerificationError):
        verify_checkpoint(f"{body}\nextra line\n\n{sigs}", [key])


def test_production_get_sth_as_a_note_verifies() -> None:
    obj, der = _get_sth()
    sth = parse_sth_json(obj)
    assert sth.tree_size == 90785920
    key = Rfc6962NoteVerifier.from_der("ct.example", der)
    note = sth_note("ct.example", sth, key.name, key.key_hint)
    got = verify_checkpoint(note.to_text(), [key], origin="ct.example")
    assert (got.checkpoint.size, got.checkpoint.root) == (sth.tree_size, sth.root)
    assert key.verify_tree_head(sth.timestamp, sth.tree_size, sth.root, sth.signature)


@pytest.mark.parametrize("field", ["tree_size", "timestamp", "sha256_root_hash", "signature"])
def test_production_get_sth_any_flipped_bit_fails(field: str) -> None:
    obj, der = _get_sth()
    sth = parse_sth_json(obj)
    key = Rfc6962NoteVerifier.from_der("ct.example", der)
    if field == "tree_size":
        sth = SignedTreeHead(sth.tree_size ^ 1, sth.timestamp, sth.root, sth.signature)
    elif field == "timestamp":
        sth = SignedTreeHead(sth.tree_size, sth.timestamp ^ 1, sth.root, sth.signature)
    elif field == "sha256_root_hash":
        sth = SignedTreeHead(
            sth.tree_size, sth.timestamp, bytes([sth.root[0] ^ 1]) + sth.root[1:], sth.signature
        )
    else:
        sth = SignedTreeHead(
            sth.tree_size,
            sth.timestamp,
            sth.root,
            sth.signature[:-1] + bytes([sth.signature[-1] ^ 1]),
        )
    note = sth_note("ct.example", sth, key.name, key.key_hint)
    with pytest.raises(NoteVerificationError):
        verify_checkpoint(note.to_text(), [key])


def test_tree_head_signature_encoding_matches_a_known_signature() -> None:
    """Our TreeHeadSignature and DigitallySigned encodings, built from scratch, verify a
    signature a production log made (so they are RFC 6962's, not ours)."""
    obj, _ = _get_sth()
    sth = parse_sth_json(obj)
    message = tree_head_signature_input(sth.timestamp, sth.tree_size, sth.root)
    assert message == (
        b"\x00\x01" + sth.timestamp.to_bytes(8, "big") + sth.tree_size.to_bytes(8, "big") + sth.root
    )
    assert encode_digitally_signed(sth.signature[4:]) == sth.signature


def test_other_key_types_are_refused() -> None:
    from monitor.core.note import NoteKeyError

    with pytest.raises(NoteKeyError):
        Rfc6962NoteVerifier("x", ec.generate_private_key(ec.SECP384R1()).public_key())


def _sth_note_at(
    private: ec.EllipticCurvePrivateKey, origin: str, timestamp: int, size: int = 4
) -> tuple[Rfc6962NoteVerifier, str]:
    """A checkpoint genuinely signed by `private` as an RFC 6962 STH note at any uint64
    `timestamp`: the TreeHeadSignature is built by hand, since the project's own encoder refuses
    timestamps past 2^63 - 1."""
    key = Rfc6962NoteVerifier(origin, private.public_key())
    root = hashlib.sha256(b"root").digest()
    message = b"\x00\x01" + timestamp.to_bytes(8, "big") + size.to_bytes(8, "big") + root
    signed = encode_digitally_signed(private.sign(message, ec.ECDSA(hashes.SHA256())))
    sig = base64.b64encode(key.key_hint + timestamp.to_bytes(8, "big") + signed).decode()
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return key, f"{body}\n\u2014 {origin} {sig}\n"


_STH_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("timestamp", "verifies", "stored"),
    [
        (0, True, 0),
        (1_700_000_000_000, True, 1_700_000_000_000),
        (MAX_STH_MS, True, MAX_STH_MS),  # 9999-12-31T23:59:59.999Z
        (MAX_STH_MS + 1, False, MAX_STH_MS),  # year 10000: no date can show it
        ((1 << 63) - 1, False, MAX_STH_MS),
        (1 << 63, False, MAX_STH_MS),  # past SQLite's integers
        ((1 << 64) - 1, False, MAX_STH_MS),
    ],
)
def test_sth_note_timestamps_past_year_9999_fail_verification(
    timestamp: int, verifies: bool, stored: int
) -> None:
    """Finding 11: a log's genuine signature over an STH timestamp no date or SQLite integer
    can hold is a bad note (verification fails), never a verified checkpoint that makes every
    later judgement raise; and `sth_timestamp`, which reads such notes, clamps the value."""
    key, text = _sth_note_at(_STH_KEY, "ct.example", timestamp)
    assert key.verify(*_message_and_signature(text)) is verifies
    if verifies:
        assert verify_checkpoint(text, [key], origin="ct.example").checkpoint.size == 4
    else:
        with pytest.raises(NoteVerificationError):
            verify_checkpoint(text, [key], origin="ct.example")
    # Read from a line the log's key signed only: a timestamp that does not verify is none.
    assert sth_timestamp(text, key) == (stored if verifies else None)
    assert sth_timestamp(text, Rfc6962NoteVerifier("ct.example", _OTHER_KEY.public_key())) is None


_OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def test_an_sth_timestamp_is_read_from_the_logs_own_signed_line_only() -> None:
    """Note verification ignores lines under names it does not know, so whoever serves a note
    (a mirror, a peer, a CDN) can add one with the log's key hint and any timestamp before the
    log's own: it must not be read as the log's (it would date the log's tree when the log did
    not: a false sct_not_incorporated, or promises never judged)."""
    key, text = _sth_note_at(_STH_KEY, "ct.example", 1_700_000_000_000)
    body, own = text.split("\n\n")
    for name, stamp in (("mirror.example", 0), ("mirror.example", 1_800_000_000_000),
                        ("ct.example", 1_800_000_000_000)):  # fmt: skip
        fake = key.key_hint + stamp.to_bytes(8, "big") + b"\x04\x03\x00\x02\x00\x00"
        forged = f"\u2014 {name} {base64.b64encode(fake).decode()}\n"
        noted = f"{body}\n\n{forged}{own}"
        if name != "ct.example":  # a foreign line is ignored by verification, as C2SP says
            assert verify_checkpoint(noted, [key], origin="ct.example").checkpoint.size == 4
        assert sth_timestamp(noted, key) == 1_700_000_000_000
        assert sth_timestamp(f"{body}\n\n{forged}", key) is None


def _message_and_signature(text: str) -> tuple[bytes, bytes]:
    note = parse_signed_note(text)
    return note.text.encode(), note.signatures[0].signature


# --- get-sth parsing --------------------------------------------------------------------------


def _sth(**changes: object) -> dict[str, object]:
    obj, _ = _get_sth()
    out = dict(obj)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize(
    "changes",
    [
        {"tree_size": None},
        {"tree_size": -1},
        {"tree_size": 1 << 63},
        {"tree_size": True},
        {"tree_size": "5"},
        {"timestamp": 1.5},
        {"timestamp": 1 << 64},
        {"sha256_root_hash": "AAAA"},
        {"sha256_root_hash": "not base64!"},
        {"sha256_root_hash": 5},
        {"tree_head_signature": None},
        {"tree_head_signature": ""},
        {"tree_head_signature": base64.b64encode(b"\x04\x03\x00\x05abc").decode()},
        {"tree_head_signature": base64.b64encode(b"\x02\x01\x00\x01a").decode()},
        {"tree_head_signature": base64.b64encode(b"\x04\x03\x00\x00").decode()},
        {"tree_head_signature": base64.b64encode(b"\x04\x03" + b"\xff" * 2000).decode()},
    ],
)
def test_get_sth_table_of_malformed_answers(changes: dict[str, object]) -> None:
    with pytest.raises(CtFormatError):
        parse_sth_json(_sth(**changes))


def test_get_sth_must_be_an_object() -> None:
    for value in ([], "x", None, 5):
        with pytest.raises(CtFormatError):
            parse_sth_json(value)


# --- MerkleTreeLeaf ---------------------------------------------------------------------------

_CERT = b"\x30\x03\x02\x01\x05"  # a tiny DER SEQUENCE standing in for a certificate
_X509 = CtLeaf(1700000000000, EntryType.X509, _CERT, None, b"")
_PRE = CtLeaf(1700000000001, EntryType.PRECERT, _CERT, b"\x11" * 32, b"\x00\x01\x02")


def test_merkle_tree_leaf_round_trip() -> None:
    for leaf in (_X509, _PRE):
        raw = encode_merkle_tree_leaf(leaf)
        assert parse_merkle_tree_leaf(raw) == leaf


def _x509_bytes() -> bytes:
    return encode_merkle_tree_leaf(_X509)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the version"),
        (b"\x01" + _x509_bytes()[1:], "version v1"),
        (b"\x00\x01" + _x509_bytes()[2:], "timestamped_entry"),
        (_x509_bytes()[:10], "the entry type"),
        (_x509_bytes()[:10] + b"\x00\x02" + _x509_bytes()[12:], "x509_entry(0) or precert_entry"),
        (_x509_bytes()[:-1], "the extensions"),
        (_x509_bytes() + b"\x00", "to end at offset"),
        (_x509_bytes()[:12] + b"\x00\x00\x00\x00\x00\x00", "of 1 to 16777215 bytes"),
        (
            _x509_bytes()[:12] + b"\x00\x00\x05" + b"\x31\x03\x02\x01\x05\x00\x00",
            "DER SEQUENCE",
        ),
        (
            _x509_bytes()[:12] + b"\x00\x00\x05" + b"\x30\x04\x02\x01\x05\x00\x00",
            "one DER value",
        ),
        (_x509_bytes()[:12] + b"\xff\xff\xff" + _CERT, "bytes of the certificate"),
        (b"\x00\x00" + b"\xff" * 8 + b"\x00\x00", "2^63 - 1"),
        (encode_merkle_tree_leaf(_PRE)[:20], "the issuer key hash"),
    ],
)
def test_merkle_tree_leaf_table_of_malformed_leaves(data: bytes, message: str) -> None:
    with pytest.raises(CtFormatError, match=re.escape(message)):
        parse_merkle_tree_leaf(data)


def test_ct_format_error_is_a_parse_error() -> None:
    assert issubclass(CtFormatError, ParseError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_ct_format_error(data: bytes) -> None:
    try:
        leaf = parse_merkle_tree_leaf(data)
    except CtFormatError:
        return
    assert encode_merkle_tree_leaf(leaf) == data


def _real_leaves() -> list[bytes]:
    return [
        t.merkle_tree_leaf
        for t in parse_tile_leaves((TILES / "data" / "003.p" / "10").read_bytes())
    ]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_real_leaves_only_raise_ct_format_error(data: st.DataObject) -> None:
    leaves = _real_leaves()
    raw = bytearray(data.draw(st.sampled_from(leaves)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[at:]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    with contextlib.suppress(CtFormatError):
        parse_merkle_tree_leaf(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_data_tiles_only_raise_ct_format_error(data: bytes) -> None:
    with contextlib.suppress(CtFormatError):
        parse_tile_leaves(data)


# --- static-ct tiles --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "hashes", "first"), [("000", "000", 0), ("003.p/10", "003.p/10", 768)]
)
def test_real_tile_leaves_hash_to_the_logs_level0_tile(data: str, hashes: str, first: int) -> None:
    leaves = parse_tile_leaves((TILES / "data" / data).read_bytes())
    raw = (TILES / "0" / hashes).read_bytes()
    level0 = [raw[i : i + 32] for i in range(0, len(raw), 32)]
    assert len(leaves) == len(level0) > 0
    for i, (tile_leaf, want) in enumerate(zip(leaves, level0, strict=True)):
        assert ct_leaf_hash(tile_leaf.merkle_tree_leaf) == want
        assert hashlib.sha256(b"\x00" + tile_leaf.merkle_tree_leaf).digest() == want
        leaf = parse_merkle_tree_leaf(tile_leaf.merkle_tree_leaf)
        assert leaf == tile_leaf.leaf
        # static-ct-api's leaf_index extension (type 0, 5-byte index) names the position.
        ext = leaf.extensions
        assert ext[:3] == b"\x00\x00\x05" and int.from_bytes(ext[3:8], "big") == first + i
        if leaf.entry_type is EntryType.PRECERT:
            assert tile_leaf.pre_certificate is not None and leaf.issuer_key_hash is not None


def test_a_leaf_that_is_not_der_is_framed_and_refused_alone() -> None:
    """A tile is read by its TLS framing: a certificate that is not DER is refused when that
    entry's MerkleTreeLeaf is read (its own unreadable_entry), and a precertificate that is
    not DER is read as none; the other entries are read."""
    bad = CtLeaf(1700000000002, EntryType.X509, b"\x30\x81\x03\x02\x01\x05", None, b"")

    def tile_entry(leaf: CtLeaf, pre: bytes | None = None) -> bytes:
        more = b"" if pre is None else len(pre).to_bytes(3, "big") + pre
        return encode_merkle_tree_leaf(leaf)[2:] + more + b"\x00\x00"

    tile = tile_entry(_X509) + tile_entry(bad) + tile_entry(_PRE, b"\x04\x01\x00")
    leaves = parse_tile_leaves(tile)
    assert [t.merkle_tree_leaf for t in leaves] == [
        encode_merkle_tree_leaf(leaf) for leaf in (_X509, bad, _PRE)
    ]
    assert parse_merkle_tree_leaf(leaves[0].merkle_tree_leaf) == _X509
    with pytest.raises(CtFormatError, match="non-minimal DER length"):
        parse_merkle_tree_leaf(leaves[1].merkle_tree_leaf)
    assert leaves[2].pre_certificate is None


def test_a_truncated_real_tile_is_refused() -> None:
    data = (TILES / "data" / "003.p" / "10").read_bytes()
    with pytest.raises(CtFormatError):
        parse_tile_leaves(data[:-1])


def test_vendored_files_exist(real_data: Path) -> None:
    for p in (
        "ct/LICENSE.sunlight",
        "ct/rfc6962-get-sth.json",
        "ct/sunlight-rome2026h1/checkpoint",
    ):
        assert (real_data / p).is_file()


def test_note_format_error_from_sth_note_is_typed() -> None:
    obj, _ = _get_sth()
    sth = parse_sth_json(obj)
    with pytest.raises(CtFormatError):
        sth_note("bad origin\n", sth, "name", b"\x00" * 4)
    with pytest.raises(CtFormatError):
        sth_note("o", sth, "bad name", b"\x00" * 4)
    assert NoteFormatError  # the wrapped family
