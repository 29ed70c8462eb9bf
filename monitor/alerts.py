"""Alerts: the stable kinds, their severities, and how each fact is keyed for deduplication.

Pure: builds `Alert` values; the store records them and the notifier delivers them. A dedup key
names the fact, not the observation, so the same fact seen again (another poll, another restart,
another signature over the same checkpoint) is alerted once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from monitor.severity import Severity


class AlertKind(StrEnum):
    """The alert kinds; the strings are stored in `alerts.kind` and are a stable contract."""

    SPLIT_VIEW = "split_view"
    ROLLBACK = "rollback"
    BAD_SIGNATURE = "bad_signature"
    BAD_ENTRY = "bad_entry"
    UNEXPECTED_SIGNER = "unexpected_signer"
    IDENTITY_SEEN = "identity_seen"
    UNREADABLE_ENTRY = "unreadable_entry"
    LOG_STALE = "log_stale"
    LOG_ERROR = "log_error"
    WITNESS_QUORUM = "witness_quorum"
    VIEW_ERROR = "view_error"

    @property
    def severity(self) -> Severity:
        """The severity every alert of this kind carries."""
        return _SEVERITY[self]


_SEVERITY = {
    AlertKind.SPLIT_VIEW: Severity.CRITICAL,
    AlertKind.ROLLBACK: Severity.CRITICAL,
    AlertKind.BAD_SIGNATURE: Severity.CRITICAL,
    AlertKind.BAD_ENTRY: Severity.CRITICAL,
    AlertKind.UNEXPECTED_SIGNER: Severity.HIGH,
    AlertKind.IDENTITY_SEEN: Severity.INFO,
    AlertKind.UNREADABLE_ENTRY: Severity.WARNING,
    AlertKind.LOG_STALE: Severity.WARNING,
    AlertKind.LOG_ERROR: Severity.WARNING,
    AlertKind.WITNESS_QUORUM: Severity.HIGH,
    AlertKind.VIEW_ERROR: Severity.WARNING,
}


@dataclass(frozen=True)
class Alert:
    """One fact worth telling a person, with the evidence for it."""

    kind: AlertKind
    dedup_key: str
    summary: str
    log: str | None = None
    rule: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def severity(self) -> Severity:
        """The kind's severity."""
        return self.kind.severity


def fact_key(kind: AlertKind, *parts: object) -> str:
    """A dedup key from the parts that identify a fact; bytes are hex-encoded, long keys hashed.

    Keys stay readable in the database for short facts and bounded for long ones.
    """
    text = ":".join([kind.value, *(p.hex() if isinstance(p, bytes) else str(p) for p in parts)])
    if len(text) <= 200:
        return text
    return f"{kind.value}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"
