"""The scanner: reads every new entry of a log, proves the entries are the verified tree's
contents, and matches them against the watch rules.

    verified state (size M, root R)  <- engine
    scan cursor C, compact range at C
        for each chunk [C, E), E <= M:
            fetch bodies --leaf hashes--> compact range at E
                       --pre-filter, parse, match--> matches (held, not yet stored)
                                   unreadable (unparseable, or signatures skipped) --> held
            prove: E == M ? root(E) == R : consistency proof E -> M verifies with root(E), R
                fails --> bad_entry (cursor stays; nothing from the chunk is stored)
                holds --> one transaction: matches, alerts (unreadable_entry for each
                          unreadable entry), scan errors, cursor E, compact range

An entry that cannot be read never stops the scan: it is recorded and alerted, and the scan goes
on past it (`examine_entry`).

A crash anywhere repeats at most the chunk in flight, whose matches were never stored: no entry is
skipped and, with alerts keyed by (log, tree, index, rule), no alert is repeated. Memory is one
chunk of bodies plus the compact range, however long the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

from monitor.core.alerts import (
    Alert,
    AlertKind,
    CertificateSeen,
    SignerSeen,
    certificate_alert_key,
    certificate_issued_alert,
    identity_seen_alert,
    scan_bad_entry_alert,
    unexpected_certificate_alert,
    unexpected_signer_alert,
    unreadable_entry_alert,
)
from monitor.core.bundle import BundlePart
from monitor.core.chain import CertificateTrust
from monitor.core.decide import LogState
from monitor.core.entries import Entry, EntryParseError, SkippedSignature, parse_entry
from monitor.core.errors import NetworkError, ParseError
from monitor.core.merkle import CompactRange, ProofError, leaf_hashes, verify_consistency
from monitor.core.watch.chunk import (
    Examined,
    Layout,
    examine_chunk,
    examine_parts,
)
from monitor.core.watch.match import Match, Matcher, MatchOutcome
from monitor.service.alert_log import raised
from monitor.service.chunk_slots import ChunkSlots
from monitor.service.sct_watch import (
    CtLedger,
    CtLedgerError,
    SctWatch,
    entry_timestamps,
    match_promises,
)
from monitor.service.worker_pool import WorkerPool, WorkerStartError
from monitor.store.database import AsyncStore, StaleState, Store

log = logging.getLogger(__name__)

CHUNK = 4096
"""Entries fetched, proven and committed together (16 full tiles)."""
BACKFILL = 300_000
"""A tree at least this many entries behind its verified size is scanned with `workers` worker
processes when the scanner has more than one: they hash, fold and pre-filter the chunks (handed
over in shared memory) while the event loop fetches the next ones and parses, matches, proves
and commits, in order. Off by default (workers=1): against a log served from the same 2-CPU
machine (`python -m bench --backfill N --backfill-only`) two workers gave 1.5-2.0x one core at
1,000,000 entries (median of three rounds 1.56-1.85 over five runs); an earlier version gave
1.04-1.25x at 300,000 and 0.96-1.03x at 110,000 (starting the workers does not pay for itself
there, hence this threshold)."""
SLOT_MAX_BYTES = 32 << 20
"""A backfill chunk larger than this (entries of 8 KiB on average; most are 2) is examined in
the scanning process, not copied to shared memory: the slots, reused, never hold more."""
BACKFILL_HELD_BYTES = 64 << 20
"""A backfill begins no further chunk while those it holds pass this many bytes."""
PROGRESS_EVERY_S = 10.0
STATE_RETRIES = 3
"""How often a tree's scan goes on from a cursor another process moved, in one round."""


class EntrySource(Protocol):
    """What the scanner needs from a log client."""

    async def entries(self, tree_id: str, start: int, end: int, tree_size: int) -> list[bytes]:
        """The bodies of entries [start, end) of a tree of `tree_size` entries, in order."""

    async def frontier(self, tree_id: str, size: int, tree_size: int) -> list[bytes]:
        """The hashes of the perfect subtrees covering [0, size), largest first (the compact
        range at `size`), read from a tree of `tree_size` entries."""

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        """A consistency proof between two sizes of one tree."""

    def first_index(self, tree_id: str) -> int:
        """The global log index of the tree's first entry (a Rekor v1 shard starts where the
        shards before it end)."""


@runtime_checkable
class BundleSource(Protocol):
    """A log whose entries come in bundles a backfill worker splits itself (tlog-tiles)."""

    async def bundles(
        self, tree_id: str, start: int, end: int, tree_size: int
    ) -> list[tuple[list[bytes], BundlePart]]:
        """The bundles holding entries [start, end), unsplit (each as the pieces it arrived
        in), each with the part it gives."""


