"""Following Sigstore's trust as it changes: each `[[sigstore]]` source's trusted root kept up to
date over TUF, its changes recorded and alerted, and the logs it lists turned into monitored logs.

    TufSource (TUF client, cache) ──> TrustSnapshot ──> diff ──> trust_changed alerts
                                            └──> discover ──> LogConfigs the Monitor polls

Which trust a source uses, in order: a refresh verified now ("tuf"); else the last copy that
once verified, from the TUF cache ("cache"); else, for Sigstore's own instances, the copy the
installed sigstore package ships ("embedded", with a warning). A failed refresh keeps the trust
in use, records the outage (`trust_error` once it lasts `error_grace`), and never removes a log.

Only snapshots verified from the repository are recorded and compared: a change is alerted
when two of them differ, never against the embedded copy (which the repository did not serve,
and which is older than it by construction).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.config.discovered import Discovery, discover, effective_logs
from monitor.config.settings import Config, LogConfig, SigstoreConfig
from monitor.config.trust_roots import embedded_trust_files
from monitor.config.tuf_source import (
    FetchedTrust,
    TrustSourceError,
    TrustSourceFailure,
    TufSource,
)
from monitor.core.alerts import (
    UNUSABLE_LOG,
    Alert,
    trust_changed_alert,
    trust_error_alert,
    unverifiable_log_alert,
)
from monitor.core.errors import MonitorError, TrustRootError
from monitor.core.keys import KeyLoadError
from monitor.core.trust import TrustedLogInfo, TrustSnapshot, diff, trust_snapshot
from monitor.service.alert_log import raised
from monitor.service.wiring import log_spec, trust_for_log
from monitor.store.database import AsyncStore, StoredTrust

__all__ = ["TrustUpdate", "TrustWatcher", "tuf_source"]

log = logging.getLogger(__name__)

Targets = Callable[[Alert], Sequence[str]]

_MAX_ADDED = 1000
"""The most recorded trust changes read at start for the logs they added."""

TUF = "tuf"
CACHE = "cache"
EMBEDDED = "embedded"


def tuf_source(cfg: SigstoreConfig, timeout: float) -> TufSource:
    """The TUF client of a `[[sigstore]]` source."""
    return TufSource(
        cfg.metadata_url,
        cfg.targets_url,
        cfg.cache_dir,
        cfg.bootstrap_root,
        timeout=max(1, int(timeout)),
    )


@dataclass
class _Source:
    """What one source currently trusts."""

    cfg: SigstoreConfig
    tuf: TufSource
    snapshot: TrustSnapshot | None = None
    origin: str | None = None
    discovery: Discovery | None = None
    added: set[str] = field(default_factory=set)
    unusable: list[TrustedLogInfo] = field(default_factory=list)
    """Logs discovered whose settings cannot be used (alerted as `unusable_log`)."""
    """Log URLs that appeared in a refresh of this process (their tiled logs scan from 0)."""


@dataclass
class TrustUpdate:
    """What one refresh of every source (or of one) did."""

    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Refreshes that failed, as messages (the trust in use is kept)."""


