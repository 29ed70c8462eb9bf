"""Tests for monitor.core.entries: real Rekor v1/v2 bodies, every kind built from minted
certificates, malformed bodies, and a property: nothing but EntryParseError ever escapes
parse_entry."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.certs import (
    MAX_SANS,
    CertificateIdentity,
    parse_certificate,
    public_key_fingerprint,
)
from monitor.core.entries import (
    MAX_BODY_BYTES,
    MAX_SKIPPED_KEPT,
    SUPPORTED_KINDS,
    Entry,
    EntryParseError,
    Signer,
    SkippedSignature,
    UnsupportedEntryError,
    parse_entry,
)
from monitor.core.errors import ParseError
from tests.conftest import REAL_DATA, real_files
from tests.unit import certgen
from tests.unit.certgen import (
    DIGEST,
    b64,
    cert_der,
    cert_pem,
    dsse_v001,
    dsse_v002,
    encode,
    fulcio_extensions,
    hashedrekord_v001,
    hashedrekord_v002,
    intoto_v001,
    intoto_v002,
    make_certificate,
    rekord_v001,
    spki_der,
    spki_pem,
    v2_verifier,
)

GITHUB_SAN = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)

# --- real bundles -----------------------------------------------------------------------------


def _bundle_paths() -> list[Path]:
    """Every fixture file that is a Sigstore bundle with tlog entries (collected at import time,
    so the ids are stable; missing data fails the collection)."""
    paths: list[Path] = []
    for pattern in ("*bundles/**/*.sigstore", "*bundles/**/*.json"):
        for path in real_files(pattern):
            doc = json.loads(path.read_text())
            if isinstance(doc, dict) and doc.get("verificationMaterial", {}).get("tlogEntries"):
                paths.append(path)
    return paths


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _body(doc: dict[str, Any], i: int = 0) -> bytes:
    return base64.b64decode(doc["verificationMaterial"]["tlogEntries"][i]["canonicalizedBody"])


def _leaf(doc: dict[str, Any]) -> bytes | None:
    material = doc["verificationMaterial"]
    if "certificate" in material:
        return base64.b64decode(material["certificate"]["rawBytes"])
    if "x509CertificateChain" in material:
        return base64.b64decode(material["x509CertificateChain"]["certificates"][0]["rawBytes"])
    return None


def _pae(payload_type: bytes, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what a v2 hashedrekord of a DSSE envelope hashes."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)


def _expected_digest(doc: dict[str, Any], kind: str) -> tuple[str, str] | None:
    """The artifact digest the bundle itself claims, in parse_entry's form."""
    if "messageSignature" in doc:
        md = doc["messageSignature"].get("messageDigest")
        if md is None:
            return None
        assert md["algorithm"] == "SHA2_256"
        return "sha256", base64.b64decode(md["digest"]).hex()
    if "dsseEnvelope" in doc:
        env = doc["dsseEnvelope"]
        payload = base64.b64decode(env["payload"])
        if kind == "hashedrekord":
            return "sha256", hashlib.sha256(_pae(env["payloadType"].encode(), payload)).hexdigest()
        return "sha256", hashlib.sha256(payload).hexdigest()
    return None


def _parse_quietly(body: bytes) -> Entry:
    with warnings.catch_warnings():
        # One fixture's issuer DN has a three-letter country, which cryptography warns about.
        warnings.simplefilter("ignore", UserWarning)
        return parse_entry(body)


@pytest.mark.parametrize("path", _bundle_paths(), ids=lambda p: str(p.relative_to(REAL_DATA)))
def test_bundle_entry_matches_the_bundle(real_data: Path, path: Path) -> None:
    """Each real entry parses; its kind, signer and digest agree with the bundle around it."""
    doc = _load(path)
    for i, tlog in enumerate(doc["verificationMaterial"]["tlogEntries"]):
        entry = _parse_quietly(_body(doc, i))
        assert (entry.kind, entry.api_version) == (
            tlog["kindVersion"]["kind"],
            tlog["kindVersion"]["version"],
        )
        assert len(entry.signers) == 1
        signer = entry.signers[0]
        assert signer.key_format == "x509"
        leaf = _leaf(doc)
        if leaf is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                expected = parse_certificate(leaf)
            assert signer.certificate == expected
            assert signer.certificate.sans == expected.sans
            assert signer.certificate.issuer == expected.issuer
            assert signer.public_key_sha256 == expected.public_key_sha256
            assert signer.public_key_der is None
        else:
            # A managed key: the identity is the key's fingerprint.
            assert signer.certificate is None
            assert signer.public_key_der is not None
            load_der_public_key(signer.public_key_der)
            assert signer.public_key_sha256 == hashlib.sha256(signer.public_key_der).hexdigest()
        expected_digest = _expected_digest(doc, entry.kind)
        if path.name == "wrong-hashedrekord-artifact_fail.json":
            # The log recorded another artifact than the bundle claims: we report the log's.
            assert entry.artifact_digest != expected_digest
        elif expected_digest is not None:
            assert entry.artifact_digest == expected_digest


