"""Witnesses, peer monitors and portable evidence (issue 5), all real: the sandbox log and its
witness on 127.0.0.1, two monitors with their own SQLite databases serving `/checkpoints` over
HTTP, and the CLI exporting and verifying evidence.

    sandbox main ─────────────> monitor A ──/checkpoints──┐
    sandbox /view/victim (forks) ──> monitor B ──/checkpoints──┤ each polls the other as a peer
    sandbox /witness/v1/checkpoint ─> monitor A (witness view, quorum 2, one cosignature)
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.cli.main import main
from monitor.config.settings import ListenAddress, load_config
from monitor.core.note import CosignatureSigner, parse_signed_note, parse_vkey, verify_note
from monitor.core.witness import check_witnesses
from monitor.sandbox import Sandbox
from monitor.sandbox.witness import witness_vkey
from monitor.service.daemon import Daemon, Monitor, open_monitor
from monitor.service.httpd import HttpServer

LOG = "rekor-sandbox"
OTHER_WITNESS = CosignatureSigner(
    "other.witness.example",
    Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"gossip test witness").digest()),
).verifier()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Peer:
    """One monitor: its config, its open Monitor and its /checkpoints endpoint."""

    name: str
    dir: Path
    port: int
    monitor: Monitor | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/checkpoints/{LOG}"

    def write_config(self, sb: Sandbox, primary: str, peer: str | None, witness: str = "") -> Path:
        self.dir.mkdir(exist_ok=True)
        (self.dir / "v1.pem").write_bytes(sb.v1_public_key_pem)
        path = self.dir / "config.toml"
        path.write_text(
            f"""
[monitor]
database = "{self.name}.db"
interval = "1s"
max_stale = "1h"
error_grace = "1h"
http_listen = "127.0.0.1:{self.port}"
request_timeout = "5s"

[[log]]
name = "{LOG}"
type = "rekor-v1"
url = "{primary}"
public_key = "v1.pem"
origin = "{sb.v1_key_name}"
{witness}
"""
            + (f'\n[[log.view]]\nurl = "{peer}"\nkind = "peer"\n' if peer else "")
        )
        return path


def witness_config(sb: Sandbox, quorum: int) -> str:
    return f"""witness_quorum = {quorum}

[[log.view]]
url = "{sb.url}/witness/v1/checkpoint"
kind = "witness"

[[log.witness]]
name = "sandbox.witness.local"
vkey = "{witness_vkey(sb.core.state_dir)}"

[[log.witness]]
name = "{OTHER_WITNESS.name}"
vkey = "{OTHER_WITNESS.vkey}"
"""


@pytest.fixture
async def pair(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[Peer, Peer]]:
    """Monitor A watches the honest log (and its witness, quorum 2); monitor B watches a view
    that forks. Each polls the other's /checkpoints."""
    await sandbox.append("v1", 20)
    sandbox.misbehave("v1", "fork", view="victim")
    a = Peer("a", tmp_path / "a", free_port())
    b = Peer("b", tmp_path / "b", free_port())
    a_cfg = a.write_config(sandbox, sandbox.url, b.endpoint, witness_config(sandbox, 2))
    b_cfg = b.write_config(sandbox, sandbox.view_url("victim"), a.endpoint)
    async with AsyncExitStack() as stack:
        for peer, cfg in ((a, a_cfg), (b, b_cfg)):
            config = load_config(cfg)
            peer.monitor = await stack.enter_async_context(open_monitor(config))
            assert config.monitor.http_listen == ListenAddress("127.0.0.1", peer.port)
            server = HttpServer(config.monitor.http_listen, peer.monitor.store, [LOG])
            await server.start()
            stack.push_async_callback(server.stop)
        yield a, b


def kinds(m: Monitor | None) -> list[str]:
    assert m is not None
    return [r["kind"] for r in m.store.store.query("SELECT kind FROM alerts ORDER BY id")]


