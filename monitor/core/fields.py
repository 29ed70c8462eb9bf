"""Typed readers over parsed values: the one place that checks a field's type and range.

Two families. The TOML readers (`as_str`, `as_int`, `opt_str_list`, ...) serve
`monitor.config.settings` and `monitor.core.watch`. `JsonReader` serves every JSON document
read from a log, a peer or a file (Rekor v1 answers, entry bodies, `inspect` input, evidence
documents), each with its own error class.


Every reader raises `ConfigError` with a message that starts with the location of the value,
e.g. `config.toml: log[2].interval: expected ..., got ...`. `where` is always the location of the
table being read ("config.toml: log[2]"); readers append ".key". Type errors name the TOML type
that was found, never the value, so a secret written under the wrong key or with the wrong type
is not echoed.
"""

from __future__ import annotations

import binascii
import difflib
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final

from monitor.core.errors import ConfigError, MonitorError

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


_TOML_TYPES: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (bool, "a boolean"),  # before int: a bool is an int
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
    ((datetime, date, time), "a date/time"),
)
_JSON_TYPES: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (type(None), "null"),
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _type_name(value: object, names: tuple[tuple[type | tuple[type, ...], str], ...]) -> str:
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    return _type_name(value, _TOML_TYPES)


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


# --- JSON ---------------------------------------------------------------------------------------


class _Missing:
    """The value of an absent key, so that messages can say "got nothing"."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What `JsonReader.get` returns for an absent key."""

_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")
_DECIMAL = re.compile(r"[0-9]{1,20}")


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages; "nothing" for `MISSING`."""
    return "nothing" if value is MISSING else _type_name(value, _JSON_TYPES)


def reject_constant(name: str) -> object:
    """`json.loads` hook: refuse NaN and Infinity, which no Go or protobuf JSON contains."""
    raise ValueError(f"non-standard JSON constant {name}")


@dataclass(frozen=True)
class JsonReader:
    """Typed reads of parsed JSON; every failure is ``error("<where>: expected ..., got ...")``.

    ``show`` quotes a string value for a message (e.g. a shortened excerpt); without it,
    messages name only the type found, never the value.
    """

    error: Callable[[str], MonitorError]
    show: Callable[[str], str] | None = None

    def fail(self, where: str, expected: str, value: object) -> MonitorError:
        """The error for `value` at `where` not being `expected`."""
        got = json_type(value)
        if isinstance(value, str) and self.show is not None:
            got += f" {self.show(value)}"
        elif isinstance(value, int) and not isinstance(value, bool) and self.show is not None:
            got += f" {value}"
        return self.error(f"{where}: expected {expected}, got {got}")

    def obj(self, value: object, where: str) -> dict[str, object]:
        """`value` as a JSON object."""
        if not isinstance(value, dict):
            raise self.fail(where, "an object", value)
        return value

    def field(self, obj: Mapping[str, object], key: str, where: str) -> object:
        """The value of a required key of `obj` (the object at `where`)."""
        if key not in obj:
            raise self.error(f"{where}: expected a field {key!r}, got none")
        return obj[key]

    def text(self, value: object, where: str) -> str:
        """`value` as a string."""
        if not isinstance(value, str):
            raise self.fail(where, "a string", value)
        return value

    def integer(
        self, value: object, where: str, *, lo: int = 0, hi: int = MAX_INT64, decimal: bool = False
    ) -> int:
        """`value` as an integer in [lo, hi]: by default what SQLite and Go's int64 hold.

        With `decimal`, a string of decimal digits is read too (protobuf JSON writes int64 so).
        Booleans and floats are not integers.
        """
        upper = "2^63 - 1" if hi == MAX_INT64 else str(hi)
        expected = f"an integer from {lo} to {upper}"
        number = value
        if decimal and isinstance(value, str) and _DECIMAL.fullmatch(value):
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int) or not lo <= number <= hi:
            raise self.fail(where, expected, value)
        return number

    def base64(self, value: object, where: str, *, non_empty: bool = False) -> bytes:
        """`value` as standard, padded base64, decoded (strictly: no stray characters)."""
        if not isinstance(value, str):
            raise self.fail(where, "a base64 string", value)
        try:
            raw = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError) as e:
            # ValueError: non-ASCII characters. Without `show`, the decoder's reason stands in
            # for the value, which is not echoed.
            if self.show is None:
                raise self.error(f"{where}: expected a base64 string, got {short(e)}") from e
            raise self.fail(where, "a base64 string", value) from e
        if non_empty and not raw:
            raise self.error(f"{where}: expected non-empty base64, got an empty string")
        return raw

    def hex_hash(self, value: object, where: str) -> bytes:
        """`value` as a SHA-256 hash in 64 hex digits."""
        if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
            raise self.fail(where, "a 32-byte hash as 64 hex digits", value)
        return bytes.fromhex(value)

    def hex_hashes(self, value: object, where: str) -> tuple[bytes, ...]:
        """`value` as an array of hashes in hex (`hex_hash`)."""
        if not isinstance(value, list):
            raise self.fail(where, "an array of hex hashes", value)
        return tuple(self.hex_hash(h, f"{where}[{i}]") for i, h in enumerate(value))


def short(e: BaseException) -> str:
    """An exception's message for another message, cut at 200 characters."""
    text = str(e)
    return text if len(text) <= 200 else text[:200] + "..."
