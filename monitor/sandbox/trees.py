"""The sandbox's Merkle trees and their entries: an honest log tree and forked alternatives.

A :class:`LeafLog` is a :class:`monitor.core.merkle.MerkleTree` over the records of a
:class:`~monitor.sandbox.storage.LeafFile`; it is rebuilt from the file on startup. A
:class:`ForkTree` is a split-view alternative: the same first ``at`` leaves as its base, then
leaves of its own (kept in memory: forks are for drills and tests), grown whenever the base
grows so that both views keep the same size with different roots.

Both offer the read interface the HTTP layer uses (:class:`TreeSource`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from monitor.core.merkle import MerkleTree, leaf_hash
from monitor.sandbox.storage import BundleFile, LeafFile


class TreeSource(Protocol):
    """What the server reads from a tree: hashes, proofs and entry bodies."""

    @property
    def size(self) -> int:
        """Number of leaves."""
        ...

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default all)."""
        ...

    def node(self, level: int, index: int) -> bytes:
        """Hash of a complete perfect subtree."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 audit path."""
        ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 6962 consistency proof."""
        ...

    def body(self, index: int) -> bytes:
        """Entry body."""
        ...

    def bodies(self, start: int, end: int) -> list[bytes]:
        """Entry bodies ``[start, end)``."""
        ...

    def integrated_time(self, index: int) -> int:
        """Integration time of an entry (Unix seconds)."""
        ...

    def bundle(self, start: int, end: int) -> tuple[BinaryIO, int, int] | None:
        """(file, offset, length) of the entry bundle of ``[start, end)`` as stored, if it is."""
        ...


class _MerkleView:
    """The hashes and proofs of a tree held as ``self.tree``: what both trees serve alike."""

    tree: MerkleTree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self.tree.size

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default all)."""
        return self.tree.root(size)

    def node(self, level: int, index: int) -> bytes:
        """Hash of a complete perfect subtree."""
        return self.tree.node(level, index)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 6962 audit path of leaf ``index`` in the tree of ``size``."""
        return self.tree.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 6962 consistency proof between two sizes."""
        return self.tree.consistency_proof(size1, size2)


class LeafLog(_MerkleView):
    """An honest, persistent log tree: leaves in a file, hashes in memory."""

    def __init__(self, path: Path, *, bundles: bool = False) -> None:
        self.path = path
        self.leaves = LeafFile(path)
        self.bundles = BundleFile(path.with_suffix(".bundles"), self.leaves) if bundles else None
        """The entries as tlog-tiles bundles (the tiled log's), served from the file."""
        self.tree = MerkleTree()
        try:
            bodies = self.leaves.load()
            if self.bundles is not None:
                bodies = self.bundles.follow(bodies)
            self.tree.extend(leaf_hash(body) for body in bodies)
        except BaseException:
            self.close()
            raise

    def append(self, bodies: Sequence[bytes], integrated_time: int) -> None:
        """Append entries (flushed to the file, not yet fsynced: call ``sync``)."""
        if self.bundles is not None:
            self.bundles.append(bodies)
        self.leaves.append(bodies, integrated_time)
        self.tree.extend(leaf_hash(body) for body in bodies)

    def sync(self) -> None:
        """fsync the leaves file (and the bundle file)."""
        self.leaves.sync()
        if self.bundles is not None:
            self.bundles.sync()

    def close(self) -> None:
        """Close the leaves file (and the bundle file)."""
        self.leaves.close()
        if self.bundles is not None:
            self.bundles.close()

    def body(self, index: int) -> bytes:
        """Entry body."""
        return self.leaves.read(index)

    def bodies(self, start: int, end: int) -> list[bytes]:
        """Entry bodies ``[start, end)``."""
        return self.leaves.read_range(start, end)

    def integrated_time(self, index: int) -> int:
        """Integration time of an entry."""
        return self.leaves.integrated_time(index)

    def bundle(self, start: int, end: int) -> tuple[BinaryIO, int, int] | None:
        """(file, offset, length) of the entry bundle of ``[start, end)``, if stored as one."""
        return None if self.bundles is None else self.bundles.span(start, end)


class ForkTree(_MerkleView):
    """A split-view alternative to ``base``: its first ``at`` leaves, then leaves of its own."""

    def __init__(self, base: LeafLog, at: int) -> None:
        if not 0 <= at <= base.size:
            raise ValueError(f"fork: 'at' must be within [0, {base.size}], got {at}")
        self.base = base
        self.at = at
        self.tree = MerkleTree()
        self.tree.extend(base.node(0, i) for i in range(at))
        self._bodies: list[bytes] = []
        self._times: list[int] = []

    @property
    def missing(self) -> int:
        """How many leaves the fork lacks to match its base's size."""
        return max(0, self.base.size - self.tree.size)

    def append(self, bodies: Sequence[bytes], integrated_time: int) -> None:
        """Append alternative entries."""
        self._bodies.extend(bodies)
        self._times.extend([integrated_time] * len(bodies))
        self.tree.extend(leaf_hash(body) for body in bodies)

    def body(self, index: int) -> bytes:
        """Entry body (the base's below ``at``)."""
        if index < self.at:
            return self.base.body(index)
        return self._bodies[index - self.at]

    def bodies(self, start: int, end: int) -> list[bytes]:
        """Entry bodies ``[start, end)``."""
        if not 0 <= start <= end <= self.size:
            raise IndexError(f"leaf range [{start}, {end}) outside [0, {self.size})")
        shared = self.base.bodies(start, min(end, self.at)) if start < self.at else []
        lo, hi = max(start, self.at) - self.at, max(end, self.at) - self.at
        return shared + self._bodies[lo:hi]

    def integrated_time(self, index: int) -> int:
        """Integration time of an entry."""
        if index < self.at:
            return self.base.integrated_time(index)
        return self._times[index - self.at]

    def bundle(self, start: int, end: int) -> tuple[BinaryIO, int, int] | None:
        """None: a fork's bundles are built from its bodies."""
        return None