def frontier_nodes(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees covering [0, size), largest first: one per set
    bit of `size`, each starting where the previous one ends."""
    nodes: list[tuple[int, int]] = []
    start = 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


@dataclass
class ScanResult:
    """What one scan of a log did."""

    scanned: int = 0
    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    matches: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Found:
    index: int
    match: Match


@dataclass(frozen=True)
class Unreadable:
    """Why an entry that passed the pre-filter could not be read whole: `error` when it could
    not be read at all, else the signatures skipped (the others were matched)."""

    error: str | None = None
    skipped: tuple[SkippedSignature, ...] = ()
    skipped_count: int = 0
    signers_read: int = 0

    @property
    def text(self) -> str:
        """One line for a person and for `scan_errors`."""
        if self.error is not None:
            return self.error
        first = self.skipped[0].reason if self.skipped else "?"
        total = self.skipped_count + self.signers_read
        return (
            f"{self.skipped_count} of {total} signatures skipped, the other "
            f"{self.signers_read} matched; first skipped: {first}"
        )


def examine_entry(
    matcher: Matcher, body: bytes, *, at: datetime | None = None
) -> tuple[list[Match], Unreadable | None]:
    """Parse and match one entry body: its matches (`signer_index` is the signature's position
    in the entry) and, when it could not be read whole, why.

    Never raises: an entry that cannot be read is a finding about that entry, and must not stop
    the scan of the entries after it (a hostile certificate would blind the monitor).
    """
    try:
        entry = parse_entry(body)
    except EntryParseError as e:
        return [], Unreadable(error=str(e))
    try:
        matches = [_positioned(entry, m) for m in matcher.match_entry(entry, at=at)]
    except Exception as e:
        # Matching runs on parsed, bounded values and should not fail; if hostile content still
        # makes it, the entry is reported like one that does not parse rather than stopping
        # the scan.
        log.warning("matching an entry failed", exc_info=True)
        return [], Unreadable(error=f"matching failed: {type(e).__name__}: {str(e)[:200]}")
    if not entry.skipped_count:
        return matches, None
    return matches, Unreadable(
        skipped=entry.skipped,
        skipped_count=entry.skipped_count,
        signers_read=len(entry.signers),
    )


def _positioned(entry: Entry, match: Match) -> Match:
    """`match` with `signer_index` naming the signature's position in the entry rather than
    its index among the signatures that could be read (they differ once one was skipped)."""
    position = entry.signers[match.signer_index].position
    return match if position == match.signer_index else replace(match, signer_index=position)


def unreadable_alert(
    log_name: str, tree_id: str, index: int, log_index: int, unreadable: Unreadable
) -> Alert:
    """The `unreadable_entry` alert for an entry the watch rules could not check whole.

    `index` is the entry's index in its tree (the fact's identity), `log_index` the global one.
    """
    return unreadable_entry_alert(
        log_name,
        tree_id,
        index,
        log_index=log_index,
        error=unreadable.error,
        text=unreadable.text,
        signers_read=unreadable.signers_read,
        skipped=[(s.position, s.reason) for s in unreadable.skipped],
        skipped_count=unreadable.skipped_count,
    )


def match_alert(
    log_name: str, tree_id: str, index: int, match: Match, log_index: int
) -> Alert | None:
    """The alert a match raises: unexpected_signer or identity_seen (certificate_issued for a
    CT log's certificate); None for an untrusted one.

    `index` is the entry's index in its tree (the fact's identity, stable across shards);
    `log_index` the global one users look entries up by (they differ on a Rekor v1 shard that
    is not the first)."""
    if match.outcome is MatchOutcome.UNTRUSTED:
        return None
    if match.ct_timestamp is not None:
        seen = CertificateSeen(
            log_name,
            tree_id,
            index,
            log_index,
            match.rule,
            str(match.identity.get("kind", "?")),
            match.ct_timestamp,
            match.certificate_id,
            _signer_text(match),
            match.identity,
            match.reasons,
        )
        if match.outcome is MatchOutcome.UNEXPECTED_SIGNER:
            return unexpected_certificate_alert(seen)
        return certificate_issued_alert(seen)
    build = (
        unexpected_signer_alert
        if match.outcome is MatchOutcome.UNEXPECTED_SIGNER
        else identity_seen_alert
    )
    return build(
        SignerSeen(
            log_name,
            tree_id,
            index,
            log_index,
            match.rule,
            match.signer_index,
            _signer_text(match),
            match.identity,
            match.reasons,
        )
    )


@dataclass(frozen=True)
class FoundMatch:
    """A match to record: the entry's index in its tree and in the log, the match, the alert it
    raises (None: recorded only), that alert's delivery targets, and how the entry was found."""

    index: int
    log_index: int
    match: Match
    alert: Alert | None
    channels: list[str]
    source: str


