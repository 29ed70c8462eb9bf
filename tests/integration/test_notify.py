"""The notifier against real receivers: an HTTP server (apprise json://) and an SMTP server
(apprise mailto://), a real SQLite outbox, a controllable clock for the retry schedule."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config.settings import NotifyChannel
from monitor.core.alerts import Alert, AlertKind, fact_key
from monitor.core.severity import Severity
from monitor.notify.notifier import (
    REDACTED,
    REPEAT_MARK,
    Backoff,
    DeliveryRound,
    Notifier,
    NotifyError,
    delivery_targets,
    install_log_redaction,
    parse_target,
    render_message,
    send_test,
    target_name,
    url_id,
    url_secrets,
)
from monitor.store.database import AsyncStore, Store
from tests.integration.receivers import (
    HttpReceiver,
    SmtpReceiver,
    free_port,
    message_alert_ids,
)

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAST = Backoff(initial=timedelta(seconds=10), cap=timedelta(minutes=5), jitter=0.2)
TOKEN = "hk7Q2xTokenZ9pW"  # a path token, as in webhook URLs
PASSWORD = "pw-V3ry-s3cret"


class Clock:
    """The notifier's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def channel(
    name: str, urls: Sequence[str], min_severity: Severity = Severity.INFO
) -> NotifyChannel:
    return NotifyChannel(
        name=name, urls=tuple(urls), min_severity=min_severity, urls_env=(), urls_file=None
    )


def split_view(n: int = 1, **details: Any) -> Alert:
    return Alert(
        kind=AlertKind.SPLIT_VIEW,
        dedup_key=fact_key(AlertKind.SPLIT_VIEW, "rekor", n),
        summary=f"rekor: two checkpoints of size {1000 + n} with different roots",
        log="rekor",
        details={"size": 1000 + n, "old_root": "ab" * 32, "new_root": "cd" * 32, **details},
    )