def test_bundles_cover_every_real_kind(real_data: Path) -> None:
    seen = {
        (e.kind, e.api_version) for p in _bundle_paths() for e in [_parse_quietly(_body(_load(p)))]
    }
    assert seen == {
        ("hashedrekord", "0.0.1"),
        ("hashedrekord", "0.0.2"),
        ("intoto", "0.0.2"),
        ("dsse", "0.0.1"),
    }


def test_python_release_entry(real_data: Path) -> None:
    entry = parse_entry(_body(_load(real_data / "sigstore-bundles" / "Python-3.12.5.tgz.sigstore")))
    assert entry.kind == "hashedrekord"
    assert entry.api_version == "0.0.1"
    assert entry.artifact_digest == (
        "sha256",
        "38dc4e2c261d49c661196066edbfb70fdb16be4a79cc8220c224dfeb5636d405",
    )
    cert = entry.signers[0].certificate
    assert cert is not None
    assert cert.emails == ("thomas@python.org",)
    assert cert.issuer == "https://accounts.google.com"


def test_github_release_entry(real_data: Path) -> None:
    entry = parse_entry(
        _body(_load(real_data / "sigstore-bundles" / "bundle_v3_github.whl.sigstore"))
    )
    cert = entry.signers[0].certificate
    assert cert is not None
    assert cert.uris == (GITHUB_SAN,)
    assert cert.issuer == "https://token.actions.githubusercontent.com"
    assert cert.extensions["source_repository_uri"] == "https://github.com/trailofbits/rfc8785.py"
    assert cert.extensions["source_repository_ref"] == "refs/tags/v0.1.2"
    assert cert.extensions["build_trigger"] == "release"
    assert cert.extensions["build_signer_uri"] == GITHUB_SAN
    assert cert.extensions["runner_environment"] == "github-hosted"


@pytest.mark.parametrize(
    "name", ["staging-rekor-v2.txt.sigstore.json", "a.dsse.staging-rekor-v2.txt.sigstore.json"]
)
def test_rekor_v2_staging_entries(real_data: Path, name: str) -> None:
    entry = parse_entry(_body(_load(real_data / "sigstore-bundles" / name)))
    assert (entry.kind, entry.api_version) == ("hashedrekord", "0.0.2")
    assert entry.signers[0].certificate is not None
    if name == "staging-rekor-v2.txt.sigstore.json":
        artifact = (real_data / "sigstore-bundles" / "staging-rekor-v2.txt").read_bytes()
        assert entry.artifact_digest == ("sha256", hashlib.sha256(artifact).hexdigest())
        assert entry.signers[0].certificate.emails == ("jku@goto.fi",)


def test_rekor_v2_production_entry_with_a_public_key(real_data: Path) -> None:
    doc = _load(real_data / "more-bundles" / "sigstore-js" / "rekor-v2-prod-entry-412114.json")
    entry = parse_entry(_body(doc))
    assert (entry.kind, entry.api_version) == ("hashedrekord", "0.0.2")
    assert entry.artifact_digest == (
        "sha256",
        base64.b64decode("5dJ2SakUeOXY4ut1hBHPomz+hTn6tc0KTzcGosA+epE=").hex(),
    )
    (signer,) = entry.signers
    assert signer.certificate is None
    assert signer.key_format == "x509"
    assert signer.public_key_der == base64.b64decode(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0q9Q+tdG195CXKfmUx1YatvZ/mN3rhjpOfm1lvskWprH9Pxpe9Xc6LjEJbBcVPhutkfUvBB9RDk+42SNE6/5xg=="
    )
    assert signer.public_key_sha256 == public_key_fingerprint(signer.public_key_der)


