"""The pre-filter's reading of `san_regex` (RE2 syntax): the literals it requires in a body must be
in every SAN the regex matches. Checked on a table of RE2 constructs that Python's `re` reads
differently, and as a property: generated regexes paired with subjects they match (RE2 confirms
each pair), every required literal is in the subject."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import re2
from cryptography import x509
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from monitor.core.entries import parse_entry
from monitor.core.errors import ConfigError
from monitor.core.watch.match import Matcher, MatchOutcome, rule_expense
from monitor.core.watch.matchers import SanMatcher
from monitor.core.watch.patterns import regex_to_pattern
from monitor.core.watch.prefilter import (
    _WARMUP,
    Condition,
    Required,
    RuleFilter,
    _alternation_set,
    _AnyOf,
    _fold_fragments,
    _keys,
    _LiteralScan,
    _Opaque,
    _regex_literals,
    _regex_requirement,
    _Text,
    regex_texts,
)
from monitor.core.watch.rules import compile_rule
from tests.unit import certgen as g
from tests.unit.test_watch_match import (
    BODIES,
    GITHUB,
    NOISE,
    TRUST,
    _san,
    entry_of,
    self_signed,
    uri_cert,
)

SPAM = self_signed(
    [x509.UniformResourceIdentifier("https://github.com/example/x")],
    g.fulcio_extensions(issuer=GITHUB),
)
GOOD = uri_cert("https://github.com/example/project/.github/workflows/r.yml@refs/tags/v1")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _required(regex: str) -> list[tuple[str, bool]]:
    """(fragment, fold) pairs the pre-filter would search for."""
    literals, fold = _regex_literals(regex)
    if fold:
        return [(frag, True) for lit in literals for frag in _fold_fragments(lit)]
    return [(lit, False) for lit in literals]


def _contains(subject: str, fragment: str, fold: bool) -> bool:
    return fragment in (subject.translate(_ASCII_LOWER) if fold else subject)


@pytest.mark.parametrize(
    ("regex", "literals", "fold"),
    [
        (
            r"https://github\.com/example/[^/]+/\.github/.*",
            ["https://github.com/example/", "/.github/"],
            False,
        ),
        (r"(?i)Security@Example\.com", ["Security@Example.com"], True),
        (r"(?:https://github\.com/org)/.*", ["https://github.com/org/"], False),
        (r"(https://github\.com/org)?/x", ["/x"], False),
        (r"abc|abd", [], False),
        (r"(?:abc|a.d)efgh", ["efgh"], False),  # "." in a branch: no set of texts
        (r"(?:abc|abd)efgh", [], False),  # a choice of "abcefgh" and "abdefgh" instead
        # RE2 reads these differently from Python's re: no literal may come out of them
        (r"[[:alpha:]]evil\.com", ["evil.com"], False),  # Python: "]evil.com"
        (r"[[:alpha:][:digit:]]evil", ["evil"], False),
        (r"\p{Greek}abcd", ["abcd"], False),  # Python: error; naive: "Greek}abcd"
        (r"\x{41}abcd", ["abcd"], False),
        (r"\x41abcd", ["abcd"], False),
        (r"\0123abcd", ["3abcd"], False),  # \012 is octal, "3" literal
        (r"a{,3}bcde", ["a{,3}bcde"], False),  # RE2: literal braces
        (r"a{2,3}bcde", ["bcde"], False),
        (r"abcd(?i)efgh", ["abcd", "efgh"], True),  # flags mid-pattern: search in any case
        (r"(?i:abcd)efgh", ["abcdefgh"], True),
        (r"\Qa|b(\E.*", [], True),  # not followed: nothing required
        (r"[]abc]defg", ["defg"], False),
        (r"[^]abc]defg", ["defg"], False),
        (r"[\]]defg", ["defg"], False),
        (r"abc?defg", ["ab", "defg"], False),
        (r"abcd*?efgh", ["abc", "efgh"], False),
        (r"^abcd$", ["abcd"], False),
        (r"\.\-\#\ \~", [".-# ~"], False),
    ],
)
def test_regex_literals(regex: str, literals: list[str], fold: bool) -> None:
    regex_to_pattern(regex)  # RE2 accepts it
    found, folded = _regex_literals(regex)
    assert found == literals
    if literals:
        assert folded is fold


# --- property: generated (regex, subject) pairs -------------------------------------------

LETTERS = "abkKsSiIxyz/.@-_é€ſK"
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"


def _escape(ch: str) -> str:
    return "\\" + ch if ch in PUNCT else ch


def _case_variant(draw: st.DrawFn, text: str, fold: bool) -> str:
    if not fold:
        return text
    return "".join(
        c.swapcase() if draw(st.booleans()) and len(c.swapcase()) == 1 else c for c in text
    )


Pair = tuple[str, str]


@st.composite
def atom(draw: st.DrawFn, fold: bool, depth: int) -> Pair:
    kind = draw(
        st.sampled_from(
            [
                *("lit", "lit", "lit", "punct", "class", "escape", "brace", "group", "alt"),
                *("flags", "texts", "joined", "joined"),
            ]
            if depth < 3
            else ["lit", "punct", "class", "escape", "brace", "texts"]
        )
    )
    if kind == "lit":
        ch = draw(st.sampled_from(LETTERS))
        return _escape(ch), _case_variant(draw, ch, fold)
    if kind == "punct":
        ch = draw(st.sampled_from(PUNCT))
        return "\\" + ch, ch
    if kind == "class":
        return draw(
            st.sampled_from(
                [
                    ("[[:alpha:]]", "q"),
                    ("[[:alpha:][:digit:]]", "7"),
                    ("[]a]", "]"),
                    ("[^]a]", "z"),
                    ("[\\]x]", "]"),
                    ("[a-]", "-"),
                    ("[[:digit:]-]", "-"),
                    ("[\\p{Greek}x]", "α"),
                    ("[\\x{5d}]", "]"),
                    ("[(|)]", "|"),
                    ("[[]", "["),
                    (".", "w"),
                ]
            )
        )
    if kind == "escape":
        return draw(
            st.sampled_from(
                [
                    ("\\d", "5"),
                    ("\\pL", "é"),
                    ("\\p{Greek}", "β"),
                    ("\\PN", "x"),
                    ("\\x41", "A"),
                    ("\\x{42}", "B"),
                    ("\\101", "A"),
                    ("\\0", "\x00"),
                    ("\\Q|(\\E", "|("),
                    ("\\n", "\n"),
                ]
            )
        )
    if kind == "brace":
        return "{,2}", "{,2}"  # a literal in RE2, a repetition in Python
    if kind == "texts":
        return draw(texts(fold, depth))
    if kind == "joined":
        return draw(joined(fold, depth))
    inner_fold = fold
    if kind == "flags":
        inner_fold = draw(st.booleans())
        regex, subject = draw(sequence(inner_fold, depth + 1))
        prefix = "(?i:" if inner_fold else "(?-i:"
        return f"{prefix}{regex})", subject
    if kind == "alt":
        return draw(alternation(fold, depth))
    regex, subject = draw(sequence(fold, depth + 1))
    opener = draw(st.sampled_from(["(", "(?:", "(?P<g>", "(?<g>"]))
    return f"{opener}{regex})", subject


@st.composite
def plain(draw: st.DrawFn, fold: bool) -> Pair:
    """Plain text, maybe empty: (regex, a subject it matches)."""
    text = draw(st.text(st.sampled_from(LETTERS + PUNCT), max_size=4))
    return "".join(_escape(c) for c in text), _case_variant(draw, text, fold)


@st.composite
def texts(draw: st.DrawFn, fold: bool, depth: int) -> Pair:
    """An alternation of plain texts (some empty, some holding another such alternation), which
    the pre-filter joins to the literal runs next to it (`lit` atoms around it in a sequence)."""
    branches: list[Pair] = []
    for _ in range(draw(st.integers(2, 5))):
        regex, subject = draw(plain(fold))
        if depth < 4 and not draw(st.integers(0, 4)):
            inner, inner_subject = draw(texts(fold, depth + 1))
            regex, subject = regex + inner, subject + inner_subject
        branches.append((regex, subject))
    opener = draw(st.sampled_from(["(", "(?:"]))
    return f"{opener}{'|'.join(r for r, _ in branches)})", draw(st.sampled_from(branches))[1]


@st.composite
def alternation(draw: st.DrawFn, fold: bool, depth: int) -> Pair:
    left = draw(sequence(fold, depth + 1))
    right = draw(sequence(fold, depth + 1))
    chosen = draw(st.sampled_from([left, right]))
    return f"(?:{left[0]}|{right[0]})", chosen[1]


@st.composite
def joined(draw: st.DrawFn, fold: bool, depth: int) -> Pair:
    """Literal runs around an alternation of texts, as in the bench rule (or around any other
    alternation, which must not be joined to them)."""
    before, after = draw(plain(fold)), draw(plain(fold))
    middle = draw(texts(fold, depth) if draw(st.integers(0, 3)) else alternation(fold, depth))
    return f"(?:{before[0]}{middle[0]}{after[0]})", before[1] + middle[1] + after[1]


@st.composite
def quantified(draw: st.DrawFn, fold: bool, depth: int) -> Pair:
    regex, subject = draw(atom(fold, depth))
    if regex == "{,2}" or regex.startswith("\\Q"):
        regex = f"(?:{regex})"  # a quantifier would repeat only its last character
    how = draw(st.sampled_from(["", "", "", "?", "*", "+", "{2}", "{1,3}", "{2,}", "*?"]))
    if how == "":
        return regex, subject
    count = {"?": (0, 1), "*": (0, 2), "+": (1, 2), "{2}": (2, 2), "{1,3}": (1, 3), "{2,}": (2, 3)}
    low, high = count.get(how, (0, 2))
    times = draw(st.integers(low, high))
    return f"(?:{regex}){how}" if draw(st.booleans()) else f"{regex}{how}", subject * times


@st.composite
def sequence(draw: st.DrawFn, fold: bool, depth: int = 0) -> Pair:
    part = quantified(fold, depth)
    if depth < 3:  # also unquantified, where the pre-filter joins it to the runs around it
        part = st.one_of(part, joined(fold, depth))
    parts = draw(st.lists(part, min_size=1, max_size=6))
    return "".join(r for r, _ in parts), "".join(s for _, s in parts)


@st.composite
def regex_and_subject(draw: st.DrawFn) -> Pair:
    fold = draw(st.booleans())
    regex, subject = draw(sequence(fold))
    return ("(?i)" if fold else "") + regex, subject


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regex_and_subject())
def test_required_literals_are_in_every_match(pair: Pair) -> None:
    regex, subject = pair
    try:
        pattern = regex_to_pattern(regex)
    except ValueError:
        assume(False)  # e.g. a repeated group name; RE2 refuses it
        return
    # Repeated capture groups named "g" are refused above; every other pair matches by
    # construction, which RE2 confirms (so the test checks the generator too).
    assert pattern.fullmatch(subject), (regex, subject)
    for fragment, fold in _required(regex):
        assert _contains(subject, fragment, fold), (regex, subject, fragment)


def _holds(required: Required, subject: str, fold: bool) -> bool:
    """Whether `subject` has what `required` says every match has (the fragments searched)."""
    runs = (
        [(f, True) for r in required.runs for f in _fold_fragments(r)]
        if fold
        else [(r, False) for r in required.runs]
    )
    return all(_contains(subject, f, fl) for f, fl in runs) and all(
        any(_holds(branch, subject, fold) for branch in choice) for choice in required.choices
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regex_and_subject())
def test_required_alternatives_hold_on_every_match(pair: Pair) -> None:
    """With alternations (`a|b` at any depth), one branch's literals are in every match."""
    regex, subject = pair
    try:
        pattern = regex_to_pattern(regex)
    except ValueError:
        assume(False)
        return
    assert pattern.fullmatch(subject), (regex, subject)
    required, fold = _regex_requirement(regex)
    assert _holds(required, subject, fold), (regex, subject)


