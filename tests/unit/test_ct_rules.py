"""Watch rules on CT log entries (pure): precertificates read from their TBSCertificate, trust by
signature or by issuer key hash, the certificate_issued / unexpected_signer outcomes, and the
certificate id a precertificate, its certificate and a Rekor entry share.

Robustness runs on real web-PKI precertificates (the vendored Sunlight data tiles); identity
matching on the sandbox CA's Fulcio-like certificates."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.certs import (
    MAX_CERTIFICATE_BYTES,
    CertificateParseError,
    certificate_id,
    parse_certificate,
    parse_tbs_certificate,
)
from monitor.core.chain import CertificateTrust
from monitor.core.ct import CtEntry, CtLeaf, EntryType, encode_merkle_tree_leaf, parse_tile_leaves
from monitor.core.watch.match import Match, Matcher, MatchOutcome
from monitor.core.watch.rules import compile_rule
from monitor.sandbox import ctlog
from monitor.sandbox.ca import Identity, LocalCA, SigningIdentity
from monitor.service.scanner import match_alert
from monitor.service.wiring import read_ct_leaf

TILES = Path(__file__).resolve().parents[1] / "data" / "ct" / "sunlight-navigli2025h2" / "tile"
GITHUB = "https://token.actions.githubusercontent.com"
REPO = "https://github.com/example/project"
RELEASE = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.0"
OTHER = f"{REPO}/.github/workflows/evil.yml@refs/heads/main"
ISSUED, UNEXPECTED, UNTRUSTED = (
    MatchOutcome.CERTIFICATE_ISSUED,
    MatchOutcome.UNEXPECTED_SIGNER,
    MatchOutcome.UNTRUSTED,
)


def _real_precerts() -> list[tuple[bytes, bytes]]:
    """(TBSCertificate, precertificate DER) of every precert_entry in the vendored tiles."""
    out = []
    for name in ("000", "003.p/10"):
        for t in parse_tile_leaves((TILES / "data" / name).read_bytes()):
            if t.leaf.entry_type is EntryType.PRECERT and t.pre_certificate is not None:
                out.append((t.leaf.certificate, t.pre_certificate))
    return out


REAL = _real_precerts()


# --- TBSCertificates: real web-PKI precertificates --------------------------------------------


def test_real_tbs_certificates_read_as_their_precertificates() -> None:
    assert len(REAL) > 200
    for tbs, pre in REAL:
        got = parse_tbs_certificate(tbs)
        want = parse_certificate(pre)
        assert got.der == tbs and got.fingerprint_sha256 == hashlib.sha256(tbs).hexdigest()
        assert got.sans == want.sans and got.sans
        assert (got.serial, got.issuer_dn, got.subject_dn) == (
            want.serial,
            want.issuer_dn,
            want.subject_dn,
        )
        assert (got.not_before, got.not_after) == (want.not_before, want.not_after)
        assert got.public_key_sha256 == want.public_key_sha256
        assert certificate_id(got) == certificate_id(want)


def test_a_certificate_is_not_a_tbs_certificate() -> None:
    # The whole precertificate is a SEQUENCE too, but its first element is not a serial number
    # followed by an AlgorithmIdentifier: it must not be read as if it were a TBS.
    _, pre = REAL[0]
    with pytest.raises(CertificateParseError, match="TBSCertificate"):
        parse_tbs_certificate(pre)


def _tbs_cases() -> Iterator[tuple[str, bytes]]:
    tbs = REAL[0][0]
    yield "empty", b""
    yield "not a sequence", b"\x04\x02ab"
    yield "truncated", tbs[:-1]
    yield "trailing byte", tbs + b"\x00"
    yield "only a version", b"\x30\x05\xa0\x03\x02\x01\x02"
    yield "serial then no algorithm", b"\x30\x03\x02\x01\x01"
    yield "algorithm not a sequence", b"\x30\x06\x02\x01\x01\x04\x01\x00"
    yield "indefinite length", b"\x30\x80" + tbs[4:] + b"\x00\x00"
    yield (
        "oversized",
        b"\x30\x84" + (MAX_CERTIFICATE_BYTES).to_bytes(4, "big") + bytes(MAX_CERTIFICATE_BYTES),
    )


@pytest.mark.parametrize(("name", "data"), list(_tbs_cases()), ids=[n for n, _ in _tbs_cases()])
def test_malformed_tbs_certificates_raise_a_parse_error(name: str, data: bytes) -> None:
    with pytest.raises(CertificateParseError):
        parse_tbs_certificate(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_real_tbs_certificates_only_raise_parse_errors(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from([tbs for tbs, _ in REAL[:40]])))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[at:]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    with contextlib.suppress(CertificateParseError):
        parse_tbs_certificate(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_real_ct_entries_never_stop_a_scan(data: st.DataObject) -> None:
    """Whatever a leaf holds, reading and matching it returns (matches or an error)."""
    tbs = bytearray(data.draw(st.sampled_from([tbs for tbs, _ in REAL[:40]])))
    at = data.draw(st.integers(0, len(tbs) - 1))
    tbs[at] ^= data.draw(st.integers(1, 255))
    leaf = CtLeaf(1_700_000_000_000, EntryType.PRECERT, bytes(tbs), b"\x01" * 32, b"")
    matcher = Matcher([compile_rule({"name": "r", "san": "*", "any_issuer": True}, "t")], None)
    matches, error = read_ct_leaf(matcher, encode_merkle_tree_leaf(leaf))
    assert error is None or matches == []


# --- identity matching on the sandbox CA's certificates ---------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def trust(ca: LocalCA) -> CertificateTrust:
    return CertificateTrust([ca.certificate], source="sandbox CA")


def _leaves(ca: LocalCA, signer: SigningIdentity, at_ms: int | None = None) -> list[bytes]:
    """An x509_entry and a precert_entry of `signer`'s certificate."""
    when = at_ms if at_ms is not None else int(signer.minted_at.timestamp() * 1000)
    # As a CT source serves them: each with its extra_data (a precert_entry's precertificate).
    return [
        CtEntry(body, extra_data=ctlog.entry_extra_data(ca, body))
        for body in ctlog.ct_leaves(ca, signer, 2, when, "mixed")
    ]


