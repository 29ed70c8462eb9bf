"""Which signing certificates a log's Fulcio certificate authorities issued.

Pure: ``cryptography`` only (``monitor.config.trust_roots.fulcio_trust`` builds one from a
Sigstore trusted root; ``monitor.service.wiring.trust_for_log`` picks a configured log's).

Anyone can write a certificate that names any email or workflow and log it: a watch rule counts a
certificate as the identity it names only when a CA the log's signers trust issued it (see
``monitor.core.watch``). ``CertificateTrust`` holds those CAs, from a PEM bundle (config
``fulcio_roots``, e.g. the sandbox's ``ca.pem``) or from a Sigstore trusted root's Fulcio
authorities, and answers ``is_trusted(leaf)``::

    bundle / trusted root --from_*--> CAs: self-signed roots, and CA certificates whose
                                      signatures chain to one of them (checked once)
    leaf --is_trusted--> signed by one of those CAs? (signature checked with cryptography,
                         cached per certificate) and, given a time, valid then?

Fulcio leaves are issued directly by an intermediate or a root of the trust root, so no chain is
built from certificates the entry carries: only the leaf is checked. Name constraints, policies
and key usages beyond ``BasicConstraints(ca=True)`` on the issuers are not checked: Fulcio's CAs
set none that would matter, and a bundle is the operator's explicit choice.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from monitor.core.certs import CertificateParseError, parse_certificate
from monitor.core.errors import ConfigError
from monitor.core.sct import SctParseError, logged_tbs

if TYPE_CHECKING:
    from monitor.core.certs import CertificateIdentity

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_CERTIFICATES",
    "CertificateTrust",
    "TrustError",
]

#: A PEM bundle larger than this is refused (Fulcio's whole chain is about 2 KiB).
MAX_BUNDLE_BYTES: Final = 1024 * 1024
#: At most this many certificates in a bundle.
MAX_BUNDLE_CERTIFICATES: Final = 100

_CACHE_MAX: Final = 4096
_DER: Final = Encoding.DER

# (valid_from, valid_until) from a trusted root's `validFor`; None ends are open.
_Window = tuple[datetime | None, datetime | None]


class TrustError(ConfigError):
    """A CA bundle or trusted root is unusable; the message says what to change."""


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    windows: tuple[_Window, ...]
    """When the CA issued certificates (a trusted root's validFor); () = no restriction."""
    key_hash: bytes = b""
    """SHA-256 of the CA's SubjectPublicKeyInfo DER: how a CT precertificate names its issuer."""

    def valid_at(self, when: datetime) -> bool:
        cert = self.cert
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            return False
        if not self.windows:
            return True
        return any(
            (start is None or start <= when) and (end is None or when <= end)
            for start, end in self.windows
        )


def _spki_hash(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(_DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "an empty subject"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s key signed `cert` and its subject is `cert`'s issuer name."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


class CertificateTrust:
    """The CA certificates that issue a log's signing certificates, and the check that a leaf
    was issued by one of them. Build it with `from_pem_bundle` or `from_authorities`."""

    def __init__(
        self,
        certificates: Sequence[x509.Certificate],
        *,
        windows: dict[bytes, tuple[_Window, ...]] | None = None,
        source: str = "CA bundle",
    ) -> None:
        """Keep the CA certificates of `certificates` that chain to a self-signed root among them.

        `windows` maps a certificate's DER to when it issued (trusted roots only). Raises
        `TrustError` when a certificate is not a CA, does not chain to a root of the set, or
        when there is no self-signed root at all: a bundle that does not mean what its author
        thinks must not silently trust less (or more).
        """
        self.source = source
        unique: dict[bytes, x509.Certificate] = {}
        for cert in certificates:
            unique.setdefault(cert.public_bytes(_DER), cert)
        if not unique:
            raise TrustError(f"{source}: expected at least one CA certificate, got none")
        for cert in unique.values():
            if not _is_ca(cert):
                raise TrustError(
                    f"{source}: certificate {_describe(cert)} is not a CA certificate "
                    "(BasicConstraints ca=TRUE); list only the CAs that issue signing certificates"
                )
        trusted = [c for c in unique.values() if c.issuer == c.subject and _issued_by(c, c)]
        if not trusted:
            raise TrustError(
                f"{source}: expected at least one self-signed root certificate, got none; "
                "add the root that issued these certificates"
            )
        pending = [c for c in unique.values() if c not in trusted]
        progress = True
        while pending and progress:
            progress = False
            for cert in list(pending):
                if any(_issued_by(cert, ca) for ca in trusted):
                    trusted.append(cert)
                    pending.remove(cert)
                    progress = True
        if pending:
            names = "; ".join(_describe(c) for c in pending)
            raise TrustError(
                f"{source}: certificate(s) {names} do not chain to a root in the set; "
                "add their issuers"
            )
        windows = windows or {}
        self._authorities = tuple(
            _Authority(c, windows.get(c.public_bytes(_DER), ()), _spki_hash(c)) for c in trusted
        )
        self._cache: dict[str, int | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_pem_bundle(cls, pem: bytes, *, source: str = "CA bundle") -> CertificateTrust:
        """The CAs of a PEM bundle (roots and intermediates, any order). Raises `TrustError`."""
        if len(pem) > MAX_BUNDLE_BYTES:
            raise TrustError(f"{source}: expected at most {MAX_BUNDLE_BYTES} bytes, got {len(pem)}")
        if b"PRIVATE KEY" in pem:
            raise TrustError(f"{source}: holds a PRIVATE key; give only CA certificates")
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as e:
            raise TrustError(
                f"{source}: expected PEM certificates (-----BEGIN CERTIFICATE-----), got {e}"
            ) from e
        if len(certs) > MAX_BUNDLE_CERTIFICATES:
            raise TrustError(
                f"{source}: expected at most {MAX_BUNDLE_CERTIFICATES} certificates, "
                f"got {len(certs)}"
            )
        return cls(certs, source=source)

    @classmethod
    def from_authorities(
        cls,
        authorities: Iterable[tuple[Sequence[x509.Certificate], datetime | None, datetime | None]],
        *,
        source: str,
    ) -> CertificateTrust:
        """The CAs of a trusted root's Fulcio authorities, each given as (its chain, valid from,
        valid until; None ends are open). A certificate listed by several authorities (a rotated
        root) issued in any of their windows. Raises `TrustError`."""
        certs: list[x509.Certificate] = []
        windows: dict[bytes, tuple[_Window, ...]] = {}
        for chain, valid_from, valid_until in authorities:
            for cert in chain:
                der = cert.public_bytes(_DER)
                if der not in windows:
                    certs.append(cert)
                    windows[der] = ()
                windows[der] += ((valid_from, valid_until),)
        return cls(certs, windows=windows, source=source)

    @property
    def authorities(self) -> tuple[x509.Certificate, ...]:
        """The trusted CA certificates, roots first."""
        return tuple(a.cert for a in self._authorities)

    def issuer_of(self, cert: CertificateIdentity) -> x509.Certificate | None:
        """The trusted CA whose key signed `cert` (time not considered), or None."""
        index = self._issuer_index(cert)
        return None if index is None else self._authorities[index].cert

    def is_trusted(self, cert: CertificateIdentity, at: datetime | None = None) -> bool:
        """Whether one of the trusted CAs issued `cert` (its signature is checked).

        `at` (the entry's integration time, when known) must also fall in the leaf's validity,
        the issuing CA certificate's, and the CA's validFor window; None skips time checks
        (tiled logs' entries carry no time). A naive `at` is taken as UTC.
        """
        index = self._issuer_index(cert)
        if index is None:
            return False
        if at is None:
            return True
        when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        if not cert.not_before <= when <= cert.not_after:
            return False
        return self._authorities[index].valid_at(when)

    def is_trusted_precert(
        self,
        tbs: CertificateIdentity,
        issuer_key_hash: bytes,
        at: datetime | None = None,
        precertificate: bytes | None = None,
    ) -> bool:
        """Whether a CT precert_entry (its TBSCertificate `tbs` and `issuer_key_hash`) is a
        precertificate a trusted CA signed.

        The leaf alone proves nothing: whoever writes CT leaves can write any TBSCertificate
        with a CA's name and key hash. So the signed `precertificate` (the entry's extra_data
        or TileLeaf) must chain to a trusted CA at `at` as `is_trusted` checks a certificate,
        that CA's SubjectPublicKeyInfo must hash to `issuer_key_hash`, and the precertificate's
        TBSCertificate without its poison extension must be `tbs` byte for byte. No
        precertificate, or one that cannot be read: untrusted. `at` as for `is_trusted`.
        """
        if precertificate is None:
            return False
        try:
            pre = parse_certificate(precertificate)
            logged = logged_tbs(precertificate)
        except (CertificateParseError, SctParseError):
            return False
        if logged != tbs.der:
            return False
        index = self._issuer_index(pre)
        if index is None or self._authorities[index].key_hash != issuer_key_hash:
            return False
        return self.is_trusted(pre, at)

    def _issuer_index(self, cert: CertificateIdentity) -> int | None:
        key = cert.fingerprint_sha256
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        found = self._find_issuer(cert.der)
        with self._lock:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _find_issuer(self, der: bytes) -> int | None:
        try:
            leaf = x509.load_der_x509_certificate(der)
            issuer_name = leaf.issuer
        except ValueError:
            return None
        for index, authority in enumerate(self._authorities):
            # Names first (cheap); the same name may belong to several keys (rotated roots).
            if authority.cert.subject == issuer_name and _issued_by(leaf, authority.cert):
                return index
        return None

    def __repr__(self) -> str:
        names = ", ".join(_describe(c) for c in self.authorities)
        return f"CertificateTrust({self.source}: {names})"
