"""The engine's decisions, one row per rule of docs/operations.md ("How the engine decides").

Each row names the words of the rule it checks; the test fails when those words leave the doc,
so a rule cannot be rewritten without its row.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.core.alerts import AlertKind
from monitor.core.decide import (
    Decision,
    LogPolicy,
    LogState,
    Observed,
    ProofRefused,
    ProofResult,
    ViewKind,
    decide,
    proof_needed,
)
from monitor.core.merkle import MerkleTree, leaf_hash
from monitor.core.note import (
    Checkpoint,
    CosignatureSigner,
    Ed25519NoteSigner,
    format_checkpoint,
    sign_note,
    verify_checkpoint,
)

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ORIGIN = "example.com/log"
LOG = Ed25519NoteSigner(
    ORIGIN, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"decide log").digest())
)
WITNESS = CosignatureSigner(
    "w1.example", Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"decide w1").digest())
)
TRUE = MerkleTree()
FORK = MerkleTree()
for _i in range(16):
    TRUE.append(leaf_hash(b"entry %d" % _i))
    FORK.append(leaf_hash(b"forked %d" % _i))
VERIFIED = 8
"""The verified size of the state most rows start from."""


def note(size: int, tree: MerkleTree = TRUE) -> str:
    text = format_checkpoint(Checkpoint(origin=ORIGIN, size=size, root=tree.root(size)))
    return sign_note(text, [LOG]).to_text()


def state(size: int = VERIFIED, high_water: int | None = None, frozen: bool = False) -> LogState:
    return LogState(
        log_id=1,
        tree_id="t",
        origin=ORIGIN,
        verified_size=size,
        verified_root=TRUE.root(size),
        verified_note=note(size),
        high_water=size if high_water is None else high_water,
        scan_cursor=None,
        compact_range=None,
        frozen=frozen,
        updated_at="2026-01-01T00:00:00.000000+00:00",
    )


@dataclass(frozen=True)
class Recorded:
    view: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class Row:
    rule: str
    """Words of docs/operations.md stating the rule."""
    state: LogState | None
    size: int
    tree: MerkleTree = TRUE
    view: ViewKind = field(default_factory=lambda: ViewKind("primary"))
    proof: str = "honest"
    """honest: the log's true proof; refused: the log refused it."""
    recorded: tuple[Recorded, ...] = ()
    high_water: int | None = -1
    """-1: the state's own high-water mark."""
    raced: bool = False
    frozen: bool = False
    witnessed: bool = False
    """The log has a witness and a quorum of 1 (nobody cosigned)."""
    # expected
    alerts: tuple[AlertKind, ...] = ()
    new_size: int | None = None
    """The verified size after the decision; None: the state is not written."""
    failed: bool = False
    new_frozen: bool = False
    consistent: object = "n/a"
    """The rollback's consistent_with_verified, when one is expected."""


MIRROR = ViewKind("view1:https://mirror.example")
PEER = ViewKind("view2:https://peer.example", lagging=True)
WITNESS_VIEW = ViewKind("view3:https://witness.example", lagging=True, cosigned=True)
CONFLICT = Recorded(MIRROR.name, 12, FORK.root(12), note(12, FORK))

ROWS = [
    Row(
        "The first verified checkpoint of a tree is trusted as it is",
        None,
        5,
        new_size=5,
    ),
    Row(
        "the same size as a recorded checkpoint of the tree with another root",
        None,
        12,
        recorded=(CONFLICT,),
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "same size, other root anywhere--> split_view",
        state(),
        12,
        recorded=(CONFLICT,),
        alerts=(AlertKind.SPLIT_VIEW,),
        new_size=12,
    ),
    Row("--holds--> state advances (same transaction)", state(), 12, new_size=12),
    Row("--holds--> state advances (same transaction)", state(), 12, view=MIRROR, new_size=12),
    Row(
        "larger  -> consistency proof old -> new  --fails--> split_view, state kept",
        state(),
        12,
        tree=FORK,
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "the proof request for it reaches a replica that does not know that size yet",
        state(),
        12,
        proof="refused",
        failed=True,
    ),
    Row(
        "older checkpoint, consistent with the verified one",
        state(),
        5,
        alerts=(AlertKind.ROLLBACK,),
        consistent=True,
    ),
    Row(
        "from the log's own endpoint or a mirror",
        state(),
        5,
        view=MIRROR,
        alerts=(AlertKind.ROLLBACK,),
        consistent=True,
    ),
    Row(
        "older checkpoint, not consistent",
        state(),
        5,
        tree=FORK,
        alerts=(AlertKind.SPLIT_VIEW, AlertKind.ROLLBACK),
        consistent=False,
    ),
    Row(
        "the log refuses the proof (400/404 for the proof or the tiles it needs)",
        state(),
        5,
        proof="refused",
        alerts=(AlertKind.ROLLBACK,),
        consistent=None,
    ),
    Row(
        "witness and peer views trail the log, so an older",
        state(),
        5,
        view=PEER,
    ),
    Row(
        "smaller -> consistency proof new -> old  --fails--> split_view",
        state(),
        5,
        view=PEER,
        tree=FORK,
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "smaller -> consistency proof new -> old  --fails--> split_view",
        state(),
        5,
        view=PEER,
        proof="refused",
        failed=True,
    ),
    Row(
        "older than the state another process wrote meanwhile and consistent with it",
        state(),
        5,
        high_water=3,
    ),
    Row(
        "older than the state another process wrote meanwhile and consistent with it",
        state(),
        5,
        raced=True,
    ),
    Row(
        "older than the state another process wrote meanwhile and consistent with it",
        state(),
        5,
        raced=True,
        tree=FORK,
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "below the high-water mark    ---------> rollback (even with no proof",
        state(),
        5,
        view=MIRROR,
        proof="refused",
        alerts=(AlertKind.ROLLBACK,),
        consistent=None,
    ),
    Row("equal   -> roots must match", state(), VERIFIED),
    Row(
        "equal   -> roots must match             --differ-> split_view",
        state(),
        VERIFIED,
        tree=FORK,
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "The old tree is marked `frozen` when it appears among the inactive shards",
        state(),
        VERIFIED,
        frozen=True,
        new_size=VERIFIED,
        new_frozen=True,
    ),
    Row(
        "A frozen shard that changes is a `split_view` or `rollback` like any other tree",
        state(frozen=True),
        VERIFIED,
        tree=FORK,
        frozen=True,
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "frozen_log_grew, state advances",
        state(frozen=True),
        12,
        alerts=(AlertKind.FROZEN_LOG_GREW,),
        new_size=12,
        new_frozen=True,
    ),
    Row(
        "a consistent larger checkpoint after that is a `frozen_log_grew`",
        state(frozen=True),
        12,
        view=MIRROR,
        frozen=True,
        alerts=(AlertKind.FROZEN_LOG_GREW,),
        new_size=12,
        new_frozen=True,
    ),
    Row(
        "(after a last growth, if the log grew since the previous poll)",
        state(),
        12,
        frozen=True,
        new_size=12,
        new_frozen=True,
    ),
    Row(
        "A frozen shard that changes is a `split_view` or `rollback` like any other tree",
        state(frozen=True),
        12,
        tree=FORK,
        frozen=True,
        alerts=(AlertKind.SPLIT_VIEW,),
    ),
    Row(
        "cosigned, below witness_quorum--> witness_quorum",
        state(),
        12,
        view=WITNESS_VIEW,
        witnessed=True,
        alerts=(AlertKind.WITNESS_QUORUM,),
        new_size=12,
    ),
    Row(
        "a cosigned checkpoint below `witness_quorum`) is recorded but does not become",
        None,
        12,
        view=WITNESS_VIEW,
        witnessed=True,
        alerts=(AlertKind.WITNESS_QUORUM,),
    ),
    Row(
        "cosigned, below witness_quorum--> witness_quorum", state(), 12, witnessed=True, new_size=12
    ),
]


