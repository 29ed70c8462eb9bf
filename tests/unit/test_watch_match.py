"""Matching entries against watch rules: `Matcher.match_entry`, `explain` and the outcomes.

Real entries first (the production and staging bundles and a real Rekor v1 entry: rules written
for their identities must match them, and chain to their trust roots), then certgen certificates
for each matcher's edge: issuer exact, whole-value case-insensitive SAN globs, anchored regexes,
emails, extensions by name and OID, fingerprints, digests, allowed signers, several signers, bare
keys, untrusted certificates and the `logs` filter. Last, the pre-filter `might_match`: a
property test of its soundness and the premises of its safety argument. Rule compilation itself
is tested in test_watch_rules.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import re2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from monitor.cli.inspect import load_input
from monitor.config.settings import load_config
from monitor.config.trust_roots import fulcio_trust
from monitor.core.bundle import bundle_spans
from monitor.core.certs import CertificateParseError, _is_pem, parse_certificate
from monitor.core.chain import CertificateTrust
from monitor.core.entries import Entry, parse_entry
from monitor.core.errors import ConfigError
from monitor.core.watch.match import Match, Matcher, MatchOutcome
from monitor.core.watch.matchers import identity_values
from monitor.core.watch.prefilter import (
    _CERT_DIGITS,
    _MAX_SAN_EXTENSIONS,
    _MAX_SEARCHES,
    _PEM_HINT,
    _PEM_NEEDLES,
    _SAN_OID,
    _SAN_OID_CORES,
    _UNSAFE_FOLD,
    _WARMUP,
    Views,
    _b64_digits,
    _b64_render,
    _base64_sans,
    _chunk_search,
    _decode_strings,
    _san_values,
    _Text,
)
from monitor.core.watch.rules import WatchRule, compile_rule
from monitor.sandbox.bodies import BodyFactory, BodyKind
from monitor.sandbox.ca import Identity, LocalCA
from monitor.sandbox.storage import encode_bundle
from tests.unit import certgen as g

GITHUB = "https://token.actions.githubusercontent.com"
GOOGLE = "https://accounts.google.com"
REPO = "https://github.com/example/project"
RELEASE = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.0"
CI = f"{REPO}/.github/workflows/ci.yml@refs/heads/main"
SEEN, UNEXPECTED, UNTRUSTED = (
    MatchOutcome.IDENTITY_SEEN,
    MatchOutcome.UNEXPECTED_SIGNER,
    MatchOutcome.UNTRUSTED,
)


def rule(**raw: object) -> WatchRule:
    return compile_rule({"name": "r", **raw}, "test: watch[0]")


def outcomes(matches: Sequence[Match]) -> list[tuple[int, MatchOutcome]]:
    return [(m.signer_index, m.outcome) for m in matches]


# --- real entries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Real:
    entry: Entry
    at: dt.datetime | None
    body: bytes


def real(real_data: Path, name: str) -> Real:
    loaded = load_input((real_data / name).read_bytes())
    at = (
        dt.datetime.fromtimestamp(loaded.integrated_time, dt.UTC)
        if loaded.integrated_time
        else None
    )
    return Real(parse_entry(loaded.body), at, loaded.body)


PYTHON = "sigstore-bundles/Python-3.12.5.tgz.sigstore"
RFC8785 = "sigstore-bundles/bundle_v3_github.whl.sigstore"
STAGING_V2 = "sigstore-bundles/staging-rekor-v2.txt.sigstore.json"
STAGING_V2_DSSE = "sigstore-bundles/a.dsse.staging-rekor-v2.txt.sigstore.json"
OTHERNAME = "more-bundles/sigstore-go/othername.sigstore.json"
MANAGED_KEY = "more-bundles/conformance/managed-key-happy-path.json"
REKOR_V1_ENTRY = "rekor-production/sidekick_rekor-api-log-entry.json"
RFC8785_SAN = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)

REAL_CASES: list[tuple[str, str, dict[str, object], MatchOutcome | None]] = [
    # (fixture, trust root, rule, outcome: None = no match)
    (PYTHON, "production", {"issuer": GOOGLE, "email": "Thomas@Python.ORG"}, SEEN),
    (PYTHON, "production", {"issuer": GOOGLE, "san": "*@PYTHON.org"}, SEEN),
    (PYTHON, "production", {"issuer": GOOGLE, "san_regex": r"(?i)THOMAS@python\.org"}, SEEN),
    (PYTHON, "production", {"issuer": GOOGLE, "san_regex": r"THOMAS@python\.org"}, None),
    (PYTHON, "production", {"issuer": GOOGLE, "san_regex": r"thomas@python"}, None),
    (PYTHON, "production", {"issuer": GITHUB, "email": "thomas@python.org"}, None),
    (PYTHON, "production", {"issuer": GOOGLE + "/", "email": "thomas@python.org"}, None),
    (PYTHON, "production", {"any_issuer": True, "email": "thomas@python.org"}, SEEN),
    (PYTHON, "staging", {"issuer": GOOGLE, "email": "thomas@python.org"}, UNTRUSTED),
    (
        PYTHON,
        "production",
        {
            "artifact_digest": "SHA256:"
            "38DC4E2C261D49C661196066EDBFB70FDB16BE4A79CC8220C224DFEB5636D405"
        },
        SEEN,
    ),
    (
        PYTHON,
        "production",
        {
            "cert_fingerprint": "FC:6B:23:5A:8F:C9:C7:C3:8A:AA:02:1C:8C:05:E7:0A:20:00:30:24:"
            "E3:F3:6B:10:37:D3:EA:8A:14:CF:16:64"
        },
        SEEN,
    ),
    (
        PYTHON,
        "production",
        {"email": "thomas@python.org", "issuer": GOOGLE, "allowed_signers": ["*@python.org"]},
        SEEN,
    ),
    (
        PYTHON,
        "production",
        {"email": "thomas@python.org", "issuer": GOOGLE, "allowed_signers": ["*@PYTHON.org"]},
        UNEXPECTED,  # allowed_signers are case-sensitive
    ),
    (
        RFC8785,
        "production",
        {
            "issuer": GITHUB,
            "san": "https://github.com/trailofbits/rfc8785.py/.github/workflows/*",
            "allowed_signers": [
                "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/*"
            ],
        },
        SEEN,
    ),
    (
        RFC8785,
        "production",
        {
            "issuer": GITHUB,
            "san": "https://github.com/trailofbits/*",
            "allowed_signers": [
                "https://github.com/trailofbits/rfc8785.py/.github/workflows/ci.yml@*"
            ],
        },
        UNEXPECTED,
    ),
    (
        RFC8785,
        "production",
        {"issuer": GITHUB, "san": "https://github.com/trailofbits/rfc8785*/ci.yml@*"},
        None,
    ),
    (RFC8785, "production", {"issuer": GITHUB, "san": "https://github.com/trailofbits"}, None),
    (
        RFC8785,
        "production",
        {
            "issuer": GITHUB,
            "extensions": {
                "source_repository_uri": "https://github.com/trailofbits/rfc8785.py",
                "source_repository_ref": "refs/tags/v*",
                "1.3.6.1.4.1.57264.1.20": "release",  # build_trigger, by OID
                "github_workflow_repository": "TrailOfBits/*",  # legacy raw value, any case
            },
        },
        SEEN,
    ),
    (RFC8785, "production", {"issuer": GITHUB, "extensions": {"build_trigger": "push"}}, None),
    (
        RFC8785,
        "production",
        {"key_fingerprint": "a68bb9531942c2de74e63657568b264c463daa91b61fe944d5b355a30e9fbb6d"},
        SEEN,
    ),
    (RFC8785, "staging", {"issuer": GITHUB, "san": "*"}, UNTRUSTED),
    (
        STAGING_V2,
        "staging",
        {"issuer": "https://github.com/login/oauth", "email": "JKU@goto.fi"},
        SEEN,
    ),
    (
        STAGING_V2,
        "production",
        {"issuer": "https://github.com/login/oauth", "email": "jku@goto.fi"},
        UNTRUSTED,
    ),
    (STAGING_V2_DSSE, "staging", {"issuer": GITHUB, "san": BEACON.upper()}, SEEN),
    (OTHERNAME, "staging", {"issuer": "http://oidc.local:8080", "san": "foo!*"}, UNTRUSTED),
    (OTHERNAME, "staging", {"any_issuer": True, "san_regex": r"foo!oidc\.local"}, SEEN),
    (
        MANAGED_KEY,
        "production",
        {"key_fingerprint": "4cb32c4837c6dda8cfb1681efb3fef5f94ffce5b979e6bdb9139302c857af139"},
        SEEN,  # a bare key is not subject to the Fulcio chain
    ),
    (MANAGED_KEY, "production", {"issuer": GITHUB}, None),
    (
        REKOR_V1_ENTRY,
        "production",
        {
            "artifact_digest": "sha256:"
            "5447385cf9b9204a8a4e5ef1b971f403349b989c9870da560259768d53ebd3d0",
            "allowed_signers": ["*"],
        },
        UNEXPECTED,  # a bare key can never be among allowed_signers
    ),
]


@pytest.mark.parametrize(
    ("fixture", "root", "raw", "want"),
    REAL_CASES,
    ids=[f"{Path(c[0]).name}-{i}" for i, c in enumerate(REAL_CASES)],
)
def test_rules_for_real_identities(
    real_data: Path,
    fixture: str,
    root: str,
    raw: dict[str, object],
    want: MatchOutcome | None,
) -> None:
    item = real(real_data, fixture)
    matcher = Matcher([rule(**raw)], fulcio_trust(root))
    found = matcher.match_entry(item.entry, at=item.at)
    assert outcomes(found) == ([] if want is None else [(0, want)])
    if found:
        # A rule that matches must get past the pre-filter on the entry's raw body.
        assert matcher.might_match(item.body)


def test_real_match_carries_reasons_identity_and_certificate(real_data: Path) -> None:
    item = real(real_data, RFC8785)
    r = rule(
        issuer=GITHUB,
        san="https://github.com/trailofbits/*",
        allowed_signers=["https://github.com/trailofbits/*/release.yml@refs/tags/*"],
    )
    (found,) = Matcher([r], fulcio_trust("production")).match_entry(item.entry, at=item.at)
    assert found.rule == "r" and found.outcome is SEEN
    assert found.reasons == (
        f"issuer = {GITHUB}",
        f"san {RFC8785_SAN} matches https://github.com/trailofbits/*",
        f"signer {RFC8785_SAN} matches allowed_signers "
        "https://github.com/trailofbits/*/release.yml@refs/tags/*",
    )
    assert found.identity["sans"] == [f"uri:{RFC8785_SAN}"]
    assert found.identity["build_signer_uri"] == RFC8785_SAN
    assert found.identity["artifact_digest"] == (
        "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
    )
    cert = item.entry.signers[0].certificate
    assert cert is not None and found.certificate == cert.der


def test_real_certificate_outside_its_validity_is_untrusted(real_data: Path) -> None:
    item = real(real_data, PYTHON)
    assert item.at is not None
    matcher = Matcher(
        [rule(issuer=GOOGLE, email="thomas@python.org")],
        fulcio_trust("production"),
    )
    assert outcomes(matcher.match_entry(item.entry, at=item.at)) == [(0, SEEN)]
    late = item.at + dt.timedelta(hours=1)  # Fulcio certificates live ten minutes
    assert outcomes(matcher.match_entry(item.entry, at=late)) == [(0, UNTRUSTED)]


# --- certgen certificates: one matcher at a time --------------------------------------------

CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.dev"),
        x509.NameAttribute(NameOID.COMMON_NAME, "sigstore-intermediate"),
    ]
)


def certgen_trust() -> CertificateTrust:
    """A CA certificate for certgen's CA key and issuer name, so certgen leaves chain to it."""
    key = g.ca_key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(CA_NAME)
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(g.NOT_BEFORE - dt.timedelta(days=1))
        .not_valid_after(g.NOT_BEFORE + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    return CertificateTrust([ca], source="certgen CA")


TRUST = certgen_trust()


def self_signed(sans: Sequence[x509.GeneralName], extensions: Mapping[str, bytes]) -> bytes:
    """A leaf naming the same identity, signed by its own key under the CA's name: spam."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(g.NOT_BEFORE)
        .not_valid_after(g.NOT_BEFORE + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=True)
    )
    for oid, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
    return g.cert_pem(builder.sign(key, hashes.SHA256()))


def workflow_exts(uri: str, **values: str) -> dict[str, bytes]:
    named = {"build_signer_uri": uri, **values}
    oids = {name: oid for name, oid in _FULCIO.items()}
    return g.fulcio_extensions(issuer=GITHUB, values={oids[k]: v for k, v in named.items()})


_FULCIO = {
    "build_signer_uri": "1.3.6.1.4.1.57264.1.9",
    "source_repository_ref": "1.3.6.1.4.1.57264.1.14",
    "build_trigger": "1.3.6.1.4.1.57264.1.20",
    "github_workflow_ref": "1.3.6.1.4.1.57264.1.6",
}


def uri_cert(uri: str, **values: str) -> bytes:
    return g.cert_pem(
        g.make_certificate(
            sans=[x509.UniformResourceIdentifier(uri)], extensions=workflow_exts(uri, **values)
        )
    )


def email_cert(email: str, issuer: str = GOOGLE) -> bytes:
    return g.cert_pem(
        g.make_certificate(
            sans=[x509.RFC822Name(email)], extensions=g.fulcio_extensions(issuer=issuer)
        )
    )


def entry_of(*key_pems: bytes) -> Entry:
    """A v1 hashedrekord for one signer, a v1 dsse for several."""
    body = g.hashedrekord_v001(key_pems[0]) if len(key_pems) == 1 else g.dsse_v001(key_pems)
    return parse_entry(g.encode(body))


def match(raw: Mapping[str, object], *key_pems: bytes) -> list[tuple[int, MatchOutcome]]:
    return outcomes(Matcher([rule(**raw)], TRUST).match_entry(entry_of(*key_pems)))


ONE_SEEN = [(0, SEEN)]

CASES: list[tuple[str, dict[str, object], bytes, list[tuple[int, MatchOutcome]]]] = [
    # issuer: exact, case and trailing characters count
    ("issuer exact", {"issuer": GITHUB}, uri_cert(RELEASE), ONE_SEEN),
    ("issuer case", {"issuer": GITHUB.upper()}, uri_cert(RELEASE), []),
    ("issuer prefix", {"issuer": GITHUB[:-1]}, uri_cert(RELEASE), []),
    ("issuer absent", {"issuer": GITHUB}, g.cert_pem(g.make_certificate(extensions={})), []),
    # san glob: whole value, case-insensitive
    ("san glob", {"issuer": GITHUB, "san": f"{REPO}/*"}, uri_cert(RELEASE), ONE_SEEN),
    (
        "san glob any case",
        {"issuer": GITHUB, "san": f"{REPO.upper()}/*"},
        uri_cert(RELEASE),
        ONE_SEEN,
    ),
    (
        "san glob repo-evil",
        {"issuer": GITHUB, "san": f"{REPO}/*"},
        uri_cert(f"{REPO}-evil/.github/workflows/release.yml@refs/tags/v1"),
        [],
    ),
    ("san glob no prefix match", {"issuer": GITHUB, "san": REPO}, uri_cert(RELEASE), []),
    (
        "san glob no suffix match",
        {"issuer": GITHUB, "san": "*/release.yml"},
        uri_cert(RELEASE),
        [],
    ),
    (
        "san glob email SAN",
        {"issuer": GOOGLE, "san": "*@example.COM"},
        email_cert("a@example.com"),
        ONE_SEEN,
    ),
    # san_regex: anchored at both ends, case as written
    ("regex", {"issuer": GITHUB, "san_regex": f"{REPO}/.*"}, uri_cert(RELEASE), ONE_SEEN),
    ("regex substring", {"issuer": GITHUB, "san_regex": "release"}, uri_cert(RELEASE), []),
    ("regex unanchored end", {"issuer": GITHUB, "san_regex": REPO}, uri_cert(RELEASE), []),
    ("regex case", {"issuer": GITHUB, "san_regex": f"{REPO.upper()}/.*"}, uri_cert(RELEASE), []),
    (
        "regex (?i)",
        {"issuer": GITHUB, "san_regex": f"(?i){REPO.upper()}/.*"},
        uri_cert(RELEASE),
        ONE_SEEN,
    ),
    (
        "regex alternation",
        {"issuer": GITHUB, "san_regex": "nothing|release"},
        uri_cert(RELEASE),
        [],
    ),
    # email: case-insensitive, whole value, email SANs only
    (
        "email",
        {"issuer": GOOGLE, "email": "Alice@Example.com"},
        email_cert("aLiCe@example.COM"),
        ONE_SEEN,
    ),
    (
        "email whole",
        {"issuer": GOOGLE, "email": "alice@example.com"},
        email_cert("malice@example.com"),
        [],
    ),
    ("email not a URI", {"issuer": GITHUB, "email": "a@b.c"}, uri_cert("mailto:a@b.c"), []),
    # extensions: by name, by OID, legacy raw values, absent ones
    (
        "extension by name",
        {"issuer": GITHUB, "extensions": {"source_repository_ref": "refs/tags/*"}},
        uri_cert(RELEASE, source_repository_ref="refs/tags/v1.0.0"),
        ONE_SEEN,
    ),
    (
        "extension by OID",
        {"issuer": GITHUB, "extensions": {"1.3.6.1.4.1.57264.1.20": "PUSH"}},
        uri_cert(RELEASE, build_trigger="push"),
        ONE_SEEN,
    ),
    (
        "extension legacy raw",
        {"issuer": GITHUB, "extensions": {"github_workflow_ref": "refs/tags/v1*"}},
        uri_cert(RELEASE, github_workflow_ref="refs/tags/v1.0.0"),
        ONE_SEEN,
    ),
    (
        "extension mismatch",
        {"issuer": GITHUB, "extensions": {"build_trigger": "release"}},
        uri_cert(RELEASE, build_trigger="push"),
        [],
    ),
    (
        "extension absent",
        {"issuer": GITHUB, "extensions": {"build_trigger": "*"}},
        uri_cert(RELEASE),
        [],
    ),
    (
        "extension outside the Fulcio arc",
        {"issuer": GITHUB, "extensions": {"2.5.29.37": "*"}},  # extendedKeyUsage: never read
        uri_cert(RELEASE),
        [],
    ),
    (
        "extension undecodable",
        {"issuer": GITHUB, "extensions": {"build_trigger": "*"}},
        g.cert_pem(
            g.make_certificate(
                sans=[x509.UniformResourceIdentifier(RELEASE)],
                extensions=g.fulcio_extensions(raw={_FULCIO["build_trigger"]: b"push"}),
            )
        ),
        [],
    ),
    # allowed_signers: SAN or Build Signer URI, case-sensitive
    (
        "allowed by SAN",
        {
            "issuer": GITHUB,
            "san": f"{REPO}/*",
            "allowed_signers": [f"{REPO}/.github/workflows/release.yml@*"],
        },
        uri_cert(RELEASE),
        ONE_SEEN,
    ),
    (
        "not allowed",
        {
            "issuer": GITHUB,
            "san": f"{REPO}/*",
            "allowed_signers": [f"{REPO}/.github/workflows/release.yml@*"],
        },
        uri_cert(CI),
        [(0, UNEXPECTED)],
    ),
    (
        "allowed is case-sensitive",
        {"issuer": GITHUB, "san": f"{REPO}/*", "allowed_signers": [RELEASE.upper()]},
        uri_cert(RELEASE),
        [(0, UNEXPECTED)],
    ),
    (
        "allowed by build_signer_uri",
        {
            "issuer": GITHUB,
            "extensions": {"source_repository_ref": "refs/tags/*"},
            "allowed_signers": [f"{REPO}/.github/workflows/reusable.yml@*"],
        },
        g.cert_pem(
            g.make_certificate(
                sans=[x509.UniformResourceIdentifier(RELEASE)],
                extensions=workflow_exts(
                    f"{REPO}/.github/workflows/reusable.yml@refs/heads/main",
                    source_repository_ref="refs/tags/v1.0.0",
                ),
            )
        ),
        ONE_SEEN,
    ),
    # untrusted: self-signed spam naming the identity
    (
        "self-signed",
        {"issuer": GOOGLE, "email": "security@example.com"},
        self_signed([x509.RFC822Name("security@example.com")], g.fulcio_extensions(issuer=GOOGLE)),
        [(0, UNTRUSTED)],
    ),
    (
        "self-signed, any_issuer",
        {"any_issuer": True, "email": "security@example.com"},
        self_signed([x509.RFC822Name("security@example.com")], g.fulcio_extensions(issuer=GOOGLE)),
        ONE_SEEN,
    ),
    (
        "self-signed, any_issuer, not allowed",
        {"any_issuer": True, "email": "security@example.com", "allowed_signers": ["x@example.com"]},
        self_signed([x509.RFC822Name("security@example.com")], g.fulcio_extensions(issuer=GOOGLE)),
        [(0, UNEXPECTED)],
    ),
    (
        "self-signed, not allowed: still only untrusted",
        {"issuer": GOOGLE, "email": "security@example.com", "allowed_signers": ["x@example.com"]},
        self_signed([x509.RFC822Name("security@example.com")], g.fulcio_extensions(issuer=GOOGLE)),
        [(0, UNTRUSTED)],
    ),
]


@pytest.mark.parametrize(
    ("raw", "key_pem", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matchers(
    raw: dict[str, object], key_pem: bytes, want: list[tuple[int, MatchOutcome]]
) -> None:
    assert match(raw, key_pem) == want


def test_fingerprints_and_digest() -> None:
    cert = g.make_certificate(sans=[x509.RFC822Name("a@example.com")])
    pem = g.cert_pem(cert)
    cert_fp = hashlib.sha256(g.cert_der(cert)).hexdigest()
    key_fp = hashlib.sha256(g.spki_der(cert.public_key())).hexdigest()
    assert match({"cert_fingerprint": cert_fp}, pem) == ONE_SEEN
    assert match({"cert_fingerprint": key_fp}, pem) == []
    assert match({"key_fingerprint": key_fp.upper()}, pem) == ONE_SEEN
    assert match({"key_fingerprint": cert_fp}, pem) == []
    assert match({"artifact_digest": f"sha256:{g.DIGEST}"}, pem) == ONE_SEEN
    assert match({"artifact_digest": "sha256:" + "0" * 64}, pem) == []
    assert match({"artifact_digest": "sha512:" + g.DIGEST * 2}, pem) == []
    # Matchers AND together.
    assert (
        match({"key_fingerprint": key_fp, "artifact_digest": f"sha256:{g.DIGEST}"}, pem) == ONE_SEEN
    )
    assert match({"key_fingerprint": key_fp, "artifact_digest": "sha256:" + "0" * 64}, pem) == []


def test_every_signer_of_an_entry_is_matched_on_its_own() -> None:
    release, ci, other = uri_cert(RELEASE), uri_cert(CI), email_cert("bystander@example.com")
    r = {"issuer": GITHUB, "san": f"{REPO}/*", "allowed_signers": [f"{REPO}/*/release.yml@*"]}
    assert match(r, other, ci, release) == [(1, UNEXPECTED), (2, SEEN)]
    assert match(r, other, other) == []
    # Two rules, two signers: one match per (rule, signer), signers in entry order.
    rules = [rule(**r), compile_rule({"name": "any-google", "issuer": GOOGLE}, "test")]
    found = Matcher(rules, TRUST).match_entry(entry_of(release, other))
    assert [(m.rule, m.signer_index, m.outcome) for m in found] == [
        ("r", 0, SEEN),
        ("any-google", 1, SEEN),
    ]
    assert found[1].identity["sans"] == ["email:bystander@example.com"]


def test_bare_key_signers_match_only_key_and_digest_rules() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = g.spki_pem(key)
    key_fp = hashlib.sha256(g.spki_der(key)).hexdigest()
    assert match({"key_fingerprint": key_fp}, pem) == ONE_SEEN
    assert match({"artifact_digest": f"sha256:{g.DIGEST}"}, pem) == ONE_SEEN
    for raw in (
        {"issuer": GITHUB},
        {"any_issuer": True, "san": "*"},
        {"any_issuer": True, "email": "a@b.c"},
        {"any_issuer": True, "extensions": {"build_trigger": "*"}},
        {"cert_fingerprint": key_fp},
    ):
        assert match(raw, pem) == [], raw
    # Not subject to the Fulcio chain even with no roots at all; never an allowed signer.
    found = Matcher([rule(key_fingerprint=key_fp, allowed_signers=["*"])], None).match_entry(
        entry_of(pem)
    )
    assert outcomes(found) == [(0, UNEXPECTED)]
    assert found[0].reasons[-1] == "a bare public key cannot be among allowed_signers"
    assert found[0].certificate is None
    v2 = parse_entry(g.encode(g.hashedrekord_v002(g.v2_verifier(key=g.spki_der(key)))))
    assert outcomes(Matcher([rule(key_fingerprint=key_fp)], None).match_entry(v2)) == ONE_SEEN


def test_no_fulcio_roots_means_untrusted_unless_any_issuer() -> None:
    pem = email_cert("a@example.com")
    found = Matcher([rule(issuer=GOOGLE)], None).match_entry(entry_of(pem))
    assert outcomes(found) == [(0, UNTRUSTED)]
    assert "no Fulcio roots are known for this log" in found[0].reasons[-1]
    found = Matcher([rule(any_issuer=True, email="a@example.com")], None).match_entry(entry_of(pem))
    assert outcomes(found) == ONE_SEEN
    assert found[0].reasons[-1].endswith("counted because any_issuer = true")


def test_integration_time_outside_the_leaf_validity_is_untrusted() -> None:
    entry = entry_of(email_cert("a@example.com"))
    matcher = Matcher([rule(issuer=GOOGLE)], TRUST)
    inside = g.NOT_BEFORE + dt.timedelta(minutes=5)
    assert outcomes(matcher.match_entry(entry, at=inside)) == ONE_SEEN
    assert outcomes(matcher.match_entry(entry, at=inside.replace(tzinfo=None))) == ONE_SEEN
    for outside in (g.NOT_BEFORE - dt.timedelta(seconds=1), g.NOT_BEFORE + dt.timedelta(hours=1)):
        assert outcomes(matcher.match_entry(entry, at=outside)) == [(0, UNTRUSTED)]


def test_logs_filter_selects_the_rules_a_log_sees(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f"""
[[log]]
name = "rekor"
type = "rekor-v1"
url = "https://rekor.sigstore.dev"
trust_root = "production"

[[log]]
name = "tiles"
type = "tiles"
url = "https://log2025-1.rekor.sigstore.dev"
trust_root = "production"

[[watch]]
name = "everywhere"
issuer = "{GOOGLE}"

[[watch]]
name = "tiles-only"
issuer = "{GOOGLE}"
logs = ["tiles"]
"""
    )
    config = load_config(tmp_path / "config.toml")
    entry = entry_of(email_cert("a@example.com"))
    seen = {
        log: [m.rule for m in Matcher(config.rules_for_log(log), TRUST).match_entry(entry)]
        for log in ("rekor", "tiles")
    }
    assert seen == {"rekor": ["everywhere"], "tiles": ["everywhere", "tiles-only"]}


# --- explain -------------------------------------------------------------------------------


def test_explain_gives_every_matcher_and_the_first_failure() -> None:
    entry = entry_of(uri_cert(CI, build_trigger="push"))
    r = rule(
        issuer=GITHUB,
        san=f"{REPO}/*",
        extensions={"build_trigger": "release"},
        allowed_signers=[f"{REPO}/*/release.yml@*"],
    )
    (ev,) = Matcher([r], TRUST).explain(entry)
    assert ev.match is None
    assert [(c.matcher, c.passed) for c in ev.checks] == [
        ("issuer", True),
        ("san", True),
        ("extensions.build_trigger", False),
    ]
    assert ev.first_failure is not None
    assert ev.first_failure.detail == "build_trigger is push, does not match release"

    (ok,) = Matcher([rule(issuer=GITHUB, san=f"{REPO}/*")], TRUST).explain(entry)
    assert ok.first_failure is None and ok.match is not None and ok.match.outcome is SEEN
    # explain and match_entry agree.
    assert Matcher([rule(issuer=GITHUB, san=f"{REPO}/*")], TRUST).match_entry(entry) == [ok.match]


def test_explain_names_what_a_bare_key_lacks() -> None:
    pem = g.spki_pem(ec.generate_private_key(ec.SECP256R1()))
    (ev,) = Matcher([rule(issuer=GITHUB)], TRUST).explain(entry_of(pem))
    assert ev.first_failure is not None
    assert ev.first_failure.detail == "the signer has no certificate (a bare public key)"


# --- the pre-filter: might_match(body) False proves match_entry(...) empty -----------------
# Property: identities with mixed case, unicode and odd characters, in real certificates inside
# real entry bodies (v1 hashedrekord with the PEM or the DER in base64, v2 hashedrekord with the
# DER, v1 and v2 dsse with two signers), against rules derived from or near them. Then the
# premises of the safety argument over all of Unicode, and a (not timed) check that typical
# non-matching bodies are rejected.

BUILD_SIGNER_URI = "1.3.6.1.4.1.57264.1.9"  # DER UTF8String
WORKFLOW_REF = "1.3.6.1.4.1.57264.1.6"  # legacy: raw UTF-8 bytes

# Characters that stress the pre-filter: ASCII letters of both cases (the case bit), the letters
# that non-ASCII characters equal case-insensitively and those characters, JSON and regex
# metacharacters, and other non-ASCII letters (the latter only where certificates allow them).
ASCII_CHARS = "abcdefgIKSiksXYZ0189@./:-_*?[](){}|+^$\\\"' %#~"
UNICODE_CHARS = ASCII_CHARS + "\u212a\u017f\u0131\u0130éßΩÅ\u00b5\u2126\u212b€😀"
CONFUSABLE = {
    "k": "\u212a",
    "K": "\u212a",
    "s": "\u017f",
    "S": "\u017f",
    "i": "\u0131",
    "I": "\u0130",
}


# --- building identities, certificates and bodies --------------------------------------------


@st.composite
def variant(draw: st.DrawFn, base: str, *, unicode: bool) -> str:
    """`base` with some characters' case flipped, and (where allowed) confusables swapped in."""
    out = []
    for ch in base:
        how = draw(st.sampled_from(["keep", "keep", "swap", "confusable"]))
        if how == "swap":
            out.append(ch.swapcase() if len(ch.swapcase()) == 1 else ch)
        elif how == "confusable" and unicode and ch in CONFUSABLE:
            out.append(CONFUSABLE[ch])
        else:
            out.append(ch)
    return "".join(out)


@st.composite
def near(draw: st.DrawFn, base: str) -> str:
    """A rule literal near `base`: a case variant, maybe one character changed, inserted or
    removed (a near miss that must not match, which is fine: soundness is one-sided)."""
    text = draw(variant(base, unicode=True))
    if text and draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + draw(st.sampled_from(["", "x", "/", "K"])) + text[i + 1 :]
    return text


@st.composite
def glob_from(draw: st.DrawFn, text: str) -> str:
    """A glob for `text`: some substrings replaced by "*" (each match stays a match)."""
    if not text or draw(st.booleans()):
        return text
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, min(len(text), i + 6)))
    glob = text[:i] + "*" + text[j:]
    if draw(st.booleans()) and len(glob) > 2:
        k = draw(st.integers(0, len(glob)))
        glob = glob[:k] + "*" + glob[k:]
    return glob


