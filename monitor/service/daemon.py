"""The daemon: one job per log, a delivery job and a systemd watchdog job, on an asyncio
scheduler.

    config ──> Monitor ──> LogMonitor (engine) per log ──> views (clients) ──> logs
                  │                 └──> AsyncStore (one writer thread) <──┐
                  └──> Notifier: outbox ──> apprise channels ───────────────┘

`check` runs every job once and exits; `run` schedules them until SIGTERM/SIGINT, reloads the
configuration on SIGHUP, and speaks the systemd notify protocol (READY, WATCHDOG, STOPPING).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import multiprocessing
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.config.settings import Config, LogConfig, ViewKind, load_config
from monitor.core.alerts import PRIMARY_VIEW, Alert
from monitor.core.errors import ConfigError, MonitorError
from monitor.core.severity import Severity
from monitor.core.watch.match import Matcher
from monitor.core.witness import parse_witness_vkey
from monitor.logs.http import RequestBudget
from monitor.notify.notifier import DeliveryRound, MessageOrigin, Notifier, delivery_targets
from monitor.service.alert_log import raised
from monitor.service.engine import CheckpointSource, LogMonitor, LogSpec, PollResult
from monitor.service.httpd import HttpServer
from monitor.service.index_search import Searcher, searcher_for
from monitor.service.metrics import PollStats, classify_poll
from monitor.service.note_views import NoteSource
from monitor.service.scanner import Scanner
from monitor.service.sct_watch import CtLedger, CtLogKey, SctWatch
from monitor.service.systemd import sd_notify, watchdog_interval
from monitor.service.trust_watch import TrustUpdate, TrustWatcher
from monitor.service.unlogged import RekorLog, UnloggedWatch
from monitor.service.wiring import (
    checkpoint_source,
    ct_verifier,
    http_policy,
    log_key_der,
    log_spec,
    read_ct_leaf,
    resolve_logs,
    trust_for_log,
)
from monitor.store.database import AsyncStore, Store, StoreError, utc_iso

log = logging.getLogger(__name__)

DELIVERY_INTERVAL_S = 10.0
DRAIN_TIMEOUT_S = 15.0
"""On stop or reload: how long running polls and deliveries may take to finish."""
LAST_ROUND_TIMEOUT_S = 8.0
LAST_ROUND_SEND_TIMEOUT_S = 5.0
"""On stop: the bound of the last delivery round, and of each send in it. With the drain that
stays under the unit's TimeoutStopSec=30s."""


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class _PartResult(Protocol):
    """What a scan or a search of one log reports."""

    @property
    def alerts(self) -> Sequence[tuple[int, Alert]]: ...

    @property
    def errors(self) -> Sequence[str]: ...


@dataclass
class CheckOutcome:
    """What one pass over every job found."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delivered: int = 0
    undelivered: int = 0
    sizes: dict[str, int | None] = field(default_factory=dict)
    """Per log polled: the verified size of its active tree (None: nothing verified yet)."""
    scanned: int = 0
    """Entries read and matched against the watch rules, by scans and through search indexes."""

    @property
    def urgent(self) -> bool:
        """A new critical or high alert was raised."""
        return any(a.severity >= Severity.HIGH for _, a in self.alerts)


_Part = TypeVar("_Part", bound=_PartResult)
_P = ParamSpec("_P")


def scan_workers(configured: int) -> int:
    """The worker processes a long backfill may use: `configured` (`[monitor] scan_workers`),
    or 1 when processes cannot share memory here (a read-only or missing /dev/shm, as under the
    shipped systemd unit), logged once as a warning."""
    if configured < 2:
        return configured
    try:
        # The worker pool's queues need POSIX semaphores, which live in /dev/shm: without them
        # the pool cannot even be made, and every long scan would fail instead of going on in
        # this process. A "fork" context's lock is unlinked at once, so this probe leaves
        # nothing behind and starts no process.
        multiprocessing.get_context("fork").Lock()
    except OSError as e:
        log.warning(
            "[monitor] scan_workers = %d: no shared memory for the scan's worker processes "
            "(%s); scanning in this process",
            configured,
            e,
        )
        return 1
    return configured


def view_name(index: int, url: str) -> str:
    """The stable name of a configured view: its position and URL (log URLs carry no secrets:
    the config refuses credentials in them)."""
    return f"view{index}:{url}"


def with_witnesses(spec: LogSpec, cfg: LogConfig) -> LogSpec:
    """`spec` with the log's `[[log.witness]]` keys and `witness_quorum`."""
    if not cfg.witnesses:
        return spec
    keys = tuple(parse_witness_vkey(w.vkey) for w in cfg.witnesses)
    return replace(spec, witnesses=keys, witness_quorum=cfg.witness_quorum)


