"""SCT promises kept: `sct_not_incorporated` (issue 15).

Fulcio embeds its CT log's SCTs in each certificate: a signed promise to add the
precertificate to the log within its maximum merge delay. Here:

    scan of a Rekor log: matched certificate --embedded SCTs--> SCT of a MONITORED ct log whose
        signature verifies (precert form) --> promise (CT log, promised leaf hash, deadline),
        stored in the transaction that stores the match (`SctWatch`)
    scan of that ct log: every leaf hash proven into its verified tree is stored, and the
        promises of those leaves resolved, in the transaction that moves the cursor (`CtLedger`)
    after each scan of the ct log, in one transaction: a pending promise whose deadline has
        passed both by the monitor's clock and by the STH of a verified tree the scan has read
        whole, is alerted once (`sct_not_incorporated`, with the SCT as evidence), unless the SCT
        is older than what the scan covers ("unknowable": entries before the scan's start were
        never read, or their leaves were pruned: the scan keeps a bounded window of leaves,
        `LATE_PROMISE_MS`).

An SCT that does not verify with the monitored log's key, or names a log that is not monitored,
is no promise of that log: it is never alerted (a certificate's bytes come from whoever uploaded
the entry; only the CT log's signature can make us accuse the CT log).
"""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding

from monitor.core.alerts import Alert, sct_not_incorporated_alert
from monitor.core.certs import tbs_parts
from monitor.core.chain import CertificateTrust
from monitor.core.ct import ct_leaf_hash
from monitor.core.errors import MonitorError, ParseError
from monitor.core.instants import to_ms
from monitor.core.note import NoteFormatError, NoteVerifier, parse_signed_note
from monitor.core.sct import (
    SctParseError,
    SctVerificationError,
    embedded_scts,
    promised_leaf,
    verify_sct,
)
from monitor.core.watch.match import Match
from monitor.store.database import Store

log = logging.getLogger(__name__)

MAX_MERGE_DELAY_MS: Final = 24 * 3600 * 1000
"""RFC 6962's maximum merge delay as Sigstore's CT log states it: 24 hours."""

LATE_PROMISE_MS: Final = 7 * 24 * 3600 * 1000
"""How long after its merge delay ended an SCT found in Rekor is still judged: a scanned ct
log keeps the leaves of the last `MAX_MERGE_DELAY_MS + LATE_PROMISE_MS` (8 days, by the
monitor's clock) and no older (`CtLedger.record`); an older SCT is unknowable."""

MAX_STH_MS: Final = 253_402_300_799_999
"""The last millisecond of year 9999: the latest STH timestamp the judgement uses."""

PRUNE_MIN: Final = 4096
"""Leaves a scan transaction deletes at least (twice the leaves it adds if more), so a backlog
of old leaves drains in bounded steps while the table shrinks faster than it grows."""


def entry_timestamps(leaves: Sequence[bytes]) -> list[int]:
    """The timestamp (ms) of each RFC 6962 MerkleTreeLeaf (version, leaf type, then a uint64):
    the timestamp of the SCT that promised it. A leaf too short to hold one gets 0 (pruned first:
    it cannot be the leaf of any promise, which is always a well-formed MerkleTreeLeaf); a value
    past SQLite's integer range is clamped."""
    return [
        min(int.from_bytes(leaf[2:10], "big"), 2**63 - 1) if len(leaf) >= 10 else 0
        for leaf in leaves
    ]


@dataclass(frozen=True)
class CtLogKey:
    """A monitored ct log as SCTs name it: `key_id` = SHA-256 of its DER `key`."""

    name: str
    log_id: int
    key: bytes
    key_id: bytes


@dataclass(frozen=True)
class Promise:
    """A verified SCT of a monitored ct log: the leaf it promised and by when."""

    ct_log: CtLogKey
    leaf_hash: bytes
    sct_ms: int
    evidence: dict[str, object]

    @property
    def deadline_ms(self) -> int:
        """The SCT's timestamp plus the maximum merge delay."""
        return self.sct_ms + MAX_MERGE_DELAY_MS


