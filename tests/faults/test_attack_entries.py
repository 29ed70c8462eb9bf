"""Entries built to blind the scan or hide a signer, logged for real in the sandbox (so the tree
proves them and nothing may be called tampering).

* A certificate whose issuer name holds a BIT STRING makes `cryptography` raise TypeError. The
  entry must be recorded and surfaced (`unreadable_entry`, in `report alerts`), and the scan must
  go on: a trusted watched signer two entries later is still alerted.
* Decoy co-signers: a DSSE entry signed by [a self-made certificate with 300 SANs, a trusted
  certificate for the watched identity], by 32 decoys and the trusted one last, or by a decoy
  certificate over 128 KiB and the trusted one. Each signature is examined on its own: the
  trusted signer raises `unexpected_signer` wherever it sits, and an entry with a skipped
  signature is surfaced as `unreadable_entry`.

Raw bodies are appended to the sandbox's documented `.leaves` files while it is stopped; the
restarted sandbox serves them, signed into its trees, like any other entry.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from contextlib import closing
from pathlib import Path

import aiohttp
from cryptography import x509

from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.sandbox.ca import Identity, LocalCA
from monitor.service.daemon import open_monitor
from tests.faults.harness import WATCHED, WATCHED_EMAIL, Tally, connect, states, write_config
from tests.integration.receivers import HttpReceiver
from tests.integration.test_engine import run_cli
from tests.integration.test_inspect import inspect
from tests.unit import certgen
from tests.unit.certgen import (
    cert_der,
    dsse_v001,
    dsse_v002,
    encode,
    hashedrekord_v001,
    hashedrekord_v002,
    make_certificate,
    v2_verifier,
)

PREFIX = 3
"""Ordinary entries each log holds before the hostile ones."""


def _pem(der: bytes) -> bytes:
    lines = base64.encodebytes(der).decode().replace("\n", "")
    body = "\n".join(lines[i : i + 64] for i in range(0, len(lines), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def _decoy(i: int, sans: int = 1) -> bytes:
    """DER of a self-made certificate (not from the sandbox CA) with `sans` email SANs, the
    watched one among them so that it is a decoy worth parsing."""
    names = [x509.RFC822Name(f"decoy{i}-{n}@example.com") for n in range(sans - 1)]
    return cert_der(make_certificate(sans=[*names, x509.RFC822Name(WATCHED_EMAIL)], serial=i + 1))


def _huge_decoy() -> bytes:
    """DER of a self-made certificate over 128 KiB (the per-certificate cap)."""
    names = [x509.DNSName(f"decoy-{n:05d}.example.com") for n in range(6000)]
    der = cert_der(make_certificate(sans=names, extensions={}))
    assert len(der) > 128 * 1024
    return der


async def _log_raw(tmp_path: Path, bodies: dict[str, list[bytes]]) -> Sandbox:
    """A started sandbox whose logs hold `PREFIX` ordinary entries, then `bodies[log]` as
    logged by an attacker (at indexes PREFIX, PREFIX + 1, ...)."""
    state = tmp_path / "sandbox-state"
    first = Sandbox(state)
    await first.start("127.0.0.1", 0)
    try:
        await first.append("v1", PREFIX)
        await first.append("tiles", PREFIX)
        tree_id = first.state()["v1"]["treeID"]  # type: ignore[index]
    finally:
        await first.stop()
    files = {"v1": state / "v1" / f"{tree_id}.leaves", "tiles": state / "tiles" / "entries.leaves"}
    for log, raw in bodies.items():
        with files[log].open("ab") as f:
            for body in raw:
                f.write(struct.pack(">IQ", len(body), int(time.time())) + body)
    sandbox = Sandbox(state)
    await sandbox.start("127.0.0.1", 0)
    return sandbox


def _watched_certificate(state: Path) -> bytes:
    """DER of a certificate the sandbox CA (the logs' Fulcio root) issued for the watched
    identity: the signer the attacker wants to hide."""
    return LocalCA.load_or_create(state).signer(Identity.from_json(WATCHED)).cert_der


def _config(tmp_path: Path, sandbox: Sandbox, receiver: HttpReceiver) -> Path:
    """The fault-suite configuration, with the watched identity's only allowed signer another
    email, so every trusted use of it is an `unexpected_signer` (high)."""
    path = write_config(tmp_path, sandbox, receiver, base_url=sandbox.url)
    text = path.read_text()
    rule = f'email = "{WATCHED_EMAIL}"\n'
    assert text.count(rule) == 1
    path.write_text(text.replace(rule, rule + 'allowed_signers = ["release@example.com"]\n'))
    return path


def _alerts(db: Path) -> list[tuple[str, str, int, dict[str, object]]]:
    """(log, kind, global log index, details) of every entry alert."""
    with closing(connect(db)) as conn:
        rows = conn.execute(
            "SELECT l.name, a.kind, a.details FROM alerts a JOIN logs l ON l.id = a.log_id "
            "ORDER BY l.name, a.id"
        ).fetchall()
    out = []
    for log, kind, raw in rows:
        details = json.loads(raw)
        out.append((log, kind, int(details.get("log_index", -1)), details))
    return out


async def test_poisoned_certificate_does_not_stop_the_scan(tmp_path: Path, tally: Tally) -> None:
    figures = tally.scenario("entry whose certificate makes cryptography raise TypeError")
    poisoned = certgen.poisoned_issuer_certificate([x509.RFC822Name(WATCHED_EMAIL)])
    sandbox = await _log_raw(
        tmp_path,
        {
            "v1": [encode(hashedrekord_v001(_pem(poisoned)))],
            "tiles": [encode(hashedrekord_v002(v2_verifier(cert=poisoned)))],
        },
    )
    receiver = HttpReceiver()
    await receiver.start()
    try:
        # Two entries later, a trusted certificate for the watched identity.
        await sandbox.append("v1", 1)
        await sandbox.append("tiles", 1)
        watched = {log: (await sandbox.append(log, 1, WATCHED)).first for log in ("v1", "tiles")}
        config = _config(tmp_path, sandbox, receiver)
        figures.injected += 2
        async with open_monitor(load_config(config)) as m:
            outcome = await m.check()
        assert outcome.errors == []
        db = tmp_path / "monitor.db"
        for (log, _), (verified, _, _, cursor) in states(db).items():
            assert cursor == verified == PREFIX + 3, f"{log}: the scan stopped at {cursor}"
        found = {(log, kind, index) for log, kind, index, _ in _alerts(db)}
        for log in ("v1", "tiles"):
            assert (log, "unreadable_entry", PREFIX) in found, found
            assert (log, "unexpected_signer", watched[log]) in found, found
        # Visible in `report alerts`, with the reason.
        code, out, err = await run_cli(
            "--config", str(config), "report", "alerts", "--format", "json", cwd=tmp_path
        )
        assert code == 0, err
        reported = [a for a in json.loads(out) if a["kind"] == "unreadable_entry"]
        assert {a["log"] for a in reported} == {"v1", "tiles"}
        assert all(a["severity"] == "warning" for a in reported)
        assert all("TypeError" in a["details"]["error"] for a in reported)
        titles = receiver.titles()
        assert "[WARNING] unreadable_entry: tiles" in titles, titles
    finally:
        await receiver.stop()
        await sandbox.stop()
    figures.survived = True


async def test_decoy_cosigners_cannot_hide_a_trusted_signer(tmp_path: Path, tally: Tally) -> None:
    figures = tally.scenario("DSSE entries with decoy co-signers before a trusted signer")
    # The CA's state must exist before the bodies are built: start and stop a sandbox first.
    state = tmp_path / "sandbox-state"
    first = Sandbox(state)
    await first.start("127.0.0.1", 0)
    await first.stop()
    trusted = _watched_certificate(state)
    many_sans = _decoy(0, sans=300)
    small = [_decoy(i) for i in range(1, 33)]
    huge = _huge_decoy()
    # (decoys, trusted signer's position, whether the entry has a skipped signature)
    layouts = [([many_sans], 1, True), (small, 32, False)]
    v1_layouts = [*layouts, ([huge], 1, True)]
    bodies = {
        "v1": [encode(dsse_v001([_pem(d) for d in (*ds, trusted)])) for ds, _, _ in v1_layouts],
        "tiles": [
            encode(dsse_v002([v2_verifier(cert=d) for d in (*ds, trusted)])) for ds, _, _ in layouts
        ],
    }
    assert all(len(b) < 0xFFFF for b in bodies["tiles"]), "a tiles entry holds at most 64 KiB"
    sandbox = await _log_raw(tmp_path, bodies)
    receiver = HttpReceiver()
    await receiver.start()
    try:
        config = _config(tmp_path, sandbox, receiver)
        figures.injected += len(bodies["v1"]) + len(bodies["tiles"])
        code, out, err = await run_cli("--config", str(config), "check", cwd=tmp_path)
        assert code == 1, f"a new high alert must make check exit 1\n{out}\n{err}"
        db = tmp_path / "monitor.db"
        got = _alerts(db)
        for log, expected in (("v1", v1_layouts), ("tiles", layouts)):
            for offset, (_, position, skipped) in enumerate(expected):
                index = PREFIX + offset
                unexpected = [
                    d for lg, k, i, d in got if (lg, k, i) == (log, "unexpected_signer", index)
                ]
                assert len(unexpected) == 1, (log, index, got)
                assert unexpected[0]["signer_index"] == position
                unreadable = [
                    d for lg, k, i, d in got if (lg, k, i) == (log, "unreadable_entry", index)
                ]
                assert len(unreadable) == int(skipped), (log, index, unreadable)
                if skipped:
                    (details,) = unreadable
                    assert details["skipped_count"] == 1 and details["signers_read"] == 1
                    assert details["skipped"][0]["position"] == 0  # type: ignore[index]
        with closing(connect(db)) as conn:
            matches = conn.execute(
                "SELECT count(*) FROM matches WHERE outcome = 'unexpected_signer'"
            ).fetchone()[0]
        assert matches == len(v1_layouts) + len(layouts)
        # `inspect` shows the skipped decoy and the signer it did not hide.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{sandbox.url}/api/v1/log/entries", params={"logIndex": PREFIX}) as r,
        ):
            (tmp_path / "entry.json").write_bytes(await r.read())
        run = await inspect("--config", str(config), "inspect", str(tmp_path / "entry.json"))
        assert (
            "skipped signature at position 0: dsse 0.0.1: spec.signatures[0].verifier:" in run.out
        )
        assert "  MATCH watched: unexpected_signer\n" in run.out, run
    finally:
        await receiver.stop()
        await sandbox.stop()
    figures.survived = True