def test_rekor_v1_api_rekord_pgp_entry(real_data: Path) -> None:
    """Production log index 1: a rekord with a PGP key, from /api/v1/log/entries (not canonical
    key order)."""
    doc = json.loads(
        (real_data / "rekor-production" / "sidekick_rekor-api-log-entry.json").read_text()
    )
    (item,) = doc.values()
    entry = parse_entry(base64.b64decode(item["body"]))
    assert (entry.kind, entry.api_version) == ("rekord", "0.0.1")
    assert entry.artifact_digest == (
        "sha256",
        "5447385cf9b9204a8a4e5ef1b971f403349b989c9870da560259768d53ebd3d0",
    )
    (signer,) = entry.signers
    assert signer.key_format == "pgp"
    assert signer.certificate is None
    assert signer.public_key_der is not None
    assert signer.public_key_der.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert signer.public_key_sha256 == hashlib.sha256(signer.public_key_der).hexdigest()


# --- synthetic: every kind ----------------------------------------------------------------------

_CERT = make_certificate(
    sans=[
        x509.UniformResourceIdentifier(
            "https://github.com/o/r/.github/workflows/rel.yml@refs/tags/v1"
        )
    ],
    extensions=fulcio_extensions(values={certgen.FULCIO_ARC + "12": "https://github.com/o/r"}),
)
_CERT_DER = cert_der(_CERT)
_CERT_PEM = cert_pem(_CERT)
_KEY = ed25519.Ed25519PrivateKey.generate()
_KEY_DER = spki_der(_KEY)
_KEY_PEM = spki_pem(_KEY)
_OTHER_CERT = make_certificate(sans=[x509.RFC822Name("bob@example.com")], key=certgen.leaf_key())


def _assert_cert_signer(signer: Signer) -> None:
    assert signer.certificate == parse_certificate(_CERT_DER)
    assert signer.certificate.uris == (
        "https://github.com/o/r/.github/workflows/rel.yml@refs/tags/v1",
    )
    assert signer.certificate.extensions["source_repository_uri"] == "https://github.com/o/r"
    assert signer.public_key_sha256 == public_key_fingerprint(spki_der(certgen.leaf_key()))
    assert signer.public_key_der is None
    assert signer.key_format == "x509"


def _assert_key_signer(signer: Signer) -> None:
    assert signer == Signer(None, public_key_fingerprint(_KEY_DER), _KEY_DER, "x509")


_CERT_BODIES: dict[str, Callable[[], dict[str, object]]] = {
    "hashedrekord/0.0.1": lambda: hashedrekord_v001(_CERT_PEM),
    "rekord/0.0.1": lambda: rekord_v001(_CERT_PEM),
    "intoto/0.0.1": lambda: intoto_v001(_CERT_PEM),
    "intoto/0.0.2": lambda: intoto_v002([_CERT_PEM]),
    "dsse/0.0.1": lambda: dsse_v001([_CERT_PEM]),
    "hashedrekord/0.0.2": lambda: hashedrekord_v002(v2_verifier(cert=_CERT_DER)),
    "dsse/0.0.2": lambda: dsse_v002([v2_verifier(cert=_CERT_DER)]),
}
_KEY_BODIES: dict[str, Callable[[], dict[str, object]]] = {
    "hashedrekord/0.0.1": lambda: hashedrekord_v001(_KEY_PEM),
    "rekord/0.0.1": lambda: rekord_v001(_KEY_PEM),
    "intoto/0.0.1": lambda: intoto_v001(_KEY_PEM),
    "intoto/0.0.2": lambda: intoto_v002([_KEY_PEM]),
    "dsse/0.0.1": lambda: dsse_v001([_KEY_PEM]),
    "hashedrekord/0.0.2": lambda: hashedrekord_v002(v2_verifier(key=_KEY_DER)),
    "dsse/0.0.2": lambda: dsse_v002([v2_verifier(key=_KEY_DER)]),
}


def test_synthetic_tables_cover_every_supported_kind() -> None:
    assert set(_CERT_BODIES) == set(_KEY_BODIES) == set(SUPPORTED_KINDS)


@pytest.mark.parametrize("kind", SUPPORTED_KINDS)
def test_every_kind_with_a_certificate(kind: str) -> None:
    entry = parse_entry(encode(_CERT_BODIES[kind]()))
    assert f"{entry.kind}/{entry.api_version}" == kind
    assert entry.artifact_digest == ("sha256", DIGEST)
    (signer,) = entry.signers
    _assert_cert_signer(signer)


@pytest.mark.parametrize("kind", SUPPORTED_KINDS)
def test_every_kind_with_a_bare_public_key(kind: str) -> None:
    entry = parse_entry(encode(_KEY_BODIES[kind]()))
    assert entry.artifact_digest == ("sha256", DIGEST)
    (signer,) = entry.signers
    _assert_key_signer(signer)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(hashedrekord_v001(_CERT_DER), id="hashedrekord-der-cert"),
        pytest.param(
            hashedrekord_v001(_CERT_PEM + cert_pem(_OTHER_CERT)), id="hashedrekord-pem-chain"
        ),
        pytest.param(dsse_v001([_CERT_DER]), id="dsse-der-cert"),
    ],
)
def test_v1_key_material_may_be_der_or_a_chain(body: dict[str, object]) -> None:
    _assert_cert_signer(parse_entry(encode(body)).signers[0])


