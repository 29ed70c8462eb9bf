"""Watch rules: which signing identities to look for in log entries, compiled for matching.

Pure: no IO. `compile_rule` turns one `[[watch]]` table into a `WatchRule`; `monitor.config`
checks what needs the whole file (unique names, that `notify` and `logs` names exist).

Semantics of a rule (matching itself lives in `match`, a later issue):

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
  used as written: add `(?i)` at its start for case-insensitivity.
* `san_regex` is anchored at both ends: "foo" is compiled as `\\A(?:foo)\\Z`, so it does not match
  "xfooy", whichever of `match`, `search` or `fullmatch` a caller uses. A leading global-flags group
  such as `(?i)` is kept in front.
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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from monitor import _fields as f

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
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
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
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class WatchRule:
    """A compiled `[[watch]]` rule. Unset matchers are None / empty.

    Every pattern is anchored at both ends: `pattern.match(s)`, `search(s)` and `fullmatch(s)`
    agree.
    """

    name: str
    issuer: str | None
    any_issuer: bool
    san: str | None
    """The `san` glob as written, if the rule uses one."""
    san_regex: str | None
    """The `san_regex` as written, if the rule uses one."""
    san_pattern: re.Pattern[str] | None
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
    allowed_signer_patterns: tuple[re.Pattern[str], ...]
    """Compiled from `allowed_signers`, same order; match against the SAN or Build Signer URI."""
    search: tuple[str, ...]
    notify: tuple[str, ...]
    """Channel names; empty means every channel."""
    logs: tuple[str, ...]
    """Log names; empty means every log."""

    def applies_to(self, log_name: str) -> bool:
        """Whether entries of log `log_name` are checked against this rule."""
        return not self.logs or log_name in self.logs


def glob_to_pattern(glob: str, *, ignore_case: bool) -> re.Pattern[str]:
    """Compile a glob (`*` = any run of characters, all else literal) to an anchored regex.

    Runs linear-ish in the subject's length, whatever the glob: each literal segment between
    stars is matched at its first occurrence inside an atomic group (leftmost is always the best
    choice for a literal), so there is no catastrophic backtracking on hostile subjects.
    """
    parts = re.split(r"\*+", glob)
    if len(parts) == 1:
        body = re.escape(glob)
    else:
        middle = "".join(f"(?>.*?{re.escape(p)})" for p in parts[1:-1])
        body = f"{re.escape(parts[0])}{middle}.*{re.escape(parts[-1])}"
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(rf"\A{body}\Z", flags)


def regex_to_pattern(regex: str) -> re.Pattern[str]:
    """Compile a user regex anchored at both ends, keeping a leading `(?flags)` group in front.

    Raises `re.error` (positions refer to `regex` as written).
    """
    re.compile(regex)  # errors with positions in the user's own text
    flags = _GLOBAL_FLAGS.match(regex)
    prefix = flags.group(0) if flags else ""
    return re.compile(rf"{prefix}\A(?:{regex[len(prefix) :]})\Z")


def _glob(value: object, where: str) -> str:
    return f.as_str(value, where, what="a glob pattern", max_len=MAX_PATTERN_LENGTH)


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
                pattern=glob_to_pattern(glob, ignore_case=True),
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
        san_pattern = glob_to_pattern(san, ignore_case=True)
    if "san_regex" in raw:
        at = f.key_path(where, "san_regex")
        san_regex = f.as_str(
            raw["san_regex"], at, what="a regular expression", max_len=MAX_PATTERN_LENGTH
        )
        try:
            san_pattern = regex_to_pattern(san_regex)
        except re.error as e:
            position = f" at position {e.pos}" if e.pos is not None else ""
            raise f.error(
                at, f"invalid regular expression in rule {f.echo(name)}: {e.msg}{position}"
            ) from e

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
    patterns = tuple(glob_to_pattern(g, ignore_case=False) for g in allowed)
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
