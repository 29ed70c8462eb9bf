"""RFC 6962 / RFC 9162 Merkle trees: hashing, proof verification, proof generation.

Pure code: no IO, no logging, only the standard library. Everything a function needs is an
argument. Sizes count leaves; an index is a leaf position in ``[0, size)``.

Verification (``verify_inclusion``, ``verify_consistency``) returns ``None`` or raises
``ProofError``: there is no boolean to ignore. Computing a root from a proof is separate from
comparing it (``root_from_inclusion_proof``), and a mismatch message carries both roots in hex.

Generation (``inclusion_proof``, ``consistency_proof``, ``subtree_root``) works on any tree that
can answer "what is the hash of this perfect subtree" (a ``NodeFn``): an in-memory ``MerkleTree``
here, hash tiles in a tiled-log client. ``CompactRange`` is the right-edge frontier used to fold
a whole log into a root in O(log n) memory.

Node coordinates: ``(level, index)`` names the perfect subtree of ``2**level`` leaves starting at
leaf ``index * 2**level``; level 0 holds the leaf hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from monitor.core.errors import MonitorError, VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "NodeFn",
    "ProofError",
    "TreeRangeError",
    "consistency_proof",
    "consistency_proof_size",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "perfect_subtrees",
    "root_from_inclusion_proof",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""The root of the empty tree: SHA-256 of the empty string (RFC 6962 MTH({}))."""

# RFC 6962 domain separation: a leaf hash can never be mistaken for an interior node hash.
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

NodeFn = Callable[[int, int], bytes]
"""``(level, index) -> hash`` of the perfect subtree of ``2**level`` leaves starting at leaf
``index * 2**level``. Callers only ask for subtrees that lie fully inside the tree."""


class ProofError(VerificationError):
    """A Merkle proof, root or compact range failed verification: the log misbehaved."""


class TreeRangeError(MonitorError, ValueError):
    """A request names a leaf, node or size that the tree does not have (a caller's bug)."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)`` of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


_LEAF_SEED = hashlib.sha256(_LEAF_PREFIX)


def leaf_hashes(entries: Iterable[bytes | memoryview]) -> list[bytes]:
    """``leaf_hash`` of each entry, in order: a copy of a SHA-256 already fed the prefix, updated
    with the entry (no concatenated copy of each entry)."""
    copy = _LEAF_SEED.copy
    out: list[bytes] = []
    append = out.append
    for data in entries:
        h = copy()
        h.update(data)
        append(h.digest())
    return out


def perfect_subtrees(begin: int, leaf_hashes: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """The leaves ``[begin, begin + len(leaf_hashes))`` folded into the fewest perfect subtrees
    aligned as in the tree, ``(level, hash)`` left to right: what ``CompactRange.extend_subtrees``
    folds onto a compact range of size ``begin`` (the fold of a chunk done apart from the range,
    e.g. in another process)."""
    _check_count("perfect subtrees", "begin", begin)
    out: list[tuple[int, bytes]] = []
    pos, end = begin, begin + len(leaf_hashes)
    while pos < end:
        level = (pos & -pos).bit_length() - 1 if pos else 63
        while pos + (1 << level) > end:
            level -= 1
        cr = CompactRange()
        cr.extend(leaf_hashes[pos - begin : pos - begin + (1 << level)])
        out.append((level, cr.root()))
        pos += 1 << level
    return out


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``.

    Precondition: ``left`` and ``right`` are ``HASH_SIZE``-byte hashes (not checked: this is the
    inner loop of every tree computation; verifiers check their inputs before hashing).
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --- validation helpers -------------------------------------------------------------------------


def _is_count(value: object) -> bool:
    """True if ``value`` is a non-negative int (bool is an int subclass but never a size)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_count(context: str, name: str, value: object) -> None:
    """Raise ProofError unless ``value`` is a non-negative int."""
    if not _is_count(value):
        raise ProofError(f"{context}: {name} must be a non-negative integer, got {value!r}")