@pytest.mark.parametrize(
    ("regex", "choices"),
    [
        (r"abcd|efgh", [["abcd"], ["efgh"]]),
        (
            r"https://github\.com/(acme|init.ch)/.+|[^@]+@acme\.example",
            [["https://github.com/", "/"], ["@acme.example"]],
        ),
        (r"(?:abcd|x)yz", [["abcdyz"], ["xyz"]]),
    ],
)
def test_alternatives_become_a_choice(regex: str, choices: list[list[str]]) -> None:
    required, _ = _regex_requirement(regex)
    # The branches' runs of the one alternation.
    found = [branch.runs for choice in required.choices for branch in choice]
    assert found == choices
    rule = compile_rule({"name": "r", "any_issuer": True, "san_regex": regex}, "test")
    assert rule.matchers[0].conditions()  # a SAN check at least, whatever the literals


BENCH = (
    r"https://github\.com/(acme|initech)/[^/]+/\.github/workflows/.+|[^@]+@(acme|initech)\.example"
)
"""The bench's `any_issuer` rule with an alternation (bench: "san_regex (alternatives)")."""


def _shape(required: Required) -> tuple[list[str], list[list[Any]]]:
    return required.runs, [[_shape(branch) for branch in choice] for choice in required.choices]


def one_of(*members: str) -> list[Any]:
    """The `_shape` of a choice among texts, one run each ("" requires nothing)."""
    return [([m] if m else [], []) for m in members]