def test_v1_digest_is_lowercased_and_other_algorithms_kept() -> None:
    upper = hashedrekord_v001(_CERT_PEM, digest=DIGEST.upper())
    assert parse_entry(encode(upper)).artifact_digest == ("sha256", DIGEST)
    body = hashedrekord_v001(_CERT_PEM)
    body["spec"]["data"]["hash"] = {"algorithm": "sha512", "value": "ab" * 64}  # type: ignore[index]
    assert parse_entry(encode(body)).artifact_digest == ("sha512", "ab" * 64)


def test_v2_digest_algorithms() -> None:
    body = hashedrekord_v002(v2_verifier(cert=_CERT_DER))
    body["spec"]["hashedRekordV002"]["data"] = {  # type: ignore[index]
        "algorithm": "SHA2_384",
        "digest": b64(b"\x01" * 48),
    }
    assert parse_entry(encode(body)).artifact_digest == ("sha384", "01" * 48)


@pytest.mark.parametrize("fmt", ["ssh", "minisign", "pgp"])
def test_rekord_non_x509_keys_are_fingerprinted_as_bytes(fmt: str) -> None:
    key = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey user@host\n"
    (signer,) = parse_entry(encode(rekord_v001(key, fmt=fmt))).signers
    assert signer == Signer(None, hashlib.sha256(key).hexdigest(), key, fmt)


def test_intoto_v001_without_payload_hash_has_no_digest() -> None:
    entry = parse_entry(encode(intoto_v001(_CERT_PEM, payload_digest=None)))
    assert entry.artifact_digest is None
    _assert_cert_signer(entry.signers[0])


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda pems, ders: intoto_v002(pems), id="intoto-0.0.2"),
        pytest.param(lambda pems, ders: dsse_v001(pems), id="dsse-0.0.1"),
        pytest.param(
            lambda pems, ders: dsse_v002([v2_verifier(cert=d) for d in ders]), id="dsse-0.0.2"
        ),
    ],
)
def test_multiple_signatures_keep_order_and_share_repeated_keys(
    build: Callable[[list[bytes], list[bytes]], dict[str, object]],
) -> None:
    other_der = cert_der(_OTHER_CERT)
    pems = [_CERT_PEM, cert_pem(_OTHER_CERT), _CERT_PEM]
    entry = parse_entry(encode(build(pems, [_CERT_DER, other_der, _CERT_DER])))
    first, second, third = entry.signers
    _assert_cert_signer(first)
    assert second.certificate is not None
    assert second.certificate.emails == ("bob@example.com",)
    assert third.certificate is first.certificate  # parsed once
    assert [s.position for s in entry.signers] == [0, 1, 2]


def test_every_signature_is_read_however_many() -> None:
    keys = [spki_pem(ed25519.Ed25519PrivateKey.generate()) for _ in range(40)]
    entry = parse_entry(encode(dsse_v001([*keys, _CERT_PEM])))
    assert [s.position for s in entry.signers] == list(range(41))
    _assert_cert_signer(entry.signers[40])
    assert entry.skipped == () and entry.skipped_count == 0


_DECOYS: dict[str, bytes] = {
    "300 SANs": cert_pem(
        make_certificate(sans=[x509.RFC822Name(f"decoy{i}@example.com") for i in range(300)])
    ),
    "over 128 KiB": cert_pem(
        make_certificate(
            sans=[x509.DNSName(f"decoy-{i:05d}.example.com") for i in range(6000)],
            extensions={},
        )
    ),
    "BIT STRING issuer": certgen.poisoned_issuer_certificate(),
    "not a certificate": b"\x30\x03\x02\x01\x00",
}


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda pems, ders: dsse_v001(pems), id="dsse-0.0.1"),
        pytest.param(lambda pems, ders: intoto_v002(pems), id="intoto-0.0.2"),
        pytest.param(
            lambda pems, ders: dsse_v002([v2_verifier(cert=d) for d in ders]), id="dsse-0.0.2"
        ),
    ],
)
@pytest.mark.parametrize("decoy", _DECOYS.values(), ids=_DECOYS.keys())
def test_a_decoy_signature_is_skipped_by_itself(
    build: Callable[[list[bytes], list[bytes]], dict[str, object]], decoy: bytes
) -> None:
    decoy_der = decoy if decoy[:1] == b"\x30" else certgen.pem_to_der(decoy)
    entry = parse_entry(encode(build([decoy, _CERT_PEM], [decoy_der, _CERT_DER])))
    (signer,) = entry.signers
    _assert_cert_signer(signer)
    assert signer.position == 1
    assert entry.skipped_count == 1
    (skipped,) = entry.skipped
    assert skipped.position == 0
    assert "signatures[0]" in skipped.reason and "certificate" in skipped.reason


