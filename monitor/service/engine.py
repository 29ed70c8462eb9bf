"""The consistency engine: proves, poll after poll, that a log only grows and shows every view
the same tree.

For each view of a log (its own URL, mirrors, peers), every checkpoint served goes through:

    fetch heads --> verify note (key, origin) --bad--> bad_signature (primary)
        |                                         --bad--> view_error (any other view)
        v
    record (view, origin, size, root) --same size, other root anywhere--> split_view
        |     + witness signatures (recorded) --cosigned, below witness_quorum--> witness_quorum
        v
    compare with the tree's verified state:
        larger  -> consistency proof old -> new  --fails--> split_view, state kept
                                             --holds--> state advances (same transaction)
        smaller -> consistency proof new -> old  --fails--> split_view
                   below the high-water mark    ---------> rollback (not for witnesses, peers;
                                                           also when the proof is refused)
        equal   -> roots must match             --differ-> split_view

Every view's heads are fetched concurrently, under one deadline per poll; they are decided one
view at a time (decisions read and write the log's state), the primary's first. Network failures,
and any other exception a view raises, never move state; they are recorded per view and become
`log_error` only once they have lasted `error_grace`. A log whose verified size has not grown for
`max_stale` raises `log_stale`. Every alert is written in the same transaction as the observation
behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from monitor.core.alerts import Alert, AlertKind, fact_key
from monitor.core.errors import MonitorError, NetworkError, ParseError, VerificationError
from monitor.core.evidence import build_split_view
from monitor.core.merkle import ProofError, verify_consistency
from monitor.core.note import (
    NoteVerifier,
    VerifiedCheckpoint,
    parse_signed_note,
    verify_checkpoint,
    verify_note,
)
from monitor.core.witness import WitnessKey, WitnessReport, check_witnesses, quorum_shortfall
from monitor.store.database import (
    AsyncStore,
    LogState,
    StaleState,
    Store,
    StoreError,
    parse_utc,
    utc_iso,
)

log = logging.getLogger(__name__)

PRIMARY_VIEW = "primary"
VERIFIED_STATE = "verified state"
"""Stands for our own verified checkpoint on the first side of a split view."""
STATE_RETRIES = 3
"""How often one head is decided again after another process moved the tree's state."""
ENTRY_PROOF_VIEW = "entry-proof"
"""The view of signed checkpoints a log serves with entries' inclusion proofs (the Rekor v1
search path), when they do not fit the verified tree; see `LogMonitor.observe_carried`."""


@dataclass(frozen=True)
class Head:
    """A signed checkpoint as served, before verification.

    `tree_id` names the tree it claims to belong to (a Rekor v1 shard's treeID; a tiled log has
    one tree, named by its origin). `frozen` marks a Rekor v1 shard that no longer grows.
    """

    tree_id: str
    note: str
    frozen: bool = False


class CheckpointSource(Protocol):
    """What the engine needs from a log client (Rekor v1 REST or tlog-tiles)."""

    async def heads(self) -> Sequence[Head]:
        """Every signed checkpoint the endpoint currently serves (active and frozen trees)."""

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        """A consistency proof between two sizes of one tree."""


@dataclass(frozen=True)
class LogSpec:
    """Everything the engine knows about one log, resolved from the configuration."""

    name: str
    verifiers: tuple[NoteVerifier, ...]
    expected_origin: Callable[[str], str | None]
    """Maps a tree id to the origin its checkpoints must carry (None: accept any)."""
    max_stale: timedelta
    error_grace: timedelta
    witnesses: tuple[WitnessKey, ...] = ()
    """Witnesses whose signatures on this log's checkpoints are verified and recorded."""
    witness_quorum: int = 0
    """Valid witness signatures a cosigned checkpoint must carry (0: no policy)."""
    poll_deadline: timedelta | None = None
    """How long one poll of every view may take (None: no bound but the HTTP layer's)."""


