"""Shared test fixtures: paths to the real-world data vendored in tests/data (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parent / "data"
"""Data we did not make: Merkle proof vectors, real Sigstore bundles and real Rekor responses."""


def real_files(pattern: str, *, at_least: int = 1) -> list[Path]:
    """The files under `REAL_DATA` matching `pattern` (a `Path.glob` pattern), sorted.

    Used to parametrize tests at collection: a vendored file that went missing must fail the run
    rather than silently shrink a parameter list to nothing (which pytest reports as a skip).
    """
    found = sorted(p for p in REAL_DATA.glob(pattern) if p.is_file())
    if len(found) < at_least:
        raise FileNotFoundError(
            f"expected at least {at_least} file(s) matching {pattern!r} in {REAL_DATA}, "
            f"found {len(found)}: the vendored test data is incomplete (see tests/data/README.md)"
        )
    return found


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The vendored real-world data folder; a missing folder fails the test, it never skips."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"vendored test data not found at {REAL_DATA} (see tests/data/README.md)")
    return REAL_DATA
