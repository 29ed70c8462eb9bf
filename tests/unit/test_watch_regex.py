"""The pre-filter's reading of `san_regex` (RE2 syntax): the literals it requires in a body must be
in every SAN the regex matches. Checked on a table of RE2 constructs that Python's `re` reads
differently, and as a property: generated regexes paired with subjects they match (RE2 confirms
each pair), every required literal is in the subject."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import re2
from cryptography import x509
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.core.watch import (
    Matcher,
    MatchOutcome,
    SanMatcher,
    compile_rule,
    regex_to_pattern,
)
from monitor.core.watch.prefilter import (
    Required,
    _fold_fragments,
    _regex_literals,
    _regex_requirement,
)
from tests.unit import certgen as g
from tests.unit.test_watch_match import GITHUB, TRUST, entry_of, self_signed, uri_cert

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
        (r"(?:abc|abd)efgh", ["efgh"], False),
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
            ["lit", "lit", "lit", "punct", "class", "escape", "brace", "group", "alt", "flags"]
            if depth < 3
            else ["lit", "punct", "class", "escape", "brace"]
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
    inner_fold = fold
    if kind == "flags":
        inner_fold = draw(st.booleans())
        regex, subject = draw(sequence(inner_fold, depth + 1))
        prefix = "(?i:" if inner_fold else "(?-i:"
        return f"{prefix}{regex})", subject
    if kind == "alt":
        left = draw(sequence(fold, depth + 1))
        right = draw(sequence(fold, depth + 1))
        chosen = draw(st.sampled_from([left, right]))
        return f"(?:{left[0]}|{right[0]})", chosen[1]
    regex, subject = draw(sequence(fold, depth + 1))
    opener = draw(st.sampled_from(["(", "(?:", "(?P<g>", "(?<g>"]))
    return f"{opener}{regex})", subject


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
    parts = draw(st.lists(quantified(fold, depth), min_size=1, max_size=6))
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
            r"https://github\.com/(acme|initech)/.+|[^@]+@acme\.example",
            [["https://github.com/", "/"], ["@acme.example"]],
        ),
        (r"(?:abcd|x)yz", [["abcd"], ["x"]]),
    ],
)
def test_alternatives_become_a_choice(regex: str, choices: list[list[str]]) -> None:
    required, _ = _regex_requirement(regex)
    # The branches' runs of the one alternation.
    found = [branch.runs for choice in required.choices for branch in choice]
    assert found == choices
    rule = compile_rule({"name": "r", "any_issuer": True, "san_regex": regex}, "test")
    assert rule.matchers[0].conditions()  # a SAN check at least, whatever the literals


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
