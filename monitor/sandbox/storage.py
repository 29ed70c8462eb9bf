"""Append-only leaf files and small state files for the sandbox log.

A leaf file holds one record per log entry, in log order::

    record = length (uint32, big-endian) || integrated_time (uint64, big-endian) || body

Records are appended and flushed after every batch; ``sync()`` fsyncs (the admin API calls
it once per append batch). A torn trailing record (a crash mid-write) is cut off on open.
Only the offsets of the records are kept in memory (an ``array('Q')``, 8 bytes an entry),
plus their integration times (another 8 bytes); bodies are read back with ``os.pread``.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IQ")


class LeafFile:
    """An append-only file of length-prefixed entry bodies with an in-memory offset index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = array("Q")
        self._times = array("Q")
        path.touch(exist_ok=True)
        self._fd = os.open(path, os.O_RDWR)
        self._end = 0

    def load(self) -> Iterator[bytes]:
        """Scan the file, index its records and yield each body in order (once, at startup).

        A torn trailing record is truncated away.
        """
        size = os.fstat(self._fd).st_size
        pos = 0
        with open(self._fd, "rb", buffering=1 << 20, closefd=False) as f:
            while pos + _HEADER.size <= size:
                length, when = _HEADER.unpack(f.read(_HEADER.size))
                end = pos + _HEADER.size + length
                if end > size:
                    break
                body = f.read(length)
                self._offsets.append(pos)
                self._times.append(when)
                yield body
                pos = end
        if pos != size:
            log.warning("%s: cutting a torn trailing record at offset %d", self.path, pos)
            os.ftruncate(self._fd, pos)
        self._end = pos

    def __len__(self) -> int:
        return len(self._offsets)

    def append(self, bodies: Sequence[bytes], integrated_time: int) -> None:
        """Append records for ``bodies`` (all with ``integrated_time``) and flush them."""
        parts: list[bytes] = []
        pos = self._end
        for body in bodies:
            self._offsets.append(pos)
            self._times.append(integrated_time)
            parts.append(_HEADER.pack(len(body), integrated_time))
            parts.append(body)
            pos += _HEADER.size + len(body)
        data = b"".join(parts)
        written = os.pwrite(self._fd, data, self._end)
        if written != len(data):
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
        self._end = pos

    def sync(self) -> None:
        """Make every appended record durable."""
        os.fsync(self._fd)

    def integrated_time(self, index: int) -> int:
        """The integration time (Unix seconds) of entry ``index``."""
        return self._times[index]

    def read(self, index: int) -> bytes:
        """The body of entry ``index``."""
        return self.read_range(index, index + 1)[0]

    def read_range(self, start: int, end: int) -> list[bytes]:
        """The bodies of entries ``start`` (inclusive) to ``end`` (exclusive), one read."""
        if not 0 <= start <= end <= len(self._offsets):
            raise IndexError(f"leaf range [{start}, {end}) outside [0, {len(self._offsets)})")
        if start == end:
            return []
        first = self._offsets[start]
        last = self._offsets[end] if end < len(self._offsets) else self._end
        data = os.pread(self._fd, last - first, first)
        out: list[bytes] = []
        pos = 0
        for _ in range(end - start):
            length, _when = _HEADER.unpack_from(data, pos)
            out.append(data[pos + _HEADER.size : pos + _HEADER.size + length])
            pos += _HEADER.size + length
        return out

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self._fd)


def write_json_atomic(path: Path, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON: write a temporary file, fsync, rename."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with mode 0600 from the start (no window with wider permissions)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, 0o600)
