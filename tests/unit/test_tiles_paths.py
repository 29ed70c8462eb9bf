"""Tile paths, entry bundles and the tile-node arithmetic of monitor.logs.tiles.client (pure, no
HTTP).

Proofs computed from tiles are checked against monitor.core.merkle.MerkleTree: the tiles are cut
from the tree exactly as a log of a given size would serve them (partial tiles at the right
edge), so a proof that reads past a partial tile's width fails.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.merkle import (
    MerkleTree,
    TreeRangeError,
    leaf_hash,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)
from monitor.logs.http import LogResponseError
from monitor.logs.tiles.client import (
    TILE_WIDTH,
    TileNodes,
    TilesClient,
    encode_index,
    entries_path,
    node_location,
    nodes_for_consistency,
    nodes_for_inclusion,
    nodes_for_root,
    parse_entry_bundle,
    tile_path,
    tile_width,
    tiles_for_nodes,
)
from monitor.sandbox.tilepath import parse_tile_path

# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "000"),
        (1, "001"),
        (67, "067"),
        (999, "999"),
        (1000, "x001/000"),
        (1234, "x001/234"),
        (999_999, "x999/999"),
        (1_000_000, "x001/x000/000"),
        (1_234_067, "x001/x234/067"),
        (2**40, "x001/x099/x511/x627/776"),
    ],
)
def test_encode_index(n: int, encoded: str) -> None:
    assert encode_index(n) == encoded


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ((0, 0), "tile/0/000"),
        ((0, 0, None), "tile/0/000"),
        ((0, 0, 256), "tile/0/000"),
        ((0, 0, 1), "tile/0/000.p/1"),
        ((0, 1_234_067, 255), "tile/0/x001/x234/067.p/255"),
        ((3, 5, 17), "tile/3/005.p/17"),
        ((63, 1000), "tile/63/x001/000"),
    ],
)
def test_tile_path(args: tuple[int, ...], path: str) -> None:
    assert tile_path(*args) == path


def test_entries_path() -> None:
    assert entries_path(0) == "tile/entries/000"
    assert entries_path(1_234_067, 256) == "tile/entries/x001/x234/067"
    assert entries_path(1_234_067, 9) == "tile/entries/x001/x234/067.p/9"


@pytest.mark.parametrize(
    "args",
    [(0, 0, 0), (0, 0, 257), (64, 0), (-1, 0), (0, -1), (0, 0, -3), (True, 0)],
)
def test_tile_path_rejects_out_of_range(args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        tile_path(*args)


def test_paths_round_trip_through_the_sandbox_parser() -> None:
    # An independent implementation (the sandbox server's) must read back what we write.
    rng = random.Random(7)
    for _ in range(500):
        level = rng.randrange(0, 64)
        index = rng.choice([rng.randrange(0, 1000), rng.randrange(0, 10**12)])
        width = rng.choice([None, 256, rng.randrange(1, 256)])
        ref = parse_tile_path(tile_path(level, index, width))
        assert (ref.level, ref.index, ref.width) == (level, index, width or TILE_WIDTH)
        ref = parse_tile_path(entries_path(index, width))
        assert (ref.level, ref.index, ref.width) == (None, index, width or TILE_WIDTH)


# --- widths and node locations -------------------------------------------------------------


def test_tile_widths_match_the_spec_example() -> None:
    # c2sp.org/tlog-tiles: a tree of 70,000 has 273 full level-0 tiles and a partial one of
    # width 112, one full level-1 tile and a partial one of width 17, a level-2 tile of width 1.
    size = 70_000
    assert tile_width(0, 272, size) == 256
    assert tile_width(0, 273, size) == 112
    assert tile_width(0, 274, size) == 0
    assert tile_width(1, 0, size) == 256
    assert tile_width(1, 1, size) == 17
    assert tile_width(2, 0, size) == 1
    assert tile_width(3, 0, size) == 0
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1"
    assert tile_width(0, 0, 256) == 256
    assert tile_width(0, 1, 256) == 0
    assert tile_width(1, 0, 256) == 1


@pytest.mark.parametrize(
    ("node", "location"),
    [
        ((0, 0), (0, 0, 0, 1)),
        ((0, 300), (0, 1, 44, 1)),
        ((1, 5), (0, 0, 10, 2)),
        ((7, 1), (0, 0, 128, 128)),
        ((7, 3), (0, 1, 128, 128)),
        ((8, 0), (1, 0, 0, 1)),
        ((8, 257), (1, 1, 1, 1)),
        ((9, 1), (1, 0, 2, 2)),
        ((16, 2), (2, 0, 2, 1)),
        ((17, 1), (2, 0, 2, 2)),
    ],
)
def test_node_location(node: tuple[int, int], location: tuple[int, int, int, int]) -> None:
    assert node_location(*node) == location


def test_tiles_for_nodes_rejects_incomplete_nodes() -> None:
    with pytest.raises(TreeRangeError):
        tiles_for_nodes([(1, 2)], 5)  # leaves 4..5: only leaf 4 exists
    assert tiles_for_nodes([(1, 2)], 6) == {(0, 0): 6}


def test_tile_nodes_refuses_what_the_tiles_do_not_cover() -> None:
    nodes = TileNodes({(0, 0): [leaf_hash(b"a")]})
    assert nodes(0, 0) == leaf_hash(b"a")
    with pytest.raises(TreeRangeError):
        nodes(0, 1)
    with pytest.raises(TreeRangeError):
        nodes(8, 0)


# --- entry bundles --------------------------------------------------------------------------


def _bundle(*entries: bytes) -> bytes:
    return b"".join(len(e).to_bytes(2, "big") + e for e in entries)


def test_parse_entry_bundle_good() -> None:
    entries = [b"", b"x", b"\x00" * 65535, bytes(range(256))]
    assert parse_entry_bundle(_bundle(*entries), 4) == entries
    full = [i.to_bytes(2, "big") * 3 for i in range(256)]
    assert parse_entry_bundle(_bundle(*full), 256) == full


@pytest.mark.parametrize(
    ("data", "expected", "message"),
    [
        (_bundle(b"a", b"b"), 3, "expected 3 entries, got 2"),
        (_bundle(b"a", b"b"), 1, "1 entries, got 3 more bytes"),
        (_bundle(b"a") + b"\x00", 2, "truncated length prefix"),
        (_bundle(b"a") + b"\x00\x05abc", 2, "declares 5 bytes, only 3 remain"),
        (b"", 1, "expected 1 entries, got 0"),
        (b"\xff\xff", 1, "declares 65535 bytes, only 0 remain"),
    ],
)
def test_parse_entry_bundle_bad(data: bytes, expected: int, message: str) -> None:
    with pytest.raises(LogResponseError, match=message):
        parse_entry_bundle(data, expected)


# --- proofs from tiles, against MerkleTree ---------------------------------------------------

TREE_SIZE = 70_000


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    t = MerkleTree()
    t.extend(leaf_hash(i.to_bytes(4, "big")) for i in range(TREE_SIZE))
    return t


def served_tiles(tree: MerkleTree, needed: Mapping[tuple[int, int], int]) -> TileNodes:
    """The tiles a log of some size serves: tile (L, N) of width W holds nodes at level 8L."""
    tiles = {
        (lvl, n): [tree.node(8 * lvl, n * TILE_WIDTH + i) for i in range(width)]
        for (lvl, n), width in needed.items()
    }
    return TileNodes(tiles)


def consistency_from_tiles(tree: MerkleTree, size1: int, size2: int) -> list[bytes]:
    from monitor.core.merkle import consistency_proof

    nodes = nodes_for_consistency(size1, size2)
    return consistency_proof(size1, size2, served_tiles(tree, tiles_for_nodes(nodes, size2)))


def inclusion_from_tiles(tree: MerkleTree, index: int, size: int) -> list[bytes]:
    from monitor.core.merkle import inclusion_proof

    nodes = nodes_for_inclusion(index, size)
    return inclusion_proof(index, size, served_tiles(tree, tiles_for_nodes(nodes, size)))


BOUNDARY_SIZES = [
    1, 2, 3, 7, 8, 9, 255, 256, 257, 300, 511, 512, 513, 4095, 4096, 4097,
    65535, 65536, 65537, 65792, 69999, 70000,
]  # fmt: skip


def test_consistency_proofs_from_tiles_match_merkle_tree(tree: MerkleTree) -> None:
    for size1 in BOUNDARY_SIZES:
        for size2 in BOUNDARY_SIZES:
            if size1 > size2:
                continue
            proof = consistency_from_tiles(tree, size1, size2)
            assert proof == tree.consistency_proof(size1, size2), (size1, size2)
            verify_consistency(size1, size2, tree.root(size1), tree.root(size2), proof)


def test_inclusion_proofs_from_tiles_match_merkle_tree(tree: MerkleTree) -> None:
    for size in BOUNDARY_SIZES:
        for index in {0, 1, size // 2, size - 256, size - 2, size - 1}:
            if not 0 <= index < size:
                continue
            proof = inclusion_from_tiles(tree, index, size)
            assert proof == tree.inclusion_proof(index, size), (index, size)
            verify_inclusion(tree.node(0, index), index, size, proof, tree.root(size))


def test_roots_from_tiles_match_merkle_tree(tree: MerkleTree) -> None:
    for size in [*BOUNDARY_SIZES, 0]:
        nodes = nodes_for_root(size)
        node = served_tiles(tree, tiles_for_nodes(nodes, size))
        assert subtree_root(0, size, node) == tree.root(size), size


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_proofs_from_tiles(tree: MerkleTree, data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, TREE_SIZE))
    size1 = data.draw(st.integers(0, size2))
    assert consistency_from_tiles(tree, size1, size2) == tree.consistency_proof(size1, size2)
    index = data.draw(st.integers(0, size2 - 1))
    assert inclusion_from_tiles(tree, index, size2) == tree.inclusion_proof(index, size2)


def test_proofs_only_need_the_tiles_of_the_larger_size() -> None:
    # Size 70,000: level-0 tiles 0..273 (the last partial, width 112), level 1 tiles 0..1
    # (width 256, 17) and level 2 tile 0 (width 1); never anything wider or further right.
    for size1 in range(1, 70_000, 997):
        needed = tiles_for_nodes(nodes_for_consistency(size1, 70_000), 70_000)
        for (lvl, n), width in needed.items():
            assert 1 <= width == tile_width(lvl, n, 70_000)


# --- the tile cache (no HTTP: hash_tile is replaced) ----------------------------------------


async def test_tile_cache_is_lru_bounded_and_reuses_wider_tiles(tree: MerkleTree) -> None:
    from monitor.logs.http import HttpPolicy

    client = TilesClient(None, "http://log.invalid/", HttpPolicy(), cache_tiles=3)  # type: ignore[arg-type]
    calls: list[tuple[int, int, int]] = []

    async def fake_hash_tile(level: int, index: int, width: int) -> list[bytes]:
        calls.append((level, index, width))
        return [tree.node(8 * level, index * 256 + i) for i in range(width)]

    client.hash_tile = fake_hash_tile  # type: ignore[method-assign]
    await client.tiles({(0, 0): 256, (0, 1): 10})
    assert calls == [(0, 0, 256), (0, 1, 10)]
    await client.tiles({(0, 0): 5, (0, 1): 10})  # a prefix of a cached tile: no request
    assert len(calls) == 2
    await client.tiles({(0, 1): 20})  # wider than cached: fetched, replaces the narrow copy
    await client.tiles({(0, 1): 15})
    assert calls[2:] == [(0, 1, 20)]
    await client.tiles({(0, 2): 256, (0, 3): 256})  # evicts the least recently used, (0, 0)
    await client.tiles({(0, 0): 1})
    assert calls[-1] == (0, 0, 1)
    # The proof path goes through the same cache.
    calls.clear()
    proof = await client.consistency_proof(100, 700)
    assert proof == tree.consistency_proof(100, 700)
    assert await client.root(700) == tree.root(700)
    assert await client.inclusion_proof(5, 700) == tree.inclusion_proof(5, 700)
    assert all(width == tile_width(level, n, 700) for level, n, width in calls)
    assert await client.consistency_proof(0, 700) == []
    assert await client.consistency_proof(700, 700) == []
    with pytest.raises(ValueError):
        await client.consistency_proof(701, 700)
    with pytest.raises(ValueError):
        await client.inclusion_proof(700, 700)