@st.composite
def regex_from(draw: st.DrawFn, text: str) -> str:
    """A san_regex for `text`: escaped pieces around ".*" or "[^/]*", maybe (?i), maybe grouped
    or with a quantified character, as people write them."""
    cut = draw(st.integers(0, len(text)))
    left, right = re.escape(text[:cut]), re.escape(text[cut:])
    middle = draw(st.sampled_from(["", ".*", "(?:.*)", "[^\\n]*", "(x)?"]))
    body = f"{left}{middle}{right}"
    if draw(st.booleans()):
        body = f"(?:{body})"
    return ("(?i)" if draw(st.booleans()) else "") + body


BODIES: dict[str, Callable[[list[x509.Certificate]], bytes]] = {
    "v1 hashedrekord, PEM": lambda certs: g.encode(g.hashedrekord_v001(g.cert_pem(certs[0]))),
    "v1 hashedrekord, DER": lambda certs: g.encode(g.hashedrekord_v001(g.cert_der(certs[0]))),
    "v2 hashedrekord, DER": lambda certs: g.encode(
        g.hashedrekord_v002(g.v2_verifier(cert=g.cert_der(certs[0])))
    ),
    "v1 dsse, two signers": lambda certs: g.encode(g.dsse_v001([g.cert_pem(c) for c in certs])),
    "v2 dsse, two signers": lambda certs: g.encode(
        g.dsse_v002([g.v2_verifier(cert=g.cert_der(c)) for c in certs])
    ),
}
_OTHER = g.make_certificate(sans=[x509.RFC822Name("bystander@example.org")])


