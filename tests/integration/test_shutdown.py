"""Graceful drain: on SIGTERM the daemon schedules nothing new, lets the poll in flight finish
(and deliver what it raised), then exits 0; a job that outlives the drain is cancelled and
unwound before the store closes."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.service.daemon import RunningJobs
from monitor.store.database import Store
from tests.integration.receivers import LOCALHOST, free_port
from tests.integration.test_daemon import NotifySocket, env, start_run, wait_until
from tests.integration.test_engine import Env

__all__ = ["env"]  # the fixture, re-used

SLOW_S = 3.0


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_sigterm_mid_poll_finishes_the_poll_delivers_and_exits_0(
    env: Env, tmp_path: Path
) -> None:
    port = free_port()
    text = env.config_path.read_text()
    env.config_path.write_text(
        text.replace('http_listen = ""', f'http_listen = "{LOCALHOST}:{port}"')
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = await start_run(env, notify, tmp_path)
    try:
        await notify.wait_for("READY=1")
        sb = env.sandbox
        await wait_until(lambda: sb.request_count("v1.log") >= 1)
        # The daemon's own endpoint: ready once both logs were polled, metrics counting polls.
        base = f"http://{LOCALHOST}:{port}"
        for _ in range(200):  # 20 s at most
            status, body = await fetch(f"{base}/readyz")
            if status != 503:
                break
            await asyncio.sleep(0.1)
        assert (status, body) == (200, "ready\n")
        status, body = await fetch(f"{base}/metrics")
        assert (
            status == 200 and 'tlog_monitor_polls_total{log="tiles-sandbox",outcome="ok"}' in body
        )
        # The next poll of the primary hangs SLOW_S seconds in the log, and will find a fork.
        sb.misbehave("v1", "fork", view="mirror")
        await sb.append("v1", 2)
        sb.misbehave("v1", "slow", delay=SLOW_S)
        seen = sb.request_count("v1.log")
        await wait_until(lambda: sb.request_count("v1.log") > seen)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING=1")
        code = await asyncio.wait_for(proc.wait(), 30)
        elapsed = time.monotonic() - started
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()
    output = (await proc.communicate())[0].decode(errors="replace") if proc.stdout else ""
    assert code == 0, output[-3000:]
    # It waited for the slow answer instead of abandoning the poll, but not much longer.
    assert SLOW_S - 0.5 <= elapsed < SLOW_S + 8, elapsed
    # The poll in flight at SIGTERM completed: its alert was recorded and delivered before exit.
    assert env.receiver.titles() == ["[CRITICAL] split_view: rekor-sandbox"]
    store = Store.open(tmp_path / "monitor.db")
    try:
        [run] = store.query("SELECT outcome FROM runs")
        assert run["outcome"] == "stopped"
        assert store.pending_count() == 0
    finally:
        store.close()


async def test_drain_cancels_and_unwinds_jobs_that_outlive_it() -> None:
    started: list[str] = []
    finished: list[str] = []
    unwound: list[str] = []

    async def quick() -> None:
        started.append("quick")
        await asyncio.sleep(0.3)
        finished.append("quick")

    async def stuck() -> None:
        started.append("stuck")
        try:
            await asyncio.sleep(3600)
        finally:
            unwound.append("stuck")

    jobs = RunningJobs()
    scheduler = AsyncIOScheduler()
    scheduler.start()
    try:
        scheduler.add_job(jobs.track(quick))
        scheduler.add_job(jobs.track(stuck))
        await wait_until(lambda: len(started) == 2)
        scheduler.pause()
        await jobs.drain(timeout=1.0)
    finally:
        scheduler.shutdown(wait=False)
    assert finished == ["quick"]  # the drain waited for the job that could finish
    assert unwound == ["stuck"]  # and cancelled the other, whose cleanup ran before it returned
    await jobs.drain(timeout=0.1)  # a finished or cancelled job is no longer tracked
    assert unwound == ["stuck"]


async def test_tracked_job_takes_the_jobs_arguments() -> None:
    """APScheduler checks a job's arguments against its signature when it is added, and runs a
    coroutine function on the event loop: the tracked job must look like the job to it."""
    seen: list[str] = []

    async def poll(name: str) -> None:
        seen.append(name)

    jobs = RunningJobs()
    scheduler = AsyncIOScheduler()
    scheduler.start()
    try:
        scheduler.add_job(jobs.track(poll), args=["rekor"])
        await wait_until(lambda: seen == ["rekor"])
    finally:
        scheduler.shutdown(wait=False)
