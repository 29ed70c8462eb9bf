"""Chunks handed to backfill worker processes through shared memory: the parent writes a
chunk's bodies into one of a few reused slots and the worker reads them back, instead of
pickling thousands of bytes objects per chunk (which cost as much as hashing them).

IO (shared memory segments), so it lives in the service layer; the pure per-chunk work is
`monitor.core.watch.chunk.examine_chunk`. Kept light to import: a worker imports only this.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from multiprocessing import shared_memory

from monitor.core.watch.chunk import examine_chunk

__all__ = ["ChunkSlots", "examine_shared"]


_ATTACHED: dict[str, shared_memory.SharedMemory] = {}


def examine_shared(
    begin: int, name: str, lengths: bytes
) -> tuple[list[tuple[int, bytes]], list[int]]:
    """`examine_chunk` of a chunk `ChunkSlots.put` wrote to the shared memory `name`."""
    shm = _ATTACHED.get(name)
    if shm is None:
        if len(_ATTACHED) > 8:  # slots the parent replaced with larger ones
            for old in _ATTACHED.values():
                old.close()
            _ATTACHED.clear()
        shm = _ATTACHED[name] = shared_memory.SharedMemory(name)
    sizes = array("Q")
    sizes.frombytes(lengths)
    if sum(sizes) > shm.size:
        raise ValueError("examine_shared: the lengths overrun the shared memory")
    buf = shm.buf
    if buf is None:  # pragma: no cover - only after close()
        raise ValueError("examine_shared: the shared memory is closed")
    bodies: list[bytes] = []
    pos = 0
    for size in sizes:
        bodies.append(bytes(buf[pos : pos + size]))
        pos += size
    return examine_chunk(begin, bodies)


class ChunkSlots:
    """Shared memory the parent writes chunks into for `examine_shared`: `count` slots reused in
    turn (at most `count` chunks in flight), each grown when a chunk does not fit."""

    def __init__(self, count: int) -> None:
        self._slots: list[shared_memory.SharedMemory | None] = [None] * count
        self._next = 0

    def put(self, bodies: Sequence[bytes]) -> tuple[str, bytes]:
        """Write `bodies` into the next slot: (its name, the lengths) for `examine_shared`."""
        i = self._next
        self._next = (i + 1) % len(self._slots)
        need = sum(map(len, bodies))
        shm = self._slots[i]
        if shm is None or shm.size < need:
            if shm is not None:
                shm.close()
                shm.unlink()
            shm = self._slots[i] = shared_memory.SharedMemory(create=True, size=max(need, 1))
        buf = shm.buf
        if buf is None:  # pragma: no cover - only after close()
            raise ValueError("ChunkSlots.put: the shared memory is closed")
        pos = 0
        for body in bodies:
            buf[pos : pos + len(body)] = body
            pos += len(body)
        return shm.name, array("Q", map(len, bodies)).tobytes()

    def close(self) -> None:
        """Free every slot."""
        for shm in self._slots:
            if shm is not None:
                shm.close()
                shm.unlink()
        self._slots = [None] * len(self._slots)
