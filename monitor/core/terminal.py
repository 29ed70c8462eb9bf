"""Text from logs, peers and certificates made safe to print on a terminal or in a log line.

A certificate SAN, an entry field or a server's error text can carry ESC sequences (which
rewrite the screen, set the window title or, on some terminals, answer back), BEL, carriage
returns (which overwrite what came before on the line), newlines (which forge another log line or
report row) and Unicode bidirectional overrides (which reorder what is shown). Everything we print
that did not come from us goes through `printable` (text: tables, CSV, `check`, text logs) or
`json_printable` (JSON that is printed: log lines in the journal).

Characters are escaped, not dropped, so the output still shows that they were there and which:
ESC becomes the four characters `\\x1b`, U+202E becomes `\\u202e`.
"""

from __future__ import annotations

import re

__all__ = ["json_printable", "printable"]

# C0 controls (tab, newline and carriage return included), DEL, C1 controls; the line and
# paragraph separators; the bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What json.dumps leaves as it is among those (it escapes C0 itself).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control, separator and bidi-override character escaped (`\\x1b`,
    `\\u202e`): one line, shown as it is stored, unable to act on a terminal."""
    return _UNSAFE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_printable(document: str) -> str:
    """A JSON text (from `json.dumps(..., ensure_ascii=False)`) with the characters JSON does
    not escape by itself but terminals act on (DEL, C1 controls, bidi overrides) written as
    `\\uXXXX` escapes: the same JSON value, safe to print."""
    return _UNSAFE_IN_JSON.sub(_json_escape, document)
