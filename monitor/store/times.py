"""Times as the database holds them: UTC ISO-8601 text."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(moment: datetime) -> str:
    """The canonical text form of a time in the database: UTC, ISO-8601, microseconds."""
    if moment.tzinfo is None:
        raise ValueError("store: expected a timezone-aware datetime, got a naive one")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_utc(text: str) -> datetime:
    """Inverse of `utc_iso`."""
    return datetime.fromisoformat(text)
