"""CT logs of both kinds against the sandbox, all real (HTTP on 127.0.0.1, a SQLite file, the
daemon's check pass, the CLI's evidence commands): a `type = "ct"` log (RFC 6962: each signed
tree head becomes a checkpoint note with an RFC 6962 note signature) and a `type = "static-ct"`
log (C2SP static-ct-api: a signed note as is, proofs from hash tiles, entries from data tiles of
TileLeaf turned into MerkleTreeLeaf). The engine verifies, compares and keeps both like any
log: consistency, rollback, bad signatures, split views with offline-provable evidence,
log_error; a scan proves every entry into the verified tree and parses each leaf.

What only one kind has is in test_ct_log.py and test_static_ct_log.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.service.daemon import CheckOutcome, Monitor, open_monitor
from tests.helpers import monitor_table

CT_ORIGIN = "sandbox.ct.local"
"""The origin the configuration gives the RFC 6962 log's STHs (they carry none)."""


@dataclass(frozen=True)
class CtKind:
    """One kind of CT log in the sandbox."""

    log: str
    """The sandbox's name for it."""
    name: str
    """Its `[[log]]` name."""
    initial: int
    """Entries appended for the log to hold 300 (the sandbox's CA logs the signer's
    precertificate in the RFC 6962 log itself, when it first issues the certificate)."""
    proofs: str
    """The sandbox endpoint consistency proofs come from."""

    def url(self, sandbox: Sandbox) -> str:
        return sandbox.ct_url if self.log == "ct" else sandbox.static_ct_url

    def origin(self, sandbox: Sandbox) -> str:
        return CT_ORIGIN if self.log == "ct" else sandbox.static_ct_origin

    def view(self, url: str) -> str:
        """The URL of the log at the sandbox view `url`."""
        return url if self.log == "ct" else f"{url}/static-ct"


CT = CtKind("ct", "ct-sandbox", 299, "ct.consistency")
STATIC_CT = CtKind("static-ct", "static-ct-sandbox", 300, "static-ct.tile")


@dataclass
class CtEnv:
    sandbox: Sandbox
    dir: Path
    kind: CtKind

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    def write_config(
        self, *, scan: bool = False, views: tuple[str, ...] = (), extra: str = ""
    ) -> None:
        (self.dir / "ct.pem").write_bytes(self.sandbox.ct_public_key_pem)
        views_toml = "[" + ", ".join(f'"{self.kind.view(v)}"' for v in views) + "]"
        self.config_path.write_text(
            monitor_table(request_timeout="5s")
            + f"""
[[log]]
name = "{self.kind.name}"
type = "{self.kind.log}"
url = "{self.kind.url(self.sandbox)}"
public_key = "ct.pem"
origin = "{self.kind.origin(self.sandbox)}"
scan = {"true" if scan else "false"}
views = {views_toml}
{extra}
"""
        )

    async def append(
        self, count: int, *, entry_type: str = "mixed", malformed: bool = False
    ) -> None:
        await self.sandbox.append(self.kind.log, count, entry_type=entry_type, malformed=malformed)

    def misbehave(self, mode: str, **params: object) -> None:
        self.sandbox.misbehave(self.kind.log, mode, **params)


async def ct_env(sandbox: Sandbox, tmp_path: Path, kind: CtKind) -> CtEnv:
    """A log of `kind` holding 300 entries, and a configuration watching it."""
    env = CtEnv(sandbox, tmp_path, kind)
    env.write_config()
    await env.append(kind.initial)
    state = sandbox.state()[kind.log]
    assert isinstance(state, dict) and state["treeSize"] == 300
    return env