def _san(kind: str, value: str) -> x509.GeneralName:
    if kind == "email":
        return x509.RFC822Name(value)
    if kind == "uri":
        return x509.UniformResourceIdentifier(value)
    if kind == "dns":
        return x509.DNSName(value)
    return x509.OtherName(x509.ObjectIdentifier(g.OID_USERNAME), g.der_utf8(value))


@st.composite
def case(draw: st.DrawFn) -> tuple[dict[str, object], bytes, str]:
    """(raw rule, body, description) for one generated identity and a rule derived from it."""
    kind = draw(st.sampled_from(["email", "uri", "dns", "othername"]))
    unicode = kind == "othername"
    base = draw(
        st.text(st.sampled_from(UNICODE_CHARS if unicode else ASCII_CHARS), min_size=1, max_size=40)
    )
    san_value = draw(variant(base, unicode=unicode))
    issuer_base = draw(
        st.sampled_from([GITHUB, "https://accounts.google.com", "https://ÿ.example"])
    )
    issuer = draw(st.sampled_from([issuer_base, draw(variant(issuer_base, unicode=True))]))
    ext_base = draw(st.text(st.sampled_from(UNICODE_CHARS), min_size=1, max_size=40))
    ext_value = draw(variant(ext_base, unicode=True))
    ext_oid = draw(st.sampled_from([BUILD_SIGNER_URI, WORKFLOW_REF]))
    extensions = g.fulcio_extensions(
        issuer=issuer,
        legacy_issuer=draw(st.sampled_from([None, issuer])),
        values={ext_oid: ext_value},
    )
    try:
        cert = g.make_certificate(sans=[_san(kind, san_value)], extensions=extensions)
    except ValueError:
        reject()  # cryptography refuses the name (e.g. an empty email)
    certs = [cert, _OTHER] if draw(st.booleans()) else [_OTHER, cert]
    shape = draw(st.sampled_from(sorted(BODIES)))
    body = BODIES[shape](certs)

    matcher = draw(
        st.sampled_from(
            ["san", "san_regex", "email", "extension", "issuer", "cert_fp", "key_fp", "digest"]
        )
    )
    raw: dict[str, object] = {"name": "r"}
    if draw(st.booleans()):
        raw["issuer"] = draw(st.sampled_from([issuer_base, issuer, draw(near(issuer))]))
    else:
        raw["any_issuer"] = True
    if matcher == "san":
        raw["san"] = draw(glob_from(draw(near(base))))
    elif matcher == "san_regex":
        raw["san_regex"] = draw(regex_from(draw(near(base))))
    elif matcher == "email":
        raw["email"] = draw(near(base))
    elif matcher == "extension":
        name = "build_signer_uri" if ext_oid == BUILD_SIGNER_URI else "github_workflow_ref"
        key = draw(st.sampled_from([name, ext_oid]))
        raw["extensions"] = {key: draw(glob_from(draw(near(ext_base))))}
    elif matcher == "issuer":
        raw.pop("any_issuer", None)
        raw["issuer"] = draw(st.sampled_from([issuer, draw(near(issuer))]))
    elif matcher == "cert_fp":
        raw["cert_fingerprint"] = hashlib.sha256(g.cert_der(cert)).hexdigest()
    elif matcher == "key_fp":
        raw["key_fingerprint"] = hashlib.sha256(g.spki_der(cert.public_key())).hexdigest()
    else:
        raw["artifact_digest"] = "sha256:" + draw(st.sampled_from([g.DIGEST, g.DIGEST.upper()]))
    if draw(st.booleans()):
        raw["allowed_signers"] = [draw(glob_from(san_value)) or "*"]
    return raw, body, f"{shape}; {kind} SAN {san_value!r}"


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case())
def test_might_match_false_proves_no_match(example: tuple[dict[str, object], bytes, str]) -> None:
    raw, body, description = example
    try:
        compiled = compile_rule(raw, "test")
    except ConfigError:
        reject()  # e.g. an email without "@", a glob of only "*" with no issuer
    fresh = Matcher([compiled], None)
    matches = fresh.match_entry(parse_entry(body))
    event("matched" if matches else "no match")
    warmed = Matcher([compiled], None)
    for _ in range(_WARMUP):  # past the sampling phase: the short-circuit path
        warmed.might_match(b"{}")
    if matches:
        assert fresh.might_match(body), f"pre-filter rejected a match: {description}; {raw}"
        assert warmed.might_match(body), f"pre-filter rejected a match: {description}; {raw}"
        # The chunk-level search (what the scanner runs): the body among others, at each place.
        chunk = [*NOISE, body, *NOISE]
        for matcher in (Matcher([compiled], None), warmed):
            assert len(NOISE) in matcher.candidates(chunk), f"chunk search lost it: {raw}"
            assert 0 in matcher.candidates([body]), f"chunk search lost it: {raw}"
            # As a backfill worker searches it: the bundles' bytes in place, length prefixes
            # (any bytes) between the bodies.
            packed = encode_bundle(chunk)
            spans = bundle_spans(memoryview(packed), len(chunk), "chunk")
            found = matcher.prefilter.select_spans(memoryview(packed), spans)
            assert len(NOISE) in found, f"bundle search lost it: {raw}"
    # Every body the chunk search selects is one might_match passes (it is only faster).
    chunk = [*NOISE, body]
    assert set(Matcher([compiled], None).candidates(chunk)) <= {
        i for i, b in enumerate(chunk) if Matcher([compiled], None).might_match(b)
    } | {len(NOISE)}


