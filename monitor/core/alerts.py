"""Alerts: the stable kinds, their severities, and how each fact is keyed for deduplication.

Pure: builds `Alert` values; the store records them and the notifier delivers them. A dedup key
names the fact, not the observation, so the same fact seen again (another poll, another restart,
another signature over the same checkpoint) is alerted once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypedDict

from monitor.core.evidence import build_split_view
from monitor.core.instants import from_ms
from monitor.core.note import NoteVerifier
from monitor.core.severity import Severity
from monitor.core.trust import ChangeKind, TrustChange, TrustedLogInfo, TrustItem


class AlertKind(StrEnum):
    """The alert kinds; the strings are stored in `alerts.kind` and are a stable contract."""

    SPLIT_VIEW = "split_view"
    ROLLBACK = "rollback"
    BAD_SIGNATURE = "bad_signature"
    BAD_ENTRY = "bad_entry"
    UNEXPECTED_SIGNER = "unexpected_signer"
    IDENTITY_SEEN = "identity_seen"
    CERTIFICATE_ISSUED = "certificate_issued"
    UNREADABLE_ENTRY = "unreadable_entry"
    LOG_STALE = "log_stale"
    LOG_ERROR = "log_error"
    WITNESS_QUORUM = "witness_quorum"
    VIEW_ERROR = "view_error"
    TRUST_CHANGED = "trust_changed"
    TRUST_ERROR = "trust_error"
    FROZEN_LOG_GREW = "frozen_log_grew"
    SCT_NOT_INCORPORATED = "sct_not_incorporated"
    UNLOGGED_CERTIFICATE = "unlogged_certificate"

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
    AlertKind.CERTIFICATE_ISSUED: Severity.INFO,
    AlertKind.UNREADABLE_ENTRY: Severity.WARNING,
    AlertKind.LOG_STALE: Severity.WARNING,
    AlertKind.LOG_ERROR: Severity.WARNING,
    AlertKind.WITNESS_QUORUM: Severity.HIGH,
    AlertKind.VIEW_ERROR: Severity.WARNING,
    AlertKind.TRUST_CHANGED: Severity.HIGH,
    AlertKind.TRUST_ERROR: Severity.WARNING,
    AlertKind.FROZEN_LOG_GREW: Severity.HIGH,
    AlertKind.SCT_NOT_INCORPORATED: Severity.CRITICAL,
    AlertKind.UNLOGGED_CERTIFICATE: Severity.HIGH,
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
        AlertKind.CERTIFICATE_ISSUED: (
            "Confirm that this certificate was expected: a certificate can sign without Rekor, "
            "so one nobody asked for means the identity's credential was used."
        ),
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
        AlertKind.TRUST_CHANGED: (
            "Confirm the change against Sigstore's announcements and its root-signing "
            "repository; a key or log change nobody announced is an incident: keep the evidence "
            "and report it to the Sigstore security contact."
        ),
        AlertKind.TRUST_ERROR: (
            "The monitor keeps its last good trust: check the TUF repository's reachability from "
            "this host; expired, rollback, bad_signature or hash_mismatch mean someone serves "
            "metadata Sigstore did not sign: find out who before trusting it."
        ),
        AlertKind.FROZEN_LOG_GREW: (
            "A log whose validity window has ended signed a larger tree: confirm with the log "
            "operator whether the end date was moved (a trust_changed alert would say so); "
            "otherwise keep both checkpoints and report it."
        ),
        AlertKind.SCT_NOT_INCORPORATED: (
            "The CT log signed an SCT and did not add the certificate within its maximum merge "
            "delay: export the evidence (the SCT verifies offline with the log's key) and report "
            "it to the CT log operator and the Sigstore security contact."
        ),
        AlertKind.UNLOGGED_CERTIFICATE: (
            "A certificate was issued to a watched identity and no monitored Rekor log shows it "
            "used: ask its owner whether they signed without Rekor; if not, treat the identity's "
            "OIDC token as stolen and revoke what it grants."
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


# -- one constructor per kind --------------------------------------------------------------------
#
# Every alert the monitor raises is built by one of the functions below, so a kind's dedup key,
# summary and evidence fields (documented in docs/alerts.md; tests/unit/test_alert_kinds.py
# checks the keys against it) are decided in one place. Details are JSON-ready TypedDicts: the
# store writes them as they are.

PRIMARY_VIEW = "primary"
"""The log's own endpoint, as a view."""
VERIFIED_STATE = "verified state"
"""Stands for our own verified checkpoint on the first side of a split view."""