_SIXTEEN = ["".join(t) for t in itertools.product("ab", "cd", "ef", "gh")]
_SEVENTEEN = "abcdefghjlmnopqrt"


@pytest.mark.parametrize(
    ("regex", "runs", "choices"),
    [
        (
            BENCH,
            [],
            [
                [
                    (
                        ["/.github/workflows/"],
                        [one_of("https://github.com/acme/", "https://github.com/initech/")],
                    ),
                    ([], [one_of("@acme.example", "@initech.example")]),
                ]
            ],
        ),
        (
            r"https://github\.com/(?:(acme)|(?:init)ech)/x",
            [],
            [one_of("https://github.com/acme/x", "https://github.com/initech/x")],
        ),
        (r"((?:abcd|efgh))ij", [], [one_of("abcdij", "efghij")]),
        (r"abcd(?:e|f(?:g|h))ij", [], [one_of("abcdeij", "abcdfgij", "abcdfhij")]),
        (r"ab(c|d)e(f|g)hi.*", [], [one_of("abcefhi", "abceghi", "abdefhi", "abdeghi")]),
        (r"abcd(e|)fgh", [], [one_of("abcdefgh", "abcdfgh")]),
        (r"(ab|ab)cd", ["abcd"], []),  # one text: a run
        (r"(?i)GitHub\.com/(Acme|Initech)", [], [one_of("GitHub.com/Acme", "GitHub.com/Initech")]),
        # Quantified: zero or several of the branches, so no text is joined across it.
        (r"https://github\.com/(acme|initech)+/x", ["https://github.com/", "/x"], []),
        (r"abcd(e|f)?ghij", ["abcd", "ghij"], []),
        (r"abcd(e|f){1}ghij", ["abcd", "ghij"], []),
        # Not next to the run: a class (or anything not a plain character) in between.
        (r"abcd[x](e|f)ghij", ["abcd"], [one_of("eghij", "fghij")]),
        (r"abcd(e|f)[x]ghij", ["ghij"], [one_of("abcde", "abcdf")]),
        (r"abcd(e|f)\d", [], [one_of("abcde", "abcdf")]),
        # A branch that is not plain text: run and alternation apart, as before.
        (r"abcd(e|.)ghij", ["abcd", "ghij"], [[(["e"], []), ([], [])]]),
        (r"abcd(e|f(?:g)*)ghij", ["abcd", "ghij"], [[(["e"], []), (["f"], [])]]),
        # The cap: 16 texts at most; the alternation past it starts a new set.
        (r"(a|b)(c|d)(e|f)(g|h)", [], [one_of(*_SIXTEEN)]),
        (
            r"(a|b)(c|d)(e|f)(g|h)(i|j)xyz",
            [],
            [one_of(*_SIXTEEN), one_of("ixyz", "jxyz")],
        ),
        (
            "x(" + "|".join(_SEVENTEEN) + ")yz",
            ["x", "yz"],
            [[([c], []) for c in _SEVENTEEN]],
        ),
    ],
)
def test_literal_runs_join_alternations_of_texts(
    regex: str, runs: list[str], choices: list[list[Any]]
) -> None:
    regex_to_pattern(regex)  # RE2 accepts it
    required, _ = _regex_requirement(regex)
    assert _shape(required) == (runs, choices)


