"""The pre-filter: proves from an entry's raw body, before parsing it, that no rule can match.

A rule's pre-filter is the list of conditions its matchers give (`RuleMatcher.conditions`); each
condition holds whenever the matcher matches some signer of the body's entry, and is cheap to
test on the raw bytes. `PreFilter.might_match` answers False only when, for every rule, some
condition fails: provable from the body's bytes.

* Certificates sit in a body as base64 of the DER (Rekor v2, and v1 DER content) or as base64 of a
  PEM whose own base64 may be broken into lines anywhere (Rekor v1). Bytes that a certificate
  must contain for a rule to match (literal parts of `issuer`, `email`, globs, and `san_regex`'s
  top-level literals, read by a conservative scan of RE2 syntax, `_LiteralScan`) are searched
  as base64 in all three byte alignments, in the body and in each PEM decoded from a body string
  whose base64 shows a "-----BEGIN " header.
* Case-insensitive literals are searched as patterns: bit 0x20 of a byte (the ASCII case bit)
  lands in exactly one base64 digit, and no digit holds two, so each digit of the base64 of any
  case variant is the lowercase literal's digit or the uppercase literal's (a two-character
  class). Letters i, k and s are left out of case-insensitive literals (the literal is split
  there): Unicode has non-ASCII characters (U+0130, U+0131, U+017F, U+212A) that equal them
  case-insensitively, with other bytes.
* A body with a backslash (a JSON escape could hide a byte) passes, as does every body when a
  rule has no literal to search (e.g. `san = "*"` with `any_issuer`). Fingerprint-only rules hash
  every base64 string of the body (slower, still cheaper than parsing); digest rules search the
  hex (any case) and base64 forms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

_WHITESPACE: Final = b" \t\n\r\x0b\x0c"  # what bytes.split() drops, as certs._pem_base64 does
_UNSAFE_FOLD: Final = frozenset("iks")
"""ASCII letters that a non-ASCII character equals case-insensitively (str.lower or re's
IGNORECASE): U+0130 and U+0131 (i), U+212A (k), U+017F (s). Case-insensitive literals are
split there."""
_MIN_FRAGMENT: Final = 4
"""Shorter literals are not worth three scans of the body."""
_PEM_HEADER: Final = b"-----BEGIN "


def _b64_cores(data: bytes) -> tuple[bytes, ...]:
    """The base64 digits that `data` alone determines, at each of the three byte alignments.

    When `data` occurs in a byte string, one of these occurs in its base64 (digits that mix in
    neighbouring bytes are left off each end).
    """
    cores: list[bytes] = []
    for align in range(3):
        text = base64.b64encode(bytes(align) + data)
        # Digit i covers bits [6i, 6i + 6); data covers [8 * align, 8 * (align + len)).
        cores.append(text[(8 * align + 5) // 6 : (8 * (align + len(data))) // 6])
    return tuple(cores)


def _runs(text: str, keep: Any) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    for ch in text:
        if keep(ch):
            current.append(ch)
        else:
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return [r for r in runs if len(r) >= _MIN_FRAGMENT]


def _fold_fragments(literal: str) -> list[str]:
    """Lowercase ASCII pieces of a case-insensitive literal that any match must contain."""
    return _runs(literal.lower(), lambda ch: ch.isascii() and ch not in _UNSAFE_FOLD)


def _exact_fragments(literal: str) -> list[str]:
    """ASCII pieces of a case-sensitive literal."""
    return _runs(literal, str.isascii)


def _glob_literals(glob: str) -> list[str]:
    return [part for part in re.split(r"\*+", glob) if part]


def _regex_literals(regex: str) -> tuple[list[str], bool]:
    """(literal runs every match of `regex` must contain, whether they may match in any case).

    `regex` has compiled with RE2. A conservative scan of its syntax (`_LiteralScan`), not any
    engine's internals: anything the scan does not follow yields no literals, which only costs
    speed.
    """
    scan = _LiteralScan(regex)
    try:
        items = scan.sequence()
        if scan.pos != len(regex):
            raise _Opaque  # a stray ")": RE2 refuses it, so never here
    except _Opaque:
        return [], True
    runs: list[str] = []
    current: list[str] = []
    for item in items or ():
        if item is None:
            runs.append("".join(current))
            current = []
        else:
            current.append(item)
    runs.append("".join(current))
    return [r for r in runs if r], scan.fold


class _Opaque(Exception):
    """The literal scan met syntax it does not follow."""


_REPEAT: Final = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
"""RE2's counted repetition; any other "{" is a literal."""
_GROUP_OPEN: Final = re.compile(r"\?(?:P?<[A-Za-z0-9_]+>|:|([imsU-]+)([:)]))")
_SINGLE_ESCAPES: Final = frozenset("dDsSwWbBAzafnrtvC")


