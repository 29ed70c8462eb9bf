"""unlogged_certificate against the sandbox, all real: the sandbox CA logs each certificate it
issues to its RFC 6962 CT log (as Fulcio does), a scanned tiled log plays Rekor, the daemon's
check pass and a real SQLite file; the sandbox's and the monitor's clocks are driven, never
slept."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.settings import load_config
from monitor.core.alerts import Alert
from monitor.sandbox import Sandbox
from monitor.sandbox.ca import Identity
from monitor.service.daemon import CheckOutcome, open_monitor
from monitor.service.engine import PollResult
from tests.helpers import monitor_table, tiles_pem
from tests.integration.test_sct_promises import Clock, env  # noqa: F401 - the fixture

EMAIL = "security@example.com"
KIND = "unlogged_certificate"


def write_config(
    sb: Sandbox, directory: Path, *, rule_extra: str = "", tiles_start: str = "start = 0"
) -> Path:
    """The sandbox's CT log and its tiles log (the Rekor side), both scanned, and one rule."""
    (directory / "ca.pem").write_bytes(sb.ca_pem)
    (directory / "tiles.pem").write_text(tiles_pem(sb))
    (directory / "ct.pem").write_bytes(sb.ct_public_key_pem)
    path = directory / "config.toml"
    path.write_text(
        monitor_table(request_timeout="5s")
        + f"""
[[log]]
name = "tiles"
type = "tiles"
url = "{sb.tiles_url}"
public_key = "tiles.pem"
origin = "sandbox.tiles.local"
scan = true
{tiles_start}
fulcio_roots = "ca.pem"

[[log]]
name = "ct-sandbox"
type = "ct"
url = "{sb.ct_url}"
public_key = "ct.pem"
scan = true
start = 0
fulcio_roots = "ca.pem"

[[watch]]
name = "security-email"
issuer = "https://accounts.google.com"
email = "{EMAIL}"
{rule_extra}
"""
    )
    return path


def unlogged(outcome: CheckOutcome | PollResult) -> list[Alert]:
    return [a for _, a in outcome.alerts if a.kind.value == KIND]


def checks(directory: Path) -> list[tuple[str, str]]:
    """(rule, state) of every unlogged check."""
    with sqlite3.connect(directory / "monitor.db") as db:
        return [(r[0], r[1]) for r in db.execute("SELECT rule, state FROM unlogged_checks")]


def issue(sb: Sandbox) -> None:
    """The sandbox CA issues a fresh certificate for EMAIL (logged to its CT log) that no
    Rekor entry uses."""
    sb.core.ca._cache.clear()
    sb.core.ca.signer(Identity(email=EMAIL))


