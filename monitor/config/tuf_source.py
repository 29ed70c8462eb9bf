"""A live Sigstore trust source: `trusted_root.json` and `signing_config.v0.2.json` kept up to
date from a TUF repository with python-tuf's `ngclient`.

The TUF client does every check of the TUF specification (signature thresholds, version
rollback, expiry, target lengths and hashes); this module gives it a cache directory, caps what
it may download, and turns each failure into one `TrustSourceError` whose `reason` says which
kind it was, so the caller can keep its last good trust and say why.

Cache layout under `cache_dir` (created 0700, as TUF metadata and the trusted root decide what
the monitor trusts)::

    metadata/         ngclient's verified metadata (root history, timestamp, snapshot, targets)
    targets/          ngclient's downloaded targets
    last_good.json    the last refresh that fully verified: target bytes and TUF versions

`last_good.json` is written atomically only after a refresh verified everything, so an offline
start reads a copy that once passed every check, even if the metadata has expired since.

ngclient is synchronous (urllib3): `refresh_async` runs `refresh` in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.updater import Updater
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher

from monitor.core.errors import MonitorError

__all__ = [
    "MAX_TARGET_BYTES",
    "SIGNING_CONFIG_TARGET",
    "TRUSTED_ROOT_TARGET",
    "FetchedTrust",
    "TrustSourceError",
    "TrustSourceFailure",
    "TufSource",
    "TufVersions",
]

logger = logging.getLogger(__name__)

TRUSTED_ROOT_TARGET = "trusted_root.json"
SIGNING_CONFIG_TARGET = "signing_config.v0.2.json"
MAX_TARGET_BYTES = 4 * 1024 * 1024
"""Largest target accepted: Sigstore's production trusted root is ~20 KB; a target metadata
entry announcing more is refused before anything is downloaded."""
_MAX_METADATA_BYTES = 2 * 1024 * 1024
# base64 grows 4/3; two targets plus a few hundred bytes of JSON.
_MAX_LAST_GOOD_BYTES = 2 * (MAX_TARGET_BYTES * 4 // 3 + 4) + 4096
_LAST_GOOD = "last_good.json"


class TrustSourceFailure(StrEnum):
    """Why a refresh of the trust source failed."""

    UNREACHABLE = "unreachable"
    """The repository could not be reached or answered with an HTTP error."""
    EXPIRED = "expired"
    """Verified metadata has expired: the repository stopped updating, or someone replays old
    metadata (a freeze attack)."""
    ROLLBACK = "rollback"
    """Metadata older than what was already verified was refused (a rollback attack)."""
    BAD_SIGNATURE = "bad_signature"
    """Metadata not signed by the threshold of keys the trusted root names."""
    HASH_MISMATCH = "hash_mismatch"
    """A file's length or hash differs from what the signed metadata says."""
    INVALID = "invalid"
    """Metadata or a target is malformed, missing or too large, or the bootstrap root is bad."""
    CACHE = "cache"
    """The local cache could not be read or written."""


_ADVICE: dict[TrustSourceFailure, str] = {
    TrustSourceFailure.UNREACHABLE: (
        "check the network and the repository URL; the last good trust is kept meanwhile"
    ),
    TrustSourceFailure.EXPIRED: (
        "the repository has not re-signed its metadata in time (or an attacker is replaying "
        "old metadata): check the system clock and the repository's status; the last good "
        "trust is kept meanwhile"
    ),
    TrustSourceFailure.ROLLBACK: (
        "the repository served metadata older than already verified (a rollback or freeze "
        "attack, or a repository restored from backup): report it to the repository's "
        "operators; the last good trust is kept meanwhile"
    ),
    TrustSourceFailure.BAD_SIGNATURE: (
        "metadata is not signed by the keys the trusted TUF root names (tampering, or a "
        "key rotation without a root update): report it to the repository's operators; "
        "the last good trust is kept meanwhile"
    ),
    TrustSourceFailure.HASH_MISMATCH: (
        "a file differs from its signed length or hash (tampering or a broken mirror): "
        "report it to the repository's operators; the last good trust is kept meanwhile"
    ),
    TrustSourceFailure.INVALID: (
        "the repository's data cannot be used: check the repository URL and the bootstrap "
        "root.json; the last good trust is kept meanwhile"
    ),
    TrustSourceFailure.CACHE: (
        "check that the cache directory exists, is writable by the monitor and has free space"
    ),
}


class TrustSourceError(MonitorError):
    """A refresh of a TUF trust source failed; `reason` says how, the message what to do."""

    def __init__(self, reason: TrustSourceFailure, source: str, detail: str) -> None:
        self.reason = reason
        self.source = source
        self.detail = detail
        super().__init__(f"TUF repository {source}: {reason}: {detail}; {_ADVICE[reason]}")


