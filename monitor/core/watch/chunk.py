"""The pure CPU work of one scanned chunk, as a worker process runs it during a long backfill
(`monitor.service.scanner`): find the entries in the chunk's bytes, hash each, fold the leaves
into perfect subtrees, and pre-filter them. Parsing and matching the few entries the pre-filter
passes stays with the caller, which holds the trust anchors.

Kept light to import (no HTTP, no database): each worker process imports only this.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

from monitor.core.bundle import BundlePart, bundle_spans
from monitor.core.merkle import leaf_hashes, perfect_subtrees
from monitor.core.watch.prefilter import PreFilter

__all__ = ["Examined", "examine_chunk", "examine_parts", "packed_spans", "start_worker"]

Examined = tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]
"""(the chunk's perfect subtrees, (position, body) of each entry the pre-filter passes)."""

Layout = bytes | Sequence[BundlePart]
"""How a chunk's entries lie in its bytes: the lengths of bodies laid end to end (an
`array('Q')` as bytes), or the bundles laid end to end."""

_FILTER: PreFilter | None = None


def start_worker(prefilter: PreFilter) -> None:
    """A worker process's initializer: the pre-filter every chunk it examines is run through."""
    global _FILTER  # noqa: PLW0603 - one per worker process, set once at its start
    _FILTER = prefilter


def packed_spans(data: bytes | memoryview, layout: Layout) -> list[tuple[int, int]]:
    """The (start, end) in `data` of each entry of the chunk `layout` describes; raises
    BundleError when a bundle is not exactly its entries, ValueError when the layout overruns
    `data`."""
    sizes = array("Q")
    if isinstance(layout, bytes):
        sizes.frombytes(layout)
    else:
        sizes.extend(part.size for part in layout)
    need = sum(sizes)
    if need > len(data):
        raise ValueError(f"the chunk's layout needs {need} bytes, it has {len(data)}")
    spans: list[tuple[int, int]] = []
    pos = 0
    if isinstance(layout, bytes):
        for size in sizes:
            spans.append((pos, pos + size))
            pos += size
        return spans
    for part in layout:
        found = bundle_spans(data, part.entries, part.where, pos, pos + part.size)
        spans.extend(found[part.skip : part.skip + part.take])
        pos += part.size
    return spans


def examine_chunk(
    begin: int,
    data: bytes | memoryview,
    layout: Layout,
    prefilter: PreFilter | None = None,
) -> Examined:
    """The subtrees of entries [begin, ...) held in `data` as `layout` says, and the entries
    `prefilter` passes (default: the worker's, `start_worker`), copied out of `data`."""
    use = prefilter if prefilter is not None else _FILTER
    if use is None:
        raise RuntimeError("examine_chunk: no pre-filter (start_worker was not run)")
    spans = packed_spans(data, layout)
    view = memoryview(data)
    hashes = leaf_hashes(view[first:last] for first, last in spans)
    passed = use.select_spans(view, spans)
    bodies = [(i, bytes(view[spans[i][0] : spans[i][1]])) for i in passed]
    return perfect_subtrees(begin, hashes), bodies


def examine_parts(
    begin: int, parts: Sequence[bytes], layout: Layout, prefilter: PreFilter
) -> Examined:
    """`examine_chunk` of the chunk whose bytes are `parts` laid end to end, without laying
    them end to end when they are bundles (each bundle is joined from its pieces and examined
    alone: a chunk too large for shared memory is not copied whole once more)."""
    if isinstance(layout, bytes):
        return examine_chunk(begin, b"".join(parts), layout, prefilter)
    subtrees: list[tuple[int, bytes]] = []
    passed: list[tuple[int, bytes]] = []
    offset = 0
    for data, part in zip(_bundles(parts, layout), layout, strict=True):
        got, found = examine_chunk(begin + offset, data, [part], prefilter)
        subtrees.extend(got)
        passed.extend((offset + i, body) for i, body in found)
        offset += part.take
    return subtrees, passed


def _bundles(parts: Sequence[bytes], layout: Sequence[BundlePart]) -> Iterator[bytes]:
    """Each bundle's bytes, from the pieces of the bundles laid end to end (as fetched: no
    piece holds bytes of two bundles); ValueError when they do not fit `layout` exactly."""
    pieces = iter(parts)
    for part in layout:
        got: list[bytes] = []
        held = 0
        while held < part.size:
            piece = next(pieces, None)
            if piece is None or held + len(piece) > part.size:
                raise ValueError(f"{part.where}: the pieces fetched do not fit the bundle's size")
            got.append(piece)
            held += len(piece)
        yield b"".join(got)
    if next(pieces, None) is not None:
        raise ValueError("examine_parts: more pieces fetched than the chunk's bundles hold")
