"""Fuzzing entry and certificate parsing with mutations of real data.

The seeds are the real Rekor entry bodies and certificates in tests/data (Sigstore
bundles' canonicalized bodies, the certificates in their verification material and inside the
bodies, a Rekor v1 API entry). Hypothesis mutates them (byte flips, truncations, insertions,
deletions, splices with another seed) and checks the parsing contract a scan relies on:

* ``parse_entry`` returns an ``Entry`` or raises ``EntryParseError``, nothing else; an entry it
  returns is consistent (signers in order, skipped signatures apart from them);
* ``parse_certificate`` / ``parse_verifier`` return or raise ``CertificateParseError``;
* a mutated certificate placed before a real one in a multi-signature entry never hides the real
  one: it is read at its own position.

`make test` runs a few thousand cases; the ``slow`` variant runs over 50,000.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.certs import CertificateParseError, parse_certificate, parse_verifier
from monitor.core.entries import Entry, EntryParseError, parse_entry
from tests.conftest import REAL_DATA, real_files
from tests.unit.certgen import dsse_v001, dsse_v002, encode, hashedrekord_v001, v2_verifier

FAST_EXAMPLES = 750
"""Per property in `make test`: the four properties make 3,000 cases in all."""
SLOW_EXAMPLES = 15_000
"""Per property in the slow run: the four make 60,000 cases."""


@functools.cache
def _seeds() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(entry bodies, DER certificates) found in the vendored real-world data."""
    bodies: dict[bytes, None] = {}
    certs: dict[bytes, None] = {}
    for path in real_files("**/*"):
        if path.suffix not in {".json", ".sigstore"}:
            continue
        if path.relative_to(REAL_DATA).parts[0] == "trust":
            continue  # trusted roots: their rawBytes are public keys too, and no entry bodies
        try:
            doc = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        _collect(doc, bodies, certs)
    for body in list(bodies):
        _certificates_in_body(body, certs)
    return tuple(bodies), tuple(certs)


def _collect(node: object, bodies: dict[bytes, None], certs: dict[bytes, None]) -> None:
    """Walk a fixture: canonicalized bodies, v1 API `body` fields, and `rawBytes` of certs."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"canonicalizedBody", "body"} and isinstance(value, str):
                raw = _b64(value)
                if raw is not None and raw[:1] == b"{":
                    bodies[raw] = None
            elif key == "rawBytes" and isinstance(value, str):
                raw = _b64(value)
                if raw is not None and raw[:1] == b"\x30":
                    certs[raw] = None
            else:
                _collect(value, bodies, certs)
    elif isinstance(node, list):
        for item in node:
            _collect(item, bodies, certs)


def _certificates_in_body(body: bytes, certs: dict[bytes, None]) -> None:
    """Certificates embedded in a body: base64 DER (v2) or base64 PEM (v1)."""

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str) and len(node) > 200:
            raw = _b64(node)
            if raw is None:
                return
            if raw.startswith(b"-----BEGIN CERTIFICATE-----"):
                inner = b"".join(raw.splitlines()[1:-1])
                raw = _b64(inner.decode("ascii", "replace")) or b""
            if raw[:1] == b"\x30":
                certs[raw] = None

    walk(json.loads(body))


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _pem(der: bytes) -> bytes:
    return (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    )


# --- mutations --------------------------------------------------------------------------------


# DER string tags (UTF8String, PrintableString, T61String, IA5String, VisibleString, ...) and
# what "retag" turns them into: other string types, and types a name must never hold (BIT STRING,
# INTEGER, BOOLEAN, NULL), which is what tripped cryptography's decoders into a TypeError.
_STRING_TAGS = frozenset({0x0C, 0x12, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E})
_RETAGS = (0x03, 0x02, 0x01, 0x05, 0x0C, 0x12, 0x13, 0x14, 0x16, 0x1C, 0x1E)
# Retagging is weighted up: it reaches the decoders behind the DER layer, where random bytes
# rarely get.
_OPS = ("flip", "truncate", "insert", "delete", "splice", "byte", "retag", "retag", "retag")


@st.composite
def _mutated(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    """A seed with one to four mutations: flips, truncations, insertions, deletions, splices,
    and retagging a DER string (a mutation aimed at the name and extension decoders)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(_OPS))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "retag":
            strings = [
                i
                for i in range(len(data) - 2)
                if data[i] in _STRING_TAGS and 0 < data[i + 1] < 0x80
                and i + 2 + data[i + 1] <= len(data)
            ]  # fmt: skip
            # Half the time, the value of a naming attribute (after OID 2.5.4.x) if any.
            names = [i for i in strings if i >= 5 and data[i - 5 : i - 1] == b"\x06\x03\x55\x04"]
            prefer_names: bool = draw(st.booleans())
            if names and prefer_names:
                strings = names
            if strings:
                i = draw(st.sampled_from(strings))
                data[i] = draw(st.sampled_from(_RETAGS))
                if data[i] == 0x03:  # a well-formed BIT STRING: its first byte counts unused bits
                    data[i + 2] = draw(st.integers(0, 7))
        elif op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[at] = draw(st.sampled_from([0x00, 0x03, 0x0C, 0x30, 0x7F, 0x80, 0x81, 0xFF]))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(0, max(len(other) - 1, 0)))
            piece = other[start : start + draw(st.integers(1, 256))]
            data[at : at + draw(st.integers(0, 256))] = piece
    return bytes(data)


