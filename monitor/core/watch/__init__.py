"""Watch rules: which signing identities to look for in log entries, and matching them (pure).

What a `[[watch]]` rule means is docs/configuration.md#watch; how the modules here fit
together, and how to add a matcher kind, is docs/architecture.md#adding-a-watch-matcher.

* `patterns`: globs and `san_regex` compiled for RE2 (linear time in the subject).
* `matchers`: the matcher kinds, one class each, in one table (`MATCHER_KINDS`).
* `rules`: a `[[watch]]` table compiled into a `WatchRule`; the rules' search terms.
* `match`: `Matcher`, applying rules to parsed entries.
* `prefilter`: the raw-body test that rules out most entries before they are parsed.
* `terms`: search terms for a Rekor v1 search index.
"""

from monitor.core.watch.match import (
    Evaluation,
    Match,
    Matcher,
    MatchOutcome,
    identity_summary,
    rule_expense,
)
from monitor.core.watch.matchers import (
    FULCIO_EXTENSIONS,
    MATCHER_KINDS,
    Check,
    ExtensionMatcher,
    RuleMatcher,
    SanMatcher,
    identity_values,
)
from monitor.core.watch.patterns import (
    MAX_PATTERN_LENGTH,
    Pattern,
    PatternError,
    glob_to_pattern,
    regex_to_pattern,
)
from monitor.core.watch.rules import (
    RULE_KEYS,
    WatchRule,
    compile_rule,
    rule_search_terms,
    search_terms,
)
from monitor.core.watch.terms import SearchTerm, TermKind, classify_term

__all__ = [
    "FULCIO_EXTENSIONS",
    "MATCHER_KINDS",
    "MAX_PATTERN_LENGTH",
    "RULE_KEYS",
    "Check",
    "Evaluation",
    "ExtensionMatcher",
    "Match",
    "MatchOutcome",
    "Matcher",
    "Pattern",
    "PatternError",
    "RuleMatcher",
    "SanMatcher",
    "SearchTerm",
    "TermKind",
    "WatchRule",
    "classify_term",
    "compile_rule",
    "glob_to_pattern",
    "identity_summary",
    "identity_values",
    "regex_to_pattern",
    "rule_expense",
    "rule_search_terms",
    "search_terms",
]
