"""What a backfill worker computes from a chunk's bytes (`monitor.core.watch.chunk`): the same
subtrees and the same passed entries whether the chunk comes as bundles laid end to end (read in
place, trimmed at both ends) or as bodies, and a bundle that is not exactly its entries refused."""

from __future__ import annotations

import subprocess
import sys
from array import array

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.bundle import BundleError, BundlePart
from monitor.core.merkle import CompactRange, leaf_hashes, perfect_subtrees
from monitor.core.watch.chunk import examine_chunk, examine_parts, packed_spans
from monitor.core.watch.prefilter import PreFilter, RuleFilter, fold_texts
from monitor.sandbox.storage import encode_bundle
from monitor.service.scanner import _Window
from tests.unit import certgen as g


def entry(email: str) -> bytes:
    cert = g.make_certificate(sans=[x509.RFC822Name(email)])
    return g.encode(g.hashedrekord_v001(g.cert_pem(cert)))


# Entries of a watched and of another address; the rule's pre-filter passes the watched only.
WATCHED, OTHER = entry("security@example.com"), entry("bystander@example.org")
NEEDLE = PreFilter([RuleFilter(fold_texts(["security@example.com"]))])
# (a body with a backslash passes whatever it holds: a JSON escape may hide a byte)
MARKED = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\\", b"/")), st.just(WATCHED), st.just(OTHER)
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(MARKED, min_size=1, max_size=6), min_size=1, max_size=4),
    st.data(),
    st.integers(0, 1000),
)
def test_bundles_in_place_give_what_the_bodies_give(
    groups: list[list[bytes]], data: st.DataObject, begin: int
) -> None:
    parts: list[BundlePart] = []
    taken: list[bytes] = []
    pieces: list[bytes] = []  # each bundle as it may arrive over HTTP, in pieces
    for n, group in enumerate(groups):
        # Only the first bundle may start late and only the last may end early.
        skip = data.draw(st.integers(0, len(group) - 1)) if n == 0 else 0
        end = data.draw(st.integers(skip + 1, len(group))) if n == len(groups) - 1 else len(group)
        bundle = encode_bundle(group)
        parts.append(BundlePart(len(bundle), len(group), skip, end - skip, f"b{n}"))
        taken.extend(group[skip:end])
        cuts = sorted(data.draw(st.sets(st.integers(1, len(bundle) - 1), max_size=3)))
        pieces.extend(bundle[a:b] for a, b in zip([0, *cuts], [*cuts, len(bundle)], strict=True))
    packed = memoryview(bytearray(b"".join(encode_bundle(g) for g in groups) + b"stale slot bytes"))
    subtrees, passed = examine_chunk(begin, packed, parts, NEEDLE)
    assert subtrees == perfect_subtrees(begin, leaf_hashes(taken))
    lengths = array("Q", map(len, taken)).tobytes()
    assert (subtrees, passed) == examine_chunk(begin, b"".join(taken), lengths, NEEDLE)
    assert passed == [(i, b) for i, b in enumerate(taken) if b == WATCHED]
    # A chunk examined where it was fetched (too large for shared memory, bundle by bundle):
    # the same entries passed, and subtrees folding into the same tree.
    apart, passed_apart = examine_parts(begin, pieces, parts, NEEDLE)
    assert passed_apart == passed
    before = CompactRange()
    before.extend(leaf_hashes([b"x"] * begin))
    roots = []
    for each in (subtrees, apart):
        cr = before.copy()
        cr.extend_subtrees(each)
        roots.append(cr.root())
    assert roots[0] == roots[1]


@pytest.mark.parametrize(
    ("data", "part", "message"),
    [
        (encode_bundle([b"a", b"b"]), BundlePart(6, 3, 0, 3, "u"), "expected 3 entries, got 2"),
        (encode_bundle([b"a"]) + b"\x00", BundlePart(4, 1, 0, 1, "u"), "got 1 more bytes"),
        (encode_bundle([b"a"]) + b"\x00\x05ab", BundlePart(7, 2, 0, 2, "u"), "declares 5 bytes"),
    ],
)
def test_a_bundle_not_exactly_its_entries_is_refused(
    data: bytes, part: BundlePart, message: str
) -> None:
    with pytest.raises(BundleError, match=f"^u: .*{message}"):
        packed_spans(data, [part])


def test_pieces_that_do_not_fit_the_bundles_are_refused() -> None:
    bundle = encode_bundle([b"a", b"b"])
    part = BundlePart(len(bundle), 2, 0, 2, "u")
    for pieces in ([bundle[:3]], [bundle[:3], bundle[3:] + b"x"]):
        with pytest.raises(ValueError, match=r"^u: the pieces fetched do not fit"):
            examine_parts(0, pieces, [part], NEEDLE)
    with pytest.raises(ValueError, match="more pieces fetched than"):
        examine_parts(0, [bundle, b"x"], [part], NEEDLE)


def test_a_layout_larger_than_the_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 9 bytes"):
        packed_spans(b"12345678", array("Q", [4, 5]).tobytes())
    with pytest.raises(ValueError, match="needs 9 bytes"):
        packed_spans(b"12345678", [BundlePart(9, 1, 0, 1, "u")])


async def test_the_backfill_window_holds_huge_chunks_one_at_a_time() -> None:
    """`_Window` (what the backfill's feeder reserves before each fetch): chunks of ordinary
    size up to its count, but once a chunk past its byte budget arrived, a further fetch only
    when none is in flight (a log of huge entries is read as one process reads it)."""
    ordinary = _Window(count=5, max_bytes=64)
    for _ in range(5):
        await ordinary.reserve()
        ordinary.hold(2)
    assert not ordinary.take(), "no more than `count`"
    await ordinary.release(2)
    assert ordinary.take()

    huge = _Window(count=5, max_bytes=64)
    await huge.reserve()
    assert huge.take(), "a second fetch before any size is known"
    huge.hold(100)
    assert not huge.take(), "a huge chunk held: no further fetch"
    huge.hold(100)
    await huge.release(100)
    assert not huge.take(), "one still held"
    await huge.release(100)
    assert huge.take(), "none in flight: the next one"


def test_a_worker_imports_no_more_than_it_runs() -> None:
    """What a scan worker process imports (`chunk_slots` and the pre-filter) leaves out the
    rules' parsers and cryptography's x509: each worker starts while a backfill waits for it."""
    code = (
        "import sys, monitor.service.chunk_slots\n"
        "print(sorted(m for m in ('cryptography.x509', 'monitor.core.watch.match', 'aiohttp')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