def _check_hash(context: str, name: str, value: object) -> None:
    """Raise ProofError unless ``value`` is exactly ``HASH_SIZE`` bytes."""
    if not isinstance(value, bytes):
        raise ProofError(f"{context}: {name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{context}: {name} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof(context: str, proof: Sequence[bytes], expected: int, what: str) -> None:
    """Raise ProofError unless ``proof`` has exactly ``expected`` well-formed hashes."""
    if isinstance(proof, (bytes, bytearray, str)):
        # A single hash or a string is a Sequence too; it is never a list of hashes.
        raise ProofError(
            f"{context}: proof must be a sequence of hashes, got {type(proof).__name__}"
        )
    if len(proof) != expected:
        raise ProofError(f"{context}: expected {expected} hashes for {what}, got {len(proof)}")
    for i, h in enumerate(proof):
        _check_hash(context, f"proof hash {i}", h)


# --- proof shape --------------------------------------------------------------------------------


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split the audit path of leaf ``index`` in a tree of ``size`` leaves into two parts.

    Precondition: ``0 <= index < size``. Returns ``(inner, border)``, the number of proof hashes
    below and above the level where the paths to ``index`` and to the last leaf ``size - 1`` meet.
    """
    # Below the highest bit in which index and size - 1 differ, leaf index has a sibling at
    # every level (the topmost of them may be the incomplete subtree holding the last leaf,
    # still one hash), so there is one proof hash per level.
    inner = (index ^ (size - 1)).bit_length()
    # Above it, the path runs along the tree's right border: a node there has a (left) sibling
    # exactly when it is a right child, i.e. for each set bit of index at those levels; a node
    # that is a left child on the border has no right sibling and is promoted unchanged.
    border = (index >> inner).bit_count()
    return inner, border


def _consistency_shape(size1: int, size2: int) -> tuple[int, int, int, bool]:
    """Return ``(shift, inner, border, seeded)`` for a consistency proof ``size1 -> size2``.

    Precondition: ``0 < size1 < size2``. The proof is the audit path of leaf ``size1 - 1`` in the
    tree of ``size2``, started at level ``shift`` instead of at the leaf: the lowest ``shift``
    levels lie inside the largest perfect subtree that ends at ``size1``, whose hash is the seed.
    ``seeded`` is True when that seed subtree is not the whole old tree, so the proof must carry
    its hash first; otherwise the seed is ``root1`` itself.
    """
    # The lowest set bit of size1 is the size of the last perfect subtree of the old tree:
    # trailing zeros = log2 of that size.
    shift = (size1 & -size1).bit_length() - 1
    inner, border = _decompose(size1 - 1, size2)
    # inner > shift: size1 - 1 ends in shift one bits and size2 - 1 is larger, so the highest
    # bit where they differ (a zero in size1 - 1) is at level shift or above. The levels below
    # shift are inside the seed subtree and carry no proof hashes.
    inner -= shift
    seeded = size1 != 1 << shift
    return shift, inner, border, seeded


def consistency_proof_size(size1: int, size2: int) -> int:
    """The number of hashes in a consistency proof ``size1 -> size2`` (``0 <= size1 <= size2``).

    Lets a client refuse a malformed proof as garbage before verification, where a proof of the
    wrong length would read as evidence against the log.
    """
    if not 0 <= size1 <= size2:
        raise ValueError(f"consistency proof: expected 0 <= size1 <= size2, got {size1}, {size2}")
    if size1 in (0, size2):
        return 0
    _, inner, border, seeded = _consistency_shape(size1, size2)
    return int(seeded) + inner + border


def _chain_inner(seed: bytes, hashes: Sequence[bytes], index: int) -> bytes:
    """Hash ``seed`` up through ``hashes``, one level each; bit i of ``index`` says the side.

    Bit i set means the node at level i is a right child, so its sibling goes on the left.
    """
    h = seed
    for i, sibling in enumerate(hashes):
        h = node_hash(sibling, h) if (index >> i) & 1 else node_hash(h, sibling)
    return h


def _chain_inner_right(seed: bytes, hashes: Sequence[bytes], index: int) -> bytes:
    """Like ``_chain_inner`` but only through left siblings (bits of ``index`` that are set).

    This recomputes the OLD root from a consistency proof: a right sibling lies beyond the old
    tree's last leaf, so the old tree does not contain it and the node is promoted unchanged.
    """
    h = seed
    for i, sibling in enumerate(hashes):
        if (index >> i) & 1:
            h = node_hash(sibling, h)
    return h


def _chain_border(seed: bytes, hashes: Sequence[bytes]) -> bytes:
    """Hash ``seed`` up the right border: every border hash is a left sibling."""
    h = seed
    for sibling in hashes:
        h = node_hash(sibling, h)
    return h


# --- verification -------------------------------------------------------------------------------


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root implied by an inclusion proof of ``leaf_hash`` at ``index`` in ``size``.

    Preconditions checked (ProofError otherwise): ``index`` and ``size`` are non-negative ints,
    ``index < size`` (so ``size > 0``), ``leaf_hash`` and every proof hash are ``HASH_SIZE``
    bytes, and the proof has exactly the number of hashes the (index, size) pair requires.
    The caller compares the result with a trusted root (or use ``verify_inclusion``).
    """
    context = "inclusion proof"
    _check_count(context, "index", index)
    _check_count(context, "size", size)
    if index >= size:
        raise ProofError(f"{context}: index {index} is out of range for tree size {size}")
    _check_hash(context, "leaf hash", leaf_hash)
    inner, border = _decompose(index, size)
    _check_proof(context, proof, inner + border, f"index {index} in size {size}")
    h = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border(h, proof[inner:])


def frontier_from_inclusion_proof(index: int, size: int, proof: Sequence[bytes]) -> list[bytes]:
    """The compact range of the tree of leaves [0, index) (largest subtree first), read off an
    inclusion proof of leaf `index` in a tree of `size` leaves.

    The left siblings on a leaf's audit path are exactly the perfect subtrees covering every leaf
    before it: one for each set bit of `index`, whatever the tree size. In the inner part of the
    path, bit i of `index` set means the hash at position i is a left sibling; every border hash
    is one. Nothing is verified here: the caller proves the result (e.g. by extending it and
    checking a root or a consistency proof). Raises ProofError for a proof of the wrong length.
    """
    context = "frontier from inclusion proof"
    _check_count(context, "size", size)
    _check_count(context, "index", index)
    if index >= size:
        raise ProofError(f"{context}: index {index} is not below size {size}")
    inner, border = _decompose(index, size)
    _check_proof(context, proof, inner + border, f"index {index} in size {size}")
    left = [proof[i] for i in range(inner) if index >> i & 1]
    left.extend(proof[inner:])
    return left[::-1]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Returns None or raises ProofError (see ``root_from_inclusion_proof`` for the checks made on
    the inputs). Note that RFC 6962 inclusion proofs do not commit to ``size`` beyond the proof's
    shape: the signed checkpoint binds ``root`` to ``size``, so pass both from one checkpoint.
    """
    _check_hash("inclusion proof", "root", root)
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calculated != root:
        raise ProofError(
            f"inclusion proof: calculated root {calculated.hex()} does not match expected root "
            f"{root.hex()} (index {index}, size {size})"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``.

    Returns None or raises ProofError. Checked: sizes are non-negative ints with
    ``size1 <= size2``; both roots and every proof hash are ``HASH_SIZE`` bytes; the proof has
    exactly the number of hashes the sizes require (none for ``size1 == 0`` or
    ``size1 == size2``). Then:

    - ``size1 == 0``: trivially consistent (every tree extends the empty tree), but ``root1``
      must be ``EMPTY_ROOT`` (and ``root2`` too when ``size2 == 0``). Unlike RFC 9162 and the
      transparency-dev verifier, which reject size1 == 0 as a useless question, a monitor that
      starts from an empty log needs the trivial answer.
    - ``size1 == size2``: the roots must be equal.
    - otherwise both roots are recomputed from the proof and compared.
    """
    context = "consistency proof"
    _check_count(context, "size1", size1)
    _check_count(context, "size2", size2)
    if size1 > size2:
        raise ProofError(f"{context}: size1 {size1} is greater than size2 {size2}")
    _check_hash(context, "root1", root1)
    _check_hash(context, "root2", root2)
    sizes = f"sizes {size1} -> {size2}"

    # Degenerate sizes first: no proof hashes are needed, or accepted.
    if size1 in (0, size2):
        _check_proof(context, proof, 0, sizes)
        if size1 == 0:
            _check_empty_root(context, "root1", root1)
            if size2 == 0:
                _check_empty_root(context, "root2", root2)
        elif root1 != root2:
            raise ProofError(
                f"{context}: {sizes} are equal but root1 {root1.hex()} differs from "
                f"root2 {root2.hex()}"
            )
        return

    shift, inner, border, seeded = _consistency_shape(size1, size2)
    _check_proof(context, proof, int(seeded) + inner + border, sizes)
    if seeded:
        seed, path = proof[0], proof[1:]
    else:
        # The old tree is itself a perfect subtree of the new one: its root is the seed.
        seed, path = root1, proof
    # The path's bits start at level shift: the seed node's index at that level.
    mask = (size1 - 1) >> shift

    calculated1 = _chain_border(_chain_inner_right(seed, path[:inner], mask), path[inner:])
    if calculated1 != root1:
        raise ProofError(
            f"{context}: calculated root1 {calculated1.hex()} does not match expected root1 "
            f"{root1.hex()} ({sizes})"
        )
    calculated2 = _chain_border(_chain_inner(seed, path[:inner], mask), path[inner:])
    if calculated2 != root2:
        raise ProofError(
            f"{context}: calculated root2 {calculated2.hex()} does not match expected root2 "
            f"{root2.hex()} ({sizes})"
        )


def _check_empty_root(context: str, name: str, root: bytes) -> None:
    """Raise ProofError unless ``root`` is the root of the empty tree."""
    if root != EMPTY_ROOT:
        raise ProofError(
            f"{context}: {name} of an empty tree must be {EMPTY_ROOT.hex()}, got {root.hex()}"
        )


# --- generation ---------------------------------------------------------------------------------


def _check_arg(name: str, value: object) -> None:
    """Raise TreeRangeError unless ``value`` is a non-negative int."""
    if not _is_count(value):
        raise TreeRangeError(f"{name} must be a non-negative integer, got {value!r}")


def subtree_root(start: int, end: int, node: NodeFn) -> bytes:
    """Return the RFC 6962 root of the leaves ``[start, end)``, built from perfect subtrees.

    Preconditions (TreeRangeError otherwise): ``0 <= start <= end``; the range is empty only as
    ``(0, 0)`` (the empty tree, whose root is ``EMPTY_ROOT``); ``start`` is a multiple of the
    smallest power of two ``>= end - start``, i.e. the range is an RFC 6962 subtree or the right
    edge of one (``[0, size)`` for a tree root). ``node`` must know every perfect subtree inside
    the range.
    """
    _check_arg("start", start)
    _check_arg("end", end)
    if end < start:
        raise TreeRangeError(f"subtree [{start}, {end}) has end before start")
    count = end - start
    if count == 0:
        if start != 0:
            raise TreeRangeError(f"subtree [{start}, {end}) is empty and not the empty tree")
        return EMPTY_ROOT
    # The smallest perfect subtree that can hold count leaves has 2**ceil(log2(count)) leaves;
    # the range must start on a boundary of that size to be a node of the tree.
    span = 1 << (count - 1).bit_length()
    if start & (span - 1):
        raise TreeRangeError(f"subtree [{start}, {end}) is not aligned to {span} leaves")

    # Each set bit of count, from the highest, is one perfect subtree, left to right: because
    # start is aligned to span and the sizes decrease, each subtree starts on its own boundary.
    parts: list[bytes] = []
    offset = start
    for level in range(count.bit_length() - 1, -1, -1):
        if (count >> level) & 1:
            parts.append(node(level, offset >> level))
            offset += 1 << level
    # RFC 6962 splits at the largest power of two below the size, so the root is the fold of
    # these subtrees from the right: H(p0, H(p1, H(p2, ...))).
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def _audit_path(index: int, size: int, from_level: int, node: NodeFn) -> list[bytes]:
    """Return the audit path of leaf ``index`` in a tree of ``size``, from level ``from_level``.

    Precondition: ``0 <= index < size``; the path below ``from_level`` is omitted (used by
    consistency proofs, whose seed covers those levels).
    """
    inner, _ = _decompose(index, size)
    path: list[bytes] = []
    for level in range(from_level, inner):
        # The sibling of the path's node at this level; only at the top inner level can it reach
        # past the last leaf (it is the subtree that holds size - 1), hence the clamp.
        first = ((index >> level) ^ 1) << level
        path.append(subtree_root(first, min(first + (1 << level), size), node))
    for level in range(max(inner, from_level), size.bit_length()):
        # On the right border only right children have a sibling, and it is a complete subtree.
        if (index >> level) & 1:
            path.append(node(level, (index >> level) ^ 1))
    return path


def inclusion_proof(index: int, size: int, node: NodeFn) -> list[bytes]:
    """Return the RFC 6962 inclusion proof (audit path) of leaf ``index`` in a tree of ``size``.

    Preconditions (TreeRangeError otherwise): ``0 <= index < size``. Hashes are ordered from
    the leaf up, as ``verify_inclusion`` expects.
    """
    _check_arg("index", index)
    _check_arg("size", size)
    if index >= size:
        raise TreeRangeError(f"index {index} is out of range for tree size {size}")
    return _audit_path(index, size, 0, node)


def consistency_proof(size1: int, size2: int, node: NodeFn) -> list[bytes]:
    """Return the RFC 6962 consistency proof between the trees of ``size1`` and ``size2``.

    Preconditions (TreeRangeError otherwise): ``0 <= size1 <= size2``. The proof is empty when
    ``size1 == 0`` or ``size1 == size2`` (see ``verify_consistency``).
    """
    _check_arg("size1", size1)
    _check_arg("size2", size2)
    if size1 > size2:
        raise TreeRangeError(f"size1 {size1} is greater than size2 {size2}")
    if size1 in (0, size2):
        return []
    shift, _, _, seeded = _consistency_shape(size1, size2)
    proof: list[bytes] = []
    if seeded:
        # The last perfect subtree of the old tree: 2**shift leaves ending at leaf size1 - 1.
        proof.append(node(shift, (size1 - 1) >> shift))
    proof.extend(_audit_path(size1 - 1, size2, shift, node))
    return proof


# --- compact range ------------------------------------------------------------------------------


class CompactRange:
    """The right-edge frontier of the tree of leaves ``[0, size)``: O(log n) hashes.

    Holds one perfect-subtree hash per set bit of ``size``, largest (leftmost) first. Appending
    a leaf merges the subtrees it completes; ``root()`` folds them. This is how a full audit
    folds every entry of a log into a root in constant memory.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """Create the compact range of the empty tree."""
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild a compact range from ``size`` and ``hashes`` as returned by ``.hashes``.

        Raises ProofError unless ``size`` is a non-negative int and ``hashes`` holds exactly
        ``popcount(size)`` hashes of ``HASH_SIZE`` bytes (largest subtree first). The hashes
        themselves cannot be checked here: compare ``root()`` with a verified root.
        """
        context = "compact range"
        _check_count(context, "size", size)
        _check_proof(context, hashes, size.bit_count(), f"size {size}")
        cr = cls()
        cr._size = size
        cr._hashes = list(hashes)
        return cr

    @property
    def size(self) -> int:
        """The number of leaves folded in so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The frontier hashes, largest subtree first (for persistence with ``size``)."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """Return an independent copy (to try a batch of leaves before committing to it)."""
        return CompactRange.from_hashes(self._size, self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Fold in the next leaf's hash (``leaf_hash(entry)``; ProofError if not 32 bytes)."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            _check_hash("compact range", "leaf hash", leaf_hash)
        hashes = self._hashes
        h = leaf_hash
        size = self._size
        # Each trailing one bit of size is a perfect subtree as large as the one being carried:
        # merge them, like a binary increment carries.
        while size & 1:
            h = hashlib.sha256(_NODE_PREFIX + hashes.pop() + h).digest()
            size >>= 1
        hashes.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Fold in many leaf hashes, in order (same checks as ``append``).

        On a malformed hash, the leaves before it stay folded in and ProofError is raised.
        """
        hashes = self._hashes
        sha256 = hashlib.sha256
        prefix = _NODE_PREFIX
        count = self._size
        try:
            for leaf in leaf_hashes:
                if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
                    _check_hash("compact range", f"leaf hash {count}", leaf)
                h = leaf
                size = count
                # Same carry as in append, inlined: this loop runs for every log entry.
                while size & 1:
                    h = sha256(prefix + hashes.pop() + h).digest()
                    size >>= 1
                hashes.append(h)
                count += 1
        finally:
            self._size = count

    def extend_subtrees(self, subtrees: Iterable[tuple[int, bytes]]) -> None:
        """Fold in perfect subtrees ``(level, hash)`` of ``2**level`` leaves each, in order, as
        ``perfect_subtrees`` returns them for the leaves from ``size`` on (the same result as
        ``extend`` with those leaves). ProofError when a subtree does not start at a multiple
        of its width or a hash is not 32 bytes."""
        hashes = self._hashes
        sha256 = hashlib.sha256
        prefix = _NODE_PREFIX
        for level, subtree in subtrees:
            if not isinstance(subtree, bytes) or len(subtree) != HASH_SIZE:
                _check_hash("compact range", f"subtree hash at {self._size}", subtree)
            h = subtree
            if not 0 <= level < 64 or self._size & ((1 << level) - 1):
                raise ProofError(
                    f"compact range: a subtree of 2**{level} leaves cannot start at {self._size}"
                )
            carry = self._size >> level
            # The subtrees below `level` are none (size is a multiple of its width): carry from
            # there as append does from the leaves.
            while carry & 1:
                h = sha256(prefix + hashes.pop() + h).digest()
                carry >>= 1
            hashes.append(h)
            self._size += 1 << level

    def root(self) -> bytes:
        """Return the RFC 6962 root of the leaves folded so far (``EMPTY_ROOT`` when none)."""
        if not self._hashes:
            return EMPTY_ROOT
        h = self._hashes[-1]
        # Largest subtree first, so fold from the right: the smaller subtrees hang off the right.
        for left in reversed(self._hashes[:-1]):
            h = node_hash(left, h)
        return h

    def __repr__(self) -> str:
        """Show the size and the root (not every hash)."""
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# --- in-memory tree -----------------------------------------------------------------------------


class MerkleTree:
    """An append-only in-memory tree that keeps every complete node (for a local log).

    Level ``L`` is a bytearray of the concatenated hashes of its complete nodes, so a tree of a
    million leaves takes about 64 MB and ``append`` is O(1) amortized. Serves roots at any past
    size, inclusion and consistency proofs, and perfect-subtree hashes (tiles).
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        """Create an empty tree."""
        self._levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (``leaf_hash(entry)``; ProofError if not 32 bytes)."""
        _check_hash("merkle tree", "leaf hash", leaf_hash)
        levels = self._levels
        levels[0] += leaf_hash
        index = len(levels[0]) // HASH_SIZE - 1
        level = 0
        # A right child (odd index) completes its parent; carry up while that keeps happening.
        while index & 1:
            row = levels[level]
            offset = (index - 1) * HASH_SIZE
            parent = node_hash(
                bytes(row[offset : offset + HASH_SIZE]), bytes(row[offset + HASH_SIZE :])
            )
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent
            index >>= 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes, in order."""
        for h in leaf_hashes:
            self.append(h)

    def node(self, level: int, index: int) -> bytes:
        """Return the hash of the perfect subtree ``(level, index)``.

        Raises TreeRangeError unless that subtree is complete in the current tree.
        """
        _check_arg("level", level)
        _check_arg("index", index)
        if level >= len(self._levels) or (index + 1) * HASH_SIZE > len(self._levels[level]):
            raise TreeRangeError(
                f"node (level {level}, index {index}) is not complete in a tree of size {self.size}"
            )
        offset = index * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def _check_size(self, name: str, size: int) -> None:
        """Raise TreeRangeError unless ``0 <= size <= self.size``."""
        _check_arg(name, size)
        if size > self.size:
            raise TreeRangeError(f"{name} {size} is beyond the tree size {self.size}")

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first ``size`` leaves (default: all); ``EMPTY_ROOT`` for 0."""
        if size is None:
            size = self.size
        self._check_size("size", size)
        return subtree_root(0, size, self.node)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves.

        Raises TreeRangeError unless ``0 <= index < size <= self.size``.
        """
        self._check_size("size", size)
        return inclusion_proof(index, size, self.node)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """Return the consistency proof between the first ``size1`` and ``size2`` leaves.

        Raises TreeRangeError unless ``0 <= size1 <= size2 <= self.size``.
        """
        self._check_size("size2", size2)
        return consistency_proof(size1, size2, self.node)
