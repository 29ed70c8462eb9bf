"""Typed, validated configuration: config.toml -> frozen dataclasses.

Pure apart from reading the files the configuration names (the config itself, `public_key` PEM
files, `urls_file`) and the environment (`urls_env`). Every problem is a `ConfigError` whose
message names the file, the key path and what was expected, e.g.

    config.toml: log[2].interval: expected a duration like "60s" or "5m", got "soon"

Array positions in key paths count from 0 (`log[0]` is the first `[[log]]`). Unknown keys are
errors, with a "did you mean" when a known key is close. Relative paths are relative to the
directory of the config file. Durations are `datetime.timedelta` (see `monitor.core.durations`).

Secrets: notify URLs carry tokens. They are never part of a `ConfigError` message, of `repr()` of
any config object, or of `Config.redacted()` (which shows them through `redact_url`).

Live trust (`[[sigstore]]`): each section names a TUF repository holding a Sigstore trusted root
(`instance = "production" | "staging"`, or a custom `url` with its bootstrap `root`). Its logs are
not known when the file is loaded: `monitor.config.discovered.discover` turns a trusted root
into `LogConfig`s (with `source` set to the section's name) at run time. `[[log]]` tables are
optional when a `[[sigstore]]` exists.

Alert routing (applied by `monitor.notify.notifier.delivery_targets`): an alert goes to a channel
only if the channel's `min_severity` admits it (severity >= min_severity). Log-level alerts
(split_view, rollback, bad_signature, bad_entry, log_stale, log_error) go to every channel that
admits them. Watch alerts (unexpected_signer, identity_seen) go to the channels the rule lists in
`notify`, or to every channel when the list is empty, again only those that admit them. A channel
that no rule lists still receives log-level alerts and the alerts of rules with an empty `notify`. A
rule whose `notify` lists only channels that would drop all its alerts is a configuration error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from monitor import __version__
from monitor.core import fields as f
from monitor.core.durations import format_duration, parse_duration
from monitor.core.errors import ConfigError
from monitor.core.severity import Severity
from monitor.core.watch.rules import WatchRule, compile_rule, rule_search_terms
from monitor.notify.notifier import url_problem

__all__ = [
    "Config",
    "ListenAddress",
    "LogConfig",
    "LogType",
    "MonitorConfig",
    "NotifyChannel",
    "Severity",
    "SigstoreConfig",
    "SigstoreInstance",
    "TrustRoot",
    "ViewConfig",
    "ViewKind",
    "WitnessConfig",
    "check_log_url",
    "load_config",
    "parse_config",
    "redact_url",
]

# Defaults, documented in config.toml.
DEFAULT_DATABASE = "tlog-monitor.db"
DEFAULT_INTERVAL = timedelta(seconds=60)
DEFAULT_MAX_STALE = timedelta(minutes=30)
DEFAULT_ERROR_GRACE = timedelta(minutes=10)
DEFAULT_HTTP_LISTEN = "127.0.0.1:9464"
DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=30)
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_USER_AGENT = f"tlog-monitor/{__version__}"
DEFAULT_MIN_SEVERITY = Severity.WARNING
DEFAULT_SCAN_WORKERS = 1
"""One process: a long backfill in worker processes is opt-in (`scan_workers`)."""

# Bounds: outside them a value is a typo or would harm the monitor or the log.
INTERVAL_RANGE = (timedelta(seconds=1), timedelta(days=1))
MAX_STALE_RANGE = (timedelta(seconds=1), timedelta(days=30))
ERROR_GRACE_RANGE = (timedelta(0), timedelta(days=30))
REQUEST_TIMEOUT_RANGE = (timedelta(seconds=1), timedelta(minutes=10))
# At most 32 MiB: with the HTTP layer's process-wide cap on bodies being read, the worst case
# stays under the systemd unit's MemoryMax=1G (the arithmetic is in docs/configuration.md).
MAX_RESPONSE_BYTES_RANGE = (64 * 1024, 32 * 1024 * 1024)
REQUESTS_PER_MINUTE_RANGE = (1, 60_000)
# Each worker is a Python process (about 20 MB of its own) plus a chunk slot (at most 32 MiB),
# and a task under the unit's TasksMax=64: 16 leave that a margin (past 5, MemoryMax=1G must be
# raised: docs/configuration.md#memory).
SCAN_WORKERS_RANGE = (1, 16)
MAX_LOGS = 100
MAX_VIEWS = 20
MAX_WITNESSES = 50
MAX_RULES = 1000
MAX_CHANNELS = 100
MAX_URLS_PER_CHANNEL = 50
MAX_FULCIO_ROOTS_BYTES = 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_URLS_FILE_BYTES = 1024 * 1024
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_SIGSTORE = 10
MAX_TUF_ROOT_BYTES = 1024 * 1024
"""A TUF root.json (Sigstore's are under 10 KiB)."""
DEFAULT_TRUST_REFRESH = timedelta(hours=6)
TRUST_REFRESH_RANGE = (timedelta(seconds=1), timedelta(days=7))

_TOP_KEYS = ("monitor", "log", "watch", "notify", "sigstore")
_MONITOR_KEYS = (
    "database",
    "interval",
    "max_stale",
    "error_grace",
    "http_listen",
    "request_timeout",
    "max_response_bytes",
    "user_agent",
    "scan_workers",
)
_LOG_KEYS = (
    "name",
    "type",
    "url",
    "trust_root",
    "public_key",
    "origin",
    "views",
    "view",
    "witness",
    "witness_quorum",
    "scan",
    "start",
    "interval",
    "max_stale",
    "requests_per_minute",
    "allow_insecure_http",
    "fulcio_roots",
)
_NOTIFY_KEYS = ("name", "urls", "urls_env", "urls_file", "min_severity")
_SIGSTORE_KEYS = (
    "name",
    "instance",
    "url",
    "root",
    "refresh",
    "scan",
    "scan_ct",
    "exclude",
    "allow_insecure_http",
)
_VIEW_KEYS = ("url", "kind")
_WITNESS_KEYS = ("name", "vkey", "public_key")


class LogType(StrEnum):
    """The protocol a log speaks."""

    REKOR_V1 = "rekor-v1"
    """Rekor v1 REST API (`/api/v1/log`, proofs, entries, search index)."""
    TILES = "tiles"
    """C2SP tlog-tiles (Rekor v2): `/checkpoint`, hash tiles, entry bundles."""
    CT = "ct"
    """RFC 6962 certificate transparency: `/ct/v1/get-sth`, consistency proofs, get-entries."""
    STATIC_CT = "static-ct"
    """C2SP static-ct-api: an RFC 6962 STH checkpoint, hash tiles, data tiles of TileLeaf."""

    @property
    def is_ct(self) -> bool:
        """A certificate transparency log: its key is an RFC 6962 STH key (ECDSA P-256)."""
        return self in (LogType.CT, LogType.STATIC_CT)


class TrustRoot(StrEnum):
    """Which Sigstore trusted root (embedded in sigstore-python) provides a log's key."""

    PRODUCTION = "production"
    STAGING = "staging"


class SigstoreInstance(StrEnum):
    """A public Sigstore instance whose TUF repository a `[[sigstore]]` section follows."""

    PRODUCTION = "production"
    STAGING = "staging"


class ViewKind(StrEnum):
    """What a view URL serves."""

    MIRROR = "mirror"
    """The log's own API (Rekor v1 REST or tlog-tiles) at another URL: a mirror or replica."""
    WITNESS = "witness"
    """A signed checkpoint as text, cosigned by witnesses (a witness or distributor read path)."""
    PEER = "peer"
    """Another tlog-monitor's ``/checkpoints/<log>``: its latest verified checkpoint as text."""

    @property
    def serves_note(self) -> bool:
        """The URL answers GET with one signed checkpoint note (no log API behind it)."""
        return self is not ViewKind.MIRROR


@dataclass(frozen=True)
class ViewConfig:
    """One extra endpoint serving a log's checkpoint."""

    url: str
    kind: ViewKind


@dataclass(frozen=True)
class WitnessConfig:
    """One `[[log.witness]]`: a witness whose signatures on the log's checkpoints count."""

    name: str
    vkey: str
    """C2SP vkey (type 0x04 cosignature/v1, or 0x01 plain Ed25519); public, not a secret."""


DEFAULT_REQUESTS_PER_MINUTE = {
    LogType.REKOR_V1: 300,
    LogType.TILES: 600,
    LogType.CT: 300,
    LogType.STATIC_CT: 600,
}
"""Public Rekor v1 allows about 500 requests/minute per IP; stay well below it. CT logs' read
APIs are rate limited too (a get-entries request carries up to 256 certificates)."""
DEFAULT_SCAN = {
    LogType.REKOR_V1: False,
    LogType.TILES: True,
    LogType.CT: False,
    LogType.STATIC_CT: False,
}
"""Full scanning of Rekor v1 (10-20 million entries a day) is opt-in; tiled logs are scanned.
CT logs are opt-in too: Fulcio's CT log holds millions of certificates (every one Fulcio
issued), each proven and matched; unscanned, a CT log is still polled and proven consistent."""


@dataclass(frozen=True)
class ListenAddress:
    """A host and port to listen on; `host` has no brackets, even for IPv6."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class MonitorConfig:
    """The `[monitor]` table: settings of the daemon as a whole."""

    database: Path
    """SQLite database file, absolute."""
    interval: timedelta
    """Default poll interval of every log."""
    max_stale: timedelta
    """Default age after which a log without a newer verified checkpoint raises log_stale."""
    error_grace: timedelta
    """How long a log may fail before log_error is raised (0: on the first failure)."""
    http_listen: ListenAddress | None
    """Where /metrics, /healthz and /checkpoints are served; None: off."""
    request_timeout: timedelta
    """Total timeout of one HTTP request to a log."""
    max_response_bytes: int
    """Responses larger than this are refused (a log must not exhaust our memory)."""
    user_agent: str
    database_source: str = ""
    """Why `database` is this path (set, or the default in which directory), for messages."""
    scan_workers: int = DEFAULT_SCAN_WORKERS
    """Processes that hash and pre-filter a long backfill (`Scanner.workers`); 1: none."""


@dataclass(frozen=True)
class LogConfig:
    """One `[[log]]` table, with the `[monitor]` defaults applied."""

    name: str
    type: LogType
    url: str
    """Base URL: lowercase scheme and host, no trailing "/", no credentials, query or fragment."""
    trust_root: TrustRoot | None
    """Set when the key comes from a Sigstore trusted root; exactly one of this and the PEM."""
    public_key_pem: str | None = field(repr=False)
    """A pinned SubjectPublicKeyInfo PEM (normalised), from inline text or a file."""
    public_key_file: Path | None
    """The file `public_key_pem` was read from, if it was not inline."""
    origin: str | None
    """Expected checkpoint origin line; None: derived from the log's key and URL."""
    views: tuple[str, ...]
    """Extra URLs serving this log's checkpoint: `views`, then the `[[log.view]]` tables."""
    scan: bool
    """Fetch and check every new entry against the watch rules."""
    start: int | None
    """First entry index to scan; None means "latest" (from the first verified checkpoint)."""
    interval: timedelta
    max_stale: timedelta
    requests_per_minute: int
    allow_insecure_http: bool
    fulcio_roots_pem: bytes | None = field(default=None, repr=False)
    """CA certificates (PEM) that issue this log's signing certificates, from `fulcio_roots`;
    None: the trust root's Fulcio CAs, or none for a pinned `public_key` (see
    `monitor.service.wiring.trust_for_log`)."""
    fulcio_roots_file: Path | None = None
    """The file `fulcio_roots_pem` was read from."""
    view_kinds: tuple[ViewKind, ...] = ()
    """The kind of each of `views`, in order; missing ones (older callers) are mirrors."""
    witnesses: tuple[WitnessConfig, ...] = ()
    witness_quorum: int = 0
    """Valid witness signatures each cosigned checkpoint must carry (0: no policy)."""
    source: str | None = None
    """None for a `[[log]]` table; else the name of the `[[sigstore]]` it was discovered from."""
    valid_until: datetime | None = None
    """The end of the log's validFor window in the trust root (a discovered log), if any."""

    @property
    def view_configs(self) -> tuple[ViewConfig, ...]:
        """`views` with their kinds."""
        kinds = self.view_kinds + (ViewKind.MIRROR,) * (len(self.views) - len(self.view_kinds))
        return tuple(ViewConfig(u, k) for u, k in zip(self.views, kinds, strict=True))

    @property
    def public_key_der(self) -> bytes | None:
        """The DER SubjectPublicKeyInfo of the pinned key, if any."""
        return _pem_to_der(self.public_key_pem) if self.public_key_pem is not None else None


@dataclass(frozen=True)
class NotifyChannel:
    """One `[[notify]]` table. `urls` hold secrets: they are kept out of repr()."""

    name: str
    urls: tuple[str, ...] = field(repr=False)
    """Every apprise URL of the channel: `urls`, then `urls_env`, then `urls_file`, deduplicated."""
    min_severity: Severity
    urls_env: tuple[str, ...]
    """Names of the environment variables the URLs came from (not their values)."""
    urls_file: Path | None

    def admits(self, severity: Severity) -> bool:
        """Whether alerts of `severity` are delivered to this channel."""
        return severity >= self.min_severity


@dataclass(frozen=True)
class SigstoreConfig:
    """One `[[sigstore]]` table: a TUF repository whose trusted root lists logs to monitor."""

    name: str
    instance: SigstoreInstance | None
    """Set for Sigstore's own repositories; None for a custom `url`."""
    metadata_url: str
    """The TUF metadata base URL, normalised like a log URL (no trailing "/")."""
    targets_url: str
    """`metadata_url` + "/targets" (the layout of Sigstore's repositories)."""
    bootstrap_root: bytes = field(repr=False)
    """The trusted TUF root.json a first refresh starts from."""
    bootstrap_file: Path | None
    """The file `bootstrap_root` was read from; None for an instance (sigstore's root.json)."""
    refresh: timedelta
    scan: bool
    """Scan the discovered tiled (Rekor v2) shards for the watch rules."""
    exclude: tuple[str, ...]
    """Normalised URLs of logs in the trust root not to monitor."""
    allow_insecure_http: bool
    cache_dir: Path
    """The TUF client's cache: <directory of monitor.database>/tuf/<name>."""
    scan_ct: bool = False
    """Scan the discovered CT logs too (opt-in: millions of certificates, most not Fulcio's
    identities of interest; an unscanned CT log is still polled and proven consistent)."""


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with `load_config`."""

    path: Path
    """The config file, absolute."""
    monitor: MonitorConfig
    logs: tuple[LogConfig, ...]
    watches: tuple[WatchRule, ...]
    channels: tuple[NotifyChannel, ...]
    warnings: tuple[str, ...] = ()
    """Legal but probably unintended settings, for `config check` and the daemon's log."""
    sigstore: tuple[SigstoreConfig, ...] = ()
    """The `[[sigstore]]` sections; their logs are discovered at run time."""

    def log(self, name: str) -> LogConfig:
        """The log called `name`; KeyError if there is none."""
        for log in self.logs:
            if log.name == name:
                return log
        raise KeyError(name)

    def channel(self, name: str) -> NotifyChannel:
        """The notify channel called `name`; KeyError if there is none."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise KeyError(name)

    def rules_for_log(self, log_name: str) -> tuple[WatchRule, ...]:
        """The watch rules that apply to entries of `log_name`."""
        return tuple(rule for rule in self.watches if rule.applies_to(log_name))

    def rules_for(self, log: LogConfig) -> tuple[WatchRule, ...]:
        """The watch rules that apply to entries of `log`: those without `logs`, and those
        listing its name or, for a discovered log, its `[[sigstore]]` source."""
        return tuple(
            rule
            for rule in self.watches
            if rule.applies_to(log.name) or (log.source is not None and log.source in rule.logs)
        )

    def redacted(self) -> dict[str, object]:
        """A JSON-serialisable view of the resolved configuration, safe to print or log.

        Notify URLs are redacted (`redact_url`); pinned public keys appear as a SHA-256 fingerprint.
        """
        m = self.monitor
        return {
            "path": str(self.path),
            "monitor": {
                "database": str(m.database),
                "interval": format_duration(m.interval),
                "max_stale": format_duration(m.max_stale),
                "error_grace": format_duration(m.error_grace),
                "http_listen": str(m.http_listen) if m.http_listen else "",
                "request_timeout": format_duration(m.request_timeout),
                "max_response_bytes": m.max_response_bytes,
                "user_agent": m.user_agent,
                "scan_workers": m.scan_workers,
            },
            "logs": [_redacted_log(log) for log in self.logs],
            "sigstore": [_redacted_sigstore(s) for s in self.sigstore],
            "watch": [_redacted_rule(rule, self) for rule in self.watches],
            "notify": [
                {
                    "name": c.name,
                    "urls": [redact_url(u) for u in c.urls],
                    "urls_env": list(c.urls_env),
                    "urls_file": str(c.urls_file) if c.urls_file else None,
                    "min_severity": c.min_severity.value,
                }
                for c in self.channels
            ],
            "warnings": list(self.warnings),
        }


def _redacted_sigstore(source: SigstoreConfig) -> dict[str, object]:
    return {
        "name": source.name,
        "instance": source.instance.value if source.instance else None,
        "url": source.metadata_url,
        "targets_url": source.targets_url,
        "root": (
            str(source.bootstrap_file)
            if source.bootstrap_file
            else "the root.json embedded in sigstore-python"
        ),
        "root_sha256": hashlib.sha256(source.bootstrap_root).hexdigest(),
        "refresh": format_duration(source.refresh),
        "scan": source.scan,
        "scan_ct": source.scan_ct,
        "exclude": list(source.exclude),
        "allow_insecure_http": source.allow_insecure_http,
        "cache_dir": str(source.cache_dir),
        "logs": "discovered from the trusted root at run time",
    }


def _redacted_log(log: LogConfig) -> dict[str, object]:
    key: dict[str, object] | None = None
    if log.public_key_pem is not None:
        der = _pem_to_der(log.public_key_pem)
        key = {
            "sha256": hashlib.sha256(der).hexdigest(),
            "pem_first_line": log.public_key_pem.splitlines()[0],
            "file": str(log.public_key_file) if log.public_key_file else None,
        }
    return {
        "name": log.name,
        "source": log.source,
        "type": log.type.value,
        "url": log.url,
        "valid_until": log.valid_until.isoformat() if log.valid_until else None,
        "trust_root": log.trust_root.value if log.trust_root else None,
        "public_key": key,
        "origin": log.origin,
        "views": [{"url": v.url, "kind": v.kind.value} for v in log.view_configs],
        "witnesses": [{"name": w.name, "vkey": w.vkey} for w in log.witnesses],
        "witness_quorum": log.witness_quorum,
        "scan": log.scan,
        "start": "latest" if log.start is None else log.start,
        "interval": format_duration(log.interval),
        "max_stale": format_duration(log.max_stale),
        "requests_per_minute": log.requests_per_minute,
        "allow_insecure_http": log.allow_insecure_http,
        "fulcio_roots": (
            str(log.fulcio_roots_file)
            if log.fulcio_roots_file
            else f"trust_root:{log.trust_root.value}"
            if log.trust_root
            else None
        ),
    }


def _redacted_rule(rule: WatchRule, config: Config) -> dict[str, object]:
    out: dict[str, object] = {"name": rule.name}
    for matcher in rule.matchers:
        out.update(matcher.config())
    out["any_issuer"] = rule.any_issuer
    out["allowed_signers"] = list(rule.allowed_signers)
    out["search"] = list(rule.search)
    out["unlogged_after"] = format_duration(rule.unlogged_after)
    out["expect_rekor"] = rule.expect_rekor
    # Resolved: an empty list in the file means "all".
    out["notify"] = list(rule.notify) or [c.name for c in config.channels]
    out["logs"] = [log.name for log in config.logs if rule.applies_to(log.name)]
    out["sigstore"] = [s.name for s in config.sigstore if not rule.logs or s.name in rule.logs]
    return out


# --- Secrets -------------------------------------------------------------------------------

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://(.*)\Z", re.DOTALL)
_HOST_SCHEMES = frozenset(
    {
        "json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos", "ntfy", "ntfys",
        "gotify", "gotifys", "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets",
        "apprise", "apprises", "mqtt", "mqtts", "http", "https",
    }
)  # fmt: skip
"""Apprise schemes whose first URL component is a real host name, not a token."""
_HOSTPORT_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::[0-9]{1,5})?"
)


def redact_url(url: str) -> str:
    """`url` with everything that may be secret replaced by "***".

    Keeps the scheme; keeps the host (and port) only for schemes whose first component is a real
    host (json://, mailtos://, ntfys://, ...) and only when it looks like a DNS name or an IP
    address; replaces userinfo with "***@" and any path, query or fragment with "/***". For all
    other schemes (slack://TOKEN_A/TOKEN_B/TOKEN_C, discord://ID/TOKEN, tgram://BOT_TOKEN/...)
    everything after "://" is secret. Strings that are not URLs become "***".
    """
    m = _SCHEME_RE.match(url.strip())
    if m is None:
        return "***"
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in _HOST_SCHEMES:
        return f"{scheme}://***"
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    _, at, hostport = authority.rpartition("@")
    if not _HOSTPORT_RE.fullmatch(hostport):
        return f"{scheme}://***"
    redacted = f"{scheme}://{'***@' if at else ''}{hostport.lower()}"
    if tail not in ("", "/"):
        redacted += "/***"
    return redacted


# --- Loading -------------------------------------------------------------------------------


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at `path`.

    `environ` (default `os.environ`) supplies the variables named by `urls_env`.
    Raises ConfigError.
    """
    try:
        data = _read_bounded(path, MAX_CONFIG_BYTES)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration file: {e.strerror or e}") from e
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: expected at most {MAX_CONFIG_BYTES} bytes, got more")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from e
    raw = _parse_toml(text, str(path))
    config = _config_from(raw, path=path, environ=environ)
    exposed = _exposed_secret_files(config, raw)
    return replace(config, warnings=config.warnings + exposed) if exposed else config


def _read_bounded(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of `path` (one byte more than allowed means: too big)."""
    with path.open("rb") as file:
        return file.read(limit + 1)


def _small_file(
    value: object, where: str, base: Path, *, what: str, label: str, limit: int, expected: str
) -> tuple[bytes, Path]:
    """The bytes and absolute path of the file a config value names (relative to `base`), read
    to at most `limit` bytes; a ConfigError naming `label` when it cannot be read or is larger."""
    text = f.as_str(value, where, what=what, max_len=4096)
    path = _absolute(Path(text.strip()), base)
    try:
        data = _read_bounded(path, limit)
    except OSError as e:
        raise f.error(where, f"cannot read {label} {f.echo(str(path))}: {e.strerror or e}") from e
    if len(data) > limit:
        raise f.error(
            where, f"{f.echo(str(path))} is larger than {limit // 1024} KiB; expected {expected}"
        )
    return data, path


def _exposed_secret_files(config: Config, raw: Mapping[str, object]) -> tuple[str, ...]:
    """Warnings for files holding notify URLs that other users may read (or anyone may change).

    The config file may be group-readable (the unit's documented 0640 root:tlog-monitor), but not
    world-readable while it lists notify `urls`; a `urls_file` holds nothing but secrets, so
    group or world read access is flagged. A world-writable config file is flagged always: whoever
    can write it decides what is monitored and where alerts go. Warnings, not errors: the
    operator may have reasons (a single-user machine) and the monitor must keep running.
    """
    found: list[str] = []
    tables = raw.get("notify")
    inline = isinstance(tables, list) and any(isinstance(t, dict) and t.get("urls") for t in tables)
    mode = _mode(config.path)
    if mode is not None and mode & 0o002:
        found.append(
            f"{config.path} is writable by every user (mode {mode:04o}): anyone can change what "
            "is monitored and where alerts go; chmod o-w it"
        )
    if mode is not None and mode & 0o004 and inline:
        found.append(
            f"{config.path} is readable by every user (mode {mode:04o}) and lists notify URLs, "
            "which carry secrets: chmod o-r it, or move the URLs to urls_env or urls_file"
        )
    for channel in config.channels:
        file_mode = _mode(channel.urls_file) if channel.urls_file else None
        if file_mode is not None and file_mode & 0o044:
            found.append(
                f"notify {channel.name}: urls_file {channel.urls_file} is readable by other users "
                f"(mode {file_mode:04o}); it holds secrets: chmod 0600 it"
            )
    return tuple(found)


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except OSError:  # gone since it was read: nothing to warn about
        return None


def parse_config(text: str, *, path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Validate config `text` as if read from `path` (used in messages and for relative paths).

    Raises ConfigError.
    """
    return _config_from(_parse_toml(text, str(path)), path=path, environ=environ)


def _parse_toml(text: str, file: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # The message carries "(at line L, column C)" and never echoes the offending text.
        raise ConfigError(f"{file}: invalid TOML: {e}") from e


def _config_from(
    raw: Mapping[str, object], *, path: Path, environ: Mapping[str, str] | None
) -> Config:
    """`parse_config` of the parsed TOML document `raw`."""
    file = str(path)
    env = os.environ if environ is None else environ
    config_path = _absolute(path)
    base = config_path.parent
    for key in raw:
        if key not in _TOP_KEYS:
            hint = (
                f.suggest(key, _TOP_KEYS)
                or "; expected [monitor], [[log]], [[sigstore]], [[watch]], [[notify]]"
            )
            raise ConfigError(f"{file}: {f.key_path('', key)[1:]}: unknown top-level key{hint}")

    monitor_where = f"{file}: monitor"
    monitor_raw = f.as_table(raw["monitor"], monitor_where) if "monitor" in raw else {}
    data_dir, data_why = data_directory(config_path, env)
    monitor = _monitor(monitor_raw, monitor_where, data_dir, data_why)

    sigstore_tables = _array_of_tables(raw, "sigstore", file, limit=MAX_SIGSTORE)
    sources = [
        _sigstore(t, f"{file}: sigstore[{i}]", monitor, base) for i, t in enumerate(sigstore_tables)
    ]
    _check_unique(file, "sigstore", "name", [s.name for s in sources])
    urls = [s.metadata_url for s in sources]
    for i, source in enumerate(sources):
        if urls.index(source.metadata_url) != i:
            key = "instance" if source.instance else "url"
            raise f.error(
                f"{file}: sigstore[{i}].{key}",
                f"the TUF repository {f.echo(source.metadata_url)} is also "
                f"sigstore[{urls.index(source.metadata_url)}]; one [[sigstore]] per repository",
            )

    # With a [[sigstore]], logs come from its trust root: [[log]] tables are then optional.
    log_tables = _array_of_tables(raw, "log", file, required=not sources, limit=MAX_LOGS)
    logs = [_log(t, f"{file}: log[{i}]", monitor, base) for i, t in enumerate(log_tables)]
    _check_unique(file, "log", "name", [log.name for log in logs])
    _check_unique(file, "log", "url", [log.url for log in logs])
    log_names = [log.name for log in logs]
    for i, source in enumerate(sources):
        if source.name in log_names:
            raise f.error(
                f"{file}: sigstore[{i}].name",
                f"{f.echo(source.name)} is also the name of log[{log_names.index(source.name)}]; "
                "a [[watch]] logs entry must say which one it means: rename one",
            )

    notify_tables = _array_of_tables(raw, "notify", file, limit=MAX_CHANNELS)
    channels = [_channel(t, f"{file}: notify[{i}]", base, env) for i, t in enumerate(notify_tables)]
    _check_unique(file, "notify", "name", [c.name for c in channels])

    watch_tables = _array_of_tables(raw, "watch", file, limit=MAX_RULES)
    rules = [compile_rule(t, f"{file}: watch[{i}]") for i, t in enumerate(watch_tables)]
    _check_unique(file, "watch", "name", [rule.name for rule in rules])
    for i, rule in enumerate(rules):
        _check_references(
            rule, f"{file}: watch[{i}]", log_names, channels, [s.name for s in sources]
        )

    return Config(
        path=config_path,
        monitor=monitor,
        logs=tuple(logs),
        watches=tuple(rules),
        channels=tuple(channels),
        warnings=(
            *_monitor_warnings(file, monitor),
            *_warnings(file, logs, rules, channels, sources),
        ),
        sigstore=tuple(sources),
    )


SYSTEM_CONFIG_DIRECTORY = Path("/etc/tlog-monitor")
"""Where the systemd unit reads its configuration (`ExecStart=... --config .../config.toml`)."""
SYSTEM_STATE_DIRECTORY = Path("/var/lib/tlog-monitor")
"""The unit's `StateDirectory=tlog-monitor` (under `DynamicUser=` a symlink into
/var/lib/private, which the store follows)."""


def data_directory(config_path: Path, environ: Mapping[str, str]) -> tuple[Path, str]:
    """The directory a relative `database` resolves against, and why, for a configuration file
    at `config_path` (absolute).

    The service and a shell given the same configuration must open the same database: a second
    one would trust every log's first checkpoint again. So: `$STATE_DIRECTORY` when systemd sets
    it (the configuration directory is read-only there, ProtectSystem=strict); for a file in
    /etc/tlog-monitor, the unit's state directory, which is where the service (started with that
    file) keeps it; otherwise the configuration file's directory.
    """
    state_dir = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return Path(state_dir), "$STATE_DIRECTORY, set by systemd's StateDirectory="
    if config_path.parent == SYSTEM_CONFIG_DIRECTORY:
        return SYSTEM_STATE_DIRECTORY, (
            f"the service's state directory, as the configuration is in {SYSTEM_CONFIG_DIRECTORY}"
        )
    return config_path.parent, "the configuration file's directory"


def _absolute(path: Path, base: Path | None = None) -> Path:
    """`path` made absolute (against `base`, default the working directory), ".." collapsed.

    Symbolic links are not resolved: paths stay as the operator wrote them.
    """
    joined = base / path if base is not None else path
    return Path(os.path.abspath(joined))


def _array_of_tables(
    raw: Mapping[str, object], key: str, file: str, *, required: bool = False, limit: int
) -> list[Mapping[str, object]]:
    where = f"{file}: {key}"
    # Only [[log]] is ever required, and a [[sigstore]] table would do instead.
    alternative = ", or a [[sigstore]] table (its logs are discovered from Sigstore's trust root)"
    if key not in raw:
        if required:
            raise f.error(where, f"missing: add at least one [[{key}]] table{alternative}")
        return []
    value = raw[key]
    if isinstance(value, dict):
        raise f.error(where, f"expected [[{key}]] (an array of tables), got a single [{key}] table")
    if not isinstance(value, list):
        raise f.error(where, f"expected [[{key}]] tables, got {f.toml_type(value)}")
    if required and not value:
        raise f.error(where, f"empty: add at least one [[{key}]] table{alternative}")
    if len(value) > limit:
        raise f.error(where, f"too many [[{key}]] tables: {len(value)}, at most {limit}")
    return [f.as_table(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _check_unique(file: str, section: str, key: str, values: Sequence[str]) -> None:
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        if value in first:
            raise f.error(
                f"{file}: {section}[{i}].{key}",
                f"duplicate {key} {f.echo(value)} (also {section}[{first[value]}])",
            )
        first[value] = i


def _check_references(
    rule: WatchRule,
    where: str,
    log_names: Sequence[str],
    channels: Sequence[NotifyChannel],
    source_names: Sequence[str] = (),
) -> None:
    channel_names = [c.name for c in channels]
    # A rule may name a [[sigstore]] section: it then applies to every log discovered from it.
    log_section = "[[log]] or [[sigstore]]" if source_names else "[[log]]"
    for key, names, known, section in (
        ("notify", rule.notify, channel_names, "[[notify]]"),
        ("logs", rule.logs, [*log_names, *source_names], log_section),
    ):
        for i, name in enumerate(names):
            if name not in known:
                hint = f.suggest(name, known) or (
                    "; defined: " + ", ".join(f.echo(n) for n in known) if known else ""
                )
                raise f.error(f"{where}.{key}[{i}]", f"no {section} named {f.echo(name)}{hint}")
    if rule.notify:
        severity = _rule_severity(rule)
        listed = [c for c in channels if c.name in rule.notify]
        if not any(c.admits(severity) for c in listed):
            kind = "unexpected_signer" if rule.allowed_signers else "identity_seen"
            raise f.error(
                f"{where}.notify",
                f"rule {f.echo(rule.name)} raises {severity.value} alerts ({kind}) but every "
                f"channel it lists has a higher min_severity, so nothing would be delivered; "
                f'set min_severity = "{severity.value}" on one of them'
                + ("" if rule.allowed_signers else ", or add allowed_signers"),
            )


def _rule_severity(rule: WatchRule) -> Severity:
    # DESIGN alert table: unexpected_signer is high; identity_seen (no allowed signers) is info.
    return Severity.HIGH if rule.allowed_signers else Severity.INFO


def _monitor_warnings(file: str, monitor: MonitorConfig) -> list[str]:
    cpus = os.cpu_count()
    if cpus is not None and monitor.scan_workers > cpus:
        # Allowed (the config may be written for another machine), but on this one the workers
        # and the daemon's own process contend for the CPUs.
        return [
            f"{file}: monitor.scan_workers: {monitor.scan_workers} worker processes exceed "
            f"the {cpus} CPUs of this machine: they compete with each other and the daemon for them"
        ]
    return []


def _warnings(
    file: str,
    logs: Sequence[LogConfig],
    rules: Sequence[WatchRule],
    channels: Sequence[NotifyChannel],
    sources: Sequence[SigstoreConfig] = (),
) -> list[str]:
    out: list[str] = []
    if not channels:
        out.append(
            f"{file}: no [[notify]] channels: alerts are only recorded in the database "
            "(see `tlog-monitor report alerts`)"
        )
    for i, rule in enumerate(rules):
        applies = [log for log in logs if rule.applies_to(log.name)]
        searched = bool(rule_search_terms(rule))
        # A [[sigstore]]'s logs are only known at run time: with scan = true its tiled shards
        # are scanned, and its Rekor v1 log (if the trust root lists one) is searched.
        fed = any(
            source.scan or searched
            for source in sources
            if not rule.logs or source.name in rule.logs
        )
        if not fed and not any(
            log.scan or (log.type is LogType.REKOR_V1 and searched) for log in applies
        ):
            out.append(
                f"{file}: watch[{i}]: rule {f.echo(rule.name)} can see no entries: none of its "
                "logs has scan = true (and it has no search terms for a rekor-v1 log)"
            )
    for i, log in enumerate(logs):
        if log.trust_root is not None or log.fulcio_roots_pem is not None:
            continue
        blind = [
            rule.name
            for rule in rules
            if rule.applies_to(log.name)
            and not rule.any_issuer
            and rule.needs_certificate
            and (log.scan or (log.type is LogType.REKOR_V1 and bool(rule_search_terms(rule))))
        ]
        if blind:
            out.append(
                f"{file}: log[{i}]: log {f.echo(log.name)} pins public_key and sets no "
                "fulcio_roots, so no certificate on it is trusted: rule(s) "
                f"{', '.join(f.echo(n) for n in blind)} can only record untrusted matches, never "
                'alert; set fulcio_roots = "<CA bundle.pem>" (or any_issuer = true on the rule)'
            )
    return out


# --- [monitor] -----------------------------------------------------------------------------


def _monitor(raw: Mapping[str, object], where: str, data_dir: Path, data_why: str) -> MonitorConfig:
    f.check_keys(raw, where, _MONITOR_KEYS)
    database = f.opt_str(raw, "database", where, what="a file path") or DEFAULT_DATABASE
    if "database" not in raw:
        source = f"the default {DEFAULT_DATABASE!r} in {data_dir} ({data_why})"
    elif Path(database).is_absolute():
        source = f"[monitor].database in {where.rsplit(': ', 1)[0]}"
    else:
        source = f"[monitor].database, relative to {data_dir} ({data_why})"
    interval = _duration(raw, "interval", where, DEFAULT_INTERVAL, INTERVAL_RANGE)
    max_stale = _duration(raw, "max_stale", where, DEFAULT_MAX_STALE, MAX_STALE_RANGE)
    _check_stale(
        max_stale, interval, f"{where}.{'max_stale' if 'max_stale' in raw else 'interval'}"
    )
    listen_text = DEFAULT_HTTP_LISTEN
    if "http_listen" in raw:
        listen_text = f.as_str(
            raw["http_listen"], f"{where}.http_listen", what='"host:port"', allow_empty=True
        )
    ua = DEFAULT_USER_AGENT
    if "user_agent" in raw:
        ua = f.as_str(raw["user_agent"], f"{where}.user_agent", what="a User-Agent", max_len=256)
        if not ua.isascii():
            raise f.error(f"{where}.user_agent", "only ASCII characters are allowed")
    workers = DEFAULT_SCAN_WORKERS
    if "scan_workers" in raw:
        lo, hi = SCAN_WORKERS_RANGE
        workers = f.as_int(raw["scan_workers"], f"{where}.scan_workers", lo=lo, hi=hi)
    return MonitorConfig(
        database=_absolute(Path(database), data_dir),
        interval=interval,
        max_stale=max_stale,
        error_grace=_duration(raw, "error_grace", where, DEFAULT_ERROR_GRACE, ERROR_GRACE_RANGE),
        http_listen=_listen(listen_text, f"{where}.http_listen"),
        request_timeout=_duration(
            raw, "request_timeout", where, DEFAULT_REQUEST_TIMEOUT, REQUEST_TIMEOUT_RANGE
        ),
        max_response_bytes=_size(raw, "max_response_bytes", where, DEFAULT_MAX_RESPONSE_BYTES),
        user_agent=ua,
        database_source=source,
        scan_workers=workers,
    )


def _check_stale(max_stale: timedelta, interval: timedelta, where: str) -> None:
    if max_stale <= interval:
        raise f.error(
            where,
            f"max_stale ({format_duration(max_stale)}) must be longer than the poll interval "
            f"({format_duration(interval)}), or the log is always stale",
        )


def _duration(
    raw: Mapping[str, object],
    key: str,
    where: str,
    default: timedelta,
    bounds: tuple[timedelta, timedelta],
) -> timedelta:
    if key not in raw:
        return default
    return _as_duration(raw[key], f"{where}.{key}", bounds)


_DURATION_HINT = 'expected a duration like "60s" or "5m"'


def _as_duration(value: object, where: str, bounds: tuple[timedelta, timedelta]) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise f.error(
            where,
            f"{_DURATION_HINT}, got the number {value}; "
            f'write a string with a unit, e.g. "{value}s"',
        )
    text = f.as_str(value, where, what='a duration string like "60s" or "5m"', max_len=64)
    try:
        duration = parse_duration(text)
    except ValueError as e:
        reason = "" if str(e) == "not a duration" else f" ({e})"
        raise f.error(
            where, f"{_DURATION_HINT} (units ms, s, m, h, d), got {f.echo(text)}{reason}"
        ) from e
    lo, hi = bounds
    if duration < lo:
        raise f.error(where, f"must be at least {format_duration(lo)}, got {f.echo(text)}")
    if duration > hi:
        raise f.error(where, f"must be at most {format_duration(hi)}, got {f.echo(text)}")
    return duration


_SIZE_RE = re.compile(r"([0-9]{1,13})\s*(B|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _size(raw: Mapping[str, object], key: str, where: str, default: int) -> int:
    if key not in raw:
        return default
    at = f"{where}.{key}"
    value = raw[key]
    lo, hi = MAX_RESPONSE_BYTES_RANGE
    if isinstance(value, str):
        m = _SIZE_RE.fullmatch(value.strip())
        if m is None:
            raise f.error(
                at,
                f'expected a size in bytes or like "16MiB" (B, KiB, MiB, GiB), got {f.echo(value)}',
            )
        value = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if isinstance(value, int) and not isinstance(value, bool) and value > hi:
        raise f.error(
            at,
            f"must be at most {hi // 1024**2}MiB ({hi} bytes), got {value}: a larger cap would "
            "let responses take the daemon past the systemd unit's MemoryMax=1G "
            "(see docs/configuration.md, memory)",
        )
    return f.as_int(value, at, lo=lo, hi=hi)


_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _listen(text: str, where: str) -> ListenAddress | None:
    if text == "":
        return None
    expected = 'expected "host:port" such as "127.0.0.1:9464" or "[::1]:9464", or "" to turn off'
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\[\]]+):([0-9]{1,5})", text)
    if m is None:
        raise f.error(where, f"{expected}, got {f.echo(text)}")
    if m.group(1) is not None:
        host, port_text = m.group(1), m.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError as e:
            raise f.error(where, f"invalid IPv6 address {f.echo(host)}") from e
    else:
        host, port_text = m.group(3), m.group(4)
        if not _HOSTNAME_RE.fullmatch(host):
            raise f.error(where, f"{expected}, got {f.echo(text)}")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError as e:
                raise f.error(where, f"invalid IPv4 address {f.echo(host)}") from e
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise f.error(where, f"port must be from 1 to 65535, got {port}")
    return ListenAddress(host=host, port=port)


# --- [[log]] -------------------------------------------------------------------------------


def _log(raw: Mapping[str, object], where: str, monitor: MonitorConfig, base: Path) -> LogConfig:
    f.check_keys(raw, where, _LOG_KEYS)
    name = f.as_name(f.require(raw, "name", where), f"{where}.name")
    type_text = f.as_str(f.require(raw, "type", where), f"{where}.type", what="a log type")
    log_type = _enum(LogType, type_text, f"{where}.type")
    insecure = f.opt_bool(raw, "allow_insecure_http", where, default=False)
    url = _log_url(f.require(raw, "url", where), f"{where}.url", insecure)

    if ("trust_root" in raw) == ("public_key" in raw):
        raise f.error(
            where,
            'set exactly one of trust_root ("production" or "staging") and public_key '
            "(a PEM public key, inline or a file path)",
        )
    trust_root = None
    pem = key_file = None
    if "trust_root" in raw:
        text = f.as_str(raw["trust_root"], f"{where}.trust_root", what="a trust root name")
        trust_root = _enum(TrustRoot, text, f"{where}.trust_root")
    else:
        pem, key_file = _public_key(raw["public_key"], f"{where}.public_key", base)

    views = f.opt_str_list(raw, "views", where, what="a URL", max_items=MAX_VIEWS)
    listed: list[tuple[object, str, ViewKind]] = [
        (v, f"{where}.views[{i}]", ViewKind.MIRROR) for i, v in enumerate(views)
    ]
    listed.extend(_view_tables(raw, where))
    if len(listed) > MAX_VIEWS:
        total = f"{len(listed)} (views and [[log.view]])"
        raise f.error(where, f"too many views: {total}, at most {MAX_VIEWS}")
    normalised_views: list[str] = []
    paths: list[str] = []
    for view, at, _kind in listed:
        normal = _log_url(view, at, insecure)
        if normal == url:
            raise f.error(at, "same as the log's own url; list only other URLs")
        if normal in normalised_views:
            other = paths[normalised_views.index(normal)].split(": ", 1)[-1].split(".", 1)[-1]
            raise f.error(at, f"duplicate of {other}")
        normalised_views.append(normal)
        paths.append(at)
    witnesses = _witnesses(raw, where, base)
    quorum = 0
    if "witness_quorum" in raw:
        quorum = f.as_int(raw["witness_quorum"], f"{where}.witness_quorum", lo=0, hi=len(witnesses))

    scan = f.opt_bool(raw, "scan", where, default=DEFAULT_SCAN[log_type])
    start = _start(raw, where)
    if start is not None and not scan:
        raise f.error(
            f"{where}.start", "a start index needs scan = true (it is where scanning begins)"
        )
    interval = monitor.interval
    if "interval" in raw:
        interval = _as_duration(raw["interval"], f"{where}.interval", INTERVAL_RANGE)
    max_stale = monitor.max_stale
    if "max_stale" in raw:
        max_stale = _as_duration(raw["max_stale"], f"{where}.max_stale", MAX_STALE_RANGE)
    if "interval" in raw or "max_stale" in raw:
        key = "max_stale" if "max_stale" in raw else "interval"
        _check_stale(max_stale, interval, f"{where}.{key}")
    rpm = DEFAULT_REQUESTS_PER_MINUTE[log_type]
    if "requests_per_minute" in raw:
        lo, hi = REQUESTS_PER_MINUTE_RANGE
        rpm = f.as_int(raw["requests_per_minute"], f"{where}.requests_per_minute", lo=lo, hi=hi)
    roots_pem = roots_file = None
    if "fulcio_roots" in raw:
        roots_pem, roots_file = _fulcio_roots(raw["fulcio_roots"], f"{where}.fulcio_roots", base)
    return LogConfig(
        name=name,
        type=log_type,
        url=url,
        trust_root=trust_root,
        public_key_pem=pem,
        public_key_file=key_file,
        origin=f.opt_str(raw, "origin", where, what="an origin line", max_len=256),
        views=tuple(normalised_views),
        scan=scan,
        start=start,
        interval=interval,
        max_stale=max_stale,
        requests_per_minute=rpm,
        allow_insecure_http=insecure,
        fulcio_roots_pem=roots_pem,
        fulcio_roots_file=roots_file,
        view_kinds=tuple(kind for _, _, kind in listed),
        witnesses=witnesses,
        witness_quorum=quorum,
    )


def _view_tables(raw: Mapping[str, object], where: str) -> list[tuple[object, str, ViewKind]]:
    """The `[[log.view]]` tables as (url, key path, kind)."""
    if "view" not in raw:
        return []
    value = raw["view"]
    if not isinstance(value, list):
        raise f.error(f"{where}.view", f"expected [[log.view]] tables, got {f.toml_type(value)}")
    out: list[tuple[object, str, ViewKind]] = []
    for i, item in enumerate(value):
        at = f"{where}.view[{i}]"
        table = f.as_table(item, at)
        f.check_keys(table, at, _VIEW_KEYS)
        kind = ViewKind.MIRROR
        if "kind" in table:
            text = f.as_str(table["kind"], f"{at}.kind", what="a view kind")
            kind = _enum(ViewKind, text, f"{at}.kind")
        out.append((f.require(table, "url", at), f"{at}.url", kind))
    return out


def _witnesses(raw: Mapping[str, object], where: str, base: Path) -> tuple[WitnessConfig, ...]:
    """The `[[log.witness]]` tables, each key resolved to a vkey."""
    if "witness" not in raw:
        return ()
    value = raw["witness"]
    at = f"{where}.witness"
    if not isinstance(value, list):
        raise f.error(at, f"expected [[log.witness]] tables, got {f.toml_type(value)}")
    if len(value) > MAX_WITNESSES:
        raise f.error(at, f"too many witnesses: {len(value)}, at most {MAX_WITNESSES}")
    # cryptography loads slowly: only configurations with witnesses pay for it.
    from monitor.core.witness import parse_witness_vkey  # noqa: PLC0415

    out: list[WitnessConfig] = []
    for i, item in enumerate(value):
        w = f"{at}[{i}]"
        table = f.as_table(item, w)
        f.check_keys(table, w, _WITNESS_KEYS)
        name = f.as_str(f.require(table, "name", w), f"{w}.name", what="a key name", max_len=256)
        if ("vkey" in table) == ("public_key" in table):
            raise f.error(
                w, "set exactly one of vkey (a C2SP vkey) and public_key (an Ed25519 PEM key)"
            )
        if "vkey" in table:
            text = f.as_str(table["vkey"], f"{w}.vkey", what="a C2SP vkey", max_len=512)
            where_key = f"{w}.vkey"
        else:
            text = _cosignature_vkey(name, table["public_key"], f"{w}.public_key", base)
            where_key = f"{w}.public_key"
        try:
            key = parse_witness_vkey(text)
        except ConfigError as e:
            raise f.error(where_key, str(e)) from e
        if key.name != name:
            raise f.error(
                where_key, f"the key is named {f.echo(key.name)}, not {f.echo(name)} (name)"
            )
        if any(o.vkey == key.vkey for o in out):
            raise f.error(w, f"duplicate witness {f.echo(name)}")
        out.append(WitnessConfig(name=name, vkey=key.vkey))
    return tuple(out)


def _cosignature_vkey(name: str, value: object, where: str, base: Path) -> str:
    """The cosignature/v1 vkey of an Ed25519 PEM public key (inline or a file)."""
    pem, _file = _public_key(value, where, base)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
        load_der_public_key,
    )

    from monitor.core.note import CosignatureVerifier, NoteKeyError  # noqa: PLC0415

    key = load_der_public_key(_pem_to_der(pem))
    if not isinstance(key, Ed25519PublicKey):
        raise f.error(where, f"expected an Ed25519 public key, got {type(key).__name__}")
    try:
        return CosignatureVerifier(name, key).vkey
    except NoteKeyError as e:
        raise f.error(where, str(e)) from e


def _fulcio_roots(value: object, where: str, base: Path) -> tuple[bytes, Path]:
    """Read and check a `fulcio_roots` CA bundle; return its bytes and absolute path."""
    pem, path = _small_file(
        value,
        where,
        base,
        what="the path of a PEM file of CA certificates",
        label="CA bundle",
        limit=MAX_FULCIO_ROOTS_BYTES,
        expected="a few PEM CA certificates",
    )
    # cryptography loads slowly: only configurations that use the key pay for it.
    from monitor.core.chain import CertificateTrust, TrustError  # noqa: PLC0415

    try:
        CertificateTrust.from_pem_bundle(pem, source=f.echo(str(path)))
    except TrustError as e:
        raise f.error(where, str(e)) from e
    return pem, path


_E = TypeVar("_E", bound=StrEnum)


def _enum(cls: type[_E], text: str, where: str) -> _E:
    try:
        return cls(text)
    except ValueError:
        choices = [member.value for member in cls]
        hint = f.suggest(text, choices)
        raise f.error(
            where,
            f"expected one of {', '.join(f.echo(c) for c in choices)}, got {f.echo(text)}{hint}",
        ) from None


def _start(raw: Mapping[str, object], where: str) -> int | None:
    if "start" not in raw:
        return None
    value = raw["start"]
    at = f"{where}.start"
    if value == "latest" and isinstance(value, str):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    shown = (
        f.echo(value)
        if isinstance(value, str)
        else (
            str(value)
            if isinstance(value, int) and not isinstance(value, bool)
            else f.toml_type(value)
        )
    )
    raise f.error(at, f'expected "latest" or a non-negative integer entry index, got {shown}')


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_log_url(url: str, where: str, *, allow_insecure_http: bool) -> str:
    """`url` validated and normalised as a `[[log]]` url is (lowercase scheme and host, no
    trailing "/"); raises `ConfigError` starting with `where` when it is not acceptable."""
    return _log_url(url, where, allow_insecure_http)


def _log_url(value: object, where: str, allow_insecure: bool) -> str:
    """Validate and normalise a log or view URL; echo it only once known credential-free."""
    text = f.as_str(value, where, what="an http:// or https:// URL", max_len=2000)
    try:
        parts = urlsplit(text.strip())
    except ValueError as e:  # library messages may quote parts of the URL: not shown
        raise f.error(where, "not a valid URL") from e
    if "@" in parts.netloc:
        raise f.error(where, "credentials (user:password@) are not allowed in a log URL")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise f.error(where, "a query (?...) or fragment (#...) is not allowed; give the base URL")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        # Echo only the scheme: a misplaced notify URL must not leak its tokens.
        got = f"a {f.echo(scheme)} URL" if scheme and "://" in text else 'no "scheme://"'
        raise f.error(where, f"expected an http:// or https:// URL, got {got}")
    try:
        port = parts.port
    except ValueError as e:
        raise f.error(where, f"invalid port in {f.echo(text)} (expected 1-65535)") from e
    host = parts.hostname or ""
    if not host or not re.fullmatch(r"[a-z0-9.-]+|[0-9a-f:.]+", host):
        raise f.error(where, f"expected a URL with a host name, got {f.echo(text)}")
    if scheme == "http" and not allow_insecure and not _is_loopback(host):
        raise f.error(
            where,
            f"https is required for {f.echo(host)} (plain http is allowed for loopback hosts, "
            "or set allow_insecure_http = true)",
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


_PEM_RE = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----"
)


def _pem_to_der(pem: str) -> bytes:
    m = _PEM_RE.search(pem)
    if m is None:  # only reachable with a PEM that did not come from _public_key
        raise ValueError("not a PEM public key")
    return base64.b64decode("".join(m.group(1).split()), validate=True)


def _public_key(value: object, where: str, base: Path) -> tuple[str, Path | None]:
    """Return the normalised PEM and the file it came from (None when inline)."""
    text = f.as_str(
        value, where, what="a PEM public key or a file path", max_len=20_000, multiline=True
    )
    key_file: Path | None = None
    if "-----BEGIN" not in text:
        if "\n" in text:
            raise f.error(where, "expected a PEM block (-----BEGIN PUBLIC KEY-----) or a file path")
        key_file = _absolute(Path(text.strip()), base)
        try:
            key_bytes = _read_bounded(key_file, MAX_KEY_FILE_BYTES)
            text = key_bytes.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            raise f.error(
                where, f"cannot read public key file {f.echo(str(key_file))}: {reason}"
            ) from e
        if len(key_bytes) > MAX_KEY_FILE_BYTES:
            raise f.error(
                where,
                f"public key file {f.echo(str(key_file))} is larger than {MAX_KEY_FILE_BYTES} "
                "bytes; a PEM public key is under 1 KiB",
            )
    source = f"the file {f.echo(str(key_file))}" if key_file else "the inline value"
    if "PRIVATE KEY" in text:
        raise f.error(
            where, f"{source} holds a PRIVATE key; give the log's public key (never a private key)"
        )
    blocks = _PEM_RE.findall(text)
    if len(blocks) != 1:
        raise f.error(
            where,
            f"{source} must hold exactly one -----BEGIN PUBLIC KEY----- block "
            f"(SubjectPublicKeyInfo), found {len(blocks)}",
        )
    try:
        der = base64.b64decode("".join(blocks[0].split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise f.error(where, f"{source}: the PEM body is not valid base64") from e
    if len(der) < 16 or der[0] != 0x30:
        raise f.error(where, f"{source}: the PEM body is not a DER SubjectPublicKeyInfo")
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    pem = "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----", ""])
    return pem, key_file


# --- [[sigstore]] --------------------------------------------------------------------------


def _sigstore(
    raw: Mapping[str, object], where: str, monitor: MonitorConfig, base: Path
) -> SigstoreConfig:
    f.check_keys(raw, where, _SIGSTORE_KEYS)
    if ("instance" in raw) == ("url" in raw):
        raise f.error(
            where,
            'set exactly one of instance ("production" or "staging") and url (the base URL of '
            "a TUF repository, with root = the path of its trusted root.json)",
        )
    insecure = f.opt_bool(raw, "allow_insecure_http", where, default=False)
    instance: SigstoreInstance | None = None
    root_file: Path | None = None
    if "instance" in raw:
        at = f"{where}.instance"
        instance = _enum(SigstoreInstance, f.as_str(raw["instance"], at, what="an instance"), at)
        if "root" in raw:
            raise f.error(
                f"{where}.root",
                f"only with url: instance {f.echo(instance.value)} starts from the TUF root.json "
                "that sigstore-python ships",
            )
        # sigstore's package data loads slowly: only configurations with [[sigstore]] pay.
        from monitor.config.trust_roots import TRUST_ROOT_NAMES, embedded_tuf_root  # noqa: PLC0415
        from monitor.core.keys import KeyLoadError  # noqa: PLC0415

        metadata_url = TRUST_ROOT_NAMES[instance.value]
        try:
            bootstrap = embedded_tuf_root(instance.value)
        except KeyLoadError as e:
            raise f.error(at, str(e)) from e
        name = instance.value
        if "name" in raw:
            name = f.as_name(raw["name"], f"{where}.name")
    else:
        metadata_url = _log_url(raw["url"], f"{where}.url", insecure)
        for key, what in (
            ("root", "the path of the repository's trusted TUF root.json"),
            ("name", "the name its logs and reports go by"),
        ):
            if key not in raw:
                raise f.error(f"{where}.{key}", f"missing (required with url: {what})")
        name = f.as_name(raw["name"], f"{where}.name")
        bootstrap, root_file = _tuf_root(raw["root"], f"{where}.root", base)
    exclude: list[str] = []
    for i, item in enumerate(f.opt_str_list(raw, "exclude", where, what="a log URL")):
        # Normalised as the trust root's URLs are (an excluded URL is never contacted).
        normal = _log_url(item, f"{where}.exclude[{i}]", True)
        if normal in exclude:
            raise f.error(
                f"{where}.exclude[{i}]",
                f"duplicate of exclude[{exclude.index(normal)}] once normalised",
            )
        exclude.append(normal)
    return SigstoreConfig(
        name=name,
        instance=instance,
        metadata_url=metadata_url,
        targets_url=f"{metadata_url}/targets",
        bootstrap_root=bootstrap,
        bootstrap_file=root_file,
        refresh=_duration(raw, "refresh", where, DEFAULT_TRUST_REFRESH, TRUST_REFRESH_RANGE),
        scan=f.opt_bool(raw, "scan", where, default=True),
        exclude=tuple(exclude),
        allow_insecure_http=insecure,
        cache_dir=monitor.database.parent / "tuf" / name,
        scan_ct=f.opt_bool(raw, "scan_ct", where, default=False),
    )


def _tuf_root(value: object, where: str, base: Path) -> tuple[bytes, Path]:
    """Read a bootstrap TUF root.json (bounded); it must at least be a JSON root document."""
    data, path = _small_file(
        value,
        where,
        base,
        what="the path of a TUF root.json",
        label="TUF root",
        limit=MAX_TUF_ROOT_BYTES,
        expected="a TUF root.json",
    )
    try:
        document = json.loads(data, parse_constant=f.reject_constant)
    except (ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError and UnicodeDecodeError (never echoes the content).
        raise f.error(where, f"{f.echo(str(path))} is not JSON ({f.short(e)})") from e
    signed = document.get("signed") if isinstance(document, dict) else None
    if not isinstance(signed, dict) or signed.get("_type") != "root":
        raise f.error(
            where,
            f"{f.echo(str(path))} is not a TUF root.json (expected a JSON object whose "
            '"signed" object has "_type": "root")',
        )
    return data, path


# --- [[notify]] ----------------------------------------------------------------------------

_APPRISE_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ENV_SPLIT_RE = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]{0,31}://)")
_NOT_SHOWN = "(the value is not shown: it may hold a secret)"


def _apprise_url(text: str, where: str, channel: str) -> str:
    """A notify URL that apprise can send to, checked now rather than at the first alert (which
    would fail while the daemon reports READY); errors show the URL only redacted."""
    if not _APPRISE_URL_RE.fullmatch(text):
        raise f.error(
            where,
            f'expected an apprise URL such as "slack://..." or "mailtos://..." {_NOT_SHOWN}',
        )
    problem = url_problem(text)
    if problem is not None:
        raise f.error(
            where,
            f"channel {f.echo(channel)}: apprise cannot use {redact_url(text)}: {problem}; "
            "see the URL formats in docs/configuration.md#notify and apprise's wiki",
        )
    return text


def _channel(
    raw: Mapping[str, object], where: str, base: Path, env: Mapping[str, str]
) -> NotifyChannel:
    f.check_keys(raw, where, _NOTIFY_KEYS)
    name = f.as_name(f.require(raw, "name", where), f"{where}.name")
    min_severity = DEFAULT_MIN_SEVERITY
    if "min_severity" in raw:
        text = f.as_str(raw["min_severity"], f"{where}.min_severity", what="a severity")
        min_severity = _enum(Severity, text, f"{where}.min_severity")

    urls: list[str] = []
    listed = f.opt_str_list(
        raw, "urls", where, what="an apprise URL", max_len=4000, secret=True,
        max_items=MAX_URLS_PER_CHANNEL,
    )  # fmt: skip
    urls.extend(_apprise_url(u.strip(), f"{where}.urls[{i}]", name) for i, u in enumerate(listed))

    env_names = f.opt_str_list(raw, "urls_env", where, what="an environment variable name")
    for i, var in enumerate(env_names):
        at = f"{where}.urls_env[{i}]"
        if not _ENV_NAME_RE.fullmatch(var):
            raise f.error(at, f"expected an environment variable name, got {f.echo(var)}")
        value = env.get(var)
        if value is None:
            raise f.error(at, f"environment variable {var} is not set")
        items = [item for item in _ENV_SPLIT_RE.split(value.strip()) if item]
        if not items:
            raise f.error(at, f"environment variable {var} is empty")
        for n, item in enumerate(items, 1):
            urls.append(_apprise_url(item, f"{at} (URL {n} in ${var})", name))

    urls_file: Path | None = None
    file_text = f.opt_str(raw, "urls_file", where, what="a file path")
    if file_text is not None:
        urls_file = _absolute(Path(file_text), base)
        at = f"{where}.urls_file"
        try:
            content_bytes = _read_bounded(urls_file, MAX_URLS_FILE_BYTES)
            content = content_bytes.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            raise f.error(at, f"cannot read {f.echo(str(urls_file))}: {reason}") from e
        if len(content_bytes) > MAX_URLS_FILE_BYTES:
            raise f.error(
                at, f"{f.echo(str(urls_file))} is larger than {MAX_URLS_FILE_BYTES} bytes"
            )
        found = 0
        for n, line in enumerate(content.splitlines(), 1):
            item = line.strip()
            if item and not item.startswith("#"):
                urls.append(_apprise_url(item, f"{at} ({f.echo(str(urls_file))} line {n})", name))
                found += 1
        if not found:
            raise f.error(at, f"{f.echo(str(urls_file))} holds no URLs")

    unique = tuple(dict.fromkeys(urls))
    if not unique:
        raise f.error(where, "no URLs: set urls, urls_env or urls_file")
    if len(unique) > MAX_URLS_PER_CHANNEL:
        raise f.error(where, f"too many URLs: {len(unique)}, at most {MAX_URLS_PER_CHANNEL}")
    return NotifyChannel(
        name=name,
        urls=unique,
        min_severity=min_severity,
        urls_env=env_names,
        urls_file=urls_file,
    )
