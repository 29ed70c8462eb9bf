"""`/metrics` stays cheap on a large database: with 100,000 alerts (and as many deliveries) in
a real SQLite file, many concurrent scrapers neither starve the polls of the sandbox log (which
share the database thread with them) nor get wrong figures."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from monitor.config.settings import ListenAddress
from monitor.core.alerts import Alert, AlertKind
from monitor.sandbox import Sandbox
from monitor.service.daemon import Monitor
from monitor.service.httpd import HttpServer
from monitor.store.database import AsyncStore, Store
from tests.integration.test_engine import Env, started_env
from tests.integration.test_metrics_http import labels, samples

ALERTS = 100_000
SCRAPERS = 16
SCRAPER = """
import asyncio, signal, sys, aiohttp

async def main(url, clients, pace):
    done = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def client(session):
        nonlocal done
        while not stop.is_set():
            async with session.get(url) as resp:
                assert resp.status == 200
                await resp.read()
            done += 1
            await asyncio.sleep(pace)

    async with aiohttp.ClientSession() as session:
        print("started", flush=True)
        await asyncio.gather(*(client(session) for _ in range(clients)))
    print(done, flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""
"""SCRAPERS clients scraping `url`, each every PACE_S, until SIGTERM; then prints the number of
scrapes."""
PACE_S = 0.05
WINDOW_S = 1.5
LOG = "tiles-sandbox"
SEEDED = labels(log=LOG, kind="unexpected_signer", severity="high")


def seed(db: Path, url: str, count: int) -> None:
    """`count` delivered unexpected_signer alerts of LOG, written fast (one transaction,
    executemany) into the monitor's real database file."""
    store = Store.open(db)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    log_id = store.ensure_log(LOG, "tiles", url, now)
    store.close()
    details = json.dumps({"certificate": "A" * 1000, "identity": "https://example.invalid/w"})
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO alerts (kind, severity, log_id, rule, dedup_key, summary, details, "
            "created_at) VALUES ('unexpected_signer', 'high', ?, 'release', ?, ?, ?, "
            "'2026-01-01T00:00:00Z')",
            ((log_id, f"seed:{i}", f"seeded alert {i}", details) for i in range(count)),
        )
        conn.execute(
            "INSERT INTO deliveries (alert_id, channel, status, attempts, next_try, delivered_at) "
            "SELECT id, 'ops', 'delivered', 1, created_at, created_at FROM alerts"
        )
    conn.close()


@pytest.fixture
async def big(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[tuple[Env, Monitor, str]]:
    async with started_env(sandbox, tmp_path, v1=5, tiles=20) as env:
        await asyncio.to_thread(seed, tmp_path / "monitor.db", sandbox.tiles_url, ALERTS)
        async with env.open() as monitor:
            server = HttpServer(
                ListenAddress("127.0.0.1", 0),
                monitor.store,
                list(monitor.logs),
                monitor.stats,
            )
            await server.start()
            try:
                yield env, monitor, f"{server.url}/metrics"
            finally:
                await server.stop()


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


async def polls_in_window(monitor: Monitor) -> int:
    """Polls of LOG completed in WINDOW_S, one after another."""
    loop = asyncio.get_running_loop()
    end = loop.time() + WINDOW_S
    done = 0
    while loop.time() < end:
        await monitor.poll(LOG)
        done += 1
    return done


async def test_concurrent_scrapes_do_not_starve_polls(big: tuple[Env, Monitor, str]) -> None:
    _, monitor, url = big
    async with aiohttp.ClientSession() as session:
        first = samples(await scrape(session, url))
        assert first["tlog_monitor_alerts_total", SEEDED] == ALERTS
        assert first["tlog_monitor_deliveries", labels(status="delivered")] == ALERTS

        alone = await polls_in_window(monitor)
        # The same load of plain HTTP requests is the baseline: what the scrapes cost the
        # monitor beyond answering HTTP is what they cost its database thread.
        health, _ = await polls_while_scraped(monitor, url.replace("/metrics", "/healthz"))
        metered, scrapes = await polls_while_scraped(monitor, url)
    # Each scrape used to count the whole alerts table on the database thread (0.2-0.7 s at
    # this size): with 16 clients, the polls' own database calls waited behind them.
    assert scrapes >= SCRAPERS
    assert metered >= health / 2, (alone, health, metered, scrapes)


async def polls_while_scraped(monitor: Monitor, url: str) -> tuple[int, int]:
    """Polls in a window while SCRAPERS clients of another process (as they would be: this
    one's event loop runs the monitor and the sandbox) scrape `url`; and how many scrapes."""
    scrapers = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRAPER,
        url,
        str(SCRAPERS),
        str(PACE_S),
        stdout=asyncio.subprocess.PIPE,
    )
    assert scrapers.stdout is not None
    assert await scrapers.stdout.readline() == b"started\n"
    try:
        polls = await polls_in_window(monitor)
    finally:
        scrapers.send_signal(signal.SIGTERM)
        out, _ = await scrapers.communicate()
    return polls, int(out.decode().split()[-1])


async def test_figures_follow_the_writers(big: tuple[Env, Monitor, str]) -> None:
    env, monitor, url = big
    async with aiohttp.ClientSession() as session:
        assert samples(await scrape(session, url))["tlog_monitor_alerts_total", SEEDED] == ALERTS

        # An alert written after the first count is counted once, by the next scrapes.
        store = monitor.store
        log_id = next(i for i, n in (await store.call(store.store.log_names)).items() if n == LOG)
        late = Alert(AlertKind.UNEXPECTED_SIGNER, "late:1", "one more", LOG, "release", {})
        await store.call(store.store.raise_alerts, log_id, [(late, ["ops"])], datetime.now(UTC))
        env.sandbox.misbehave("tiles", "bad_signature")
        await monitor.poll(LOG)
        got: dict[object, float] = {}

        async def refreshed() -> bool:
            got.update(samples(await scrape(session, url)))
            return got["tlog_monitor_alerts_total", SEEDED] == ALERTS + 1

        deadline = asyncio.get_running_loop().time() + 10
        while not await refreshed():
            assert asyncio.get_running_loop().time() < deadline, "the new alert is never counted"
            await asyncio.sleep(0.05)
        bad = labels(log=LOG, kind="bad_signature", severity="critical")
        assert got["tlog_monitor_alerts_total", bad] == 1
        assert got["tlog_monitor_deliveries", labels(status="pending")] == 2
        for _ in range(3):  # counted once, however often it is scraped
            assert samples(await scrape(session, url))["tlog_monitor_alerts_total", SEEDED] == (
                ALERTS + 1
            )


async def test_an_unreadable_database_is_a_503(tmp_path: Path) -> None:
    store = AsyncStore(Store.open(tmp_path / "monitor.db"))
    server = HttpServer(ListenAddress("127.0.0.1", 0), store, [LOG])
    await server.start()
    try:
        store.close()  # the database thread is gone: every read fails
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/metrics") as r:
            assert r.status == 503
            assert "database cannot be read" in await r.text()
    finally:
        await server.stop()