class Outbox:
    """A real database file, the store behind its writer thread, and the test's clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = Clock()
        self.store = Store.open(path)
        self.astore = AsyncStore(self.store)
        self.log_id = self.store.ensure_log("rekor", "rekor-v1", "https://rekor.example", START)

    def reopen(self) -> None:
        """A restart: close everything and open the same file again."""
        self.astore.close()
        self.store = Store.open(self.path)
        self.astore = AsyncStore(self.store)

    def raise_alert(
        self, alert: Alert, channels: Sequence[NotifyChannel], only: Sequence[str] | None = None
    ) -> int:
        targets = delivery_targets(channels, alert.severity, only)
        with self.store.transaction() as conn:
            alert_id = self.store.add_alert(
                conn, alert, None if alert.log is None else self.log_id, targets, self.clock()
            )
        assert alert_id is not None
        return alert_id

    def notifier(self, channels: Sequence[NotifyChannel], **kwargs: Any) -> Notifier:
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("send_timeout", 10.0)
        return Notifier(channels, self.astore, clock=self.clock, **kwargs)

    async def rows(self) -> list[dict[str, Any]]:
        return await self.astore.call(
            self.store.query,
            "SELECT id, alert_id, channel, status, attempts, last_error, next_try, delivered_at "
            "FROM deliveries ORDER BY id",
        )

    async def pending(self) -> int:
        return await self.astore.call(self.store.pending_count)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
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
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver("monitor", PASSWORD)
    receiver.start()
    yield receiver
    receiver.stop()


def assert_no_secret(text: str | None, urls: Sequence[str]) -> None:
    assert text is not None
    for url in urls:
        for secret in url_secrets(url):
            assert secret not in text, f"{secret!r} leaked into {text!r}"


async def test_alert_delivered_to_http_and_smtp_once(
    outbox: Outbox, http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    security = channel("security", [http.url(), smtp.url()], Severity.WARNING)
    alert_id = outbox.raise_alert(split_view(note="rekor.sigstore.dev\n1001\nq83=\n"), [security])
    notifier = outbox.notifier([security])

    assert await notifier.deliver_due() == DeliveryRound(delivered=2, failed=0)
    outbox.clock.advance(timedelta(hours=2))
    assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=0)

    title = "[CRITICAL] split_view: rekor"
    assert len(http.posts) == 1
    post = http.posts[0].body
    assert post["title"] == title
    assert post["type"] == "failure"
    lines = post["message"].splitlines()
    assert lines[0] == "rekor: two checkpoints of size 1001 with different roots"
    assert "log: rekor" in lines
    assert "size: 1001" in lines
    assert f"old_root: {'ab' * 32}" in lines
    assert any(line.startswith(f"alert #{alert_id}, critical, raised ") for line in lines)
    assert f"full record: tlog-monitor report alerts --id {alert_id} --format json" in lines
    assert "(1 more detail field in the full record)" in lines  # the multi-line note stays out

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["Subject"] == title
    assert mail["To"] == "ops@example.com"
    text = SmtpReceiver.text(mail)
    assert "size: 1001" in text.splitlines()
    assert f"alert #{alert_id}" in text
    assert smtp.failed_logins == 0

    rows = await outbox.rows()
    assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [
        (target_name("security", http.url()), "delivered", 1),
        (target_name("security", smtp.url()), "delivered", 1),
    ]
    assert await outbox.pending() == 0


async def test_min_severity_and_rule_routing(outbox: Outbox, http: HttpReceiver) -> None:
    chatty = channel("chatty", [http.url("chatty")], Severity.INFO)
    security = channel(
        "security", [http.url("security-a"), http.url("security-b")], Severity.WARNING
    )
    channels = [chatty, security]
    chatty_0 = target_name("chatty", http.url("chatty"))
    security_a = target_name("security", http.url("security-a"))
    security_b = target_name("security", http.url("security-b"))

    assert delivery_targets(channels, Severity.INFO) == [chatty_0]
    assert delivery_targets(channels, Severity.WARNING) == [chatty_0, security_a, security_b]
    assert delivery_targets(channels, Severity.HIGH, only=["security"]) == [
        security_a,
        security_b,
    ]
    assert delivery_targets(channels, Severity.INFO, only=["security"]) == []
    assert delivery_targets(channels, Severity.HIGH, only=[]) == delivery_targets(
        channels, Severity.HIGH
    )
    ident = url_id(http.url("ops"))
    assert parse_target(target_name("team#ops", http.url("ops"))) == ("team#ops", ident)
    with pytest.raises(ValueError, match="security#3fa2c1d0"):
        parse_target("security#0")  # the old positional form

    seen = Alert(
        kind=AlertKind.IDENTITY_SEEN,
        dedup_key="identity_seen:rekor:1:release",
        summary="release: entry 1 signed by a watched identity",
        log="rekor",
        rule="release",
        details={"log_index": 1, "san": "https://github.com/example/project/.github/x.yml"},
    )
    outbox.raise_alert(seen, channels)
    unexpected = Alert(
        kind=AlertKind.UNEXPECTED_SIGNER,
        dedup_key="unexpected_signer:rekor:2:release",
        summary="release: entry 2 signed by an identity not in allowed_signers",
        log="rekor",
        rule="release",
        details={"log_index": 2},
    )
    outbox.raise_alert(unexpected, channels, only=["security"])

    notifier = outbox.notifier(channels)
    assert await notifier.deliver_due() == DeliveryRound(delivered=3, failed=0)
    by_path = sorted((p.path, p.body["title"], p.body["type"]) for p in http.posts)
    assert by_path == [
        ("/chatty", "[INFO] identity_seen: rekor, rule release", "info"),
        ("/security-a", "[HIGH] unexpected_signer: rekor, rule release", "failure"),
        ("/security-b", "[HIGH] unexpected_signer: rekor, rule release", "failure"),
    ]


async def test_receiver_down_backs_off_redacts_and_delivers_once(
    outbox: Outbox, http: HttpReceiver
) -> None:
    url = http.url(f"hooks/{TOKEN}", user="monitor", password=PASSWORD)
    security = channel("security", [url])
    outbox.raise_alert(split_view(), [security])
    notifier = outbox.notifier([security])
    await http.stop()

    gaps: list[timedelta] = []
    for attempt in (1, 2, 3):
        assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=1)
        [row] = await outbox.rows()
        assert row["status"] == "pending"
        assert row["attempts"] == attempt
        assert row["last_error"] == (
            f"channel {target_name('security', url)} (URL 1 of 1): "
            "delivery failed (apprise reported failure)"
        )
        assert_no_secret(row["last_error"], [url])
        gap = datetime.fromisoformat(row["next_try"]) - outbox.clock.now
        gaps.append(gap)
        # Not due again before its next try.
        assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=0)
        outbox.clock.advance(gap)
    assert FAST.initial * 0.8 <= gaps[0] <= FAST.initial
    assert gaps[0] < gaps[1] < gaps[2] <= FAST.initial * 4

    # Listening again, but answering 500: still a failure, still retried.
    await http.start()
    http.failing = True
    assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=1)
    assert http.refused_posts == 1
    [row] = await outbox.rows()
    assert row["attempts"] == 4

    http.failing = False
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=0)
    assert len(http.posts) == 1
    assert http.posts[0].path == f"/hooks/{TOKEN}"
    [row] = await outbox.rows()
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 5, None)


async def test_restart_while_receiver_down_delivers_once(
    outbox: Outbox, http: HttpReceiver
) -> None:
    security = channel("security", [http.url()])
    outbox.raise_alert(split_view(), [security])
    await http.stop()
    assert await outbox.notifier([security]).deliver_due() == DeliveryRound(0, 1)

    outbox.reopen()
    await http.start()
    notifier = outbox.notifier([security])
    # Before the next try: nothing, even in a fresh process.
    assert await notifier.deliver_due() == DeliveryRound(0, 0)
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(1, 0)
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(0, 0)
    assert len(http.posts) == 1
    assert await outbox.pending() == 0


async def test_partial_failure_does_not_resend_to_the_healthy_url(
    outbox: Outbox, http: HttpReceiver
) -> None:
    broken = HttpReceiver()  # configured, not listening yet
    security = channel("security", [http.url("healthy"), broken.url("broken")])
    outbox.raise_alert(split_view(), [security])
    notifier = outbox.notifier([security])

    assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=1)
    await broken.start()
    try:
        outbox.clock.advance(FAST.cap)
        assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
        outbox.clock.advance(FAST.cap)
        assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=0)
    finally:
        await broken.stop()
    assert len(http.posts) == 1
    assert len(broken.posts) == 1
    rows = await outbox.rows()
    assert [(r["channel"], r["attempts"]) for r in rows] == [
        (target_name("security", http.url("healthy")), 1),
        (target_name("security", broken.url("broken")), 2),
    ]


async def test_many_alerts_each_delivered_once_in_order(
    outbox: Outbox, http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    count = 200
    webhook = channel("webhook", [http.url()])
    mail = channel("mail", [smtp.url()], Severity.CRITICAL)
    ids = [outbox.raise_alert(split_view(n), [webhook, mail]) for n in range(count)]
    notifier = outbox.notifier([webhook, mail])

    total = 0
    for _ in range(10):
        done = await notifier.deliver_due(limit=100)
        assert done.failed == 0
        total += done.delivered
        if done.delivered == 0:
            break
    assert total == 2 * count
    assert await outbox.pending() == 0

    # Many alerts of one kind and log become digests; each alert is covered once, in order.
    seen = [i for p in http.posts for i in message_alert_ids(p.body["message"])]
    assert seen == ids
    assert len(http.posts) <= 2  # at most 100 rows read a round: one digest per round
    mailed = [i for m in smtp.messages for i in message_alert_ids(SmtpReceiver.text(m))]
    assert mailed == ids


async def test_concurrent_rounds_do_not_duplicate(outbox: Outbox, http: HttpReceiver) -> None:
    security = channel("security", [http.url("a"), http.url("b")])
    for n in range(10):
        outbox.raise_alert(split_view(n), [security])
    notifier = outbox.notifier([security])

    rounds = await asyncio.gather(*(notifier.deliver_due() for _ in range(4)))
    assert sum(r.delivered for r in rounds) == 20
    assert sum(r.failed for r in rounds) == 0
    assert len(http.posts) == 20
    assert len({(p.path, p.body["message"]) for p in http.posts}) == 20


async def test_target_missing_from_config_stays_pending(outbox: Outbox, http: HttpReceiver) -> None:
    old = channel("old-team", [http.url("old")])
    outbox.raise_alert(split_view(), [old])
    notifier = outbox.notifier([channel("security", [http.url()])])

    assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=1)
    [row] = await outbox.rows()
    assert row["status"] == "pending"
    assert row["last_error"].startswith(
        f"channel {target_name('old-team', http.url('old'))}: not in the configuration "
        "(no channel 'old-team')"
    )
    assert http.posts == []

    notifier.set_channels([old])  # a reload brings the channel back
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
    assert [p.path for p in http.posts] == ["/old"]


def alert_ids(receiver: HttpReceiver) -> list[int]:
    return [int(p.body["message"].split("alert #")[1].split(",")[0]) for p in receiver.posts]


async def test_pending_delivery_follows_its_url_across_reloads(
    outbox: Outbox, http: HttpReceiver
) -> None:
    # Three recipients; a pending delivery for B must reach B whatever position B has after a
    # reload, and never A or C (positional names sent it to whatever URL took B's index).
    rb, rc = HttpReceiver(), HttpReceiver()
    await rb.start()
    await rc.start()
    try:
        a, b, c = http.url("a"), rb.url("b"), rc.url("c")
        original = channel("security", [a, b])
        rb.failing = True
        first = outbox.raise_alert(split_view(1), [original])
        notifier = outbox.notifier([original])
        assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=1)
        [row_a, row_b] = await outbox.rows()
        assert (row_a["channel"], row_a["status"]) == (target_name("security", a), "delivered")
        assert (row_b["channel"], row_b["status"]) == (target_name("security", b), "pending")
        assert row_b["last_error"].startswith(
            f"channel {target_name('security', b)} (URL 2 of 2): delivery failed"
        )

        # A removed: B is now URL 1 of 1, at the index A had.
        notifier.set_channels([channel("security", [b])])
        rb.failing = False
        outbox.clock.advance(FAST.cap)
        assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
        assert alert_ids(http) == [first]  # A: only its own delivery
        assert alert_ids(rb) == [first]
        assert rc.posts == []

        # Another alert pending for A and B; then C takes A's place in front of B.
        notifier.set_channels([original])
        http.failing = rb.failing = True
        second = outbox.raise_alert(split_view(2), [original])
        assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=2)
        notifier.set_channels([channel("security", [c, b])])
        http.failing = rb.failing = False
        outbox.clock.advance(FAST.cap)
        # B's row reaches B; A's row (A no longer configured) goes nowhere, C above all.
        assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=1)
        assert alert_ids(rb) == [first, second]
        assert rc.posts == []
        assert alert_ids(http) == [first]
        rows = await outbox.rows()
        [row_a2] = [r for r in rows if r["alert_id"] == second and r["status"] == "pending"]
        assert row_a2["channel"] == target_name("security", a)
        assert row_a2["last_error"].startswith(
            f"channel {target_name('security', a)}: not in the configuration "
            "(channel security has 2 URLs, none with this id)"
        )

        # A reload that brings A back delivers its row, to A.
        notifier.set_channels([channel("security", [b, a])])
        outbox.clock.advance(FAST.cap)
        assert await notifier.deliver_due() == DeliveryRound(delivered=1, failed=0)
        assert alert_ids(http) == [first, second]
        assert alert_ids(rb) == [first, second]
        assert rc.posts == []
        assert await outbox.pending() == 0
    finally:
        await rb.stop()
        await rc.stop()


def test_target_names_are_stable_and_collisions_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "json://127.0.0.1:8080/hook"
    assert target_name("security", url) == f"security#{url_id(url)}"
    assert url_id(url) == url_id(str(url))
    assert len(url_id(url)) == 8
    assert url_id(url) != url_id(url + "x")
    assert target_name("security", url) != target_name("ops", url)

    monkeypatch.setattr("monitor.notify.notifier.url_id", lambda _url: "3fa2c1d0")
    clash = channel("security", [f"json://{TOKEN}.example/a", "json://other.example/b"])
    with pytest.raises(NotifyError) as refused:
        delivery_targets([clash], Severity.CRITICAL)
    message = str(refused.value)
    assert message.startswith("channel security: URL 1 and URL 2 of 2 have the same id")
    assert "security#3fa2c1d0" in message
    assert_no_secret(message, clash.urls)


async def test_colliding_ids_refused_at_set_channels(
    outbox: Outbox, http: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = channel("security", [http.url("a"), http.url("b")])
    notifier = outbox.notifier([good])
    before = notifier.targets
    monkeypatch.setattr("monitor.notify.notifier.url_id", lambda _url: "3fa2c1d0")
    with pytest.raises(NotifyError, match="have the same id"):
        notifier.set_channels([good])
    assert notifier.targets == before  # the previous configuration stays in force
    with pytest.raises(NotifyError, match="have the same id"):
        await send_test(good, timeout=5.0)
    assert http.posts == []


async def test_timeout_defers_the_rest_of_the_target(outbox: Outbox, http: HttpReceiver) -> None:
    security = channel("security", [http.url()])
    for n in range(3):
        outbox.raise_alert(split_view(n), [security])
    notifier = outbox.notifier([security], send_timeout=0.3)
    http.delay = 1.0

    assert await notifier.deliver_due() == DeliveryRound(delivered=0, failed=3)
    rows = await outbox.rows()
    assert rows[0]["last_error"] == (
        f"channel {target_name('security', http.url())} (URL 1 of 1): no answer within 0.3 s"
    )
    for row in rows[1:]:
        assert "not attempted" in row["last_error"]
    assert {r["attempts"] for r in rows} == {1}

    # The abandoned send still landed: at-least-once at the transport.
    assert len(http.posts) == 1
    http.delay = 0.0
    outbox.clock.advance(FAST.cap)
    assert await notifier.deliver_due() == DeliveryRound(delivered=3, failed=0)
    assert len(http.posts) == 4
    # The abandoned send's retry says it may be a repeat; sends never attempted do not.
    titles = http.titles()
    assert titles[1] == titles[0] + REPEAT_MARK
    assert [t.endswith(REPEAT_MARK) for t in titles] == [False, True, False, False]


async def test_send_cut_off_by_a_crash_is_retried_as_a_possible_repeat(
    outbox: Outbox, http: HttpReceiver
) -> None:
    security = channel("security", [http.url()])
    alert_id = outbox.raise_alert(split_view(), [security])
    refused = outbox.raise_alert(split_view(2), [security])
    # The process died after a send began (the receiver may have it), before its outcome.
    first = (await outbox.rows())[0]["id"]
    outbox.store.mark_sending(first, outbox.clock())
    outbox.reopen()
    http.failing = True  # a refused send is not a possible repeat
    assert await outbox.notifier([security]).deliver_due() == DeliveryRound(0, 2)
    http.failing = False
    outbox.clock.advance(FAST.cap)
    assert await outbox.notifier([security]).deliver_due() == DeliveryRound(2, 0)
    marked = {int(p.body["message"].split("alert #")[1].split(",")[0]): p.body for p in http.posts}
    assert marked[alert_id]["title"].endswith(REPEAT_MARK)
    assert f"if you already have alert #{alert_id}" in marked[alert_id]["message"]
    assert not marked[refused]["title"].endswith(REPEAT_MARK)


async def test_apprise_log_filter_redacts_tokens(
    outbox: Outbox, http: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    url = http.url(f"hooks/{TOKEN}", user="monitor", password=PASSWORD)
    security = channel("security", [url])
    outbox.raise_alert(split_view(), [security])
    notifier = outbox.notifier([security])
    caplog.set_level(logging.DEBUG, logger="apprise")
    caplog.set_level(logging.DEBUG, logger="urllib3")

    # apprise's own debug lines name the request URL, path token included.
    assert await notifier.deliver_due() == DeliveryRound(1, 0)
    apprise_lines = [r.getMessage() for r in caplog.records if r.name == "apprise"]
    assert any("JSON POST URL" in line and REDACTED in line for line in apprise_lines)
    assert TOKEN not in caplog.text

    # A record carrying the token in its arguments and in an exception.
    apprise_log = logging.getLogger("apprise")
    caplog.clear()
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        apprise_log.debug("Socket Exception: %s (token %s)", url, TOKEN, exc_info=True)
    [record] = caplog.records
    assert record.getMessage() == f"Socket Exception: {REDACTED} (token {REDACTED})"
    assert_no_secret(caplog.text, [url])
    assert "ConnectionError" in caplog.text

    # Registering is idempotent: one filter per logger however many notifiers are built.
    install_log_redaction([url])
    outbox.notifier([security])
    assert len(apprise_log.filters) == 1


async def test_send_test_names_the_failing_target_not_its_url(http: HttpReceiver) -> None:
    down = f"json://monitor:{PASSWORD}@127.0.0.1:{free_port()}/hooks/{TOKEN}"
    security = channel("security", [http.url(), down])

    with pytest.raises(NotifyError) as failure:
        await send_test(security, timeout=5.0)
    assert failure.value.failed == (target_name("security", down),)
    assert str(failure.value).startswith(
        f"channel security: {target_name('security', down)} (URL 2 of 2): delivery failed"
    )
    assert_no_secret(str(failure.value), [down])
    [post] = http.posts
    assert post.body["title"] == "[TEST] tlog-monitor: channel security"

    await send_test(channel("security", [http.url()]), timeout=5.0)
    assert len(http.posts) == 2


async def test_message_is_bounded_and_single_line_fields(
    outbox: Outbox, http: HttpReceiver
) -> None:
    security = channel("security", [http.url()])
    noisy = {f"field_{i:03}": "x" * 150 for i in range(100)}
    alert = Alert(
        kind=AlertKind.BAD_ENTRY,
        dedup_key="bad_entry:rekor:7",
        summary="rekor: entry 7 does not hash into the tree\nFAKE: injected line\x1b[31m",
        log="rekor",
        details=noisy,
    )
    alert_id = outbox.raise_alert(alert, [security])
    [delivery] = await outbox.astore.call(outbox.store.due_deliveries, outbox.clock(), 10)
    message = render_message(delivery)
    assert len(message.body) <= 4000
    first, *rest = message.body.splitlines()
    # Escaped as monitor.core.terminal.printable does: one line, and the reader sees what was sent.
    assert first == r"rekor: entry 7 does not hash into the tree\x0aFAKE: injected line\x1b[31m"
    assert "\x1b" not in message.body
    assert f"alert #{alert_id}, critical, raised {delivery.created_at}" in rest
    assert any(line.endswith("more detail fields in the full record)") for line in rest)
    assert len(render_message(delivery, max_body=200).body) <= 200