def _needles(conditions: list[Condition]) -> list[Any]:
    """The texts searched for, an `_AnyOf` as a list of its branches' lists."""
    return [
        [_needles(b) for b in c.branches] if isinstance(c, _AnyOf) else c.needle.decode()
        for c in conditions
        if isinstance(c, _AnyOf | _Text)
    ]


@pytest.mark.parametrize(
    ("regex", "needles"),
    [
        (  # docs/configuration.md#what-makes-a-rule-expensive
            r"https://github\.com/(acme|initech)/.+",
            [[["https://github.com/acme/"], ["https://github.com/initech/"]]],
        ),
        # Case-insensitive: each text split where i, k, s or a non-ASCII letter is; a text is
        # found when all its pieces are.
        (
            r"(?i)https://GitHub\.com/(Acme|Initech)/x",
            [[["http", "://g", "thub.com/acme/x"], ["http", "://g", "thub.com/", "tech/x"]]],
        ),
        (r"abcd(é|e)fghij", [[["abcd", "fghij"], ["abcdefghij"]]]),
        # One text too short to search: the choice says nothing (no piece of 4 characters).
        (r"ab(c|defgh)", []),
    ],
)
def test_joined_texts_become_conditions(regex: str, needles: list[Any]) -> None:
    assert _needles(regex_texts(regex)) == needles


