"""Log keys and names (pure): checkpoint verifiers from PEM/DER public keys, and the key names
and origins each log API uses.

Naming, per log API:

* Rekor v1 (REST): the checkpoint key is ECDSA P-256, the signature line's key name is the log's
  host ("rekor.sigstore.dev"), and each tree's origin is "<host> - <treeID>" (old checkpoints:
  origin "Rekor" with a "Timestamp:" extension line). Key hint = SHA-256(DER SPKI)[:4], which
  is also the first 4 bytes of the trusted root's log ID (c0d23d6a for production).
* Tiled logs (Rekor v2, C2SP tlog-tiles): the origin is the base URL without scheme
  ("log2025-1.rekor.sigstore.dev"), the key name equals the origin, and the Ed25519 key hint is
  the C2SP one, SHA-256(name || 0x0A || 0x01 || key)[:4]. Sigstore's trusted root uses that
  whole hash as the log ID, so again hint = log ID[:4] (cf119915 for log2025-1), which the real
  checkpoints in the fixtures confirm.

Sigstore trusted roots (which logs and keys they list) are read by
``monitor.config.trust_roots``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.core.errors import ConfigError
from monitor.core.note import EcdsaNoteVerifier, Ed25519NoteVerifier, NoteKeyError, NoteVerifier

__all__ = [
    "REKOR_V1_LEGACY_ORIGIN",
    "KeyLoadError",
    "LogApi",
    "rekor_v1_key_name",
    "rekor_v1_origin",
    "tiles_origin",
    "verifier_from_der",
    "verifier_from_pem",
]

# The origin line of Rekor v1 checkpoints signed before per-tree origins were introduced.
REKOR_V1_LEGACY_ORIGIN = "Rekor"

_TREE_ID = re.compile(r"[0-9]{1,20}")


class KeyLoadError(ConfigError):
    """A key or trusted root could not be loaded; the message says what to change."""


class LogApi(StrEnum):
    """How a log is read: Rekor v1's REST API, or C2SP tiles (Rekor v2). Values match the
    config's `type` key."""

    REKOR_V1 = "rekor-v1"
    TILES = "tiles"


# --- single keys ------------------------------------------------------------------------------


def _verifier_from_key(name: str, key: object, source: str) -> NoteVerifier:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return EcdsaNoteVerifier(name, key)
        if isinstance(key, Ed25519PublicKey):
            return Ed25519NoteVerifier(name, key)
    except NoteKeyError as e:
        raise KeyLoadError(f"{source}: {e}") from e
    if isinstance(key, ec.EllipticCurvePublicKey):
        got = f"an ECDSA {key.curve.name} key"
    else:
        got = f"a {type(key).__name__.lstrip('_')}"
    raise KeyLoadError(
        f"{source}: expected an ECDSA P-256 or Ed25519 public key, got {got}; "
        "checkpoint keys of other types are not supported"
    )


def verifier_from_pem(name: str, pem: bytes | str) -> NoteVerifier:
    """A note verifier named `name` for a PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") key.

    ECDSA P-256 keys give an `EcdsaNoteVerifier` (Rekor v1 hint convention), Ed25519 keys an
    `Ed25519NoteVerifier` (C2SP convention). Anything else raises `KeyLoadError`.
    """
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyLoadError(
            "public key: expected a PEM public key ('-----BEGIN PUBLIC KEY-----'), "
            f"got data that does not parse ({e})"
        ) from e
    return _verifier_from_key(name, key, "public key")


def verifier_from_der(name: str, der: bytes) -> NoteVerifier:
    """Like `verifier_from_pem`, for a DER SubjectPublicKeyInfo (a trusted root's rawBytes)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyLoadError(
            f"public key: expected a DER SubjectPublicKeyInfo, got data that does not parse ({e})"
        ) from e
    return _verifier_from_key(name, key, "public key")


def _split_url(base_url: str) -> tuple[str, str]:
    """(host, path without trailing slash) of an http(s) URL, or KeyLoadError."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KeyLoadError(
            f"log url: expected an http(s) URL such as https://rekor.sigstore.dev, got {base_url!r}"
        )
    return parts.hostname, parts.path.rstrip("/")


def rekor_v1_key_name(base_url: str) -> str:
    """The key name on a Rekor v1 log's checkpoint signatures: the URL's host name.

    (Rekor signs with its configured hostname; for the public instance that is the URL's host.
    A private instance may use another name, e.g. a container hostname: pin it explicitly.)
    """
    return _split_url(base_url)[0]


def rekor_v1_origin(base_url: str, tree_id: int | str) -> str:
    """The origin line of a Rekor v1 tree's checkpoints: "<host> - <treeID>"."""
    tree = str(tree_id)
    if not _TREE_ID.fullmatch(tree):
        raise ValueError(f"rekor v1 origin: expected a decimal tree ID, got {tree_id!r}")
    return f"{rekor_v1_key_name(base_url)} - {tree}"


def tiles_origin(base_url: str) -> str:
    """A tiled log's origin (and key name) per Sigstore's convention: the URL without scheme."""
    host, path = _split_url(base_url)
    return host + path