def test_a_signature_that_is_not_an_object_is_skipped_by_itself() -> None:
    body = dsse_v001([_CERT_PEM])
    spec: Any = body["spec"]
    spec["signatures"] = ["junk", None, *spec["signatures"], {"verifier": "!!"}]
    entry = parse_entry(encode(body))
    assert [s.position for s in entry.signers] == [2]
    assert [s.position for s in entry.skipped] == [0, 1, 3]
    assert entry.skipped[0] == SkippedSignature(
        0, "dsse 0.0.1: spec.signatures[0]: expected an object, got a string"
    )


def test_skipped_reasons_are_capped_but_all_counted() -> None:
    garbage = [b"\x30\x00"] * (MAX_SKIPPED_KEPT + 10)
    entry = parse_entry(encode(dsse_v001([*garbage, _CERT_PEM])))
    assert entry.skipped_count == MAX_SKIPPED_KEPT + 10
    assert len(entry.skipped) == MAX_SKIPPED_KEPT
    assert entry.signers[0].position == MAX_SKIPPED_KEPT + 10


def test_an_entry_with_no_readable_signature_is_an_error() -> None:
    with pytest.raises(EntryParseError, match=r"expected a readable signature, got none of 2"):
        parse_entry(encode(dsse_v001([b"\x30\x00", _DECOYS["300 SANs"]])))


def test_a_certificate_cryptography_cannot_decode_is_an_entry_error() -> None:
    # cryptography raises TypeError on a BIT STRING commonName: it must not escape.
    poisoned = certgen.poisoned_issuer_certificate()
    for body in (hashedrekord_v001(poisoned), hashedrekord_v002(v2_verifier(cert=poisoned))):
        with pytest.raises(EntryParseError, match="TypeError"):
            parse_entry(encode(body))


def test_an_unexpected_decoder_error_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever a decoder raises on hostile bytes: the signature is skipped by itself, and a
    # single-signature entry raises EntryParseError, never the decoder's exception.
    from monitor.core import entries

    real = entries.parse_verifier

    def fragile(data: bytes) -> CertificateIdentity | bytes:
        if data == b"boom":
            raise RecursionError("deep")
        return real(data)

    monkeypatch.setattr(entries, "parse_verifier", fragile)
    entry = parse_entry(encode(dsse_v001([b"boom", _CERT_PEM])))
    assert [s.position for s in entry.signers] == [1]
    assert "RecursionError: deep" in entry.skipped[0].reason
    with pytest.raises(EntryParseError, match="RecursionError") as info:
        parse_entry(encode(hashedrekord_v001(b"boom")))
    assert isinstance(info.value.__cause__, RecursionError)


def test_entry_is_frozen_and_hashable() -> None:
    entry = parse_entry(encode(hashedrekord_v001(_CERT_PEM)))
    assert entry == parse_entry(encode(hashedrekord_v001(_CERT_PEM)))
    assert len({entry, parse_entry(encode(hashedrekord_v001(_CERT_PEM)))}) == 1
    with pytest.raises(AttributeError):
        entry.kind = "rekord"  # type: ignore[misc]


def test_key_order_and_whitespace_do_not_matter() -> None:
    body = json.dumps(dsse_v001([_CERT_PEM]), indent=2).encode()
    _assert_cert_signer(parse_entry(body).signers[0])


def test_bytearray_is_accepted() -> None:
    assert parse_entry(bytearray(encode(hashedrekord_v001(_CERT_PEM)))).kind == "hashedrekord"


def test_certificate_with_garbled_extension_still_yields_its_identity() -> None:
    cert = make_certificate(
        sans=[x509.RFC822Name("carol@example.com")],
        extensions=fulcio_extensions(raw={certgen.OID_ISSUER_V2: b"\xff"}),
    )
    signer = parse_entry(encode(hashedrekord_v001(cert_pem(cert)))).signers[0]
    assert signer.certificate is not None
    assert signer.certificate.emails == ("carol@example.com",)
    assert signer.certificate.issuer is None
    assert signer.certificate.unparseable_extensions == (certgen.OID_ISSUER_V2,)


