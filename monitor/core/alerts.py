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

from monitor.core.severity import Severity


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


ALERTS_DOC = "docs/alerts.md"
"""Where each kind is explained; a message links to its section (`doc_link`)."""

# One line an on-call engineer can act on, per kind. Messages take it from here; each kind's
# section of docs/alerts.md carries the same line as "**On call:** ..." (tests/unit/test_docs.py
# checks that they agree), so the two cannot drift.
ON_CALL: Mapping[AlertKind, str] = MappingProxyType(
    {
        AlertKind.SPLIT_VIEW: (
            "Treat the log as compromised until explained: export the evidence, keep both signed "
            "notes and report them to the log operator; do not rely on its inclusion proofs "
            "meanwhile."
        ),
        AlertKind.ROLLBACK: (
            "Check whether the view keeps serving the older size (a stale replica or mirror) or "
            "the log lost committed entries; report a log that lost entries to its operator."
        ),
        AlertKind.BAD_SIGNATURE: (
            "First rule out a configuration change (key rotation, new shard, wrong origin or "
            "URL); otherwise the log serves checkpoints its key did not sign: keep the note and "
            "report it."
        ),
        AlertKind.BAD_ENTRY: (
            "The log serves entries its signed checkpoint does not commit to: fetch the range "
            "yourself to confirm, keep the evidence and report it to the log operator."
        ),
        AlertKind.UNEXPECTED_SIGNER: (
            "Someone signed as the watched identity outside allowed_signers: find out whether it "
            "was a legitimate new workflow (then extend allowed_signers) or a compromised "
            "credential, repository or workflow."
        ),
        AlertKind.IDENTITY_SEEN: "Confirm that this signing was expected.",
        AlertKind.UNREADABLE_ENTRY: (
            "Fetch the entry by its log index and look at it with tlog-monitor inspect: an entry "
            "built to hide a signer next to your identity deserves the attention of an "
            "unexpected_signer."
        ),
        AlertKind.LOG_STALE: (
            "Run report status: an error_since means the log is unreachable (see log_error); "
            "otherwise it answers but does not grow (a quiet private log needs a larger "
            "max_stale)."
        ),
        AlertKind.LOG_ERROR: (
            "The log is not monitored while this lasts: check network, DNS and proxies from this "
            "host and the log's status page; repeated 429s mean requests_per_minute is too high."
        ),
        AlertKind.WITNESS_QUORUM: (
            "Check whether witnesses are down or were rotated (update [[log.witness]]) and "
            "whether the log stopped submitting to them; report invalid cosignatures to the "
            "witness operator."
        ),
        AlertKind.VIEW_ERROR: (
            "The view is misconfigured or hostile, not the log: check the view's URL and whoever "
            "runs it."
        ),
    }
)


def doc_link(kind: AlertKind) -> str:
    """The section of docs/alerts.md that explains `kind` ("docs/alerts.md#split_view")."""
    return f"{ALERTS_DOC}#{kind.value}"


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
