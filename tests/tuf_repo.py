"""A local TUF repository for tests: built with python-tuf's Metadata API, signed with real
Ed25519 keys, written to a directory and served over HTTP on 127.0.0.1.

Layout (consistent snapshots, as Sigstore's repository)::

    <dir>/N.root.json, timestamp.json, N.snapshot.json, N.targets.json
    <dir>/targets/<sha256>.<name>

(metadata at the repository's root and targets under targets/, as tuf-repo-cdn.sigstore.dev).

Each helper publishes a new repository state the way a real (or compromised) repository would.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = ("root", "timestamp", "snapshot", "targets")


def _expiry(days: int = 30) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


class TufRepo:
    """A TUF repository on disk whose state the test changes through the helpers."""

    def __init__(self, directory: Path, targets: dict[str, bytes]) -> None:
        self.directory = directory
        self.metadata_dir = directory
        self.targets_dir = directory / "targets"
        self.targets_dir.mkdir(parents=True)
        self.signers: dict[str, CryptoSigner] = {r: CryptoSigner.generate_ed25519() for r in ROLES}
        root = Root(expires=_expiry(365), consistent_snapshot=True)
        for role, signer in self.signers.items():
            root.add_key(signer.public_key, role)
        self.root: Metadata[Root] = Metadata(root)
        self.root.sign(self.signers["root"])
        self.bootstrap = self._write("1.root.json", self.root)
        self.targets: Metadata[Targets] = Metadata(Targets(expires=_expiry()))
        self.snapshot: Metadata[Snapshot] = Metadata(Snapshot(expires=_expiry()))
        self.timestamp: Metadata[Timestamp] = Metadata(Timestamp(expires=_expiry()))
        # Every publish bumps the version: the first one publishes version 1.
        for md in (self.targets, self.snapshot, self.timestamp):
            md.signed.version = 0
        self.published_targets: list[bytes] = []
        self.publish_targets(targets)

    def _write(self, name: str, md: Metadata[Any]) -> bytes:
        data = md.to_bytes(JSONSerializer(compact=False))
        (self.metadata_dir / name).write_bytes(data)
        return data

    def _sign(self, md: Metadata[Any], role: str, signer: Signer | None = None) -> None:
        md.signatures.clear()
        md.sign(signer or self.signers[role])

    def _publish_snapshot_and_timestamp(
        self, targets_bytes: bytes, targets_version: int, *, timestamp_signer: Signer | None = None
    ) -> None:
        self.snapshot.signed.version += 1
        self.snapshot.signed.meta["targets.json"] = MetaFile(
            version=targets_version,
            length=len(targets_bytes),
            hashes={"sha256": hashlib.sha256(targets_bytes).hexdigest()},
        )
        self.snapshot.signed.expires = _expiry()
        self._sign(self.snapshot, "snapshot")
        snapshot_bytes = self._write(f"{self.snapshot.signed.version}.snapshot.json", self.snapshot)
        self.publish_timestamp(snapshot_bytes, signer=timestamp_signer)

    def publish_timestamp(
        self,
        snapshot_bytes: bytes | None = None,
        *,
        expires: datetime | None = None,
        signer: Signer | None = None,
    ) -> None:
        """A new timestamp version (for the current snapshot unless given), optionally already
        expired or signed by another key."""
        ts = self.timestamp.signed
        ts.version += 1
        if snapshot_bytes is not None:
            ts.snapshot_meta = MetaFile(
                version=self.snapshot.signed.version,
                length=len(snapshot_bytes),
                hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()},
            )
        ts.expires = expires or _expiry()
        self._sign(self.timestamp, "timestamp", signer)
        self._write("timestamp.json", self.timestamp)

    def publish_targets(self, files: dict[str, bytes]) -> None:
        """A new targets version holding exactly `files`, with new snapshot and timestamp."""
        targets = self.targets.signed
        targets.version += 1
        targets.expires = _expiry()
        targets.targets = {}
        for name, data in files.items():
            info = TargetFile.from_data(name, data, ["sha256"])
            targets.targets[name] = info
            (self.targets_dir / f"{info.hashes['sha256']}.{name}").write_bytes(data)
        self._sign(self.targets, "targets")
        data = self._write(f"{targets.version}.targets.json", self.targets)
        self.published_targets.append(data)
        self._publish_snapshot_and_timestamp(data, targets.version)

    def expire_timestamp(self) -> None:
        """A new timestamp that expired an hour ago (a repository that stopped re-signing)."""
        self.publish_timestamp(
            expires=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        )

    def rollback_targets(self) -> None:
        """A snapshot (with a valid new timestamp) pointing at the previous targets version:
        what an attacker holding the snapshot and timestamp keys could serve."""
        older = Metadata[Targets].from_bytes(self.published_targets[-2])
        self._publish_snapshot_and_timestamp(self.published_targets[-2], older.signed.version)

    def sign_timestamp_with_wrong_key(self) -> None:
        """A new timestamp signed by a key the root does not name."""
        self.publish_timestamp(signer=CryptoSigner.generate_ed25519())

    def corrupt_target(self, name: str) -> None:
        """Replace the served bytes of target `name` with others of the same length."""
        info = self.targets.signed.targets[name]
        path = self.targets_dir / f"{info.hashes['sha256']}.{name}"
        data = path.read_bytes()
        path.write_bytes(bytes([data[0] ^ 1]) + data[1:])

    def rotate_root(self) -> None:
        """Root version N+1 with new root and timestamp keys, signed by the old and new root
        keys; then a timestamp signed by the new timestamp key."""
        old_root_signer = self.signers["root"]
        root = self.root.signed
        for role in ("root", "timestamp"):
            for keyid in list(root.roles[role].keyids):
                root.revoke_key(keyid, role)
            self.signers[role] = CryptoSigner.generate_ed25519()
            root.add_key(self.signers[role].public_key, role)
        root.version += 1
        self.root.signatures.clear()
        self.root.sign(old_root_signer, append=True)
        self.root.sign(self.signers["root"], append=True)
        self._write(f"{root.version}.root.json", self.root)
        self.publish_timestamp()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on a free 127.0.0.1 port; yields its base URL."""

    def handler(*args: Any, **kwargs: Any) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(directory), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- Sigstore trust files listing the sandbox's logs ---------------------------------------------