NOISE = [
    g.encode(g.hashedrekord_v002(g.v2_verifier(cert=g.cert_der(_OTHER)))),
    g.encode(g.hashedrekord_v001(g.cert_pem(_OTHER))),
    g.encode(g.hashedrekord_v001(g.cert_der(_OTHER))),
]
"""Bodies of a bystander around the generated one in a chunk (v2 DER, v1 PEM, v1 DER)."""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["email", "uri", "dns"]),
            st.text(st.sampled_from(ASCII_CHARS.replace("\\", "")), min_size=1, max_size=30),
        ),
        max_size=3,
    ),
    st.booleans(),
    st.sampled_from(
        [b"", b"\x06\x03U\x1d\x11\x04\x02\x30\x00", b"U\x1d\x11", b"\x06\x03U\x1d\x11"]
    ),
)
def test_sans_read_from_the_der_are_all_the_parser_reads(
    names: list[tuple[str, str]], other_name: bool, decoy: bytes
) -> None:
    """`_san_values` (what `san` / `san_regex` conditions read without parsing) returns every
    identity SAN the parser returns, or None, whatever else the certificate holds (a decoy copy
    of the extension's OID in another extension's value)."""
    extensions = g.fulcio_extensions(issuer=GITHUB, raw={WORKFLOW_REF: b"ref" + decoy})
    try:
        sans = [_san(kind, value) for kind, value in names]
        if other_name:
            sans.append(_san("othername", "someone"))
        cert = g.make_certificate(sans=sans, extensions=extensions)
    except ValueError:
        reject()
    der = g.cert_der(cert)
    parsed = parse_certificate(der)
    read = _san_values(der)
    if read is None:
        return  # unsure: the pre-filter passes the body
    assert set(identity_values(parsed)) <= set(read)


