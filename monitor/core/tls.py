"""Reading the TLS presentation language (RFC 8446 section 3) that RFC 6962 structures use:
fixed-size unsigned integers and length-prefixed vectors, from hostile bytes.

One reader for every such structure (CT leaves, SCT lists): each read checks what is left before
it takes anything, and every failure is the caller's own `ParseError` subclass, naming where.
"""

from __future__ import annotations

from monitor.core.errors import ParseError

__all__ = ["TlsReader"]


class TlsReader:
    """A cursor over `data`; failures raise `error(f"{where}: ...")`."""

    def __init__(self, data: bytes, where: str, error: type[ParseError]) -> None:
        self.data = data
        self.pos = 0
        self.where = where
        self._error = error

    def fail(self, message: str) -> ParseError:
        """The caller's error for `message`, prefixed with where the data came from."""
        return self._error(f"{self.where}: {message}")

    def take(self, n: int, what: str) -> bytes:
        """The next `n` bytes."""
        if n > len(self.data) - self.pos:
            raise self.fail(
                f"expected {n} bytes of {what} at offset {self.pos}, "
                f"got {len(self.data) - self.pos}"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, what: str) -> int:
        """A big-endian unsigned integer of `size` bytes."""
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, length_bytes: int, what: str, *, lo: int = 0, hi: int | None = None) -> bytes:
        """A vector with a `length_bytes`-byte length prefix, of `lo` to `hi` bytes."""
        length = self.uint(length_bytes, f"the length of {what}")
        top = (1 << (8 * length_bytes)) - 1 if hi is None else hi
        if not lo <= length <= top:
            raise self.fail(f"expected {what} of {lo} to {top} bytes, got {length}")
        return self.take(length, what)

    @property
    def left(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def end(self) -> None:
        """Nothing may follow the last field."""
        if self.pos != len(self.data):
            raise self.fail(
                f"expected the data to end at offset {self.pos}, got {self.left} more bytes"
            )
