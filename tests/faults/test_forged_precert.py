"""A CT log cannot make a precert_entry trusted by itself (review R1, finding 1): the leaf's
issuer key hash and issuer name are the log's words; only the precertificate the CA signed,
served beside the leaf, counts."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from monitor.core.chain import CertificateTrust
from monitor.core.ct import CtEntry, CtLeaf, EntryType, encode_merkle_tree_leaf
from monitor.core.watch.match import Matcher, MatchOutcome
from monitor.core.watch.rules import compile_rule
from monitor.sandbox import ctlog
from monitor.sandbox.ca import DEFAULT_EMAIL_ISSUER, Identity, LocalCA
from monitor.service.wiring import read_ct_leaf

VICTIM = "victim@example.com"
_SKIPPED = {"1.3.6.1.4.1.11129.2.4.2", "1.3.6.1.4.1.11129.2.4.3", "2.5.29.17", "2.5.29.35"}


def _setup(tmp_path: Path) -> tuple[LocalCA, Matcher]:
    ca = LocalCA.load_or_create(tmp_path)
    trust = CertificateTrust([ca.certificate], source="sandbox CA")
    rule = compile_rule({"name": "r", "email": VICTIM, "issuer": DEFAULT_EMAIL_ISSUER}, "t")
    return ca, Matcher([rule], trust)


def _outcomes(matcher: Matcher, body: bytes) -> list[MatchOutcome]:
    matches, error = read_ct_leaf(matcher, body)
    assert error is None
    return [m.outcome for m in matches]


def test_a_forged_precert_with_the_cas_key_hash_and_name_is_untrusted(tmp_path: Path) -> None:
    ca, matcher = _setup(tmp_path)
    real = ca.signer(Identity(email=VICTIM)).certificate
    attacker = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    b = x509.CertificateBuilder()
    for ext in real.extensions:
        if ext.oid.dotted_string not in _SKIPPED and ext.oid != x509.SubjectKeyIdentifier.oid:
            b = b.add_extension(ext.value, ext.critical)
    san = x509.SubjectAlternativeName([x509.RFC822Name(VICTIM)])
    b = (
        b.subject_name(x509.Name([]))
        .issuer_name(ca.certificate.subject)
        .public_key(attacker.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=10))
        .add_extension(san, critical=True)
    )
    tbs = b.sign(attacker, hashes.SHA256()).tbs_certificate_bytes
    # The attacker's own "precertificate" of that TBS, signed by the attacker.
    pre = b.add_extension(x509.PrecertPoison(), critical=True).sign(attacker, hashes.SHA256())
    leaf = CtLeaf(int(now.timestamp() * 1000), EntryType.PRECERT, tbs,
                  hashlib.sha256(ca.spki).digest(), b"")  # fmt: skip
    body = encode_merkle_tree_leaf(leaf)
    for entry in (body, CtEntry(body, pre_certificate=pre.public_bytes(Encoding.DER))):
        assert _outcomes(matcher, entry) == [MatchOutcome.UNTRUSTED]


def test_a_genuine_sandbox_precert_is_trusted(tmp_path: Path) -> None:
    ca, matcher = _setup(tmp_path)
    signer = ca.signer(Identity(email=VICTIM))
    (body,) = ctlog.ct_leaves(ca, signer, 1, int(signer.minted_at.timestamp() * 1000), "precert")
    entry = CtEntry(body, extra_data=ctlog.entry_extra_data(ca, body))
    assert _outcomes(matcher, entry) == [MatchOutcome.CERTIFICATE_ISSUED]


def test_a_leaf_tbs_other_than_the_precertificates_is_untrusted(tmp_path: Path) -> None:
    ca, matcher = _setup(tmp_path)
    signer = ca.signer(Identity(email=VICTIM))
    (body,) = ctlog.ct_leaves(ca, signer, 1, int(signer.minted_at.timestamp() * 1000), "precert")
    genuine = ctlog.entry_extra_data(ca, body)
    # A real precertificate of the CA, served beside a leaf whose TBS is a different one.
    tampered = bytearray(body)
    tampered[-3] ^= 0x01  # a byte of the TBS's signature algorithm or extensions
    assert _outcomes(matcher, CtEntry(bytes(tampered), extra_data=genuine)) == [
        MatchOutcome.UNTRUSTED
    ]
