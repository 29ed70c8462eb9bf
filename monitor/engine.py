"""The consistency engine: proves, poll after poll, that a log only grows and shows every view
the same tree.

For each view of a log (its own URL, mirrors, peers), every checkpoint served goes through:

    fetch heads --> verify note (key, origin) --bad--> bad_signature
        |
        v
    record (view, origin, size, root) --same size, other root anywhere--> split_view
        |     + witness signatures (recorded) --cosigned, below witness_quorum--> witness_quorum
        v
    compare with the tree's verified state:
        larger  -> consistency proof old -> new  --fails--> split_view, state kept
                                             --holds--> state advances (same transaction)
        smaller -> consistency proof new -> old  --fails--> split_view
                   below the high-water mark    ---------> rollback (not for witnesses, peers)
        equal   -> roots must match             --differ-> split_view

Network failures never move state; they are recorded per view and become `log_error` only once
they have lasted `error_grace`. A log whose verified size has not grown for `max_stale` raises
`log_stale`. Every alert is written in the same transaction as the observation behind it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from monitor.alerts import Alert, AlertKind, fact_key
from monitor.errors import NetworkError, ParseError, VerificationError
from monitor.evidence import build_split_view
from monitor.merkle import ProofError, verify_consistency
from monitor.note import NoteVerifier, VerifiedCheckpoint, verify_checkpoint
from monitor.store import AsyncStore, LogState, Store, parse_utc, utc_iso
from monitor.witness import WitnessKey, WitnessReport, check_witnesses, quorum_shortfall

log = logging.getLogger(__name__)

PRIMARY_VIEW = "primary"
VERIFIED_STATE = "verified state"
"""Stands for our own verified checkpoint on the first side of a split view."""


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


@dataclass
class PollResult:
    """What one poll of a log did."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    verified: dict[str, int] = field(default_factory=dict)


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
    evidence document (`monitor.evidence`) under "evidence".
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

    async def poll(self) -> PollResult:
        """Fetch, verify and record every view's checkpoints once."""
        result = PollResult()
        for view, source in self.sources.items():
            try:
                heads = await source.heads()
            except (NetworkError, ParseError) as e:
                await self._view_failed(view, e, result)
                continue
            grew = False
            failed = False
            for head in heads:
                try:
                    grew |= await self._observe(view, head, result)
                except (NetworkError, ParseError) as e:
                    await self._view_failed(view, e, result)
                    failed = True
                    break
            if not failed:
                await self.store.call(self._write_view_ok, view, grew)
        await self._check_stale(result)
        for state in await self.store.call(self.store.store.log_states, self.log_id):
            result.verified[state.tree_id] = state.verified_size
        return result

    # -- one checkpoint ----------------------------------------------------------------------

    async def _observe(self, view: str, head: Head, result: PollResult) -> bool:
        """Verify and record one head; returns True when the tree's verified size grew."""
        name = self.spec.name
        try:
            vc = verify_checkpoint(
                head.note, self.spec.verifiers, self.spec.expected_origin(head.tree_id)
            )
        except VerificationError as e:
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
            proof = await self.sources[PRIMARY_VIEW].consistency_proof(
                head.tree_id, cp.size, state.verified_size
            )
            consistent = True
            try:
                verify_consistency(
                    cp.size, state.verified_size, cp.root, state.verified_root, proof
                )
            except ProofError as e:
                consistent = False
                alerts.append(self._split(head.tree_id, state, view, vc, proof, str(e)))
            if cp.size < state.high_water and view not in self.lagging:
                alerts.append(self._rollback(head.tree_id, state, view, vc, consistent))
        grew = (
            new_state is not None
            and state is not None
            and new_state.verified_size > state.verified_size
        )
        await self._commit(
            result,
            alerts,
            view=view,
            tree_id=head.tree_id,
            vc=vc,
            head=head,
            state=new_state,
            witnessed=witnessed,
        )
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
        self, tree_id: str, state: LogState, view: str, vc: VerifiedCheckpoint, consistent: bool
    ) -> Alert:
        cp = vc.checkpoint
        name = self.spec.name
        return Alert(
            kind=AlertKind.ROLLBACK,
            dedup_key=fact_key(AlertKind.ROLLBACK, name, tree_id, view, cp.size, cp.root),
            summary=(
                f"{name}: {view} served a validly signed checkpoint of size {cp.size}, below the "
                f"high-water mark {state.high_water}"
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
            },
        )

    async def _view_failed(self, view: str, error: Exception, result: PollResult) -> None:
        now = self.clock()
        message = f"{type(error).__name__}: {error}"
        result.errors.append(f"{view}: {message}")
        log.warning("%s: %s: %s", self.spec.name, view, message)
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
        witnessed: WitnessReport | None = None,
    ) -> None:
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
                    store.put_state(conn, state)
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
