"""The matcher kinds a `[[watch]]` rule can set, in one table: `MATCHER_KINDS`.

Each kind is one class: the config keys it reads, how it compiles them (`compile`), how it
judges one signer (`checks`), what the raw body must contain if it matches (`conditions`, for
the pre-filter) and which exact values the search index can be asked for (`search_terms`).
Everything else (validation of the whole rule, matching, the pre-filter, index search, `config
check`) iterates over this table: adding a matcher is adding a class here and a row to
`MATCHER_KINDS` (docs/architecture.md). What each key means is docs/configuration.md#watch.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

from monitor.core import fields as f
from monitor.core.watch.patterns import (
    MAX_PATTERN_LENGTH,
    Pattern,
    compile_glob,
    compile_regex,
    read_glob,
)
from monitor.core.watch.prefilter import (
    Condition,
    Digest,
    Fingerprint,
    SanPattern,
    exact_texts,
    fold_texts,
    glob_texts,
    regex_texts,
)
from monitor.core.watch.terms import DIGEST_HEX_LENGTHS, SearchTerm, TermKind

if TYPE_CHECKING:
    from monitor.core.certs import CertificateIdentity
    from monitor.core.entries import Entry, Signer

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
_DOTTED_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]{0,9})){1,30}")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Check:
    """The verdict of one matcher of a rule on one signer (`Matcher.explain`)."""

    matcher: str
    """The rule key: "issuer", "san", "email", "extensions.build_signer_uri", ..."""
    passed: bool
    detail: str
    """What was compared, e.g. "issuer is https://accounts.google.com, not https://..."."""


_IDENTITY_SAN_KINDS = frozenset({"email", "uri", "dns", "othername"})


def identity_values(cert: CertificateIdentity) -> tuple[str, ...]:
    """The SAN values `san`, `san_regex` and `allowed_signers` look at: email, URI, DNS and
    string otherName SANs, in certificate order."""
    return tuple(
        s.value
        for s in cert.sans
        if s.kind in _IDENTITY_SAN_KINDS and not (s.kind == "othername" and s.value[:4] == "hex:")
    )


def _no_cert(matcher: str) -> Check:
    return Check(matcher, False, "the signer has no certificate (a bare public key)")


class RuleMatcher(ABC):
    """One matcher of a compiled rule; its class is one kind of `MATCHER_KINDS`."""

    keys: ClassVar[tuple[str, ...]]
    """The `[[watch]]` keys this kind reads, in the order messages list them."""
    needs_certificate: ClassVar[bool] = True
    """Only a signer with a certificate can match (a bare key never does)."""
    names_identity: ClassVar[bool] = False
    """Matches a certificate identity, which means something only with the issuer that vouched
    for it: a rule that sets it must set `issuer` or `any_issuer = true`."""

    @classmethod
    @abstractmethod
    def compile(cls, raw: Mapping[str, object], where: str, rule: str) -> Self | None:
        """The matcher from a `[[watch]]` table, None when the table sets none of `keys`.

        `where` locates the table, `rule` is its name (both for messages). Raises ConfigError.
        """

    @abstractmethod
    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """The verdict on one signer of `entry`: one `Check` per thing compared."""

    @abstractmethod
    def conditions(self) -> list[Condition]:
        """Pre-filter conditions that hold on the raw body whenever this matcher matches; none
        when that cannot be told from the bytes (the body then always passes)."""

    def search_terms(self) -> tuple[SearchTerm, ...]:
        """Exact values a Rekor v1 search index can be asked for (none by default)."""
        return ()

    @abstractmethod
    def config(self) -> dict[str, object]:
        """The resolved keys, as `config check` shows them."""


class _OneString(RuleMatcher):
    """A kind with one string key, which `read` validates and normalises."""

    what: ClassVar[str]
    """What the string must be, for messages ("a digest")."""
    max_len: ClassVar[int] = 200

    @classmethod
    def compile(cls, raw: Mapping[str, object], where: str, rule: str) -> Self | None:
        """See `RuleMatcher.compile`."""
        (key,) = cls.keys
        if key not in raw:
            return None
        at = f.key_path(where, key)
        return cls.read(f.as_str(raw[key], at, what=cls.what, max_len=cls.max_len), at)

    @classmethod
    @abstractmethod
    def read(cls, text: str, at: str) -> Self:
        """The matcher for the key's string `text`, found at `at`. Raises ConfigError."""


