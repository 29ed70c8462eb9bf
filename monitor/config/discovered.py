"""Logs discovered from a `[[sigstore]]` source's trusted root.

Pure: no network, no files. `discover` turns one `TrustSnapshot` (parsed from the trusted root
and signing config a TUF repository served) into the `LogConfig`s to monitor, and says why every
other log of the snapshot is not monitored; `effective_logs` merges them with the `[[log]]`
tables. The snapshot is hostile input: whatever its URLs, keys and windows, `discover` returns a
`Discovery` (a log it cannot use is skipped with a reason) and never raises.

Rules (docs/configuration.md, `[[sigstore]]`):

- one monitored log per distinct Rekor base URL (v1 and each v2 shard); among several entries
  for one URL (a key rotation), the one whose validFor window is open now with the latest start,
  else the one whose window ends last;
- one monitored log per distinct CT log base URL (`ctlogs`), picked the same way: `static-ct`
  when the URL is a bare host (`https://log2026-1.ctfe.sigstage.dev`, the tiled CT logs' layout),
  `ct` (RFC 6962) when it has a path (`https://ctfe.sigstore.dev/2022`, the CTFE layout of one
  host serving several logs); neither file names a CT log's API, so the URL's shape decides, and
  a `[[log]]` with the URL says otherwise. Its key must be ECDSA P-256 (the STH key), else it is
  unverifiable, as is a Rekor log whose key type the monitor cannot verify;
- a `[[log]]` with the same URL overrides it; `exclude` skips it;
- a Rekor v1 log is searched through its index, never scanned; a tiled shard is scanned when the
  source says `scan = true` and its window has not ended, a CT log when it says `scan_ct = true`
  and its window has not ended; either from index 0 when it is new since the source's previous
  snapshot (`new_urls`), else from the latest checkpoint.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from monitor.config.settings import (
    DEFAULT_REQUESTS_PER_MINUTE,
    Config,
    LogConfig,
    LogType,
    SigstoreConfig,
    check_log_url,
)
from monitor.core.errors import ConfigError
from monitor.core.keys import tiles_origin
from monitor.core.note import Rfc6962NoteVerifier
from monitor.core.trust import LogKind, TrustedLogInfo, TrustSnapshot, Window

__all__ = [
    "EXCLUDED",
    "Discovery",
    "ct_log_type",
    "discover",
    "discovered_log_name",
    "effective_logs",
]

MAX_NAME = 63
"""The longest log name (`monitor.core.fields.NAME_PATTERN`)."""
_HASHED_PREFIX = 54
_NOT_NAME = re.compile(r"[^a-z0-9]+")

EXCLUDED = "excluded by [[sigstore]] exclude"


def ct_log_type(base_url: str) -> LogType:
    """The API of a trusted root's CT log, from its URL alone (no field of the trusted root or
    signing config names it): `static-ct` for a bare host (each static-ct-api log of Sigstore's
    has a host of its own, e.g. log2026-1.ctfe.sigstage.dev), `ct` (RFC 6962) when the URL has
    a path (CTFE serves several logs under one host: ctfe.sigstore.dev/2022)."""
    try:
        path = urlsplit(base_url).path
    except ValueError:
        return LogType.CT
    return LogType.STATIC_CT if path.strip("/") == "" else LogType.CT


def discovered_log_name(source: str, url: str) -> str:
    """The name of the log at `url` discovered from the `[[sigstore]]` named `source`:
    f"{source}-{host, port and path}", lowercased, each run of characters outside [a-z0-9]
    made one "-", "-" stripped at both ends. Longer than 63 characters: the first 54, "-" and
    the first 8 hex digits of SHA-256(url). The same URL always gives the same name."""
    _, sep, rest = url.partition("://")
    location = rest if sep else url
    name = _NOT_NAME.sub("-", f"{source}-{location}".lower()).strip("-")
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = f"{name[:_HASHED_PREFIX]}-{digest}"
    return name


@dataclass(frozen=True)
class Discovery:
    """What one snapshot of a `[[sigstore]]` source means for monitoring."""

    source: str
    logs: tuple[LogConfig, ...]
    """To monitor, each with `source` set to the source's name."""
    skipped: tuple[tuple[str, str], ...]
    """(URL, why) of the snapshot's logs that are not monitored from this source."""
    unverifiable: tuple[TrustedLogInfo, ...]
    """Logs whose key cannot be verified (a Rekor log's `verifier` None, a CT log's key not
    ECDSA P-256; `verifier_problem` says why): not monitored, to alert."""


def _is_open(window: Window, now: datetime) -> bool:
    return (window.start is None or window.start <= now) and (
        window.end is None or now < window.end
    )


def _pick(entries: Sequence[TrustedLogInfo], now: datetime) -> TrustedLogInfo:
    """The entry that describes a log now, among several for its URL (a key rotation)."""
    open_now = [e for e in entries if _is_open(e.window, now)]
    if open_now:
        # max() keeps the first of equals: file order breaks ties.
        return max(open_now, key=lambda e: (e.window.start is not None, e.window.start or now))
    # None is open: the one that ends last (an open end is the latest; a window that has not
    # started yet has one).
    return max(entries, key=lambda e: (e.window.end is None, e.window.end or now))


