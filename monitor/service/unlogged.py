"""Certificates never logged in Rekor: `unlogged_certificate` (issue 15).

Fulcio logs every certificate it issues to CT; a signer who uses one without uploading to Rekor
(a stolen OIDC token, used quietly) shows only there. Here:

    scan of a CT log: a certificate matching a rule (chained to a trusted CA) --> a pending check
        (certificate_id, rule, CT timestamp), in the transaction that stores the match
        (`scanner.store_matches`); 'logged' at once if a Rekor log already showed it
    scan or search of a Rekor log: a trusted certificate in a matched entry --> its pending checks
        are 'logged', in the transaction that stores that match
    after each poll, in one transaction (`UnloggedWatch.judge`), a pending check whose rule says
        expect_rekor = false is 'not_expected'; else, once the monitor's clock is past its
        deadline, the rule's `unlogged_after` after the later of its CT timestamp and when the
        monitor first stored it (a backdated CT timestamp does not move the deadline back):
            no scanned Rekor log the rule applies to          --> 'unwatched' (no alert)
            one of them began scanning after the CT timestamp --> 'unknowable' (no alert)
            one of them has not yet scanned a tree the monitor first saw its log serve after
                the deadline (a log serving an old tree, stale, covers nothing) --> wait
            every one has                                     --> `unlogged_certificate`, once

A rekor-v1 log watched through its search index (not scanned) is one of "those Rekor logs"
too (RekorLog.how = "search"): its searcher looks each due certificate up in the index
(index_search.Searcher._lookups) and a lookup that found nothing, recorded per (check, log),
counts as having read the whole log up to the verified tree the index was shown to hold.

"Where the monitor looked" is each of those Rekor logs: every entry from its scan's start (index 0,
or the time its scan began) up to a verified tree the monitor first saw the log serve at or after
the deadline, read whole. A log the monitor does not watch is not looked in: the alert says
where it looked.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from monitor.core.alerts import (
    PRIMARY_VIEW,
    Alert,
    UnloggedCertificate,
    UnloggedLook,
    unlogged_certificate_alert,
)
from monitor.core.decide import LogState
from monitor.core.instants import to_ms
from monitor.core.watch.rules import WatchRule
from monitor.store.database import PendingUnlogged, Store

log = logging.getLogger(__name__)

CLOCK_SKEW_MS: Final = 60_000
"""How much earlier than the CT timestamp a Rekor entry using the certificate may be timestamped
(two logs' clocks): a scan that began later than the CT timestamp minus this may have missed it."""


@dataclass(frozen=True)
class RekorLog:
    """A scanned Rekor log (not a CT log) and the rules its entries are matched against."""

    name: str
    log_id: int
    start: int | None
    rules: frozenset[str]
    how: str = "scan"
    """"scan": its scan reads every entry; "search": its rekor-v1 search index is asked for
    each pending certificate (monitor/service/index_search.py `Searcher._lookups`)."""


def _ms(value: datetime | timedelta) -> int:
    if isinstance(value, timedelta):
        return value // timedelta(milliseconds=1)
    return to_ms(value)


@dataclass(frozen=True)
class UnloggedWatch:
    """The rules by name and the scanned Rekor logs: what `judge` needs."""

    rules: Mapping[str, WatchRule]
    rekor: Sequence[RekorLog]

    def judge(
        self, store: Store, now: datetime, targets: Callable[[Alert], list[str]]
    ) -> list[tuple[int, Alert]]:
        """One transaction: every pending check decided or left to wait (module docstring).
        Returns the new alerts."""
        created: list[tuple[int, Alert]] = []
        now_ms = _ms(now)
        with store.transaction() as conn:
            # Every judgement, checks pending or not: when a Rekor scan began is recorded at
            # the first one after it did, not when a first certificate waits for it (which a
            # scan from "latest" would then always leave unknowable).
            scanned = {r.log_id: store.log_states(r.log_id) for r in self.rekor if r.how == "scan"}
            since = {
                r.log_id: _scan_since(store, conn, r, scanned[r.log_id], now)
                for r in self.rekor
                if r.how == "scan"
            }
            pending = store.pending_unlogged(conn)
            if not pending:
                return created
            looks = {
                r.log_id: _look(store, conn, r, scanned[r.log_id], since[r.log_id])
                for r in self.rekor
                if r.how == "scan"
            }
            for check in pending:
                rule = self.rules.get(check.rule)
                if rule is None:
                    continue  # a rule no longer configured: kept until it is again
                if not rule.expect_rekor:
                    store.resolve_unlogged(conn, check.id, "not_expected", None, now)
                    continue
                window = _ms(rule.unlogged_after)
                if now_ms < check.deadline_ms(window):
                    continue
                searched = {
                    r.log_id: _searched(store, conn, r, check.id)
                    for r in self.rekor
                    if r.how == "search"
                }
                outcome = self._decide(check, window, {**looks, **searched})
                if isinstance(outcome, str):
                    if outcome != "wait":
                        log.info(
                            "certificate %s (rule %s): not judged, %s",
                            check.certificate_id, check.rule, outcome,
                        )  # fmt: skip
                        store.resolve_unlogged(conn, check.id, outcome, None, now)
                    continue
                alert = unlogged_certificate_alert(outcome)
                alert_id = store.add_alert(conn, alert, check.ct_log_id, targets(alert), now)
                store.resolve_unlogged(conn, check.id, "alerted", alert_id, now)
                if alert_id is not None:
                    created.append((alert_id, alert))
        return created

    def _decide(
        self, check: PendingUnlogged, window: int, looks: Mapping[int, UnloggedLook | None]
    ) -> UnloggedCertificate | str:
        """The alert for a due check, or 'unwatched', 'unknowable' or 'wait'."""
        watching = [r for r in self.rekor if check.rule in r.rules]
        if not watching:
            return "unwatched"
        seen: list[UnloggedLook] = []
        for r in watching:
            look = looks.get(r.log_id)
            if look is not None and look["since_ms"] + CLOCK_SKEW_MS > check.ct_ms:
                return "unknowable"
            if look is None or look["covered_ms"] < check.deadline_ms(window):
                return "wait"
            seen.append(look)
        return UnloggedCertificate(
            ct_log=check.ct_log,
            rule=check.rule,
            certificate_id=check.certificate_id,
            ct_ms=check.ct_ms,
            unlogged_after_ms=window,
            stored_ms=check.stored_ms,
            signer=str(check.evidence.get("signer", "?")),
            evidence=check.evidence,
            looked=seen,
        )


def _searched(
    store: Store, conn: sqlite3.Connection, rekor: RekorLog, check_id: int
) -> UnloggedLook | None:
    """How far a lookup of the check in `rekor`'s search index looked: the index holds the
    whole log (since 0) up to the verified tree it was shown to hold; None before any lookup
    completed."""
    got = store.unlogged_search(conn, check_id, rekor.log_id)
    if got is None:
        return None
    tree_id, size, covered_ms = got
    return UnloggedLook(
        log=rekor.name, how="search", trees={tree_id: size}, since_ms=0, covered_ms=covered_ms
    )


def _look(
    store: Store,
    conn: sqlite3.Connection,
    rekor: RekorLog,
    states: Sequence[LogState],
    since: int | None,
) -> UnloggedLook | None:
    """How far the scan of `rekor` (its trees' `states`, scanning every entry `since`,
    `_scan_since`) has looked: every tree read whole up to its verified size, and when the
    monitor FIRST saw the log serve those trees (the latest of them); None while a tree is
    unscanned or behind. Not when it last saw them: a log (or a cache in front of it) that goes
    on serving an old tree covers nothing new, so a stale log makes checks wait."""
    if since is None:
        return None
    if any(s.scan_cursor is None or s.scan_cursor != s.verified_size for s in states):
        return None
    served = [store.first_seen_verified(conn, rekor.log_id, s, PRIMARY_VIEW) for s in states]
    latest = max((t for t in served if t is not None), default=None)
    if latest is None:
        return None
    return UnloggedLook(
        log=rekor.name,
        how="scan",
        trees={s.tree_id: s.verified_size for s in states},
        since_ms=since,
        covered_ms=_ms(latest),
    )


def _scan_since(
    store: Store,
    conn: sqlite3.Connection,
    rekor: RekorLog,
    states: Sequence[LogState],
    now: datetime,
) -> int | None:
    """Since when (ms) the scan of `rekor` (its trees' `states`) has read every entry: 0 from
    index 0, else the first judgement that saw it begun (recorded then); None while it has not
    begun."""
    if not states or all(s.scan_cursor is None for s in states):
        return None
    return store.rekor_scan_since(conn, rekor.log_id, 0 if rekor.start == 0 else _ms(now), now)


__all__ = ["CLOCK_SKEW_MS", "RekorLog", "UnloggedWatch"]
