"""The consistency engine: proves, poll after poll, that a log only grows and shows every view
the same tree.

For each view of a log (its own URL, mirrors, witnesses, peers) `LogMonitor` fetches the signed
checkpoints, verifies each note, asks `monitor.core.decide.decide` what it means and commits the
new state and alerts in one transaction. The rules, as a diagram and in words (concurrency, the
poll deadline, error_grace, max_stale, the compare-and-swap), are docs/operations.md ("How the
engine decides"); the path from the wire to a delivered message is docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from monitor.core.alerts import (
    PRIMARY_VIEW,
    Alert,
    bad_signature_alert,
    log_error_alert,
    log_stale_alert,
    view_error_alert,
)
from monitor.core.decide import (
    LogPolicy,
    LogState,
    Observed,
    ProofRefused,
    ProofResult,
    ViewKind,
    decide,
    proof_needed,
    why_not_the_logs,
)
from monitor.core.errors import MonitorError, NetworkError, ParseError, VerificationError
from monitor.core.note import NoteVerifier, VerifiedCheckpoint, verify_checkpoint
from monitor.core.witness import WitnessKey, WitnessReport
from monitor.service.alert_log import raised
from monitor.store.database import (
    AsyncStore,
    StaleState,
    Store,
    StoreError,
    parse_utc,
    utc_iso,
)

log = logging.getLogger(__name__)

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
    valid_until: datetime | None = None
    """The end of the log's validity window (a `[[sigstore]]` trust root's `validFor` end;
    None: open). From then on every checkpoint observed is taken as final: the tree is kept
    frozen at it, and a later growth is a `frozen_log_grew`."""


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
        self._policy = LogPolicy(spec.name, spec.verifiers, spec.witnesses, spec.witness_quorum)

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
            s.tree_id: s.high_water for s in await self.store.state.log_states(self.log_id)
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
        for state in await self.store.state.log_states(self.log_id):
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

        await self.store.run(write)

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
                await self.store.run(lambda store: self._write_view_ok(store, view, grew))
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

        Fetch (the tree's state, what was recorded at the same size, the proof the decision
        needs), decide (`monitor.core.decide`), commit. `raced` counts the times another process
        moved this tree's state while this head was being decided on (the state write is a
        compare-and-swap; see `Store.put_state`).
        """
        name = self.spec.name
        try:
            vc = verify_checkpoint(
                head.note, self.spec.verifiers, self.spec.expected_origin(head.tree_id)
            )
        except VerificationError as e:
            if view != PRIMARY_VIEW:
                raise NotTheLogsNote(head, e) from e
            alert = bad_signature_alert(name, view, head.tree_id, head.note, str(e))
            await self._commit(result, [alert])
            return False
        cp = vc.checkpoint
        state = await self.store.state.log_state(self.log_id, head.tree_id)
        recorded = await self.store.state.checkpoints_at(self.log_id, head.tree_id, cp.size)
        proof: ProofResult = None
        refusal: Exception | None = None
        needed = proof_needed(state, cp.size)
        if needed is not None:
            try:
                proof = await self.sources[PRIMARY_VIEW].consistency_proof(head.tree_id, *needed)
            except Exception as e:  # noqa: BLE001 - `decide` says whether it may go on without
                refusal = e
                proof = ProofRefused(f"{type(e).__name__}: {e}")
        now = self.clock()
        known = None
        if state is not None:
            known = (
                state.high_water
                if self._asked_above is None
                else self._asked_above.get(head.tree_id)
            )
        ended = self.spec.valid_until is not None and now >= self.spec.valid_until
        decision = decide(
            self._policy,
            ViewKind(view, lagging=view in self.lagging, cosigned=view in self.cosigned),
            state,
            Observed(head.tree_id, vc, frozen=head.frozen or ended),
            proof,
            log_id=self.log_id,
            recorded=recorded,
            high_water=known,
            raced=bool(raced),
            day=now.date().isoformat(),
            updated_at=utc_iso(now),
        )
        if decision.failed and refusal is not None:
            # Only a refused proof fails a decision: the view's poll fails with the log's answer.
            raise refusal
        if decision.witnessed is not None:
            for problem in decision.witnessed.invalid:
                log.warning("%s: %s: %s", name, view, problem)
        if refusal is not None:
            log.warning(
                "%s: no consistency proof for the smaller checkpoint from %s: %s",
                name,
                view,
                f"{type(refusal).__name__}: {refusal}",
                exc_info=not isinstance(refusal, NetworkError | ParseError),
            )
        if state is None and decision.state is not None:
            log.info(
                "%s: first verified checkpoint of tree %s at size %d", name, head.tree_id, cp.size
            )
        try:
            await self._commit(
                result,
                decision.alerts,
                view=view,
                tree_id=head.tree_id,
                vc=vc,
                state=decision.state,
                expected=state,
                witnessed=decision.witnessed,
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
        return decision.grew

    async def _foreign_note(self, view: str, refused: NotTheLogsNote, result: PollResult) -> None:
        """A view other than the log's own endpoint served a note that is not the log's
        checkpoint: a failed poll of that view and a `view_error` (one per view, reason and UTC
        day, however many distinct bogus notes it serves), never an alert against the log."""
        head, error = refused.head, refused.error
        name = self.spec.name
        now = self.clock()
        reason = why_not_the_logs(head.note, self.spec.verifiers)
        message = f"served a note that is not the log's checkpoint ({reason}): {error}"
        result.errors.append(f"{view}: {message}")
        result.failed.add(view)
        log.warning("%s: %s: %s", name, view, message)
        await self.store.state.record_view_error(self.log_id, view, message, now)
        alert = view_error_alert(
            name,
            view,
            reason=reason,
            tree_id=head.tree_id,
            note=head.note,
            error=str(error),
            day=now.date().isoformat(),
        )
        await self._commit(result, [alert])

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
        health = await self.store.state.record_view_error(self.log_id, view, message, now)
        if health.error_since is None:
            return
        since = parse_utc(health.error_since)
        if now - since < self.spec.error_grace:
            return
        alert = log_error_alert(
            self.spec.name,
            view,
            error_since=health.error_since,
            errors=health.errors,
            last_error=message,
        )
        await self._commit(result, [alert])

    async def _check_stale(self, result: PollResult) -> None:
        health = await self.store.state.view_health(self.log_id, PRIMARY_VIEW)
        if health is None or health.last_growth_at is None:
            return
        now = self.clock()
        since = parse_utc(health.last_growth_at)
        if now - since < self.spec.max_stale:
            return
        states = await self.store.state.log_states(self.log_id)
        active = [s for s in states if not s.frozen]
        if not active:
            return
        state = max(active, key=lambda s: s.updated_at)
        alert = log_stale_alert(
            self.spec.name,
            state.tree_id,
            verified_size=state.verified_size,
            last_growth_at=health.last_growth_at,
            note=state.verified_note,
            max_stale=self.spec.max_stale,
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

        raised(await self.store.run(write), result.alerts)

    def _write_view_ok(self, store: Store, view: str, grew: bool) -> None:
        with store.transaction() as conn:
            first = store.view_health(self.log_id, view) is None
            store.record_view_ok(conn, self.log_id, view, grew=grew or first, now=self.clock())