class SplitViewDetails(TypedDict, total=False):
    """`split_view` evidence; `evidence` only when the log's key was at hand."""

    tree_id: str
    reason: str
    view_a: str
    note_a: str
    view_b: str
    note_b: str
    sizes: list[int]
    roots: list[str]
    proof: list[str] | None
    evidence: dict[str, Any]


class RollbackDetails(TypedDict):
    """`rollback` evidence."""

    tree_id: str
    view: str
    note: str
    size: int
    high_water: int
    high_water_note: str
    consistent_with_verified: bool | None
    proof_error: str | None


class BadSignatureDetails(TypedDict):
    """`bad_signature` evidence."""

    view: str
    tree_id: str
    note: str
    error: str


class ViewErrorDetails(TypedDict):
    """`view_error` evidence."""

    view: str
    reason: str
    tree_id: str
    note: str
    error: str


class WitnessQuorumDetails(TypedDict):
    """`witness_quorum` evidence."""

    view: str
    size: int
    root: str
    note: str
    quorum: int
    cosigners: list[str]
    invalid: list[str]


class LogErrorDetails(TypedDict):
    """`log_error` evidence."""

    view: str
    error_since: str
    last_error: str


class LogStaleDetails(TypedDict):
    """`log_stale` evidence."""

    tree_id: str
    verified_size: int
    last_growth_at: str
    note: str


class ScanBadEntryDetails(TypedDict):
    """`bad_entry` evidence from a scan."""

    tree_id: str
    scan_cursor: int
    verified_size: int
    verified_root: str
    verified_note: str
    what: str


class SearchBadEntryDetails(TypedDict):
    """`bad_entry` evidence from a search."""

    uuid: str
    tree_id: str
    log_index: int
    found_by: str
    error: str


class MatchDetails(TypedDict):
    """`unexpected_signer` and `identity_seen` evidence."""

    tree_id: str
    tree_index: int
    log_index: int
    signer_index: int
    identity: dict[str, object]
    reasons: list[str]


class CertificateDetails(TypedDict):
    """`certificate_issued` evidence, and `unexpected_signer`'s for a CT log's certificate."""

    tree_id: str
    tree_index: int
    log_index: int
    entry_type: str
    timestamp: int
    certificate_id: str | None
    identity: dict[str, object]
    reasons: list[str]


class SkippedDetails(TypedDict):
    """One skipped signature of an `unreadable_entry`."""

    position: int
    reason: str


class UnreadableDetails(TypedDict):
    """`unreadable_entry` evidence."""

    tree_id: str
    tree_index: int
    log_index: int
    error: str | None
    signers_read: int
    skipped_count: int
    skipped: list[SkippedDetails]


class TrustChangedDetails(TypedDict):
    """`trust_changed` evidence."""

    source: str
    change: str
    section: str
    name: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    tuf_versions: dict[str, int] | None


class TrustErrorDetails(TypedDict):
    """`trust_error` evidence when the trust source fails."""

    source: str
    reason: str
    error_since: str
    errors: int
    last_error: str


class UnverifiableLogDetails(TypedDict):
    """`trust_error` evidence for a log whose key the monitor cannot verify with."""

    source: str
    reason: str
    base_url: str
    log_kind: str
    key_id: str
    key_sha256: str
    key_details: str
    error: str


class FrozenLogGrewDetails(TypedDict):
    """`frozen_log_grew` evidence."""

    tree_id: str
    frozen_size: int
    size: int
    note: str


