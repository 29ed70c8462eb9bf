"""A log that shows the monitor one tree and proves entries against another.

On Rekor v1 the search path proves each entry found through the index against the signed
checkpoint the log serves with it. Here the log's checkpoint endpoint is honest while its entries
come with inclusion proofs against a forked tree of the same size: a validly signed checkpoint
that, next to the verified one, proves the log equivocates. It must be decided on by the
consistency engine (the view `entry-proof`): recorded, a `split_view` whose evidence `evidence
export` writes and `evidence verify` proves offline, not only a `bad_entry` for the entry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.cli.main import main
from monitor.sandbox import Sandbox
from tests.integration.receivers import HttpReceiver, LocalServer, free_port
from tests.integration.test_engine import Env
from tests.integration.test_search import EMAIL, LOG, search_config

FORK = "fork"
RETRIEVE = "/api/v1/log/entries/retrieve"


class Equivocator(LocalServer):
    """A front for the sandbox on 127.0.0.1 that answers entry lookups from a forked view of
    the log and everything else from the log itself."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.port = free_port()
        self.rerouted = 0
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        upstream = self.sandbox.url
        if request.path == RETRIEVE:
            upstream = self.sandbox.view_url(FORK)
            self.rerouted += 1
        async with self._session.request(
            request.method,
            upstream + request.path_qs,
            data=await request.read() or None,
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as resp:
            return web.Response(
                status=resp.status,
                body=await resp.read(),
                content_type=resp.content_type,
            )


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[Env, Equivocator]]:
    """The search test's configuration (the v1 log searched for `EMAIL`), its log URL pointing
    at the equivocating front."""
    receiver = HttpReceiver()
    front = Equivocator(sandbox)
    await receiver.start()
    await front.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    search_config(e)
    text = e.config_path.read_text()
    e.config_path.write_text(text.replace(f'url = "{sandbox.url}"\n', f'url = "{front.url}"\n', 1))
    try:
        yield e, front
    finally:
        await front.stop()
        await receiver.stop()


async def test_a_forked_checkpoint_carried_by_an_entry_is_a_split_view_with_evidence(
    env: tuple[Env, Equivocator], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    e, front = env
    sb = e.sandbox
    await sb.append("v1", 20)
    watched = (await sb.append("v1", 1, {"email": EMAIL})).first
    size = (await sb.append("v1", 5)).size
    # The fork shares the entries up to and past the watched one, then differs: same size,
    # another root, and its own validly signed checkpoint served with every entry.
    sb.misbehave("v1", "fork", view=FORK, at=size - 1)
    async with e.open() as m:
        result = await m.poll(LOG)
    assert front.rerouted > 0, "the entry was looked up through the forked view"
    assert result.verified[str(sb.state()["v1"]["treeID"])] == size  # type: ignore[index]
    by_kind = {a.kind.value: (alert_id, a) for alert_id, a in result.alerts}
    assert set(by_kind) == {"split_view", "bad_entry"}, result.alerts
    assert by_kind["bad_entry"][1].details["log_index"] == watched
    alert_id, split = by_kind["split_view"]
    assert split.details["view_b"] == "entry-proof"
    assert split.details["reason"] == "same size, different roots"
    assert split.details["sizes"] == [size, size]

    with closing(sqlite3.connect(e.dir / "monitor.db")) as db:
        views = sorted(
            (str(r[0]), int(r[1]))
            for r in db.execute("SELECT view, size FROM checkpoints WHERE size = ?", (size,))
        )
    assert views == [("entry-proof", size), ("primary", size)]

    config = str(e.config_path)
    capsysbinary.readouterr()
    assert main(["--config", config, "evidence", "export", str(alert_id)]) == 0
    document = capsysbinary.readouterr().out
    evidence_file = tmp_path / "evidence.json"
    evidence_file.write_bytes(document)
    assert main(["--config", config, "evidence", "verify", str(evidence_file)]) == 0
    assert b"PROVEN" in capsysbinary.readouterr().out

    async with e.open() as m:
        again = await m.poll(LOG)
    assert again.alerts == [], "the same fork is one fact; the entry is not fetched again"