@dataclass(frozen=True)
class IssuerMatcher(RuleMatcher):
    """`issuer`: the certificate's OIDC issuer, compared exactly."""

    keys = ("issuer",)
    issuer: str

    @classmethod
    def compile(cls, raw: Mapping[str, object], where: str, rule: str) -> Self | None:
        """See `RuleMatcher.compile`."""
        issuer = f.opt_str(raw, "issuer", where, what="an issuer URL")
        return None if issuer is None else cls(issuer)

    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """See `RuleMatcher.checks`."""
        cert = signer.certificate
        if cert is None:
            yield _no_cert("issuer")
        elif cert.issuer == self.issuer:
            yield Check("issuer", True, f"issuer = {cert.issuer}")
        elif cert.issuer is None:
            yield Check("issuer", False, f"the certificate names no issuer, want {self.issuer}")
        else:
            yield Check("issuer", False, f"issuer is {cert.issuer}, not {self.issuer}")

    def conditions(self) -> list[Condition]:
        """See `RuleMatcher.conditions`."""
        # Exact, but the same few issuers sign nearly everything: test it last among texts.
        return exact_texts(self.issuer, weight=0)

    def config(self) -> dict[str, object]:
        """See `RuleMatcher.config`."""
        return {"issuer": self.issuer}


@dataclass(frozen=True)
class SanMatcher(RuleMatcher):
    """`san` (a case-insensitive glob) or `san_regex` (RE2): any identity SAN matches."""

    keys = ("san", "san_regex")
    names_identity = True
    glob: str | None
    """The `san` glob as written, None for a `san_regex`."""
    regex: str | None
    """The `san_regex` as written, None for a `san` glob."""
    pattern: Pattern
    """Compiled from `glob` or `regex`."""

    @classmethod
    def compile(cls, raw: Mapping[str, object], where: str, rule: str) -> Self | None:
        """See `RuleMatcher.compile`."""
        if "san" in raw and "san_regex" in raw:
            raise f.error(
                f.key_path(where, "san_regex"),
                "set either san (a glob) or san_regex (a regular expression), not both",
            )
        if "san" in raw:
            at = f.key_path(where, "san")
            glob = read_glob(raw["san"], at)
            return cls(glob, None, compile_glob(glob, at, ignore_case=True))
        if "san_regex" in raw:
            at = f.key_path(where, "san_regex")
            regex = f.as_str(
                raw["san_regex"], at, what="a regular expression", max_len=MAX_PATTERN_LENGTH
            )
            return cls(None, regex, compile_regex(regex, at, rule))
        return None

    @property
    def key(self) -> str:
        """The rule key this matcher came from: "san" or "san_regex"."""
        return "san" if self.glob is not None else "san_regex"

    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """See `RuleMatcher.checks`."""
        cert = signer.certificate
        if cert is None:
            yield _no_cert(self.key)
            return
        shown = self.glob if self.glob is not None else self.regex
        values = identity_values(cert)
        hit = next((v for v in values if self.pattern.match(v)), None)
        how = "matches" if self.glob is not None else "matches regex"
        if hit is not None:
            yield Check(self.key, True, f"san {hit} {how} {shown}")
        else:
            seen = ", ".join(values) or "none"
            yield Check(self.key, False, f"no SAN {how} {shown} (SANs: {seen})")

    def conditions(self) -> list[Condition]:
        """See `RuleMatcher.conditions`: the literals, then the pattern itself on the SANs read
        from the DER (unless the glob is only "*", which every SAN matches)."""
        if self.glob is not None:
            if not self.glob.strip("*"):
                return glob_texts(self.glob)
            return [*glob_texts(self.glob), SanPattern(self.pattern)]
        return [*regex_texts(self.regex or ""), SanPattern(self.pattern)]

    def search_terms(self) -> tuple[SearchTerm, ...]:
        """A glob without `*` is an exact SAN: the index's subject."""
        if self.glob is not None and "*" not in self.glob:
            return (SearchTerm(TermKind.SUBJECT, self.glob),)
        return ()

    def config(self) -> dict[str, object]:
        """See `RuleMatcher.config`."""
        return {self.key: self.glob if self.glob is not None else self.regex}


