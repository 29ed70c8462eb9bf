"""`unlogged_after` and `expect_rekor` on a `[[watch]]` rule: defaults, bounds, clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.core.errors import ConfigError
from monitor.core.watch.rules import compile_rule

BASE = {"name": "r", "issuer": "https://accounts.google.com", "email": "a@example.com"}


def test_defaults() -> None:
    rule = compile_rule(BASE, "config.toml: watch[0]")
    assert rule.unlogged_after == timedelta(minutes=30) and rule.expect_rekor is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1m", timedelta(minutes=1)), ("2h", timedelta(hours=2)), ("30d", timedelta(days=30))],
)
def test_unlogged_after_within_bounds(text: str, expected: timedelta) -> None:
    rule = compile_rule({**BASE, "unlogged_after": text, "expect_rekor": False}, "w")
    assert rule.unlogged_after == expected and rule.expect_rekor is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("59s", "between 1m and 30d"),
        ("31d", "between 1m and 30d"),
        ("soon", 'expected a duration like "30m"'),
        (30, "duration string"),
    ],
)
def test_unlogged_after_rejected(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        compile_rule({**BASE, "unlogged_after": value}, "config.toml: watch[0]")
    assert "watch[0].unlogged_after" in str(e.value)


def test_expect_rekor_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="expect_rekor"):
        compile_rule({**BASE, "expect_rekor": "no"}, "config.toml: watch[0]")