def _alert(
    kind: AlertKind,
    parts: tuple[object, ...],
    summary: str,
    log_name: str,
    details: Mapping[str, object],
    rule: str | None = None,
) -> Alert:
    return Alert(kind, fact_key(kind, *parts), summary, log=log_name, rule=rule, details=details)


def note_digest(note: str) -> str:
    """Identifies a note's signed body: v1 re-signs on every request, so signatures vary."""
    body = note.split("\n\n", 1)[0]
    return hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def split_view_alert(
    log_name: str,
    tree_id: str,
    a: tuple[str, str],
    b: tuple[str, str],
    *,
    sizes: tuple[int, int],
    roots: tuple[bytes, bytes],
    proof: Sequence[bytes] | None,
    reason: str,
    day: str,
    verifier: NoteVerifier | None = None,
) -> Alert:
    """Two validly signed checkpoints of one tree that cannot both be true.

    `a` and `b` are (view, signed note); `b` is the checkpoint just observed. A forked view goes
    on serving a growing tree that conflicts at every size, so the fact alerted is "these views
    disagree about this tree", once per tree, disagreeing views and UTC day (`day`): one alert,
    and a daily reminder while it lasts, rather than one per poll. The disagreeing views are the
    non-primary ones involved (the primary only when it contradicts our own verified state), so
    the same fork is one fact whichever side is observed first. Every conflicting checkpoint
    stays recorded as evidence. With the log's key (`verifier`), the details carry a portable
    evidence document (`monitor.core.evidence`) under "evidence".
    """
    odd = sorted({v for v, _ in (a, b) if v not in (PRIMARY_VIEW, VERIFIED_STATE)})
    details: SplitViewDetails = {
        "tree_id": tree_id,
        "reason": reason,
        "view_a": a[0],
        "note_a": a[1],
        "view_b": b[0],
        "note_b": b[1],
        "sizes": list(sizes),
        "roots": [r.hex() for r in roots],
        "proof": None if proof is None else [h.hex() for h in proof],
    }
    if verifier is not None:
        details["evidence"] = build_split_view(
            log_name=log_name,
            tree_id=tree_id,
            verifier=verifier,
            a=a,
            b=b,
            proof=proof,
            reason=reason,
        )
    summary = (
        f"{log_name}: two validly signed checkpoints cannot both be true "
        f"(size {sizes[0]} from {a[0]} vs size {sizes[1]} from {b[0]}): {reason}"
    )
    return _alert(
        AlertKind.SPLIT_VIEW,
        (log_name, tree_id, *(odd or [PRIMARY_VIEW]), day),
        summary,
        log_name,
        details,
    )


def rollback_alert(
    log_name: str,
    tree_id: str,
    view: str,
    *,
    note: str,
    size: int,
    root: bytes,
    high_water: int,
    high_water_note: str,
    consistent: bool | None,
    proof_error: str | None = None,
) -> Alert:
    """A validly signed checkpoint below the high-water mark; one fact per view, size and root.

    `consistent` is None when no consistency proof could be had (`proof_error` says why).
    """
    unproven = "" if consistent is not None else " (the log served no consistency proof)"
    details: RollbackDetails = {
        "tree_id": tree_id,
        "view": view,
        "note": note,
        "size": size,
        "high_water": high_water,
        "high_water_note": high_water_note,
        "consistent_with_verified": consistent,
        "proof_error": proof_error,
    }
    summary = (
        f"{log_name}: {view} served a validly signed checkpoint of size {size}, below the "
        f"high-water mark {high_water}{unproven}"
    )
    return _alert(
        AlertKind.ROLLBACK, (log_name, tree_id, view, size, root), summary, log_name, details
    )


def bad_signature_alert(log_name: str, view: str, tree_id: str, note: str, error: str) -> Alert:
    """The log's own endpoint served a checkpoint that does not verify; one fact per signed
    body (`note_digest`)."""
    details: BadSignatureDetails = {"view": view, "tree_id": tree_id, "note": note, "error": error}
    summary = f"{log_name}: checkpoint from {view} failed verification: {error}"
    return _alert(
        AlertKind.BAD_SIGNATURE, (log_name, view, note_digest(note)), summary, log_name, details
    )


