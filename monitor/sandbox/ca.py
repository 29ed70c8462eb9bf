"""A local Fulcio-like certificate authority for the sandbox log.

The CA is an ECDSA P-256 root kept in the sandbox state directory (``ca.pem`` and
``ca.key``, the key mode 0600). It issues short-lived code-signing leaf certificates shaped
like Fulcio's: an empty subject, a critical SubjectAlternativeName holding one email address
or one URI, KeyUsage digitalSignature, ExtendedKeyUsage codeSigning, and the Sigstore OID
extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md):

- ``1.3.6.1.4.1.57264.1.1`` issuer (legacy) and ``.1.2``-``.1.6`` GitHub workflow claims
  (legacy): the raw string bytes as the extension value, no DER wrapping;
- ``1.3.6.1.4.1.57264.1.8`` issuer (v2) and ``.1.9``-``.1.22`` the provider-generic CI
  claims: a DER UTF8String.

It can also mint a *self-signed* certificate for any identity: the anti-spam case, a
certificate that claims an identity but does not chain to the sandbox root.

Like Fulcio, a CA given a CT log (`LocalCA.ct_log`, the sandbox's) first signs a
*precertificate* (the certificate with the critical poison extension 1.3.6.1.4.1.11129.2.4.3),
submits its TBSCertificate (poison removed) to the CT log, and embeds the SCT the log returns
in the final certificate (extension 1.3.6.1.4.1.11129.2.4.2, RFC 6962 section 3.3).
Self-signed certificates are never logged.

Leaf keys and certificates are cached per identity so that bulk appends only vary the
artifact digest and its signature (one precertificate and SCT per identity, not per entry).
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from monitor.core.sct import SCT_LIST_OID, Sct, serialize_sct_list
from monitor.sandbox.storage import write_private

CtSubmit = Callable[[bytes, bytes], Sct]
"""A CT log's add-pre-chain: (TBSCertificate DER without the poison, issuer's DER
SubjectPublicKeyInfo) -> the SCT the log signs for it."""

log = logging.getLogger(__name__)

FULCIO_OID_PREFIX: Final = "1.3.6.1.4.1.57264.1"

GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
DEFAULT_EMAIL_ISSUER: Final = "https://accounts.google.com"
DEFAULT_EMAIL: Final = "sandbox-signer@example.com"

#: Leaf certificate lifetime, like Fulcio's ten minutes.
LEAF_VALIDITY: Final = datetime.timedelta(minutes=10)
#: A cached leaf is replaced once it is this old, so entries stay inside its validity window.
LEAF_REFRESH: Final = datetime.timedelta(minutes=5)

#: Legacy extensions (raw string values): name -> OID arc under 1.3.6.1.4.1.57264.1.
LEGACY_EXTENSIONS: Final[dict[str, int]] = {
    "github_workflow_trigger": 2,
    "github_workflow_sha": 3,
    "github_workflow_name": 4,
    "github_workflow_repository": 5,
    "github_workflow_ref": 6,
}

#: Provider-generic extensions (DER UTF8String values): name -> OID arc.
V2_EXTENSIONS: Final[dict[str, int]] = {
    "build_signer_uri": 9,
    "build_signer_digest": 10,
    "runner_environment": 11,
    "source_repository_uri": 12,
    "source_repository_digest": 13,
    "source_repository_ref": 14,
    "source_repository_identifier": 15,
    "source_repository_owner_uri": 16,
    "source_repository_owner_identifier": 17,
    "build_config_uri": 18,
    "build_config_digest": 19,
    "build_trigger": 20,
    "run_invocation_uri": 21,
    "source_repository_visibility_at_signing": 22,
}

_GITHUB_WORKFLOW_URI = re.compile(
    r"^https://github\.com/(?P<owner>[^/]+)/(?P<repo>[^/]+)/"
    r"(?P<path>\.github/workflows/[^@]+)@(?P<ref>.+)$"
)
_FAKE_SHA: Final = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
#: Subject and issuer name of every self-signed leaf.
SELF_SIGNED_CN: Final = "tlog-monitor sandbox self-signed"


class IdentityError(ValueError):
    """An identity specification is malformed (the admin API answers 400)."""


@dataclass(frozen=True)
class Identity:
    """Who a leaf certificate names.

    Exactly one of ``email`` and ``uri`` is set. ``extensions`` maps the names in
    ``LEGACY_EXTENSIONS`` / ``V2_EXTENSIONS`` to values; for a GitHub Actions workflow URI
    the usual GitHub claims are derived from the URI unless given.
    """

    email: str | None = None
    uri: str | None = None
    issuer: str = DEFAULT_EMAIL_ISSUER
    extensions: tuple[tuple[str, str], ...] = field(default=())

    @property
    def san(self) -> str:
        """The SubjectAlternativeName value."""
        return self.email if self.email is not None else str(self.uri)

    @classmethod
    def from_json(cls, data: object) -> Identity:
        """Build an identity from the admin API's JSON object (``None`` = the default)."""
        if data is None:
            return cls(email=DEFAULT_EMAIL)
        if not isinstance(data, dict):
            raise IdentityError(f"identity: expected an object, got {type(data).__name__}")
        email, uri = data.get("email"), data.get("uri")
        if (email is None) == (uri is None):
            raise IdentityError("identity: expected exactly one of 'email' and 'uri'")
        if not isinstance(email or uri, str) or not (email or uri):
            raise IdentityError("identity: 'email' / 'uri' must be a non-empty string")
        default_issuer = DEFAULT_EMAIL_ISSUER if email is not None else GITHUB_ISSUER
        issuer = data.get("issuer", default_issuer)
        if not isinstance(issuer, str) or not issuer:
            raise IdentityError("identity: 'issuer' must be a non-empty string")
        raw_ext = data.get("extensions", {})
        if not isinstance(raw_ext, dict):
            raise IdentityError("identity: 'extensions' must be an object")
        ext: dict[str, str] = {}
        for name, value in raw_ext.items():
            if name not in LEGACY_EXTENSIONS and name not in V2_EXTENSIONS:
                known = sorted([*LEGACY_EXTENSIONS, *V2_EXTENSIONS])
                raise IdentityError(f"identity: unknown extension {name!r}; known: {known}")
            if not isinstance(value, str):
                raise IdentityError(f"identity: extension {name!r} must be a string")
            ext[name] = value
        return cls(
            email=email,
            uri=uri,
            issuer=issuer,
            extensions=tuple(sorted(ext.items())),
        )

    def to_json(self) -> dict[str, object]:
        """The admin API's JSON form of this identity."""
        out: dict[str, object] = {"issuer": self.issuer}
        if self.email is not None:
            out["email"] = self.email
        else:
            out["uri"] = self.uri
        if self.extensions:
            out["extensions"] = dict(self.extensions)
        return out

    def all_extensions(self) -> dict[str, str]:
        """The extensions to put in a certificate: derived GitHub claims, then explicit ones."""
        ext: dict[str, str] = {}
        m = _GITHUB_WORKFLOW_URI.match(self.uri or "")
        if m is not None and self.issuer == GITHUB_ISSUER:
            repo = f"{m['owner']}/{m['repo']}"
            repo_uri = f"https://github.com/{repo}"
            ext.update(
                {
                    "github_workflow_trigger": "push",
                    "github_workflow_sha": _FAKE_SHA,
                    "github_workflow_name": Path(m["path"]).stem,
                    "github_workflow_repository": repo,
                    "github_workflow_ref": m["ref"],
                    "build_signer_uri": str(self.uri),
                    "build_signer_digest": _FAKE_SHA,
                    "runner_environment": "github-hosted",
                    "source_repository_uri": repo_uri,
                    "source_repository_digest": _FAKE_SHA,
                    "source_repository_ref": m["ref"],
                    "source_repository_identifier": "100000001",
                    "source_repository_owner_uri": f"https://github.com/{m['owner']}",
                    "source_repository_owner_identifier": "200000002",
                    "build_config_uri": str(self.uri),
                    "build_config_digest": _FAKE_SHA,
                    "build_trigger": "push",
                    "run_invocation_uri": f"{repo_uri}/actions/runs/1/attempts/1",
                    "source_repository_visibility_at_signing": "public",
                }
            )
        ext.update(dict(self.extensions))
        return ext