@dataclass(frozen=True)
class TufVersions:
    """The versions of the TUF top-level metadata a trust was verified with."""

    root: int
    timestamp: int
    snapshot: int
    targets: int


@dataclass(frozen=True)
class FetchedTrust:
    """The Sigstore trust targets of one verified refresh, as bytes (parsed elsewhere).

    `signing_config` is None when the repository does not publish one.
    """

    trusted_root: bytes
    signing_config: bytes | None
    versions: TufVersions


def _failure(error: Exception) -> tuple[TrustSourceFailure, str]:
    """The failure class of an exception from ngclient (most specific classes first)."""
    detail = str(error) or type(error).__name__
    if isinstance(error, tuf_errors.DownloadLengthMismatchError):
        return TrustSourceFailure.HASH_MISMATCH, detail
    if isinstance(error, tuf_errors.DownloadHTTPError):
        return TrustSourceFailure.UNREACHABLE, f"HTTP {error.status_code}: {detail}"
    if isinstance(error, tuf_errors.DownloadError):
        cause = error.__cause__
        return TrustSourceFailure.UNREACHABLE, f"{detail} ({cause})" if cause else detail
    if isinstance(error, tuf_errors.ExpiredMetadataError):
        return TrustSourceFailure.EXPIRED, detail
    if isinstance(error, tuf_errors.BadVersionNumberError):
        return TrustSourceFailure.ROLLBACK, detail
    if isinstance(error, tuf_errors.UnsignedMetadataError):
        return TrustSourceFailure.BAD_SIGNATURE, detail
    if isinstance(error, tuf_errors.LengthOrHashMismatchError):
        return TrustSourceFailure.HASH_MISMATCH, detail
    if isinstance(error, OSError):
        return TrustSourceFailure.CACHE, detail
    return TrustSourceFailure.INVALID, detail


# What ngclient and the Metadata API raise on hostile or broken input; anything else is a bug.
_TUF_FAILURES = (
    tuf_errors.RepositoryError,
    tuf_errors.DownloadError,
    OSError,
    ValueError,
    TypeError,
    KeyError,
)


def _private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700 even if it existed wider."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _version(directory: Path, role: str) -> int:
    """The version of the cached (already verified) metadata of `role`."""
    path = directory / f"{role}.json"
    with path.open("rb") as f:
        data = f.read(_MAX_METADATA_BYTES + 1)
    if len(data) > _MAX_METADATA_BYTES:
        raise tuf_errors.RepositoryError(f"cached {role}.json exceeds {_MAX_METADATA_BYTES} bytes")
    return Metadata.from_bytes(data).signed.version


