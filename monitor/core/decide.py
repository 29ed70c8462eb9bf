"""The consistency engine's decisions, as one pure function.

`decide` takes what the engine fetched for one verified checkpoint (the tree's verified state,
the checkpoints recorded at the same size, the consistency proof `proof_needed` asked for, or
why the log refused it) and the kind of view that served it, and returns the new state and the
alerts; `monitor.service.engine` fetches, calls it and commits the result in one transaction.
The rules are those of docs/operations.md ("How the engine decides"); tests/unit/test_decide.py
has one row per rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from monitor.core.alerts import (
    VERIFIED_STATE,
    Alert,
    frozen_log_grew_alert,
    rollback_alert,
    split_view_alert,
    witness_quorum_alert,
)
from monitor.core.errors import ParseError, VerificationError
from monitor.core.merkle import ProofError, verify_consistency
from monitor.core.note import NoteVerifier, VerifiedCheckpoint, parse_signed_note, verify_note
from monitor.core.witness import WitnessKey, WitnessReport, check_witnesses, quorum_shortfall


@dataclass(frozen=True)
class LogState:
    """Verified state of one tree of one log (a Rekor v1 shard, or a tiled log's tree)."""

    log_id: int
    tree_id: str
    origin: str
    verified_size: int
    verified_root: bytes
    verified_note: str
    high_water: int
    scan_cursor: int | None
    compact_range: bytes | None
    frozen: bool
    updated_at: str


class Recorded(Protocol):
    """A checkpoint already recorded for the tree (`StoredCheckpoint` in the store)."""

    @property
    def view(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def root(self) -> bytes: ...

    @property
    def note(self) -> str: ...


@dataclass(frozen=True)
class LogPolicy:
    """What the decisions need to know about the log."""

    name: str
    verifiers: tuple[NoteVerifier, ...]
    witnesses: tuple[WitnessKey, ...] = ()
    witness_quorum: int = 0
    """Valid witness signatures a cosigned checkpoint must carry (0: no policy)."""


@dataclass(frozen=True)
class ViewKind:
    """The view that served a checkpoint: `lagging` views (witnesses, peers) may trail the log,
    so an older checkpoint from them is no rollback; `cosigned` views serve witnessed
    checkpoints, so the witness quorum applies to everything they serve."""

    name: str
    lagging: bool = False
    cosigned: bool = False


@dataclass(frozen=True)
class Observed:
    """A checkpoint that verified with the log's key and origin, as served for `tree_id`."""

    tree_id: str
    vc: VerifiedCheckpoint
    frozen: bool = False
    """The tree no longer grows: the log says so (an inactive Rekor v1 shard), or the log's
    validity window has ended (`monitor.service.engine.LogSpec.valid_until`)."""


@dataclass(frozen=True)
class ProofRefused:
    """The consistency proof `proof_needed` asked for could not be had; `error` says why."""

    error: str


ProofResult = Sequence[bytes] | ProofRefused | None
"""The proof's hashes, why it could not be had, or None when `proof_needed` asked for none."""


@dataclass(frozen=True)
class Decision:
    """What to commit for one checkpoint: the new `state` (None: unchanged), the alerts, and
    the witness signatures verified on it. `failed`: the proof was refused and nothing may be
    decided without it, so nothing is written and the view's poll fails."""

    state: LogState | None = None
    alerts: list[Alert] = field(default_factory=list)
    witnessed: WitnessReport | None = None
    grew: bool = False
    failed: bool = False


def proof_needed(state: LogState | None, size: int) -> tuple[int, int] | None:
    """The consistency proof (smaller size, larger size) a checkpoint of `size` is decided
    with: none for a tree's first checkpoint or one at the verified size."""
    if state is None or size == state.verified_size:
        return None
    return min(size, state.verified_size), max(size, state.verified_size)


def signer_of(verifiers: Sequence[NoteVerifier], vc: VerifiedCheckpoint) -> NoteVerifier:
    """The log key that signed `vc` (a log may have several, e.g. across a rotation): the
    evidence must name the key that actually verifies the note."""
    lines = {(sig.name, sig.key_hint) for sig in vc.note.signatures}
    return next(
        v for v in verifiers if v.name in vc.signers and (v.name, bytes(v.key_hint)) in lines
    )


def why_not_the_logs(note: str, verifiers: Sequence[NoteVerifier]) -> str:
    """Why `note`, which did not verify as the log's checkpoint, is not: a few fixed words
    (part of the `view_error` dedup key, so endless distinct bogus notes are one fact)."""
    try:
        signed = parse_signed_note(note)
    except ParseError:
        return "malformed"
    try:
        verify_note(signed, verifiers)
    except VerificationError:
        ours = {(v.name, bytes(v.key_hint)) for v in verifiers}
        if any((s.name, bytes(s.key_hint)) in ours for s in signed.signatures):
            return "bad signature"
        return "not signed by the log's key"
    return "wrong origin"


def decide(
    policy: LogPolicy,
    view: ViewKind,
    state: LogState | None,
    seen: Observed,
    proof: ProofResult,
    *,
    log_id: int,
    recorded: Sequence[Recorded] = (),
    high_water: int | None,
    raced: bool = False,
    day: str,
    updated_at: str,
) -> Decision:
    """Decide on one verified checkpoint (docs/operations.md, "How the engine decides").

    `state` is the tree's verified state (None: its first checkpoint), `recorded` the
    checkpoints recorded for the tree at the same size from any view, `proof` the one
    `proof_needed` asked for. `high_water` is the mark a smaller checkpoint is judged a rollback
    against: the tree's when the poll asked (None: it had none then). `raced`: this is a second
    look after another process moved the state, so an older consistent checkpoint may just
    predate it. `day` (UTC, for daily dedup keys) and `updated_at` are the decision's time.
    """
    vc = seen.vc
    cp = vc.checkpoint
    note = vc.note.to_text()
    name = policy.name
    tree = seen.tree_id

    def split(
        a: tuple[str, str],
        sizes: tuple[int, int],
        roots: tuple[bytes, bytes],
        *,
        why: str,
        hashes: Sequence[bytes] | None,
    ) -> Alert:
        return split_view_alert(
            name,
            tree,
            a,
            (view.name, note),
            sizes=sizes,
            roots=roots,
            proof=hashes,
            reason=why,
            day=day,
            verifier=signer_of(policy.verifiers, vc),
        )

    alerts: list[Alert] = []
    # Same size, another root, from any view at any time: one alert is the fact.
    for other in recorded:
        if other.size == cp.size and other.root != cp.root:
            alerts.append(
                split(
                    (other.view, other.note),
                    (other.size, cp.size),
                    (other.root, cp.root),
                    why="same size, different roots",
                    hashes=None,
                )
            )
            break
    witnessed = None
    if policy.witnesses:
        witnessed = check_witnesses(vc.note, policy.witnesses)
        log_keys = {(v.name, bytes(v.key_hint)) for v in policy.verifiers}
        foreign = any((s.name, s.key_hint) not in log_keys for s in vc.note.signatures)
        if (
            policy.witness_quorum
            and (view.cosigned or foreign)
            and quorum_shortfall(witnessed, policy.witness_quorum)
        ):
            alerts.append(
                witness_quorum_alert(
                    name,
                    view.name,
                    size=cp.size,
                    root=cp.root,
                    note=note,
                    quorum=policy.witness_quorum,
                    cosigners=witnessed.cosigners,
                    invalid=witnessed.invalid,
                    day=day,
                )
            )
    new_state: LogState | None = None
    if state is None:
        # Nothing to compare with: trusted as it is, unless it already raised an alert.
        if not alerts:
            new_state = LogState(
                log_id=log_id,
                tree_id=tree,
                origin=cp.origin,
                verified_size=cp.size,
                verified_root=cp.root,
                verified_note=note,
                high_water=cp.size,
                scan_cursor=None,
                compact_range=None,
                frozen=seen.frozen,
                updated_at=updated_at,
            )
        return Decision(new_state, alerts, witnessed)
    verified = state

    def contradicts(why: str, hashes: Sequence[bytes] | None) -> Alert:
        """A split view between the verified state and the checkpoint."""
        return split(
            (VERIFIED_STATE, verified.verified_note),
            (verified.verified_size, cp.size),
            (verified.verified_root, cp.root),
            why=why,
            hashes=hashes,
        )

    if cp.size == state.verified_size:
        if cp.root != state.verified_root:
            alerts.append(contradicts("same size, different roots", None))
        elif seen.frozen and not state.frozen:
            new_state = replace(state, frozen=True, updated_at=updated_at)
        return Decision(new_state, alerts, witnessed)
    if proof is None:
        raise ValueError(f"decide: a consistency proof is needed for size {cp.size}")
    if cp.size > state.verified_size:
        if isinstance(proof, ProofRefused):
            return Decision(failed=True)
        try:
            verify_consistency(state.verified_size, cp.size, state.verified_root, cp.root, proof)
        except ProofError as e:
            alerts.append(contradicts(str(e), proof))
            return Decision(None, alerts, witnessed)
        if state.frozen:
            # Proven, so the state follows the log; but a tree kept at its final checkpoint
            # must not grow.
            alerts.append(
                frozen_log_grew_alert(
                    name, tree, frozen_size=state.verified_size, size=cp.size, note=note
                )
            )
        new_state = replace(
            state,
            verified_size=cp.size,
            verified_root=cp.root,
            verified_note=note,
            high_water=max(state.high_water, cp.size),
            frozen=state.frozen or seen.frozen,
            updated_at=updated_at,
        )
        return Decision(new_state, alerts, witnessed, grew=True)
    # After a lost race the head may predate the state it is compared with: consistent and
    # older is not proof the log went back (inconsistent is still a split view).
    below = high_water is not None and cp.size < high_water and not view.lagging and not raced
    consistent: bool | None = True
    proof_error: str | None = None
    if isinstance(proof, ProofRefused):
        # A rollback must not wait for the log's cooperation: a log restored from a backup
        # refuses proofs to the sizes it lost. Anything else needs the proof.
        if not below:
            return Decision(failed=True)
        consistent, proof_error = None, proof.error
    else:
        try:
            verify_consistency(cp.size, state.verified_size, cp.root, state.verified_root, proof)
        except ProofError as e:
            consistent = False
            alerts.append(contradicts(str(e), proof))
    if below:
        alerts.append(
            rollback_alert(
                name,
                tree,
                view.name,
                note=note,
                size=cp.size,
                root=cp.root,
                high_water=state.high_water,
                high_water_note=state.verified_note,
                consistent=consistent,
                proof_error=proof_error,
            )
        )
    return Decision(None, alerts, witnessed)
