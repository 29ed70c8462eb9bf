"""The verified state and the scan cursor are compare-and-swaps on a real SQLite file: a write
decided on a state that has since moved raises StaleState and changes nothing, and nothing can
lower the verified size, the high-water mark or the cursor, nor unfreeze a tree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.store.database import LogState, StaleState, Store, StoreError, utc_iso

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TREE = "tree-1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "monitor.db")
    s.ensure_log("log", "tiles", "http://127.0.0.1:1", NOW)
    try:
        yield s
    finally:
        s.close()


def state(size: int, *, root: bytes | None = None, frozen: bool = False) -> LogState:
    return LogState(
        log_id=1,
        tree_id=TREE,
        origin="example.com/log",
        verified_size=size,
        verified_root=root if root is not None else size.to_bytes(32, "big"),
        verified_note=f"note at {size}",
        high_water=size,
        scan_cursor=None,
        compact_range=None,
        frozen=frozen,
        updated_at=utc_iso(NOW),
    )


def put(store: Store, new: LogState, expected: LogState | None) -> None:
    with store.transaction() as conn:
        store.put_state(conn, new, expected=expected)


def scan_to(store: Store, cursor: int, expected: int | None) -> None:
    with store.transaction() as conn:
        store.advance_scan(conn, 1, TREE, cursor, b"\1" * 32, NOW, expected=expected)


def current(store: Store) -> LogState:
    got = store.log_state(1, TREE)
    assert got is not None
    return got


def test_a_write_decided_on_a_state_that_moved_changes_nothing(store: Store) -> None:
    """The issue's case: 200 written and scanned to, then 150 decided from the state at 100."""
    first = state(100)
    put(store, first, None)
    put(store, state(200), first)
    scan_to(store, 200, None)
    with pytest.raises(StaleState, match="changed while this process was deciding"):
        put(store, state(150), first)
    got = current(store)
    assert (got.verified_size, got.high_water, got.scan_cursor) == (200, 200, 200)
    assert got.verified_note == "note at 200"


@pytest.mark.parametrize(
    ("expected", "stale"),
    [
        (state(100), False),  # the row holds it: written
        (state(90), True),  # another size
        (state(100, root=b"\7" * 32), True),  # the same size, another root
        (None, True),  # a row exists: inserting is a lost race too
    ],
)
def test_the_swap_compares_size_and_root(
    store: Store, expected: LogState | None, stale: bool
) -> None:
    put(store, state(100), None)
    if stale:
        with pytest.raises(StaleState):
            put(store, state(120), expected)
        assert current(store).verified_size == 100
    else:
        put(store, state(120), expected)
        assert current(store).verified_size == 120


def test_nothing_lowers_the_verified_size_or_high_water_mark_or_unfreezes(store: Store) -> None:
    put(store, replace(state(100), high_water=300), None)
    with pytest.raises(StoreError, match="only grows"):
        put(store, state(50), state(100))
    put(store, state(100, frozen=True), state(100))
    put(store, state(120), state(100))  # a stale copy: high-water 120, not frozen
    got = current(store)
    assert (got.verified_size, got.high_water, got.frozen) == (120, 300, True)


def test_a_state_write_never_touches_the_scan_position(store: Store) -> None:
    put(store, state(100), None)
    scan_to(store, 64, None)
    put(store, replace(state(200), scan_cursor=0, compact_range=b""), state(100))
    got = current(store)
    assert (got.scan_cursor, got.compact_range) == (64, b"\1" * 32)


def test_the_scan_cursor_moves_only_from_the_cursor_it_was_read_at(store: Store) -> None:
    put(store, state(100), None)
    scan_to(store, 10, None)
    scan_to(store, 40, 10)
    with pytest.raises(StaleState, match="moved from 10 to 40"):
        scan_to(store, 30, 10)  # another process got to 40 first
    with pytest.raises(StaleState):
        scan_to(store, 20, None)
    with pytest.raises(StoreError, match="back"):
        scan_to(store, 39, 40)
    with pytest.raises(StoreError, match="beyond the verified size") as beyond:
        scan_to(store, 101, 40)
    assert not isinstance(beyond.value, StaleState)
    scan_to(store, 100, 40)
    assert current(store).scan_cursor == 100
