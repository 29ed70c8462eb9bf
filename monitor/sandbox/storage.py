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
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IQ")


def encode_bundle(bodies: Iterable[bytes]) -> bytes:
    """A tlog-tiles entry bundle: each body after its uint16 length."""
    return b"".join(len(b).to_bytes(2, "big") + b for b in bodies)


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
        offsets = array("Q")
        pos = self._end
        for body in bodies:
            offsets.append(pos)
            parts.append(_HEADER.pack(len(body), integrated_time))
            parts.append(body)
            pos += _HEADER.size + len(body)
        data = b"".join(parts)
        written = os.pwrite(self._fd, data, self._end)
        if written != len(data):
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
        # Indexed once written: a failed write leaves bytes past the end, overwritten next time.
        self._offsets.extend(offsets)
        self._times.extend([integrated_time] * len(offsets))
        self._end = pos

    def sync(self) -> None:
        """Make every appended record durable."""
        os.fsync(self._fd)

    def integrated_time(self, index: int) -> int:
        """The integration time (Unix seconds) of entry ``index``."""
        return self._times[index]

    def offset(self, index: int) -> int:
        """Where record ``index`` starts (``len(self)``: where the file ends)."""
        return self._offsets[index] if index < len(self._offsets) else self._end

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


class BundleFile:
    """A leaf file's bodies laid out as tlog-tiles entry bundles, end to end, beside it.

    Each record is ``uint16 length || body``, so any full or partial bundle is one contiguous
    range of this file that the server hands to ``sendfile``, as a static tiles log serves its
    bundle files (rebuilding each bundle made the sandbox's CPU, sharing the machine with the
    monitor, part of what a benchmark of the monitor measured). Record ``i`` starts
    ``i * (leaf header - 2)`` bytes before its leaf record, so it needs no index of its own.

    The leaf file is the truth: this file is checked against it byte for byte on every start
    (`follow`), and written before it on every append (a failed append leaves bytes past the
    leaf file's records, which the next append or start overwrites or cuts). A body too long
    for a bundle's length prefix turns the file off: bundles are then built from the bodies.
    """

    _SHRINK = _HEADER.size - 2
    _FLUSH_BYTES = 8 << 20

    def __init__(self, path: Path, leaves: LeafFile) -> None:
        self.path = path
        self._leaves = leaves
        self.usable = True
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._file = open(fd, "rb", buffering=0)  # noqa: SIM115 - closed by close()

    def _where(self, index: int) -> int:
        return self._leaves.offset(index) - index * self._SHRINK

    def follow(self, bodies: Iterable[bytes]) -> Iterator[bytes]:
        """Pass the leaf file's bodies through as it loads them, making this file hold exactly
        their records: the records already here are compared byte for byte, and from the first
        that differs (torn by a crash, missing, or a body edited by hand) on they are written
        again; whatever follows the last is cut."""
        fd = self._file.fileno()
        pos, verified = 0, True
        pending: list[bytes] = []
        pending_at = pending_bytes = 0
        with open(fd, "rb", buffering=1 << 20, closefd=False) as reader:
            for body in bodies:
                if self.usable and len(body) > 0xFFFF:
                    self._turn_off()
                if self.usable:
                    record = len(body).to_bytes(2, "big") + body
                    if verified and reader.read(len(record)) != record:
                        verified, pending_at = False, pos
                    if not verified:
                        pending.append(record)
                        pending_bytes += len(record)
                        if pending_bytes >= self._FLUSH_BYTES:
                            self._write_at(b"".join(pending), pending_at)
                            pending_at += pending_bytes
                            pending, pending_bytes = [], 0
                    pos += len(record)
                yield body
        if self.usable:
            self._write_at(b"".join(pending), pending_at)
            os.ftruncate(fd, pos)

    def _write_at(self, data: bytes, offset: int) -> None:
        written = os.pwrite(self._file.fileno(), data, offset)
        if written != len(data):
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")

    def _turn_off(self) -> None:
        # The file stays open until close(): a response may be sending from it right now.
        self.usable = False
        self.path.unlink(missing_ok=True)

    def append(self, bodies: Sequence[bytes]) -> None:
        """Write the records of ``bodies``, the leaf file's next entries, before it has them."""
        if not self.usable:
            return
        if any(len(b) > 0xFFFF for b in bodies):
            self._turn_off()
            return
        self._write_at(encode_bundle(bodies), self._where(len(self._leaves)))

    def span(self, start: int, end: int) -> tuple[BinaryIO, int, int] | None:
        """(file, offset, length) of the bundle of entries ``[start, end)``; None when off."""
        if not self.usable:
            return None
        offset = self._where(start)
        return self._file, offset, self._where(end) - offset

    def sync(self) -> None:
        """Make every written record durable."""
        if self.usable:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()


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