# --- malformed bodies -------------------------------------------------------------------------


def _edit(body: dict[str, object], path: str, value: object) -> dict[str, object]:
    """Copy of ``body`` with the dotted ``path`` set to ``value`` (or deleted for _DELETE)."""
    out = copy.deepcopy(body)
    node: Any = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


_DELETE = object()
_HR = hashedrekord_v001(_CERT_PEM)
_HR2 = hashedrekord_v002(v2_verifier(cert=_CERT_DER))
_DSSE = dsse_v001([_CERT_PEM])
_DSSE2 = dsse_v002([v2_verifier(cert=_CERT_DER)])
_INTOTO2 = intoto_v002([_CERT_PEM])
_REKORD = rekord_v001(_CERT_PEM)
_MANY_SANS = make_certificate(
    sans=[x509.RFC822Name(f"u{i:05d}@example.com") for i in range(10_000)]
)
_TOO_MANY_SANS = make_certificate(sans=[x509.RFC822Name(f"u{i}@e.io") for i in range(MAX_SANS + 1)])

_MALFORMED: dict[str, bytes | dict[str, object]] = {
    "empty": b"",
    "not-json": b"hello",
    "truncated-json": encode(_HR)[:-5],
    "trailing-garbage": encode(_HR) + b"x",
    "invalid-utf8": b'{"kind": "\xff"}',
    "utf16-json": json.dumps(_HR).encode("utf-16"),
    "utf8-bom": b"\xef\xbb\xbf" + encode(_HR),
    "array-top": b"[]",
    "string-top": b'"hashedrekord"',
    "null-top": b"null",
    "nan": b'{"kind": NaN}',
    "huge-int": b'{"kind": ' + b"9" * 5000 + b"}",
    "nested-junk": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "two-mib": b'{"kind":"hashedrekord","pad":"' + b"a" * (2 * 1024 * 1024) + b'"}',
    "missing-kind": _edit(_HR, "kind", _DELETE),
    "kind-not-string": _edit(_HR, "kind", 1),
    "apiversion-null": _edit(_HR, "apiVersion", None),
    "missing-spec": _edit(_HR, "spec", _DELETE),
    "spec-array": _edit(_HR, "spec", []),
    "hr-missing-data": _edit(_HR, "spec.data", _DELETE),
    "hr-missing-hash": _edit(_HR, "spec.data.hash", _DELETE),
    "hr-hash-algorithm-md5": _edit(_HR, "spec.data.hash.algorithm", "md5"),
    "hr-hash-short": _edit(_HR, "spec.data.hash.value", "abcd"),
    "hr-hash-not-hex": _edit(_HR, "spec.data.hash.value", "g" * 64),
    "hr-hash-spaces": _edit(_HR, "spec.data.hash.value", " " + DIGEST[1:]),
    "hr-hash-value-number": _edit(_HR, "spec.data.hash.value", 12),
    "hr-missing-signature": _edit(_HR, "spec.signature", _DELETE),
    "hr-missing-public-key": _edit(_HR, "spec.signature.publicKey", _DELETE),
    "hr-missing-key-content": _edit(_HR, "spec.signature.publicKey.content", _DELETE),
    "hr-key-content-object": _edit(_HR, "spec.signature.publicKey.content", {}),
    "hr-bad-base64": _edit(_HR, "spec.signature.publicKey.content", "not base64!"),
    "hr-unpadded-base64": _edit(_HR, "spec.signature.publicKey.content", "QUJD" + "RA"),
    "hr-non-ascii-base64": _edit(_HR, "spec.signature.publicKey.content", "QUJD\u00e9"),
    "hr-empty-key": _edit(_HR, "spec.signature.publicKey.content", ""),
    "hr-cert-garbage": _edit(
        _HR, "spec.signature.publicKey.content", b64(b"\x30\x82\x01\x00garbage")
    ),
    "hr-pem-garbage": _edit(
        _HR,
        "spec.signature.publicKey.content",
        b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    ),
    "hr-pem-other-label": _edit(
        _HR,
        "spec.signature.publicKey.content",
        b64(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n"),
    ),
    "hr-10000-sans": hashedrekord_v001(cert_pem(_MANY_SANS)),
    "hr-257-sans": hashedrekord_v001(cert_pem(_TOO_MANY_SANS)),
    "rekord-unknown-format": _edit(_REKORD, "spec.signature.format", "gpg"),
    "rekord-missing-format": _edit(_REKORD, "spec.signature.format", _DELETE),
    "rekord-key-by-url": _edit(_REKORD, "spec.signature.publicKey", {"url": "https://x"}),
    "intoto1-missing-public-key": _edit(intoto_v001(_CERT_PEM), "spec.publicKey", _DELETE),
    "intoto1-content-string": _edit(intoto_v001(_CERT_PEM), "spec.content", "x"),
    "intoto1-payload-hash-null": _edit(intoto_v001(_CERT_PEM), "spec.content.payloadHash", None),
    "intoto2-missing-envelope": _edit(_INTOTO2, "spec.content.envelope", _DELETE),
    "intoto2-no-signatures": _edit(_INTOTO2, "spec.content.envelope.signatures", []),
    "intoto2-signatures-object": _edit(_INTOTO2, "spec.content.envelope.signatures", {}),
    "intoto2-signature-string": _edit(_INTOTO2, "spec.content.envelope.signatures.0", "x"),
    "intoto2-missing-public-key": _edit(
        _INTOTO2, "spec.content.envelope.signatures.0.publicKey", _DELETE
    ),
    "dsse-every-signature-unreadable": dsse_v001([cert_pem(_TOO_MANY_SANS), b"garbage"]),
    "dsse-missing-verifier": _edit(_DSSE, "spec.signatures.0.verifier", _DELETE),
    "dsse-missing-payload-hash": _edit(_DSSE, "spec.payloadHash", _DELETE),
    "hr2-missing-body": _edit(_HR2, "spec.hashedRekordV002", _DELETE),
    "hr2-v1-shape": {**_HR, "apiVersion": "0.0.2"},
    "hr2-digest-hex": _edit(_HR2, "spec.hashedRekordV002.data.digest", DIGEST),
    "hr2-digest-short": _edit(_HR2, "spec.hashedRekordV002.data.digest", b64(b"\x00" * 31)),
    "hr2-algorithm-lowercase": _edit(_HR2, "spec.hashedRekordV002.data.algorithm", "sha256"),
    "hr2-verifier-neither": _edit(
        _HR2, "spec.hashedRekordV002.signature.verifier", {"keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    ),
    "hr2-verifier-both": _edit(
        _HR2, "spec.hashedRekordV002.signature.verifier", v2_verifier(cert=_CERT_DER, key=_KEY_DER)
    ),
    "hr2-cert-is-a-key": _edit(
        _HR2, "spec.hashedRekordV002.signature.verifier", v2_verifier(cert=_KEY_DER)
    ),
    "hr2-key-is-a-cert": _edit(
        _HR2, "spec.hashedRekordV002.signature.verifier", v2_verifier(key=_CERT_DER)
    ),
    "hr2-raw-bytes-missing": _edit(
        _HR2, "spec.hashedRekordV002.signature.verifier.x509Certificate", {}
    ),
    "dsse2-missing-body": _edit(_DSSE2, "spec.dsseV002", _DELETE),
    "dsse2-no-signatures": _edit(_DSSE2, "spec.dsseV002.signatures", []),
    "dsse2-missing-verifier": _edit(_DSSE2, "spec.dsseV002.signatures.0.verifier", _DELETE),
    "dsse2-payload-hash-string": _edit(_DSSE2, "spec.dsseV002.payloadHash", "x"),
}


@pytest.mark.parametrize("body", _MALFORMED.values(), ids=_MALFORMED.keys())
def test_malformed_bodies_raise_entry_parse_error(body: bytes | dict[str, object]) -> None:
    raw = body if isinstance(body, bytes) else encode(body)
    with pytest.raises(EntryParseError) as info:
        parse_entry(raw)
    assert isinstance(info.value, ParseError)
    assert not isinstance(info.value, UnsupportedEntryError)
    assert ": expected " in str(info.value)


@pytest.mark.parametrize(
    ("kind", "version"),
    [
        ("rpm", "0.0.1"),
        ("cose", "0.0.1"),
        ("intoto", "0.0.3"),
        ("hashedrekord", "0.0.3"),
        ("rekord", "0.0.2"),
        ("alpine", "0.0.1"),
        ("", ""),
    ],
)
def test_unsupported_kinds_raise_the_unsupported_subclass(kind: str, version: str) -> None:
    with pytest.raises(UnsupportedEntryError, match="expected a kind/apiVersion among"):
        parse_entry(encode({"apiVersion": version, "kind": kind, "spec": {}}))


def test_non_bytes_input_raises_entry_parse_error() -> None:
    with pytest.raises(EntryParseError, match="expected bytes, got str"):
        parse_entry(encode(_HR).decode())  # type: ignore[arg-type]


def test_body_limit_is_checked_before_decoding() -> None:
    with pytest.raises(EntryParseError, match=f"at most {MAX_BODY_BYTES} bytes"):
        parse_entry(b"\xff" * (MAX_BODY_BYTES + 1))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            _edit(_HR, "spec.signature.publicKey.content", _DELETE),
            "hashedrekord 0.0.1: spec.signature.publicKey.content: expected a string, got nothing",
        ),
        (
            _edit(_HR, "spec.data.hash", None),
            "hashedrekord 0.0.1: spec.data.hash: expected an object, got null",
        ),
        (
            _edit(_DSSE2, "spec.dsseV002.signatures.0.verifier", _DELETE),
            "dsse 0.0.2: spec.dsseV002.signatures[0].verifier: expected an object, got nothing",
        ),
        (
            _edit(_INTOTO2, "spec.content.envelope.signatures", []),
            "intoto 0.0.2: spec.content.envelope.signatures: expected at least one signature, "
            "got none",
        ),
        (
            _edit(_HR, "spec.signature.publicKey.content", b64(b"\x30\x03\x02\x01\x00")),
            "hashedrekord 0.0.1: spec.signature.publicKey.content: certificate: expected a DER"
            " X.509 certificate",
        ),
        (
            _edit(_HR, "spec", _DELETE),
            "hashedrekord 0.0.1: spec: expected an object, got nothing",
        ),
        (
            _edit(_INTOTO2, "spec.content.envelope.signatures.0.publicKey", b64(b"\x30\x00")),
            "intoto 0.0.2: spec.content.envelope.signatures[0].publicKey: certificate: expected",
        ),
    ],
)
def test_error_messages_name_the_kind_and_path(body: dict[str, object], message: str) -> None:
    with pytest.raises(EntryParseError) as info:
        parse_entry(encode(body))
    assert str(info.value).startswith(message)


