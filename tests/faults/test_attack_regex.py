"""Issue 11, item 11: an operator's regex cannot be turned against the monitor by a log entry.

`(.*/)*x` is a classic catastrophic-backtracking pattern: with Python's `re`, a SAN of 27
"/"-separated segments that does not end in "x" took about 20 s per match, each two more segments
about four times longer. Anyone can log such a SAN (self-signed, or in a real Fulcio certificate
for their own workflow). `san_regex` now runs on RE2, in time linear in the SAN, so a `check` of a
log holding such entries finishes promptly, and the regex still means what it says.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

from monitor.config.settings import load_config
from monitor.sandbox import Sandbox
from monitor.service.daemon import open_monitor
from tests.faults.harness import Tally, alert_kinds, connect, states, write_config
from tests.integration.receivers import HttpReceiver

GITHUB = "https://token.actions.githubusercontent.com"
BASE = "https://e/" + "a/" * 26
"""29 "/" in 62 characters (a certificate's CN, which the sandbox sets for self-signed ones,
holds at most 64): about 20 s per failed match for a backtracking engine, here."""

RULE = f"""
[[watch]]
name = "hostile-regex"
issuer = "{GITHUB}"
san_regex = "(.*/)*x"
"""


async def test_backtracking_regex_against_a_hostile_san_finishes_promptly(
    sandbox: Sandbox, tmp_path: Path, tally: Tally
) -> None:
    figures = tally.scenario("san_regex (.*/)*x against SANs of 29 slashes")
    at: dict[str, int] = {}
    for name, uri, self_signed in [
        ("trusted", BASE + "r", False),
        ("self-signed", BASE + "r", True),
        ("trusted, matching", BASE + "x", False),
        ("self-signed, matching", BASE + "x", True),
    ]:
        identity = {"uri": uri, "issuer": GITHUB}
        at[name] = (await sandbox.append("tiles", 1, identity, self_signed=self_signed)).first
        await sandbox.append("tiles", 2)
    receiver = HttpReceiver()
    await receiver.start()
    try:
        config = write_config(tmp_path, sandbox, receiver, base_url=sandbox.url, scan_v1=False)
        config.write_text(config.read_text() + RULE)
        figures.injected += 4
        async with open_monitor(load_config(config)) as m:
            began = time.monotonic()
            outcome = await m.check()
            elapsed = time.monotonic() - began
        figures.notes["seconds"] = round(elapsed, 2)
        # Generous: the check itself takes about a second; a backtracking engine, minutes.
        assert elapsed < 15, f"check took {elapsed:.1f} s"
        assert outcome.errors == []
        db = tmp_path / "monitor.db"
        tiles = next(s for (log, _), s in states(db).items() if log == "tiles")
        assert tiles[3] == tiles[0] == 12, "the scan got through every entry"
        with closing(connect(db)) as conn:
            found = sorted(
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT tree_index, outcome FROM matches WHERE rule = ?", ("hostile-regex",)
                )
            )
        # The regex still means what it says: only the SANs ending in "/x" match; the self-signed
        # one is recorded as untrusted, never alerted.
        assert found == [
            (at["trusted, matching"], "identity_seen"),
            (at["self-signed, matching"], "untrusted"),
        ]
        assert alert_kinds(db) == {("identity_seen", "info"): 1}
        figures.survived = True
    finally:
        await receiver.stop()