def view_error_alert(
    log_name: str, view: str, *, reason: str, tree_id: str, note: str, error: str, day: str
) -> Alert:
    """A view other than the log's endpoint served a note that is not the log's checkpoint;
    one fact per view, `reason` (a few fixed words) and UTC `day`."""
    details: ViewErrorDetails = {
        "view": view,
        "reason": reason,
        "tree_id": tree_id,
        "note": note,
        "error": error,
    }
    summary = (
        f"{log_name}: {view} served a checkpoint that is not the log's ({reason}); "
        f"ignored, not held against the log: {error}"
    )
    return _alert(AlertKind.VIEW_ERROR, (log_name, view, reason, day), summary, log_name, details)


def witness_quorum_alert(
    log_name: str,
    view: str,
    *,
    size: int,
    root: bytes,
    note: str,
    quorum: int,
    cosigners: Sequence[str],
    invalid: Sequence[str],
    day: str,
) -> Alert:
    """A cosigned checkpoint that carries fewer valid witness signatures than the quorum.

    One fact per log, view and UTC day: a witness endpoint that stays below quorum serves a new
    checkpoint every poll, and each is the same news.
    """
    details: WitnessQuorumDetails = {
        "view": view,
        "size": size,
        "root": root.hex(),
        "note": note,
        "quorum": quorum,
        "cosigners": list(cosigners),
        "invalid": list(invalid),
    }
    summary = (
        f"{log_name}: checkpoint of size {size} from {view} carries {len(cosigners)} "
        f"valid witness signature(s), below the quorum of {quorum}"
    )
    return _alert(AlertKind.WITNESS_QUORUM, (log_name, view, day), summary, log_name, details)


def log_error_alert(
    log_name: str, view: str, *, error_since: str, errors: int, last_error: str
) -> Alert:
    """A view (or a part of the poll) has failed every poll since `error_since`; one fact per
    outage."""
    details: LogErrorDetails = {
        "view": view,
        "error_since": error_since,
        "last_error": last_error,
    }
    summary = (
        f"{log_name}: {view} has failed since {error_since} ({errors} failed polls): {last_error}"
    )
    return _alert(AlertKind.LOG_ERROR, (log_name, view, error_since), summary, log_name, details)


def log_stale_alert(
    log_name: str,
    tree_id: str,
    *,
    verified_size: int,
    last_growth_at: str,
    note: str,
    max_stale: timedelta,
) -> Alert:
    """The verified size has not grown for `max_stale`; one fact per tree and stuck size."""
    details: LogStaleDetails = {
        "tree_id": tree_id,
        "verified_size": verified_size,
        "last_growth_at": last_growth_at,
        "note": note,
    }
    summary = (
        f"{log_name}: no newer verified checkpoint since {last_growth_at} "
        f"(size {verified_size}, longer than max_stale {max_stale})"
    )
    return _alert(
        AlertKind.LOG_STALE, (log_name, tree_id, verified_size), summary, log_name, details
    )


def scan_bad_entry_alert(
    log_name: str,
    tree_id: str,
    *,
    scan_cursor: int,
    verified_size: int,
    verified_root: bytes,
    verified_note: str,
    what: str,
) -> Alert:
    """Entries a scan read do not hash into the verified tree; one fact per failing range."""
    details: ScanBadEntryDetails = {
        "tree_id": tree_id,
        "scan_cursor": scan_cursor,
        "verified_size": verified_size,
        "verified_root": verified_root.hex(),
        "verified_note": verified_note,
        "what": what,
    }
    summary = (
        f"{log_name}: {what} served by the log do not hash into the verified tree "
        f"of size {verified_size}"
    )
    return _alert(
        AlertKind.BAD_ENTRY,
        (log_name, tree_id, scan_cursor, verified_size),
        summary,
        log_name,
        details,
    )