def store_matches(
    store: Store,
    conn: sqlite3.Connection,
    log_id: int,
    tree_id: str,
    found: Sequence[FoundMatch],
    now: datetime,
) -> list[tuple[int, Alert]]:
    """Write matches and their alerts inside the caller's transaction (shared by the scanner
    and the search); returns the alerts that are new (an alert's dedup key makes the same
    fact one alert, whichever way the entry was found).

    A certificate's `unexpected_signer` is raised once, whichever log shows it first: a CT log's
    certificate is not alerted again when a Rekor entry using it already raised one for the rule,
    nor a Rekor entry when a CT log's copy of its certificate did; the match is recorded and
    linked to that alert."""
    created: list[tuple[int, Alert]] = []
    for f in found:
        alert_id = None
        if f.alert is not None:
            alert_id = _alerted_certificate(store, conn, f.match)
            if alert_id is None:
                alert_id = store.add_alert(conn, f.alert, log_id, f.channels, now)
                if alert_id is not None:
                    created.append((alert_id, f.alert))
                else:
                    # The fact was alerted already (a certificate's other CT entry): link to it.
                    alert_id = store.alert_id(conn, f.alert.dedup_key)
        store.add_match(
            conn,
            log_id=log_id,
            tree_id=tree_id,
            tree_index=f.index,
            global_index=f.log_index,
            rule=f.match.rule,
            signer_index=f.match.signer_index,
            outcome=f.match.outcome.value,
            source=f.source,
            identity=f.match.identity,
            certificate=f.match.certificate,
            alert_id=alert_id,
            now=now,
            certificate_id=f.match.certificate_id,
        )
        _track_in_rekor(store, conn, log_id, tree_id, f, now)
    return created


def _track_in_rekor(
    store: Store, conn: sqlite3.Connection, log_id: int, tree_id: str, f: FoundMatch, now: datetime
) -> None:
    """`unlogged_certificate` bookkeeping (service/unlogged.py), in the match's transaction: a
    CT log's certificate is to be found in Rekor; a Rekor entry's certificate is found. Only
    certificates that chain to a trusted CA count on either side: anyone can upload a
    self-made certificate with a Fulcio issuer name and serial number to Rekor. Only those
    have a `certificate_id` (the outcome says nothing of trust under an `any_issuer` rule)."""
    match = f.match
    if match.certificate_id is None:
        return
    if match.ct_timestamp is None:
        store.certificate_in_rekor(conn, match.certificate_id, log_id, tree_id, f.index, now)
        return
    evidence = {
        "tree_id": tree_id,
        "tree_index": f.index,
        "log_index": f.log_index,
        "entry_type": str(match.identity.get("kind", "?")),
        "signer": _signer_text(match),
        "identity": dict(match.identity),
    }
    store.expect_in_rekor(
        conn, match.certificate_id, match.rule, log_id, match.ct_timestamp, evidence, now
    )


def _alerted_certificate(store: Store, conn: sqlite3.Connection, match: Match) -> int | None:
    """The `unexpected_signer` alert the other kind of log already raised for `match`'s
    certificate and rule (see `store_matches`), None when there is none."""
    if match.outcome is not MatchOutcome.UNEXPECTED_SIGNER or match.certificate_id is None:
        return None
    if match.ct_timestamp is None:
        key = certificate_alert_key(AlertKind.UNEXPECTED_SIGNER, match.rule, match.certificate_id)
        return store.alert_id(conn, key)
    return store.certificate_alert(
        conn, match.rule, match.certificate_id, AlertKind.UNEXPECTED_SIGNER.value
    )


def _signer_text(match: Match) -> str:
    identity = match.identity
    for key in ("build_signer_uri", "sans"):
        value = identity.get(key)
        if isinstance(value, list) and value:
            return ", ".join(str(v) for v in value)
        if isinstance(value, str) and value:
            return value
    return f"key {identity.get('key_fingerprint', '?')}"