@dataclass
class SctWatch:
    """The monitored ct logs by key ID (filled as the daemon registers them) and the Fulcio
    CAs whose keys may have issued a certificate (the issuer key hash of the precert form)."""

    ct_logs: dict[bytes, CtLogKey] = field(default_factory=dict)

    def promises(self, cert: bytes, trust: CertificateTrust | None, found_in: str) -> list[Promise]:
        """The verified promises of `cert`'s embedded SCTs by monitored ct logs. Never raises:
        an unreadable SCT list or an SCT that does not verify is no promise."""
        if not self.ct_logs:
            return []
        try:
            scts = embedded_scts(cert)
        except SctParseError as e:
            log.info("%s: embedded SCTs not read: %s", found_in, e)
            return []
        out: list[Promise] = []
        named: set[bytes] = set()
        for sct in scts:
            ct_log = self.ct_logs.get(sct.log_id)
            if ct_log is None or sct.log_id in named:
                continue
            # One SCT per log is all a CA embeds: more naming it are not read (each costs a
            # signature verification, and anyone can put a certificate with many in Rekor).
            named.add(sct.log_id)
            for issuer in issuer_spkis(cert, trust):
                try:
                    verify_sct(sct, cert, issuer, ct_log.key)
                    leaf = promised_leaf(sct, cert, issuer)
                except (SctParseError, SctVerificationError):
                    continue
                leaf_hash = ct_leaf_hash(leaf)
                out.append(
                    Promise(
                        ct_log=ct_log,
                        leaf_hash=leaf_hash,
                        sct_ms=sct.timestamp,
                        evidence={
                            "ct_log": ct_log.name,
                            "found_in": found_in,
                            "sct": {
                                "log_id": sct.log_id.hex(),
                                "timestamp_ms": sct.timestamp,
                                "extensions": sct.extensions.hex(),
                                "algorithm": sct.algorithm,
                                "signature": base64.b64encode(sct.signature).decode("ascii"),
                            },
                            "certificate": base64.b64encode(cert).decode("ascii"),
                            "issuer_spki": base64.b64encode(issuer).decode("ascii"),
                            "ct_log_key": base64.b64encode(ct_log.key).decode("ascii"),
                            "deadline_ms": sct.timestamp + MAX_MERGE_DELAY_MS,
                            "leaf_hash": leaf_hash.hex(),
                        },
                    )
                )
                break
            else:
                log.info(
                    "%s: an SCT naming %s does not verify; not its promise", found_in, ct_log.name
                )
        return out

    @staticmethod
    def record(
        store: Store, conn: sqlite3.Connection, promises: Sequence[Promise], now: datetime
    ) -> None:
        """Store `promises` inside the caller's transaction (`conn`)."""
        for p in promises:
            store.add_sct_promise(
                conn,
                p.ct_log.log_id,
                p.leaf_hash,
                p.sct_ms,
                p.deadline_ms,
                p.evidence,
                now,
            )


def match_promises(
    scts: SctWatch | None,
    trust: CertificateTrust | None,
    log_name: str,
    found: Iterable[tuple[int, Match]],
) -> list[Promise]:
    """The promises of the certificates of matches (log index, match) a scan or a search of
    the Rekor log `log_name` found, to record with `SctWatch.record` in the transaction that
    stores the matches; none without `scts` (the log is a ct log, or none is monitored).

    Only certificates that chain to a trusted CA (`Match.certificate_id`), each read once per
    entry: an SCT's signature is checked per certificate, and anyone can put entries of many
    self-made certificates naming a monitored log in Rekor (a real CA's are trusted)."""
    if scts is None:
        return []
    out: list[Promise] = []
    seen: set[tuple[int, bytes]] = set()
    for index, match in found:
        cert = match.certificate
        if cert is None or match.certificate_id is None or (index, cert) in seen:
            continue
        seen.add((index, cert))
        out.extend(scts.promises(cert, trust, f"{log_name} entry {index}"))
    return out


def issuer_spkis(cert: bytes, trust: CertificateTrust | None) -> list[bytes]:
    """The DER SubjectPublicKeyInfos (as their certificates hold them: the bytes CT hashes) of
    the known CAs whose subject is `cert`'s issuer, compared as DER bytes."""
    if trust is None:
        return []
    try:
        issuer = tbs_parts(cert)[0]
    except ValueError:
        return []
    found: list[bytes] = []
    for ca in trust.authorities:
        try:
            _, subject, spki = tbs_parts(ca.public_bytes(Encoding.DER))
        except ValueError:
            continue
        if subject == issuer and spki not in found:
            found.append(spki)
    return found


def sth_timestamp(note: str, key: NoteVerifier) -> int | None:
    """The timestamp (ms) of `key`'s RFC 6962 note signature on `note`: of a line with its
    name and hint whose signature verifies, only. Note verification ignores lines under names it
    does not know, so whoever serves the note (a mirror, a peer, the CDN in front of a log) can
    add one with the log's hint and any timestamp: read as the log's, it would date the log's
    tree when the log did not (a false sct_not_incorporated, or promises never judged)."""
    try:
        signed = parse_signed_note(note)
    except (NoteFormatError, ParseError):
        return None
    message = signed.text.encode("utf-8")
    for sig in signed.signatures:
        if (
            (sig.name, sig.key_hint) == (key.name, key.key_hint)
            and len(sig.signature) > 8
            and key.verify(message, sig.signature)
        ):
            # Clamped: a timestamp past year 9999 (or SQLite's integers) must not make every
            # judgement of the log raise, leaving its promises never judged.
            return min(int.from_bytes(sig.signature[:8], "big"), MAX_STH_MS)
    return None