def search_bad_entry_alert(
    log_name: str, uuid: str, tree_id: str, *, log_index: int, found_by: str, error: str
) -> Alert:
    """An entry the search index listed does not prove; one fact per leaf (the UUID's last 64
    hex digits)."""
    details: SearchBadEntryDetails = {
        "uuid": uuid,
        "tree_id": tree_id,
        "log_index": log_index,
        "found_by": found_by,
        "error": error,
    }
    summary = (
        f"{log_name}: entry {uuid} found through the search index does not prove "
        f"part of the verified log: {error}"
    )
    return _alert(
        AlertKind.BAD_ENTRY, (log_name, "search", uuid[-64:].lower()), summary, log_name, details
    )


@dataclass(frozen=True)
class SignerSeen:
    """A watched identity's signer in one entry: what `unexpected_signer` and `identity_seen`
    say. `tree_index` is the entry's index in its tree (the fact's identity, stable across
    shards), `log_index` the global one users look entries up by."""

    log_name: str
    tree_id: str
    tree_index: int
    log_index: int
    rule: str
    signer_index: int
    """The signature's position in the entry."""
    signer: str
    """Who signed, in a few words for the summary."""
    identity: Mapping[str, object]
    reasons: Sequence[str]

    def alert(self, kind: AlertKind, summary: str) -> Alert:
        """The alert of `kind`: both kinds share their dedup key and evidence."""
        details: MatchDetails = {
            "tree_id": self.tree_id,
            "tree_index": self.tree_index,
            "log_index": self.log_index,
            "signer_index": self.signer_index,
            "identity": dict(self.identity),
            "reasons": list(self.reasons),
        }
        parts = (self.log_name, self.tree_id, self.tree_index, self.rule, self.signer_index)
        return _alert(kind, parts, summary, self.log_name, details, rule=self.rule)


def unexpected_signer_alert(seen: SignerSeen) -> Alert:
    """A watched identity signed by someone outside `allowed_signers`; one fact per entry, rule
    and signature."""
    return seen.alert(
        AlertKind.UNEXPECTED_SIGNER,
        f"{seen.log_name}: entry {seen.log_index} matches rule {seen.rule} but was signed by "
        f"{seen.signer}, which is not an allowed signer",
    )


def identity_seen_alert(seen: SignerSeen) -> Alert:
    """A watched identity signed (the rule has no `allowed_signers`, or the signer is one);
    keyed as `unexpected_signer_alert`."""
    return seen.alert(
        AlertKind.IDENTITY_SEEN,
        f"{seen.log_name}: entry {seen.log_index} signed by {seen.signer} (rule {seen.rule})",
    )


@dataclass(frozen=True)
class CertificateSeen:
    """A CT log's certificate (or precertificate) naming a watched identity: what
    `certificate_issued` and a certificate's `unexpected_signer` say. The fact is the certificate
    (`certificate_id`: issuer and serial number), wherever and however often it is logged."""

    log_name: str
    tree_id: str
    tree_index: int
    log_index: int
    rule: str
    entry_type: str
    """"x509_entry" or "precert_entry"."""
    timestamp: int
    """The CT entry's timestamp (ms since the epoch, the log's promise of when it logged it)."""
    certificate_id: str | None
    """None for a certificate no trusted CA issued (an `any_issuer` rule's): it is not known
    to be the certificate with that issuer and serial number, so the fact is the CT entry."""
    signer: str
    identity: Mapping[str, object]
    reasons: Sequence[str]

    def alert(self, kind: AlertKind, summary: str) -> Alert:
        """The alert of `kind`, keyed by `certificate_alert_key`, or by the CT entry when the
        certificate has no id."""
        details: CertificateDetails = {
            "tree_id": self.tree_id,
            "tree_index": self.tree_index,
            "log_index": self.log_index,
            "entry_type": self.entry_type,
            "timestamp": self.timestamp,
            "certificate_id": self.certificate_id,
            "identity": dict(self.identity),
            "reasons": list(self.reasons),
        }
        if self.certificate_id is None:
            key = fact_key(kind, self.log_name, self.tree_id, self.tree_index, self.rule)
        else:
            key = certificate_alert_key(kind, self.rule, self.certificate_id)
        return Alert(kind, key, summary, log=self.log_name, rule=self.rule, details=details)