@dataclass(frozen=True)
class Tlog:
    """One `tlogs` entry of a trusted root: a log's URL, its public key (PEM) and its window."""

    url: str
    key_pem: bytes
    start: str = "2020-01-01T00:00:00Z"
    end: str | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_details(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "PKIX_ECDSA_P256_SHA_256"
    if isinstance(key, rsa.RSAPublicKey):
        return "PKIX_RSA_PKCS1V15_2048_SHA256"
    raise ValueError(f"no keyDetails for {type(key).__name__}")


def trusted_root(tlogs: Sequence[Tlog], ca_pems: Sequence[bytes] = ()) -> bytes:
    """A `trusted_root.json` (protobuf-specs JSON) listing `tlogs` and one CA per PEM."""
    logs = []
    for t in tlogs:
        key = serialization.load_pem_public_key(t.key_pem)
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        window = {"start": t.start} | ({"end": t.end} if t.end else {})
        logs.append(
            {
                "baseUrl": t.url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(der),
                    "keyDetails": _key_details(key),
                    "validFor": window,
                },
                "logId": {"keyId": _b64(hashlib.sha256(der).digest())},
            }
        )
    cas = [
        {
            "subject": {"organization": "sandbox", "commonName": "sandbox"},
            "uri": "https://fulcio.example",
            "certChain": {
                "certificates": [
                    {
                        "rawBytes": _b64(
                            x509.load_pem_x509_certificate(pem).public_bytes(
                                serialization.Encoding.DER
                            )
                        )
                    }
                ]
            },
            "validFor": {"start": "2020-01-01T00:00:00Z"},
        }
        for pem in ca_pems
    ]
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": logs,
            "certificateAuthorities": cas,
            "ctlogs": [],
            "timestampAuthorities": [],
        },
        indent=2,
    ).encode()