class Monitor:
    """Every job of one configuration, sharing one HTTP session and one store."""

    def __init__(
        self,
        config: Config,
        store: AsyncStore,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime] = utcnow,
        stats: PollStats | None = None,
        trust: TrustWatcher | None = None,
    ) -> None:
        self.config = config
        self.trust = trust
        """The `[[sigstore]]` sources; their logs are monitored next to the `[[log]]` tables."""
        self.log_configs: tuple[LogConfig, ...] = config.logs
        """Every log monitored: the `[[log]]` tables, then the logs the sources list."""
        self.trust_update = TrustUpdate()
        """What loading the sources raised, for `check` to report."""
        self.store = store
        self.session = session
        self.clock = clock
        self.stats = PollStats() if stats is None else stats
        """Polls by outcome, for /metrics and /readyz."""
        # Messages name this host and this configuration file in their report commands.
        self.notifier = Notifier(
            config.channels, store, clock=clock, origin=MessageOrigin.local(config.path)
        )
        self.logs: dict[str, LogMonitor] = {}
        self.scanners: dict[str, Scanner] = {}
        self.searchers: dict[str, Searcher] = {}
        self.unlogged: UnloggedWatch | None = None
        """Judges CT certificates not found in Rekor after each poll; None without a scanned
        CT log."""
        self.entries_read = 0
        """Entries scanned or fetched through a search index since this Monitor was made."""

    async def prepare(self) -> None:
        """Load the trust sources (once), resolve every log's keys and endpoints (raises
        ConfigError) and record the logs."""
        if self.trust is not None:
            self.trust_update = await self.trust.start(self.store, self._targets)
            self.log_configs = self.trust.logs()
        policy = http_policy(self.config)
        logs: dict[str, LogMonitor] = {}
        scanners: dict[str, Scanner] = {}
        searchers: dict[str, Searcher] = {}
        # The monitored ct logs' keys, filled below before any scan reads them.
        sct_watch = SctWatch()
        rekor_logs: list[RekorLog] = []
        scans_ct = False
        # Rekor v1 indexes look pending certificates up only when a CT log shows certificates.
        ct_scanned = any(c.type.is_ct and c.scan for c in self.log_configs)
        # A CT log's scan never uses worker processes (it keeps a ledger of proven leaves).
        workers = (
            scan_workers(self.config.monitor.scan_workers)
            if any(c.scan and not c.type.is_ct for c in self.log_configs)
            else 1
        )
        for cfg in self.log_configs:
            spec = with_witnesses(log_spec(self.config, cfg), cfg)
            # One request budget per log, shared by its polls, proofs, scans and searches.
            primary = checkpoint_source(
                cfg, cfg.url, self.session, policy, RequestBudget(cfg.requests_per_minute)
            )
            sources: dict[str, CheckpointSource] = {PRIMARY_VIEW: primary}
            lagging: list[str] = []
            cosigned: list[str] = []
            for i, view in enumerate(cfg.view_configs, start=1):
                name = view_name(i, view.url)
                budget = RequestBudget(cfg.requests_per_minute)
                if view.kind.serves_note:
                    # Witnesses and peers trail the log: behind is normal, forked is not.
                    sources[name] = NoteSource(cfg, view.url, self.session, policy, budget)
                    lagging.append(name)
                else:
                    sources[name] = checkpoint_source(cfg, view.url, self.session, policy, budget)
                if view.kind is ViewKind.WITNESS:
                    cosigned.append(name)
            log_id = await self.store.state.ensure_log(
                cfg.name, cfg.type.value, cfg.url, self.clock(), source=cfg.source
            )
            logs[cfg.name] = LogMonitor(
                spec,
                log_id,
                sources,
                self.store,
                self._targets,
                self.clock,
                lagging=lagging,
                cosigned=cosigned,
            )
            ledger = None
            # Only a scanned ct log can show it kept (or broke) an SCT's promise.
            if cfg.type.is_ct and cfg.scan:
                key = log_key_der(cfg)
                sct_watch.ct_logs[hashlib.sha256(key).digest()] = CtLogKey(
                    cfg.name, log_id, key, hashlib.sha256(key).digest()
                )
                ledger = CtLedger(cfg.name, log_id, ct_verifier(cfg), cfg.start)
            if cfg.scan:
                trust = trust_for_log(cfg)
                matcher = Matcher(self.config.rules_for(cfg), trust)
                if cfg.type.is_ct:
                    scans_ct = True
                else:
                    rules = frozenset(r.name for r in self.config.rules_for(cfg))
                    rekor_logs.append(RekorLog(cfg.name, log_id, cfg.start, rules))
                scanners[cfg.name] = Scanner(
                    cfg.name,
                    log_id,
                    primary,
                    matcher,
                    self.store,
                    self._targets,
                    self.clock,
                    start=cfg.start,
                    read_entry=read_ct_leaf if cfg.type.is_ct else None,
                    scts=None if cfg.type.is_ct else sct_watch,
                    trust=trust,
                    ledger=ledger,
                    workers=1 if cfg.type.is_ct else workers,
                )
            searcher = searcher_for(
                self.config,
                cfg,
                spec,
                log_id,
                primary,
                self.store,
                self._targets,
                self.clock,
                sct_watch,
                unlogged=ct_scanned,
            )
            if searcher is not None:
                searchers[cfg.name] = searcher
                if searcher.unlogged and not cfg.scan:
                    rules = frozenset(searcher.unlogged)
                    rekor_logs.append(RekorLog(cfg.name, log_id, cfg.start, rules, how="search"))
        self.logs = logs
        self.scanners = scanners
        self.searchers = searchers
        self.unlogged = (
            UnloggedWatch({r.name: r for r in self.config.watches}, tuple(rekor_logs))
            if scans_ct
            else None
        )
        self.notifier.set_channels(self.config.channels)

    async def refresh_trust(self, source: str) -> bool:
        """One refresh of a `[[sigstore]]` source, its alerts recorded; True when the logs it
        lists changed (the jobs must be rebuilt to follow)."""
        if self.trust is None:
            return False
        await self.trust.refresh(source, self.store, self._targets)
        return self.trust.logs() != self.log_configs

    def _targets(self, alert: Alert) -> list[str]:
        rule = None
        if alert.rule is not None:
            rule = next((r for r in self.config.watches if r.name == alert.rule), None)
        only = list(rule.notify) if rule is not None and rule.notify else None
        return delivery_targets(self.config.channels, alert.severity, only)

    async def poll(self, name: str) -> PollResult:
        """One poll of one log, then a scan of its new entries when it scans and a search of
        its index for the watched identities (rekor-v1). Failures are recorded, not raised:
        whatever the engine raises is a failed poll of the log's own endpoint (`primary`), and
        whatever the scan or the search raises a failed poll of the part "scan" or "search"
        (`error_since`, then `log_error` past `error_grace`). Only a database failure
        (`StoreError`) is raised: it is the monitor's, not the log's."""
        monitor = self.logs[name]
        try:
            result = await monitor.poll()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded with its traceback by record_failure
            result = PollResult()
            await self._record_failure(name, PRIMARY_VIEW, e, result)
        scanner = self.scanners.get(name)
        if scanner is not None:
            scan = await self._run_part(name, "scan", scanner.scan, result)
            self.entries_read += 0 if scan is None else scan.scanned
        searcher = self.searchers.get(name)
        if searcher is not None:
            search = await self._run_part(name, "search", searcher.search, result)
            self.entries_read += 0 if search is None else search.fetched
        unlogged = self.unlogged
        if unlogged is not None:
            # Any log's poll may complete what a check waited for (a Rekor log's scan reaching
            # past the deadline), so every poll ends with the judgement.
            created = await self.store.run(
                lambda store: unlogged.judge(store, self.clock(), self._targets)
            )
            raised(created, result.alerts)
        self.stats.record(name, classify_poll(len(result.alerts), len(result.errors)))
        return result

    async def _run_part(
        self,
        name: str,
        part: str,
        run: Callable[[], Awaitable[_Part]],
        result: PollResult,
    ) -> _Part | None:
        """Run the scan or the search of log `name` into `result`: whatever it raises (but the
        database's `StoreError`) is a failed poll of `part`, and a run that completes ends an
        outage of `part`. Returns what the run did, None when it failed."""
        try:
            done = await run()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded with its traceback
            await self._record_failure(name, part, e, result)
            return None
        result.alerts.extend(done.alerts)
        result.errors.extend(done.errors)
        await self._record_recovered(name, part)
        return done

    async def _record_failure(
        self, name: str, part: str, error: Exception, result: PollResult
    ) -> None:
        """`part` of the poll of log `name` failed; when even recording that fails (the
        database), the failure is still reported in `result` and logged."""
        try:
            await self.logs[name].record_failure(part, error, result)
        except StoreError:
            raise
        except Exception as e:  # the poll must end, reporting both failures
            log.error("%s: %s failed (%s), and recording it failed too", name, part, error)
            log.error("%s: recording a failed poll: %s", name, e, exc_info=e)
            result.errors.append(f"{part}: {type(error).__name__}: {error}")
            result.errors.append(f"{part}: recording the failure: {type(e).__name__}: {e}")

    async def _record_recovered(self, name: str, part: str) -> None:
        try:
            await self.logs[name].record_recovered(part)
        except MonitorError as e:
            log.error("%s: recording that %s works again: %s", name, part, e)

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
        outcome.alerts.extend(self.trust_update.alerts)
        outcome.errors.extend(self.trust_update.errors)
        self.trust_update = TrustUpdate()
        names = list(self.logs)
        read_before = self.entries_read
        # A failure of one log's poll (even of the database) must not cost the other logs'.
        results = await asyncio.gather(*(self.poll(n) for n in names), return_exceptions=True)
        store_error: StoreError | None = None
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                if isinstance(result, StoreError):
                    store_error = store_error or result
                    continue
                log.error("%s: the poll failed: %s", name, result, exc_info=result)
                outcome.errors.append(f"{name}: {type(result).__name__}: {result}")
                continue
            outcome.alerts.extend(result.alerts)
            outcome.errors.extend(result.errors)
        if store_error is not None:
            raise store_error
        outcome.scanned = self.entries_read - read_before
        for name in names:
            states = await self.store.state.log_states(self.logs[name].log_id)
            # A Rekor v1 log's size is its active shard's; frozen shards stay in report status.
            active = [s.verified_size for s in states if not s.frozen]
            every = [s.verified_size for s in states]
            outcome.sizes[name] = max(active or every) if every else None
        delivered = await self.deliver()
        outcome.delivered = delivered.delivered
        outcome.undelivered = await self.store.outbox.pending_count()
        return outcome