def test_bench_alternation_searches_the_four_texts() -> None:
    # Not "https://github.com/", in every GitHub workflow certificate: the chunk search would
    # pass most entries (issue 16).
    keys = _keys(RuleFilter(regex_texts(BENCH)).conditions)
    assert keys is not None
    assert sorted(t.needle.decode() for t in keys) == [
        "@acme.example",
        "@initech.example",
        "https://github.com/acme/",
        "https://github.com/initech/",
    ]
    rule = compile_rule({"name": "r", "any_issuer": True, "san_regex": BENCH}, "test")
    assert rule_expense(rule) is None  # `config check` calls it ordinary


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regex_and_subject(), st.sampled_from(sorted(BODIES)), st.booleans())
def test_chunk_search_finds_every_regex_match(pair: Pair, shape: str, uri: bool) -> None:
    """A certificate whose SAN a generated regex matches is among the entries the chunk search
    selects (what the scanner runs), before and after the conditions are reordered."""
    regex, subject = pair
    try:
        compiled = compile_rule({"name": "r", "any_issuer": True, "san_regex": regex}, "test")
        san = _san("uri" if uri else "othername", subject)
        cert = g.make_certificate(sans=[san])
    except (ConfigError, ValueError):  # e.g. too long; a name cryptography refuses
        assume(False)
        return
    body = BODIES[shape]([cert])
    if _joins_texts(regex):
        event("a run joined to an alternation of texts")
    if not Matcher([compiled], None).match_entry(parse_entry(body)):
        event("no match")  # a SAN the parser reads otherwise (e.g. othername "hex:...")
        return
    warmed = Matcher([compiled], None)
    for _ in range(_WARMUP):  # past the sampling phase: the short-circuit path
        warmed.might_match(b"{}")
    for matcher in (Matcher([compiled], None), warmed):
        assert matcher.might_match(body), (regex, subject)
        assert len(NOISE) in matcher.candidates([*NOISE, body, *NOISE]), (regex, subject)


