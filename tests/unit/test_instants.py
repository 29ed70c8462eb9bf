"""`monitor.core.instants`: milliseconds since the epoch <-> aware datetimes, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.fields import MAX_UNIX_TIME
from monitor.core.instants import EPOCH, from_ms, to_ms

LAST_MS = MAX_UNIX_TIME * 1000 + 999  # 9999-12-31T23:59:59.999Z


@given(st.integers(-62_135_596_800_000, LAST_MS))
def test_every_millisecond_converts_both_ways(ms: int) -> None:
    at = from_ms(ms)
    assert at.tzinfo is UTC and to_ms(at) == ms
    assert to_ms(at + timedelta(microseconds=999)) == ms  # rounded down


def test_float_seconds_were_a_millisecond_off() -> None:
    """Why not `int(at.timestamp() * 1000)`: float seconds lose the last millisecond of this
    instant (a log's timestamps can be any up to the year 9999)."""
    ms = 139_751_028_864_291  # 6398-07-14T18:14:24.291Z
    at = EPOCH + timedelta(milliseconds=ms)
    assert int(at.timestamp() * 1000) == ms - 1
    assert to_ms(at) == ms and from_ms(ms) == at


@pytest.mark.parametrize("ms", [LAST_MS + 1, -62_135_596_800_001, 1 << 63])
def test_an_instant_no_datetime_holds_is_an_overflow(ms: int) -> None:
    with pytest.raises(OverflowError):
        from_ms(ms)


def test_a_naive_datetime_names_no_instant() -> None:
    with pytest.raises(ValueError, match="expected a datetime with a time zone"):
        to_ms(datetime(2026, 1, 1))


def test_the_epoch() -> None:
    assert from_ms(0) == datetime(1970, 1, 1, tzinfo=UTC) and to_ms(EPOCH) == 0


def test_an_alert_names_an_instant_no_datetime_holds() -> None:
    from monitor.core.alerts import _iso_ms

    assert _iso_ms(0) == "1970-01-01T00:00:00+00:00"
    assert _iso_ms(1 << 63) == f"{1 << 63} ms after the epoch"