# --- where certificates are read from (`Views.pieces`, `_base64_sans`) ---------------------


def _pem_after(space: bytes) -> Callable[[list[x509.Certificate]], bytes]:
    return lambda certs: g.encode(g.hashedrekord_v001(space + g.cert_pem(certs[0])))


SHAPES: dict[str, Callable[[list[x509.Certificate]], bytes]] = {
    **BODIES,
    **{f"v1 hashedrekord, PEM after {s!r}": _pem_after(s) for s in [b" ", b"\t\n", b"\r\x0b\x0c"]},
    "v1 rekord x509, PEM": lambda certs: g.encode(g.rekord_v001(g.cert_pem(certs[0]))),
    "v1 rekord x509, DER": lambda certs: g.encode(g.rekord_v001(g.cert_der(certs[0]))),
    "v1 intoto 0.0.1, PEM": lambda certs: g.encode(g.intoto_v001(g.cert_pem(certs[0]))),
    "v1 intoto 0.0.2, PEM and DER": lambda certs: g.encode(
        g.intoto_v002([g.cert_pem(certs[0]), g.cert_der(certs[1])])
    ),
    "v1 dsse, DER and PEM": lambda certs: g.encode(
        g.dsse_v001([g.cert_der(certs[0]), g.cert_pem(certs[1])])
    ),
}
"""Every body shape `parse_entry` reads a certificate from, PEM (after any whitespace `certs`
allows) and DER."""