@dataclass
class CtLedger:
    """The scan of a monitored ct log: records its leaves and judges the promises made by it."""

    log_name: str
    log_id: int
    key: NoteVerifier
    """The log's RFC 6962 note key: its STH timestamps are read from lines it signed only."""
    start: int | None

    def record(
        self,
        store: Store,
        conn: sqlite3.Connection,
        first: int,
        hashes: Sequence[bytes],
        now: datetime,
        entry_ms: Sequence[int] | None = None,
    ) -> None:
        """Inside the scan's transaction: leaves [first, first + len(hashes)) are proven (their
        MerkleTreeLeaf timestamps `entry_ms`); then leaves older than any promise still judged
        are pruned and the coverage's `since` raised to match, in this same transaction, so a
        crash never leaves a pruned leaf that a promise could still be judged against. The
        first call (`hashes` may be empty: the scan's start) fixes where the coverage begins:
        at `first`, the first leaf this recording holds, never at the configured start."""
        if store.ct_coverage(conn, self.log_id) is None:
            self._begin_coverage(store, conn, first, now)
        kept = store.record_ct_leaves(conn, self.log_id, first, hashes, now, entry_ms)
        if kept:
            log.info("%s: %d SCT promise(s) kept", self.log_name, kept)
        now_ms = to_ms(now)
        until = now_ms - MAX_MERGE_DELAY_MS - LATE_PROMISE_MS
        pruned = store.prune_ct_leaves(
            conn, self.log_id, until, max(PRUNE_MIN, 2 * len(hashes)), now
        )
        if pruned:
            log.debug("%s: %d old leaf hash(es) pruned", self.log_name, pruned)

    def judge(
        self,
        store: Store,
        now: datetime,
        targets: Callable[[Alert], list[str]],
    ) -> list[tuple[int, Alert]]:
        """One transaction: the coverage of the scan, then every due promise alerted once or
        found unknowable. Returns the new alerts."""
        created: list[tuple[int, Alert]] = []
        now_ms = to_ms(now)
        with store.transaction() as conn:
            states = store.log_states(self.log_id)
            if len(states) != 1:
                return created
            state = states[0]
            if state.scan_cursor is None or state.scan_cursor != state.verified_size:
                return created
            covered = sth_timestamp(state.verified_note or "", self.key)
            if covered is None:
                return created
            coverage = store.ct_coverage(conn, self.log_id)
            if coverage is None:
                # No leaf was ever recorded (a database that scanned before migration 004):
                # where the log holds a due leaf is not knowable, so it is never alerted.
                for promise_id, _, _ in store.due_sct_promises(
                    conn, self.log_id, min(covered, now_ms)
                ):
                    store.resolve_sct_promise(conn, promise_id, "unknowable", None, now)
                return created
            from_index, since, _ = coverage
            store.cover_ct_log(conn, self.log_id, from_index, since, covered, now)
            for promise_id, sct_ms, evidence in store.due_sct_promises(
                conn, self.log_id, min(covered, now_ms)
            ):
                # At or before `since`, the leaf was never read (before the scan's start) or
                # has been pruned: not knowable, never alerted.
                if sct_ms <= since:
                    store.resolve_sct_promise(conn, promise_id, "unknowable", None, now)
                    continue
                leaf_hash = bytes.fromhex(str(evidence.get("leaf_hash", "")))
                alert = sct_not_incorporated_alert(
                    self.log_name, leaf_hash, sct_ms, covered, _evidence(evidence)
                )
                alert_id = store.add_alert(conn, alert, self.log_id, targets(alert), now)
                store.resolve_sct_promise(conn, promise_id, "alerted", alert_id, now)
                if alert_id is not None:
                    created.append((alert_id, alert))
        return created

    def _begin_coverage(
        self, store: Store, conn: sqlite3.Connection, first: int, now: datetime
    ) -> None:
        """The coverage row, created by the first recording: from `first`; since 0 when that is
        the log's first leaf, else since the STH of the verified tree the scan is reading (its
        size is past `first`, so every leaf before `first` carries an SCT no newer than it)."""
        if first == 0:
            store.cover_ct_log(conn, self.log_id, 0, 0, 0, now)
            return
        states = store.log_states(self.log_id)
        began = sth_timestamp(states[0].verified_note or "", self.key) if len(states) == 1 else None
        if began is None or states[0].verified_size < first:
            raise CtLedgerError(
                f"{self.log_name}: no verified tree head to start the SCT coverage at index "
                f"{first} from; the scan is not moved past leaves it cannot record"
            )
        store.cover_ct_log(conn, self.log_id, first, began, 0, now)


class CtLedgerError(MonitorError):
    """A ct log's scan could not record the leaves it is moving past (a failed scan, raised
    rather than moving the cursor over leaves `sct_not_incorporated` would then miss)."""


def _evidence(evidence: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in evidence.items() if k != "leaf_hash"}


__all__ = [
    "LATE_PROMISE_MS",
    "MAX_MERGE_DELAY_MS",
    "CtLedger",
    "CtLedgerError",
    "CtLogKey",
    "Promise",
    "SctWatch",
    "entry_timestamps",
    "issuer_spkis",
    "match_promises",
    "sth_timestamp",
]
