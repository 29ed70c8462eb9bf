"""Rekor entry bodies for the sandbox: real ``hashedrekord`` entries with real signatures.

Each entry signs a fresh artifact digest with the leaf key of a (cached) certificate:
``digest = SHA-256("tlog-monitor sandbox artifact" || salt || index)`` stands for the
SHA-256 of an artifact, and the signature is ECDSA P-256 over that digest (what signing the
artifact with SHA-256 produces: ``verify(sig, artifact, ECDSA(SHA256))`` holds for an artifact
with that digest, ``verify(sig, digest, ECDSA(Prehashed(SHA256)))`` checks it from the body).

Bodies are canonical JSON (keys sorted, no spaces), exactly the shape Rekor stores:

- v1 ``hashedrekord`` 0.0.1: ``spec.data.hash {algorithm: sha256, value: <hex>}``,
  ``spec.signature.content`` (base64 DER signature) and ``spec.signature.publicKey.content``
  (base64 of the certificate PEM).
- v2 ``hashedrekord`` 0.0.2: ``spec.hashedRekordV002.data {algorithm: SHA2_256, digest:
  <base64>}``, ``spec.hashedRekordV002.signature {content, verifier {keyDetails:
  PKIX_ECDSA_P256_SHA_256, x509Certificate {rawBytes: <base64 DER>}}}``.

The JSON is built from a per-certificate template (only the digest and signature vary), and
signatures are made in a thread pool (OpenSSL releases the GIL), so bulk appends are fast.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from monitor.sandbox.ca import SigningIdentity

_PREHASHED: Final = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
_ARTIFACT_TAG: Final = b"tlog-monitor sandbox artifact"
#: Entries signed per pool task; bodies are produced in chunks of this size.
CHUNK: Final = 8192


class BodyKind(StrEnum):
    """Which entry format to produce."""

    V1 = "hashedrekord/0.0.1"
    V2 = "hashedrekord/0.0.2"


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _template(kind: BodyKind, signer: SigningIdentity) -> tuple[str, str, str]:
    """(prefix, middle, suffix): body = prefix + digest + middle + signature + suffix."""
    digest_mark, sig_mark = "\x00DIGEST\x00", "\x00SIG\x00"
    if kind is BodyKind.V1:
        obj: dict[str, object] = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest_mark}},
                "signature": {
                    "content": sig_mark,
                    "publicKey": {"content": base64.b64encode(signer.cert_pem).decode()},
                },
            },
        }
    else:
        obj = {
            "apiVersion": "0.0.2",
            "kind": "hashedrekord",
            "spec": {
                "hashedRekordV002": {
                    "data": {"algorithm": "SHA2_256", "digest": digest_mark},
                    "signature": {
                        "content": sig_mark,
                        "verifier": {
                            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                            "x509Certificate": {
                                "rawBytes": base64.b64encode(signer.cert_der).decode()
                            },
                        },
                    },
                }
            },
        }
    text = _canonical(obj).replace("\\u0000", "\x00")
    # The digest field precedes the signature field in both shapes (sorted keys).
    prefix, rest = text.split(digest_mark)
    middle, suffix = rest.split(sig_mark)
    return prefix, middle, suffix


def artifact_digest(salt: bytes, index: int) -> bytes:
    """The stand-in artifact digest for entry ``index`` of a batch salted with ``salt``."""
    return hashlib.sha256(_ARTIFACT_TAG + salt + index.to_bytes(8, "big")).digest()


def _sign_all(key: ec.EllipticCurvePrivateKey, digests: list[bytes]) -> list[bytes]:
    return [key.sign(d, _PREHASHED) for d in digests]


class BodyFactory:
    """Makes entry bodies; owns the signing thread pool (``close()`` it)."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or max(1, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="sandbox-sign")

    def close(self) -> None:
        """Stop the signing threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def bodies(
        self, kind: BodyKind, signer: SigningIdentity, count: int, *, chunk: int = CHUNK
    ) -> Iterator[list[bytes]]:
        """Yield ``count`` fresh bodies in chunks of at most ``chunk``.

        Signing runs ahead in the pool (a bounded number of chunks in flight) while the
        caller consumes earlier chunks.
        """
        salt = os.urandom(16)
        prefix, middle, suffix = _template(kind, signer)
        key = signer.private_key
        in_flight: list[tuple[list[bytes], Future[list[bytes]]]] = []
        sub = max(1, chunk // self._workers)
        next_index = 0

        def submit() -> None:
            nonlocal next_index
            n = min(sub, count - next_index)
            digests = [artifact_digest(salt, next_index + i) for i in range(n)]
            next_index += n
            in_flight.append((digests, self._pool.submit(_sign_all, key, digests)))

        done = 0
        b64 = base64.b64encode
        while done < count:
            while next_index < count and len(in_flight) < 2 * self._workers:
                submit()
            out: list[bytes] = []
            while in_flight and len(out) < chunk:
                digests, fut = in_flight.pop(0)
                sigs = fut.result()
                if kind is BodyKind.V1:
                    out.extend(
                        f"{prefix}{d.hex()}{middle}{b64(s).decode()}{suffix}".encode()
                        for d, s in zip(digests, sigs, strict=True)
                    )
                else:
                    out.extend(
                        f"{prefix}{b64(d).decode()}{middle}{b64(s).decode()}{suffix}".encode()
                        for d, s in zip(digests, sigs, strict=True)
                    )
                if next_index < count:
                    submit()
            done += len(out)
            yield out