class TrustWatcher:
    """Every `[[sigstore]]` source of a configuration and the logs they list.

    It outlives the Monitor it feeds (a rebuild after a trust change keeps it); each call is
    given the store and the delivery targets of the Monitor in use.
    """

    def __init__(self, config: Config, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.clock = clock
        timeout = config.monitor.request_timeout.total_seconds()
        self._sources = {s.name: _Source(s, tuf_source(s, timeout)) for s in config.sigstore}
        self._started = False

    @property
    def names(self) -> list[str]:
        """The sources' names."""
        return list(self._sources)

    def refresh_interval(self, name: str) -> float:
        """Seconds between two refreshes of source `name`."""
        return self._sources[name].cfg.refresh.total_seconds()

    def logs(self) -> tuple[LogConfig, ...]:
        """The `[[log]]` tables, then every log the sources list and monitor (overrides and
        exclusions applied)."""
        discoveries = [s.discovery for s in self._sources.values() if s.discovery is not None]
        return effective_logs(self.config, discoveries)

    async def start(self, store: AsyncStore, targets: Targets) -> TrustUpdate:
        """Load every source once (at the first call only): refreshed, else the last good
        copy, else the embedded one."""
        if self._started:
            return TrustUpdate()
        update = TrustUpdate()
        for src in self._sources.values():
            # Logs a recorded trust change added (perhaps by a process that stopped before it
            # scanned them) still scan from their first entry: the scan's own cursor, once it
            # has one, decides where it goes on.
            changes = await store.trust.trust_changes(src.cfg.name, _MAX_ADDED)
            src.added.update(
                str(c["name"])
                for c in changes
                if c["change"] == "added" and c["section"] in ("tlogs", "ctlogs")
            )
        await asyncio.gather(
            *(self._refresh(s, store, targets, update) for s in self._sources.values())
        )
        self._started = True
        return update

    async def refresh(self, name: str, store: AsyncStore, targets: Targets) -> TrustUpdate:
        """One refresh of source `name`."""
        update = TrustUpdate()
        await self._refresh(self._sources[name], store, targets, update)
        return update

    async def _refresh(
        self, src: _Source, store: AsyncStore, targets: Targets, update: TrustUpdate
    ) -> None:
        name = src.cfg.name
        now = self.clock()
        try:
            fetched = await src.tuf.refresh_async()
            snapshot = _parse(fetched.trusted_root, fetched.signing_config)
            _check_not_older(src.cfg, fetched, await store.trust.current(name))
        except (TrustSourceError, TrustRootError) as e:
            if isinstance(e, TrustSourceError):
                message, reason = str(e), e.reason.value
            else:
                message, reason = (
                    f"TUF repository {src.cfg.metadata_url}: invalid: its trusted root or "
                    f"signing config cannot be used ({e}); the last good trust is kept "
                    "meanwhile",
                    "invalid",
                )
            log.warning("[[sigstore]] %s: %s", name, message)
            update.errors.append(f"sigstore {name}: {message}")
            failed = await store.trust.record_trust_failure(
                name,
                message,
                now,
                self.config.monitor.error_grace,
                functools.partial(_error_alert, name, reason),
                targets,
            )
            raised(failed, update.alerts)
            if src.snapshot is None:
                self._fall_back(src)
                await self._unverifiable(src, store, targets, update)
            return
        await self._record(src, fetched, snapshot, store, targets, update)
        await self._unverifiable(src, store, targets, update)

    async def _record(
        self,
        src: _Source,
        fetched: FetchedTrust,
        snapshot: TrustSnapshot,
        store: AsyncStore,
        targets: Targets,
        update: TrustUpdate,
    ) -> None:
        """Compare a verified snapshot with the one recorded last, record it and its changes."""
        name = src.cfg.name
        stored = await store.trust.current(name)
        before: TrustSnapshot | None = None
        if stored is not None and stored.origin != EMBEDDED:
            try:
                before = _parse(stored.trusted_root, stored.signing_config)
            except TrustRootError as e:
                # Written by an older version or damaged: this snapshot becomes the baseline.
                log.warning("[[sigstore]] %s: the recorded trust cannot be read (%s)", name, e)
        if before is None and src.snapshot is not None and src.origin != EMBEDDED:
            before = src.snapshot
        changes = [] if before is None else diff(before, snapshot)
        versions = vars(fetched.versions)
        changed = [trust_changed_alert(name, c, versions) for c in changes]
        alerts = [(a, list(targets(a))) for a in changed]
        _, created = await store.trust.record_trust(
            name,
            origin=TUF,
            trusted_root=fetched.trusted_root,
            signing_config=fetched.signing_config,
            versions=versions,
            changes=changes,
            alerts=alerts,
            now=self.clock(),
        )
        raised(created, update.alerts)
        if before is not None:
            old = {log.base_url for log in before.logs}
            src.added.update(log.base_url for log in snapshot.logs if log.base_url not in old)
        if changes:
            log.warning("[[sigstore]] %s: %d trust change(s) recorded", name, len(changes))
        self._use(src, snapshot, TUF)

    def _fall_back(self, src: _Source) -> None:
        """No verified refresh in this process yet: the last good copy, else the embedded."""
        name = src.cfg.name
        try:
            cached = src.tuf.last_good()
        except TrustSourceError as e:
            log.warning("[[sigstore]] %s: %s", name, e)
            cached = None
        if cached is not None:
            try:
                self._use(src, _parse(cached.trusted_root, cached.signing_config), CACHE)
            except TrustRootError as e:
                log.warning("[[sigstore]] %s: the cached trust cannot be used: %s", name, e)
            else:
                log.warning(
                    "[[sigstore]] %s: using the last good trust (TUF versions %s)",
                    name,
                    vars(cached.versions),
                )
                return
        instance = src.cfg.instance
        if instance is None:
            log.warning(
                "[[sigstore]] %s: the TUF repository was never reached and has no embedded "
                "copy: its logs are not monitored until it is",
                name,
            )
            return
        try:
            root, signing = embedded_trust_files(instance.value)
            self._use(src, _parse(root, signing), EMBEDDED)
        except (KeyLoadError, TrustRootError) as e:
            log.error("[[sigstore]] %s: the embedded trust cannot be used: %s", name, e)
            return
        log.warning(
            "[[sigstore]] %s: the TUF repository was never reached: using the trusted root "
            "the installed sigstore package ships, which may be out of date",
            name,
        )

    def _use(self, src: _Source, snapshot: TrustSnapshot, origin: str) -> None:
        src.snapshot = snapshot
        src.origin = origin
        found = discover(
            self.config, src.cfg, snapshot, new_urls=frozenset(src.added), now=self.clock()
        )
        usable = []
        src.unusable = []
        for cfg in found.logs:
            # Checked here, not when the jobs are made: one unusable log of a trust root must
            # not stop the monitoring of every other log, nor go unmonitored unsaid.
            try:
                log_spec(self.config, cfg)
                trust_for_log(cfg)
            except MonitorError as e:
                log.error("[[sigstore]] %s: log %s is not monitored: %s", src.cfg.name, cfg.url, e)
                info = next((i for i in snapshot.logs if i.key == cfg.public_key_der), None)
                if info is not None:
                    src.unusable.append(dataclasses.replace(info, verifier_problem=str(e)))
                continue
            usable.append(cfg)
        src.discovery = dataclasses.replace(found, logs=tuple(usable))

    async def _unverifiable(
        self, src: _Source, store: AsyncStore, targets: Targets, update: TrustUpdate
    ) -> None:
        """Alert (once per log and key) each log of the trust that cannot be monitored."""
        if src.discovery is None:
            return
        alerts = [unverifiable_log_alert(src.cfg.name, info) for info in src.discovery.unverifiable]
        alerts += [unverifiable_log_alert(src.cfg.name, i, UNUSABLE_LOG) for i in src.unusable]
        if not alerts:
            return
        created = await store.trust.raise_trust_alerts(
            [(a, list(targets(a))) for a in alerts], self.clock()
        )
        raised(created, update.alerts)

    def status(self) -> dict[str, str | None]:
        """Where each source's trust in use comes from (tuf, cache, embedded or None)."""
        return {name: src.origin for name, src in self._sources.items()}


def _check_not_older(
    cfg: SigstoreConfig, fetched: FetchedTrust, stored: StoredTrust | None
) -> None:
    """Refuse TUF metadata older than what this source once verified (`TrustSourceError`,
    rollback). The TUF client does this against its cache; the database is checked too, so a
    lost or deleted cache does not let a mirror serve older, still unexpired metadata (which
    would drop logs and raise trust changes that never happened)."""
    if stored is None or stored.origin != TUF or stored.versions is None:
        return
    now = vars(fetched.versions)
    older = [
        f"{role} {now[role]} < {stored.versions[role]}"
        for role in ("root", "timestamp", "snapshot", "targets")
        if role in stored.versions and now[role] < stored.versions[role]
    ]
    if older:
        raise TrustSourceError(
            TrustSourceFailure.ROLLBACK,
            cfg.metadata_url,
            "metadata older than the versions recorded in the database (" + ", ".join(older) + ")",
        )


def _parse(trusted_root: bytes, signing_config: bytes | None) -> TrustSnapshot:
    return trust_snapshot(trusted_root, signing_config)


def _error_alert(source: str, reason: str, error_since: str, errors: int, last_error: str) -> Alert:
    return trust_error_alert(
        source, error_since=error_since, errors=errors, last_error=last_error, reason=reason
    )
