"""Compiled watch rules applied to parsed entries: `Matcher` (pure).

`match_entry` returns one `Match` per (rule, signer) that matches, `explain` says for every rule
which matcher passed or failed (for `tlog-monitor inspect`), and `might_match` is the
pre-filter a scanner runs on raw bodies before parsing them (`monitor.core.watch.prefilter`).
How a rule matches a signer, trust included, is docs/configuration.md#how-a-rule-matches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from monitor.core.certs import certificate_id
from monitor.core.entries import Entry, Signer
from monitor.core.instants import from_ms
from monitor.core.watch.matchers import Check, identity_values
from monitor.core.watch.prefilter import PreFilter, RuleFilter
from monitor.core.watch.rules import WatchRule

if TYPE_CHECKING:
    from monitor.core.certs import CertificateIdentity
    from monitor.core.chain import CertificateTrust

CT_API_VERSION = "rfc6962"
"""`Entry.api_version` of the entry `Matcher.match_certificate` matches: a CT log's certificate."""


class MatchOutcome(StrEnum):
    """What a (rule, signer) match means."""

    UNEXPECTED_SIGNER = "unexpected_signer"
    """The rule lists allowed signers and this signer is not one of them: alert, high."""
    IDENTITY_SEEN = "identity_seen"
    """The identity was used (by an allowed signer, or the rule lists none): alert, info."""
    UNTRUSTED = "untrusted"
    """The identity matched, but its certificate does not chain to the log's Fulcio roots and
    the rule lacks `any_issuer`: recorded, never alerted."""
    CERTIFICATE_ISSUED = "certificate_issued"
    """A certificate in a CT log names the identity (by an allowed signer, or the rule lists
    none): alert, info. A CT certificate not allowed is `UNEXPECTED_SIGNER`."""


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
    """The signer's certificate (DER), None for a bare key; a CT precertificate's TBSCertificate."""
    certificate_id: str | None = None
    """`monitor.core.certs.certificate_id` of the certificate (issuer and serial number), shared
    by a precertificate, its final certificate and every Rekor entry using it; None for a key
    and for a certificate that does not chain to a trusted CA (even when an `any_issuer` rule
    counts it), which is never identified across entries or logs."""
    ct_timestamp: int | None = None
    """The CT entry's timestamp (ms) for a CT log's certificate (`Matcher.match_certificate`);
    None for a Rekor entry."""


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


class Matcher:
    """Watch rules, ready to match the entries of one log.

    `rules` are those that apply to the log (`Config.rules_for_log`); `trust` says which
    certificates chain to the log's Fulcio roots (None: no roots known, every certificate is
    untrusted unless a rule has `any_issuer`). Pure and thread-safe apart from the trust cache.
    """

    def __init__(self, rules: Sequence[WatchRule], trust: CertificateTrust | None) -> None:
        self.rules: tuple[WatchRule, ...] = tuple(rules)
        self.trust = trust
        self._prefilter = PreFilter(
            [RuleFilter([c for m in rule.matchers for c in m.conditions()]) for rule in self.rules]
        )

    def might_match(self, body: bytes) -> bool:
        """Whether `match_entry(parse_entry(body))` may be non-empty; False proves it empty.

        Costs a few microseconds on a typical body (see `monitor.core.watch.prefilter`).
        """
        return self._prefilter.might_match(body)

    @property
    def prefilter(self) -> PreFilter:
        """The rules' pre-filter (picklable: a worker process runs it on chunks of bodies,
        `monitor.core.watch.chunk`)."""
        return self._prefilter

    def candidates(self, bodies: Sequence[bytes]) -> list[int]:
        """The positions in `bodies` whose entries `might_match`, in order: the same answer for
        each, computed for the chunk at once (cheaper per entry)."""
        return self._prefilter.select(bodies)

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
                reasons = _rule_passes(rule, entry, signer)
                if reasons is not None:
                    out.append(self._verdict(rule, entry, index, reasons, trusted))
        return out

    def match_certificate(
        self,
        cert: CertificateIdentity,
        *,
        kind: str,
        timestamp: int,
        issuer_key_hash: bytes | None = None,
        precertificate: bytes | None = None,
    ) -> list[Match]:
        """Every rule that matches a certificate of a CT log, one `Match` each.

        `kind` is the CT entry type ("x509_entry", "precert_entry"); a precertificate (`cert`
        read from its TBSCertificate) is trusted only by the signed `precertificate` the log
        served with it and `issuer_key_hash` (`CertificateTrust.is_trusted_precert`), a
        certificate by its signature. The rules judge
        it as the only signer of an entry that records no artifact, so matchers on what only a
        Rekor entry holds (`artifact_digest`) never match. Outcomes: `CERTIFICATE_ISSUED` where a
        Rekor entry would be `IDENTITY_SEEN`, else as for `match_entry`.

        `timestamp` (ms since the epoch) is the CT entry's: the certificate and its CA must be
        valid then. One no datetime can hold is later than any certificate's validity.
        """
        try:
            at = from_ms(timestamp)
        except OverflowError:
            at = datetime.max.replace(tzinfo=UTC)
        signer = Signer(cert, cert.public_key_sha256, None, "x509")
        entry = Entry(kind, CT_API_VERSION, None, (signer,))
        if self.trust is None:
            trusted = False
        elif issuer_key_hash is not None:
            trusted = self.trust.is_trusted_precert(cert, issuer_key_hash, at, precertificate)
        else:
            trusted = self.trust.is_trusted(cert, at)
        out: list[Match] = []
        for rule in self.rules:
            reasons = _rule_passes(rule, entry, signer)
            if reasons is not None:
                match = self._verdict(rule, entry, 0, reasons, trusted)
                outcome = match.outcome
                if outcome is MatchOutcome.IDENTITY_SEEN:
                    outcome = MatchOutcome.CERTIFICATE_ISSUED
                identity = dict(match.identity)
                if issuer_key_hash is not None:
                    # A TBSCertificate's hash is no certificate's fingerprint.
                    identity["cert_fingerprint"] = None
                    identity["tbs_fingerprint"] = cert.fingerprint_sha256
                identity["certificate_id"] = match.certificate_id
                identity["serial"] = f"{cert.serial:x}"
                identity["issuer_dn"] = cert.issuer_dn
                out.append(
                    replace(match, outcome=outcome, identity=identity, ct_timestamp=timestamp)
                )
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
            # Only a verified chain makes issuer and serial number name one certificate: anyone
            # can copy a Fulcio issuer name and serial into a self-made one (any_issuer or not).
            certificate_id=certificate_id(cert) if cert is not None and trusted else None,
        )


def rule_expense(rule: WatchRule) -> str | None:
    """Why `rule` makes a scan dearer than an ordinary rule does (what `config check` says,
    docs/configuration.md#what-makes-a-rule-expensive), None when it does not."""
    return RuleFilter([c for m in rule.matchers for c in m.conditions()]).expense()


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


def _checks(rule: WatchRule, entry: Entry, signer: Signer) -> Iterator[Check]:
    """Every matcher the rule sets, in rule key order, judged on one signer."""
    for matcher in rule.matchers:
        yield from matcher.checks(entry, signer)


def _rule_passes(rule: WatchRule, entry: Entry, signer: Signer) -> list[str] | None:
    """Why every check of `rule` passes on one signer, None when one fails (the checks after
    it are not run: a later matcher's regex never reads a signer an earlier one ruled out)."""
    reasons: list[str] = []
    for check in _checks(rule, entry, signer):
        if not check.passed:
            return None
        reasons.append(check.detail)
    return reasons
