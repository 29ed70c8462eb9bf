"""Alert severities, ordered: info < warning < high < critical.

`Severity` is a `StrEnum` so it round-trips through config files, the database and JSON as its
plain value ("warning"), but it compares by rank, not alphabetically: `Severity.HIGH >
Severity.WARNING` holds although "high" < "warning" as strings. Comparing with a plain `str`
raises `TypeError` (no silent alphabetical ordering).
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How urgent an alert is; notify channels deliver alerts at or above their `min_severity`."""

    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 3 for critical."""
        return _RANK[self.value]

    def __lt__(self, other: object) -> bool:
        other = _severity(other)
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        other = _severity(other)
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        other = _severity(other)
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        other = _severity(other)
        return self.rank >= other.rank


def _severity(other: object) -> Severity:
    # Returning NotImplemented would let str's reflected operator compare alphabetically.
    if not isinstance(other, Severity):
        raise TypeError(f"cannot order Severity and {type(other).__name__}")
    return other


_RANK = {"info": 0, "warning": 1, "high": 2, "critical": 3}