def test_library_errors_are_chained() -> None:
    with pytest.raises(EntryParseError) as info:
        parse_entry(encode(_edit(_HR, "spec.signature.publicKey.content", "!!!!")))
    assert info.value.__cause__ is not None
    with pytest.raises(EntryParseError) as info:
        parse_entry(b"{")
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


# --- properties ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_kinds = st.sampled_from([k.split("/") for k in SUPPORTED_KINDS])
_TEMPLATES = [b() for b in (*_CERT_BODIES.values(), *_KEY_BODIES.values())]


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _only_entry_parse_errors(raw: bytes) -> None:
    with contextlib.suppress(EntryParseError):
        parse_entry(raw)


_PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_entry_parse_error(raw: bytes) -> None:
    _only_entry_parse_errors(raw)


@_PROPERTY
@given(_json)
def test_arbitrary_json_raises_only_entry_parse_error(doc: object) -> None:
    _only_entry_parse_errors(json.dumps(doc).encode())


@_PROPERTY
@given(_kinds, _json)
def test_right_kind_with_junk_spec_raises_only_entry_parse_error(
    kind_version: list[str], spec: object
) -> None:
    kind, version = kind_version
    _only_entry_parse_errors(encode({"kind": kind, "apiVersion": version, "spec": spec}))


