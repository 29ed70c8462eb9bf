"""A `[[watch]]` table compiled into a `WatchRule` (pure).

`compile_rule` validates what one table can say alone (each matcher's own keys by its kind in
`matchers.MATCHER_KINDS`, and how they combine); `monitor.config.settings` checks what needs the
whole file (unique names, that `notify` and `logs` names exist). What each key means is
docs/configuration.md#watch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, TypeVar

from monitor.core import fields as f
from monitor.core.durations import format_duration, parse_duration
from monitor.core.watch.matchers import MATCHER_KEYS, MATCHER_KINDS, RuleMatcher
from monitor.core.watch.patterns import MAX_PATTERN_LENGTH, Pattern, compile_glob
from monitor.core.watch.terms import SearchTerm, TermKind, classify_term

RULE_KEYS = frozenset(
    (
        *MATCHER_KEYS,
        "name",
        "allowed_signers",
        "any_issuer",
        "search",
        "notify",
        "logs",
        "unlogged_after",
        "expect_rekor",
    )
)
"""Every key a `[[watch]]` table may hold."""

DEFAULT_UNLOGGED_AFTER: Final = timedelta(minutes=30)
"""How long after its CT timestamp a watched identity's certificate may go without a Rekor entry
before it is `unlogged_certificate`."""
UNLOGGED_AFTER_RANGE: Final = (timedelta(minutes=1), timedelta(days=30))

_M = TypeVar("_M", bound=RuleMatcher)
_KIND_ORDER = {kind: i for i, kind in enumerate(TermKind)}


@dataclass(frozen=True)
class WatchRule:
    """A compiled `[[watch]]` rule.

    Every pattern is anchored at both ends and matched by RE2 in linear time:
    `pattern.match(s)`, `search(s)` and `fullmatch(s)` agree.
    """

    name: str
    matchers: tuple[RuleMatcher, ...]
    """The matchers the rule sets, in `MATCHER_KINDS` order; at least one."""
    any_issuer: bool
    allowed_signers: tuple[str, ...]
    """The globs as written."""
    allowed_signer_patterns: tuple[Pattern, ...]
    """Compiled from `allowed_signers`, same order; match against the SAN or Build Signer URI."""
    search: tuple[str, ...]
    notify: tuple[str, ...]
    """Channel names; empty means every channel."""
    logs: tuple[str, ...]
    """Log names; empty means every log."""
    unlogged_after: timedelta = DEFAULT_UNLOGGED_AFTER
    """A CT certificate of this rule without a Rekor entry this long after its CT timestamp is
    `unlogged_certificate`."""
    expect_rekor: bool = True
    """False: the rule's signers may use certificates without Rekor (never unlogged_certificate)."""

    def applies_to(self, log_name: str) -> bool:
        """Whether entries of log `log_name` are checked against this rule."""
        return not self.logs or log_name in self.logs

    def matcher(self, kind: type[_M]) -> _M | None:
        """The rule's matcher of this kind (e.g. `SanMatcher`), None when it sets none."""
        return next((m for m in self.matchers if isinstance(m, kind)), None)

    @property
    def needs_certificate(self) -> bool:
        """Whether only signers with a certificate can match (a bare key never does)."""
        return any(m.needs_certificate for m in self.matchers)