DIGITS_RULE = {"name": "digits", "any_issuer": True, "san_regex": ".*[0-9]{7}.*"}


def _with_subject(cn: str, san: str) -> x509.Certificate:
    """A certificate whose SAN extension sits len(cn) bytes further on."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else None
    return g.make_certificate(sans=[x509.RFC822Name(san)], subject=subject)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_certificate_of_every_shape_is_read(shape: str) -> None:
    certs = [
        g.make_certificate(sans=[x509.UniformResourceIdentifier(f"{REPO}/1234567")]),
        _with_subject("x", "bystander@example.org"),
    ]
    body = SHAPES[shape](certs)
    entry = parse_entry(body)
    wanted = {v for s in entry.signers if s.certificate for v in identity_values(s.certificate)}
    assert wanted
    # The DER path (no PEM in the body) and the one through every decoded string agree, and
    # both hold every SAN the parser reads; every certificate's DER is in the decoded view.
    views, decoded = Views(body), Views(body)
    assert all(s.certificate.der in decoded.pieces() for s in entry.signers if s.certificate)
    assert set(views.sans() or ()) == set(decoded.sans() or ()) == wanted
    if _PEM_HINT not in body:  # read by the DER path: no string decoded whole
        assert views._pieces is None
    # The no-literal rule: decided from these SANs, it passes this body and only this body.
    matcher = Matcher([compile_rule(DIGITS_RULE, "test")], None)
    assert matcher.match_entry(entry)
    assert matcher.might_match(body)
    other = SHAPES[shape]([_with_subject("", "someone@example.org"), certs[1]])
    assert not matcher.might_match(other)
    assert matcher.candidates([other, body, other]) == [1]


def test_certificate_strings_start_with_a_cert_digit() -> None:
    # `_CERT_STRING` only decodes strings whose first digit is in _CERT_DIGITS: that is every
    # digit a DER certificate (0x30) or a PEM the parser accepts can start with.
    starts = {0x30, ord("-")} | {
        b for b in range(256) if _is_pem(bytes([b]) + b"-----BEGIN CERTIFICATE-----\n")
    }
    assert starts == {0x30, *b" \t\n\r\x0b\x0c-"}
    assert {base64.b64encode(bytes([b]))[0] for b in starts} == set(_CERT_DIGITS)
    assert g.cert_der(_OTHER)[0] == 0x30


def test_the_parser_refuses_the_san_oid_in_other_encodings() -> None:
    # `_base64_sans` finds a SAN extension by the DER bytes of its OID only: the parser must
    # read no other encoding of it (long length form, padded sub-identifiers).
    der = g.cert_der(_OTHER)
    assert parse_certificate(_reencode_oid(der, _SAN_OID)).sans == parse_certificate(der).sans
    for other in [
        b"\x06\x81\x03U\x1d\x11",
        b"\x06\x04\x80U\x1d\x11",
        b"\x06\x04U\x80\x1d\x11",
        b"\x06\x04U\x1d\x80\x11",
        b"\x06\x05U\x80\x80\x1d\x11",
    ]:
        with pytest.raises(CertificateParseError):
            parse_certificate(_reencode_oid(der, other))


def _reencode_oid(der: bytes, oid: bytes) -> bytes:
    """`der` with the subjectAltName extension's OID element replaced by `oid`, every length
    around it fixed up."""

    def element(pos: int) -> tuple[int, int, int]:
        tag, length, start = der[pos], der[pos + 1], pos + 2
        if length & 0x80:
            count = length & 0x7F
            length, start = int.from_bytes(der[start : start + count], "big"), start + count
        return tag, start, start + length

    def rebuild(pos: int, end: int) -> bytes:
        out = b""
        while pos < end:
            tag, start, stop = element(pos)
            if tag in (0x30, 0x31, 0xA0, 0xA3):
                out += g.der_tlv(tag, rebuild(start, stop))
            else:
                out += oid if der[pos:stop] == _SAN_OID else der[pos:stop]
            pos = stop
        return out

    return rebuild(0, len(der))


def test_base64_sans_read_the_extension_at_every_alignment() -> None:
    # The OID's digits depend on its byte offset modulo 3 in the string's decoding; a long
    # extension is read past the first window.
    seen: set[int] = set()
    for cn in ["", "a", "ab", "abc"]:
        for san in ["dev1234567@example.org", "a" * 300 + "@example.org"]:
            der = g.cert_der(_with_subject(cn, san))
            seen.add(der.index(_SAN_OID) % 3)
            for body in [
                g.encode(g.hashedrekord_v002(g.v2_verifier(cert=der))),
                g.encode(g.hashedrekord_v001(der)),
            ]:
                assert _base64_sans(body) == [san], (cn, san)
    assert seen == {0, 1, 2}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(st.sampled_from("abc019.@-"), min_size=1, max_size=80), max_size=3),
    st.binary(max_size=5),
    st.sampled_from(
        [b"", _SAN_OID, _SAN_OID + b"\x04\x02\x30\x00", _SAN_OID + b"\x04\x07\x30\x05\x82\x03a.b"]
    ),
    st.sampled_from(
        [
            "v2 hashedrekord, DER",
            "v2 dsse, two signers",
            "v1 hashedrekord, DER",
            "v1 dsse, DER and PEM",
        ]
    ),
)
def test_base64_sans_are_all_the_parser_reads(
    names: list[str], pad: bytes, decoy: bytes, shape: str
) -> None:
    """`Views.sans` (`_base64_sans` without a PEM) holds every identity SAN the parser reads,
    or is None, with a decoy copy of the OID in another extension's value at any offset; and
    it reads what the whole decoded strings give."""
    extensions = g.fulcio_extensions(issuer=GITHUB, raw={WORKFLOW_REF: pad + decoy})
    try:
        sans = [x509.DNSName(n) for n in names]
        cert = g.make_certificate(sans=sans, extensions=extensions)
    except ValueError:
        reject()
    body = SHAPES[shape]([cert, _OTHER])
    entry = parse_entry(body)
    read = Views(body).sans()
    if decoy:
        event(f"decoy at offset {g.cert_der(cert).rindex(decoy) % 3} mod 3")
    if read is not None:
        wanted = {v for s in entry.signers if s.certificate for v in identity_values(s.certificate)}
        assert wanted <= set(read)
    whole = Views(body)
    whole.pieces()  # a literal first: the SANs are read from the whole decoded strings
    if whole.sans() is not None:
        assert read is not None and sorted(read) == sorted(whole.sans() or ())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b'"', b"BgNVHR", b"YDVR0R", b"GA1UdE", b"MII", b"LS0t", b"A", b"gw", b"=", b"\xff"]
        ),
        max_size=60,
    )
)
def test_sans_of_hostile_bodies_never_raise(parts: list[bytes]) -> None:
    body = b"".join(parts)
    result = _base64_sans(body)
    assert result is None or all(isinstance(v, str) for v in result)
    Views(body).sans()
    _decode_strings(body)


def _nested_extensions(depth: int) -> bytes:
    """`depth` subjectAltName extensions, each an IP address SAN (not read) wrapping the next."""
    inner = b""
    for _ in range(depth):
        inner = _SAN_OID + g.der_tlv(0x04, g.der_tlv(0x30, g.der_tlv(0x87, inner)))
    return inner


def test_sans_of_many_extensions_are_unsure_and_cheap() -> None:
    # Each place is read; decoys nested in one another would make the base64 path decode the
    # square of the body's size: past _MAX_SAN_EXTENSIONS the answer is "unsure" (the body
    # passes to the parser, which refuses such a certificate).
    flat = (_SAN_OID + b"\x04\x02\x30\x00") * (_MAX_SAN_EXTENSIONS + 1)
    nested = _nested_extensions(12_000)  # about 200 KB
    for der in [flat, nested]:
        body = g.encode(g.hashedrekord_v002(g.v2_verifier(cert=der)))
        began = time.process_time()
        assert _san_values(der) is None
        assert _base64_sans(body) is None
        assert Views(body).sans() is None
        assert time.process_time() - began < 2
    # The OID's digits anywhere, even where no quad of a string starts: each occurrence counts
    # (a megabyte of them once cost a lookback over the string each, ~0.8 s a body).
    core, lead = _SAN_OID_CORES[0]
    misaligned = b'{"sig":"' + (b"A" * (lead + 2) + core) * 100_000 + b'"}'
    assert _base64_sans(misaligned) is None
    assert _base64_sans(b'{"sig":"' + (b"A" * (lead + 2) + core) * 3 + b'"}') == []
    # Up to the limit every one is read.
    assert _san_values(flat[: len(flat) * _MAX_SAN_EXTENSIONS // (_MAX_SAN_EXTENSIONS + 1)]) == []
    # From base64, a few nested ones are read; many pass the decoding budget: unsure.
    nested_few = g.v2_verifier(cert=_nested_extensions(4))
    assert _base64_sans(g.encode(g.hashedrekord_v002(nested_few))) == []
    nested_many = g.v2_verifier(cert=_nested_extensions(_MAX_SAN_EXTENSIONS))
    assert _base64_sans(g.encode(g.hashedrekord_v002(nested_many))) is None


# --- the premises of the safety argument ---------------------------------------------------


def test_only_i_k_s_have_non_ascii_case_equivalents() -> None:
    # Case-insensitive literals are searched as ASCII case variants, except for the letters in
    # _UNSAFE_FOLD. That is sound only if no other ASCII character equals a non-ASCII one,
    # under str.lower (email) or a regex's case folding: Python's re.IGNORECASE here, RE2's
    # (which globs and san_regex use) in test_watch_regex.py.
    non_ascii = "".join(chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        equal = re.findall(f"(?i){letter}", non_ascii)
        assert not equal or letter in _UNSAFE_FOLD, (letter, equal)
    leaks = {ch for c in non_ascii for ch in c.lower() if ch.isascii()}
    assert leaks <= _UNSAFE_FOLD, leaks


@settings(max_examples=400, deadline=None)
@given(
    st.text(st.sampled_from(ASCII_CHARS), min_size=4, max_size=24),
    st.data(),
    st.binary(max_size=5),
    st.binary(max_size=5),
    st.booleans(),
)
def test_b64_patterns_find_every_case_variant(
    literal: str, data: st.DataObject, before: bytes, after: bytes, fold: bool
) -> None:
    """The chunk search's base64 patterns (one per alignment) match the base64 of any bytes
    holding the literal (any ASCII case variant of it when `fold`), wherever it sits; without
    `fold` they are the plain base64 digits."""
    raw = literal.encode()
    patterns = [_b64_render(digits) for digits in _b64_digits(raw, fold=fold)]
    text = data.draw(variant(literal, unicode=False)).encode() if fold else raw
    encoded = base64.b64encode(before + text + after)
    assert any(re2.search(p, encoded) for p in patterns), (literal, text, before)
    # What the chunk search runs: patterns from their first single digit, grouped by it, alone
    # and among enough other keys (of other first digits) to be merged into one search.
    key = _Text(literal, fold=fold, weight=len(literal))
    others = [_Text(chr(0x41 + n) * 4 + "-" + literal, fold=fold, weight=4) for n in range(8)]
    for keys in ([key], [*others, key]):
        searches = _chunk_search(keys)
        assert searches is not None and len(searches) <= _MAX_SEARCHES
        if len(keys) > 1:
            assert len(searches) == 1, "merged"
        assert any(s.search(encoded) for s in searches), (literal, text, before, len(keys))
    if not fold:
        cores = [base64.b64encode(bytes(a) + raw)[(8 * a + 5) // 6 : (8 * (a + len(raw))) // 6]
                 for a in range(3)]  # fmt: skip
        assert all(re2.fullmatch(p, c) for p, c in zip(patterns, cores, strict=True))


def test_pem_hint_is_in_every_pem_needle() -> None:
    # pems() scans for _PEM_HINT once and only then looks for the three needles.
    assert all(_PEM_HINT in needle for needle in _PEM_NEEDLES)
    assert len(_PEM_NEEDLES) == 3


# --- it rejects what matches nothing (not timed) -------------------------------------------

WATCHED = "https://github.com/example/project/.github/workflows/release.yml@refs/tags/v1"


def typical_rules() -> list[WatchRule]:
    raws: list[dict[str, object]] = [
        {"issuer": GITHUB, "san": "https://github.com/example/project/.github/workflows/*"},
        {"issuer": "https://accounts.google.com", "email": "Security@Example.com"},
        {"issuer": GITHUB, "san_regex": r"https://github\.com/example/[^/]+/\.github/.*"},
        {"issuer": GITHUB, "extensions": {"source_repository_uri": "https://github.com/example/*"}},
        {"artifact_digest": "sha256:" + "ab" * 32},
        {"key_fingerprint": "cd" * 32},
    ]
    return [compile_rule({"name": f"r{i}", **raw}, "test") for i, raw in enumerate(raws)]


@pytest.mark.parametrize("kind", list(BodyKind))
def test_rejects_sandbox_bodies_of_other_identities(tmp_path: Path, kind: BodyKind) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    factory = BodyFactory(workers=1)
    try:

        def bodies(identity: Identity, count: int = 20) -> list[bytes]:
            return [b for chunk in factory.bodies(kind, ca.signer(identity), count) for b in chunk]

        others = [
            *bodies(Identity(email="alice@example.org")),
            *bodies(Identity(email="security@example.net")),
            *bodies(
                Identity(uri=WATCHED.replace("example/project", "other/project"), issuer=GITHUB)
            ),
            *bodies(Identity(uri=WATCHED.replace("example/", "exampl3/"), issuer=GITHUB)),
        ]
        watched = [
            *bodies(Identity(uri=WATCHED, issuer=GITHUB), 3),
            *bodies(Identity(email="SECURITY@example.com"), 3),
        ]
    finally:
        factory.close()
    matcher = Matcher(typical_rules(), None)
    # Several rounds: past the sampling phase (_WARMUP bodies) into the short-circuit path.
    for body in [*others, *others, *others, *others]:
        assert not matcher.might_match(body)
        assert matcher.match_entry(parse_entry(body)) == []
    for body in watched:
        assert matcher.match_entry(parse_entry(body)) != []
        assert matcher.might_match(body)


def test_rejects_real_production_bodies_for_other_identities(real_data: Path) -> None:
    names = [
        "sigstore-bundles/Python-3.12.5.tgz.sigstore",
        "sigstore-bundles/bundle_v3_github.whl.sigstore",
        "sigstore-bundles/staging-rekor-v2.txt.sigstore.json",
        "more-bundles/sigstore-js/bundleV02-dsse.sigstore.json",
        "more-bundles/sigstore-go/bundle-provenance.json",
    ]
    bodies = [load_input((real_data / n).read_bytes()).body for n in names]
    matcher = Matcher(typical_rules(), None)
    assert [matcher.might_match(b) for b in bodies] == [False] * len(bodies)