def _match(matcher: Matcher, body: bytes) -> list[Match]:
    matches, error = read_ct_leaf(matcher, body)
    assert error is None, error
    return matches


def release_rule(**extra: object) -> Matcher:
    raw = {"name": "release", "issuer": GITHUB, "san": f"{REPO}/*", **extra}
    return Matcher([compile_rule(raw, "test: watch[0]")], None)


@pytest.mark.parametrize(
    ("uri", "allowed", "want"),
    [
        (RELEASE, None, ISSUED),
        (RELEASE, [f"{REPO}/.github/workflows/release.yml@*"], ISSUED),
        (OTHER, [f"{REPO}/.github/workflows/release.yml@*"], UNEXPECTED),
    ],
)
def test_precert_and_certificate_match_alike(
    ca: LocalCA,
    trust: CertificateTrust,
    uri: str,
    allowed: list[str] | None,
    want: MatchOutcome,
) -> None:
    signer = ca.signer(Identity(uri=uri, issuer=GITHUB))
    extra = {} if allowed is None else {"allowed_signers": allowed}
    matcher = Matcher(release_rule(**extra).rules, trust)
    x509_body, precert_body = _leaves(ca, signer)
    (cert_match,) = _match(matcher, x509_body)
    (pre_match,) = _match(matcher, precert_body)
    assert cert_match.outcome is pre_match.outcome is want
    assert cert_match.identity["kind"] == "x509_entry"
    assert pre_match.identity["kind"] == "precert_entry"
    assert cert_match.identity["sans"] == pre_match.identity["sans"] == [f"uri:{uri}"]
    # What the precertificate, its certificate and a Rekor entry using it share.
    rekor_id = certificate_id(parse_certificate(signer.cert_der))
    assert cert_match.certificate_id == pre_match.certificate_id == rekor_id
    assert pre_match.identity["cert_fingerprint"] is None
    assert cert_match.identity["cert_fingerprint"] == hashlib.sha256(signer.cert_der).hexdigest()
    # One alert per certificate: both entries give the same dedup key, on any CT log.
    one = match_alert("ct", "tiles", 0, cert_match, 0)
    other = match_alert("static-ct", "tiles", 9, pre_match, 9)
    assert one is not None and other is not None
    assert one.kind.value == want.value and one.dedup_key == other.dedup_key
    assert one.details["certificate_id"] == rekor_id


def test_rules_judge_the_certificate_not_an_artifact(ca: LocalCA, trust: CertificateTrust) -> None:
    signer = ca.signer(Identity(uri=RELEASE, issuer=GITHUB))
    x509_body, precert_body = _leaves(ca, signer)
    key = parse_certificate(signer.cert_der).public_key_sha256
    fingerprint = hashlib.sha256(signer.cert_der).hexdigest()
    rules = [
        compile_rule({"name": "digest", "artifact_digest": "sha256:" + "ab" * 32}, "t"),
        compile_rule({"name": "key", "key_fingerprint": key}, "t"),
        compile_rule({"name": "cert", "cert_fingerprint": fingerprint}, "t"),
    ]
    matcher = Matcher(rules, trust)
    assert [m.rule for m in _match(matcher, x509_body)] == ["key", "cert"]
    assert [m.rule for m in _match(matcher, precert_body)] == ["key"]


