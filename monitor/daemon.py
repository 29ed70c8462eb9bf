"""The daemon: one job per log, a delivery job and a health job, on an asyncio scheduler.

    config ──> Monitor ──> LogMonitor (engine) per log ──> views (clients) ──> logs
                  │                 └──> AsyncStore (one writer thread) <──┐
                  └──> Notifier: outbox ──> apprise channels ───────────────┘

`check` runs every job once and exits; `run` schedules them until SIGTERM/SIGINT, reloads the
configuration on SIGHUP, and speaks the systemd notify protocol (READY, WATCHDOG, STOPPING).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.alerts import Alert
from monitor.chain import trust_for_log
from monitor.config import Config, load_config
from monitor.engine import PRIMARY_VIEW, CheckpointSource, LogMonitor, PollResult
from monitor.errors import ConfigError, MonitorError
from monitor.logs.http import RequestBudget
from monitor.notify import DeliveryRound, Notifier, delivery_targets
from monitor.scanner import Scanner
from monitor.severity import Severity
from monitor.sources import checkpoint_source, http_policy, log_spec, resolve_logs
from monitor.store import AsyncStore, Store, utc_iso
from monitor.systemd import sd_notify, watchdog_interval
from monitor.watch import Matcher

log = logging.getLogger(__name__)

DELIVERY_INTERVAL_S = 10.0


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass
class CheckOutcome:
    """What one pass over every job found."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delivered: int = 0
    undelivered: int = 0

    @property
    def urgent(self) -> bool:
        """A new critical or high alert was raised."""
        return any(a.severity >= Severity.HIGH for _, a in self.alerts)


def view_name(index: int, url: str) -> str:
    """The stable name of a configured view: its position and URL (log URLs carry no secrets:
    the config refuses credentials in them)."""
    return f"view{index}:{url}"