@_PROPERTY
@given(st.data())
def test_valid_bodies_with_one_subtree_replaced_raise_only_entry_parse_error(
    data: st.DataObject,
) -> None:
    body = copy.deepcopy(data.draw(st.sampled_from(_TEMPLATES)))
    path = data.draw(st.sampled_from(_paths(body)[1:]))
    node: Any = body
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = data.draw(
        _json | st.binary(max_size=64).map(b64) | st.sampled_from([b64(_KEY_DER), b64(_CERT_DER)])
    )
    _only_entry_parse_errors(encode(body))


@_PROPERTY
@given(st.data())
def test_bit_flipped_certificates_raise_only_entry_parse_error(data: st.DataObject) -> None:
    der = bytearray(_CERT_DER)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(der) - 1))
        der[i] = data.draw(st.integers(0, 255))
    body = data.draw(
        st.sampled_from(
            [
                hashedrekord_v002(v2_verifier(cert=bytes(der))),
                hashedrekord_v001(bytes(der)),
                dsse_v001([bytes(der)]),
            ]
        )
    )
    try:
        entry = parse_entry(encode(body))
    except EntryParseError:
        return
    # A flip the parser accepts (signature bytes, a value) still yields a consistent identity.
    cert = entry.signers[0].certificate
    assert cert is None or isinstance(cert, CertificateIdentity)