def test_self_signed_and_unknown_ca_certificates_are_untrusted(
    ca: LocalCA, trust: CertificateTrust, tmp_path: Path
) -> None:
    forged = ca.signer(Identity(uri=RELEASE, issuer=GITHUB), self_signed=True)
    other_ca = LocalCA.load_or_create(tmp_path)
    stranger = other_ca.signer(Identity(uri=RELEASE, issuer=GITHUB))
    matcher = Matcher(release_rule().rules, trust)
    for body in [*_leaves(ca, forged), *_leaves(other_ca, stranger)]:
        assert [m.outcome for m in _match(matcher, body)] == [UNTRUSTED]
    # The rule can opt in to certificates from any CA.
    wide = Matcher(
        [compile_rule({"name": "w", "any_issuer": True, "san": f"{REPO}/*"}, "t")], trust
    )
    assert [m.outcome for m in _match(wide, _leaves(ca, forged)[1])] == [ISSUED]
    # No CAs known for the log: nothing is trusted.
    assert [m.outcome for m in _match(release_rule(), _leaves(ca, stranger)[1])] == [UNTRUSTED]


def test_a_precert_is_trusted_by_its_signed_precertificate_and_issuer_key_hash(
    ca: LocalCA, trust: CertificateTrust
) -> None:
    signer = ca.signer(Identity(uri=RELEASE, issuer=GITHUB))
    tbs = signer.certificate.tbs_certificate_bytes
    when = int(signer.minted_at.timestamp() * 1000)
    matcher = Matcher(release_rule().rules, trust)
    ca_spki = ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_spki = stranger.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def outcome(issuer_key_hash: bytes, certificate: bytes = tbs) -> MatchOutcome:
        leaf = CtLeaf(when, EntryType.PRECERT, certificate, issuer_key_hash, b"")
        body = encode_merkle_tree_leaf(leaf)
        (match,) = _match(matcher, CtEntry(body, pre_certificate=ca.precertificates.get(tbs)))
        return match.outcome

    assert outcome(hashlib.sha256(ca_spki).digest()) is ISSUED
    # The leaf alone (no precertificate served with it) proves nothing.
    bare = CtLeaf(when, EntryType.PRECERT, tbs, hashlib.sha256(ca_spki).digest(), b"")
    assert [m.outcome for m in _match(matcher, encode_merkle_tree_leaf(bare))] == [UNTRUSTED]
    assert outcome(hashlib.sha256(other_spki).digest()) is UNTRUSTED
    assert outcome(hashlib.sha256(ca_spki + b"\x00").digest()) is UNTRUSTED
    # The right key hash, but a TBS naming another issuer: not that CA's certificate.
    renamed = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Someone Else")]))
        .public_key(signer.certificate.public_key())
        .serial_number(signer.certificate.serial_number)
        .not_valid_before(signer.certificate.not_valid_before_utc)
        .not_valid_after(signer.certificate.not_valid_after_utc)
    )
    for ext in signer.certificate.extensions:
        if ext.oid != x509.AuthorityKeyIdentifier.oid:
            renamed = renamed.add_extension(ext.value, ext.critical)
    other = renamed.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    assert outcome(hashlib.sha256(ca_spki).digest(), other.tbs_certificate_bytes) is UNTRUSTED


@pytest.mark.parametrize("offset_ms", [-86_400_000, 400 * 86_400_000, (1 << 63) - 1])
def test_a_certificate_logged_outside_its_validity_is_untrusted(
    ca: LocalCA, trust: CertificateTrust, offset_ms: int
) -> None:
    signer = ca.signer(Identity(uri=RELEASE, issuer=GITHUB))
    minted = int(signer.minted_at.timestamp() * 1000)
    when = min(minted + offset_ms, (1 << 63) - 2)  # ct_leaves counts up by 1 ms
    matcher = Matcher(release_rule().rules, trust)
    for body in _leaves(ca, signer, when):
        assert [m.outcome for m in _match(matcher, body)] == [UNTRUSTED]


def test_unreadable_certificates_are_errors_not_matches(ca: LocalCA) -> None:
    matcher = release_rule()
    bad_cert = CtLeaf(1, EntryType.X509, b"\x30\x03\x02\x01\x01", None, b"")
    bad_tbs = CtLeaf(1, EntryType.PRECERT, b"\x30\x03\x02\x01\x01", b"\x00" * 32, b"")
    for leaf in (bad_cert, bad_tbs):
        matches, error = read_ct_leaf(matcher, encode_merkle_tree_leaf(leaf))
        assert matches == [] and error is not None and "expected a DER X.509" in error
    matches, error = read_ct_leaf(matcher, ctlog.malformed_leaf(1))
    assert matches == [] and error is not None