def certificate_alert_key(kind: AlertKind, rule: str, certificate_id: str) -> str:
    """The dedup key of a certificate's `certificate_issued` or `unexpected_signer` for `rule`:
    one fact per certificate, whether logged as a precertificate, a certificate or both, in
    one CT log or several."""
    return fact_key(kind, "certificate", rule, certificate_id)


def certificate_issued_alert(seen: CertificateSeen) -> Alert:
    """A CT log holds a certificate for a watched identity, issued to an allowed signer (or the
    rule lists none)."""
    return seen.alert(
        AlertKind.CERTIFICATE_ISSUED,
        f"{seen.log_name}: entry {seen.log_index} logs a certificate for {seen.signer} "
        f"(rule {seen.rule})",
    )


def unexpected_certificate_alert(seen: CertificateSeen) -> Alert:
    """A CT log holds a certificate for a watched identity issued to someone outside
    `allowed_signers`: an `unexpected_signer` keyed by the certificate."""
    return seen.alert(
        AlertKind.UNEXPECTED_SIGNER,
        f"{seen.log_name}: entry {seen.log_index} logs a certificate matching rule {seen.rule} "
        f"issued to {seen.signer}, which is not an allowed signer",
    )


def unreadable_entry_alert(
    log_name: str,
    tree_id: str,
    tree_index: int,
    *,
    log_index: int,
    error: str | None,
    text: str,
    signers_read: int,
    skipped: Sequence[tuple[int, str]],
    skipped_count: int,
) -> Alert:
    """An entry the watch rules could not check whole; one fact per entry (its index in its
    tree). `error` when it could not be read at all, else `skipped` lists (position, reason) of
    the signatures skipped; `text` is the one-line account for a person."""
    if error is not None:
        summary = (
            f"{log_name}: entry {log_index} could not be read, so no watch rule could check "
            f"it: {error}"
        )
    else:
        summary = (
            f"{log_name}: entry {log_index} was read only in part, {skipped_count} "
            f"signature(s) skipped: {text}"
        )
    details: UnreadableDetails = {
        "tree_id": tree_id,
        "tree_index": tree_index,
        "log_index": log_index,
        "error": error,
        "signers_read": signers_read,
        "skipped_count": skipped_count,
        "skipped": [{"position": p, "reason": r} for p, r in skipped],
    }
    summary = summary[:1000]
    return _alert(
        AlertKind.UNREADABLE_ENTRY, (log_name, tree_id, tree_index), summary, log_name, details
    )


UNSUPPORTED_KEY = "unsupported_key"
UNUSABLE_LOG = "unusable_log"
"""The `reason` of a `trust_error` for a Rekor log whose key type the monitor cannot verify."""
_MAX_NAME_IN_SUMMARY = 300


def _short_hex(value: object) -> str:
    return str(value)[:16] if isinstance(value, str) else "?"


def _change_words(change: TrustChange) -> str:
    """What changed, in a few words for the summary (the whole items are in the details)."""
    before, after = change.before, change.after
    if change.kind is ChangeKind.KEY_CHANGED and isinstance(before, TrustedLogInfo):
        new = after.key_id.hex()[:16] if isinstance(after, TrustedLogInfo) else "?"
        return f"key changed (key id {before.key_id.hex()[:16]} -> {new})"
    if change.kind is ChangeKind.KEY_CHANGED:
        return "key or certificate chain changed"
    if change.kind is ChangeKind.WINDOW_CHANGED and before is not None and after is not None:
        return f"validity window changed ({_window_text(before)} -> {_window_text(after)})"
    return str(change.kind)


def _window_text(item: TrustItem) -> str:
    start = "?" if item.window.start is None else item.window.start.isoformat()
    end = "open" if item.window.end is None else item.window.end.isoformat()
    return f"{start} to {end}"