class Monitor:
    """Every job of one configuration, sharing one HTTP session and one store."""

    def __init__(
        self,
        config: Config,
        store: AsyncStore,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.session = session
        self.clock = clock
        self.notifier = Notifier(config.channels, store, clock=clock)
        self.logs: dict[str, LogMonitor] = {}
        self.scanners: dict[str, Scanner] = {}

    async def prepare(self) -> None:
        """Resolve every log's keys and endpoints (raises ConfigError) and record the logs."""
        policy = http_policy(self.config)
        logs: dict[str, LogMonitor] = {}
        scanners: dict[str, Scanner] = {}
        for cfg in self.config.logs:
            spec = log_spec(self.config, cfg)
            # One request budget per log, shared by its polls, proofs and scans.
            primary = checkpoint_source(
                cfg, cfg.url, self.session, policy, RequestBudget(cfg.requests_per_minute)
            )
            sources: dict[str, CheckpointSource] = {PRIMARY_VIEW: primary}
            for i, url in enumerate(cfg.views, start=1):
                sources[view_name(i, url)] = checkpoint_source(
                    cfg, url, self.session, policy, RequestBudget(cfg.requests_per_minute)
                )
            log_id = await self.store.call(
                self.store.store.ensure_log, cfg.name, cfg.type.value, cfg.url, self.clock()
            )
            logs[cfg.name] = LogMonitor(
                spec, log_id, sources, self.store, self._targets, self.clock
            )
            if cfg.scan:
                matcher = Matcher(self.config.rules_for_log(cfg.name), trust_for_log(cfg))
                scanners[cfg.name] = Scanner(
                    cfg.name,
                    log_id,
                    primary,
                    matcher,
                    self.store,
                    self._targets,
                    self.clock,
                    start=cfg.start,
                )
        self.logs = logs
        self.scanners = scanners
        self.notifier.set_channels(self.config.channels)

    def _targets(self, alert: Alert) -> list[str]:
        rule = None
        if alert.rule is not None:
            rule = next((r for r in self.config.watches if r.name == alert.rule), None)
        only = list(rule.notify) if rule is not None and rule.notify else None
        return delivery_targets(self.config.channels, alert.severity, only)

    async def poll(self, name: str) -> PollResult:
        """One poll of one log, then a scan of its new entries when it scans; operational
        failures are recorded, never raised."""
        result = await self.logs[name].poll()
        scanner = self.scanners.get(name)
        if scanner is not None:
            scanned = await scanner.scan()
            result.alerts.extend(scanned.alerts)
            result.errors.extend(scanned.errors)
        return result

    async def poll_and_alert(self, name: str) -> None:
        """The scheduled job: one poll, and at once a delivery round if it raised alerts (the
        periodic delivery job only retries)."""
        if (await self.poll(name)).alerts:
            await self.deliver()

    async def deliver(self) -> DeliveryRound:
        """One round of the outbox."""
        return await self.notifier.deliver_due()

    async def check(self) -> CheckOutcome:
        """Every log polled once (concurrently), then one delivery round."""
        outcome = CheckOutcome()
        results = await asyncio.gather(*(self.poll(name) for name in self.logs))
        for result in results:
            outcome.alerts.extend(result.alerts)
            outcome.errors.extend(result.errors)
        delivered = await self.deliver()
        outcome.delivered = delivered.delivered
        outcome.undelivered = await self.store.call(self.store.store.pending_count)
        return outcome


@asynccontextmanager
async def open_monitor(
    config: Config, clock: Callable[[], datetime] = utcnow
) -> AsyncIterator[Monitor]:
    """A prepared Monitor with its store and HTTP session, closed on exit."""
    store = AsyncStore(await asyncio.to_thread(Store.open, config.monitor.database))
    try:
        timeout = aiohttp.ClientTimeout(total=config.monitor.request_timeout.total_seconds())
        async with aiohttp.ClientSession(
            timeout=timeout, headers={"User-Agent": config.monitor.user_agent}
        ) as session:
            monitor = Monitor(config, store, session, clock)
            await monitor.prepare()
            yield monitor
    finally:
        await asyncio.to_thread(store.close)


async def check_once(config: Config) -> CheckOutcome:
    """`tlog-monitor check`: one pass of every job, recorded as a run."""
    async with open_monitor(config) as monitor:
        store = monitor.store
        run_id = await store.call(store.store.start_run, "check", utcnow())
        outcome = await monitor.check()
        result = "alert" if outcome.urgent else ("error" if outcome.errors else "clean")
        await store.call(
            store.store.finish_run,
            run_id,
            result,
            {"alerts": [i for i, _ in outcome.alerts], "errors": outcome.errors},
            utcnow(),
        )
        return outcome


class Daemon:
    """`tlog-monitor run`: the scheduler, signals and systemd integration."""

    def __init__(self, config_path: Path, config: Config) -> None:
        self.config_path = config_path
        self.config = config
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    def stop(self) -> None:
        """Ask the daemon to finish its running jobs and exit."""
        self._stop.set()

    async def run(self) -> None:
        """Run until stopped; each reload rebuilds the jobs from the new configuration."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        try:
            while not self._stop.is_set():
                await self._serve(self.config)
                if self._reload.is_set():
                    self._reload.clear()
                    self._try_reload()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _try_reload(self) -> None:
        sd_notify("RELOADING=1")
        try:
            config = load_config(self.config_path)
            resolve_logs(config)
        except ConfigError as e:
            log.error("reload refused, keeping the running configuration: %s", e)
        else:
            self.config = config
            log.info("configuration reloaded from %s", self.config_path)

    async def _serve(self, config: Config) -> None:
        async with open_monitor(config) as monitor:
            run_id = await monitor.store.call(monitor.store.store.start_run, "run", utcnow())
            scheduler = AsyncIOScheduler(timezone=UTC)
            for cfg in config.logs:
                interval = cfg.interval.total_seconds()
                scheduler.add_job(
                    monitor.poll_and_alert,
                    "interval",
                    args=[cfg.name],
                    id=f"poll:{cfg.name}",
                    seconds=interval,
                    jitter=max(1.0, interval * 0.1),
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=int(interval),
                    next_run_time=utcnow(),
                )
            scheduler.add_job(
                monitor.deliver,
                "interval",
                id="deliver",
                seconds=DELIVERY_INTERVAL_S,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(DELIVERY_INTERVAL_S),
                next_run_time=utcnow(),
            )
            watchdog = watchdog_interval()
            if watchdog is not None:
                scheduler.add_job(
                    sd_notify, "interval", args=["WATCHDOG=1"], id="watchdog", seconds=watchdog
                )
            scheduler.start()
            sd_notify("READY=1")
            sd_notify(f"STATUS=monitoring {len(config.logs)} log(s)")
            log.info("monitoring %d log(s); database %s", len(config.logs), config.monitor.database)
            try:
                stop = asyncio.create_task(self._stop.wait())
                reload = asyncio.create_task(self._reload.wait())
                await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                reload.cancel()
            finally:
                if self._stop.is_set():
                    sd_notify("STOPPING=1")
                # Let running polls and deliveries finish before APScheduler's shutdown, which
                # cancels them; each commits or rolls back as a whole either way.
                scheduler.pause()
                await _drain(scheduler)
                scheduler.shutdown(wait=False)
                await monitor.store.call(
                    monitor.store.store.finish_run,
                    run_id,
                    "reload" if self._reload.is_set() else "stopped",
                    {"stopped_at": utc_iso(utcnow())},
                    utcnow(),
                )


async def _drain(scheduler: AsyncIOScheduler, timeout: float = 20.0) -> None:
    """Wait for the jobs APScheduler started (its asyncio executor keeps them as futures)."""
    executor = scheduler._executors.get("default")
    pending = set(getattr(executor, "_pending_futures", ()))
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def run_daemon(config_path: Path, config: Config) -> None:
    """Blocking entry point of `tlog-monitor run`."""
    try:
        asyncio.run(Daemon(config_path, config).run())
    except MonitorError:
        sd_notify("STOPPING=1")
        raise
