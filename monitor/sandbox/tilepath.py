"""C2SP tlog-tiles resource paths (https://c2sp.org/tlog-tiles), for the sandbox server.

``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``: ``<L>`` a decimal level 0-63
without leading zeroes, ``<N>`` the tile index as zero-padded 3-digit path elements, all but
the last prefixed with ``x`` (1234067 -> ``x001/x234/067``), ``.p/<W>`` only on partial tiles
(width 1-255, no leading zeroes). Tiles are 256 hashes wide; the hash at position ``i`` of
tile ``N`` at level ``L`` is the tree node at level ``8 * L``, index ``N * 256 + i``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# One encoding of tile paths in the project: the client's. The sandbox adds only what a server
# needs on top of it (parsing request paths and deciding what is available).
from monitor.logs.tiles.client import (
    MAX_TILE_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_index,
    entries_path,
)
from monitor.logs.tiles.client import tile_path as tiles_tile_path

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePathError",
    "TileRef",
    "encode_index",
    "parse_tile_path",
    "tile_available",
    "tile_path",
]

MAX_LEVEL: Final = MAX_TILE_LEVEL

_ELEMENT = re.compile(r"^x\d{3}$")
_LAST = re.compile(r"^\d{3}$")
_WIDTH = re.compile(r"^[1-9]\d{0,2}$")
_LEVEL = re.compile(r"^(0|[1-9]\d?)$")


class TilePathError(ValueError):
    """A tile path is not in the tlog-tiles encoding (the server answers 404)."""


@dataclass(frozen=True)
class TileRef:
    """A parsed tile resource: ``level`` is None for an entry bundle."""

    level: int | None
    index: int
    width: int  # 256 for a full tile

    @property
    def partial(self) -> bool:
        """True for a ``.p/<W>`` resource."""
        return self.width < TILE_WIDTH


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """The path (no leading slash) of a hash tile, or of an entry bundle if level is None."""
    if level is None:
        return entries_path(index, width)
    return tiles_tile_path(level, index, width)


def parse_tile_path(path: str) -> TileRef:
    """Parse the part of a URL after ``<prefix>/``: ``tile/...``; raises TilePathError."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TilePathError(f"not a tile path: {path!r}")
    if parts[1] == "entries":
        level: int | None = None
    elif _LEVEL.match(parts[1]) and int(parts[1]) <= MAX_LEVEL:
        level = int(parts[1])
    else:
        raise TilePathError(f"bad tile level in {path!r}")
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.match(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise TilePathError(f"bad partial width in {path!r}")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    if not rest or not _LAST.match(rest[-1]) or not all(_ELEMENT.match(p) for p in rest[:-1]):
        raise TilePathError(f"bad tile index in {path!r}")
    if len(rest) > 1 and rest[0] == "x000":
        raise TilePathError(f"non-canonical tile index in {path!r}")
    index = 0
    for p in rest:
        index = index * 1000 + int(p.lstrip("x"))
    return TileRef(level=level, index=index, width=width)


def tile_available(ref: TileRef, tree_size: int) -> bool:
    """Whether a log of ``tree_size`` entries serves ``ref``.

    A full tile needs ``(N + 1) * 256`` nodes at its level; a partial tile of width ``W`` is
    served when it is the partial tile of the current size (``floor(size / 256**L) mod 256
    == W`` with ``N`` the last tile) -- or any narrower partial view of a tile the log has
    covered further (like logs that keep old partial tiles).
    """
    level = 0 if ref.level is None else ref.level
    nodes = tree_size >> (TILE_HEIGHT * level)
    return ref.index * TILE_WIDTH + ref.width <= nodes
