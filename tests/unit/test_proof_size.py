"""`merkle.consistency_proof_size`: the length a client demands of a consistency proof before
verifying it (a wrong length is garbage from the log, not evidence of a split view).

Cross-checked against the happy-path proofs of transparency-dev/merkle's test vectors (proofs we
did not compute) and, as a property, against the proofs our own prover builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.merkle import consistency_proof, consistency_proof_size, node_hash
from tests.conftest import real_files

HAPPY = real_files("merkle-testdata/consistency/**/happy-path.json", at_least=4)


@pytest.mark.parametrize("path", HAPPY, ids=[p.parent.name for p in HAPPY])
def test_size_matches_published_happy_path_proofs(path: Path) -> None:
    vector = json.loads(path.read_text())
    assert consistency_proof_size(vector["size1"], vector["size2"]) == len(vector["proof"] or [])


@pytest.mark.parametrize(
    ("size1", "size2", "size"),
    # (3, 7) and (4, 7) are the examples of RFC 6962 section 2.1.3: [c, d, g, l] and [l].
    [
        (0, 0, 0),
        (0, 5, 0),
        (7, 7, 0),
        (1, 2, 1),
        (1, 8, 3),
        (4, 8, 1),
        (3, 7, 4),
        (4, 7, 1),
        (6, 8, 3),
    ],
)
def test_size_table(size1: int, size2: int, size: int) -> None:
    assert consistency_proof_size(size1, size2) == size


@pytest.mark.parametrize(("size1", "size2"), [(-1, 3), (4, 3)])
def test_impossible_sizes_are_refused(size1: int, size2: int) -> None:
    with pytest.raises(ValueError, match="size1 <= size2"):
        consistency_proof_size(size1, size2)


def _node(level: int, index: int) -> bytes:
    return node_hash(level.to_bytes(32, "big"), index.to_bytes(32, "big"))


@given(st.integers(1, 5000), st.integers(0, 5000))
def test_size_is_the_length_of_the_proof_built(size1: int, extra: int) -> None:
    size2 = size1 + extra
    assert consistency_proof_size(size1, size2) == len(consistency_proof(size1, size2, _node))
