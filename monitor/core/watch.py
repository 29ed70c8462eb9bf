"""Watch rules: which signing identities to look for in log entries, compiled for matching.

Pure: no IO. `compile_rule` turns one `[[watch]]` table into a `WatchRule`;
`monitor.config.settings` checks what needs the whole file (unique names, that `notify` and
`logs` names exist).

`Matcher` applies compiled rules to parsed entries (`monitor.core.entries.Entry`): `match_entry`
returns one `Match` per (rule, signer) that matches, `explain` says for every rule which matcher
passed or failed (for `tlog-monitor inspect`), and `might_match` is the cheap pre-filter a scanner
runs on raw entry bodies before parsing them (see "Pre-filter" below).

Semantics of a rule:

* Every matcher a rule sets must match (AND): `issuer`, `san` or `san_regex`, `email`, each
  `extensions` entry, `cert_fingerprint`, `key_fingerprint`, `artifact_digest`. A rule sets at least
  one of them.
* `issuer` is compared exactly. A rule that matches certificate identities (`san`, `san_regex`,
  `email`, `extensions`) must either name its `issuer` or say `any_issuer = true`: the same SAN
  vouched for by another OIDC issuer is a different identity, and watching "any issuer" is wider
  (catches look-alikes minted elsewhere) but noisier; the choice must be explicit.
* Globs (`san`, `extensions` values, `allowed_signers`): `*` matches any run of characters,
  including "/" and the empty string; every other character is literal (there is no `?` or
  `[...]`). The whole value must match, never a prefix or suffix:
  "https://github.com/org/repo/.github/workflows/*" matches ".../workflows/release.yml@refs/tags/v1"
  but not "https://github.com/org/repo-evil/..."; "refs/tags/*" matches "refs/tags/v1.2.3" but not
  "x/refs/tags/v1".
* Case: the watch matchers `san` and `extensions` globs match case-insensitively (a case variant
  must never escape the watch: more alerts, not fewer); `allowed_signers` globs are
  case-sensitive (a case variant is not "allowed": again more alerts, not fewer). `san_regex` is
  used as written: add `(?i)` for case-insensitivity. Case-insensitive means RE2's Unicode simple
  case folding (so "k" also matches U+212A KELVIN SIGN, but "i" does not match a dotless "ı").
* Globs and `san_regex` run on RE2 (`Pattern`): time linear in the subject, whatever the pattern
  or the subject, since the subjects come from anyone who can write to a log. `san_regex` is RE2
  syntax: backreferences, lookaround, possessive quantifiers, `\\Z` and verbose mode `(?x)` are
  refused at load, with the rule and key named.
* `san_regex` is anchored at both ends by RE2's full match (not by text added around it): "foo"
  does not match "xfooy", whichever of `match`, `search` or `fullmatch` a caller uses.
* `email` is compared case-insensitively as a whole (stored lowercase): providers treat addresses
  case-insensitively, and a missed alert costs more than a duplicate one.
* Fingerprints are SHA-256 in hex (colons and a "sha256:" prefix allowed), stored as 64 lowercase
  hex digits: `cert_fingerprint` over the certificate's DER, `key_fingerprint` over the public
  key's DER SubjectPublicKeyInfo. `artifact_digest` is "sha256:<hex>" (also sha384 / sha512),
  stored lowercase.
* `allowed_signers`: an entry that matches the rule is expected when its SAN or its Build Signer
  URI extension matches one of these globs; otherwise it raises `unexpected_signer` (high). A
  rule without `allowed_signers` raises `identity_seen` (info) for every match.
* `search`: exact strings the monitor will look up in a Rekor v1 search index (a later issue).
* `notify`: channel names (empty: every channel); `logs`: log names (empty: every log).

Matching, per signer of an entry (`Entry.signers`; one `Match` per rule and signer):

* `san` / `san_regex` look at the certificate's email, URI, DNS and otherName SANs (Fulcio issues
  email, URI and otherName usernames); a rule matches when any one of them matches. Directory
  names, IP addresses, registered IDs and otherNames that are not strings (shown as "hex:...")
  are not identities and are never matched. `email` looks at email SANs only.
* `extensions` read the Fulcio extensions under 1.3.6.1.4.1.57264.1 (`CertificateIdentity.
  extension_oids`): a dotted OID outside that arc never matches. An absent or undecodable
  extension does not match.
* `issuer`, `san`, `san_regex`, `email`, `extensions` and `cert_fingerprint` need a certificate;
  a signer with a bare public key matches only rules made of `key_fingerprint` and
  `artifact_digest`.
* Trust: a matching certificate that does not chain to the log's Fulcio roots (`monitor.core.chain`)
  is `UNTRUSTED` unless the rule says `any_issuer = true`: recorded, never alerted, since anyone
  can log a self-signed certificate naming any identity. The chain is checked once per signer,
  before any rule's matchers read its identity. With no Fulcio roots known for a log
  every certificate is untrusted. Bare-key signers are not subject to this (no issuer vouches for
  them; the rule named the key or the digest).
* Outcome: `UNEXPECTED_SIGNER` when the rule lists `allowed_signers` and neither the signer's
  identity SANs (as above) nor its Build Signer URI matches one of them; else `IDENTITY_SEEN`.

Pre-filter (`Matcher.might_match`), on the raw body, before `parse_entry`: it answers False only
when no rule can match, which is provable from the body's bytes:

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import re2

from monitor.core import fields as f

if TYPE_CHECKING:
    from monitor.core.certs import CertificateIdentity
    from monitor.core.chain import CertificateTrust
    from monitor.core.entries import Entry, Signer

MAX_PATTERN_LENGTH = 1000
"""Longest glob or regex accepted, in characters."""

_FULCIO = "1.3.6.1.4.1.57264.1."
FULCIO_EXTENSIONS: Mapping[str, str] = {
    "issuer_v1": _FULCIO + "1",
    "github_workflow_trigger": _FULCIO + "2",
    "github_workflow_sha": _FULCIO + "3",
    "github_workflow_name": _FULCIO + "4",
    "github_workflow_repository": _FULCIO + "5",
    "github_workflow_ref": _FULCIO + "6",
    "issuer_v2": _FULCIO + "8",
    "build_signer_uri": _FULCIO + "9",
    "build_signer_digest": _FULCIO + "10",
    "runner_environment": _FULCIO + "11",
    "source_repository_uri": _FULCIO + "12",
    "source_repository_digest": _FULCIO + "13",
    "source_repository_ref": _FULCIO + "14",
    "source_repository_identifier": _FULCIO + "15",
    "source_repository_owner_uri": _FULCIO + "16",
    "source_repository_owner_identifier": _FULCIO + "17",
    "build_config_uri": _FULCIO + "18",
    "build_config_digest": _FULCIO + "19",
    "build_trigger": _FULCIO + "20",
    "run_invocation_uri": _FULCIO + "21",
    "source_repository_visibility_at_signing": _FULCIO + "22",
}
"""Fulcio certificate extensions by config name (snake_case of Fulcio's names) -> dotted OID.

See https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md. Any other extension can be
named by its dotted OID (a quoted TOML key: `"1.3.6.1.4.1.57264.1.9" = "..."`).
"""
_OID_NAMES = {oid: name for name, oid in FULCIO_EXTENSIONS.items()}
_DOTTED_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]{0,9})){1,30}")
_HEX = re.compile(r"[0-9a-f]+")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_MATCHER_KEYS = (
    "issuer",
    "san",
    "san_regex",
    "email",
    "extensions",
    "cert_fingerprint",
    "key_fingerprint",
    "artifact_digest",
)
_CERT_IDENTITY_KEYS = ("san", "san_regex", "email", "extensions")
RULE_KEYS = frozenset(
    (*_MATCHER_KEYS, "name", "allowed_signers", "any_issuer", "search", "notify", "logs")
)
"""Every key a `[[watch]]` table may hold."""


@dataclass(frozen=True)
class ExtensionMatcher:
    """One `extensions` entry: the certificate extension `oid` must match `pattern`."""

    oid: str
    name: str | None
    """The config name of a Fulcio extension, None when the rule used a dotted OID."""
    glob: str
    pattern: Pattern


@dataclass(frozen=True)
class WatchRule:
    """A compiled `[[watch]]` rule. Unset matchers are None / empty.

    Every pattern is anchored at both ends and matched by RE2 in linear time:
    `pattern.match(s)`, `search(s)` and `fullmatch(s)` agree.
    """

    name: str
    issuer: str | None
    any_issuer: bool
    san: str | None
    """The `san` glob as written, if the rule uses one."""
    san_regex: str | None
    """The `san_regex` as written, if the rule uses one."""
    san_pattern: Pattern | None
    """Compiled from `san` or `san_regex` (at most one of them is set)."""
    email: str | None
    """Lowercase; compare with `value.lower()`."""
    extensions: tuple[ExtensionMatcher, ...]
    cert_fingerprint: str | None
    """64 lowercase hex digits (SHA-256 of the certificate DER)."""
    key_fingerprint: str | None
    """64 lowercase hex digits (SHA-256 of the public key's DER SubjectPublicKeyInfo)."""
    artifact_digest: str | None
    """"<algorithm>:<lowercase hex>", e.g. "sha256:9f86..."."""
    allowed_signers: tuple[str, ...]
    """The globs as written."""
    allowed_signer_patterns: tuple[Pattern, ...]
    """Compiled from `allowed_signers`, same order; match against the SAN or Build Signer URI."""
    search: tuple[str, ...]
    notify: tuple[str, ...]
    """Channel names; empty means every channel."""
    logs: tuple[str, ...]
    """Log names; empty means every log."""

    def applies_to(self, log_name: str) -> bool:
        """Whether entries of log `log_name` are checked against this rule."""
        return not self.logs or log_name in self.logs


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


def _glob(value: object, where: str) -> str:
    return f.as_str(value, where, what="a glob pattern", max_len=MAX_PATTERN_LENGTH)


def _glob_pattern(glob: str, where: str, *, ignore_case: bool) -> Pattern:
    try:
        return glob_to_pattern(glob, ignore_case=ignore_case)
    except PatternError as e:
        raise f.error(where, f"glob {f.echo(glob)} cannot be compiled: {e}") from e


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


def _fingerprint(value: object, where: str) -> str:
    text = f.as_str(value, where, what="a SHA-256 fingerprint", max_len=200)
    norm = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(norm) != 64 or not _HEX.fullmatch(norm):
        raise f.error(
            where,
            "expected a hex SHA-256 fingerprint (64 hex digits, colons allowed), "
            f"got {f.echo(text)}",
        )
    return norm


def _digest(value: object, where: str) -> str:
    text = f.as_str(value, where, what="a digest", max_len=200)
    algorithm, sep, hexdigits = text.strip().lower().partition(":")
    want = _DIGEST_HEX_LENGTHS.get(algorithm)
    if not sep or want is None or len(hexdigits) != want or not _HEX.fullmatch(hexdigits):
        raise f.error(
            where,
            'expected "sha256:<64 hex digits>" (or sha384:/sha512:), got ' + f.echo(text),
        )
    return f"{algorithm}:{hexdigits}"


def _email(value: object, where: str) -> str:
    text = f.as_str(value, where, what="an email address", max_len=254)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text):
        raise f.error(
            where, f'expected an email address like "name@example.com", got {f.echo(text)}'
        )
    return text.lower()


def _extensions(value: object, where: str) -> tuple[ExtensionMatcher, ...]:
    table = f.as_table(value, where)
    if not table:
        raise f.error(where, "empty table: name at least one extension, or remove the key")
    seen: dict[str, str] = {}
    matchers: list[ExtensionMatcher] = []
    for key, glob_value in table.items():
        at = f.key_path(where, key)
        if key in FULCIO_EXTENSIONS:
            oid, name = FULCIO_EXTENSIONS[key], key
        elif _DOTTED_OID.fullmatch(key):
            oid, name = key, None
        else:
            hint = f.suggest(key, FULCIO_EXTENSIONS) or (
                '; expected a Fulcio extension name such as "build_signer_uri" or a dotted OID '
                'such as "1.3.6.1.4.1.57264.1.9"'
            )
            raise f.error(at, f"unknown certificate extension{hint}")
        if oid in seen:
            raise f.error(at, f"extension {oid} is already matched by {f.echo(seen[oid])}")
        seen[oid] = key
        glob = _glob(glob_value, at)
        matchers.append(
            ExtensionMatcher(
                oid=oid,
                name=name or _OID_NAMES.get(oid),
                glob=glob,
                pattern=_glob_pattern(glob, at, ignore_case=True),
            )
        )
    return tuple(matchers)


def compile_rule(raw: Mapping[str, object], where: str) -> WatchRule:
    """Validate one `[[watch]]` table and compile its matchers.

    `where` locates the table in messages, e.g. "config.toml: watch[0]". Raises ConfigError.
    Cross-references (`notify` and `logs` names exist, names unique) are checked by the caller.
    """
    f.check_keys(raw, where, RULE_KEYS)
    name = f.as_name(f.require(raw, "name", where), f.key_path(where, "name"))

    issuer = f.opt_str(raw, "issuer", where, what="an issuer URL")
    any_issuer = f.opt_bool(raw, "any_issuer", where, default=False)

    if "san" in raw and "san_regex" in raw:
        raise f.error(
            f.key_path(where, "san_regex"),
            "set either san (a glob) or san_regex (a regular expression), not both",
        )
    san = san_regex = None
    san_pattern = None
    if "san" in raw:
        san = _glob(raw["san"], f.key_path(where, "san"))
        san_pattern = _glob_pattern(san, f.key_path(where, "san"), ignore_case=True)
    if "san_regex" in raw:
        at = f.key_path(where, "san_regex")
        san_regex = f.as_str(
            raw["san_regex"], at, what="a regular expression", max_len=MAX_PATTERN_LENGTH
        )
        try:
            san_pattern = regex_to_pattern(san_regex)
        except PatternError as e:
            raise f.error(at, _regex_error(name, san_regex, e)) from e

    email = _email(raw["email"], f.key_path(where, "email")) if "email" in raw else None
    extensions = (
        _extensions(raw["extensions"], f.key_path(where, "extensions"))
        if "extensions" in raw
        else ()
    )
    cert_fp = (
        _fingerprint(raw["cert_fingerprint"], f.key_path(where, "cert_fingerprint"))
        if "cert_fingerprint" in raw
        else None
    )
    key_fp = (
        _fingerprint(raw["key_fingerprint"], f.key_path(where, "key_fingerprint"))
        if "key_fingerprint" in raw
        else None
    )
    digest = (
        _digest(raw["artifact_digest"], f.key_path(where, "artifact_digest"))
        if "artifact_digest" in raw
        else None
    )

    if not any(key in raw for key in _MATCHER_KEYS):
        raise f.error(
            where,
            f"rule {f.echo(name)} has no identity matcher; set at least one of "
            + ", ".join(_MATCHER_KEYS),
        )
    if issuer is not None and any_issuer:
        raise f.error(
            f.key_path(where, "any_issuer"),
            "any_issuer = true contradicts issuer; remove one of them",
        )
    uses_cert_identity = [key for key in _CERT_IDENTITY_KEYS if key in raw]
    if uses_cert_identity and issuer is None and not any_issuer:
        raise f.error(
            where,
            f"rule {f.echo(name)} matches {', '.join(uses_cert_identity)} but names no issuer; "
            'set issuer = "https://..." (e.g. "https://token.actions.githubusercontent.com"), '
            "or any_issuer = true to match that identity from every OIDC issuer",
        )

    allowed = f.opt_str_list(
        raw, "allowed_signers", where, what="a glob pattern", max_len=MAX_PATTERN_LENGTH
    )
    patterns = tuple(
        _glob_pattern(g, f.key_path(f.key_path(where, "allowed_signers"), i), ignore_case=False)
        for i, g in enumerate(allowed)
    )
    search = f.opt_str_list(raw, "search", where, what="a search term")
    notify = f.opt_str_list(raw, "notify", where, what="a notify channel name", max_len=63)
    logs = f.opt_str_list(raw, "logs", where, what="a log name", max_len=63)
    for key, names in (("notify", notify), ("logs", logs)):
        for i, item in enumerate(names):
            f.as_name(item, f.key_path(f.key_path(where, key), i))
    return WatchRule(
        name=name,
        issuer=issuer,
        any_issuer=any_issuer,
        san=san,
        san_regex=san_regex,
        san_pattern=san_pattern,
        email=email,
        extensions=extensions,
        cert_fingerprint=cert_fp,
        key_fingerprint=key_fp,
        artifact_digest=digest,
        allowed_signers=allowed,
        allowed_signer_patterns=patterns,
        search=search,
        notify=notify,
        logs=logs,
    )


# --- matching -------------------------------------------------------------------------------


class MatchOutcome(StrEnum):
    """What a (rule, signer) match means."""

    UNEXPECTED_SIGNER = "unexpected_signer"
    """The rule lists allowed signers and this signer is not one of them: alert, high."""
    IDENTITY_SEEN = "identity_seen"
    """The identity was used (by an allowed signer, or the rule lists none): alert, info."""
    UNTRUSTED = "untrusted"
    """The identity matched, but its certificate does not chain to the log's Fulcio roots and
    the rule lacks `any_issuer`: recorded, never alerted."""


@dataclass(frozen=True)
class Match:
    """One rule matching one signer of an entry."""

    rule: str
    """The rule's name."""
    outcome: MatchOutcome
    signer_index: int
    """Which of `Entry.signers`."""
    reasons: tuple[str, ...]
    """Human-readable, one per matcher that matched, then the trust and allowed-signer verdicts,
    e.g. "email = security@example.com"."""
    identity: Mapping[str, object] = field(hash=False)
    """JSON-ready summary of the signer (see `identity_summary`)."""
    certificate: bytes | None = field(repr=False)
    """The signer's certificate (DER), None for a bare key."""


@dataclass(frozen=True)
class Check:
    """The verdict of one matcher of a rule on one signer (`Matcher.explain`)."""

    matcher: str
    """The rule key: "issuer", "san", "email", "extensions.build_signer_uri", ..."""
    passed: bool
    detail: str
    """What was compared, e.g. "issuer is https://accounts.google.com, not https://..."."""


@dataclass(frozen=True)
class Evaluation:
    """How one rule fared against one signer: every matcher's verdict, and the match if all
    passed."""

    rule: str
    signer_index: int
    checks: tuple[Check, ...]
    match: Match | None

    @property
    def first_failure(self) -> Check | None:
        """The first matcher (in rule key order) that did not match, None when all did."""
        return next((c for c in self.checks if not c.passed), None)


_IDENTITY_EXTENSIONS = (
    "build_signer_uri",
    "source_repository_uri",
    "source_repository_ref",
    "build_trigger",
)
_IDENTITY_SAN_KINDS = frozenset({"email", "uri", "dns", "othername"})


def identity_values(cert: CertificateIdentity) -> tuple[str, ...]:
    """The SAN values `san`, `san_regex` and `allowed_signers` look at: email, URI, DNS and
    string otherName SANs, in certificate order."""
    return tuple(
        s.value
        for s in cert.sans
        if s.kind in _IDENTITY_SAN_KINDS and not (s.kind == "othername" and s.value[:4] == "hex:")
    )


def identity_summary(entry: Entry, signer_index: int) -> dict[str, object]:
    """A JSON-ready summary of one signer of `entry`.

    Keys: kind, api_version, sans (["email:a@b", "uri:https://..."]), issuer, the extensions
    build_signer_uri, source_repository_uri, source_repository_ref, build_trigger (only when
    present), cert_fingerprint, key_fingerprint, artifact_digest ("sha256:<hex>"). Absent values
    are None.
    """
    signer = entry.signers[signer_index]
    cert = signer.certificate
    out: dict[str, object] = {
        "kind": entry.kind,
        "api_version": entry.api_version,
        "sans": [f"{s.kind}:{s.value}" for s in cert.sans] if cert else [],
        "issuer": cert.issuer if cert else None,
    }
    if cert is not None:
        for name in _IDENTITY_EXTENSIONS:
            value = cert.extensions.get(name)
            if value is not None:
                out[name] = value
    out["cert_fingerprint"] = cert.fingerprint_sha256 if cert else None
    out["key_fingerprint"] = signer.public_key_sha256
    digest = entry.artifact_digest
    out["artifact_digest"] = f"{digest[0]}:{digest[1]}" if digest else None
    return out


def _no_cert(matcher: str) -> Check:
    return Check(matcher, False, "the signer has no certificate (a bare public key)")


def _checks(rule: WatchRule, entry: Entry, signer: Signer) -> Iterator[Check]:
    """Every matcher the rule sets, in rule key order, judged on one signer."""
    cert = signer.certificate
    if rule.issuer is not None:
        if cert is None:
            yield _no_cert("issuer")
        elif cert.issuer == rule.issuer:
            yield Check("issuer", True, f"issuer = {cert.issuer}")
        elif cert.issuer is None:
            yield Check("issuer", False, f"the certificate names no issuer, want {rule.issuer}")
        else:
            yield Check("issuer", False, f"issuer is {cert.issuer}, not {rule.issuer}")
    if rule.san_pattern is not None:
        key, shown = ("san", rule.san) if rule.san is not None else ("san_regex", rule.san_regex)
        if cert is None:
            yield _no_cert(key)
        else:
            values = identity_values(cert)
            hit = next((v for v in values if rule.san_pattern.match(v)), None)
            how = "matches" if key == "san" else "matches regex"
            if hit is not None:
                yield Check(key, True, f"san {hit} {how} {shown}")
            else:
                seen = ", ".join(values) or "none"
                yield Check(key, False, f"no SAN {how} {shown} (SANs: {seen})")
    if rule.email is not None:
        if cert is None:
            yield _no_cert("email")
        else:
            emails = cert.emails
            hit = next((e for e in emails if e.lower() == rule.email), None)
            if hit is not None:
                yield Check("email", True, f"email = {hit}")
            else:
                seen = ", ".join(emails) or "none"
                yield Check("email", False, f"no email SAN equals {rule.email} (emails: {seen})")
    for ext in rule.extensions:
        label = ext.name or ext.oid
        key = f"extensions.{label}"
        if cert is None:
            yield _no_cert(key)
            continue
        value = cert.extension_oids.get(ext.oid)
        if value is None:
            why = (
                "present but not decodable"
                if ext.oid in cert.unparseable_extensions
                else "absent from the certificate"
            )
            yield Check(key, False, f"{label} ({ext.oid}) is {why}, want {ext.glob}")
        elif ext.pattern.match(value):
            yield Check(key, True, f"{label} {value} matches {ext.glob}")
        else:
            yield Check(key, False, f"{label} is {value}, does not match {ext.glob}")
    if rule.cert_fingerprint is not None:
        if cert is None:
            yield _no_cert("cert_fingerprint")
        elif cert.fingerprint_sha256 == rule.cert_fingerprint:
            yield Check("cert_fingerprint", True, f"cert_fingerprint = {rule.cert_fingerprint}")
        else:
            yield Check(
                "cert_fingerprint",
                False,
                f"cert_fingerprint is {cert.fingerprint_sha256}, not {rule.cert_fingerprint}",
            )
    if rule.key_fingerprint is not None:
        if signer.public_key_sha256 == rule.key_fingerprint:
            yield Check("key_fingerprint", True, f"key_fingerprint = {rule.key_fingerprint}")
        else:
            yield Check(
                "key_fingerprint",
                False,
                f"key_fingerprint is {signer.public_key_sha256}, not {rule.key_fingerprint}",
            )
    if rule.artifact_digest is not None:
        digest = entry.artifact_digest
        text = f"{digest[0]}:{digest[1]}" if digest else None
        if text == rule.artifact_digest:
            yield Check("artifact_digest", True, f"artifact_digest = {text}")
        else:
            got = text or "unknown (the entry records no payload digest)"
            yield Check(
                "artifact_digest", False, f"artifact_digest is {got}, not {rule.artifact_digest}"
            )


_WARMUP: Final = 64
_SAMPLE_EVERY: Final = 1024
"""`might_match` evaluates every condition on the first bodies and then one body in this many,
to order each rule's conditions by what they cost and how often they reject."""


class Matcher:
    """Watch rules, ready to match the entries of one log.

    `rules` are those that apply to the log (`Config.rules_for_log`); `trust` says which
    certificates chain to the log's Fulcio roots (None: no roots known, every certificate is
    untrusted unless a rule has `any_issuer`). Pure and thread-safe apart from the trust cache.
    """

    def __init__(self, rules: Sequence[WatchRule], trust: CertificateTrust | None) -> None:
        self.rules: tuple[WatchRule, ...] = tuple(rules)
        self.trust = trust
        self._filters = tuple(_prefilter(rule) for rule in self.rules)
        self._always = any(not f.conditions for f in self._filters)
        self._bodies = 0

    # --- pre-filter ---------------------------------------------------------------------

    def might_match(self, body: bytes) -> bool:
        """Whether `match_entry(parse_entry(body))` may be non-empty; False proves it empty.

        Costs a few microseconds on a typical body (see the module docstring for how).
        """
        if not self._filters:
            return False
        if self._always or b"\\" in body:
            return True
        views = _Views(body)
        self._bodies += 1
        if self._bodies <= _WARMUP or not self._bodies % _SAMPLE_EVERY:
            return any([f.sample(views) for f in self._filters])  # every filter samples
        return any(rule_filter.test(views) for rule_filter in self._filters)

    # --- matching -----------------------------------------------------------------------

    def match_entry(self, entry: Entry, *, at: datetime | None = None) -> list[Match]:
        """Every (rule, signer) that matches, one `Match` each, signers in entry order.

        `at`, the entry's integration time when known, also checks that the certificate was
        valid then (see `CertificateTrust.is_trusted`).
        """
        out: list[Match] = []
        for index, signer in enumerate(entry.signers):
            # The chain is checked before any rule's regex or glob reads the signer's identity,
            # once per signer (an untrusted match is still recorded as such, hence no skipping).
            trusted = self._trusted(signer, at)
            for rule in self.rules:
                reasons: list[str] = []
                for check in _checks(rule, entry, signer):
                    if not check.passed:
                        break
                    reasons.append(check.detail)
                else:
                    out.append(self._verdict(rule, entry, index, reasons, trusted))
        return out

    def explain(self, entry: Entry, *, at: datetime | None = None) -> list[Evaluation]:
        """Every rule's verdict on every signer, with each matcher's result (for `inspect`)."""
        out: list[Evaluation] = []
        for index, signer in enumerate(entry.signers):
            trusted = self._trusted(signer, at)
            for rule in self.rules:
                checks = tuple(_checks(rule, entry, signer))
                match = None
                if all(c.passed for c in checks):
                    match = self._verdict(rule, entry, index, [c.detail for c in checks], trusted)
                out.append(Evaluation(rule.name, index, checks, match))
        return out

    def _trusted(self, signer: Signer, at: datetime | None) -> bool | None:
        """Whether the signer's certificate chains to the log's Fulcio roots (valid at `at`);
        None for a bare key."""
        cert = signer.certificate
        if cert is None:
            return None
        return self.trust is not None and self.trust.is_trusted(cert, at)

    def _verdict(
        self,
        rule: WatchRule,
        entry: Entry,
        index: int,
        reasons: list[str],
        trusted: bool | None,
    ) -> Match:
        signer = entry.signers[index]
        cert = signer.certificate
        untrusted = False
        if cert is not None and not trusted:
            why = (
                f"certificate (issued by {cert.issuer_dn or 'an empty name'}) does not chain "
                "to the log's Fulcio roots"
                if self.trust is not None
                else "no Fulcio roots are known for this log"
            )
            if rule.any_issuer:
                reasons.append(f"{why}; counted because any_issuer = true")
            else:
                reasons.append(f"{why}: not counted as the watched identity")
                untrusted = True
        outcome = MatchOutcome.IDENTITY_SEEN
        if rule.allowed_signers:
            allowed, reason = _allowed(rule, cert)
            reasons.append(reason)
            if not allowed:
                outcome = MatchOutcome.UNEXPECTED_SIGNER
        if untrusted:
            outcome = MatchOutcome.UNTRUSTED
        return Match(
            rule=rule.name,
            outcome=outcome,
            signer_index=index,
            reasons=tuple(reasons),
            identity=identity_summary(entry, index),
            certificate=cert.der if cert is not None else None,
        )


def _allowed(rule: WatchRule, cert: CertificateIdentity | None) -> tuple[bool, str]:
    """Whether the signer is among the rule's allowed signers, and why (a reason line)."""
    if cert is None:
        return False, "a bare public key cannot be among allowed_signers"
    candidates = list(identity_values(cert))
    build_signer = cert.extensions.get("build_signer_uri")
    if build_signer is not None:
        candidates.append(build_signer)
    for value in candidates:
        for glob, pattern in zip(rule.allowed_signers, rule.allowed_signer_patterns, strict=True):
            if pattern.match(value):
                return True, f"signer {value} matches allowed_signers {glob}"
    sans = ", ".join(identity_values(cert)) or "no identity SAN"
    shown = f"{sans} (build signer {build_signer})" if build_signer else sans
    return False, f"signer {shown} not in allowed_signers"


# --- pre-filter -----------------------------------------------------------------------------
# A rule's pre-filter is a list of conditions that all hold whenever the rule matches some
# signer of the body's entry; each condition is cheap to test on the raw body (see the module
# docstring for why each one is necessary).

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


class _Views:
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
            from monitor.core.certs import _tbs_parts  # noqa: PLC0415 - keep `watch` import light

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
                        spki = _tbs_parts(der)[2]
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


class _Condition(ABC):
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
    def test(self, views: _Views) -> bool:
        """True unless the body provably lacks what the condition needs."""

    def expected_cost(self) -> float:
        """Cost per rejection, the classic order for a conjunction of tests."""
        pass_rate = (self.passes + 1) / (self.tests + 2)
        return self.cost / max(1.0 - pass_rate, 0.001)


class _Text(_Condition):
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

    def test(self, views: _Views) -> bool:
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


class _Digest(_Condition):
    """The entry's digest is `hexdigest`: hex in any case (v1) or base64 of the bytes (v2)."""

    __slots__ = ("b64", "hex")

    def __init__(self, hexdigest: str) -> None:
        super().__init__(2, 10_000)
        raw = bytes.fromhex(hexdigest)
        self.hex = hexdigest.encode("ascii")
        # Only the digits fully determined by the bytes: a lenient last digit must not matter.
        self.b64 = base64.b64encode(raw)[: len(raw) * 8 // 6]

    def test(self, views: _Views) -> bool:
        return self.b64 in views.body or self.hex in views.lower()


class _Fingerprint(_Condition):
    """The certificate's or the key's SHA-256 must be this one."""

    __slots__ = ("fingerprint",)

    def __init__(self, fingerprint: str) -> None:
        super().__init__(50, -1)  # hashing the body's strings is the dearest test: last
        self.fingerprint = fingerprint

    def test(self, views: _Views) -> bool:
        return self.fingerprint in views.hashes()


class _RuleFilter:
    """A rule's conditions: the body may match the rule only if every one holds."""

    __slots__ = ("conditions",)

    def __init__(self, conditions: Sequence[_Condition]) -> None:
        # Longest literals first until samples say better; fingerprints last.
        self.conditions = sorted(conditions, key=lambda c: -c.weight)

    def test(self, views: _Views) -> bool:
        return all(condition.test(views) for condition in self.conditions)

    def sample(self, views: _Views) -> bool:
        """`test`, evaluating every condition to count how often each holds, then reorder."""
        result = True
        for condition in self.conditions:
            passed = condition.test(views)
            condition.tests += 1
            condition.passes += passed
            result = result and passed
        self.conditions.sort(key=_Condition.expected_cost)
        return result


def _prefilter(rule: WatchRule) -> _RuleFilter:
    """Conditions that hold whenever `rule` matches; none = cannot tell."""
    conditions: list[_Condition] = []

    def fold(literals: Sequence[str]) -> None:
        for literal in literals:
            for frag in _fold_fragments(literal):
                conditions.append(_Text(frag, fold=True, weight=len(frag)))

    if rule.issuer is not None:
        # Exact, but the same few issuers sign nearly everything: test it last among texts.
        for frag in _exact_fragments(rule.issuer):
            conditions.append(_Text(frag, fold=False, weight=0))
    if rule.san is not None:
        fold(_glob_literals(rule.san))
    elif rule.san_regex is not None:
        literals, ignore_case = _regex_literals(rule.san_regex)
        if ignore_case:
            fold(literals)
        else:
            for literal in literals:
                for frag in _exact_fragments(literal):
                    conditions.append(_Text(frag, fold=False, weight=len(frag)))
    if rule.email is not None:
        fold([rule.email])
    for ext in rule.extensions:
        fold(_glob_literals(ext.glob))
    if rule.artifact_digest is not None:
        conditions.append(_Digest(rule.artifact_digest.partition(":")[2]))
    for fingerprint in (rule.cert_fingerprint, rule.key_fingerprint):
        if fingerprint is not None:
            conditions.append(_Fingerprint(fingerprint))
    return _RuleFilter(conditions)