def trust_changed_alert(
    source: str, change: TrustChange, versions: Mapping[str, int] | None
) -> Alert:
    """One difference between the trust a `[[sigstore]]` source held and the one it now holds
    (a log, CT log, CA, TSA or service added or removed, a key or a validity window changed);
    `versions` are the TUF metadata versions of the new trust (None: not from TUF).

    One fact per source, change, section, item and content of both sides and TUF versions: the
    same change recorded twice (two processes on one database) is one alert, and a key that
    flips back and forth in later TUF versions is alerted each time.
    """
    evidence = change.evidence()
    tuf_versions = None if versions is None else {str(k): int(v) for k, v in versions.items()}
    details: TrustChangedDetails = {
        "source": source,
        "change": str(change.kind),
        "section": change.section,
        "name": change.name,
        "before": None if change.before is None else change.before.summary(),
        "after": None if change.after is None else change.after.summary(),
        "tuf_versions": tuf_versions,
    }
    digest = hashlib.sha256(
        json.dumps(
            {"before": evidence["before"], "after": evidence["after"], "tuf": tuf_versions},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        ).encode()
    ).hexdigest()[:32]
    name = change.name[:_MAX_NAME_IN_SUMMARY]
    summary = (
        f"[[sigstore]] {source}: trust changed: {change.section} {name}: {_change_words(change)}"
    )
    return Alert(
        AlertKind.TRUST_CHANGED,
        fact_key(AlertKind.TRUST_CHANGED, source, change.kind, change.section, change.name, digest),
        summary,
        details=details,
    )


def trust_error_alert(
    source: str, *, error_since: str, errors: int, last_error: str, reason: str
) -> Alert:
    """A `[[sigstore]]` source has failed every refresh since `error_since` (`reason`: a
    `monitor.config.tuf_source.TrustSourceFailure` value); the last good trust is kept. One fact
    per outage."""
    details: TrustErrorDetails = {
        "source": source,
        "reason": reason,
        "error_since": error_since,
        "errors": errors,
        "last_error": last_error,
    }
    summary = (
        f"[[sigstore]] {source}: the trust source has failed since {error_since} ({errors} "
        f"failed refreshes, {reason}); the last good trust is kept: {last_error}"
    )[:1000]
    return Alert(
        AlertKind.TRUST_ERROR,
        fact_key(AlertKind.TRUST_ERROR, source, error_since),
        summary,
        details=details,
    )


def unverifiable_log_alert(
    source: str, info: TrustedLogInfo, reason: str = UNSUPPORTED_KEY
) -> Alert:
    """A log of the trust root the monitor cannot monitor: its key cannot verify checkpoints
    (`unsupported_key`), or the settings made from it cannot be used (`unusable_log`, the
    problem in `info.verifier_problem`). One fact per source, reason, log URL and key."""
    key_sha256 = hashlib.sha256(info.key).hexdigest()
    problem = info.verifier_problem or "no verifier for this key"
    details: UnverifiableLogDetails = {
        "source": source,
        "reason": reason,
        "base_url": info.base_url,
        "log_kind": str(info.kind),
        "key_id": info.key_id.hex(),
        "key_sha256": key_sha256,
        "key_details": info.key_details,
        "error": problem,
    }
    why = f"its key cannot be verified ({problem})" if reason == UNSUPPORTED_KEY else problem
    summary = (
        f"[[sigstore]] {source}: log {info.base_url[:_MAX_NAME_IN_SUMMARY]} is not monitored: {why}"
    )[:1000]
    return Alert(
        AlertKind.TRUST_ERROR,
        fact_key(AlertKind.TRUST_ERROR, source, reason, info.base_url, key_sha256),
        summary,
        details=details,
    )


