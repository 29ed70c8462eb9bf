"""Shared test fixtures: paths to the real-world data in ../shared/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """The read-only real-world fixtures folder; tests that need it skip when it is absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real-world fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES
