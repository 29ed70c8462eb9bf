"""Chunks handed to backfill worker processes through shared memory: the parent writes a
chunk's bytes (its bundles as fetched, or its bodies) into one of a few reused slots and the
worker reads them in place, instead of pickling thousands of bytes objects per chunk (which
cost as much as hashing them).

IO (shared memory segments), so it lives in the service layer; the pure per-chunk work is
`monitor.core.watch.chunk.examine_chunk`. Kept light to import: a worker imports only this.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from multiprocessing import shared_memory

from monitor.core.watch.chunk import Examined, Layout, examine_chunk

__all__ = ["ChunkSlots", "examine_shared"]


_ATTACHED: dict[str, shared_memory.SharedMemory] = {}
"""The slots this worker has attached: a worker lives for one backfill, and its slots with it."""


def examine_shared(begin: int, name: str, layout: Layout) -> Examined:
    """`examine_chunk` of a chunk `ChunkSlots.put` wrote to the shared memory `name`."""
    shm = _ATTACHED.get(name)
    if shm is None:
        shm = _ATTACHED[name] = shared_memory.SharedMemory(name)
    buf = shm.buf
    if buf is None:  # pragma: no cover - only after close()
        raise ValueError("examine_shared: the shared memory is closed")
    return examine_chunk(begin, buf, layout)


class ChunkSlots:
    """Shared memory the parent writes chunks into for `examine_shared`: `count` slots of
    `size` bytes each, made once (memory is taken only as a slot's pages are first written, so
    a slot costs about the largest chunk it held), each attached once by each worker. The
    caller says which slot: one no worker still reads."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self._slots: list[shared_memory.SharedMemory | None] = [None] * count
        self._reserved = [0] * count

    def put(self, slot: int, parts: Sequence[bytes]) -> str:
        """Write `parts` end to end into `slot` (at most `size` bytes in all, else ValueError);
        its name, for `examine_shared`."""
        need = sum(map(len, parts))
        if need > self.size:
            raise ValueError(f"ChunkSlots.put: {need} bytes do not fit a slot of {self.size}")
        shm = self._slots[slot]
        if shm is None:
            shm = self._slots[slot] = shared_memory.SharedMemory(create=True, size=self.size)
        if need > self._reserved[slot]:
            # Pages of a full /dev/shm would fail as they are written, with SIGBUS (the
            # process killed, the backfill repeated after each restart): reserved first, they
            # fail here, with an OSError the scanner answers by scanning in its process.
            os.posix_fallocate(getattr(shm, "_fd"), 0, need)  # noqa: B009 - no public fd
            self._reserved[slot] = need
        buf = self.buffer(slot)
        pos = 0
        for part in parts:
            buf[pos : pos + len(part)] = part
            pos += len(part)
        return shm.name

    def buffer(self, slot: int) -> memoryview:
        """The bytes of `slot` (what `put` wrote, and whatever follows)."""
        shm = self._slots[slot]
        buf = shm.buf if shm is not None else None
        if buf is None:  # pragma: no cover - only before put or after close()
            raise ValueError("ChunkSlots: the slot holds no shared memory")
        return buf

    def close(self) -> None:
        """Free every slot."""
        for shm in self._slots:
            if shm is not None:
                shm.close()
                shm.unlink()
        self._slots = [None] * len(self._slots)