class Scanner:
    """Scans one log's verified trees for entries matching the watch rules."""

    def __init__(
        self,
        log_name: str,
        log_id: int,
        source: EntrySource,
        matcher: Matcher,
        store: AsyncStore,
        targets: Callable[[Alert], list[str]],
        clock: Callable[[], datetime],
        *,
        start: int | None,
        source_name: str = "scan",
        chunk: int = CHUNK,
        read_entry: Callable[[Matcher, bytes], tuple[list[Match], str | None]] | None = None,
        backfill: int = BACKFILL,
        workers: int = 1,
        scts: SctWatch | None = None,
        trust: CertificateTrust | None = None,
        ledger: CtLedger | None = None,
    ) -> None:
        self.log_name = log_name
        self.log_id = log_id
        self.source = source
        self.matcher = matcher
        self.store = store
        self.targets = targets
        self.clock = clock
        self.start = start
        self.source_name = source_name
        self.chunk = chunk
        # A log whose entries are not Rekor bodies (CT certificates): every entry is read and
        # matched with this (its matches, and None or why it could not be read) instead.
        self.read_entry = read_entry
        self.backfill = backfill
        # Worker processes for a long backfill (`BACKFILL`); fewer than 2 means none.
        self.workers = workers
        # SCT promises (sct_watch.py): `scts` and `trust` read those of matched certificates;
        # a monitored ct log's scan keeps its `ledger` of proven leaves.
        self.scts = scts
        self.trust = trust
        self.ledger = ledger
        self._ct_chunk: tuple[int, list[bytes], list[int]] = (0, [], [])

    async def scan(self) -> ScanResult:
        """Scan every tree of the log up to its verified size; network and parse failures stop
        the scan where it is (to resume next time), never move the cursor past unproven data."""
        result = ScanResult()
        states = await self.store.state.log_states(self.log_id)
        for state in states:
            try:
                await self._scan_tree_fresh(state, result)
            except (NetworkError, ParseError) as e:
                message = f"scan of {state.tree_id}: {type(e).__name__}: {e}"
                log.warning("%s: %s", self.log_name, message)
                result.errors.append(message)
        if self.ledger is not None:
            ledger = self.ledger
            created = await self.store.run(
                lambda store: ledger.judge(store, self.clock(), self.targets)
            )
            raised(created, result.alerts)
        return result

    async def _scan_tree_fresh(self, state: LogState, result: ScanResult) -> None:
        """Scan one tree; when another process on the database moves its cursor meanwhile (the
        cursor's write is a compare-and-swap), go on from where that process got to."""
        for _ in range(STATE_RETRIES):
            try:
                await self._scan_tree(state, result)
                return
            except StaleState as e:
                log.info("%s: %s; going on from the fresh cursor", self.log_name, e)
                fresh = await self.store.state.log_state(self.log_id, state.tree_id)
                if fresh is None:  # pragma: no cover - log_state rows are never deleted
                    return
                state = fresh
        log.info(
            "%s: scan of %s left to the other process for this round", self.log_name, state.tree_id
        )

    async def _scan_tree(self, state: LogState, result: ScanResult) -> None:
        size, root, tree = state.verified_size, state.verified_root, state.tree_id
        if state.scan_cursor is None:
            cursor = size if self.start is None else min(self.start, size)
            cr = await self._initial_range(tree, cursor, size, root)
            if cr is None:
                await self._bad_entry(result, state, cursor, "the frontier read from the log")
                return
            await self._commit(result, tree, cursor, cr, [], [], expected=None)
        else:
            cursor = state.scan_cursor
            cr = CompactRange.from_hashes(cursor, _split(state.compact_range or b""))
        if (
            self.read_entry is None
            and self.ledger is None
            and self.workers > 1
            and size - cursor >= self.backfill
            and await self._backfill(state, result, cursor, cr)
        ):
            return
        progress = _Progress(cursor)
        # The next chunk downloads while this one is hashed, matched and committed.
        fetch: asyncio.Task[list[bytes]] | None = None
        try:
            while cursor < size:
                end = min(size, cursor + self.chunk)
                if fetch is None:
                    fetch = asyncio.create_task(self._entries(tree, cursor, end, size))
                bodies = await fetch
                fetch = None
                if end < size:
                    following = min(size, end + self.chunk)
                    fetch = asyncio.create_task(self._entries(tree, end, following, size))
                extended, hashes, found, unparseable = self._examine(cr, cursor, bodies)
                if self.ledger is not None:
                    self._ct_chunk = (cursor, hashes, entry_timestamps(bodies))
                settled = await self._settle_chunk(
                    result, state, cursor, end, extended, found, unparseable
                )
                if not settled:
                    return
                cursor, cr = end, extended
                progress.report(self.log_name, cursor, size)
        finally:
            if fetch is not None:
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, NetworkError, ParseError):
                    await fetch

    async def _backfill(
        self, state: LogState, result: ScanResult, cursor: int, cr: CompactRange
    ) -> bool:
        """`_scan_tree` for a long backlog, in three stages that overlap: a task fetches the
        chunks in order and hands each to a worker process through shared memory (a tiled
        log's bundles as fetched, in the pieces they arrived in); the workers find, hash,
        fold and pre-filter the entries; here the entries they pass are parsed and matched,
        and each chunk proven and committed in order, as `_scan_tree` does (a crash repeats at
        most the chunks not yet committed). At most `workers + 3` chunks are in flight. False
        when no worker process could be started: nothing was scanned, `_scan_tree` goes on."""
        size, tree = state.verified_size, state.tree_id
        log.info(
            "%s: %d entries to scan; hashing and pre-filtering them in %d worker processes",
            self.log_name, size - cursor, self.workers,
        )  # fmt: skip
        in_flight = self.workers + 3  # two downloading, one with each worker, one ready
        try:
            pool = WorkerPool(self.workers, self.matcher.prefilter)
        except OSError as e:  # its queues need semaphores in /dev/shm: for good
            log.warning(
                "%s: no worker processes for the scan (%s); scanning in this process",
                self.log_name, e,
            )  # fmt: skip
            self.workers = 1
            return False
        except WorkerStartError as e:  # out of processes or memory: maybe not next time
            log.warning(
                "%s: the scan's worker processes failed to start (%s); scanning in this "
                "process this time",
                self.log_name, e,
            )  # fmt: skip
            return False
        slots = ChunkSlots(in_flight, SLOT_MAX_BYTES)
        free = _Window(in_flight, BACKFILL_HELD_BYTES)
        chunks: asyncio.Queue[_Pending | BaseException] = asyncio.Queue()
        feeder = asyncio.create_task(
            self._feed_workers(tree, cursor, size, pool, slots, free, chunks)
        )
        progress, warned = _Progress(cursor), False
        try:
            while cursor < size:
                chunk = await chunks.get()
                if isinstance(chunk, BaseException):
                    raise chunk
                extended = await self._backfill_chunk(result, state, cr, chunk, pool, slots)
                if pool.broken and not warned:
                    # A worker died (killed, out of memory): the work is pure, so it was done
                    # here instead, from the chunks' bytes still in their slots.
                    log.warning("%s: a scan worker process died; going on without", self.log_name)
                    warned = True
                if extended is None:
                    return True
                end, held = chunk.end, chunk.size
                # The chunk's bytes go before its room does: the feeder fills that room at
                # once, and a log of huge entries would have us hold one chunk more than that.
                del chunk
                await free.release(held)
                cursor, cr = end, extended
                progress.report(self.log_name, cursor, size)
            return True
        finally:
            try:
                feeder.cancel()
                # Its failure, if any, was queued and raised above.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeder
            finally:
                while not chunks.empty():
                    left = chunks.get_nowait()
                    if isinstance(left, _Pending) and left.job is not None:
                        left.job.cancel()
                        if not left.job.cancelled():  # answered: its exception is not news
                            left.job.exception()
                pool.close()
                slots.close()

    async def _backfill_chunk(
        self,
        result: ScanResult,
        state: LogState,
        cr: CompactRange,
        chunk: _Pending,
        pool: WorkerPool,
        slots: ChunkSlots,
    ) -> CompactRange | None:
        """One chunk of `_backfill`, in order: its worker's answer (or, when it has none or the
        pool broke, the chunk examined here from its slot or its pieces), matched, proven and
        committed (`_settle_chunk`). The compact range it ends at; None when it did not prove.
        What was read from the chunk is dropped on return."""
        examined: Examined | None = None
        if chunk.job is not None:
            examined = await pool.result(chunk.job)
        if examined is None:
            prefilter = self.matcher.prefilter
            if chunk.slot is not None:
                buffer = slots.buffer(chunk.slot)
                examined = examine_chunk(chunk.start, buffer, chunk.layout, prefilter)
            else:
                examined = examine_parts(chunk.start, chunk.parts or [], chunk.layout, prefilter)
        subtrees, passed = examined
        extended = cr.copy()
        extended.extend_subtrees(subtrees)
        if extended.size != chunk.end:  # the layout was checked to hold the chunk
            raise ParseError(f"entries {chunk.start}-{chunk.end}: got {extended.size}")
        found, unparseable = self._match(chunk.start, passed)
        settled = await self._settle_chunk(
            result, state, chunk.start, chunk.end, extended, found, unparseable
        )
        return extended if settled else None

    async def _feed_workers(
        self,
        tree: str,
        cursor: int,
        size: int,
        pool: WorkerPool,
        slots: ChunkSlots,
        free: _Window,
        chunks: asyncio.Queue[_Pending | BaseException],
    ) -> None:
        """`_backfill`'s first stage: fetch the chunks from `cursor` on, two at a time (each
        once a slot is free), and submit each to `pool` in order; any failure ends the stage,
        queued after the chunks before it (which are committed first, then the scan fails with
        it: the stage never just stops, leaving the scan waiting)."""
        fetches: deque[tuple[int, int, asyncio.Task[tuple[list[bytes], Layout]]]] = deque()
        number, shared, following = 0, True, cursor
        try:
            while True:
                # A second fetch only when there is room now: waiting for room with a chunk
                # fetched and not handed on would wait for itself.
                while following < size:
                    if not fetches:
                        await free.reserve()
                    elif len(fetches) >= 2 or not free.take():
                        break
                    end = min(size, following + self.chunk)
                    fetch = self._fetch_packed(tree, following, end, size)
                    fetches.append((following, end, asyncio.create_task(fetch)))
                    following = end
                if not fetches:
                    return
                start, end, task = fetches.popleft()
                parts, layout = await task
                del task  # done, it holds the chunk's bytes too
                held = sum(map(len, parts))
                free.hold(held)
                slot = number % slots.count
                number += 1
                name = None
                if held > slots.size:
                    pass  # a log of huge entries: its chunks are examined here, one at a time
                elif shared and not pool.broken:
                    try:
                        # Through shared memory: pickling 4,096 bodies cost this process about
                        # what hashing them does, and left the pool no faster.
                        name = slots.put(slot, parts)
                    except OSError as e:  # /dev/shm full, missing or read-only
                        log.warning(
                            "%s: no shared memory for the scan's worker processes (%s); "
                            "scanning in this process",
                            self.log_name, e,
                        )  # fmt: skip
                        shared = False
                if name is None:  # examined in the scan's process, from its pieces
                    chunks.put_nowait(_Pending(start, end, held, layout, None, None, parts))
                else:  # the job None: examined there, from the slot
                    job = pool.submit(start, name, layout)
                    chunks.put_nowait(_Pending(start, end, held, layout, job, slot, None))
                    del job  # answered, it holds what the worker read from the chunk
                # Handed on: nothing of the chunk is held here while this waits for room and
                # fetches the next one (the scan drops it once committed).
                del parts
        except BaseException as e:  # any failure reaches the scan, never leaves it waiting
            chunks.put_nowait(e)
            if not isinstance(e, Exception):
                raise
        finally:
            for *_, task in fetches:
                task.cancel()
            for *_, task in fetches:
                with contextlib.suppress(asyncio.CancelledError, NetworkError, ParseError):
                    await task

    async def _fetch_packed(
        self, tree: str, start: int, end: int, size: int
    ) -> tuple[list[bytes], Layout]:
        """Entries [start, end) for `examine_chunk`: the bytes to lay end to end, and how the
        entries lie in them (a tiled log's bundles as fetched, in the pieces they arrived in,
        else the bodies)."""
        if isinstance(self.source, BundleSource):
            got = await self.source.bundles(tree, start, end, size)
            layout = [part for _, part in got]
            if sum(part.take for part in layout) != end - start:
                raise ParseError(f"entries {start}-{end}: the bundles fetched do not cover them")
            return [piece for pieces, _ in got for piece in pieces], layout
        bodies = await self._entries(tree, start, end, size)
        return bodies, array("Q", map(len, bodies)).tobytes()

    async def _entries(self, tree: str, start: int, end: int, size: int) -> list[bytes]:
        """The bodies of entries [start, end), exactly that many (else ParseError)."""
        bodies = await self.source.entries(tree, start, end, size)
        if len(bodies) != end - start:
            raise ParseError(f"entries {start}-{end}: expected {end - start}, got {len(bodies)}")
        return bodies

    def _match(
        self, cursor: int, passed: Iterable[tuple[int, bytes]]
    ) -> tuple[list[_Found], list[tuple[int, Unreadable]]]:
        """Parse and match the entries the pre-filter passed: (offset from `cursor`, body)."""
        found: list[_Found] = []
        unparseable: list[tuple[int, Unreadable]] = []
        for offset, body in passed:
            index = cursor + offset
            matches, unreadable = examine_entry(self.matcher, body)
            if unreadable is not None:
                unparseable.append((index, unreadable))
            found.extend(_Found(index, m) for m in matches)
        return found, unparseable

    def _examine(
        self, cr: CompactRange, cursor: int, bodies: Sequence[bytes]
    ) -> tuple[CompactRange, list[bytes], list[_Found], list[tuple[int, Unreadable]]]:
        """Hash a chunk onto a copy of the compact range and match its entries (pure CPU); the
        leaf hashes are returned for a CT log's ledger."""
        extended = cr.copy()
        found: list[_Found] = []
        unparseable: list[tuple[int, Unreadable]] = []
        hashes = leaf_hashes(bodies)
        extended.extend(hashes)
        if self.read_entry is not None:
            for offset, body in enumerate(bodies):
                matches, error = self.read_entry(self.matcher, body)
                if error is not None:
                    unparseable.append((cursor + offset, Unreadable(error=error)))
                found.extend(_Found(cursor + offset, m) for m in matches)
            return extended, hashes, found, unparseable
        passed = ((i, bodies[i]) for i in self.matcher.candidates(bodies))
        found, unparseable = self._match(cursor, passed)
        return extended, hashes, found, unparseable

    async def _settle_chunk(
        self,
        result: ScanResult,
        state: LogState,
        start: int,
        end: int,
        extended: CompactRange,
        found: Sequence[_Found],
        unparseable: Sequence[tuple[int, Unreadable]],
    ) -> bool:
        """The end of every chunk [start, end), whichever path examined it: prove it is the
        verified tree's, then commit its matches, unreadable entries, CT leaves (`_ct_chunk`,
        set by the caller) and cursor in one transaction. False, after a `bad_entry` alert,
        when it does not prove (nothing from the chunk is stored)."""
        tree = state.tree_id
        if not await self._proves(
            tree, end, extended.root(), state.verified_size, state.verified_root
        ):
            await self._bad_entry(result, state, start, f"entries {start}-{end - 1}")
            return False
        await self._commit(result, tree, end, extended, found, unparseable, expected=start)
        result.scanned += end - start
        return True

    async def _initial_range(
        self, tree: str, cursor: int, size: int, root: bytes
    ) -> CompactRange | None:
        """The compact range at `cursor`, read from the log and proven against the verified
        root; None when it does not prove."""
        if cursor == 0:
            return CompactRange()
        hashes = await self.source.frontier(tree, cursor, size)
        try:
            cr = CompactRange.from_hashes(cursor, hashes)
        except ProofError:
            return None
        return cr if await self._proves(tree, cursor, cr.root(), size, root) else None

    async def _proves(self, tree: str, size1: int, root1: bytes, size2: int, root2: bytes) -> bool:
        """Whether a tree of `size1` entries with `root1` is a prefix of the verified one."""
        if size1 == size2:
            return root1 == root2
        proof = await self.source.consistency_proof(tree, size1, size2)
        try:
            verify_consistency(size1, size2, root1, root2, proof)
        except ProofError:
            return False
        return True

    async def _bad_entry(self, result: ScanResult, state: LogState, cursor: int, what: str) -> None:
        alert = scan_bad_entry_alert(
            self.log_name,
            state.tree_id,
            scan_cursor=cursor,
            verified_size=state.verified_size,
            verified_root=state.verified_root,
            verified_note=state.verified_note,
            what=what,
        )
        log.warning("%s: %s", self.log_name, alert.summary)
        result.alerts.extend(
            await self.store.outbox.raise_alerts(
                self.log_id, [(alert, self.targets(alert))], self.clock()
            )
        )

    async def _commit(
        self,
        result: ScanResult,
        tree: str,
        cursor: int,
        cr: CompactRange,
        found: Sequence[_Found],
        unparseable: Sequence[tuple[int, Unreadable]],
        *,
        expected: int | None,
    ) -> None:
        first = self.source.first_index(tree) if found or unparseable else 0
        alerts = [
            match_alert(self.log_name, tree, f.index, f.match, first + f.index) for f in found
        ]
        targets = [self.targets(a) if a is not None else [] for a in alerts]
        unreadable = [
            unreadable_alert(self.log_name, tree, index, first + index, u)
            for index, u in unparseable
        ]
        unreadable_targets = [self.targets(a) for a in unreadable]
        now = self.clock()
        packed = b"".join(cr.hashes)
        promises = match_promises(
            self.scts, self.trust, self.log_name, ((first + f.index, f.match) for f in found)
        )
        chunk_first, chunk, chunk_ms = self._ct_chunk
        if expected is None:
            # Positioning the cursor: the ledger's coverage begins here, with no leaf yet.
            chunk_first, chunk, chunk_ms = cursor, [], []
        elif self.ledger is not None and (chunk_first, chunk_first + len(chunk)) != (
            expected,
            cursor,
        ):
            # Moving the cursor past leaves not recorded would leave their promises pending,
            # then alerted against a log that kept them: the scan fails instead.
            raise CtLedgerError(
                f"{self.log_name}: the leaves recorded ({chunk_first}-{chunk_first + len(chunk)})"
                f" are not the entries scanned ({expected}-{cursor}); the cursor is not moved"
            )
        ledger = self.ledger

        def write(store: Store) -> list[tuple[int, Alert]]:
            with store.transaction() as conn:
                SctWatch.record(store, conn, promises, now)
                if ledger is not None:
                    ledger.record(store, conn, chunk_first, chunk, now, chunk_ms)
                created = store_matches(
                    store,
                    conn,
                    self.log_id,
                    tree,
                    [
                        FoundMatch(
                            f.index, first + f.index, f.match, alert, channels, self.source_name
                        )
                        for f, alert, channels in zip(found, alerts, targets, strict=True)
                    ],
                    now,
                )
                for (index, u), alert, channels in zip(
                    unparseable, unreadable, unreadable_targets, strict=True
                ):
                    store.add_scan_error(conn, self.log_id, tree, index, u.text, now)
                    alert_id = store.add_alert(conn, alert, self.log_id, channels, now)
                    if alert_id is not None:
                        created.append((alert_id, alert))
                store.advance_scan(conn, self.log_id, tree, cursor, packed, now, expected=expected)
            return created

        created = await self.store.run(write)
        result.matches += len(found)
        raised(created, result.alerts)


