"""Hostile entries that are genuinely in the log (so the tree proves them and nothing may be
called tampering): a certificate with 10,000 SANs. The scan must get through it in bounded time
and memory, record what it found, and raise nothing above warning (an `unreadable_entry` when
the certificate is over the size cap, an `identity_seen` when it is read).

The entry is written into the sandbox's append-only v1 leaf file while the sandbox is stopped
(the documented on-disk format); the restarted sandbox serves it, signed into its tree, like any
other entry.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import time
import tracemalloc
from contextlib import closing
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.service.daemon import open_monitor
from tests.faults.harness import (
    WATCHED_EMAIL,
    Tally,
    alert_kinds,
    connect,
    states,
    urgent_alerts,
    write_config,
)
from tests.faults.hostile import HostileProxy
from tests.integration.receivers import HttpReceiver

SANS = 10_000
OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
GOOGLE = "https://accounts.google.com"


def giant_certificate(state: Path, key: ec.EllipticCurvePrivateKey, short: bool) -> bytes:
    """PEM of a Fulcio-like leaf from the sandbox CA with `SANS` SANs (emails, or with `short`
    two-to-five-letter DNS names, which keep it under the 128 KiB certificate cap), the watched
    email last, and the Google issuer."""
    ca_key = serialization.load_pem_private_key((state / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((state / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    sans: list[x509.GeneralName] = [
        x509.DNSName(f"h{i}") if short else x509.RFC822Name(f"user{i}@example.com")
        for i in range(SANS - 1)
    ]
    sans.append(x509.RFC822Name(WATCHED_EMAIL))
    issuer = GOOGLE.encode()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(OID_ISSUER_V2), bytes([0x0C, len(issuer)]) + issuer
            ),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def hashedrekord(cert_pem: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A hashedrekord 0.0.1 body over a fresh digest, signed by `key` (canonical JSON)."""
    digest = hashlib.sha256(b"giant certificate artifact").digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(cert_pem).decode()},
            },
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@pytest.mark.parametrize("short", [False, True], ids=["over the size cap", "under the cap"])
async def test_certificate_with_10000_sans(tmp_path: Path, tally: Tally, short: bool) -> None:
    figures = tally.scenario(f"entry with a 10,000-SAN certificate (short names: {short})")
    state = tmp_path / "sandbox-state"
    first = Sandbox(state)
    await first.start("127.0.0.1", 0)
    await first.append("v1", 5)
    tree_id = first.state()["v1"]["treeID"]  # type: ignore[index]
    await first.stop()
    key = ec.generate_private_key(ec.SECP256R1())
    body = hashedrekord(giant_certificate(state, key, short), key)
    with (state / "v1" / f"{tree_id}.leaves").open("ab") as f:
        f.write(struct.pack(">IQ", len(body), int(time.time())) + body)
    figures.notes["body_bytes"] = len(body)

    sandbox = Sandbox(state)
    await sandbox.start("127.0.0.1", 0)
    await sandbox.append("v1", 3)
    proxy, receiver = HostileProxy(sandbox.url), HttpReceiver()
    await proxy.start()
    await receiver.start()
    try:
        config = write_config(tmp_path, sandbox, receiver, base_url=proxy.url)
        figures.injected += 1
        async with open_monitor(load_config(config)) as m:
            tracemalloc.start()
            began = time.monotonic()
            try:
                outcome = await m.check()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            elapsed = time.monotonic() - began
        figures.notes.update(peak_bytes=peak, seconds=round(elapsed, 2))
        assert outcome.errors == []
        db = tmp_path / "monitor.db"
        v1 = next(s for (log, _), s in states(db).items() if log == "v1")
        assert v1[0] == v1[3] == 9, "the scan did not get through the entry"
        assert urgent_alerts(db) == []
        with closing(connect(db)) as conn:
            found = conn.execute("SELECT outcome FROM matches").fetchall()
            errors = conn.execute("SELECT error FROM scan_errors").fetchall()
        # Either matched (the watched SAN is among them) or recorded as unparseable and
        # alerted as such: never silently dropped.
        assert len(found) + len(errors) == 1, (found, errors)
        figures.notes["recorded_as"] = found[0][0] if found else errors[0][0][:200]
        expected = ("identity_seen", "info") if found else ("unreadable_entry", "warning")
        assert set(alert_kinds(db)) == {expected}
        assert peak < 64 * 1024 * 1024
        assert elapsed < 20
    finally:
        await receiver.stop()
        await proxy.stop()
        await sandbox.stop()
    figures.survived = True