class _LiteralScan:
    """Reads RE2 syntax for the characters every match must contain, in order.

    `sequence` returns the items of a concatenation: a character every match contains at that
    point, or None for anything else (a class, `.`, an anchor, a quantified atom, a group with
    an alternation). An unquantified group without alternation contributes its own items, as
    in `(?:https://github\\.com/org)/.*`. `fold` becomes True when an `i` flag appears anywhere
    (searching a literal in any case is always sound, only weaker).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.fold = False

    def sequence(self) -> list[str | None] | None:
        """Items up to an unmatched ")" or the end; None when the sequence has a "|"."""
        items: list[str | None] = []
        alternation = False
        text = self.text
        while self.pos < len(text) and text[self.pos] != ")":
            if text[self.pos] == "|":
                alternation = True
                self.pos += 1
                continue
            atom = self.atom()
            items.extend([None] if self.quantifier() else atom)
        return None if alternation else items

    def atom(self) -> list[str | None]:
        text, ch = self.text, self.text[self.pos]
        if ch == "(":
            return self.group()
        if ch == "[":
            self.char_class()
            return [None]
        if ch == "\\":
            return [self.escape()]
        if ch in "*+?" or (ch == "{" and _REPEAT.match(text, self.pos)):
            raise _Opaque  # a repetition of nothing: RE2 refuses it
        self.pos += 1
        return [None] if ch in ".^$" else [ch]

    def quantifier(self) -> bool:
        """Consume the repetition operators after an atom; whether there were any."""
        text, found = self.text, False
        while self.pos < len(text):
            repeat = _REPEAT.match(text, self.pos)
            if repeat is not None:
                self.pos = repeat.end()
            elif text[self.pos] in "*+?":
                self.pos += 1
            else:
                break
            found = True
        return found

    def group(self) -> list[str | None]:
        self.pos += 1  # "("
        if self.text.startswith("?", self.pos):
            head = _GROUP_OPEN.match(self.text, self.pos)
            if head is None:
                raise _Opaque
            self.pos = head.end()
            flags, close = head.group(1), head.group(2)
            if flags is not None and "i" in flags:
                self.fold = True
            if close == ")":
                return [None]  # flags for the rest of the enclosing group: zero-width
        inner = self.sequence()
        if not self.text.startswith(")", self.pos):
            raise _Opaque
        self.pos += 1
        return [None] if inner is None else inner

    def char_class(self) -> None:
        """Skip a bracketed class as RE2 reads it: "]" first is a member, "[:name:]" nests."""
        text = self.text
        self.pos += 1
        if text.startswith("^", self.pos):
            self.pos += 1
        first = True
        while self.pos < len(text) and (text[self.pos] != "]" or first):
            first = False
            if text.startswith("[:", self.pos):
                end = text.find(":]", self.pos + 2)
                if end >= 0:
                    self.pos = end + 2
                    continue
            if text[self.pos] == "\\":
                self.escape()
            else:
                self.pos += 1
        if self.pos >= len(text):
            raise _Opaque
        self.pos += 1

    def escape(self) -> str | None:
        """Consume one escape; the character it stands for when it is literal punctuation."""
        text = self.text
        if self.pos + 1 >= len(text):
            raise _Opaque
        ch = text[self.pos + 1]
        self.pos += 2
        if ch.isascii() and not ch.isalnum():
            return ch  # RE2: a backslash before any ASCII non-word character is that character
        if ch in "pPx" and text.startswith("{", self.pos):
            end = text.find("}", self.pos)
            if end < 0:
                raise _Opaque
            self.pos = end + 1
        elif ch in "pP":
            self.pos += 1
        elif ch == "x":
            self.pos += 2
        elif ch in "01234567":
            last = self.pos + 2  # RE2 reads at most three octal digits
            while self.pos < min(last, len(text)) and text[self.pos] in "01234567":
                self.pos += 1
        elif ch not in _SINGLE_ESCAPES:
            raise _Opaque  # e.g. \\Q...\\E
        return None


class Views:
    """Lazily computed forms of one raw body, shared by every condition."""

    __slots__ = ("_hashes", "_lower", "_pems", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._lower: bytes | None = None
        self._pems: list[bytes] | None = None
        self._hashes: frozenset[str] | None = None

    def lower(self) -> bytes:
        if self._lower is None:
            self._lower = self.body.lower()
        return self._lower

    def pems(self) -> list[bytes]:
        """Each body string whose base64 shows a PEM header, decoded, whitespace removed: the
        PEM's own base64 (the certificate's DER) is then contiguous."""
        if self._pems is None:
            body = self.body
            pems: list[bytes] = []
            # "LS0t" is in the base64 of "-----" at every alignment: one scan rules PEMs out.
            if _PEM_HINT_SEARCH(body):
                spans: set[tuple[int, int]] = set()
                for needle in _PEM_NEEDLES:
                    pos = body.find(needle)
                    while pos >= 0:
                        start = body.rfind(b'"', 0, pos) + 1
                        end = body.find(b'"', pos)
                        end = len(body) if end < 0 else end
                        spans.add((start, end))
                        pos = body.find(needle, end)
                for start, end in sorted(spans):
                    try:
                        decoded = binascii.a2b_base64(body[start:end])
                    except (binascii.Error, ValueError):
                        continue  # not base64: parse_entry refuses it too
                    pems.append(decoded.translate(None, _WHITESPACE))
            self._pems = pems
        return self._pems

    def hashes(self) -> frozenset[str]:
        """SHA-256 (hex) of every base64 string of the body decoded, of the first PEM block in
        each, and of the SubjectPublicKeyInfo of each that is a certificate: every certificate
        and key fingerprint the entry can have."""
        if self._hashes is None:
            from monitor.core.certs import tbs_parts  # noqa: PLC0415 - keep `watch` import light

            found: set[str] = set()
            # Without backslashes (checked first), odd pieces are exactly the JSON strings.
            for piece in self.body.split(b'"')[1::2]:
                try:
                    raw = binascii.a2b_base64(piece)
                except (binascii.Error, ValueError):
                    continue
                candidates = [raw]
                block = _first_pem_block(raw)
                if block is not None:
                    candidates.append(block)
                for der in candidates:
                    found.add(hashlib.sha256(der).hexdigest())
                    try:
                        spki = tbs_parts(der)[2]
                    except (ValueError, IndexError):
                        continue
                    found.add(hashlib.sha256(spki).hexdigest())
            self._hashes = frozenset(found)
        return self._hashes


_PEM_NEEDLES: Final = _b64_cores(_PEM_HEADER)
_PEM_HINT: Final = b"LS0t"
"""In the base64 of "-----" at every alignment (a test checks it against `_PEM_NEEDLES`)."""
_PEM_HINT_SEARCH: Final = re.compile(_PEM_HINT).search


def _first_pem_block(data: bytes) -> bytes | None:
    """The DER of the first PEM block, located exactly as `monitor.core.certs` does; None if
    none."""
    begin = data.find(_PEM_HEADER)
    if begin < 0:
        return None
    label_end = data.find(b"-----", begin + 11)
    if label_end < 0:
        return None
    end = data.find(b"-----END " + data[begin + 11 : label_end] + b"-----", label_end + 5)
    if end < 0:
        return None
    try:
        return binascii.a2b_base64(data[label_end + 5 : end])
    except (binascii.Error, ValueError):
        return None


class Condition(ABC):
    """A test on a raw body that holds whenever the rule it belongs to matches the entry.

    `cost` is a rough relative price of `test`; `tests` / `passes` are sampled counts that order
    a rule's conditions (cheap and rejecting first). Their races between threads only cost speed.
    """

    __slots__ = ("cost", "passes", "tests", "weight")

    def __init__(self, cost: int, weight: int) -> None:
        self.cost = cost
        self.weight = weight
        self.tests = 0
        self.passes = 0

    @abstractmethod
    def test(self, views: Views) -> bool:
        """True unless the body provably lacks what the condition needs."""

    def expected_cost(self) -> float:
        """Cost per rejection, the classic order for a conjunction of tests."""
        pass_rate = (self.passes + 1) / (self.tests + 2)
        return self.cost / max(1.0 - pass_rate, 0.001)


class _Text(Condition):
    """Some certificate must contain `literal` (as bytes): search its base64 forms.

    `fold`: the literal (lowercase ASCII without i, k, s) may appear in any ASCII case. Bit 0x20
    of a byte (the case bit) lands in exactly one base64 digit and each digit holds at most one
    such bit, so the base64 of any case variant differs from the lowercase literal's only in
    digits that take one of two values (the lowercase and the uppercase literal's): each
    alignment becomes a regex of literal digits and two-digit classes, started at its longest
    run of literal digits so that the regex engine's prefix scan does the work.
    """

    __slots__ = ("fold", "searches")

    def __init__(self, literal: str, *, fold: bool, weight: int) -> None:
        super().__init__(5 if fold else 3, weight)
        self.fold = fold
        data = literal.encode("ascii")
        searches: list[tuple[bytes, _Search | None]] = []
        if fold:
            pairs = zip(_b64_cores(data.lower()), _b64_cores(data.upper()), strict=True)
            searches.extend((b"", _class_regex(lo, up)) for lo, up in pairs)
        else:
            # `in` skips fast through base64 for long needles; the regex engine for short ones.
            for core in _b64_cores(data):
                searches.append((core, None if len(core) >= 8 else _literal_regex(core)))
        self.searches = tuple(searches)

    def test(self, views: Views) -> bool:
        searches = self.searches
        hay = views.body
        for needle, search in searches:
            if (needle in hay) if search is None else (search(hay) is not None):
                return True
        for hay in views.pems():
            for needle, search in searches:
                if (needle in hay) if search is None else (search(hay) is not None):
                    return True
        return False


_Search = Callable[[bytes], "re.Match[bytes] | None"]


def _literal_regex(needle: bytes) -> _Search:
    return re.compile(re.escape(needle)).search


def _class_regex(lower: bytes, upper: bytes) -> _Search:
    """A search for the digits `lower` where `upper` may replace any of them (see `_Text`).

    Starts at a run of digits the two agree on (the regex engine scans for a literal prefix
    fast): the longest run (up to 3) that leaves at least `_MIN_PATTERN` digits after its start;
    the digits before it are dropped, which only weakens the test.
    """
    limit = len(lower) - min(len(lower), _MIN_PATTERN)
    best_len = best_start = run = 0
    for i, (lo, up) in enumerate(zip(lower, upper, strict=True)):
        run = run + 1 if lo == up else 0
        start = i - run + 1
        if run and start <= limit and min(run, 3) > best_len:
            best_len, best_start = min(run, 3), start
    parts = [
        re.escape(bytes([lo])) if lo == up else b"[" + bytes([lo, up]) + b"]"
        for lo, up in zip(lower[best_start:], upper[best_start:], strict=True)
    ]
    return re.compile(b"".join(parts)).search


_MIN_PATTERN: Final = 16


class Digest(Condition):
    """The entry's digest is `hexdigest`: hex in any case (v1) or base64 of the bytes (v2)."""

    __slots__ = ("b64", "hex")

    def __init__(self, hexdigest: str) -> None:
        super().__init__(2, 10_000)
        raw = bytes.fromhex(hexdigest)
        self.hex = hexdigest.encode("ascii")
        # Only the digits fully determined by the bytes: a lenient last digit must not matter.
        self.b64 = base64.b64encode(raw)[: len(raw) * 8 // 6]

    def test(self, views: Views) -> bool:
        return self.b64 in views.body or self.hex in views.lower()


class Fingerprint(Condition):
    """The certificate's or the key's SHA-256 must be this one."""

    __slots__ = ("fingerprint",)

    def __init__(self, fingerprint: str) -> None:
        super().__init__(50, -1)  # hashing the body's strings is the dearest test: last
        self.fingerprint = fingerprint

    def test(self, views: Views) -> bool:
        return self.fingerprint in views.hashes()


class RuleFilter:
    """A rule's conditions: the body may match the rule only if every one holds."""

    __slots__ = ("conditions",)

    def __init__(self, conditions: Sequence[Condition]) -> None:
        # Longest literals first until samples say better; fingerprints last.
        self.conditions = sorted(conditions, key=lambda c: -c.weight)

    def test(self, views: Views) -> bool:
        return all(condition.test(views) for condition in self.conditions)

    def sample(self, views: Views) -> bool:
        """`test`, evaluating every condition to count how often each holds, then reorder."""
        result = True
        for condition in self.conditions:
            passed = condition.test(views)
            condition.tests += 1
            condition.passes += passed
            result = result and passed
        self.conditions.sort(key=Condition.expected_cost)
        return result


def fold_texts(literals: Iterable[str]) -> list[Condition]:
    """Conditions for literals a certificate must contain in some letter case."""
    return [
        _Text(frag, fold=True, weight=len(frag))
        for literal in literals
        for frag in _fold_fragments(literal)
    ]


def exact_texts(literal: str, *, weight: int | None = None) -> list[Condition]:
    """Conditions for a literal a certificate must contain as written (weight: the fragment's
    length unless given; a lower weight is tested later)."""
    return [
        _Text(frag, fold=False, weight=len(frag) if weight is None else weight)
        for frag in _exact_fragments(literal)
    ]


def glob_texts(glob: str) -> list[Condition]:
    """Conditions for a case-insensitive glob: its literal parts."""
    return fold_texts(_glob_literals(glob))


def regex_texts(regex: str) -> list[Condition]:
    """Conditions for a `san_regex` (compiled by RE2): the literal runs every match contains."""
    literals, ignore_case = _regex_literals(regex)
    if ignore_case:
        return fold_texts(literals)
    return [c for literal in literals for c in exact_texts(literal)]


_WARMUP: Final = 64
_SAMPLE_EVERY: Final = 1024
"""`might_match` evaluates every condition on the first bodies and then one body in this many,
to order each rule's conditions by what they cost and how often they reject."""


class PreFilter:
    """The pre-filters of a set of rules, one `RuleFilter` each (module docstring)."""

    def __init__(self, filters: Sequence[RuleFilter]) -> None:
        self._filters = tuple(filters)
        self._always = any(not f.conditions for f in self._filters)
        self._bodies = 0

    def might_match(self, body: bytes) -> bool:
        """False only when no rule can match the entry `body` holds (some condition of each
        rule fails); costs a few microseconds on a typical body."""
        if not self._filters:
            return False
        if self._always or b"\\" in body:
            return True
        views = Views(body)
        self._bodies += 1
        if self._bodies <= _WARMUP or not self._bodies % _SAMPLE_EVERY:
            return any([f.sample(views) for f in self._filters])  # every filter samples
        return any(rule_filter.test(views) for rule_filter in self._filters)