@dataclass(frozen=True)
class _Pending:
    """A backfill chunk handed on: its entries [start, end), `size` bytes, lie in shared-memory
    `slot` (or, when there was none, in `parts`) as `layout` says; `job` is its worker's
    examination, None when it is to be examined in this process."""

    start: int
    end: int
    size: int
    layout: Layout
    job: asyncio.Future[Examined] | None
    slot: int | None
    parts: list[bytes] | None


class _Window:
    """The backfill's chunks in flight: at most `count`, and a further one begun only while
    those held, plus the ones being fetched counted as large as the largest seen so far, stay
    within `max_bytes` (or when none is in flight): a log of huge entries is read one chunk at
    a time, not `count` of them at once."""

    def __init__(self, count: int, max_bytes: int) -> None:
        self.count, self.max_bytes = count, max_bytes
        self.chunks = self.fetching = self.held = self.largest = 0
        self._changed = asyncio.Condition()

    def _room(self) -> bool:
        if self.chunks == 0:
            return True
        ahead = self.held + (self.fetching + 1) * self.largest
        return self.chunks < self.count and ahead <= self.max_bytes

    async def reserve(self) -> None:
        """Wait for room to begin fetching a chunk, and take it."""
        async with self._changed:
            await self._changed.wait_for(self._room)
            self.take()

    def take(self) -> bool:
        """Take room to begin fetching a chunk if there is some now."""
        if not self._room():
            return False
        self.chunks += 1
        self.fetching += 1
        return True

    def hold(self, size: int) -> None:
        """A reserved chunk arrived: `size` bytes."""
        self.fetching -= 1
        self.held += size
        self.largest = max(self.largest, size)

    async def release(self, size: int) -> None:
        """A chunk of `size` bytes is done with."""
        async with self._changed:
            self.chunks -= 1
            self.held -= size
            self._changed.notify_all()


class _Progress:
    """A scan's progress line, logged at most every `PROGRESS_EVERY_S` seconds."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.begun = self.last_report = time.monotonic()

    def report(self, log_name: str, cursor: int, size: int) -> None:
        now = time.monotonic()
        if now - self.last_report >= PROGRESS_EVERY_S:
            rate = (cursor - self.first) / (now - self.begun)
            log.info(
                "%s: scanned %d of %d entries (%.0f/s, %d left)",
                log_name, cursor, size, rate, size - cursor,
            )  # fmt: skip
            self.last_report = now


def _split(packed: bytes) -> list[bytes]:
    return [packed[i : i + 32] for i in range(0, len(packed), 32)]
