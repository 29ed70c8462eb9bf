"""Watch rule compilation: matcher validation, glob and regex anchoring, normalisation."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.errors import ConfigError
from monitor.core.watch.matchers import (
    FULCIO_EXTENSIONS,
    ArtifactDigestMatcher,
    EmailMatcher,
    ExtensionsMatcher,
    IssuerMatcher,
    SanMatcher,
)
from monitor.core.watch.patterns import (
    MAX_PATTERN_LENGTH,
    PatternError,
    glob_to_pattern,
    regex_to_pattern,
)
from monitor.core.watch.rules import WatchRule, compile_rule

WHERE = "config.toml: watch[0]"
GITHUB = "https://token.actions.githubusercontent.com"
WORKFLOWS = "https://github.com/example/project/.github/workflows/*"
RELEASE = "https://github.com/example/project/.github/workflows/release.yml@refs/tags/*"


def rule(**raw: object) -> WatchRule:
    return compile_rule({"name": "r", **raw}, WHERE)


def _san(r: WatchRule) -> SanMatcher:
    san = r.matcher(SanMatcher)
    assert san is not None
    return san


def rule_error(**raw: object) -> str:
    with pytest.raises(ConfigError) as e:
        compile_rule({"name": "r", **raw}, WHERE)
    return str(e.value)


def test_design_rule_compiles() -> None:
    r = rule(issuer=GITHUB, san=WORKFLOWS, allowed_signers=[RELEASE], notify=["security"])
    assert r.name == "r"
    assert r.matcher(IssuerMatcher) == IssuerMatcher(GITHUB)
    assert _san(r).glob == WORKFLOWS and _san(r).regex is None
    assert r.matcher(SanMatcher) is not None
    assert _san(r).pattern.match(
        "https://github.com/example/project/.github/workflows/release.yml@refs/tags/v1.0"
    )
    assert r.allowed_signers == (RELEASE,)
    assert len(r.allowed_signer_patterns) == 1
    assert r.notify == ("security",)
    assert r.logs == () and r.applies_to("anything")
    assert r.any_issuer is False


# --- globs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "subject", "matches"),
    [
        (
            WORKFLOWS,
            "https://github.com/example/project/.github/workflows/ci.yml@refs/heads/main",
            True,
        ),
        (WORKFLOWS, "https://github.com/example/project/.github/workflows/", True),
        (WORKFLOWS, "https://github.com/example/project/.github/workflows/a/b/c", True),
        # never a prefix or suffix match
        (WORKFLOWS, "xhttps://github.com/example/project/.github/workflows/ci.yml", False),
        (WORKFLOWS, "https://github.com/example/project/.github/workflow", False),
        (
            "https://github.com/example/project/*",
            "https://github.com/example/project-evil/x",
            False,
        ),
        ("refs/tags/*", "refs/tags/v1.2.3", True),
        ("refs/tags/*", "x/refs/tags/v1", False),
        ("exact", "exact", True),
        ("exact", "exactly", False),
        ("exact", "inexact", False),
        # regex metacharacters are literal
        ("a.b", "axb", False),
        ("a?b", "axb", False),
        ("a?b", "a?b", True),
        ("a+[b]", "a+[b]", True),
        ("a+[b]", "aa[b]", False),
        ("(x)|y", "y", False),
        ("*", "", True),
        ("*", "anything/at/all", True),
        ("a**b", "a/x/b", True),
        ("*mid*", "has mid inside", True),
        ("*mid*", "has mi d inside", False),
        ("ab*ab", "ab", False),
        ("ab*ab", "abab", True),
    ],
)
def test_glob_anchoring(glob: str, subject: str, matches: bool) -> None:
    pattern = glob_to_pattern(glob, ignore_case=False)
    assert bool(pattern.match(subject)) is matches
    assert bool(pattern.search(subject)) is matches
    assert bool(pattern.fullmatch(subject)) is matches


def test_san_glob_ignores_case_allowed_signers_do_not() -> None:
    r = rule(issuer=GITHUB, san="https://github.com/Example/*", allowed_signers=[RELEASE])
    assert r.matcher(SanMatcher) is not None
    assert _san(r).pattern.match("https://GITHUB.com/example/project")
    upper = RELEASE.replace("example", "EXAMPLE").replace("*", "v1")
    assert not r.allowed_signer_patterns[0].match(upper)
    assert r.allowed_signer_patterns[0].match(RELEASE.replace("*", "v1"))


def _reference_glob(glob: str, subject: str) -> bool:
    """Dynamic-programming glob matcher: '*' any run, all else literal."""
    n, m = len(glob), len(subject)
    table = [[False] * (m + 1) for _ in range(n + 1)]
    table[0][0] = True
    for i in range(1, n + 1):
        star = glob[i - 1] == "*"
        for j in range(m + 1):
            if star:
                table[i][j] = table[i - 1][j] or (j > 0 and table[i][j - 1])
            else:
                table[i][j] = j > 0 and table[i - 1][j - 1] and glob[i - 1] == subject[j - 1]
    return table[n][m]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab*./?\n", max_size=10), st.text(alphabet="ab./?*\n", max_size=14))
def test_glob_matches_reference(glob: str, subject: str) -> None:
    assert bool(glob_to_pattern(glob, ignore_case=False).match(subject)) == _reference_glob(
        glob, subject
    )


def test_glob_has_no_catastrophic_backtracking() -> None:
    pattern = glob_to_pattern("*a*a*a*a*a*a*a*b", ignore_case=True)
    started = time.monotonic()
    assert not pattern.match("a" * 20_000)
    assert time.monotonic() - started < 1.0


# --- san_regex ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regex", "subject", "matches"),
    [
        ("foo", "foo", True),
        ("foo", "xfooy", False),
        ("foo", "foox", False),
        ("foo", "xfoo", False),
        ("a|b", "a", True),
        ("a|b", "ax", False),  # alternation is grouped before anchoring
        ("a|b", "xb", False),
        ("foo$", "foo\n", False),  # \Z, not $: a trailing newline does not sneak through
        ("(?i)foo", "FOO", True),  # leading global flags are kept
        ("(?i)foo", "xFOO", False),
        ("https://github\\.com/[^/]+/project/.*", "https://github.com/org/project/x", True),
        ("https://github\\.com/[^/]+/project/.*", "https://github.com/a/b/project/x", False),
    ],
)
def test_san_regex_is_anchored(regex: str, subject: str, matches: bool) -> None:
    r = rule(issuer=GITHUB, san_regex=regex)
    assert _san(r).regex == regex and _san(r).glob is None
    assert r.matcher(SanMatcher) is not None
    for method in (_san(r).pattern.match, _san(r).pattern.search, _san(r).pattern.fullmatch):
        assert bool(method(subject)) is matches


def test_san_regex_compile_error_names_rule_and_problem() -> None:
    message = rule_error(issuer=GITHUB, san_regex="(unclosed")
    assert message.startswith(f'{WHERE}.san_regex: invalid regular expression in rule "r"')
    assert "missing ): (unclosed" in message and "RE2 syntax" in message


# Constructs RE2 refuses rather than run them with backtracking or read them another way: each
# is a configuration error naming the rule and key, with a hint where one helps.
@pytest.mark.parametrize(
    ("regex", "hint"),
    [
        (r"(a)\1", "no backreferences"),
        (r"(?P<n>a)(?P=n)", "no backreferences"),
        (r"(?=https)https://.*", "no lookahead"),
        (r"(?!evil).*", "no lookahead"),
        (r".*(?<=\.yml)", "no lookbehind"),
        (r".*(?<!x)", "no lookbehind"),
        (r"a*+", "no possessive quantifiers"),
        (r"(?x) a  # comment", "no verbose mode"),
        (r"(?ix:a b)", "no verbose mode"),
        (r"foo\Z", "write \\z"),
        ("ab[", "missing ]"),
        ("a{1001}", "invalid repetition size"),
        (r"\pL{1000}", "pattern too large"),
        ("(?>atomic)", "invalid perl operator: (?>"),
        ("(?#comment)a", "invalid perl operator"),
        ("(?i", "invalid perl operator"),
    ],
)
def test_san_regex_refuses_what_re2_cannot_run_linearly(regex: str, hint: str) -> None:
    message = rule_error(issuer=GITHUB, san_regex=regex)
    assert message.startswith(f'{WHERE}.san_regex: invalid regular expression in rule "r"')
    assert hint in message, message


def test_regex_to_pattern_raises_pattern_error() -> None:
    with pytest.raises(PatternError, match="missing ]"):
        regex_to_pattern("ab[")


@pytest.mark.parametrize(
    ("regex", "subject", "matches"),
    [
        # RE2 syntax Python's re lacks, and flags anywhere (RE2 scopes them to the group)
        (r"https://\pL+\.example/.*", "https://ünï.example/x", True),
        (r"[[:alpha:]]+@example\.com", "dev@example.com", True),
        (r"[[:alpha:]]+@example\.com", "dev1@example.com", False),
        (r"\Q.github/workflows/\E.*", ".github/workflows/a.yml", True),
        (r"\Q.github/workflows/\E.*", "xgithubxworkflows/a.yml", False),
        (r"https://GitHub\.com/(?i)ORG/.*", "https://GitHub.com/org/r", True),
        (r"https://GitHub\.com/(?i)ORG/.*", "https://github.com/org/r", False),
        (r"(?i:ORG)/x", "org/x", True),
        ("a{,3}", "a{,3}", True),  # not a repetition in RE2: literal
        ("a{,3}", "aa", False),
        # \d, \w and \b are ASCII in RE2
        # case folding is Unicode's simple folding, as RE2 does it
        (r"(?i)k8s", "\u212a8\u017f", True),
        (r"(?i)github", "G\u0131THUB", False),
        (r"\d+", "١٢", False),
        (r"\w+", "é", False),
        # anchoring cannot be undone from inside: groups, alternation, \Q without \E
        (r"a)|(b", "b", None),  # refused: unbalanced
        (r"\Qfoo", "foo", True),
        (r"\Qfoo", "foo)", False),
        (r"(?s).*", "a\nb", True),
        (r".*", "a\nb", False),  # "." does not match a newline unless (?s)
        ("x$", "x\n", False),
        (r"(?m)x$", "x\n", False),  # multi-line $ still has to reach the end of the SAN
    ],
)
def test_san_regex_re2_semantics(regex: str, subject: str, matches: bool | None) -> None:
    if matches is None:
        assert "invalid regular expression" in rule_error(issuer=GITHUB, san_regex=regex)
        return
    r = rule(issuer=GITHUB, san_regex=regex)
    assert r.matcher(SanMatcher) is not None
    for method in (_san(r).pattern.match, _san(r).pattern.search, _san(r).pattern.fullmatch):
        assert method(subject) is matches, (regex, subject)


def test_patterns_match_any_str_without_raising() -> None:
    # A lone surrogate cannot come out of a certificate (strict UTF-8), but must not raise.
    assert not _san(rule(issuer=GITHUB, san_regex="a")).pattern.match("\ud800")
    assert glob_to_pattern("*", ignore_case=True).match("\ud800\x00")


def test_hostile_regex_runs_in_linear_time() -> None:
    # Python's re needs ~20 s for this on 27 segments, 4x more per 2 more; RE2 is linear. Not
    # a timing test: a backtracking engine would not finish within the test run at all.
    r = rule(issuer=GITHUB, san_regex="(.*/)*x")
    subject = "https://github.com/" + "a/" * 200 + "release.yml"
    assert not _san(r).pattern.match(subject)
    assert _san(r).pattern.match(subject + "/x")


LONG = "a" * (MAX_PATTERN_LENGTH + 1)


@pytest.mark.parametrize(
    ("key", "value"), [("san", LONG), ("san_regex", LONG), ("allowed_signers", [LONG])]
)
def test_patterns_are_bounded(key: str, value: object) -> None:
    message = rule_error(issuer=GITHUB, **{key: value})
    assert f"{WHERE}.{key}" in message and "too long" in message


def test_san_and_san_regex_are_exclusive() -> None:
    message = rule_error(issuer=GITHUB, san="a", san_regex="a")
    assert ".san_regex:" in message and "not both" in message


# --- rule shape --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({}, "has no identity matcher"),
        ({"allowed_signers": [RELEASE]}, "has no identity matcher"),
        ({"san": WORKFLOWS}, "names no issuer"),
        ({"email": "a@example.com"}, "names no issuer"),
        ({"extensions": {"build_trigger": "push"}}, "names no issuer"),
        ({"san": WORKFLOWS, "issuer": GITHUB, "any_issuer": True}, "any_issuer = true contradicts"),
        ({"san": WORKFLOWS, "any_issuer": "yes"}, "any_issuer: expected true or false"),
        ({"issuer": ""}, "issuer: expected an issuer URL, got an empty string"),
        ({"issuer": 3}, "issuer: expected an issuer URL, got an integer"),
        ({"isuer": GITHUB}, 'isuer: unknown key; did you mean "issuer"?'),
        ({"issuer": GITHUB, "sans": "x"}, 'sans: unknown key; did you mean "san"?'),
        ({"issuer": GITHUB, "zzz": 1}, "zzz: unknown key; expected one of:"),
    ],
)
def test_rule_shape_errors(raw: Mapping[str, object], fragment: str) -> None:
    message = rule_error(**raw)
    assert message.startswith(WHERE)
    assert fragment in message


@pytest.mark.parametrize(
    "raw",
    [
        {"issuer": GITHUB},
        {"san": WORKFLOWS, "any_issuer": True},
        {"key_fingerprint": "ab" * 32},
        {"cert_fingerprint": "ab" * 32},
        {"artifact_digest": "sha256:" + "ab" * 32},
    ],
)
def test_minimal_rules(raw: Mapping[str, object]) -> None:
    assert rule(**raw).name == "r"


@pytest.mark.parametrize("name", ["Upper", "-lead", "", "has space", "x" * 64, 7])
def test_rule_name_must_be_a_name(name: object) -> None:
    with pytest.raises(ConfigError, match=r"watch\[0\]\.name"):
        compile_rule({"name": name, "issuer": GITHUB}, WHERE)


def test_rule_name_is_required() -> None:
    with pytest.raises(ConfigError, match=r"watch\[0\]\.name: missing \(required\)"):
        compile_rule({"issuer": GITHUB}, WHERE)


# --- email, fingerprints, digests --------------------------------------------------------


def test_email_is_lowercased() -> None:
    r = rule(email="Thomas@Python.ORG", any_issuer=True)
    assert r.matcher(EmailMatcher) == EmailMatcher("thomas@python.org")


@pytest.mark.parametrize("email", ["nobody", "@example.com", "me@", "a b@example.com", 5])
def test_bad_email(email: object) -> None:
    assert f"{WHERE}.email:" in rule_error(email=email, any_issuer=True)


@pytest.mark.parametrize("key", ["cert_fingerprint", "key_fingerprint"])
@pytest.mark.parametrize(
    "value",
    [
        "AB" * 32,
        ":".join(["AB"] * 32),
        "sha256:" + "ab" * 32,
        "  " + "ab" * 32 + " ",
    ],
)
def test_fingerprints_are_normalised(key: str, value: str) -> None:
    assert rule(**{key: value}).matchers[0].config() == {key: "ab" * 32}


@pytest.mark.parametrize("key", ["cert_fingerprint", "key_fingerprint"])
@pytest.mark.parametrize("value", ["ab" * 31, "ab" * 33, "zz" * 32, "", 12, ["ab" * 32]])
def test_bad_fingerprints(key: str, value: object) -> None:
    assert f"{WHERE}.{key}:" in rule_error(**{key: value})


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("sha256:" + "AB" * 32, "sha256:" + "ab" * 32),
        ("sha384:" + "cd" * 48, "sha384:" + "cd" * 48),
        ("SHA512:" + "ef" * 64, "sha512:" + "ef" * 64),
    ],
)
def test_artifact_digest(value: str, normal: str) -> None:
    r = rule(artifact_digest=value)
    assert r.matcher(ArtifactDigestMatcher) == ArtifactDigestMatcher(normal)


@pytest.mark.parametrize(
    "value", ["ab" * 32, "sha256:" + "ab" * 31, "md5:" + "ab" * 16, "sha256:" + "zz" * 32, 1]
)
def test_bad_artifact_digest(value: object) -> None:
    assert f"{WHERE}.artifact_digest:" in rule_error(artifact_digest=value)


# --- extensions --------------------------------------------------------------------------


def test_extensions_by_name_and_oid() -> None:
    r = rule(
        issuer=GITHUB,
        extensions={
            "source_repository_ref": "refs/tags/*",
            "1.3.6.1.4.1.57264.1.9": "https://github.com/example/*",
            "1.2.3.4": "x",
        },
    )
    extensions = r.matcher(ExtensionsMatcher)
    assert extensions is not None
    by_oid = {e.oid: e for e in extensions.extensions}
    ref = by_oid[FULCIO_EXTENSIONS["source_repository_ref"]]
    assert ref.name == "source_repository_ref" and ref.pattern.match("REFS/tags/v1")
    assert not ref.pattern.match("refs/heads/main")
    assert by_oid["1.3.6.1.4.1.57264.1.9"].name == "build_signer_uri"
    assert by_oid["1.2.3.4"].name is None


@pytest.mark.parametrize(
    ("extensions", "fragment"),
    [
        (
            {"build_signer_ur": "x"},
            'build_signer_ur: unknown certificate extension; did you mean "build_signer_uri"?',
        ),
        ({"nonsense": "x"}, "nonsense: unknown certificate extension; expected a Fulcio"),
        ({"1.2.": "x"}, "unknown certificate extension"),
        (
            {"build_signer_uri": "x", "1.3.6.1.4.1.57264.1.9": "y"},
            'extension 1.3.6.1.4.1.57264.1.9 is already matched by "build_signer_uri"',
        ),
        ({}, "extensions: empty table"),
        ({"build_trigger": 1}, "build_trigger: expected a glob pattern, got an integer"),
        ("push", "extensions: expected a table, got a string"),
    ],
)
def test_bad_extensions(extensions: object, fragment: str) -> None:
    message = rule_error(issuer=GITHUB, extensions=extensions)
    assert f"{WHERE}.extensions" in message
    assert fragment in message


# --- lists -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("allowed_signers", "x", "allowed_signers: expected an array of strings, got a string"),
        ("allowed_signers", [""], "allowed_signers[0]: expected a glob pattern, got an empty"),
        ("allowed_signers", ["a", "a"], 'allowed_signers[1]: duplicate item "a"'),
        ("search", [""], "search[0]: expected a search term, got an empty string"),
        ("search", [1], "search[0]: expected a search term, got an integer"),
        ("notify", ["Security"], "notify[0]: expected a name"),
        ("notify", ["a", "a"], "notify[1]: duplicate item"),
        ("logs", "rekor", "logs: expected an array of strings"),
        ("logs", ["bad name"], "logs[0]: expected a name"),
    ],
)
def test_bad_lists(key: str, value: object, fragment: str) -> None:
    message = rule_error(issuer=GITHUB, **{key: value})
    assert fragment in message


def test_lists_are_kept() -> None:
    r = rule(issuer=GITHUB, search=["a@example.com"], logs=["rekor"], notify=[])
    assert r.search == ("a@example.com",)
    assert r.applies_to("rekor") and not r.applies_to("other")
    assert r.notify == ()


def test_verbose_mode_is_refused_so_no_comment_can_swallow_the_anchor() -> None:
    # Python's re read a trailing "# comment" as swallowing the closing anchor once; RE2 has no
    # verbose mode, and anchoring is RE2's full match, never text added around the regex.
    message = rule_error(issuer=GITHUB, san_regex=r"(?x) https://github\.com/org/  .*  # any")
    assert "no verbose mode" in message
    assert regex_to_pattern("a").pattern == "a"
