"""`tlog-monitor evidence export|verify`: the IO around `monitor.core.evidence`.

Export reads one alert from the database (read-only) and writes the evidence document attached
to it when it was raised.

Verify reads the document and the keys it may be checked against: keys pinned with `--key`
(PEM files), or else the logs of a configuration given with `--config` and the logs of the
sigstore trusted roots embedded in the installed sigstore package. No database, no network.
Files are opened without blocking and only if they are regular files, and read with a size cap,
so a FIFO, a device such as /dev/zero or a huge file is refused rather than waited on or read.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from monitor.config.settings import MAX_KEY_FILE_BYTES, Config
from monitor.config.trust_roots import TRUST_ROOT_NAMES, trusted_logs
from monitor.core import evidence
from monitor.core.errors import ConfigError, MonitorError, UsageError
from monitor.core.keys import verifier_from_pem
from monitor.service.wiring import log_spec
from monitor.store.database import Store
from monitor.store.reports import alert_evidence


class EvidenceExportError(UsageError):
    """The alert does not exist or has no portable evidence (a usage error: exit 2)."""


class EvidenceKeyError(ConfigError):
    """A `--key` file cannot be read or is not a usable public key (a usage error: exit 2)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """At most `limit` + 1 bytes of the regular file `path` (one more than allowed: too big).

    Raises `OSError` when it cannot be opened or is not a regular file: opening never blocks
    (O_NONBLOCK, so a FIFO with no writer returns at once) and the type is checked on the open
    descriptor before anything is read. `what` completes the refusal: "{path} is a FIFO; {what}".
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path} is {_kind(mode)}; {what}")
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        return file.read(limit + 1)


def pinned_keys(paths: Sequence[str]) -> list[evidence.KnownKey]:
    """The keys of `--key` files: PEM public keys (ECDSA P-256 or Ed25519), as config accepts."""
    keys: list[evidence.KnownKey] = []
    for name in paths:
        try:
            data = read_regular_file(Path(name), MAX_KEY_FILE_BYTES, "a key must be a regular file")
        except OSError as e:
            raise EvidenceKeyError(f"--key {name}: cannot read the key: {e.strerror or e}") from e
        if len(data) > MAX_KEY_FILE_BYTES:
            raise EvidenceKeyError(
                f"--key {name}: expected a PEM public key of at most {MAX_KEY_FILE_BYTES} bytes "
                "(one is under 1 KiB), got a larger file"
            )
        if b"PRIVATE KEY" in data:
            raise EvidenceKeyError(
                f"--key {name}: the file holds a PRIVATE key; give the log's public key"
            )
        try:
            # The name only matters for signature lines; keys are compared as SPKI bytes.
            verifier = verifier_from_pem("pinned", data)
        except MonitorError as e:
            raise EvidenceKeyError(f"--key {name}: {e}") from e
        keys.append(evidence.known_key(verifier, name, "the keys pinned with --key"))
    return keys


def configured_keys(config: Config) -> list[evidence.KnownKey]:
    """The key of every log of `config` (pinned `public_key` or from its `trust_root`)."""
    keys: list[evidence.KnownKey] = []
    for log in config.logs:
        where = "public_key" if log.trust_root is None else f"trust_root {log.trust_root.value}"
        for verifier in log_spec(config, log).verifiers:
            keys.append(
                evidence.known_key(
                    verifier,
                    f"log {log.name!r} ({log.url}, {where})",
                    f"the configuration {config.path}",
                )
            )
    return keys


def trusted_root_keys() -> list[evidence.KnownKey]:
    """The keys of every log in the sigstore trusted roots embedded in the sigstore package."""
    keys: list[evidence.KnownKey] = []
    for root in TRUST_ROOT_NAMES:
        for log in trusted_logs(root):
            keys.append(
                evidence.known_key(log.verifier, log.base_url, f"sigstore's {root} trusted root")
            )
    return keys


def export_alert(store: Store, alert_id: int) -> bytes:
    """The canonical evidence document of split-view alert `alert_id`, as attached to the
    alert when it was raised."""
    row = alert_evidence(store, alert_id)
    if row is None:
        raise EvidenceExportError(f"evidence export: no alert #{alert_id} in the database")
    if row["kind"] != "split_view":
        raise EvidenceExportError(
            f"evidence export: alert #{alert_id} is a {row['kind']} alert; only split_view "
            "alerts carry evidence that others can verify offline (see docs/threat-model.md)"
        )
    try:
        details: object = json.loads(row["details"])
    except (TypeError, ValueError):
        details = None
    attached = details.get("evidence") if isinstance(details, dict) else None
    if not isinstance(attached, dict):
        raise EvidenceExportError(
            f"evidence export: alert #{alert_id} carries no evidence document; the database was "
            "edited by hand or written by something other than tlog-monitor"
        )
    return evidence.dump(attached)
