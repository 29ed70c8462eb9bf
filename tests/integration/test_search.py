"""Identity monitoring of a Rekor v1 log through its search index, against the real sandbox:
new entries of watched identities found within one poll, unexpected signers alerted once, an
index that lags for several polls, search results whose proof fails, history recorded without
paging anyone, and one request budget that holds over a long run."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli.reports import status_report
from monitor.sandbox import Sandbox
from monitor.store.database import Store
from tests.integration.receivers import HttpReceiver
from tests.integration.test_engine import Env

LOG = "rekor-sandbox"
REPO = "https://github.com/example/project"
RELEASE = f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.0"
OTHER = f"{REPO}/.github/workflows/other.yml@refs/heads/main"
GITHUB = "https://token.actions.githubusercontent.com"
EMAIL = "security@example.com"

RULES = f"""
[[watch]]
name = "release"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/*"
allowed_signers = ["{REPO}/.github/workflows/release.yml@refs/tags/*"]
search = ["{RELEASE}", "{OTHER}"]
logs = ["{LOG}"]

[[watch]]
name = "security-email"
issuer = "https://accounts.google.com"
email = "{EMAIL}"
logs = ["{LOG}"]
"""


def search_config(env: Env, *, rules: str = RULES, requests_per_minute: int | None = None) -> None:
    """The env's config: the rules above (searched on the v1 log, which does not scan) and
    the sandbox CA as the v1 log's Fulcio root."""
    (env.dir / "ca.pem").write_bytes(env.sandbox.ca_pem)
    env.write_config(
        notify=(
            f'[[notify]]\nname = "ops"\nurls = ["{env.receiver.url("alerts")}"]\n'
            'min_severity = "info"\n' + rules
        )
    )
    extra = 'fulcio_roots = "ca.pem"\n'
    if requests_per_minute is not None:
        extra += f"requests_per_minute = {requests_per_minute}\n"
    text = env.config_path.read_text().replace("views = []\n", f"views = []\n{extra}", 1)
    env.config_path.write_text(text)


@asynccontextmanager
async def search_env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    """An Env in `tmp_path` with a started receiver, after 20 entries are appended to v1."""
    receiver = HttpReceiver()
    await receiver.start()
    e = Env(sandbox, tmp_path, tmp_path / "config.toml", receiver)
    await sandbox.append("v1", 20)
    try:
        yield e
    finally:
        await receiver.stop()


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    async with search_env(sandbox, tmp_path) as e:
        yield e


def matches(env: Env) -> list[tuple[int, str, str, str, bool]]:
    """(tree index, rule, outcome, source, alerted) of every match, by index and rule."""
    with sqlite3.connect(env.dir / "monitor.db") as db:
        return [
            (r[0], r[1], r[2], r[3], r[4] is not None)
            for r in db.execute(
                "SELECT tree_index, rule, outcome, source, alert_id FROM matches "
                "ORDER BY tree_index, rule"
            )
        ]


def kinds(alerts: list[tuple[int, object]]) -> list[tuple[str, int]]:
    return sorted(
        (a.kind.value, a.details["log_index"])  # type: ignore[attr-defined]
        for _, a in alerts
    )


async def test_new_entries_of_a_watched_email_and_workflow_are_found_within_one_poll(
    env: Env,
) -> None:
    search_config(env)
    sb = env.sandbox
    async with env.open() as m:
        first = await m.poll(LOG)
        assert first.errors == [] and first.alerts == []
        release = (await sb.append("v1", 1, {"uri": RELEASE, "issuer": GITHUB})).first
        email = (await sb.append("v1", 1, {"email": EMAIL})).first
        await sb.append("v1", 5)
        found = await m.poll(LOG)
        assert found.errors == []
        assert kinds(found.alerts) == [("identity_seen", release), ("identity_seen", email)]
        other = (await sb.append("v1", 1, {"uri": OTHER, "issuer": GITHUB})).first
        found = await m.poll(LOG)
        assert kinds(found.alerts) == [("unexpected_signer", other)]
        (_, alert) = found.alerts[0]
        assert OTHER in alert.summary and alert.rule == "release"
        for _ in range(2):
            again = await m.poll(LOG)
            assert again.alerts == [] and again.errors == []
        await m.deliver()
    assert matches(env) == [
        (release, "release", "identity_seen", "search", True),
        (email, "security-email", "identity_seen", "search", True),
        (other, "release", "unexpected_signer", "search", True),
    ]
    assert env.receiver.titles().count(f"[HIGH] unexpected_signer: {LOG}, rule release") == 1
    # Three searches a poll (two workflow subjects, one email); each entry fetched once.
    assert sb.request_count("v1.index") == 3 * 5
    store = Store.open_readonly(env.dir / "monitor.db")
    try:
        (row,) = status_report(store, log=LOG).rows
    finally:
        store.close()
    assert (row["search_terms"], row["search_fetched"]) == (3, 3)
    assert 0 < row["requests_last_min"] <= row["requests_per_minute"] == 300


async def test_history_is_recorded_as_backfill_without_alerts(tmp_path: Path) -> None:
    # One clock for the log's integratedTime and the monitor: history is what the log
    # integrated before the first search, and only whole seconds tell them apart.
    now = [float(int(time.time()))]
    sb = Sandbox(tmp_path / "sandbox-state", clock=lambda: now[0])
    await sb.start("127.0.0.1", 0)
    try:
        async with search_env(sb, tmp_path) as env:
            search_config(env)
            old = (await sb.append("v1", 3, {"uri": OTHER, "issuer": GITHUB})).first
            await sb.append("v1", 1, {"email": EMAIL})
            now[0] += 1
            async with env.open(clock=lambda: datetime.fromtimestamp(now[0], UTC)) as m:
                first = await m.poll(LOG)
                assert first.errors == [] and first.alerts == [], "past entries page no one"
                new = (await sb.append("v1", 1, {"uri": OTHER, "issuer": GITHUB})).first
                assert kinds((await m.poll(LOG)).alerts) == [("unexpected_signer", new)]
            found = matches(env)
    finally:
        await sb.stop()
    assert [(i, source, alerted) for i, _, _, source, alerted in found] == [
        (old, "backfill", False),
        (old + 1, "backfill", False),
        (old + 2, "backfill", False),
        (old + 3, "backfill", False),
        (new, "search", True),
    ]


async def test_index_lag_over_several_polls_still_gives_exactly_one_alert(env: Env) -> None:
    search_config(env)
    sb = env.sandbox
    async with env.open() as m:
        await m.poll(LOG)
        sb.set_index(paused=True)
        other = (await sb.append("v1", 1, {"uri": OTHER, "issuer": GITHUB})).first
        for _ in range(3):
            await sb.append("v1", 2)
            result = await m.poll(LOG)
            assert result.alerts == [] and result.errors == [], "not indexed yet"
        sb.set_index(paused=False, lag=2)  # caught up, except the newest two entries
        assert kinds((await m.poll(LOG)).alerts) == [("unexpected_signer", other)]
        sb.set_index(lag=0)
        for _ in range(2):
            await sb.append("v1", 1, {"email": "someone-else@example.com"})
            assert (await m.poll(LOG)).alerts == []
    assert [(i, outcome) for i, _, outcome, _, _ in matches(env)] == [(other, "unexpected_signer")]


async def test_a_search_result_whose_inclusion_proof_fails_is_a_bad_entry(env: Env) -> None:
    search_config(env)
    sb = env.sandbox
    async with env.open() as m:
        await m.poll(LOG)
        sb.set_index(paused=True)
        email = (await sb.append("v1", 1, {"email": EMAIL})).first
        assert (await m.poll(LOG)).alerts == [], "the checkpoint with the entry is verified"
        sb.misbehave("v1", "bad_proof")
        sb.set_index(paused=False)
        result = await m.poll(LOG)
        assert [a.kind.value for _, a in result.alerts] == ["bad_entry"]
        (_, alert) = result.alerts[0]
        assert alert.details["log_index"] == email
        assert "inclusion proof" in alert.details["error"]
        assert (await m.poll(LOG)).alerts == [], "alerted once, not fetched again"
        sb.reset()
        assert (await m.poll(LOG)).alerts == []
    assert matches(env) == [], "an entry that does not prove is never matched"


async def test_a_429_holds_every_request_of_the_log_for_its_retry_after(env: Env) -> None:
    search_config(env)
    sb = env.sandbox
    async with env.open() as m:
        await m.poll(LOG)
        sb.misbehave("v1", "errors", status=429, count=1, retry_after=1, endpoints=["v1.index"])
        before = len(sb.core.request_log)
        await sb.append("v1", 1, {"email": EMAIL})
        result = await m.poll(LOG)
        assert result.errors == []
        assert kinds(result.alerts)[0][0] == "identity_seen"
    log = list(sb.core.request_log)[before:]
    refused = next(i for i, (_, _, endpoint) in enumerate(log) if endpoint == "v1.index")
    after = [t for t, _, _ in log[refused + 1 :]]
    assert after, "the search was retried"
    assert min(after) >= log[refused][0] + 0.95, "no request of the log within Retry-After"


async def test_the_request_budget_holds_over_a_long_run(env: Env) -> None:
    """Demand far above the budget (many terms, many entries to fetch, polls back to back):
    the sandbox never sees more than the token bucket allows, in any window."""
    rpm, burst = 600, 100  # 10 requests/s; bursts of ten seconds' worth
    terms = ", ".join(f'"user{i}@example.com"' for i in range(6))
    rules = RULES + (
        f'\n[[watch]]\nname = "many"\nissuer = "https://accounts.google.com"\n'
        f'email = "user0@example.com"\nsearch = [{terms}]\nlogs = ["{LOG}"]\n'
    )
    search_config(env, rules=rules, requests_per_minute=rpm)
    sb = env.sandbox
    for i in range(6):
        await sb.append("v1", 12, {"email": f"user{i}@example.com"})
    async with env.open() as m:
        start = time.monotonic()
        begin = len(sb.request_times())
        while time.monotonic() - start < 5.0:
            await m.poll(LOG)
            await sb.append("v1", 1, {"email": "user1@example.com"})
        elapsed = time.monotonic() - start
    times = sb.request_times()[begin:]
    rate = rpm / 60.0
    # Every window [times[i], times[j]] holds at most burst + rate * its length (+1 for the
    # request that took the last token as the window opened).
    worst = max(
        (j - i + 1) - (burst + rate * (times[j] - times[i]))
        for i in range(len(times))
        for j in range(i, len(times))
    )
    assert worst <= 1.0, f"the budget was exceeded by {worst:.1f} requests"
    assert len(times) >= burst + rate * elapsed * 0.8, "demand did not reach the budget"
