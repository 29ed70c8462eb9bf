"""Typed readers over parsed TOML tables, shared by `monitor.config.settings` and
`monitor.core.watch`.

Every reader raises `ConfigError` with a message that starts with the location of the value,
e.g. `config.toml: log[2].interval: expected ..., got ...`. `where` is always the location of the
table being read ("config.toml: log[2]"); readers append ".key". Type errors name the TOML type
that was found, never the value, so a secret written under the wrong key or with the wrong type
is not echoed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time
from typing import Final

from monitor.core.errors import ConfigError

MAX_INT64: Final = (1 << 63) - 1
"""The largest integer SQLite stores (and Rekor's and Go's int64 sizes, indexes and tree IDs
reach): every size, index and tree ID read from a log, peer or file is checked against it when
parsed, so an out-of-range value is a parse error of that input, not an OverflowError later."""

MAX_UNIX_TIME: Final = 253_402_300_799
"""23:59:59 UTC on 31 December 9999, the last second `datetime` represents: the bound of every
Unix time (integratedTime) read from a log, so converting one can never raise."""

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""Names of logs, watch rules and notify channels: used in CLI filters, reports and URLs."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MAX_ECHO = 120


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def echo(value: str) -> str:
    """`value` quoted for a message (JSON string syntax), shortened if long."""
    if len(value) > _MAX_ECHO:
        value = value[: _MAX_ECHO - 3] + "..."
    return json.dumps(value, ensure_ascii=False)


def key_path(where: str, key: str | int) -> str:
    """`where` extended by a table key (".key") or an array index ("[3]")."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if _BARE_KEY.fullmatch(key) else f"{where}.{echo(key)}"


def error(where: str, message: str) -> ConfigError:
    """A ConfigError for the value at `where`."""
    return ConfigError(f"{where}: {message}")


def suggest(word: str, choices: Collection[str]) -> str:
    """'; did you mean "x"?' when `word` is close to one of `choices`, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def check_keys(raw: Mapping[str, object], where: str, allowed: Collection[str]) -> None:
    """Reject keys of `raw` not in `allowed`: typos must not be silently ignored."""
    for key in raw:
        if key not in allowed:
            hint = suggest(key, allowed) or "; expected one of: " + ", ".join(sorted(allowed))
            raise error(key_path(where, key), f"unknown key{hint}")


def require(raw: Mapping[str, object], key: str, where: str) -> object:
    """The value of a required key."""
    if key not in raw:
        raise error(key_path(where, key), "missing (required)")
    return raw[key]


def as_str(
    value: object,
    where: str,
    *,
    what: str = "a string",
    max_len: int = 1000,
    allow_empty: bool = False,
    multiline: bool = False,
) -> str:
    """`value` as a string of at most `max_len` characters without control characters.

    With `multiline`, line feeds and carriage returns are allowed (inline PEM).
    """
    if not isinstance(value, str):
        raise error(where, f"expected {what}, got {toml_type(value)}")
    if not value and not allow_empty:
        raise error(where, f"expected {what}, got an empty string")
    if len(value) > max_len:
        raise error(where, f"too long: {len(value)} characters, at most {max_len} allowed")
    allowed = "\n\r" if multiline else ""
    if any((ord(c) < 0x20 or ord(c) == 0x7F) and c not in allowed for c in value):
        raise error(where, "control characters (newlines, tabs, ...) are not allowed")
    return value


def opt_str(
    raw: Mapping[str, object], key: str, where: str, *, what: str = "a string", max_len: int = 1000
) -> str | None:
    """An optional non-empty string; None when the key is absent."""
    if key not in raw:
        return None
    return as_str(raw[key], key_path(where, key), what=what, max_len=max_len)


def opt_bool(raw: Mapping[str, object], key: str, where: str, default: bool) -> bool:
    """An optional boolean."""
    if key not in raw:
        return default
    value = raw[key]
    if not isinstance(value, bool):
        raise error(key_path(where, key), f"expected true or false, got {toml_type(value)}")
    return value


def as_int(value: object, where: str, *, lo: int, hi: int) -> int:
    """`value` as an integer in [lo, hi] (booleans are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(where, f"expected an integer from {lo} to {hi}, got {toml_type(value)}")
    if not lo <= value <= hi:
        raise error(where, f"expected an integer from {lo} to {hi}, got {value}")
    return value


def opt_str_list(
    raw: Mapping[str, object],
    key: str,
    where: str,
    *,
    what: str = "a string",
    max_items: int = 100,
    max_len: int = 1000,
    unique: bool = True,
    secret: bool = False,
) -> tuple[str, ...]:
    """An optional array of strings (empty when absent), each checked by `as_str`.

    With `secret`, messages never contain the items' values.
    """
    if key not in raw:
        return ()
    at = key_path(where, key)
    value = raw[key]
    if not isinstance(value, list):
        raise error(at, f"expected an array of strings, got {toml_type(value)}")
    if len(value) > max_items:
        raise error(at, f"too many items: {len(value)}, at most {max_items} allowed")
    items: list[str] = []
    for i, item in enumerate(value):
        text = as_str(item, key_path(at, i), what=what, max_len=max_len)
        if unique and text in items:
            shown = "" if secret else f" {echo(text)}"
            raise error(key_path(at, i), f"duplicate item{shown} (also at [{items.index(text)}])")
        items.append(text)
    return tuple(items)


def as_table(value: object, where: str) -> Mapping[str, object]:
    """`value` as a TOML table."""
    if not isinstance(value, dict):
        raise error(where, f"expected a table, got {toml_type(value)}")
    return value


def as_name(value: object, where: str) -> str:
    """A name: 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit."""
    text = as_str(value, where, what="a name", max_len=63)
    if not NAME_PATTERN.fullmatch(text):
        raise error(
            where,
            "expected a name of lowercase letters, digits, '_' and '-' starting with a letter or "
            f'digit (e.g. "rekor", "release-signing"), got {echo(text)}',
        )
    return text
