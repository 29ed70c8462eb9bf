"""`/metrics` and `/readyz` on the daemon's HTTP endpoint, over real HTTP on 127.0.0.1, against a
monitor polling the sandbox log; the exposition is read with the reference Prometheus parser."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.settings import ListenAddress
from monitor.service.daemon import Monitor
from monitor.service.httpd import HttpServer
from monitor.service.metrics import CONTENT_TYPE
from tests.integration.test_engine import Env, env

__all__ = ["env"]  # the fixture, re-used

LOGS = ("rekor-sandbox", "tiles-sandbox")


@pytest.fixture
async def served(env: Env) -> AsyncIterator[tuple[Env, Monitor, str]]:
    env.write_config(views=[env.sandbox.view_url("mirror")])
    async with env.open() as monitor:
        server = HttpServer(
            ListenAddress("127.0.0.1", 0), monitor.store, list(monitor.logs), monitor.stats
        )
        await server.start()
        try:
            yield env, monitor, server.url
        finally:
            await server.stop()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, parsed by prometheus_client."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**kv: str) -> frozenset[tuple[str, str]]:
    return frozenset(kv.items())


async def test_readyz_waits_for_the_first_poll_of_every_log(
    served: tuple[Env, Monitor, str],
) -> None:
    _, monitor, base = served
    status, _, body = await get(f"{base}/readyz")
    assert status == 503
    assert body == "not ready: not polled yet: rekor-sandbox, tiles-sandbox\n"
    await monitor.poll("rekor-sandbox")
    status, _, body = await get(f"{base}/readyz")
    assert (status, body) == (503, "not ready: not polled yet: tiles-sandbox\n")
    await monitor.poll("tiles-sandbox")
    assert await get(f"{base}/readyz") == (200, "text/plain; charset=utf-8", "ready\n")


async def test_metrics_report_sizes_polls_alerts_and_deliveries(
    served: tuple[Env, Monitor, str],
) -> None:
    env, monitor, base = served
    status, ctype, text = await get(f"{base}/metrics")
    assert (status, ctype) == (200, CONTENT_TYPE)
    before = samples(text)
    for log in LOGS:  # every configured log has poll series from the start, at zero
        assert before["tlog_monitor_polls_total", labels(log=log, outcome="ok")] == 0
    assert before["tlog_monitor_deliveries", labels(status="pending")] == 0

    started = time.time()
    assert (await monitor.check()).alerts == []
    env.sandbox.misbehave("v1", "fork", view="mirror")
    await env.sandbox.append("v1", 2)
    await env.sandbox.append("tiles", 44)
    outcome = await monitor.check()
    assert [a.kind.value for _, a in outcome.alerts] == ["split_view"]

    got = samples((await get(f"{base}/metrics"))[2])
    tree = env.sandbox.state()["v1"]["treeID"]
    v1 = labels(log="rekor-sandbox", tree=str(tree))
    tiles = labels(log="tiles-sandbox", tree="tiles")
    assert got["tlog_monitor_tree_size", v1] == 22
    assert got["tlog_monitor_tree_size", tiles] == 344
    assert got["tlog_monitor_verified_size", tiles] == 344
    # The fork stops v1's verified state where it was proven, at 20 or 22 depending on which
    # view answered first; it never passes the log's own size.
    assert got["tlog_monitor_verified_size", v1] in (20, 22)
    assert got["tlog_monitor_scan_lag_entries", tiles] == 0  # tiles scan; v1 does not
    assert ("tlog_monitor_scan_lag_entries", v1) not in got
    assert got["tlog_monitor_frozen", v1] == 0
    ok_at = got[
        "tlog_monitor_last_success_timestamp_seconds", labels(log="tiles-sandbox", view="primary")
    ]
    assert started - 1 <= ok_at <= time.time() + 1
    assert got["tlog_monitor_polls_total", labels(log="tiles-sandbox", outcome="ok")] == 2
    assert got["tlog_monitor_polls_total", labels(log="rekor-sandbox", outcome="alert")] == 1
    assert got["tlog_monitor_polls_total", labels(log="rekor-sandbox", outcome="error")] == 0
    alert = labels(log="rekor-sandbox", kind="split_view", severity="critical")
    assert got["tlog_monitor_alerts_total", alert] == 1
    assert got["tlog_monitor_deliveries", labels(status="delivered")] == 1
    assert got["tlog_monitor_deliveries", labels(status="failing")] == 0
    assert got["tlog_monitor_start_time_seconds", labels()] <= time.time()