def frozen_log_grew_alert(
    log_name: str, tree_id: str, *, frozen_size: int, size: int, note: str
) -> Alert:
    """A tree kept frozen at `frozen_size` (its validity window ended, or an inactive Rekor v1
    shard) served a consistent larger checkpoint of `size`; one fact per tree and frozen size
    (the verified state advances, so each further growth is a new fact)."""
    details: FrozenLogGrewDetails = {
        "tree_id": tree_id,
        "frozen_size": frozen_size,
        "size": size,
        "note": note,
    }
    summary = (
        f"{log_name}: tree {tree_id} was frozen at size {frozen_size} but the log signed a "
        f"larger tree of size {size}"
    )
    return _alert(
        AlertKind.FROZEN_LOG_GREW, (log_name, tree_id, frozen_size), summary, log_name, details
    )


def sct_not_incorporated_alert(
    ct_log: str, leaf_hash: bytes, sct_ms: int, covered_ms: int, evidence: Mapping[str, object]
) -> Alert:
    """A monitored CT log signed an SCT (verified with its key) and its scanned, verified tree
    signed at `covered_ms` still lacks the promised leaf one maximum merge delay later. One fact
    per (CT log, promised leaf); `evidence` holds the SCT, the certificate and where it was
    found."""
    summary = (
        f"{ct_log}: the CT log promised, by an SCT of {_iso_ms(sct_ms)} embedded in a "
        f"certificate of {_short(str(evidence.get('found_in', '?')))}, to add the certificate "
        f"within its maximum merge delay; its verified tree of {_iso_ms(covered_ms)} "
        "does not hold it"
    )
    details = {**evidence, "leaf_hash": leaf_hash.hex(), "covered_ms": covered_ms}
    return _alert(
        AlertKind.SCT_NOT_INCORPORATED, (ct_log, leaf_hash.hex()), summary[:1000], ct_log, details
    )


class UnloggedLook(TypedDict):
    """One Rekor log `unlogged_certificate` looked in: how, and how far."""

    log: str
    how: str
    trees: dict[str, int]
    since_ms: int
    covered_ms: int


@dataclass(frozen=True)
class UnloggedCertificate:
    """A CT log's certificate for a watched identity that no monitored Rekor log used within
    the rule's `unlogged_after` (see monitor/service/unlogged.py)."""

    ct_log: str
    rule: str
    certificate_id: str
    ct_ms: int
    unlogged_after_ms: int
    signer: str
    evidence: Mapping[str, object]
    """Where the CT log shows it (`tree_id`, `tree_index`, `log_index`, `entry_type`) and its
    `identity`."""
    looked: Sequence[UnloggedLook]
    stored_ms: int = 0
    """When the monitor first stored the check: the deadline runs from it when the CT
    timestamp is earlier."""


def unlogged_certificate_alert(u: UnloggedCertificate) -> Alert:
    """A certificate issued to a watched identity (in a scanned CT log) that no monitored Rekor
    log used within `unlogged_after` of its CT timestamp, though every Rekor log that looks for
    the rule's certificates covered that time. One fact per (rule, certificate)."""
    where = ", ".join(f"{x['log']} ({x['how']} to {_iso_ms(x['covered_ms'])})" for x in u.looked)
    summary = (
        f"{u.ct_log}: a certificate for {_short(u.signer)} (rule {u.rule}), in CT since "
        f"{_iso_ms(u.ct_ms)}, has no Rekor entry {_minutes(u.unlogged_after_ms)} later; looked "
        f"in {where}"
    )
    details: dict[str, object] = {
        **{k: v for k, v in u.evidence.items() if k != "signer"},
        "certificate_id": u.certificate_id,
        "ct_timestamp_ms": u.ct_ms,
        "deadline_ms": max(u.ct_ms, u.stored_ms) + u.unlogged_after_ms,
        "signer": u.signer,
        "looked": [dict(x) for x in u.looked],
    }
    return _alert(
        AlertKind.UNLOGGED_CERTIFICATE,
        ("certificate", u.rule, u.certificate_id),
        summary[:1000],
        u.ct_log,
        details,
        rule=u.rule,
    )


def _minutes(ms: int) -> str:
    minutes = ms // 60_000
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso_ms(ms: int) -> str:
    try:
        return from_ms(ms).isoformat(timespec="seconds")
    except OverflowError:  # no datetime holds it: say it as it is
        return f"{ms} ms after the epoch"
