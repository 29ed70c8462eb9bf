"""Human durations: "500ms", "60s", "5m", "2h", "1d" and compounds such as "1h30m".

Grammar: one or more `<digits><unit>` terms, units `d`, `h`, `m`, `s`, `ms`, each at most once and
in that (descending) order, no spaces, no sign, no fractions. Durations are `datetime.timedelta`
everywhere in tlog-monitor (never bare float seconds). `format_duration` writes the canonical form,
and `parse_duration(format_duration(d)) == d` for every duration in range with millisecond
resolution.
"""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DURATION = timedelta(days=366)
"""Anything longer is a typo ("60d" for "60s"), never a sensible setting."""

_UNITS: tuple[tuple[str, int], ...] = (
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)
_TERM = re.compile(r"(\d{1,12})(ms|d|h|m|s)")
_UNIT_ORDER = {unit: i for i, (unit, _) in enumerate(_UNITS)}
_UNIT_MS = dict(_UNITS)


def parse_duration(text: str) -> timedelta:
    """Parse `text` into a timedelta; raise ValueError saying what is wrong.

    Zero ("0s") is accepted here; callers reject it where it is meaningless.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    if s.startswith("-"):
        raise ValueError("durations cannot be negative")
    pos = 0
    total_ms = 0
    last_order = -1
    while pos < len(s):
        m = _TERM.match(s, pos)
        if m is None:
            raise ValueError("not a duration")
        unit = m.group(2)
        order = _UNIT_ORDER[unit]
        if order <= last_order:
            raise ValueError("units must appear once each, largest first (d, h, m, s, ms)")
        last_order = order
        total_ms += int(m.group(1)) * _UNIT_MS[unit]
        pos = m.end()
    result = timedelta(milliseconds=total_ms)
    if result > MAX_DURATION:
        raise ValueError(f"longer than the maximum of {format_duration(MAX_DURATION)}")
    return result


def format_duration(value: timedelta) -> str:
    """The canonical text of a non-negative duration, e.g. 5400s -> "1h30m", 0 -> "0s".

    Sub-millisecond parts are truncated.
    """
    if value < timedelta(0):
        raise ValueError("durations cannot be negative")
    ms = value // timedelta(milliseconds=1)
    if ms == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