@dataclass
class PollResult:
    """What one poll of a log did."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    verified: dict[str, int] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    """The views whose poll failed."""


class PollDeadlineExceeded(NetworkError):
    """A view had not answered (or not been decided on) when the poll's deadline passed."""


class NotTheLogsNote(VerificationError):
    """A view other than the log's own endpoint served a note that does not verify as the log's
    checkpoint (another key, another origin, a bad signature): a failure of that view, since
    only the log's own endpoint speaks for the log."""

    def __init__(self, head: Head, error: VerificationError) -> None:
        super().__init__(str(error))
        self.head = head
        self.error = error


TargetFn = Callable[[Alert], list[str]]
Clock = Callable[[], datetime]


def _note_digest(note: str) -> str:
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
    details: dict[str, object] = {
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
    return Alert(
        kind=AlertKind.SPLIT_VIEW,
        dedup_key=fact_key(AlertKind.SPLIT_VIEW, log_name, tree_id, *(odd or [PRIMARY_VIEW]), day),
        summary=(
            f"{log_name}: two validly signed checkpoints cannot both be true "
            f"(size {sizes[0]} from {a[0]} vs size {sizes[1]} from {b[0]}): {reason}"
        ),
        log=log_name,
        details=details,
    )


def witness_quorum_alert(
    log_name: str, view: str, vc: VerifiedCheckpoint, report: WitnessReport, quorum: int, day: str
) -> Alert:
    """A cosigned checkpoint that carries fewer valid witness signatures than the quorum.

    One fact per log, view and UTC day: a witness endpoint that stays below quorum serves a new
    checkpoint every poll, and each is the same news.
    """
    cp = vc.checkpoint
    return Alert(
        kind=AlertKind.WITNESS_QUORUM,
        dedup_key=fact_key(AlertKind.WITNESS_QUORUM, log_name, view, day),
        summary=(
            f"{log_name}: checkpoint of size {cp.size} from {view} carries {len(report.valid)} "
            f"valid witness signature(s), below the quorum of {quorum}"
        ),
        log=log_name,
        details={
            "view": view,
            "size": cp.size,
            "root": cp.root.hex(),
            "note": vc.note.to_text(),
            "quorum": quorum,
            "cosigners": list(report.cosigners),
            "invalid": list(report.invalid),
        },
    )


class LogMonitor:
    """Polls every view of one log and keeps its verified state. One poll at a time."""

    def __init__(
        self,
        spec: LogSpec,
        log_id: int,
        sources: Mapping[str, CheckpointSource],
        store: AsyncStore,
        targets: TargetFn,
        clock: Clock,
        *,
        lagging: Collection[str] = (),
        cosigned: Collection[str] = (),
    ) -> None:
        """`lagging` views (witnesses, peers) may serve older checkpoints than the verified
        state without a rollback alert (inconsistency is still a split view); `cosigned` views
        serve witnessed checkpoints, so the witness quorum applies to everything they serve."""
        if PRIMARY_VIEW not in sources:
            raise ValueError("engine: the log's own endpoint must be the 'primary' view")
        self.spec = spec
        self.log_id = log_id
        self.sources = sources
        self.store = store
        self.targets = targets
        self.clock = clock
        self.lagging = frozenset(lagging)
        self.cosigned = frozenset(cosigned)
        self._asked_above: dict[str, int] | None = None
        """Each tree's high-water mark when the current poll sent its requests."""

    async def poll(self) -> PollResult:
        """Fetch, verify and record every view's checkpoints once.

        Every view's heads are requested at once. They are decided one view at a time (each
        decision reads and writes the log's state): the primary's first, then each other view's
        as it answers, so a slow view delays neither the primary nor the other views. The poll
        ends at `spec.poll_deadline`: a view not answered and decided by then is a failed poll
        of that view (`PollDeadlineExceeded`). Whatever a view raises is a failed poll of that
        view alone.
        """
        result = PollResult()
        # What was verified before asking: a head below it is a rollback. A head compared
        # only with what another process verified while it was in flight may just be older.
        self._asked_above = {
            s.tree_id: s.high_water
            for s in await self.store.call(self.store.store.log_states, self.log_id)
        }
        loop = asyncio.get_running_loop()
        limit = self.spec.poll_deadline
        deadline = None if limit is None else loop.time() + limit.total_seconds()
        fetches = {
            view: asyncio.ensure_future(source.heads()) for view, source in self.sources.items()
        }
        try:
            await self._settle(PRIMARY_VIEW, fetches[PRIMARY_VIEW], deadline, result)
            waiting = {task: view for view, task in fetches.items() if view != PRIMARY_VIEW}
            while waiting:
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    break
                for view in [v for v, task in fetches.items() if task in done]:
                    del waiting[fetches[view]]
                    await self._settle(view, fetches[view], deadline, result)
            for view in waiting.values():
                fetches[view].cancel()
                await self._view_failed(view, self._late(), result)
        finally:
            for task in fetches.values():
                task.cancel()
            # Collects every outcome, so no failure is left unretrieved.
            await asyncio.gather(*fetches.values(), return_exceptions=True)
            self._asked_above = None
        await self._check_stale(result)
        for state in await self.store.call(self.store.store.log_states, self.log_id):
            result.verified[state.tree_id] = state.verified_size
        return result

    async def record_failure(self, view: str, error: Exception, result: PollResult) -> None:
        """Record a failed poll of `view` (the log's own endpoint, a view, or a part of the poll
        such as "scan"): `error_since`, and `log_error` once the failure has lasted
        `error_grace`."""
        await self._view_failed(view, error, result)

    async def record_recovered(self, view: str) -> None:
        """End the outage of `view` (a part of the poll such as "scan"), if it has one."""

        def write(store: Store) -> None:
            health = store.view_health(self.log_id, view)
            if health is None or health.error_since is None:
                return
            with store.transaction() as conn:
                store.record_view_ok(conn, self.log_id, view, grew=False, now=self.clock())

        await self.store.call(write, self.store.store)

    async def observe_carried(self, view: str, head: Head) -> PollResult:
        """Decide on a checkpoint the log served with something else (the signed checkpoint of
        an entry's inclusion proof) as an observation of `view`, exactly as a polled view's:
        recorded in `checkpoints`, compared with every recorded checkpoint and the verified
        state, `split_view` (with portable evidence) or `rollback` when it cannot be true.

        Only a note that verifies with the log's key and origin counts: anything else returns
        an empty result, and the caller reports what carried it. The view's health is not
        touched (it is not polled). Failures fetching a consistency proof raise, as in a poll.
        """
        result = PollResult()
        try:
            verify_checkpoint(
                head.note, self.spec.verifiers, self.spec.expected_origin(head.tree_id)
            )
        except (VerificationError, ParseError):
            return result
        await self._observe(view, head, result)
        return result

    async def _settle(
        self,
        view: str,
        fetch: asyncio.Future[Sequence[Head]],
        deadline: float | None,
        result: PollResult,
    ) -> None:
        """Decide on one view's heads once they have come, by the poll's `deadline` (the event
        loop's clock); record the view's poll as ok or failed."""
        bound = asyncio.timeout_at(deadline)
        grew = False
        failure: Exception
        try:
            async with bound:
                heads = await fetch
                for head in heads:
                    try:
                        grew |= await self._observe(view, head, result)
                    except NotTheLogsNote as e:
                        await self._foreign_note(view, e, result)
        except TimeoutError as e:
            failure = self._late() if bound.expired() else e
        except StoreError:
            raise  # the database failed, not the view: the caller reports it
        except Exception as e:  # noqa: BLE001 - whatever a hostile answer reaches fails the view
            failure = e
        else:
            if view not in result.failed:
                await self.store.call(self._write_view_ok, view, grew)
            return
        await self._view_failed(view, failure, result)

    def _late(self) -> PollDeadlineExceeded:
        limit = self.spec.poll_deadline
        seconds = 0.0 if limit is None else limit.total_seconds()
        return PollDeadlineExceeded(
            f"no answer within the poll deadline of {seconds:g}s "
            "(the larger of the log's interval and 4 x request_timeout); polled again next time"
        )

    # -- one checkpoint ----------------------------------------------------------------------

    async def _observe(self, view: str, head: Head, result: PollResult, *, raced: int = 0) -> bool:
        """Verify and record one head; returns True when the tree's verified size grew.

        `raced` counts the times another process moved this tree's state while this head was
        being decided on (the state write is a compare-and-swap; see `Store.put_state`).
        """
        name = self.spec.name
        try:
            vc = verify_checkpoint(
                head.note, self.spec.verifiers, self.spec.expected_origin(head.tree_id)
            )
        except VerificationError as e:
            if view != PRIMARY_VIEW:
                raise NotTheLogsNote(head, e) from e
            alert = Alert(
                kind=AlertKind.BAD_SIGNATURE,
                dedup_key=fact_key(AlertKind.BAD_SIGNATURE, name, view, _note_digest(head.note)),
                summary=f"{name}: checkpoint from {view} failed verification: {e}",
                log=name,
                details={"view": view, "tree_id": head.tree_id, "note": head.note, "error": str(e)},
            )
            await self._commit(result, [alert])
            return False
        cp = vc.checkpoint
        state: LogState | None = await self.store.call(
            self.store.store.log_state, self.log_id, head.tree_id
        )
        alerts = await self.store.call(self._same_size_conflicts, view, head.tree_id, vc)
        witnessed = self._witnesses(view, vc, alerts)
        new_state: LogState | None = None
        now = self.clock()
        if state is None:
            if not alerts:
                log.info(
                    "%s: first verified checkpoint of tree %s at size %d",
                    name,
                    head.tree_id,
                    cp.size,
                )
                new_state = LogState(
                    log_id=self.log_id,
                    tree_id=head.tree_id,
                    origin=cp.origin,
                    verified_size=cp.size,
                    verified_root=cp.root,
                    verified_note=vc.note.to_text(),
                    high_water=cp.size,
                    scan_cursor=None,
                    compact_range=None,
                    frozen=head.frozen,
                    updated_at=utc_iso(now),
                )
        elif cp.size == state.verified_size:
            if cp.root != state.verified_root:
                alerts.append(
                    self._split(head.tree_id, state, view, vc, None, "same size, different roots")
                )
            elif head.frozen and not state.frozen:
                new_state = replace(state, frozen=True, updated_at=utc_iso(now))
        elif cp.size > state.verified_size:
            proof = await self.sources[PRIMARY_VIEW].consistency_proof(
                head.tree_id, state.verified_size, cp.size
            )
            try:
                verify_consistency(
                    state.verified_size, cp.size, state.verified_root, cp.root, proof
                )
            except ProofError as e:
                alerts.append(self._split(head.tree_id, state, view, vc, proof, str(e)))
            else:
                new_state = replace(
                    state,
                    verified_size=cp.size,
                    verified_root=cp.root,
                    verified_note=vc.note.to_text(),
                    high_water=max(state.high_water, cp.size),
                    frozen=state.frozen or head.frozen,
                    updated_at=utc_iso(now),
                )
        else:
            # After a lost race the head may predate the state it is compared with: consistent
            # and older is not proof the log went back (inconsistent is still a split view).
            known = (
                state.high_water
                if self._asked_above is None
                else self._asked_above.get(head.tree_id)
            )
            below = known is not None and cp.size < known and view not in self.lagging and not raced
            consistent: bool | None = True
            proof_error: str | None = None
            try:
                proof = await self.sources[PRIMARY_VIEW].consistency_proof(
                    head.tree_id, cp.size, state.verified_size
                )
            except Exception as e:
                # A rollback must not wait for the log's cooperation: a log restored from a
                # backup refuses proofs to the sizes it lost.
                if not below:
                    raise
                consistent, proof_error = None, f"{type(e).__name__}: {e}"
                log.warning(
                    "%s: no consistency proof for the smaller checkpoint from %s: %s",
                    name,
                    view,
                    proof_error,
                    exc_info=not isinstance(e, NetworkError | ParseError),
                )
            else:
                try:
                    verify_consistency(
                        cp.size, state.verified_size, cp.root, state.verified_root, proof
                    )
                except ProofError as e:
                    consistent = False
                    alerts.append(self._split(head.tree_id, state, view, vc, proof, str(e)))
            if below:
                alerts.append(
                    self._rollback(head.tree_id, state, view, vc, consistent, proof_error)
                )
        grew = (
            new_state is not None
            and state is not None
            and new_state.verified_size > state.verified_size
        )
        try:
            await self._commit(
                result,
                alerts,
                view=view,
                tree_id=head.tree_id,
                vc=vc,
                head=head,
                state=new_state,
                expected=state,
                witnessed=witnessed,
            )
        except StaleState:
            if raced >= STATE_RETRIES:
                raise
            log.info(
                "%s: tree %s moved under another process; deciding %s's checkpoint again",
                name,
                head.tree_id,
                view,
            )
            return await self._observe(view, head, result, raced=raced + 1)
        return grew

    def _witnesses(
        self, view: str, vc: VerifiedCheckpoint, alerts: list[Alert]
    ) -> WitnessReport | None:
        """Verify the configured witnesses' signatures on `vc`; append a `witness_quorum` alert
        when the note is cosigned (it comes from a witness view, or carries any signature line
        besides the log's) and falls short of the quorum."""
        spec = self.spec
        if not spec.witnesses:
            return None
        report = check_witnesses(vc.note, spec.witnesses)
        for problem in report.invalid:
            log.warning("%s: %s: %s", spec.name, view, problem)
        log_keys = {(v.name, bytes(v.key_hint)) for v in spec.verifiers}
        foreign = any((s.name, s.key_hint) not in log_keys for s in vc.note.signatures)
        if (
            spec.witness_quorum
            and (view in self.cosigned or foreign)
            and quorum_shortfall(report, spec.witness_quorum)
        ):
            day = self.clock().date().isoformat()
            alerts.append(
                witness_quorum_alert(spec.name, view, vc, report, spec.witness_quorum, day)
            )
        return report

    def _signer_of(self, vc: VerifiedCheckpoint) -> NoteVerifier:
        """The log key that signed `vc` (a log may have several, e.g. across a rotation): the
        evidence must name the key that actually verifies the note."""
        lines = {(sig.name, sig.key_hint) for sig in vc.note.signatures}
        return next(
            v
            for v in self.spec.verifiers
            if v.name in vc.signers and (v.name, bytes(v.key_hint)) in lines
        )

    def _same_size_conflicts(self, view: str, tree_id: str, vc: VerifiedCheckpoint) -> list[Alert]:
        """Split views at one size: a recorded checkpoint of this tree, from any view, with the
        same size and a different root. Runs on the store thread."""
        cp = vc.checkpoint
        for other in self.store.store.checkpoints_at(self.log_id, tree_id, cp.size):
            if other.root != cp.root:
                return [
                    split_view_alert(
                        self.spec.name,
                        tree_id,
                        (other.view, other.note),
                        (view, vc.note.to_text()),
                        sizes=(other.size, cp.size),
                        roots=(other.root, cp.root),
                        proof=None,
                        reason="same size, different roots",
                        day=self.clock().date().isoformat(),
                        verifier=self._signer_of(vc),
                    )
                ]
        return []

    # -- alerts ------------------------------------------------------------------------------

    def _split(
        self,
        tree_id: str,
        state: LogState,
        view: str,
        vc: VerifiedCheckpoint,
        proof: Sequence[bytes] | None,
        reason: str,
    ) -> Alert:
        cp = vc.checkpoint
        return split_view_alert(
            self.spec.name,
            tree_id,
            (VERIFIED_STATE, state.verified_note),
            (view, vc.note.to_text()),
            sizes=(state.verified_size, cp.size),
            roots=(state.verified_root, cp.root),
            proof=proof,
            reason=reason,
            day=self.clock().date().isoformat(),
            verifier=self._signer_of(vc),
        )

    def _rollback(
        self,
        tree_id: str,
        state: LogState,
        view: str,
        vc: VerifiedCheckpoint,
        consistent: bool | None,
        proof_error: str | None = None,
    ) -> Alert:
        """`consistent` is None when no consistency proof could be had (`proof_error` says
        why)."""
        cp = vc.checkpoint
        name = self.spec.name
        unproven = "" if consistent is not None else " (the log served no consistency proof)"
        return Alert(
            kind=AlertKind.ROLLBACK,
            dedup_key=fact_key(AlertKind.ROLLBACK, name, tree_id, view, cp.size, cp.root),
            summary=(
                f"{name}: {view} served a validly signed checkpoint of size {cp.size}, below the "
                f"high-water mark {state.high_water}{unproven}"
            ),
            log=name,
            details={
                "tree_id": tree_id,
                "view": view,
                "note": vc.note.to_text(),
                "size": cp.size,
                "high_water": state.high_water,
                "high_water_note": state.verified_note,
                "consistent_with_verified": consistent,
                "proof_error": proof_error,
            },
        )

    async def _foreign_note(self, view: str, refused: NotTheLogsNote, result: PollResult) -> None:
        """A view other than the log's own endpoint served a note that is not the log's
        checkpoint: a failed poll of that view and a `view_error` (one per view, reason and UTC
        day, however many distinct bogus notes it serves), never an alert against the log."""
        head, error = refused.head, refused.error
        name = self.spec.name
        now = self.clock()
        reason = self._why_not_the_logs(head.note)
        message = f"served a note that is not the log's checkpoint ({reason}): {error}"
        result.errors.append(f"{view}: {message}")
        result.failed.add(view)
        log.warning("%s: %s: %s", name, view, message)
        await self.store.call(self.store.store.record_view_error, self.log_id, view, message, now)
        alert = Alert(
            kind=AlertKind.VIEW_ERROR,
            dedup_key=fact_key(AlertKind.VIEW_ERROR, name, view, reason, now.date().isoformat()),
            summary=(
                f"{name}: {view} served a checkpoint that is not the log's ({reason}); "
                f"ignored, not held against the log: {error}"
            ),
            log=name,
            details={
                "view": view,
                "reason": reason,
                "tree_id": head.tree_id,
                "note": head.note,
                "error": str(error),
            },
        )
        await self._commit(result, [alert])

    def _why_not_the_logs(self, note: str) -> str:
        """Why `note` is not the log's checkpoint, in a few fixed words (part of the dedup key,
        so endless distinct bogus notes are one fact)."""
        try:
            signed = parse_signed_note(note)
        except ParseError:
            return "malformed"
        try:
            verify_note(signed, self.spec.verifiers)
        except VerificationError:
            ours = {(v.name, bytes(v.key_hint)) for v in self.spec.verifiers}
            if any((s.name, bytes(s.key_hint)) in ours for s in signed.signatures):
                return "bad signature"
            return "not signed by the log's key"
        return "wrong origin"

    async def _view_failed(self, view: str, error: Exception, result: PollResult) -> None:
        now = self.clock()
        message = f"{type(error).__name__}: {error}"
        if not isinstance(error, MonitorError):
            message = f"unexpected {message} (a bug in tlog-monitor: the traceback is in its log)"
        result.errors.append(f"{view}: {message}")
        result.failed.add(view)
        expected = isinstance(error, MonitorError)
        log.log(
            logging.WARNING if expected else logging.ERROR,
            "%s: %s: %s",
            self.spec.name,
            view,
            message,
            exc_info=None if expected else error,
        )
        health = await self.store.call(
            self.store.store.record_view_error, self.log_id, view, message, now
        )
        if health.error_since is None:
            return
        since = parse_utc(health.error_since)
        if now - since < self.spec.error_grace:
            return
        alert = Alert(
            kind=AlertKind.LOG_ERROR,
            dedup_key=fact_key(AlertKind.LOG_ERROR, self.spec.name, view, health.error_since),
            summary=(
                f"{self.spec.name}: {view} has failed since {health.error_since} "
                f"({health.errors} failed polls): {message}"
            ),
            log=self.spec.name,
            details={"view": view, "error_since": health.error_since, "last_error": message},
        )
        await self._commit(result, [alert])

    async def _check_stale(self, result: PollResult) -> None:
        health = await self.store.call(self.store.store.view_health, self.log_id, PRIMARY_VIEW)
        if health is None or health.last_growth_at is None:
            return
        now = self.clock()
        since = parse_utc(health.last_growth_at)
        if now - since < self.spec.max_stale:
            return
        states = await self.store.call(self.store.store.log_states, self.log_id)
        active = [s for s in states if not s.frozen]
        if not active:
            return
        state = max(active, key=lambda s: s.updated_at)
        alert = Alert(
            kind=AlertKind.LOG_STALE,
            dedup_key=fact_key(
                AlertKind.LOG_STALE, self.spec.name, state.tree_id, state.verified_size
            ),
            summary=(
                f"{self.spec.name}: no newer verified checkpoint since {health.last_growth_at} "
                f"(size {state.verified_size}, longer than max_stale {self.spec.max_stale})"
            ),
            log=self.spec.name,
            details={
                "tree_id": state.tree_id,
                "verified_size": state.verified_size,
                "last_growth_at": health.last_growth_at,
                "note": state.verified_note,
            },
        )
        await self._commit(result, [alert])

    # -- writing -----------------------------------------------------------------------------

    async def _commit(
        self,
        result: PollResult,
        alerts: Sequence[Alert],
        *,
        view: str | None = None,
        tree_id: str | None = None,
        vc: VerifiedCheckpoint | None = None,
        head: Head | None = None,
        state: LogState | None = None,
        expected: LogState | None = None,
        witnessed: WitnessReport | None = None,
    ) -> None:
        """Write one observation in one transaction: the checkpoint seen, its cosignatures, the
        new verified `state` (a compare-and-swap from `expected`, the state it was decided on:
        raises StaleState when another process moved it, and nothing is written) and alerts."""
        targets = [self.targets(a) for a in alerts]
        now = self.clock()

        def write(store: Store) -> list[tuple[int, Alert]]:
            created: list[tuple[int, Alert]] = []
            with store.transaction() as conn:
                if vc is not None and view is not None and tree_id is not None:
                    cp = vc.checkpoint
                    store.record_checkpoint(
                        conn,
                        log_id=self.log_id,
                        tree_id=tree_id,
                        view=view,
                        origin=cp.origin,
                        size=cp.size,
                        root=cp.root,
                        note=vc.note.to_text(),
                        cosigners=witnessed.cosigners if witnessed else (),
                        now=now,
                    )
                    if witnessed is not None and witnessed.valid:
                        store.record_cosignatures(
                            conn,
                            log_id=self.log_id,
                            tree_id=tree_id,
                            origin=cp.origin,
                            size=cp.size,
                            root=cp.root,
                            view=view,
                            signatures=[(w.key_id, w.timestamp, w.line) for w in witnessed.valid],
                            now=now,
                        )
                if state is not None:
                    store.put_state(conn, state, expected=expected)
                for alert, channels in zip(alerts, targets, strict=True):
                    alert_id = store.add_alert(conn, alert, self.log_id, channels, now)
                    if alert_id is not None:
                        created.append((alert_id, alert))
            return created

        for alert_id, alert in await self.store.call(write, self.store.store):
            log.warning("alert %d %s: %s", alert_id, alert.kind.value, alert.summary)
            result.alerts.append((alert_id, alert))

    def _write_view_ok(self, view: str, grew: bool) -> None:
        store = self.store.store
        with store.transaction() as conn:
            first = store.view_health(self.log_id, view) is None
            store.record_view_ok(conn, self.log_id, view, grew=grew or first, now=self.clock())