def _pem(der: bytes, label: str = "PUBLIC KEY") -> str:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def _fulcio_bundle(snapshot: TrustSnapshot) -> bytes | None:
    """Every certificate of the snapshot's Fulcio CAs as one PEM bundle; None without CAs."""
    seen: dict[bytes, None] = {}
    for authority in snapshot.authorities:
        if authority.kind == "ca":
            seen.update(dict.fromkeys(authority.chain))
    if not seen:
        return None
    return "".join(_pem(der, "CERTIFICATE") for der in seen).encode("ascii")


def discover(
    config: Config,
    source: SigstoreConfig,
    snapshot: TrustSnapshot,
    *,
    new_urls: frozenset[str] = frozenset(),
    now: datetime,
) -> Discovery:
    """The logs of `snapshot` to monitor for `source`, and why the others are not.

    `new_urls`: log URLs added since the source's previous snapshot (their tiled shards are
    scanned from index 0). `now` (aware) decides which windows are open or ended. Never raises
    for any snapshot content.
    """
    skipped: list[tuple[str, str]] = []
    by_url: dict[str, list[TrustedLogInfo]] = {}
    for info in snapshot.logs:
        try:
            url = check_log_url(
                info.base_url, "trusted root", allow_insecure_http=source.allow_insecure_http
            )
        except ConfigError as e:
            if all(u != info.base_url for u, _ in skipped):
                skipped.append((info.base_url, str(e)))
            continue
        by_url.setdefault(url, []).append(info)

    configured = {log.url: log.name for log in config.logs}
    taken = {log.name: f"[[log]] {log.name!r}" for log in config.logs}
    roots_pem = _fulcio_bundle(snapshot)
    logs: list[LogConfig] = []
    unverifiable: list[TrustedLogInfo] = []
    for url, entries in by_url.items():
        if url in source.exclude:
            skipped.append((url, EXCLUDED))
            continue
        if url in configured:
            skipped.append((url, f'overridden by [[log]] "{configured[url]}"'))
            continue
        info = _pick(entries, now)
        if info.kind is LogKind.CT:
            try:
                Rfc6962NoteVerifier.from_der(tiles_origin(url), info.key)
            except (ConfigError, ValueError) as e:
                # NoteKeyError: not ECDSA P-256; KeyLoadError, ValueError: a URL it cannot name.
                unverifiable.append(dataclasses.replace(info, verifier_problem=str(e)))
                continue
        elif info.verifier is None:
            unverifiable.append(info)
            continue
        name = discovered_log_name(source.name, url)
        if name in taken:
            # Names key the log's state: never let two logs share one.
            skipped.append((url, f"its name {name!r} is taken by {taken[name]}"))
            continue
        taken[name] = f"the trusted root's log {url}"
        if info.kind is LogKind.CT:
            log_type = ct_log_type(url)
        else:
            log_type = LogType.TILES if info.kind is LogKind.REKOR_V2 else LogType.REKOR_V1
        ended = info.window.end is not None and info.window.end <= now
        # Rekor v1 is searched, never scanned (billions of entries); CT logs only on request.
        wants = source.scan_ct if log_type.is_ct else log_type is LogType.TILES and source.scan
        scan = wants and not ended
        is_new = url in new_urls or info.base_url in new_urls
        logs.append(
            LogConfig(
                name=name,
                type=log_type,
                url=url,
                trust_root=None,
                public_key_pem=_pem(info.key),
                public_key_file=None,
                # A v1 key name is the URL's host (the default); a shard's origin is its own; a
                # CT log's is the URL without its scheme (the default).
                origin=info.origin if log_type is LogType.TILES else None,
                views=(),
                scan=scan,
                start=0 if scan and is_new else None,
                interval=config.monitor.interval,
                max_stale=config.monitor.max_stale,
                requests_per_minute=DEFAULT_REQUESTS_PER_MINUTE[log_type],
                allow_insecure_http=source.allow_insecure_http,
                fulcio_roots_pem=roots_pem,
                source=source.name,
                valid_until=info.window.end,
            )
        )
    return Discovery(
        source=source.name,
        logs=tuple(logs),
        skipped=tuple(skipped),
        unverifiable=tuple(unverifiable),
    )


def effective_logs(config: Config, discoveries: Sequence[Discovery]) -> tuple[LogConfig, ...]:
    """Every log to monitor: the `[[log]]` tables, then each discovery's logs in order. A
    discovered log whose name or URL is already taken (by a `[[log]]` or an earlier discovery)
    is left out. Never raises."""
    out = list(config.logs)
    names = {log.name for log in out}
    urls = {log.url for log in out}
    for discovery in discoveries:
        for log in discovery.logs:
            if log.name in names or log.url in urls:
                continue
            names.add(log.name)
            urls.add(log.url)
            out.append(log)
    return tuple(out)
