"""C2SP tlog-tiles entry bundles, read without copying: where each entry lies in the bytes.

A bundle is its entries in order, each a big-endian uint16 length then that many bytes. The
scanner's backfill workers read bundles straight from shared memory (`monitor.service.
chunk_slots`), so this works on any buffer and returns positions, not copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core.errors import ParseError

__all__ = ["BundleError", "BundlePart", "bundle_spans"]


class BundleError(ParseError):
    """An entry bundle is not exactly the entries it should hold."""


@dataclass(frozen=True, slots=True)
class BundlePart:
    """One fetched bundle of a chunk laid end to end with the others: `size` bytes holding
    `entries` entries, of which the chunk takes `take` from the `skip`-th on; `where` names it
    in errors (the URL it came from)."""

    size: int
    entries: int
    skip: int
    take: int
    where: str


def bundle_spans(
    data: bytes | memoryview, expected: int, where: str, base: int = 0, end: int | None = None
) -> list[tuple[int, int]]:
    """The (start, end) of each entry of the bundle in `data[base:end]`, as offsets into `data`.

    Raises BundleError unless it holds exactly `expected` entries and nothing else.
    """
    stop = len(data) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = base
    while pos < stop:
        if len(spans) == expected:
            raise BundleError(
                f"{where}: expected {expected} entries, got {stop - pos} more bytes after them"
            )
        if pos + 2 > stop:
            raise BundleError(
                f"{where}: entry {len(spans)} has a truncated length prefix at byte {pos - base}"
            )
        first = pos + 2
        last = first + (data[pos] << 8 | data[pos + 1])
        if last > stop:
            raise BundleError(
                f"{where}: entry {len(spans)} declares {last - first} bytes, only "
                f"{stop - first} remain"
            )
        spans.append((first, last))
        pos = last
    if len(spans) != expected:
        raise BundleError(f"{where}: expected {expected} entries, got {len(spans)}")
    return spans