def compile_rule(raw: Mapping[str, object], where: str) -> WatchRule:
    """Validate one `[[watch]]` table and compile its matchers.

    `where` locates the table in messages, e.g. "config.toml: watch[0]". Raises ConfigError.
    Cross-references (`notify` and `logs` names exist, names unique) are checked by the caller.
    """
    f.check_keys(raw, where, RULE_KEYS)
    name = f.as_name(f.require(raw, "name", where), f.key_path(where, "name"))
    any_issuer = f.opt_bool(raw, "any_issuer", where, default=False)
    compiled = (kind.compile(raw, where, name) for kind in MATCHER_KINDS)
    matchers = tuple(m for m in compiled if m is not None)

    if not matchers:
        raise f.error(
            where,
            f"rule {f.echo(name)} has no identity matcher; set at least one of "
            + ", ".join(MATCHER_KEYS),
        )
    if "issuer" in raw and any_issuer:
        raise f.error(
            f.key_path(where, "any_issuer"),
            "any_issuer = true contradicts issuer; remove one of them",
        )
    uses_identity = [
        key for kind in MATCHER_KINDS if kind.names_identity for key in kind.keys if key in raw
    ]
    if uses_identity and "issuer" not in raw and not any_issuer:
        raise f.error(
            where,
            f"rule {f.echo(name)} matches {', '.join(uses_identity)} but names no issuer; "
            'set issuer = "https://..." (e.g. "https://token.actions.githubusercontent.com"), '
            "or any_issuer = true to match that identity from every OIDC issuer",
        )

    allowed = f.opt_str_list(
        raw, "allowed_signers", where, what="a glob pattern", max_len=MAX_PATTERN_LENGTH
    )
    patterns = tuple(
        compile_glob(g, f.key_path(f.key_path(where, "allowed_signers"), i), ignore_case=False)
        for i, g in enumerate(allowed)
    )
    search = f.opt_str_list(raw, "search", where, what="a search term")
    notify = f.opt_str_list(raw, "notify", where, what="a notify channel name", max_len=63)
    logs = f.opt_str_list(raw, "logs", where, what="a log name", max_len=63)
    for key, names in (("notify", notify), ("logs", logs)):
        for i, item in enumerate(names):
            f.as_name(item, f.key_path(f.key_path(where, key), i))
    unlogged_after = DEFAULT_UNLOGGED_AFTER
    if "unlogged_after" in raw:
        unlogged_after = _unlogged_after(raw["unlogged_after"], f.key_path(where, "unlogged_after"))
    return WatchRule(
        name=name,
        matchers=matchers,
        any_issuer=any_issuer,
        allowed_signers=allowed,
        allowed_signer_patterns=patterns,
        search=search,
        notify=notify,
        logs=logs,
        unlogged_after=unlogged_after,
        expect_rekor=f.opt_bool(raw, "expect_rekor", where, default=True),
    )


def _unlogged_after(value: object, at: str) -> timedelta:
    """`unlogged_after`: a duration string within `UNLOGGED_AFTER_RANGE`. Raises ConfigError."""
    text = f.as_str(value, at, what='a duration string like "30m" or "2h"', max_len=64)
    try:
        duration = parse_duration(text)
    except ValueError as e:
        raise f.error(
            at, f'expected a duration like "30m" or "2h" (units ms, s, m, h, d), got {f.echo(text)}'
        ) from e
    lo, hi = UNLOGGED_AFTER_RANGE
    if not lo <= duration <= hi:
        raise f.error(
            at,
            f"must be between {format_duration(lo)} and {format_duration(hi)}, got {f.echo(text)}",
        )
    return duration


def rule_search_terms(rule: WatchRule) -> tuple[SearchTerm, ...]:
    """The terms one rule is searched by: its matchers' exact values by kind (its email, a SAN
    glob without `*`, its artifact digest), then its `search` strings; without duplicates, in
    that order."""
    found = sorted(
        (term for m in rule.matchers for term in m.search_terms()),
        key=lambda t: _KIND_ORDER[t.kind],
    )
    found.extend(classify_term(s) for s in rule.search)
    return tuple(dict.fromkeys(found))


def search_terms(rules: Iterable[WatchRule]) -> list[SearchTerm]:
    """Every distinct term of `rules`, in rule order (one lookup per term per poll, however
    many rules name it)."""
    out: dict[SearchTerm, None] = {}
    for rule in rules:
        out.update(dict.fromkeys(rule_search_terms(rule)))
    return list(out)
