"""Shared test fixtures: paths to the real-world data vendored in tests/data (see its README);
the fault suite's summary at the end of a run (`fault-summary.json` in pytest's base temporary
directory, or `$FAULT_SUMMARY` when set)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True, scope="session")
def _no_inherited_columns() -> Iterator[None]:
    """Tables fit $COLUMNS: tests see the width an operator's non-terminal run sees (no $COLUMNS,
    100 columns), whatever runs them (pytest-xdist workers set COLUMNS=80); a test that needs a
    width sets it itself."""
    saved = os.environ.pop("COLUMNS", None)
    yield
    if saved is not None:
        os.environ["COLUMNS"] = saved


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """The fault suite's totals, added up over every test process, when it ran."""
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        return
    from tests.faults.harness import TALLY_FILE, Tally

    basetemp: Path = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    tally = Tally()
    for part in sorted(basetemp.glob(TALLY_FILE.format("*"))):
        tally.merge(json.loads(part.read_text())["detail"])
    if not tally.scenarios:
        return
    target = os.environ.get("FAULT_SUMMARY")
    tally.write(Path(target) if target else basetemp / "fault-summary.json")
    totals = {k: v for k, v in tally.summary().items() if k != "detail"}
    terminalreporter.section("fault injection")
    terminalreporter.write_line(json.dumps(totals, sort_keys=True))
