"""Alert floods against real receivers: thousands of alerts of one kind reach a receiver as a
digest, criticals go first, and a receiver that rate-limits (429 with Retry-After) slows only
itself. A real SQLite outbox, real apprise deliveries to HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.cli.reports import alerts_report
from monitor.core.alerts import Alert, AlertKind, fact_key
from monitor.notify.notifier import (
    DIGEST_AFTER,
    DIGEST_MARK,
    REPEAT_MARK,
    DeliveryRound,
    MessageOrigin,
    channel_targets,
)
from monitor.store.database import Store
from tests.helpers import REKOR_PRODUCTION, cli_command
from tests.integration.receivers import HttpReceiver, message_alert_ids
from tests.integration.test_notify import FAST, Outbox, channel, split_view

FLOOD = 5_000
SIGNER = "https://github.com/attacker/fork/.github/workflows/release.yml@refs/heads/main"


def unexpected(n: int) -> Alert:
    return Alert(
        kind=AlertKind.UNEXPECTED_SIGNER,
        dedup_key=fact_key(AlertKind.UNEXPECTED_SIGNER, "rekor", "tree", n, "release", 0),
        summary=f"release: entry {n} signed by {SIGNER}, not in allowed_signers",
        log="rekor",
        rule="release",
        details={"log_index": n, "tree_index": n, "signer_index": 0},
    )


def flood(outbox: Outbox, targets: list[str], count: int = FLOOD) -> list[int]:
    """`count` unexpected_signer alerts raised at once, as one scan chunk would."""
    created = outbox.store.raise_alerts(
        outbox.log_id, [(unexpected(n), targets) for n in range(count)], outbox.clock()
    )
    assert len(created) == count
    return [alert_id for alert_id, _ in created]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    (tmp_path / "config.toml").write_text(REKOR_PRODUCTION)  # its database: monitor.db
    box = Outbox(tmp_path / "monitor.db")
    yield box
    box.astore.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def slow() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def test_flood_is_one_digest_and_a_later_critical_goes_next_round(
    outbox: Outbox, http: HttpReceiver
) -> None:
    # The receiver of the report: accepts one message a second, refuses the rest with 429.
    http.rate_limit = 1.0
    security = channel("security", [http.url()])
    [(target, _)] = channel_targets(security)
    ids = flood(outbox, [target])
    config = outbox.path.parent / "config.toml"
    notifier = outbox.notifier([security], origin=MessageOrigin("monitor-1", config))

    # A round reads a sample of the flood, never all of it.
    [group] = await outbox.astore.call(outbox.store.due_groups, outbox.clock(), 100)
    assert (group.count, len(group.deliveries), group.alert_ranges) == (
        FLOOD,
        DIGEST_AFTER,
        ((ids[0], ids[-1]),),
    )

    done = await notifier.deliver_due()
    assert (done.delivered, done.failed) == (FLOOD, 0)
    assert await outbox.pending() == 0  # every alert the digest stands for is delivered
    [digest] = http.posts
    assert http.rate_limited_posts == 0
    title, body = digest.body["title"], digest.body["message"]
    assert title == f"[HIGH] unexpected_signer: rekor, rule release ({FLOOD} alerts)"
    lines = body.splitlines()
    assert lines[0] == f"{FLOOD} unexpected_signer alerts on log rekor in one message (a digest)"
    assert "host: monitor-1" in lines
    assert f"the oldest {DIGEST_AFTER} of {FLOOD}:" in lines
    assert lines[lines.index(f"the oldest {DIGEST_AFTER} of {FLOOD}:") + 1].startswith(
        f"alert #{ids[0]}, raised "
    )
    assert f"({FLOOD - DIGEST_AFTER} more not shown here)" in lines
    assert f"{DIGEST_MARK}#{ids[0]}-#{ids[-1]}" in lines
    assert message_alert_ids(body) == ids
    assert len(body) <= 4000

    # The command it gives lists the rest; it works when run.
    [listing] = [line for line in lines if line.startswith("list them all: ")]
    command = shlex.split(listing.removeprefix("list them all: "))
    assert command[:3] == ["tlog-monitor", "--config", str(config)]
    assert command[3:9] == ["report", "alerts", "--kind", "unexpected_signer", "--log", "rekor"]
    run = subprocess.run(
        [*cli_command(), *command[1:], "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == FLOOD + 1  # a header, then one line per alert
    since = command[command.index("--since") + 1]
    reported = alerts_report(
        Store.open_readonly(outbox.path),
        kind="unexpected_signer",
        log="rekor",
        since=outbox.clock().fromisoformat(since),
    )
    assert sorted(r["id"] for r in reported.rows) == ids

    # A split view raised after the flood: delivered by the next round (10 s later in the
    # daemon; 1 s is all this receiver's rate limit needs).
    critical = outbox.raise_alert(split_view(), [security])
    await asyncio.sleep(1.1)
    outbox.clock.advance(timedelta(seconds=10))
    assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
    assert len(http.posts) == 2  # the whole flood and the critical: two messages
    assert http.titles()[1] == "[CRITICAL] split_view: rekor"
    assert message_alert_ids(http.posts[1].body["message"]) == [critical]


async def test_criticals_are_sent_before_older_alerts(outbox: Outbox, http: HttpReceiver) -> None:
    security = channel("security", [http.url()])
    [(target, _)] = channel_targets(security)
    ids = flood(outbox, [target], count=DIGEST_AFTER)  # few enough to go one by one
    critical = outbox.raise_alert(split_view(), [security])
    notifier = outbox.notifier([security])

    # A round that can take only a few rows takes the critical first, though it is the newest.
    assert await notifier.deliver_due(limit=3) == DeliveryRound(delivered=3, failed=0)
    assert [message_alert_ids(p.body["message"]) for p in http.posts] == [
        [critical],
        [ids[0]],
        [ids[1]],
    ]
    assert await notifier.deliver_due() == DeliveryRound(delivered=DIGEST_AFTER - 2, failed=0)
    received = [i for p in http.posts for i in message_alert_ids(p.body["message"])]
    assert received == [critical, *ids]  # one message each, oldest first after the critical


async def test_rate_limited_target_slows_only_itself(
    outbox: Outbox, http: HttpReceiver, slow: HttpReceiver
) -> None:
    # Two URLs of one channel: `slow` accepts one message, then answers 429 with Retry-After.
    slow.rate_limit = 3600.0
    ops = channel("ops", [http.url("fast"), slow.url("slow")])
    ids = [outbox.raise_alert(split_view(n), [ops]) for n in range(5)]
    notifier = outbox.notifier([ops])

    assert await notifier.deliver_due() == DeliveryRound(delivered=5 + 1, failed=4)
    assert len(http.posts) == 5
    assert len(slow.posts) == 1
    # One refusal, then nothing more for that receiver this round.
    assert slow.rate_limited_posts == 1
    slow_rows = [r for r in await outbox.rows() if r["status"] == "pending"]
    assert [r["alert_id"] for r in slow_rows] == ids[1:]
    assert "delivery failed" in slow_rows[0]["last_error"]
    assert all("not attempted" in r["last_error"] for r in slow_rows[1:])

    # A new critical before the slow target's retry is due: the fast one gets it at once, the
    # rate-limited one is left alone until its retry.
    later = outbox.raise_alert(split_view(99), [ops])
    outbox.clock.advance(FAST.initial * 0.5)
    assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
    assert message_alert_ids(http.posts[-1].body["message"]) == [later]
    assert slow.rate_limited_posts == 1

    # The limit lifts; once the retry is due everything reaches the slow receiver, once.
    slow.rate_limit = 0.0
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(delivered=5, failed=0)
    received = [i for p in slow.posts for i in message_alert_ids(p.body["message"])]
    assert received == [*ids, later]
    assert len(http.posts) == 6
    assert await outbox.pending() == 0


async def test_digest_failure_and_cut_off_send_keep_every_alert(
    outbox: Outbox, http: HttpReceiver
) -> None:
    security = channel("security", [http.url()])
    [(target, _)] = channel_targets(security)
    count = 3 * DIGEST_AFTER
    ids = flood(outbox, [target], count=count)
    notifier = outbox.notifier([security])

    # Refused: every alert of the digest stays pending, retried together.
    http.failing = True
    assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=count)
    rows = await outbox.rows()
    assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}

    # The process dies while the retry is being sent: the next send says it may be a repeat.
    outbox.clock.advance(FAST.cap)
    [group] = await outbox.astore.call(outbox.store.due_groups, outbox.clock(), 100)
    assert await outbox.astore.call(outbox.store.mark_group_sending, group, outbox.clock()) == count
    outbox.reopen()
    http.failing = False
    assert await outbox.notifier([security]).deliver_due() == DeliveryRound(count, 0)
    [digest] = http.posts
    assert digest.body["title"].endswith(REPEAT_MARK)
    assert "possible repeat" in digest.body["message"]
    assert message_alert_ids(digest.body["message"]) == ids
    assert await outbox.pending() == 0


def test_kind_filter_is_for_alerts_only(outbox: Outbox, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(outbox.path.parent / "config.toml")
    flood(outbox, [], count=2)
    outbox.raise_alert(split_view(), [])
    assert (
        main(["--config", config, "report", "alerts", "--kind", "split_view", "--format", "csv"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and ",split_view," in out[1]
    assert main(["--config", config, "report", "matches", "--kind", "split_view"]) == 2
    assert "--kind: only 'report alerts' has a kind filter" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["--config", config, "report", "alerts", "--kind", "no_such_kind"])
    assert refused.value.code == 2
