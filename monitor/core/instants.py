"""Instants as logs write them: integer milliseconds since the Unix epoch (CT entries' and
SCTs' timestamps, Rekor's integrated times kept in ms), converted to and from aware UTC
datetimes exactly: float seconds lose the last millisecond of some instants (none found in
2020-2030, but a log's timestamps can be anywhere up to the year 9999).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["EPOCH", "from_ms", "to_ms"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def to_ms(at: datetime) -> int:
    """`at` (aware) in whole milliseconds since the epoch, rounded down; ValueError for a naive
    datetime (it names no instant)."""
    if at.tzinfo is None:
        raise ValueError(f"to_ms: expected a datetime with a time zone, got {at.isoformat()}")
    return (at - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The UTC datetime `ms` milliseconds after the epoch; OverflowError when no datetime holds
    it (outside years 1-9999)."""
    return EPOCH + ms * _MS