def run(row: Row) -> Decision:
    vc = verify_checkpoint(note(row.size, row.tree), [LOG.verifier()], ORIGIN)
    needed = proof_needed(row.state, row.size)
    proof: ProofResult = None
    if needed is not None:
        proof = (
            ProofRefused("HTTPError: 400")
            if row.proof == "refused"
            else TRUE.consistency_proof(*needed)
        )
    policy = LogPolicy(
        "example",
        (LOG.verifier(),),
        witnesses=(WITNESS.verifier(),) if row.witnessed else (),
        witness_quorum=1 if row.witnessed else 0,
    )
    high_water = row.high_water
    if high_water == -1:
        high_water = None if row.state is None else row.state.high_water
    return decide(
        policy,
        row.view,
        row.state,
        Observed("t", vc, frozen=row.frozen),
        proof,
        log_id=1,
        recorded=row.recorded,
        high_water=high_water,
        raced=row.raced,
        day="2026-01-02",
        updated_at="2026-01-02T00:00:00.000000+00:00",
    )


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}:{r.rule[:40]}" for i, r in enumerate(ROWS)])
def test_decision_rules(row: Row) -> None:
    assert _flat(row.rule) in _flat(OPERATIONS.read_text()), "the rule left docs/operations.md"
    decision = run(row)
    assert decision.failed is row.failed
    assert tuple(a.kind for a in decision.alerts) == row.alerts
    if row.new_size is None:
        assert decision.state is None
    else:
        assert decision.state is not None
        assert decision.state.verified_size == row.new_size
        assert decision.state.verified_root == row.tree.root(row.new_size)
        assert decision.state.frozen is row.new_frozen
        old = row.state.high_water if row.state else 0
        assert decision.state.high_water == max(old, row.new_size)
        assert decision.grew is (row.state is not None and row.new_size > row.state.verified_size)
    rollbacks = [a for a in decision.alerts if a.kind is AlertKind.ROLLBACK]
    for alert in rollbacks:
        assert alert.details["consistent_with_verified"] is row.consistent
        assert (alert.details["proof_error"] is None) is (row.consistent is not None)
    for alert in decision.alerts:
        assert alert.log == "example"


def test_every_rule_of_the_diagram_has_a_row() -> None:
    text = OPERATIONS.read_text()
    diagram = text.split("## How the engine decides", 1)[1].split("```", 2)[1]
    covered = _flat(" ".join(r.rule for r in ROWS))
    for line in diagram.splitlines():
        outcome = re.search(r"-->\s*(.+)$", line)
        if outcome and "view_error" not in line and "bad_signature" not in line:
            # bad_signature and view_error are decided before a checkpoint reaches `decide`
            # (tests/integration/test_engine.py, tests/faults/test_attack_engine.py).
            assert _flat(outcome.group(1).strip().rstrip(";)")) in covered, line


def test_proof_needed() -> None:
    assert proof_needed(None, 5) is None
    assert proof_needed(state(), VERIFIED) is None
    assert proof_needed(state(), 12) == (VERIFIED, 12)
    assert proof_needed(state(), 5) == (5, VERIFIED)


def test_frozen_log_grew_names_both_sizes() -> None:
    row = Row("frozen_log_grew, state advances", state(frozen=True), 12)
    [alert] = run(row).alerts
    assert alert.details["frozen_size"] == VERIFIED and alert.details["size"] == 12
    assert alert.dedup_key == f"frozen_log_grew:example:t:{VERIFIED}"