class TufSource:
    """One TUF repository holding a Sigstore trusted root, cached under `cache_dir`.

    `bootstrap_root` is the initial trusted `root.json` (for Sigstore's own instances, the one
    `monitor.config.trust_roots.embedded_tuf_root` returns); newer roots are followed through
    the repository's root history, each signed by the previous root's keys.
    """

    def __init__(
        self,
        metadata_url: str,
        targets_url: str,
        cache_dir: Path,
        bootstrap_root: bytes,
        *,
        timeout: int = 30,
    ) -> None:
        self.metadata_url = metadata_url
        self.targets_url = targets_url
        self.cache_dir = cache_dir
        self._bootstrap = bootstrap_root
        self._timeout = timeout
        self._metadata_dir = cache_dir / "metadata"
        self._targets_dir = cache_dir / "targets"
        self._last: FetchedTrust | None = None
        # A refresh abandoned by its caller (a start that could not wait) may still run in its
        # thread: the next one waits for it rather than share the cache directory with it.
        self._lock = threading.Lock()

    def refresh(self) -> FetchedTrust:
        """Fetch and verify the newest trust; on success it becomes `last_good()`.

        Raises `TrustSourceError` (with its `reason`) for every failure; the last good copy
        is left untouched.
        """
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> FetchedTrust:
        try:
            _private_dir(self.cache_dir)
            _private_dir(self._metadata_dir)
            _private_dir(self._targets_dir)
        except OSError as e:
            raise TrustSourceError(TrustSourceFailure.CACHE, self.metadata_url, str(e)) from e
        try:
            fetched = self._refresh()
        except _TUF_FAILURES as e:
            reason, detail = _failure(e)
            raise TrustSourceError(reason, self.metadata_url, detail) from e
        try:
            self._store(fetched)
        except OSError as e:
            raise TrustSourceError(TrustSourceFailure.CACHE, self.metadata_url, str(e)) from e
        self._last = fetched
        return fetched

    async def refresh_async(self) -> FetchedTrust:
        """`refresh` in a worker thread (ngclient blocks on the network)."""
        return await asyncio.to_thread(self.refresh)

    def _refresh(self) -> FetchedTrust:
        updater = Updater(
            metadata_dir=str(self._metadata_dir),
            metadata_base_url=self.metadata_url,
            target_dir=str(self._targets_dir),
            target_base_url=self.targets_url,
            fetcher=Urllib3Fetcher(socket_timeout=self._timeout, app_user_agent="tlog-monitor"),
            config=UpdaterConfig(
                root_max_length=_MAX_METADATA_BYTES,
                snapshot_max_length=_MAX_METADATA_BYTES,
                targets_max_length=_MAX_METADATA_BYTES,
            ),
            bootstrap=self._bootstrap,
        )
        updater.refresh()
        trusted_root = self._target(updater, TRUSTED_ROOT_TARGET)
        if trusted_root is None:
            raise tuf_errors.RepositoryError(
                f"expected a {TRUSTED_ROOT_TARGET} target, the repository's targets have none"
            )
        signing_config = self._target(updater, SIGNING_CONFIG_TARGET)
        # ngclient persisted exactly the metadata it just verified: read the versions back.
        versions = TufVersions(
            root=_version(self._metadata_dir, "root"),
            timestamp=_version(self._metadata_dir, "timestamp"),
            snapshot=_version(self._metadata_dir, "snapshot"),
            targets=_version(self._metadata_dir, "targets"),
        )
        return FetchedTrust(trusted_root, signing_config, versions)

    def _target(self, updater: Updater, name: str) -> bytes | None:
        """The verified bytes of target `name`, None when the targets metadata lists none."""
        info = updater.get_targetinfo(name)
        if info is None:
            return None
        if not 0 < info.length <= MAX_TARGET_BYTES:
            raise tuf_errors.RepositoryError(
                f"expected {name} of at most {MAX_TARGET_BYTES} bytes, targets metadata says "
                f"{info.length}"
            )
        path = str(self._targets_dir / name)
        cached = updater.find_cached_target(info, path)
        path = cached if cached is not None else updater.download_target(info, path)
        with open(path, "rb") as f:
            data = f.read(MAX_TARGET_BYTES + 1)
        # Re-checked here: the file on disk is what we hand on, not what was downloaded.
        info.verify_length_and_hashes(data)
        return data

    def _store(self, fetched: FetchedTrust) -> None:
        """Write `fetched` as the last good copy, atomically (a crash leaves the old one)."""
        record = {
            "trusted_root": base64.b64encode(fetched.trusted_root).decode(),
            "signing_config": (
                None
                if fetched.signing_config is None
                else base64.b64encode(fetched.signing_config).decode()
            ),
            "sha256": hashlib.sha256(
                fetched.trusted_root + (fetched.signing_config or b"")
            ).hexdigest(),
            "versions": vars(fetched.versions),
        }
        fd, tmp = tempfile.mkstemp(prefix=".last_good.", dir=self.cache_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.cache_dir / _LAST_GOOD)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def last_good(self) -> FetchedTrust | None:
        """The last trust that fully verified (from this process or an earlier one's cache),
        None when there never was one.

        Raises `TrustSourceError` (reason `cache`) when the cached copy is unreadable or
        corrupt, rather than trusting it or silently forgetting it.
        """
        if self._last is not None:
            return self._last
        path = self.cache_dir / _LAST_GOOD
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_LAST_GOOD_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise TrustSourceError(TrustSourceFailure.CACHE, self.metadata_url, str(e)) from e
        try:
            self._last = _parse_last_good(data)
        except (ValueError, TypeError, KeyError, binascii.Error) as e:
            raise TrustSourceError(
                TrustSourceFailure.CACHE,
                self.metadata_url,
                f"expected a valid last good copy in {path}, got a corrupt file ({e}); delete "
                "it to fetch afresh",
            ) from e
        return self._last


def _parse_last_good(data: bytes) -> FetchedTrust:
    """A `last_good.json` record, checked: size, types, version ranges and its checksum."""
    if len(data) > _MAX_LAST_GOOD_BYTES:
        raise ValueError(f"larger than {_MAX_LAST_GOOD_BYTES} bytes")
    record = json.loads(data)
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    trusted_root = base64.b64decode(record["trusted_root"], validate=True)
    raw_config = record["signing_config"]
    signing_config = None if raw_config is None else base64.b64decode(raw_config, validate=True)
    digest = hashlib.sha256(trusted_root + (signing_config or b"")).hexdigest()
    if record["sha256"] != digest:
        raise ValueError("checksum mismatch")
    raw_versions = record["versions"]
    if not isinstance(raw_versions, dict):
        raise TypeError("versions is not an object")
    numbers = {}
    for role in ("root", "timestamp", "snapshot", "targets"):
        value = raw_versions[role]
        if type(value) is not int or not 0 < value < 2**63:
            raise ValueError(f"{role} version {value!r} out of range")
        numbers[role] = value
    return FetchedTrust(trusted_root, signing_config, TufVersions(**numbers))