@dataclass(frozen=True)
class EmailMatcher(_OneString):
    """`email`: an email SAN, compared case-insensitively as a whole."""

    keys = ("email",)
    names_identity = True
    what = "an email address"
    max_len = 254
    email: str
    """Lowercase; compared with `value.lower()`."""

    @classmethod
    def read(cls, text: str, at: str) -> Self:
        """See `_OneString.read`."""
        local, sign, domain = text.rpartition("@")
        if not sign or not local or not domain or any(c.isspace() for c in text):
            raise f.error(
                at, f'expected an email address like "name@example.com", got {f.echo(text)}'
            )
        return cls(text.lower())

    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """See `RuleMatcher.checks`."""
        cert = signer.certificate
        if cert is None:
            yield _no_cert("email")
            return
        emails = cert.emails
        hit = next((e for e in emails if e.lower() == self.email), None)
        if hit is not None:
            yield Check("email", True, f"email = {hit}")
        else:
            seen = ", ".join(emails) or "none"
            yield Check("email", False, f"no email SAN equals {self.email} (emails: {seen})")

    def conditions(self) -> list[Condition]:
        """See `RuleMatcher.conditions`."""
        return fold_texts([self.email])

    def search_terms(self) -> tuple[SearchTerm, ...]:
        """The address itself."""
        return (SearchTerm(TermKind.EMAIL, self.email),)

    def config(self) -> dict[str, object]:
        """See `RuleMatcher.config`."""
        return {"email": self.email}


@dataclass(frozen=True)
class ExtensionMatcher:
    """One `extensions` entry: the certificate extension `oid` must match `pattern`."""

    oid: str
    name: str | None
    """The config name of a Fulcio extension, None when the rule used a dotted OID."""
    glob: str
    pattern: Pattern


@dataclass(frozen=True)
class ExtensionsMatcher(RuleMatcher):
    """`extensions`: Fulcio certificate extensions, each matched by a case-insensitive glob."""

    keys = ("extensions",)
    names_identity = True
    extensions: tuple[ExtensionMatcher, ...]

    @classmethod
    def compile(cls, raw: Mapping[str, object], where: str, rule: str) -> Self | None:
        """See `RuleMatcher.compile`."""
        if "extensions" not in raw:
            return None
        where = f.key_path(where, "extensions")
        table = f.as_table(raw["extensions"], where)
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
                    '; expected a Fulcio extension name such as "build_signer_uri" or a dotted '
                    'OID such as "1.3.6.1.4.1.57264.1.9"'
                )
                raise f.error(at, f"unknown certificate extension{hint}")
            if oid in seen:
                raise f.error(at, f"extension {oid} is already matched by {f.echo(seen[oid])}")
            seen[oid] = key
            glob = read_glob(glob_value, at)
            matchers.append(
                ExtensionMatcher(
                    oid=oid,
                    name=name or _OID_NAMES.get(oid),
                    glob=glob,
                    pattern=compile_glob(glob, at, ignore_case=True),
                )
            )
        return cls(tuple(matchers))

    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """See `RuleMatcher.checks`: one check per extension."""
        cert = signer.certificate
        for ext in self.extensions:
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

    def conditions(self) -> list[Condition]:
        """See `RuleMatcher.conditions`."""
        return [c for ext in self.extensions for c in glob_texts(ext.glob)]

    def config(self) -> dict[str, object]:
        """See `RuleMatcher.config`."""
        return {"extensions": {(e.name or e.oid): e.glob for e in self.extensions}}


