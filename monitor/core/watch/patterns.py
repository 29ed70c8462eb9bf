"""Globs and `san_regex`, compiled for RE2: matched in time linear in the subject (pure).

Subjects come from anyone who can write to a log, so no pattern may be slow on any of them;
RE2 guarantees it. Anchoring is RE2's own full match, never text pasted around a regex.
"""

from __future__ import annotations

import re
from typing import Any, Final

import re2

from monitor.core import fields as f

MAX_PATTERN_LENGTH = 1000
"""Longest glob or regex accepted, in characters."""


class Pattern:
    """A compiled glob or `san_regex`, matched in time linear in the subject (RE2).

    Always anchored at both ends: `match`, `search` and `fullmatch` all ask whether the whole
    subject matches. `pattern` is the RE2 text that was compiled (for a regex, as written).
    """

    __slots__ = ("_regexp", "pattern")

    def __init__(self, pattern: str) -> None:
        """Compile `pattern` (RE2 syntax). Raises `PatternError`."""
        options = re2.Options()
        options.log_errors = False  # RE2 would print each refused pattern to stderr
        options.max_mem = _RE2_MAX_MEM
        try:
            self._regexp: Any = re2.compile(pattern, options)
        except re2.error as e:
            raise PatternError(_re2_message(e)) from e
        self.pattern = pattern

    def fullmatch(self, subject: str) -> bool:
        """Whether the whole of `subject` matches."""
        # Encoded here so that no str (even a lone surrogate) can make the engine raise.
        data = subject.encode("utf-8", "surrogatepass")
        return self._regexp.fullmatch(data) is not None

    match = fullmatch
    search = fullmatch

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


class PatternError(ValueError):
    """RE2 refused a pattern; the message says why (e.g. "missing ): (unclosed")."""


_RE2_MAX_MEM: Final = 1 << 20
"""Memory for each compiled pattern's program and matching caches (RE2's default is 8 MiB): a
thousand rules stay bounded. A pattern too large for it is refused at load."""


def _re2_message(e: Exception) -> str:
    detail = e.args[0] if e.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail) or "refused by RE2"


def glob_to_pattern(glob: str, *, ignore_case: bool) -> Pattern:
    """Compile a glob (`*` = any run of characters, all else literal) to an anchored pattern.

    Linear in the subject's length whatever the glob (RE2). Raises `PatternError` only when the
    glob is too large for RE2's memory budget.
    """
    body = ".*".join(re2.escape(part) for part in re.split(r"\*+", glob))
    return Pattern(("(?is)" if ignore_case else "(?s)") + body)


def regex_to_pattern(regex: str) -> Pattern:
    """Compile a user regex (RE2 syntax) anchored at both ends. Raises `PatternError`.

    RE2 has no backreferences, lookaround, possessive quantifiers, `\\Z` or verbose mode
    (`(?x)`): they are refused here, never silently read another way. Anchoring uses RE2's own
    full-match, not text pasted around `regex`, so no group, flag or `\\Q` in it can undo it.
    """
    return Pattern(regex)


def read_glob(value: object, where: str) -> str:
    """A glob from the configuration (a string of at most `MAX_PATTERN_LENGTH` characters)."""
    return f.as_str(value, where, what="a glob pattern", max_len=MAX_PATTERN_LENGTH)


def compile_glob(glob: str, where: str, *, ignore_case: bool) -> Pattern:
    """`glob_to_pattern`, raising ConfigError located at `where`."""
    try:
        return glob_to_pattern(glob, ignore_case=ignore_case)
    except PatternError as e:
        raise f.error(where, f"glob {f.echo(glob)} cannot be compiled: {e}") from e


def compile_regex(regex: str, where: str, rule: str) -> Pattern:
    """`regex_to_pattern`, raising ConfigError that names `rule` and hints at the RE2 way."""
    try:
        return regex_to_pattern(regex)
    except PatternError as e:
        raise f.error(where, _regex_error(rule, regex, e)) from e


_RE2_HINTS: Final = (
    ("(?x", "RE2 has no verbose mode: remove (?x), the whitespace and the # comments"),
    ("\\Z", "write \\z for the end of the text, or leave it out: san_regex is always anchored"),
    ("(?=", "RE2 has no lookahead"),
    ("(?!", "RE2 has no lookahead"),
    ("(?<=", "RE2 has no lookbehind"),
    ("(?<!", "RE2 has no lookbehind"),
    ("(?P=", "RE2 has no backreferences"),
    ("*+", "RE2 has no possessive quantifiers"),
    ("++", "RE2 has no possessive quantifiers"),
    ("?+", "RE2 has no possessive quantifiers"),
)
"""(text in RE2's message, hint) for constructs people bring from Python's or Perl's regexes."""
_BACKREFERENCE: Final = re.compile(r"invalid escape sequence: \\[1-9]")
_VERBOSE_FLAG: Final = re.compile(r"\(\?[a-zA-Z-]*x[a-zA-Z-]*[:)]")


def _regex_error(name: str, regex: str, e: PatternError) -> str:
    message = str(e)
    # RE2's message shows only the start of a construct ("(?P"): look in the regex as well.
    hint = next((h for needle, h in _RE2_HINTS if needle in message or needle in regex), None)
    if _VERBOSE_FLAG.search(regex):
        hint = _RE2_HINTS[0][1]
    if hint is None and _BACKREFERENCE.search(message):
        hint = "RE2 has no backreferences"
    return (
        f"invalid regular expression in rule {f.echo(name)}: {message}"
        + (f" ({hint})" if hint else "")
        + "; san_regex uses RE2 syntax (see docs/configuration.md)"
    )