def _check_entry(entry: Entry) -> None:
    assert entry.signers, "an entry is returned only with a readable signer"
    positions = [s.position for s in entry.signers]
    assert positions == sorted(set(positions))
    skipped = [s.position for s in entry.skipped]
    assert not set(skipped) & set(positions)
    assert entry.skipped_count >= len(entry.skipped)


def _entry_or_entry_error(body: bytes) -> Entry | None:
    """The invariant: an Entry, or EntryParseError (None); anything else fails the test."""
    try:
        entry = parse_entry(body)
    except EntryParseError:
        return None
    _check_entry(entry)
    return entry


def _certificate_or_parse_error(der: bytes) -> None:
    for parse in (parse_certificate, parse_verifier):
        with contextlib.suppress(CertificateParseError):
            parse(der)


def _quiet(test: Callable[..., None]) -> Callable[..., None]:
    # Real fixtures include a non-standard country name, which cryptography warns about.
    marked: Callable[..., None] = pytest.mark.filterwarnings("ignore::UserWarning")(test)
    return marked


def _properties(examples: int) -> list[Callable[..., None]]:
    """The four properties, each run `examples` times."""
    bodies, certs = _seeds()
    run = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    @run
    @given(_mutated(bodies))
    def mutated_body(body: bytes) -> None:
        _entry_or_entry_error(body)

    @run
    @given(_mutated(certs))
    def mutated_certificate(der: bytes) -> None:
        _certificate_or_parse_error(der)

    @run
    @given(_mutated(certs), st.sampled_from(certs))
    def mutated_decoy_before_a_real_signer(decoy: bytes, real: bytes) -> None:
        for body in (
            dsse_v001([_pem(decoy), _pem(real)]),
            dsse_v001([decoy, real]),
            dsse_v002([v2_verifier(cert=decoy), v2_verifier(cert=real)]),
        ):
            entry = _entry_or_entry_error(encode(body))
            assert entry is not None, "a decoy hid the real signer"
            last = entry.signers[-1]
            assert last.position == 1 and last.certificate is not None
            assert last.certificate.der == real

    @run
    @given(_mutated(certs))
    def mutated_certificate_alone_in_an_entry(der: bytes) -> None:
        _entry_or_entry_error(encode(hashedrekord_v001(_pem(der))))
        _entry_or_entry_error(encode(hashedrekord_v001(der)))

    return [mutated_body, mutated_certificate, mutated_decoy_before_a_real_signer,
            mutated_certificate_alone_in_an_entry]  # fmt: skip


_NAMES = ["body", "certificate", "decoy-before-real-signer", "certificate-alone"]


def test_seeds_are_real_and_varied(real_data: Path) -> None:
    bodies, certs = _seeds()
    assert len(bodies) >= 10 and len(certs) >= 10
    kinds = {(json.loads(b)["kind"], json.loads(b)["apiVersion"]) for b in bodies}
    assert {("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2"), ("dsse", "0.0.1")} <= kinds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for cert in certs:
            parse_certificate(cert)  # every seed parses before it is mutated


@_quiet
@pytest.mark.parametrize("index", range(4), ids=_NAMES)
def test_mutations_raise_only_the_project_errors(real_data: Path, index: int) -> None:
    _properties(FAST_EXAMPLES)[index]()


@pytest.mark.slow
@_quiet
@pytest.mark.parametrize("index", range(4), ids=_NAMES)
def test_mutations_raise_only_the_project_errors_at_length(real_data: Path, index: int) -> None:
    _properties(SLOW_EXAMPLES)[index]()