async def test_a_certificate_used_in_rekor_raises_nothing(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    async with open_monitor(load_config(write_config(sb, directory)), clock=clock) as m:
        await sb.append("tiles", 1, {"email": EMAIL})
        first = await m.check()
        assert [a.kind.value for _, a in first.alerts].count("certificate_issued") == 1
        clock.now += timedelta(hours=2)
        assert unlogged(await m.check()) == []
    assert checks(directory) == [("security-email", "logged")]


async def test_a_certificate_never_used_raises_one_alert_after_the_window(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    async with open_monitor(load_config(write_config(sb, directory)), clock=clock) as m:
        issue(sb)
        assert unlogged(await m.check()) == []
        assert checks(directory) == [("security-email", "pending")]
        clock.now += timedelta(minutes=29)
        assert unlogged(await m.check()) == []
        clock.now += timedelta(minutes=2)
        # Rekor grows past the deadline (an unrelated entry): a tree first served after it.
        await sb.append("tiles", 1)
        (alert,) = unlogged(await m.check())
        assert alert.severity.value == "high" and alert.rule == "security-email"
        assert alert.log == "ct-sandbox" and EMAIL in alert.summary and "tiles" in alert.summary
        details = alert.details
        assert details["identity"]["sans"] == [f"email:{EMAIL}"]
        assert details["entry_type"] == "precert_entry"
        (looked,) = details["looked"]
        assert looked["log"] == "tiles" and looked["how"] == "scan" and looked["since_ms"] == 0
        assert looked["covered_ms"] >= details["deadline_ms"]
        assert details["deadline_ms"] == details["ct_timestamp_ms"] + 30 * 60 * 1000
        clock.now += timedelta(hours=1)
        await sb.append("tiles", 1)
        assert unlogged(await m.check()) == []
    assert checks(directory) == [("security-email", "alerted")]
    # A restart judges nothing again.
    async with open_monitor(load_config(directory / "config.toml"), clock=clock) as m:
        clock.now += timedelta(hours=1)
        assert unlogged(await m.check()) == []


async def test_a_rekor_entry_late_but_within_the_window_raises_nothing(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    path = write_config(sb, directory, rule_extra='unlogged_after = "1h"')
    async with open_monitor(load_config(path), clock=clock) as m:
        issue(sb)
        assert unlogged(await m.check()) == []
        clock.now += timedelta(minutes=50)
        # The same certificate (the CA reuses it) in a Rekor entry, 50 minutes after CT.
        await sb.append("tiles", 1, {"email": EMAIL})
        assert unlogged(await m.check()) == []
        assert checks(directory) == [("security-email", "logged")]
        clock.now += timedelta(hours=2)
        assert unlogged(await m.check()) == []


@pytest.mark.parametrize(
    ("config", "issued_first", "outcome"),
    [
        ({"rule_extra": "expect_rekor = false"}, False, "not_expected"),
        # The rule applies to the CT log only: no Rekor log looks for its certificates.
        ({"rule_extra": 'logs = ["ct-sandbox"]'}, False, "unwatched"),
        # The Rekor side is scanned from where its tree was at the first poll, not from index
        # 0: a certificate issued before then may have been used in an entry the scan never
        # read.
        ({"tiles_start": ""}, True, "unknowable"),
    ],
    ids=["expect_rekor false", "no Rekor log watches it", "older than the Rekor scan"],
)
async def test_no_alert_where_rekor_use_is_not_expected_or_cannot_be_seen(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
    config: dict[str, str],
    issued_first: bool,
    outcome: str,
) -> None:
    sb, clock, directory = env
    path = write_config(sb, directory, **config)
    if issued_first:
        issue(sb)
    async with open_monitor(load_config(path), clock=clock) as m:
        if not issued_first:
            issue(sb)
        await m.check()
        clock.now += timedelta(hours=3)
        assert unlogged(await m.check()) == []
    assert checks(directory) == [("security-email", outcome)]


async def test_a_rekor_scan_from_latest_covers_certificates_issued_after_it_began(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    """A Rekor scan from "latest" covers what was issued after it began: when it began is
    recorded at the first judgement after, checks pending or not. It was recorded when a first
    certificate waited for it, so that certificate was always unknowable, however long the
    scan had run (a stolen-token certificate among them never alerted)."""
    sb, clock, directory = env
    path = write_config(sb, directory, tiles_start="")
    async with open_monitor(load_config(path), clock=clock) as m:
        assert unlogged(await m.check()) == []  # the Rekor scan begins: nothing pending
        # Past the clock skew allowed (a minute), within the certificate's validity: the
        # sandbox's CA issues by the real clock.
        clock.now += timedelta(minutes=3)
        issue(sb)
        assert unlogged(await m.check()) == []
        clock.now += timedelta(minutes=31)
        await sb.append("tiles", 1)
        (alert,) = unlogged(await m.check())
        (looked,) = alert.details["looked"]
        assert looked["how"] == "scan" and 0 < looked["since_ms"] < alert.details["ct_timestamp_ms"]
    assert checks(directory) == [("security-email", "alerted")]


async def test_waits_while_the_rekor_scan_is_behind(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    async with open_monitor(load_config(write_config(sb, directory)), clock=clock) as m:
        issue(sb)
        await m.check()
        clock.now += timedelta(hours=1)
        # Only the CT log is polled: the Rekor log's scan has not read a tree served after the
        # deadline, so the certificate is not judged yet.
        assert unlogged(await m.poll("ct-sandbox")) == []
        assert checks(directory) == [("security-email", "pending")]
        await sb.append("tiles", 1)
        assert len(unlogged(await m.check())) == 1


async def test_a_stale_rekor_tree_covers_nothing_new(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    """R1 finding 5: a Rekor log (or a cache before it) that goes on serving the tree it had
    before the signer's upload does not show the certificate unused: the check waits while the
    log is stale, and is judged once a tree first served after the deadline is read."""
    sb, clock, directory = env
    async with open_monitor(load_config(write_config(sb, directory)), clock=clock) as m:
        issue(sb)
        await m.check()
        for _ in range(3):
            clock.now += timedelta(hours=1)
            assert unlogged(await m.check()) == []
        assert checks(directory) == [("security-email", "pending")]
        await sb.append("tiles", 1)
        assert len(unlogged(await m.check())) == 1


def write_v1_config(sb: Sandbox, directory: Path) -> Path:
    """The Rekor side is a v1 log watched only through its search index (never scanned)."""
    path = write_config(sb, directory)
    (directory / "v1.pem").write_bytes(sb.v1_public_key_pem)
    text = path.read_text()
    tiles = text.index('[[log]]\nname = "tiles"')
    ct = text.index('[[log]]\nname = "ct-sandbox"')
    # The sandbox serves its v1 and ct logs at one URL, and a URL names one log: another name.
    v1 = f"""[[log]]
name = "rekor"
type = "rekor-v1"
url = "{sb.url.replace("127.0.0.1", "localhost")}"
public_key = "v1.pem"
origin = "{sb.v1_key_name}"
fulcio_roots = "ca.pem"

"""
    path.write_text(text[:tiles] + v1 + text[ct:])
    return path


def searches(directory: Path) -> list[tuple[str, int]]:
    """(tree_id, tree_size) of every recorded index lookup that found nothing."""
    with sqlite3.connect(directory / "monitor.db") as db:
        return [
            (r[0], r[1]) for r in db.execute("SELECT tree_id, tree_size FROM unlogged_searches")
        ]


async def test_v1_index_a_certificate_used_in_a_v1_entry_raises_nothing(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    await sb.append("v1", 2)
    async with open_monitor(load_config(write_v1_config(sb, directory)), clock=clock) as m:
        assert "rekor" in m.searchers and "rekor" not in m.scanners
        issue(sb)
        await m.check()
        clock.now += timedelta(minutes=5)
        # The same certificate (the CA reuses it; valid 10 minutes) in a v1 entry, found
        # through the index.
        await sb.append("v1", 1, {"email": EMAIL})
        await m.check()
        assert checks(directory) == [("security-email", "logged")]
        clock.now += timedelta(hours=2)
        await sb.append("v1", 1)
        assert unlogged(await m.check()) == []
    assert checks(directory) == [("security-email", "logged")]


async def test_v1_index_a_certificate_never_used_raises_one_alert_after_the_window(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    await sb.append("v1", 2)
    async with open_monitor(load_config(write_v1_config(sb, directory)), clock=clock) as m:
        issue(sb)
        assert unlogged(await m.check()) == []
        clock.now += timedelta(minutes=29)
        assert unlogged(await m.check()) == []
        assert searches(directory) == []  # not due: no lookup spent
        clock.now += timedelta(minutes=2)
        await sb.append("v1", 1)
        (alert,) = unlogged(await m.check())
        (looked,) = alert.details["looked"]
        assert looked["log"] == "rekor" and looked["how"] == "search" and looked["since_ms"] == 0
        assert looked["covered_ms"] >= alert.details["deadline_ms"]
        assert list(looked["trees"].values()) == [3]
        assert "rekor (search" in alert.summary
        clock.now += timedelta(hours=1)
        await sb.append("v1", 1)
        assert unlogged(await m.check()) == []
    assert checks(directory) == [("security-email", "alerted")]


async def test_v1_index_that_lags_makes_the_check_wait(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    sb, clock, directory = env
    await sb.append("v1", 2)
    async with open_monitor(load_config(write_v1_config(sb, directory)), clock=clock) as m:
        issue(sb)
        await m.check()
        clock.now += timedelta(hours=1)
        # The index keeps the newest entry out: a lookup that finds nothing proves nothing.
        sb.set_index(lag=1)
        await sb.append("v1", 1)
        assert unlogged(await m.check()) == []
        clock.now += timedelta(hours=1)
        assert unlogged(await m.check()) == []
        assert checks(directory) == [("security-email", "pending")] and searches(directory) == []
        sb.set_index(lag=0)
        assert len(unlogged(await m.check())) == 1


async def test_a_backdated_ct_timestamp_does_not_move_the_deadline_back(
    env: tuple[Sandbox, Clock, Path],  # noqa: F811
) -> None:
    """R1 finding 6: a CT log whose clock runs two hours behind the monitor's timestamps the
    certificate long before the monitor first stores its check. The deadline is
    `unlogged_after` after the later of the two (the stored time here), so no alert until the
    monitor's clock passes it.

    The monitor's clock is driven two hours ahead rather than the sandbox's behind: the
    sandbox CA dates its leaves by the real clock, so a CT timestamp set back by more than 30
    s falls before the leaf's notBefore and the chain check (at the CT time) refuses it, and no
    check would be stored at all."""
    sb, clock, directory = env
    ahead = timedelta(hours=2)

    def monitor_clock() -> datetime:
        return clock.now + ahead

    path = write_config(sb, directory)
    async with open_monitor(load_config(path), clock=monitor_clock) as m:
        stored_ms = int(monitor_clock().timestamp() * 1000)
        issue(sb)
        assert unlogged(await m.check()) == []
        assert checks(directory) == [("security-email", "pending")]
        with sqlite3.connect(directory / "monitor.db") as db:
            ((ct_ms,),) = db.execute("SELECT ct_ms FROM unlogged_checks")
        assert ct_ms <= stored_ms - ahead // timedelta(milliseconds=1) + 1000
        # 90 minutes past CT timestamp + window, with a Rekor tree served after that: the
        # deadline from the CT timestamp alone would alert now, the certificate only just seen.
        await sb.append("tiles", 1)
        assert unlogged(await m.check()) == []
        clock.now += timedelta(minutes=29)
        await sb.append("tiles", 1)
        assert unlogged(await m.check()) == []
        assert checks(directory) == [("security-email", "pending")]
        clock.now += timedelta(minutes=2)
        await sb.append("tiles", 1)
        (alert,) = unlogged(await m.check())
        assert alert.details["deadline_ms"] >= stored_ms + 30 * 60_000
        assert alert.details["deadline_ms"] > alert.details["ct_timestamp_ms"] + 30 * 60_000
    assert checks(directory) == [("security-email", "alerted")]