@dataclass(frozen=True)
class _FingerprintMatcher(_OneString):
    """A SHA-256 fingerprint (64 lowercase hex digits) that the signer's must equal."""

    what = "a SHA-256 fingerprint"
    fingerprint: str

    @classmethod
    def read(cls, text: str, at: str) -> Self:
        """See `_OneString.read`."""
        norm = text.strip().lower().removeprefix("sha256:").replace(":", "")
        if len(norm) != 64 or not _HEX.fullmatch(norm):
            raise f.error(
                at,
                "expected a hex SHA-256 fingerprint (64 hex digits, colons allowed), "
                f"got {f.echo(text)}",
            )
        return cls(norm)

    @abstractmethod
    def actual(self, signer: Signer) -> str | None:
        """The signer's fingerprint of this kind, None when it has none."""

    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """See `RuleMatcher.checks`."""
        (key,) = self.keys
        actual = self.actual(signer)
        if actual is None:
            yield _no_cert(key)
        elif actual == self.fingerprint:
            yield Check(key, True, f"{key} = {self.fingerprint}")
        else:
            yield Check(key, False, f"{key} is {actual}, not {self.fingerprint}")

    def conditions(self) -> list[Condition]:
        """See `RuleMatcher.conditions`."""
        return [Fingerprint(self.fingerprint)]

    def config(self) -> dict[str, object]:
        """See `RuleMatcher.config`."""
        return {self.keys[0]: self.fingerprint}


@dataclass(frozen=True)
class CertFingerprintMatcher(_FingerprintMatcher):
    """`cert_fingerprint`: SHA-256 of the certificate's DER."""

    keys = ("cert_fingerprint",)

    def actual(self, signer: Signer) -> str | None:
        """See `_FingerprintMatcher.actual`."""
        cert = signer.certificate
        return None if cert is None else cert.fingerprint_sha256


@dataclass(frozen=True)
class KeyFingerprintMatcher(_FingerprintMatcher):
    """`key_fingerprint`: SHA-256 of the public key's DER SubjectPublicKeyInfo."""

    keys = ("key_fingerprint",)
    needs_certificate = False

    def actual(self, signer: Signer) -> str | None:
        """See `_FingerprintMatcher.actual`."""
        return signer.public_key_sha256


@dataclass(frozen=True)
class ArtifactDigestMatcher(_OneString):
    """`artifact_digest`: the digest of the signed artifact the entry records."""

    keys = ("artifact_digest",)
    needs_certificate = False
    what = "a digest"
    digest: str
    """"<algorithm>:<lowercase hex>", e.g. "sha256:9f86..."."""

    @classmethod
    def read(cls, text: str, at: str) -> Self:
        """See `_OneString.read`."""
        algorithm, sep, hexdigits = text.strip().lower().partition(":")
        want = DIGEST_HEX_LENGTHS.get(algorithm)
        if not sep or want is None or len(hexdigits) != want or not _HEX.fullmatch(hexdigits):
            raise f.error(
                at, 'expected "sha256:<64 hex digits>" (or sha384:/sha512:), got ' + f.echo(text)
            )
        return cls(f"{algorithm}:{hexdigits}")

    def checks(self, entry: Entry, signer: Signer) -> Iterator[Check]:
        """See `RuleMatcher.checks`."""
        digest = entry.artifact_digest
        text = f"{digest[0]}:{digest[1]}" if digest else None
        if text == self.digest:
            yield Check("artifact_digest", True, f"artifact_digest = {text}")
        else:
            got = text or "unknown (the entry records no payload digest)"
            yield Check("artifact_digest", False, f"artifact_digest is {got}, not {self.digest}")

    def conditions(self) -> list[Condition]:
        """See `RuleMatcher.conditions`."""
        return [Digest(self.digest.partition(":")[2])]

    def search_terms(self) -> tuple[SearchTerm, ...]:
        """The digest itself: the index's hash."""
        return (SearchTerm(TermKind.HASH, self.digest),)

    def config(self) -> dict[str, object]:
        """See `RuleMatcher.config`."""
        return {"artifact_digest": self.digest}


MATCHER_KINDS: tuple[type[RuleMatcher], ...] = (
    IssuerMatcher,
    SanMatcher,
    EmailMatcher,
    ExtensionsMatcher,
    CertFingerprintMatcher,
    KeyFingerprintMatcher,
    ArtifactDigestMatcher,
)
"""Every matcher kind, in rule key order: the order of a rule's checks, of `explain`'s lines and
of its search terms."""
MATCHER_KEYS: tuple[str, ...] = tuple(key for kind in MATCHER_KINDS for key in kind.keys)
"""Every `[[watch]]` key that is a matcher."""
