"""The pure CPU work of one scanned chunk, as a worker process runs it during a long backfill
(`monitor.service.scanner`): hash each entry, fold the leaves into perfect subtrees, and
pre-filter the bodies. Parsing and matching the few entries the pre-filter passes stays with
the caller, which holds the trust anchors.

Kept light to import (no HTTP, no database): each worker process imports only this.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.core.merkle import leaf_hashes, perfect_subtrees
from monitor.core.watch.prefilter import PreFilter

_FILTER: PreFilter | None = None


def start_worker(prefilter: PreFilter) -> None:
    """A worker process's initializer: the pre-filter every chunk it examines is run through."""
    global _FILTER  # noqa: PLW0603 - one per worker process, set once at its start
    _FILTER = prefilter


def examine_chunk(
    begin: int, bodies: Sequence[bytes], prefilter: PreFilter | None = None
) -> tuple[list[tuple[int, bytes]], list[int]]:
    """(the perfect subtrees of the entries [begin, begin + len(bodies)), the positions in
    `bodies` that `prefilter` passes); `prefilter` defaults to the worker's (`start_worker`)."""
    use = prefilter if prefilter is not None else _FILTER
    if use is None:
        raise RuntimeError("examine_chunk: no pre-filter (start_worker was not run)")
    return perfect_subtrees(begin, leaf_hashes(bodies)), use.select(bodies)
