"""What a Rekor v1 search costs, against the real sandbox: entries found by different terms share
their retrieve requests (10 UUIDs each), an entry two terms find is fetched, proven and recorded
once, and no consistency proof is asked for a checkpoint that is the verified one."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.sandbox import Sandbox
from tests.integration.test_engine import Env
from tests.integration.test_search import LOG, kinds, matches, search_config, search_env

TERMS = 50
EMAILS = [f"user{i}@example.com" for i in range(TERMS)]
GOOGLE = "https://accounts.google.com"
MANY = "".join(
    f'[[watch]]\nname = "user{i}"\nissuer = "{GOOGLE}"\nemail = "{e}"\nlogs = ["{LOG}"]\n\n'
    for i, e in enumerate(EMAILS)
)
MINIMUM = 1 + 1 + TERMS + TERMS // 10
"""One poll after one new entry for each of 50 watched emails: the log's head, the proof that it
grew, one index lookup per email and 5 retrieves of 10 entries."""


@pytest.fixture
async def env(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Env]:
    async with search_env(sandbox, tmp_path) as e:
        search_config(e, rules=MANY, requests_per_minute=6000)
        yield e


def requests_since(sb: Sandbox, before: int) -> Counter[str]:
    """Requests to the log's main view since the request log held `before` of them."""
    with sb.core.lock:
        log = list(sb.core.request_log)[before:]
    return Counter(endpoint for _, view, endpoint in log if view == "main")


async def test_fifty_watched_emails_with_one_new_entry_each_take_57_requests(env: Env) -> None:
    sb = env.sandbox
    async with env.open() as m:
        first = await m.poll(LOG)
        assert first.errors == [] and first.alerts == []
        added = [(await sb.append("v1", 1, {"email": e})).first for e in EMAILS]
        before = len(sb.core.request_log)
        found = await m.poll(LOG)
        counts = requests_since(sb, before)
        assert found.errors == []
        assert kinds(found.alerts) == [("identity_seen", i) for i in added]
        again = await m.poll(LOG)
        assert again.alerts == [] and again.errors == []
    total = sum(counts.values())
    print(f"requests in one poll: {total} {dict(counts)} (minimum {MINIMUM})")
    assert total <= MINIMUM * 1.5
    assert total == MINIMUM == 57, counts
    assert counts["v1.index"] == TERMS and counts["v1.retrieve"] == TERMS // 10
    assert counts["v1.proof"] == 1, "the entries' checkpoint is the verified one: no proof"
    assert [(i, rule, source) for i, rule, _, source, _ in matches(env)] == [
        (i, f"user{n}", "search") for n, i in enumerate(added)
    ]


async def test_an_entry_two_terms_find_is_fetched_and_recorded_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """`user0@example.com` is one rule's `email` (an email term) and another's exact `san` (a
    subject term): the index lists its entry under both; with `user1`'s entry, one retrieve."""
    rules = MANY + (
        f'[[watch]]\nname = "by-san"\nissuer = "{GOOGLE}"\nsan = "{EMAILS[0]}"\nlogs = ["{LOG}"]\n'
    )
    async with search_env(sandbox, tmp_path) as env:
        search_config(env, rules=rules, requests_per_minute=6000)
        async with env.open() as m:
            await m.poll(LOG)
            a = (await sandbox.append("v1", 1, {"email": EMAILS[0]})).first
            b = (await sandbox.append("v1", 1, {"email": EMAILS[1]})).first
            before = len(sandbox.core.request_log)
            found = await m.poll(LOG)
            counts = requests_since(sandbox, before)
            assert (await m.poll(LOG)).alerts == []
        assert kinds(found.alerts) == [("identity_seen", a)] * 2 + [("identity_seen", b)]
        assert counts["v1.retrieve"] == 1 and counts["v1.index"] == TERMS + 1, counts
        assert [(i, rule) for i, rule, _, _, _ in matches(env)] == [
            (a, "by-san"),
            (a, "user0"),
            (b, "user1"),
        ]
        with sqlite3.connect(env.dir / "monitor.db") as db:
            (seen,) = db.execute("SELECT count(*) FROM search_seen").fetchone()
        assert seen == 2


async def test_a_tampered_inclusion_proof_in_a_shared_retrieve_is_a_bad_entry(env: Env) -> None:
    sb = env.sandbox
    async with env.open() as m:
        await m.poll(LOG)
        sb.set_index(paused=True)
        added = [(await sb.append("v1", 1, {"email": e})).first for e in EMAILS[:12]]
        assert (await m.poll(LOG)).alerts == [], "the checkpoint with the entries is verified"
        sb.misbehave("v1", "bad_proof")
        sb.set_index(paused=False)
        result = await m.poll(LOG)
        assert sorted(
            (a.kind.value, a.details["log_index"], a.details["found_by"]) for _, a in result.alerts
        ) == sorted(("bad_entry", i, f"email:{e}") for i, e in zip(added, EMAILS, strict=False))
        assert (await m.poll(LOG)).alerts == [], "alerted once, not fetched again"
    assert matches(env) == []


async def test_an_entry_is_new_if_any_term_that_lists_it_was_already_watching(
    tmp_path: Path,
) -> None:
    """The entry arrives while `user0`'s email term is watched, before a rule adds a `san`
    term for it (listed first); found by both at once, it alerts: it is history only to the
    newer term."""
    now = [float(int(time.time()))]
    sb = Sandbox(tmp_path / "sandbox-state", clock=lambda: now[0])
    await sb.start("127.0.0.1", 0)
    clock = lambda: datetime.fromtimestamp(now[0], UTC)  # noqa: E731
    by_san = f'[[watch]]\nname = "by-san"\nissuer = "{GOOGLE}"\nsan = "{EMAILS[0]}"\n'
    by_san += f'logs = ["{LOG}"]\n\n'
    try:
        async with search_env(sb, tmp_path) as env:
            search_config(env, rules=MANY, requests_per_minute=6000)
            async with env.open(clock=clock) as m:
                await m.poll(LOG)
            sb.set_index(paused=True)
            now[0] += 1
            entry = (await sb.append("v1", 1, {"email": EMAILS[0]})).first
            now[0] += 1
            search_config(env, rules=by_san + MANY, requests_per_minute=6000)
            sb.set_index(paused=False)
            async with env.open(clock=clock) as m:
                found = await m.poll(LOG)
            assert found.errors == []
            assert kinds(found.alerts) == [("identity_seen", entry)] * 2
            assert [(i, rule, source) for i, rule, _, source, _ in matches(env)] == [
                (entry, "by-san", "search"),
                (entry, "user0", "search"),
            ]
    finally:
        await sb.stop()
