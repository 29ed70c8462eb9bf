"""A client for C2SP tlog-tiles logs (Rekor v2 and other tiled logs), and the tile arithmetic.

A tiled log serves no proofs: it serves its Merkle tree as *tiles* and clients compute proofs
(https://c2sp.org/tlog-tiles). Resources, under the log's prefix:

    checkpoint                       the signed note (text)
    tile/<L>/<N>[.p/<W>]             hash tile: W (1-255, or 256 when full) consecutive hashes
    tile/entries/<N>[.p/<W>]         entry bundle: W uint16-length-prefixed entries

``<N>`` is written as zero-padded 3-digit groups, all but the last prefixed with "x":
1234067 -> ``x001/x234/067``.

Tile arithmetic (``TILE_HEIGHT`` = 8, ``TILE_WIDTH`` = 256). Hash ``i`` of tile ``N`` at tile
level ``L`` is the tree node at level ``8*L``, index ``256*N + i`` (a perfect subtree of
``256**L`` leaves). A tree node at level ``l``, index ``i`` (``merkle`` coordinates) is found in
tile level ``T = l // 8``: with ``h = l % 8`` it is the root of the ``2**h`` tile-level hashes
(tree level ``8*T``) with indexes ``[i << h, (i + 1) << h)``. Because ``2**h`` divides 256,
those hashes sit in one tile, ``N = (i << h) >> 8``, at positions ``(i << h) & 255`` onwards;
hashing them up ``h`` times gives the node (``h == 0``: it is one hash of the tile).

In a tree of ``size`` leaves, tile level ``L`` has ``size >> 8L`` hashes: tiles below
``(size >> 8L) >> 8`` are full, and the next one is partial with width ``(size >> 8L) & 255``
(if not 0). Every node a proof for ``size`` needs is a complete subtree of that tree, so it is
covered by the tiles of ``size`` (full or partial): proofs fetch only the tiles of the checkpoint
that justifies them, as the spec requires.

Proofs: ``consistency_proof`` / ``inclusion_proof`` / ``root`` first find which nodes the pure
``monitor.core.merkle`` function asks for (by running it over a recording ``NodeFn``; its calls do
not depend on hash values), fetch the covering tiles concurrently (bounded), then run it again over
the tiles held in memory (``TileNodes``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Final

import aiohttp

from monitor.core.bundle import BundleError, BundlePart, bundle_spans
from monitor.core.merkle import (
    HASH_SIZE,
    NodeFn,
    TreeRangeError,
    consistency_proof,
    inclusion_proof,
    node_hash,
    subtree_root,
)
from monitor.logs.http import (
    HttpLogClient,
    HttpPolicy,
    LogNotFound,
    LogResponseError,
    RequestBudget,
    excerpt,
    gather_bounded,
    get_pieces,
    safe_url,
)

__all__ = [
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileNodes",
    "TilesClient",
    "encode_index",
    "entries_path",
    "node_location",
    "nodes_for_consistency",
    "nodes_for_inclusion",
    "nodes_for_root",
    "parse_entry_bundle",
    "tile_path",
    "tile_width",
    "tiles_for_nodes",
]

log = logging.getLogger(__name__)

TILE_HEIGHT: Final = 8
"""Tree levels per tile level."""
TILE_WIDTH: Final = 1 << TILE_HEIGHT
"""Hashes (or entries) in a full tile (bundle)."""
MAX_TILE_LEVEL: Final = 63
"""Highest tile level the spec allows in a path."""

_TILE_BYTES: Final = TILE_WIDTH * HASH_SIZE
# A bundle holds at most 256 entries of a uint16 length and at most 65,535 bytes each.
_BUNDLE_MAX_BYTES: Final = TILE_WIDTH * (2 + 0xFFFF)
_CHECKPOINT_MAX_BYTES: Final = 64 * 1024
_DUMMY = bytes(HASH_SIZE)

TileId = tuple[int, int]
"""``(tile level, tile index)`` of a hash tile."""


# --- paths --------------------------------------------------------------------------------------


def _check_index(what: str, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what}: expected a non-negative integer, got {n!r}")


def _check_width(width: int | None) -> int:
    if width is None:
        return TILE_WIDTH
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width: expected 1 to {TILE_WIDTH}, got {width!r}")
    return width


def encode_index(n: int) -> str:
    """The tile index path encoding: 3-digit groups, "x" on all but the last (``x001/x234/067``)."""
    _check_index("tile index", n)
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int | None) -> str:
    w = _check_width(width)
    return "" if w == TILE_WIDTH else f".p/{w}"


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (no leading slash); ``width`` None or 256 means a full tile."""
    _check_index("tile level", level)
    if level > MAX_TILE_LEVEL:
        raise ValueError(f"tile level: expected 0 to {MAX_TILE_LEVEL}, got {level}")
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int | None = None) -> str:
    """``tile/entries/<N>[.p/<W>]`` (no leading slash); ``width`` None or 256 means full."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


# --- pure parsing and arithmetic ----------------------------------------------------------------


def parse_entry_bundle(data: bytes, expected: int, where: str = "entry bundle") -> list[bytes]:
    """Split an entry bundle (big-endian uint16 length-prefixed entries) into its entries.

    Raises LogResponseError unless ``data`` holds exactly ``expected`` entries and nothing else.
    """
    try:
        spans = bundle_spans(data, expected, where)
    except BundleError as e:
        raise LogResponseError(str(e)) from e
    return [data[first:last] for first, last in spans]


def _split_hashes(data: bytes, width: int, where: str) -> list[bytes]:
    if len(data) != width * HASH_SIZE:
        raise LogResponseError(
            f"{where}: expected {width} hashes ({width * HASH_SIZE} bytes), got {len(data)} bytes"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def tile_width(level: int, index: int, size: int) -> int:
    """Width of hash tile ``(level, index)`` in a tree of ``size`` leaves: 256 when full, the
    partial width, or 0 when the tree has no such tile. Also valid for entry bundles (level 0)."""
    hashes = size >> (TILE_HEIGHT * level)
    full = hashes >> TILE_HEIGHT
    if index < full:
        return TILE_WIDTH
    if index == full:
        return hashes & (TILE_WIDTH - 1)
    return 0


def node_location(level: int, index: int) -> tuple[int, int, int, int]:
    """Where tree node ``(level, index)`` lives: ``(tile level, tile index, first, count)``.

    The node is the root of the ``count`` hashes at positions ``[first, first + count)`` of that
    tile (``count == 1``: it is that hash). See the module docstring for the arithmetic.
    """
    tile_level, h = divmod(level, TILE_HEIGHT)
    start = index << h  # first covered hash at tree level 8 * tile_level
    return tile_level, start >> TILE_HEIGHT, start & (TILE_WIDTH - 1), 1 << h


def tiles_for_nodes(nodes: Iterable[tuple[int, int]], size: int) -> dict[TileId, int]:
    """The tiles (with their width in a tree of ``size``) that cover ``nodes``.

    Raises TreeRangeError if a node is not a complete subtree of that tree.
    """
    out: dict[TileId, int] = {}
    for level, index in nodes:
        if (index + 1) << level > size:
            raise TreeRangeError(
                f"node (level {level}, index {index}) is not complete in a tree of size {size}"
            )
        tl, ti, _, _ = node_location(level, index)
        out[(tl, ti)] = tile_width(tl, ti, size)
    return out


def _recorded(compute: Callable[[NodeFn], object]) -> set[tuple[int, int]]:
    """The nodes ``compute`` asks its NodeFn for (merkle's call pattern ignores hash values)."""
    seen: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        seen.add((level, index))
        return _DUMMY

    compute(record)
    return seen


def nodes_for_consistency(size1: int, size2: int) -> set[tuple[int, int]]:
    """The nodes ``merkle.consistency_proof(size1, size2)`` reads."""
    return _recorded(partial(consistency_proof, size1, size2))


def nodes_for_inclusion(index: int, size: int) -> set[tuple[int, int]]:
    """The nodes ``merkle.inclusion_proof(index, size)`` reads."""
    return _recorded(partial(inclusion_proof, index, size))


def nodes_for_root(size: int) -> set[tuple[int, int]]:
    """The nodes the root of the tree of ``size`` leaves is folded from."""
    return _recorded(partial(subtree_root, 0, size))


class TileNodes:
    """A ``NodeFn`` over hash tiles held in memory: ``{(tile level, tile index): hashes}``.

    Pure. Computed nodes are memoised. Asking for a node the tiles do not cover raises
    TreeRangeError (a caller's bug: fetch the tiles ``tiles_for_nodes`` names first).
    """

    def __init__(self, tiles: Mapping[TileId, Sequence[bytes]]) -> None:
        """``tiles`` maps tile coordinates to their hashes (a prefix of the tile is enough)."""
        self._tiles = tiles
        self._memo: dict[tuple[int, int], bytes] = {}

    def __call__(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree ``(level, index)``."""
        key = (level, index)
        found = self._memo.get(key)
        if found is not None:
            return found
        tl, ti, first, count = node_location(level, index)
        hashes = self._tiles.get((tl, ti))
        if hashes is None or len(hashes) < first + count:
            have = "no tile" if hashes is None else f"{len(hashes)} hashes"
            raise TreeRangeError(
                f"node (level {level}, index {index}) needs tile {tl}/{ti} up to hash "
                f"{first + count}, have {have}"
            )
        row = list(hashes[first : first + count])
        while len(row) > 1:  # hash up h = log2(count) levels inside the tile
            row = [node_hash(row[k], row[k + 1]) for k in range(0, len(row), 2)]
        self._memo[key] = row[0]
        return row[0]


# --- client -------------------------------------------------------------------------------------


class TilesClient(HttpLogClient):
    """Reads one tiled log over HTTP and computes proofs from its tiles.

    Hash tiles are cached (immutable resources; LRU, at most ``cache_tiles`` tiles of up to
    8 KiB; a wider copy of a tile replaces a narrower one). At most ``concurrency`` tile
    requests are in flight per call. Methods raise the ``monitor.logs.http`` errors or
    ValueError / TreeRangeError for arguments that are a caller's bug.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        policy: HttpPolicy,
        budget: RequestBudget | None = None,
        *,
        cache_tiles: int = 1024,
        concurrency: int = 8,
    ) -> None:
        """``base_url`` is the log's prefix (``https://log2025-1.rekor.sigstore.dev``)."""
        if cache_tiles < 0 or concurrency < 1:
            raise ValueError("TilesClient: cache_tiles must be >= 0 and concurrency >= 1")
        super().__init__(session, base_url, policy, budget)
        self.cache_tiles = cache_tiles
        self.concurrency = concurrency
        self._cache: OrderedDict[TileId, tuple[bytes, ...]] = OrderedDict()

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    async def checkpoint(self) -> str:
        """``GET <prefix>/checkpoint``: the signed note text exactly as served (UTF-8)."""
        url = self._url("checkpoint")
        text = await self.get_text(
            url, encoding="UTF-8", expected="a checkpoint", max_bytes=_CHECKPOINT_MAX_BYTES
        )
        if text.lstrip().startswith("<"):
            # A proxy's or CDN's HTML page served as 200: garbage, not a badly signed note.
            raise LogResponseError(
                f"GET {safe_url(url)}: expected a checkpoint, got markup: {excerpt(text)}"
            )
        return text

    async def _get_partial_or_full(
        self, path: str, full_path: str, width: int, max_bytes: int
    ) -> tuple[str, int, list[bytes]]:
        """GET a (partial) resource of at most ``max_bytes`` (the most a full one can need, so a
        log cannot make us hold more); if a partial one is gone (404: the log grew and dropped
        it, as the spec allows), GET the full one instead. Returns (path, width, body) of what
        was actually fetched, the body as the pieces it arrived in (`get_pieces`)."""
        cap = min(max_bytes, self.policy.max_body_bytes)
        try:
            body = await get_pieces(
                self.session, self._url(path), self.policy, max_bytes=cap, budget=self.budget
            )
        except LogNotFound:
            if width == TILE_WIDTH:
                raise
            log.debug("%s: %s is gone, trying %s", self, path, full_path)
            body = await get_pieces(
                self.session, self._url(full_path), self.policy, max_bytes=cap, budget=self.budget
            )
            return full_path, TILE_WIDTH, body
        return path, width, body

    async def hash_tile(self, level: int, index: int, width: int) -> list[bytes]:
        """``GET tile/<L>/<N>[.p/<W>]``: the ``width`` hashes (1-256) of one hash tile.

        The body must be exactly ``32 * width`` bytes, else LogResponseError. If a partial tile
        is gone, the full tile is fetched and trimmed to ``width``.
        """
        width = _check_width(width)
        path, got, body = await self._get_partial_or_full(
            tile_path(level, index, width), tile_path(level, index), width, _TILE_BYTES
        )
        return _split_hashes(b"".join(body), got, f"GET {safe_url(self._url(path))}")[:width]

    async def entry_bundle_pieces(self, index: int, width: int) -> tuple[list[bytes], BundlePart]:
        """``GET tile/entries/<N>[.p/<W>]``: the bundle holding the ``width`` entries (1-256),
        unsplit: its bytes as fetched (the pieces they arrived in, `get_pieces`) and how to read
        them (`BundlePart`: the full bundle when a partial one is gone; its entries are checked
        when it is split, `monitor.core.bundle`)."""
        width = _check_width(width)
        path, got, body = await self._get_partial_or_full(
            entries_path(index, width), entries_path(index), width, _BUNDLE_MAX_BYTES
        )
        where = f"GET {safe_url(self._url(path))}"
        size = sum(map(len, body))
        return body, BundlePart(size=size, entries=got, skip=0, take=width, where=where)

    # -- tiles for proofs ----------------------------------------------------------------------

    def _cached(self, tile: TileId, width: int) -> tuple[bytes, ...] | None:
        hashes = self._cache.get(tile)
        if hashes is None or len(hashes) < width:
            return None
        self._cache.move_to_end(tile)
        return hashes

    def _remember(self, tile: TileId, hashes: tuple[bytes, ...]) -> None:
        if self.cache_tiles == 0:
            return
        old = self._cache.get(tile)
        if old is None or len(old) < len(hashes):
            self._cache[tile] = hashes
        self._cache.move_to_end(tile)
        while len(self._cache) > self.cache_tiles:
            self._cache.popitem(last=False)

    async def tiles(self, needed: Mapping[TileId, int]) -> dict[TileId, tuple[bytes, ...]]:
        """Fetch (or take from the cache) the hash tiles ``{(level, index): width}``."""
        out: dict[TileId, tuple[bytes, ...]] = {}
        missing: list[tuple[TileId, int]] = []
        for tile, width in needed.items():
            cached = self._cached(tile, width)
            if cached is None:
                missing.append((tile, width))
            else:
                out[tile] = cached
        if missing:
            jobs = [partial(self.hash_tile, t[0], t[1], w) for t, w in missing]
            fetched = await gather_bounded(jobs, self.concurrency)
            for (tile, _), hashes in zip(missing, fetched, strict=True):
                out[tile] = tuple(hashes)
                self._remember(tile, out[tile])
        return out

    async def node_fn(self, nodes: Iterable[tuple[int, int]], size: int) -> NodeFn:
        """A NodeFn for the tree of ``size`` leaves that can answer every node in ``nodes``,
        after fetching the tiles that cover them (tiles of ``size``: full, or partial at the
        right edge). ``size`` must come from a verified checkpoint."""
        needed = tiles_for_nodes(nodes, size)
        return TileNodes(await self.tiles(needed))

    async def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The RFC 6962 consistency proof ``size1 -> size2`` computed from the tiles of
        ``size2`` (empty for ``size1 == 0`` or ``size1 == size2``; no request then)."""
        _check_index("size1", size1)
        _check_index("size2", size2)
        if size1 > size2:
            raise ValueError(f"consistency proof: size1 {size1} is greater than size2 {size2}")
        nodes = nodes_for_consistency(size1, size2)
        if not nodes:
            return []
        return consistency_proof(size1, size2, await self.node_fn(nodes, size2))

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 6962 inclusion proof of leaf ``index`` in the tree of ``size`` leaves,
        computed from the tiles of ``size``."""
        _check_index("index", index)
        _check_index("size", size)
        if index >= size:
            raise ValueError(f"inclusion proof: index {index} is not below size {size}")
        nodes = nodes_for_inclusion(index, size)
        if not nodes:
            return []
        return inclusion_proof(index, size, await self.node_fn(nodes, size))

    async def root(self, size: int) -> bytes:
        """The root of the tree of ``size`` leaves, folded from the tiles of ``size`` (compare
        it with the checkpoint's root to check the tiles themselves)."""
        _check_index("size", size)
        nodes = nodes_for_root(size)
        if not nodes:
            return subtree_root(0, 0, TileNodes({}))
        return subtree_root(0, size, await self.node_fn(nodes, size))