async def test_two_monitors_cross_check_and_both_see_the_split_view(
    pair: tuple[Peer, Peer], sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = pair
    assert a.monitor is not None and b.monitor is not None
    # A first: its peer B has nothing verified yet (404, a failed view within error_grace).
    first = await a.monitor.check()
    assert [x.kind.value for _, x in first.alerts] == ["witness_quorum"]
    assert any("404" in e for e in first.errors)
    # B trusts its (forked) first checkpoint, then sees A's honest one at the same size.
    assert "split_view" in [x.kind.value for _, x in (await b.monitor.check()).alerts]
    # A now sees B's fork through B's endpoint.
    assert "split_view" in [x.kind.value for _, x in (await a.monitor.check()).alerts]
    # Growth on both sides is the same fact: no new split_view.
    await sandbox.append("v1", 3)
    assert (await a.monitor.check()).alerts == [] and (await b.monitor.check()).alerts == []
    assert kinds(a.monitor) == ["witness_quorum", "split_view"]
    assert kinds(b.monitor) == ["split_view"]

    # A's endpoint serves the honest note with the witness's cosignature, verifiable by anyone.
    async with http.get(a.endpoint) as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        served = parse_signed_note(await resp.text())
    assert verify_note(served, [sandbox.v1_verifier()])
    sandbox_witness = parse_vkey(witness_vkey(sandbox.core.state_dir))
    assert check_witnesses(served, [sandbox_witness]).cosigners == (
        f"sandbox.witness.local+{sandbox_witness.key_hint.hex()}",
    )
    async with http.get(f"http://127.0.0.1:{a.port}/checkpoints/unknown") as resp:
        assert resp.status == 404
    async with http.get(f"http://127.0.0.1:{a.port}/healthz") as resp:
        assert resp.status == 200 and await resp.text() == "ok\n"

    # The quorum alert names who cosigned and what was missing.
    row = a.monitor.store.store.query("SELECT details FROM alerts WHERE kind = 'witness_quorum'")[0]
    assert '"quorum": 2' in row["details"] and "sandbox.witness.local" in row["details"]
    cosigners = a.monitor.store.store.query(
        "SELECT cosigners FROM checkpoints WHERE view LIKE '%/witness/v1/checkpoint'"
    )
    assert cosigners and all("sandbox.witness.local" in r["cosigners"] for r in cosigners)


async def test_exported_evidence_verifies_offline_and_fails_after_any_edit(
    pair: tuple[Peer, Peer], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    a, b = pair
    assert a.monitor is not None and b.monitor is not None
    await a.monitor.check()
    await b.monitor.check()
    alert_id = b.monitor.store.store.query("SELECT id FROM alerts WHERE kind = 'split_view'")[0][
        "id"
    ]
    capsysbinary.readouterr()
    assert main(["--config", str(b.dir / "config.toml"), "evidence", "export", str(alert_id)]) == 0
    document = capsysbinary.readouterr().out
    evidence_file = tmp_path / "evidence.json"
    evidence_file.write_bytes(document)
    # Offline: no database, no network needed; proven for the key the configuration pins.
    config = str(b.dir / "config.toml")
    assert main(["--config", config, "evidence", "verify", str(evidence_file)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out
    # Without a key source the sandbox's key is nobody's the verifier knows: not proof.
    assert main(["evidence", "verify", str(evidence_file)]) == 1
    assert b"key UNKNOWN" in capsysbinary.readouterr().out

    # Every split_view carries its document; one without (a hand-edited database) is refused,
    # never rebuilt from today's configuration.
    with sqlite3.connect(b.dir / "b.db") as db:
        db.execute(
            "UPDATE alerts SET details = json_remove(details, '$.evidence') WHERE id = ?",
            (alert_id,),
        )
    assert main(["--config", str(b.dir / "config.toml"), "evidence", "export", str(alert_id)]) == 2
    assert b"carries no evidence document" in capsysbinary.readouterr().err

    note_at = document.index(b"sandbox.rekor.local")
    for i in (0, note_at, len(document) // 2, len(document) - 3):
        evidence_file.write_bytes(document[:i] + bytes([document[i] ^ 0x20]) + document[i + 1 :])
        assert main(["evidence", "verify", str(evidence_file)]) in (1, 2)
    # A rollback or any non-split alert has no portable evidence: a usage error.
    quorum_id = a.monitor.store.store.query("SELECT id FROM alerts WHERE kind = 'witness_quorum'")
    code = main(
        ["--config", str(a.dir / "config.toml"), "evidence", "export", str(quorum_id[0]["id"])]
    )
    assert code == 2


async def test_witness_that_saw_a_forked_tree_is_a_split_view_with_both_notes(
    sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    await sandbox.append("v1", 12)
    a = Peer("a", tmp_path / "a", free_port())
    cfg = a.write_config(sandbox, sandbox.url, None, witness_config(sandbox, 1))
    async with open_monitor(load_config(cfg)) as m:
        assert (await m.check()).alerts == []  # quorum 1 met by the sandbox witness
        sandbox.misbehave("v1", "fork", view="victim")
        async with http.post(f"{sandbox.admin_url}/witness", json={"log": "v1", "sees": "victim"}):
            pass
        outcome = await m.check()
        splits = [x for _, x in outcome.alerts if x.kind.value == "split_view"]
        assert len(splits) == 1
        details = splits[0].details
        assert details["view_b"].endswith("/witness/v1/checkpoint")
        assert details["sizes"] == [12, 12] and details["roots"][0] != details["roots"][1]
        assert "— sandbox.witness.local" in details["note_b"]
        # The witness stops cosigning: below the quorum of 1.
        async with http.post(
            f"{sandbox.admin_url}/witness", json={"log": "v1", "sees": None, "cosign": False}
        ):
            pass
        await sandbox.append("v1", 1)
        quorum = [x for _, x in (await m.check()).alerts if x.kind.value == "witness_quorum"]
        assert len(quorum) == 1 and quorum[0].details["cosigners"] == []


async def test_run_serves_checkpoints_and_healthz_until_stopped(
    sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    await sandbox.append("v1", 5)
    a = Peer("a", tmp_path / "a", free_port())
    cfg = a.write_config(sandbox, sandbox.url, None)
    daemon = Daemon(cfg, load_config(cfg))
    task = asyncio.create_task(daemon.run())
    try:
        for _ in range(200):
            try:
                async with http.get(a.endpoint) as resp:
                    if resp.status == 200:
                        served = parse_signed_note(await resp.text())
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the daemon never served a verified checkpoint")
        assert verify_note(served, [sandbox.v1_verifier()])
        assert served.text.split("\n")[1] == "5"
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"http://127.0.0.1:{a.port}/healthz"):
            pass
