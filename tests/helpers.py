"""What several test suites share: the `tlog-monitor` command line and what a run of it gave,
and the pieces of configuration every test against the sandbox writes (key files, the
`[monitor]` table of a fast test monitor, the `[[notify]]` channel to a receiver)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.sandbox import Sandbox
from tests.integration.receivers import HttpReceiver

REKOR_PRODUCTION = """
[monitor]
database = "monitor.db"
http_listen = ""

[[log]]
name = "rekor"
type = "rekor-v1"
url = "https://rekor.sigstore.dev"
trust_root = "production"
"""
"""A minimal configuration: the public Rekor log with sigstore's production trust root."""


def cli_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("tlog-monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli.main"]


@dataclass(frozen=True)
class Run:
    """What a `tlog-monitor` subprocess gave: exit code, stdout, stderr (and how long it took,
    where measured)."""

    code: int
    out: str
    err: str
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def tiles_pem(sandbox: Sandbox) -> str:
    """The sandbox tiles log's public key, PEM."""
    key = Ed25519PublicKey.from_public_bytes(sandbox.tiles_verifier().public_bytes)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def write_keys(directory: Path, sandbox: Sandbox, *, ca: bool = False) -> None:
    """The sandbox logs' public keys as `v1.pem` and `tiles.pem` in `directory` (and, with
    `ca`, its Fulcio root as `ca.pem`)."""
    (directory / "v1.pem").write_bytes(sandbox.v1_public_key_pem)
    (directory / "tiles.pem").write_text(tiles_pem(sandbox))
    if ca:
        (directory / "ca.pem").write_bytes(sandbox.ca_pem)


def monitor_table(
    *,
    request_timeout: str,
    interval: str = "1s",
    database: str = "monitor.db",
    extra: str = "",
) -> str:
    """The `[monitor]` table of a test monitor: no HTTP listener, max_stale 1h, error_grace 0s
    (an outage is reported at once); `extra` is appended to the table."""
    return f"""
[monitor]
database = "{database}"
interval = "{interval}"
max_stale = "1h"
error_grace = "0s"
http_listen = ""
request_timeout = "{request_timeout}"
{extra}
"""


def notify_table(receiver: HttpReceiver, min_severity: str = "info") -> str:
    """The `[[notify]]` channel "ops", delivering alerts of `min_severity` and above to
    `receiver`."""
    return f"""
[[notify]]
name = "ops"
urls = ["{receiver.url("alerts")}"]
min_severity = "{min_severity}"
"""