def _joins_texts(regex: str) -> bool:
    """Whether the scan of `regex` has an alternation of texts next to a character."""
    try:
        pending = [_LiteralScan(regex).sequence()]
    except _Opaque:
        return False
    while pending:
        items = pending.pop()
        for i, item in enumerate(items):
            if isinstance(item, list):
                near = items[max(i - 1, 0) : i + 2]
                if _alternation_set(item) is not None and any(isinstance(n, str) for n in near):
                    return True
                pending.extend(item)
    return False


def test_ascii_case_folding_in_re2_is_what_the_pre_filter_assumes() -> None:
    # Case-insensitive literals are searched as ASCII case variants except i, k and s; sound only
    # if RE2's (?i) lets no other ASCII letter match a non-ASCII character.
    non_ascii = "".join(chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000)
    data = non_ascii.encode()
    assert re2.compile("(?i)[a-hjlmnoprt-z]").search(data) is None
    assert re2.compile("(?i)k").search(data) is not None  # the test can see a fold: KELVIN SIGN


# --- the chain is checked before any regex reads the identity -----------------------------


class _Recorder:
    """Stands in for a compiled pattern or trust check, logging each call in order."""

    def __init__(self, log: list[str], name: str, inner: Any) -> None:
        self.log, self.name, self.inner = log, name, inner

    def match(self, subject: str) -> bool:
        self.log.append(self.name)
        return bool(self.inner.match(subject))

    def is_trusted(self, cert: Any, at: Any = None) -> bool:
        self.log.append(self.name)
        return bool(self.inner.is_trusted(cert, at))


@pytest.mark.parametrize(("pem", "outcome"), [(SPAM, MatchOutcome.UNTRUSTED), (GOOD, None)])
def test_chain_is_checked_before_the_regex(pem: bytes, outcome: MatchOutcome | None) -> None:
    calls: list[str] = []
    compiled = compile_rule(
        {"name": "r", "issuer": GITHUB, "san_regex": r"https://github\.com/example/.*"}, "test"
    )
    issuer, san = compiled.matchers
    assert isinstance(san, SanMatcher)
    recorded_san = replace(san, pattern=_Recorder(calls, "regex", san.pattern))  # type: ignore[arg-type]
    recorded = replace(compiled, matchers=(issuer, recorded_san))
    matcher = Matcher([recorded], _Recorder(calls, "trust", TRUST))  # type: ignore[arg-type]
    found = matcher.match_entry(entry_of(pem))
    assert calls == ["trust", "regex"]
    # The outcome is what it always was: self-signed spam is recorded as untrusted.
    assert [m.outcome for m in found] == [outcome or MatchOutcome.IDENTITY_SEEN]


def test_the_documented_example_regex_works() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = docs[docs.index("### Regular expressions (`san_regex`)") :]
    start = section.index("```toml\n") + 8
    block = section[start : section.index("\n```", start)]
    regex = tomllib.loads(block)["san_regex"]
    r = compile_rule({"name": "r", "issuer": GITHUB, "san_regex": regex}, "test")
    san = r.matcher(SanMatcher)
    assert san is not None
    workflow = "https://github.com/example/project/.github/workflows/release.yml"
    assert san.pattern.match(f"{workflow}@refs/tags/v1.2.3")
    assert not san.pattern.match(f"{workflow}@refs/heads/main")
    assert not san.pattern.match(f"{workflow}@refs/tags/v1.2.3".replace("example/", "ex/a/"))