@asynccontextmanager
async def open_monitor(
    config: Config,
    clock: Callable[[], datetime] = utcnow,
    stats: PollStats | None = None,
    trust: TrustWatcher | None = None,
) -> AsyncIterator[Monitor]:
    """A prepared Monitor with its store and HTTP session, closed on exit; `stats` carries
    poll counters over from an earlier Monitor (a reload), `trust` the trust sources (kept
    across rebuilds; made from `config` when None and it has `[[sigstore]]` sources)."""
    if trust is None and config.sigstore:
        trust = TrustWatcher(config, clock)
    store = AsyncStore(await asyncio.to_thread(Store.open, config.monitor.database))
    try:
        timeout = aiohttp.ClientTimeout(total=config.monitor.request_timeout.total_seconds())
        async with aiohttp.ClientSession(
            timeout=timeout, headers={"User-Agent": config.monitor.user_agent}
        ) as session:
            monitor = Monitor(config, store, session, clock, stats, trust)
            await monitor.prepare()
            yield monitor
    finally:
        await asyncio.to_thread(store.close)


async def check_once(config: Config) -> CheckOutcome:
    """`tlog-monitor check`: one pass of every job, recorded as a run."""
    async with open_monitor(config) as monitor:
        store = monitor.store
        run_id = await store.reports.start_run("check", utcnow())
        outcome = await monitor.check()
        result = "alert" if outcome.urgent else ("error" if outcome.errors else "clean")
        await store.reports.finish_run(
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
        self._rebuild = asyncio.Event()
        """Set when the logs a trust source lists changed: the jobs are made again."""
        self.stats = PollStats()
        self.trust = self._trust_for(config)

    @staticmethod
    def _trust_for(config: Config) -> TrustWatcher | None:
        return TrustWatcher(config, utcnow) if config.sigstore else None

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
                self._rebuild.clear()
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
            self.trust = self._trust_for(config)
            log.info("configuration reloaded from %s", self.config_path)

    async def _refresh_trust(self, monitor: Monitor, source: str) -> None:
        """The scheduled refresh of a trust source: its alerts delivered at once, and the
        jobs rebuilt when the logs it lists changed."""
        changed = await monitor.refresh_trust(source)
        await monitor.deliver()
        if changed:
            log.info("[[sigstore]] %s: the logs it lists changed: rebuilding the jobs", source)
            self._rebuild.set()

    async def _serve(self, config: Config) -> None:
        async with open_monitor(config, stats=self.stats, trust=self.trust) as monitor:
            run_id = await monitor.store.reports.start_run("run", utcnow())
            scheduler = AsyncIOScheduler(timezone=UTC)
            jobs = RunningJobs()
            logs = monitor.log_configs
            for cfg in logs:
                interval = cfg.interval.total_seconds()
                scheduler.add_job(
                    jobs.track(monitor.poll_and_alert),
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
            if self.trust is not None:
                for source in self.trust.names:
                    every = self.trust.refresh_interval(source)
                    scheduler.add_job(
                        jobs.track(self._refresh_trust),
                        "interval",
                        args=[monitor, source],
                        id=f"trust:{source}",
                        seconds=every,
                        max_instances=1,
                        coalesce=True,
                        misfire_grace_time=int(every),
                    )
            scheduler.add_job(
                jobs.track(monitor.deliver),
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
            httpd = None
            if config.monitor.http_listen is not None:
                httpd = HttpServer(
                    config.monitor.http_listen,
                    monitor.store,
                    [c.name for c in logs],
                    monitor.stats,
                )
                await httpd.start()
            scheduler.start()
            sd_notify("READY=1")
            sd_notify(f"STATUS=monitoring {len(logs)} log(s)")
            log.info("monitoring %d log(s); database %s", len(logs), config.monitor.database)
            try:
                stop = asyncio.create_task(self._stop.wait())
                reload = asyncio.create_task(self._reload.wait())
                rebuild = asyncio.create_task(self._rebuild.wait())
                await asyncio.wait({stop, reload, rebuild}, return_when=asyncio.FIRST_COMPLETED)
                for task in (stop, reload, rebuild):
                    task.cancel()
            finally:
                if self._stop.is_set():
                    sd_notify("STOPPING=1")
                # No new jobs; running polls and deliveries finish (or are abandoned, each
                # committing or rolling back as a whole) before the store and session close.
                scheduler.pause()
                await jobs.drain()
                scheduler.shutdown(wait=False)
                if httpd is not None:
                    await httpd.stop()
                if self._stop.is_set():
                    await _last_delivery_round(monitor)
                await monitor.store.reports.finish_run(
                    run_id,
                    "reload"
                    if self._reload.is_set()
                    else "trust"
                    if self._rebuild.is_set()
                    else "stopped",
                    {"stopped_at": utc_iso(utcnow())},
                    utcnow(),
                )


class RunningJobs:
    """The daemon's own record of its running jobs, so a stop can wait for them.

    APScheduler has no public way to wait for the jobs it started, so each job is wrapped: the
    wrapper registers the asyncio task it runs in for as long as it runs.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    def track(self, job: Callable[_P, Awaitable[object]]) -> Callable[_P, Awaitable[None]]:
        """`job` as a coroutine function whose runs `drain` waits for."""

        @functools.wraps(job)
        async def tracked(*args: _P.args, **kwargs: _P.kwargs) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await job(*args, **kwargs)
            finally:
                if task is not None:
                    self._tasks.discard(task)

        return tracked

    async def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait up to `timeout` for the running jobs, then cancel the rest and wait until they
        have unwound, so none of them runs on after the store and HTTP session close. A
        cancelled poll loses only its own unfinished transaction: the store's writer thread
        commits or rolls back each one whole."""
        pending = set(self._tasks)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        if late:
            log.warning(
                "stopping: abandoning %d job(s) still running after %gs", len(late), timeout
            )
            for task in late:
                task.cancel()
            await asyncio.wait(late)


async def _last_delivery_round(monitor: Monitor) -> None:
    """Before exiting: one delivery round for alerts raised since the last one, bounded in time
    (systemd's TimeoutStopSec= covers the drain, this round and closing). Whatever is not
    delivered stays in the outbox for the next start."""
    try:
        done = await asyncio.wait_for(
            monitor.notifier.deliver_due(send_timeout=LAST_ROUND_SEND_TIMEOUT_S),
            LAST_ROUND_TIMEOUT_S,
        )
    except TimeoutError:
        log.warning(
            "stopping: last delivery round cut off after %gs; undelivered alerts stay pending",
            LAST_ROUND_TIMEOUT_S,
        )
    except MonitorError as e:
        log.warning("stopping: last delivery round failed: %s", e)
    else:
        if done.delivered or done.failed:
            log.info(
                "stopping: last delivery round: %d delivered, %d failed",
                done.delivered,
                done.failed,
            )


def run_daemon(config_path: Path, config: Config) -> None:
    """Blocking entry point of `tlog-monitor run`."""
    try:
        asyncio.run(Daemon(config_path, config).run())
    except MonitorError:
        sd_notify("STOPPING=1")
        raise