@dataclass(frozen=True)
class SigningIdentity:
    """A leaf certificate and its private key, ready to sign artifact digests."""

    identity: Identity
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    self_signed: bool
    cert_der: bytes
    cert_pem: bytes
    minted_at: datetime.datetime


def _der_utf8string(value: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String (tag 0x0C) with a definite length."""
    raw = value.encode()
    n = len(raw)
    if n < 0x80:
        length = bytes([n])
    else:
        nbytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(nbytes)]) + nbytes
    return b"\x0c" + length + raw


def _fulcio_extensions(identity: Identity) -> list[x509.UnrecognizedExtension]:
    """The Sigstore OID extensions for an identity, in OID order."""
    exts: list[tuple[int, bytes]] = [
        (1, identity.issuer.encode()),  # legacy issuer: raw string
        (8, _der_utf8string(identity.issuer)),  # issuer v2: DER UTF8String
    ]
    for name, value in identity.all_extensions().items():
        if name in LEGACY_EXTENSIONS:
            exts.append((LEGACY_EXTENSIONS[name], value.encode()))
        else:
            exts.append((V2_EXTENSIONS[name], _der_utf8string(value)))
    exts.sort(key=lambda e: e[0])
    return [
        x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{FULCIO_OID_PREFIX}.{arc}"), value)
        for arc, value in exts
    ]


def _san(identity: Identity) -> x509.SubjectAlternativeName:
    if identity.email is not None:
        return x509.SubjectAlternativeName([x509.RFC822Name(identity.email)])
    return x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(identity.uri))])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA's key signs certificates and CRLs; a leaf's (as Fulcio's) signs artifacts only."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class LocalCA:
    """The sandbox's Fulcio-like root CA, persisted in a state directory.

    ``LocalCA.load_or_create(state_dir)`` reuses ``ca.pem``/``ca.key`` when present.
    ``signer(identity, self_signed=...)`` returns a cached :class:`SigningIdentity`.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self.certificate = cert
        self.root_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self._cache: dict[tuple[Identity, bool], SigningIdentity] = {}
        self._lock = threading.Lock()
        self.ct_log: CtSubmit | None = None
        """Where precertificates are logged (None: certificates carry no SCTs)."""
        self.precertificates: dict[bytes, bytes] = {}
        """The precertificates this CA signed (DER), by the TBSCertificate a CT log logs for
        each: what the sandbox CT logs serve beside a precert_entry."""
        self.spki: bytes = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def load_or_create(cls, state_dir: Path) -> LocalCA:
        """Load the CA from ``state_dir`` or create (and persist) a new one."""
        cert_path, key_path = state_dir / "ca.pem", state_dir / "ca.key"
        if cert_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path}: expected an ECDSA private key")
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            return cls(key, cert)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = cls._make_root(key)
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        log.info("created sandbox CA in %s", state_dir)
        return cls(key, cert)

    @staticmethod
    def _make_root(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlog-monitor sandbox"),
                x509.NameAttribute(NameOID.COMMON_NAME, "sandbox-fulcio-root"),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )

    def signer(self, identity: Identity, *, self_signed: bool = False) -> SigningIdentity:
        """A leaf key and certificate for ``identity``, minted once and reused while fresh."""
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            cached = self._cache.get((identity, self_signed))
            if cached is not None and now - cached.minted_at < LEAF_REFRESH:
                return cached
        # Minted outside the lock: logging the precertificate calls into the CT log, which may
        # ask for another identity's certificate (a fork's) on the way.
        minted = self._mint(identity, self_signed=self_signed, now=now)
        with self._lock:
            self._cache[(identity, self_signed)] = minted
        return minted

    def _mint(
        self, identity: Identity, *, self_signed: bool, now: datetime.datetime
    ) -> SigningIdentity:
        key = ec.generate_private_key(ec.SECP256R1())
        not_before = now - datetime.timedelta(seconds=30)
        builder = (
            x509.CertificateBuilder()
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + LEAF_VALIDITY)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(_san(identity), critical=True)
        )
        for ext in _fulcio_extensions(identity):
            builder = builder.add_extension(ext, critical=False)
        if self_signed:
            # Not chained to the sandbox root: anyone can make one of these. The identity is in
            # the SAN only, as in Fulcio's certificates: X.509 caps a common name at 64
            # characters, and a workflow URI is often longer.
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SELF_SIGNED_CN)])
            cert = builder.subject_name(subject).issuer_name(subject).sign(key, hashes.SHA256())
        else:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            builder = (
                builder.subject_name(x509.Name([]))
                .issuer_name(self.certificate.subject)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
                    critical=False,
                )
            )
            with_sct = self._with_sct(builder)
            cert = with_sct if with_sct is not None else builder.sign(self._key, hashes.SHA256())
        return SigningIdentity(
            identity=identity,
            certificate=cert,
            private_key=key,
            self_signed=self_signed,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            minted_at=now,
        )

    def _with_sct(self, builder: x509.CertificateBuilder) -> x509.Certificate | None:
        """Fulcio's issuance: precertificate, SCT from the CT log, final certificate with the
        SCT list as its last extension (so removing it gives back the logged TBSCertificate)."""
        # The precertificate a CA signs and submits; the log keeps its TBSCertificate without
        # the poison, which is the same builder's TBSCertificate without that extension. Kept
        # even with no CT log, so sandbox CT entries made by hand can carry a real one.
        pre = builder.add_extension(x509.PrecertPoison(), critical=True).sign(
            self._key, hashes.SHA256()
        )
        logged = builder.sign(self._key, hashes.SHA256()).tbs_certificate_bytes
        with self._lock:
            self.precertificates[logged] = pre.public_bytes(serialization.Encoding.DER)
        if self.ct_log is None:
            return None
        sct = self.ct_log(logged, self.spki)
        tls = serialize_sct_list([sct])
        value = b"\x04" + _der_length(len(tls)) + tls
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(SCT_LIST_OID), value)
        return builder.add_extension(extension, critical=False).sign(self._key, hashes.SHA256())


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw
