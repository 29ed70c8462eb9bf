"""Sigstore trusted roots: the transparency logs they list and their Fulcio CAs.

Where keys come from (config `trust_root` / `public_key`)::

    trust_root = "production" | "staging"  -> sigstore-python's embedded trusted_root.json
    trust_root = "/path/trusted_root.json" -> that file (e.g. a fresher root fetched via TUF)
    public_key = "<PEM>"                   -> monitor.core.keys.verifier_from_pem(key name, pem)

Offline by design: the named roots are read from the copy that ships inside the installed
sigstore package (``sigstore/_store/<quoted TUF URL>/trusted_root.json``) and parsed with the
public `sigstore_models` schema. sigstore-python's own loaders (`ClientTrustConfig.production()`)
either refresh over TUF (network) or, with ``offline=True``, copy the files into the user's cache
directory and read whatever is there; reading the package resource instead needs neither network
nor a writable home directory (the daemon runs hardened under systemd) and is deterministic for
an installed version. New Rekor v2 shards therefore arrive with a sigstore upgrade, or by pointing
`trust_root` at a newer trusted_root.json. Key names and origins per log API are in
``monitor.core.keys``.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pydantic
from cryptography import x509
from sigstore_models.common.v1 import PublicKeyDetails
from sigstore_models.trustroot.v1 import SigningConfig, TransparencyLogInstance, TrustedRoot

from monitor.core.chain import CertificateTrust
from monitor.core.keys import (
    KeyLoadError,
    LogApi,
    rekor_v1_key_name,
    rekor_v1_origin,
    tiles_origin,
    verifier_from_der,
)
from monitor.core.note import NoteVerifier
from monitor.core.trust import MAX_TRUST_FILE_BYTES

__all__ = [
    "TRUST_ROOT_NAMES",
    "CertificateAuthority",
    "TrustedCtLog",
    "TrustedLog",
    "embedded_trust_files",
    "embedded_tuf_root",
    "find_trusted_ct_log",
    "find_trusted_log",
    "fulcio_authorities",
    "fulcio_roots",
    "fulcio_trust",
    "trusted_ct_logs",
    "trusted_logs",
]

logger = logging.getLogger(__name__)

# Named trust roots -> the TUF repository whose trusted root sigstore-python embeds.
TRUST_ROOT_NAMES: dict[str, str] = {
    "production": "https://tuf-repo-cdn.sigstore.dev",
    "staging": "https://tuf-repo-cdn.sigstage.dev",
}
EMBEDDED_ROOTS_PACKAGE = "sigstore._store"
"""The one private part of a library the monitor relies on: sigstore-python's package data with
its embedded trusted roots. Its public loaders either go to the network or write into a cache
directory (see the module docstring); nothing else reads this package."""


def embedded_tuf_root(instance: str) -> bytes:
    """The TUF `root.json` that the installed sigstore package ships for `instance`
    ("production" or "staging"): the bootstrap root of a live `TufSource`, from which newer
    roots are followed. Raises `KeyLoadError` for an unknown instance or a missing file."""
    url = TRUST_ROOT_NAMES.get(instance)
    if url is None:
        names = " or ".join(repr(n) for n in TRUST_ROOT_NAMES)
        raise KeyLoadError(f"TUF root: expected {names}, got {instance!r}")
    try:
        store = importlib.resources.files(EMBEDDED_ROOTS_PACKAGE).joinpath(quote(url, safe=""))
        return store.joinpath("root.json").read_bytes()
    except (ModuleNotFoundError, OSError) as e:
        raise KeyLoadError(
            f"TUF root: expected the {instance} root.json embedded in the installed sigstore "
            f"package, got none ({e}); reinstall sigstore>=4.5,<5"
        ) from e


# --- trusted roots ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedLog:
    """One transparency log from a trusted root: where it is, how to read it, its key.

    `origin` is the exact checkpoint origin for tiled logs; for Rekor v1 it is None because the
    origin names the tree ("<host> - <treeID>"): use `expected_origin(tree_id)`.
    `valid_from` / `valid_until` are the key's validity window from the trusted root (a frozen
    shard has an end); None when open.
    """

    base_url: str
    api: LogApi
    key_name: str
    origin: str | None
    verifier: NoteVerifier
    log_id: bytes
    valid_from: datetime | None
    valid_until: datetime | None
    key: bytes = b""
    """The DER SubjectPublicKeyInfo as the trusted root lists it."""

    def expected_origin(self, tree_id: int | str | None = None) -> str:
        """The origin line this log's checkpoints must carry (for Rekor v1, of tree `tree_id`)."""
        if self.origin is not None:  # a tiled log: one fixed origin
            if tree_id is not None:
                raise ValueError(f"{self.base_url}: tiled logs have no tree ID, got {tree_id!r}")
            return self.origin
        if tree_id is None:
            raise ValueError(f"{self.base_url}: a Rekor v1 origin needs the tree ID, got None")
        return rekor_v1_origin(self.base_url, tree_id)

    def valid_at(self, when: datetime) -> bool:
        """Whether the trusted root says this log's key was valid at `when` (timezone-aware)."""
        if self.valid_from is not None and when < self.valid_from:
            return False
        return self.valid_until is None or when < self.valid_until


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA from a trusted root: its chain (intermediates first, self-signed root last)
    and the window in which it issued certificates."""

    uri: str | None
    certificates: tuple[x509.Certificate, ...]
    valid_from: datetime | None
    valid_until: datetime | None

    @property
    def root(self) -> x509.Certificate:
        """The chain's last certificate, its trust anchor."""
        return self.certificates[-1]


def embedded_trust_files(instance: str) -> tuple[bytes, bytes | None]:
    """The trusted_root.json and signing_config.v0.2.json (None if absent) that the installed
    sigstore package ships for `instance` ("production" or "staging"): the trust a live source
    starts from when its TUF repository was never reached. Raises `KeyLoadError`."""
    if instance not in TRUST_ROOT_NAMES:
        names = " or ".join(repr(n) for n in TRUST_ROOT_NAMES)
        raise KeyLoadError(f"trust root: expected {names}, got {instance!r}")
    return _read_trust_root_bytes(instance)


def _read_trust_root_bytes(trust_root: str) -> tuple[bytes, bytes | None]:
    """(trusted_root.json, signing_config or None) for a root name or a file path."""
    url = TRUST_ROOT_NAMES.get(trust_root)
    if url is None:
        path = Path(trust_root).expanduser()
        if not trust_root or not path.is_file():
            names = " or ".join(repr(n) for n in TRUST_ROOT_NAMES)
            raise KeyLoadError(
                f"trust root: expected {names} or the path of a trusted_root.json file, "
                f"got {trust_root!r}"
            )
        try:
            with path.open("rb") as f:
                data = f.read(MAX_TRUST_FILE_BYTES + 1)
        except OSError as e:
            raise KeyLoadError(f"trust root: could not read {path}: {e}") from e
        if len(data) > MAX_TRUST_FILE_BYTES:
            raise KeyLoadError(
                f"trust root: {path}: expected a trusted_root.json of at most "
                f"{MAX_TRUST_FILE_BYTES} bytes (Sigstore's are under 20 KiB), got more"
            )
        return data, None
    try:
        store = importlib.resources.files(EMBEDDED_ROOTS_PACKAGE).joinpath(quote(url, safe=""))
        root = store.joinpath("trusted_root.json").read_bytes()
    except (ModuleNotFoundError, OSError) as e:
        raise KeyLoadError(
            f"trust root: expected the {trust_root} trusted root embedded in the installed "
            f"sigstore package, got none ({e}); reinstall sigstore>=4.5,<5, or set trust_root "
            "to a trusted_root.json path or pin the key with public_key"
        ) from e
    try:
        signing = store.joinpath("signing_config.v0.2.json").read_bytes()
    except OSError:
        # Only used to confirm each log's API version; the key type answers otherwise.
        signing = None
    return root, signing


def _parse_trust_root(trust_root: str) -> tuple[TrustedRoot, dict[str, int]]:
    """The parsed trusted root and {log URL: Rekor major API version} from the signing config."""
    root_bytes, signing_bytes = _read_trust_root_bytes(trust_root)
    try:
        root = TrustedRoot.from_json(root_bytes)
    except pydantic.ValidationError as e:
        raise KeyLoadError(
            f"trust root: expected a Sigstore trusted root (trusted_root.json) in {trust_root!r}, "
            f"got invalid data: {e.error_count()} error(s), first: {e.errors()[0]['msg']}"
        ) from e
    versions: dict[str, int] = {}
    if signing_bytes is not None:
        try:
            config = SigningConfig.from_json(signing_bytes)
        except pydantic.ValidationError:
            logger.warning("ignoring unparseable embedded signing config for %s", trust_root)
        else:
            versions = {s.url.rstrip("/"): s.major_api_version for s in config.rekor_tlog_urls}
    return root, versions


# Named roots are immutable package data: parse them once per process.
@functools.lru_cache(maxsize=len(TRUST_ROOT_NAMES))
def _parsed_named_root(trust_root: str) -> tuple[TrustedRoot, dict[str, int]]:
    return _parse_trust_root(trust_root)


def _load(trust_root: str) -> tuple[TrustedRoot, dict[str, int]]:
    if trust_root in TRUST_ROOT_NAMES:
        return _parsed_named_root(trust_root)
    return _parse_trust_root(trust_root)


def _log_api(tlog: TransparencyLogInstance, versions: dict[str, int]) -> LogApi:
    """Rekor v1 or tiles: the signing config says so when it lists the log (only logs open for
    writing are listed); otherwise the key type does, as public Rekor v1 instances sign with
    ECDSA P-256 and Rekor v2 shards with Ed25519."""
    version = versions.get(tlog.base_url.rstrip("/"))
    if version == 1:
        return LogApi.REKOR_V1
    if version == 2:
        return LogApi.TILES
    if tlog.public_key.key_details == PublicKeyDetails.PKIX_ED25519:
        return LogApi.TILES
    return LogApi.REKOR_V1


def _trusted_log(tlog: TransparencyLogInstance, versions: dict[str, int]) -> TrustedLog:
    base_url = tlog.base_url.rstrip("/")
    api = _log_api(tlog, versions)
    if api is LogApi.REKOR_V1:
        key_name, origin = rekor_v1_key_name(base_url), None
    else:
        key_name = origin = tiles_origin(base_url)
    raw = tlog.public_key.raw_bytes
    if raw is None:
        raise KeyLoadError(f"trust root: expected a public key for {base_url}, got none")
    try:
        verifier = verifier_from_der(key_name, raw)
    except KeyLoadError as e:
        raise KeyLoadError(f"trust root: log {base_url}: {e}") from e
    log_id = tlog.log_id.key_id
    if log_id[:4] != verifier.key_hint:
        # Sigstore clients match checkpoint signatures by log ID[:4]; if our convention ever
        # disagrees, say so loudly rather than alerting on every checkpoint.
        logger.warning(
            "log %s: key hint %s from the %s convention differs from its log ID prefix %s",
            base_url,
            verifier.key_hint.hex(),
            api,
            log_id[:4].hex(),
        )
    window = tlog.public_key.valid_for
    return TrustedLog(
        base_url=base_url,
        api=api,
        key_name=key_name,
        origin=origin,
        verifier=verifier,
        log_id=log_id,
        valid_from=window.start if window else None,
        valid_until=window.end if window else None,
        key=raw,
    )


def trusted_logs(trust_root: str) -> tuple[TrustedLog, ...]:
    """The transparency logs of a trusted root ("production", "staging", or a file path),
    in the root's order, loaded without network access."""
    root, versions = _load(trust_root)
    return tuple(_trusted_log(tlog, versions) for tlog in root.tlogs)


@dataclass(frozen=True)
class TrustedCtLog:
    """One certificate transparency log of a trusted root (its `ctlogs`): the log whose SCTs
    Fulcio embeds in the certificates it issues. `key` is its DER SubjectPublicKeyInfo and
    `log_id` the SHA-256 of it, as SCTs name it; the window is the key's validFor."""

    base_url: str
    log_id: bytes
    key: bytes
    valid_from: datetime | None
    valid_until: datetime | None

    def valid_at(self, when: datetime) -> bool:
        """Whether the trusted root says this log's key was valid at `when` (timezone-aware)."""
        if self.valid_from is not None and when < self.valid_from:
            return False
        return self.valid_until is None or when < self.valid_until


def trusted_ct_logs(trust_root: str) -> tuple[TrustedCtLog, ...]:
    """The CT logs of a trusted root ("production", "staging", or a file path), in the root's
    order, loaded without network access. A log listed without a key is left out: nothing it
    signed could be checked."""
    root, _ = _load(trust_root)
    logs = []
    for ctlog in root.ctlogs:
        raw = ctlog.public_key.raw_bytes
        if raw is None:
            continue
        window = ctlog.public_key.valid_for
        logs.append(
            TrustedCtLog(
                base_url=ctlog.base_url.rstrip("/"),
                log_id=ctlog.log_id.key_id,
                key=raw,
                valid_from=window.start if window else None,
                valid_until=window.end if window else None,
            )
        )
    return tuple(logs)


def find_trusted_ct_log(trust_root: str, base_url: str) -> TrustedCtLog:
    """The CT log with `base_url` in `trust_root`'s `ctlogs`, or a `KeyLoadError` listing the
    known ones. Among several entries for one URL (a key rotation), the last listed wins."""
    logs = trusted_ct_logs(trust_root)
    wanted = base_url.strip().rstrip("/")
    found = [log for log in logs if log.base_url == wanted]
    if found:
        return found[-1]
    known = ", ".join(log.base_url for log in logs) or "none"
    raise KeyLoadError(
        f"trust root {trust_root!r}: expected a CT log with URL {wanted}, got only {known}; "
        "check the URL, use a newer trusted root, or pin the key with public_key"
    )


def find_trusted_log(trust_root: str, base_url: str) -> TrustedLog:
    """The log with `base_url` in `trust_root`, or a `KeyLoadError` listing the known ones."""
    logs = trusted_logs(trust_root)
    wanted = base_url.strip().rstrip("/")
    for log in logs:
        if log.base_url == wanted:
            return log
    known = ", ".join(log.base_url for log in logs)
    raise KeyLoadError(
        f"trust root {trust_root!r}: expected a log with URL {wanted}, got only {known}; "
        "check the URL, use a newer trusted root, or pin the key with public_key"
    )


def fulcio_authorities(trust_root: str) -> tuple[CertificateAuthority, ...]:
    """The Fulcio certificate authorities of a trusted root, expired ones included (they
    issued certificates that appear in old entries)."""
    root, _ = _load(trust_root)
    authorities = []
    for ca in root.certificate_authorities:
        try:
            certs = tuple(
                x509.load_der_x509_certificate(c.raw_bytes) for c in ca.cert_chain.certificates
            )
        except ValueError as e:
            raise KeyLoadError(
                f"trust root {trust_root!r}: expected DER certificates for CA {ca.uri}, got {e}"
            ) from e
        if not certs:
            raise KeyLoadError(
                f"trust root {trust_root!r}: expected a certificate chain for CA {ca.uri}, got none"
            )
        authorities.append(
            CertificateAuthority(
                uri=ca.uri,
                certificates=certs,
                valid_from=ca.valid_for.start,
                valid_until=ca.valid_for.end,
            )
        )
    return tuple(authorities)


def fulcio_roots(trust_root: str) -> tuple[x509.Certificate, ...]:
    """The Fulcio root certificates (trust anchors) of a trusted root, without duplicates.

    Intermediates are in `fulcio_authorities(...)[i].certificates`.
    """
    roots: list[x509.Certificate] = []
    for ca in fulcio_authorities(trust_root):
        if ca.root not in roots:
            roots.append(ca.root)
    return tuple(roots)


@functools.lru_cache(maxsize=8)
def fulcio_trust(trust_root: str) -> CertificateTrust:
    """The Fulcio CAs of a Sigstore trusted root ("production", "staging" or a
    trusted_root.json path) as a `CertificateTrust`, expired ones included, each limited to its
    validFor window.

    Built once per process and root. Raises `KeyLoadError` for an unreadable root and
    `TrustError` for CAs that do not chain.
    """
    return CertificateTrust.from_authorities(
        ((ca.certificates, ca.valid_from, ca.valid_until) for ca in fulcio_authorities(trust_root)),
        source=f"trust root {trust_root!r} Fulcio CAs",
    )