@pytest.fixture(params=[CT, STATIC_CT], ids=lambda kind: kind.log)
async def env(
    sandbox: Sandbox, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[CtEnv]:
    yield await ct_env(sandbox, tmp_path, request.param)


def kinds(outcome: CheckOutcome) -> list[str]:
    return [a.kind.value for _, a in outcome.alerts]


def verified(m: Monitor) -> tuple[int, int]:
    (state,) = m.store.store.log_states()
    return state.verified_size, state.high_water


def size(env: CtEnv) -> int:
    state = env.sandbox.state()[env.kind.log]
    assert isinstance(state, dict)
    return int(state["treeSize"])


async def test_honest_growth_verifies_every_checkpoint_and_raises_nothing(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        for round_ in range(4):
            outcome = await m.check()
            assert outcome.alerts == [] and outcome.errors == []
            assert verified(m)[0] == size(env)
            await env.append(137 * round_ + 1)
        # The stored checkpoint: the STH as a note, or the static-ct log's own, with an
        # RFC 6962 note signature.
        (state,) = m.store.store.log_states()
        assert state.verified_note is not None
        assert state.verified_note.startswith(f"{env.kind.origin(env.sandbox)}\n")
        # Consistency proofs came from get-sth-consistency, or were computed from hash tiles.
        assert env.sandbox.request_count(env.kind.proofs) >= 3


async def test_rollback_is_alerted_once_and_the_high_water_mark_holds(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.misbehave("rollback", size=200)
        outcome = await m.check()
        assert kinds(outcome) == ["rollback"]
        assert (await m.check()).alerts == []
        assert verified(m) == (300, 300)


@pytest.mark.parametrize("how", ["corrupt", "wrong_key"])
async def test_bad_signature_is_alerted_and_state_does_not_move(env: CtEnv, how: str) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.misbehave("bad_signature", how=how)
        await env.append(5)
        outcome = await m.check()
        assert kinds(outcome) == ["bad_signature"]
        assert verified(m) == (300, 300)
        env.sandbox.reset()
        assert (await m.check()).alerts == []
        assert verified(m)[0] == 305


async def test_a_bad_consistency_proof_is_a_split_view_with_the_proof_kept(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.misbehave("bad_proof")  # a bad get-sth-consistency answer, or bad hash tiles
        await env.append(7)
        outcome = await m.check()
        assert kinds(outcome) == ["split_view"]
        assert outcome.alerts[0][1].details["proof"]
        assert verified(m) == (300, 300)


async def test_unreachable_log_is_log_error_and_state_does_not_move(env: CtEnv) -> None:
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.misbehave("errors", status=500)
        await env.append(3)
        first = await m.check()
        assert kinds(first) == ["log_error"] and first.errors
        assert verified(m) == (300, 300)
        env.sandbox.reset()
        assert (await m.check()).errors == []
        assert verified(m)[0] == 303


async def test_split_view_between_views_is_proven_offline_by_exported_evidence(
    env: CtEnv, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    env.write_config(views=(env.sandbox.view_url("mirror"),))
    async with open_monitor(load_config(env.config_path)) as m:
        assert (await m.check()).alerts == []
        env.sandbox.misbehave(env.kind.log, "fork", view="mirror", at=250)
        await env.append(4)
        outcome = await m.check()
        assert kinds(outcome) == ["split_view"]
        alert_id, alert = outcome.alerts[0]
        assert len(set(alert.details["roots"])) == 2
    config = str(env.config_path)
    capsysbinary.readouterr()
    assert main(["--config", config, "evidence", "export", str(alert_id)]) == 0
    document = capsysbinary.readouterr().out
    assert b'"type": "rfc6962"' in document
    evidence = env.dir / "evidence.json"
    evidence.write_bytes(document)
    assert main(["--config", config, "evidence", "verify", str(evidence)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out
    # Pinned with --key (the CT log's PEM), no configuration: proven too.
    assert main(["evidence", "verify", "--key", str(env.dir / "ct.pem"), str(evidence)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out
    # Any edit breaks it.
    origin = env.kind.origin(env.sandbox).encode()
    evidence.write_bytes(document.replace(origin, origin[:-1] + b"m", 1))
    assert main(["--config", config, "evidence", "verify", str(evidence)]) != 0


async def test_scan_proves_and_parses_every_entry(env: CtEnv) -> None:
    env.write_config(scan=True, extra="start = 0")
    async with open_monitor(load_config(env.config_path)) as m:
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == []
        assert outcome.scanned == 300
        # More than one get-entries answer (the sandbox caps them at 256), or full and partial
        # data tiles; precertificates included.
        await env.append(600, entry_type="precert")
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.errors == [] and outcome.scanned == 600
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 900
    if env.kind is STATIC_CT:
        assert env.sandbox.request_count("static-ct.data") >= 4
        # Issuers are not needed to scan: none was fetched.
        assert env.sandbox.request_count("static-ct.issuer") == 0


async def test_scan_from_latest_reads_the_frontier_from_the_log(env: CtEnv) -> None:
    """From get-entry-and-proof, or from hash tiles (no data tile)."""
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        assert (await m.check()).scanned == 0
        if env.kind is CT:
            assert env.sandbox.request_count("ct.entry-and-proof") == 1
        else:
            assert env.sandbox.request_count("static-ct.data") == 0
        await env.append(21)
        outcome = await m.check()
        assert outcome.alerts == [] and outcome.scanned == 21


async def test_a_malformed_leaf_is_unreadable_entry_and_the_scan_goes_on(env: CtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        await env.append(2)
        await env.append(1, malformed=True)
        await env.append(2)
        outcome = await m.check()
        assert kinds(outcome) == ["unreadable_entry"]
        details = outcome.alerts[0][1].details
        assert details["log_index"] == 302
        if env.kind is CT:
            assert "entry type" in str(details["error"])
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 305


async def test_entries_that_do_not_hash_into_the_tree_are_bad_entry(env: CtEnv) -> None:
    env.write_config(scan=True)
    async with open_monitor(load_config(env.config_path)) as m:
        await m.check()
        env.misbehave("bad_entries")  # tampered get-entries answers, or data tiles
        await env.append(10)
        outcome = await m.check()
        assert kinds(outcome) == ["bad_entry"]
        (state,) = m.store.store.log_states()
        assert state.scan_cursor == 300
