"""What a Sigstore trusted root and signing config say, and what changed between two of them.

Pure: the bytes of ``trusted_root.json`` (protobuf-specs ``TrustedRoot`` JSON) and of
``signing_config.v0.2.json`` come in, a frozen `TrustSnapshot` comes out; `diff` compares two
snapshots. Both files arrive from a TUF repository or a mirror of it and are treated as hostile:
sizes and counts are capped before and while parsing, every integer is range-checked, times are
strict RFC 3339, keys and certificates must parse, and every failure is one `TrustRootError`
naming the field.

Unknown fields are ignored (Sigstore adds fields between versions, as protobuf JSON readers do);
the media type must name a trusted root / a v0.2 signing config.

A Rekor log's kind comes from the signing config's ``majorApiVersion`` when it lists the log
(only logs open for writing are listed), otherwise from its key type, as in
``monitor.config.trust_roots``: public Rekor v1 instances sign with ECDSA P-256, Rekor v2 shards
with Ed25519.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from monitor.core.errors import TrustRootError
from monitor.core.fields import MISSING, JsonReader, echo, reject_constant, short
from monitor.core.keys import (
    KeyLoadError,
    rekor_v1_key_name,
    tiles_origin,
    verifier_from_der,
)
from monitor.core.note import NoteVerifier

__all__ = [
    "MAX_TRUST_FILE_BYTES",
    "Authority",
    "ChangeKind",
    "LogKind",
    "Service",
    "TrustChange",
    "TrustSnapshot",
    "TrustedLogInfo",
    "Window",
    "diff",
    "parse_signing_config",
    "parse_time",
    "parse_trusted_root",
    "trust_snapshot",
]

MAX_TRUST_FILE_BYTES: Final = 1 << 20
"""The largest trusted root or signing config read (Sigstore's are under 10 KiB)."""
MAX_ITEMS: Final = 256
"""The most logs, CAs, TSAs or service URLs in one list."""
MAX_CHAIN: Final = 10
"""The most certificates in one CA or TSA chain."""
MAX_KEY_BYTES: Final = 4096
MAX_CERT_BYTES: Final = 16384
MAX_KEY_ID_BYTES: Final = 64
MAX_URL_CHARS: Final = 2048
MAX_MAJOR_API_VERSION: Final = 1000

TRUSTED_ROOT_MEDIA_PREFIX: Final = "application/vnd.dev.sigstore.trustedroot"
SIGNING_CONFIG_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.signingconfig.v0.2+json"

# RFC 3339 date-time, the only form protobuf JSON writes a Timestamp in (plus numeric offsets);
# [0-9], not \d, which also matches non-ASCII digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


class LogKind(StrEnum):
    """What a log in a trusted root is."""

    REKOR_V1 = "rekor_v1"
    REKOR_V2 = "rekor_v2"
    """A tiled Rekor v2 shard (C2SP tlog-tiles)."""
    CT = "ct"


class ChangeKind(StrEnum):
    """How one item of the trust differs between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"
    KEY_CHANGED = "key_changed"
    WINDOW_CHANGED = "window_changed"


@dataclass(frozen=True)
class Window:
    """A validFor window; `end` None when open. `start` is None only if the file omits it."""

    start: datetime | None
    end: datetime | None

    def summary(self) -> dict[str, str | None]:
        """JSON-ready form for evidence."""
        return {
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
        }


@dataclass(frozen=True)
class TrustedLogInfo:
    """One transparency log listed in a trusted root (a Rekor tlog or a CT log).

    `key` is the DER public key as published; `verifier` checks its checkpoints (Rekor logs
    with a supported key type; None for CT logs and for unsupported keys, which
    `verifier_problem` explains). `origin` is the checkpoint origin of a Rekor v2 shard.
    """

    kind: LogKind
    base_url: str
    origin: str | None
    key_id: bytes
    key: bytes
    key_details: str
    window: Window
    verifier: NoteVerifier | None = field(compare=False, repr=False)
    verifier_problem: str | None = field(default=None, compare=False)

    @property
    def section(self) -> str:
        """The trusted root section it came from."""
        return "ctlogs" if self.kind is LogKind.CT else "tlogs"

    def summary(self) -> dict[str, object]:
        """JSON-ready form for evidence."""
        return {
            "kind": str(self.kind),
            "base_url": self.base_url,
            "origin": self.origin,
            "key_id": self.key_id.hex(),
            "key_der_hex": self.key.hex(),
            "key_details": self.key_details,
            "valid_for": self.window.summary(),
        }


@dataclass(frozen=True)
class Authority:
    """A certificate authority ("ca", Fulcio) or timestamp authority ("tsa") of a trusted root:
    its chain (DER, as listed: leaf or intermediates first, root last)."""

    kind: str
    uri: str
    subject: str
    chain: tuple[bytes, ...]
    window: Window

    def summary(self) -> dict[str, object]:
        """JSON-ready form for evidence (the chain as hex SHA-256 fingerprints)."""
        return {
            "kind": self.kind,
            "uri": self.uri,
            "subject": self.subject,
            "chain_sha256": [hashlib.sha256(c).hexdigest() for c in self.chain],
            "valid_for": self.window.summary(),
        }


@dataclass(frozen=True)
class Service:
    """One service URL of a signing config: `kind` is "rekor", "ca", "tsa" or "oidc"."""

    kind: str
    url: str
    major_api_version: int
    operator: str
    window: Window

    def summary(self) -> dict[str, object]:
        """JSON-ready form for evidence."""
        return {
            "kind": self.kind,
            "url": self.url,
            "major_api_version": self.major_api_version,
            "operator": self.operator,
            "valid_for": self.window.summary(),
        }


TrustItem = TrustedLogInfo | Authority | Service


@dataclass(frozen=True)
class TrustSnapshot:
    """Everything one trusted root (and its signing config, if any) says, in file order."""

    logs: tuple[TrustedLogInfo, ...]
    authorities: tuple[Authority, ...]
    services: tuple[Service, ...] = ()

    def rekor_logs(self) -> tuple[TrustedLogInfo, ...]:
        """The Rekor logs (v1 and v2 shards)."""
        return tuple(log for log in self.logs if log.kind is not LogKind.CT)


@dataclass(frozen=True)
class TrustChange:
    """One difference between two snapshots: `before` None for an addition, `after` None for a
    removal. `section` is "tlogs", "ctlogs", "certificateAuthorities", "timestampAuthorities" or
    the signing config's "<kind>Urls"; `name` is the item's URL."""

    kind: ChangeKind
    section: str
    name: str
    before: TrustItem | None
    after: TrustItem | None

    def evidence(self) -> dict[str, object]:
        """JSON-ready form with both sides."""
        return {
            "change": str(self.kind),
            "section": self.section,
            "name": self.name,
            "before": None if self.before is None else self.before.summary(),
            "after": None if self.after is None else self.after.summary(),
        }


# --- parsing ------------------------------------------------------------------------------------


_JSON = JsonReader(TrustRootError, show=echo)


def _load_json(data: bytes, what: str) -> dict[str, object]:
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise TrustRootError(
            f"{what}: expected at most {MAX_TRUST_FILE_BYTES} bytes, got {len(data)}"
        )
    try:
        value = json.loads(data, parse_constant=reject_constant)
    except (ValueError, RecursionError) as e:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError deep nesting.
        raise TrustRootError(f"{what}: expected JSON, got {short(e)}") from e
    return _JSON.obj(value, what)


def _list(obj: Mapping[str, object], key: str, where: str, *, required: bool) -> list[object]:
    value = obj.get(key, MISSING)
    if value is MISSING and not required:
        return []
    if not isinstance(value, list):
        raise _JSON.fail(f"{where}.{key}", "an array", value)
    if len(value) > MAX_ITEMS:
        raise TrustRootError(f"{where}.{key}: expected at most {MAX_ITEMS} items, got {len(value)}")
    return value


def _text(value: object, where: str, *, max_len: int = MAX_URL_CHARS) -> str:
    text = _JSON.text(value, where)
    if not text or len(text) > max_len:
        raise TrustRootError(f"{where}: expected 1 to {max_len} characters, got {len(text)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise TrustRootError(f"{where}: expected no control characters, got {echo(text)}")
    return text


def _url(value: object, where: str) -> str:
    text = _text(value, where)
    if not text.startswith(("https://", "http://")):
        raise _JSON.fail(where, "an http(s) URL", text)
    try:
        rekor_v1_key_name(text)  # checks for a host
    except (KeyLoadError, ValueError) as e:
        # ValueError: urlsplit on a malformed IPv6 host or port.
        raise TrustRootError(
            f"{where}: expected an http(s) URL with a host, got {echo(text)}"
        ) from e
    return text.rstrip("/")


def parse_time(value: object, where: str) -> datetime:
    """A strict RFC 3339 date-time (protobuf JSON Timestamp) as an aware UTC datetime."""
    if not isinstance(value, str) or len(value) > 40:
        raise _JSON.fail(where, "an RFC 3339 time such as 2025-09-23T00:00:00Z", value)
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise _JSON.fail(where, "an RFC 3339 time such as 2025-09-23T00:00:00Z", value)
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    micro = int((m.group(7) or "0").ljust(9, "0")[:6])
    try:
        tz = UTC
        if m.group(9) is not None:
            offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
            tz = timezone(offset if m.group(9) == "+" else -offset)
        when = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        return when.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise TrustRootError(f"{where}: expected a valid RFC 3339 time, got {echo(value)}") from e


def _window(obj: Mapping[str, object], where: str) -> Window:
    # protobuf-specs makes validFor optional everywhere; an absent one is an open window.
    raw = obj.get("validFor", MISSING)
    if raw is MISSING:
        return Window(None, None)
    at = f"{where}.validFor"
    window = _JSON.obj(raw, at)
    start = window.get("start", MISSING)
    end = window.get("end", MISSING)
    begin = None if start is MISSING else parse_time(start, f"{at}.start")
    until = None if end is MISSING else parse_time(end, f"{at}.end")
    if begin is not None and until is not None and until < begin:
        raise TrustRootError(f"{at}: expected end after start, got {until} before {begin}")
    return Window(begin, until)


def _bytes(obj: Mapping[str, object], key: str, where: str, *, cap: int) -> bytes:
    raw = _JSON.base64(_JSON.field(obj, key, where), f"{where}.{key}", non_empty=True)
    if len(raw) > cap:
        raise TrustRootError(f"{where}.{key}: expected at most {cap} bytes, got {len(raw)}")
    return raw


def _log(raw: object, where: str, ct: bool, versions: Mapping[str, int]) -> TrustedLogInfo:
    obj = _JSON.obj(raw, where)
    base_url = _url(_JSON.field(obj, "baseUrl", where), f"{where}.baseUrl")
    key_obj = _JSON.obj(_JSON.field(obj, "publicKey", where), f"{where}.publicKey")
    kw = f"{where}.publicKey"
    key = _bytes(key_obj, "rawBytes", kw, cap=MAX_KEY_BYTES)
    details = _text(_JSON.field(key_obj, "keyDetails", kw), f"{kw}.keyDetails", max_len=100)
    window = _window(key_obj, kw)
    log_id = _JSON.obj(_JSON.field(obj, "logId", where), f"{where}.logId")
    key_id = _bytes(log_id, "keyId", f"{where}.logId", cap=MAX_KEY_ID_BYTES)
    try:
        # Any key type a CT log may use (PKCS#1 RSA included) must at least parse.
        serialization.load_der_public_key(key)
    except (ValueError, UnsupportedAlgorithm, TypeError) as e:
        raise TrustRootError(f"{kw}.rawBytes: expected a DER public key, got {short(e)}") from e
    if ct:
        kind = LogKind.CT
    else:
        version = versions.get(base_url)
        if version == 1:
            kind = LogKind.REKOR_V1
        elif version == 2 or details == "PKIX_ED25519":
            kind = LogKind.REKOR_V2
        else:
            kind = LogKind.REKOR_V1
    verifier: NoteVerifier | None = None
    problem: str | None = None
    origin: str | None = None
    if kind is not LogKind.CT:
        try:
            if kind is LogKind.REKOR_V2:
                origin = tiles_origin(base_url)
                name = origin
            else:
                name = rekor_v1_key_name(base_url)
            verifier = verifier_from_der(name, key)
        except KeyLoadError as e:
            # A well-formed key of a type we cannot verify is a fact about that log, not a
            # malformed file: the caller decides how loudly to say so.
            problem = str(e)
    return TrustedLogInfo(
        kind=kind,
        base_url=base_url,
        origin=origin,
        key_id=key_id,
        key=key,
        key_details=details,
        window=window,
        verifier=verifier,
        verifier_problem=problem,
    )


def _subject(raw: object, where: str) -> str:
    if raw is MISSING:
        return ""
    obj = _JSON.obj(raw, where)
    parts = []
    for key, label in (("organization", "O"), ("commonName", "CN")):
        if key in obj:
            parts.append(f"{label}={_text(obj[key], f'{where}.{key}', max_len=500)}")
    return ", ".join(parts)


def _authority(raw: object, where: str, kind: str) -> Authority:
    obj = _JSON.obj(raw, where)
    uri = _text(_JSON.field(obj, "uri", where), f"{where}.uri")
    subject = _subject(obj.get("subject", MISSING), f"{where}.subject")
    chain_obj = _JSON.obj(_JSON.field(obj, "certChain", where), f"{where}.certChain")
    certs = _list(chain_obj, "certificates", f"{where}.certChain", required=True)
    at = f"{where}.certChain.certificates"
    if not 1 <= len(certs) <= MAX_CHAIN:
        raise TrustRootError(f"{at}: expected 1 to {MAX_CHAIN} certificates, got {len(certs)}")
    chain = []
    for i, cert in enumerate(certs):
        der = _bytes(_JSON.obj(cert, f"{at}[{i}]"), "rawBytes", f"{at}[{i}]", cap=MAX_CERT_BYTES)
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as e:
            raise TrustRootError(
                f"{at}[{i}].rawBytes: expected a DER certificate, got {short(e)}"
            ) from e
        chain.append(der)
    return Authority(
        kind=kind,
        uri=uri,
        subject=subject,
        chain=tuple(chain),
        window=_window(obj, where),
    )


def parse_trusted_root(
    data: bytes, *, rekor_versions: Mapping[str, int] | None = None
) -> TrustSnapshot:
    """A trusted_root.json's logs and authorities (no services), or `TrustRootError`.

    `rekor_versions` maps a log URL to its major API version from a signing config.
    """
    root = _load_json(data, "trusted root")
    media = _text(_JSON.field(root, "mediaType", "trusted root"), "trusted root.mediaType")
    if not media.startswith(TRUSTED_ROOT_MEDIA_PREFIX):
        raise _JSON.fail("trusted root.mediaType", f"{TRUSTED_ROOT_MEDIA_PREFIX}...", media)
    versions = rekor_versions or {}
    logs: list[TrustedLogInfo] = []
    for key, ct in (("tlogs", False), ("ctlogs", True)):
        for i, raw in enumerate(_list(root, key, "trusted root", required=False)):
            logs.append(_log(raw, f"trusted root.{key}[{i}]", ct, versions))
    authorities: list[Authority] = []
    for key, kind in (("certificateAuthorities", "ca"), ("timestampAuthorities", "tsa")):
        for i, raw in enumerate(_list(root, key, "trusted root", required=False)):
            authorities.append(_authority(raw, f"trusted root.{key}[{i}]", kind))
    return TrustSnapshot(logs=tuple(logs), authorities=tuple(authorities))


_SERVICE_KEYS: Final = (
    ("rekorTlogUrls", "rekor"),
    ("caUrls", "ca"),
    ("tsaUrls", "tsa"),
    ("oidcUrls", "oidc"),
)


def _operator(obj: Mapping[str, object], where: str) -> str:
    if "operator" not in obj:
        return ""
    return _text(obj["operator"], f"{where}.operator", max_len=500)


def parse_signing_config(data: bytes) -> tuple[Service, ...]:
    """A signing_config.v0.2.json's service URLs, or `TrustRootError`."""
    config = _load_json(data, "signing config")
    media = _text(_JSON.field(config, "mediaType", "signing config"), "signing config.mediaType")
    if media != SIGNING_CONFIG_MEDIA_TYPE:
        raise _JSON.fail("signing config.mediaType", SIGNING_CONFIG_MEDIA_TYPE, media)
    services: list[Service] = []
    for key, kind in _SERVICE_KEYS:
        for i, raw in enumerate(_list(config, key, "signing config", required=False)):
            where = f"signing config.{key}[{i}]"
            obj = _JSON.obj(raw, where)
            version = _JSON.integer(
                _JSON.field(obj, "majorApiVersion", where),
                f"{where}.majorApiVersion",
                lo=1,
                hi=MAX_MAJOR_API_VERSION,
            )
            services.append(
                Service(
                    kind=kind,
                    url=_url(_JSON.field(obj, "url", where), f"{where}.url"),
                    major_api_version=version,
                    operator=_operator(obj, where),
                    window=_window(obj, where),
                )
            )
    return tuple(services)


def trust_snapshot(trusted_root: bytes, signing_config: bytes | None = None) -> TrustSnapshot:
    """The snapshot of a trusted root and, if given, its signing config (which also decides
    each listed Rekor log's API version). Raises `TrustRootError` if either is malformed."""
    services = parse_signing_config(signing_config) if signing_config is not None else ()
    versions = {s.url: s.major_api_version for s in services if s.kind == "rekor"}
    root = parse_trusted_root(trusted_root, rekor_versions=versions)
    return TrustSnapshot(logs=root.logs, authorities=root.authorities, services=services)


# --- diff ---------------------------------------------------------------------------------------


def _item_key(item: TrustItem) -> object:
    """What makes two same-named items the same one (a difference is a key change)."""
    if isinstance(item, TrustedLogInfo):
        return (item.kind, item.key, item.key_id, item.key_details)
    if isinstance(item, Authority):
        return (item.chain, item.subject)
    return (item.major_api_version, item.operator)


def _item_name(item: TrustItem) -> str:
    if isinstance(item, TrustedLogInfo):
        return item.base_url
    if isinstance(item, Authority):
        return item.uri
    return item.url


def _pair(
    section: str, before: Sequence[TrustItem], after: Sequence[TrustItem]
) -> list[TrustChange]:
    """Changes within one section: items are grouped by name; within a name, items with the same
    key are the same item (its window may change), left-over ones pair up in order as key
    changes, and the rest are additions or removals."""
    names = list(dict.fromkeys(_item_name(item) for item in (*before, *after)))
    changes: list[TrustChange] = []
    for n in names:
        old = [i for i in before if _item_name(i) == n]
        new = [i for i in after if _item_name(i) == n]
        unmatched_old: list[TrustItem] = []
        for item in old:
            match = next((j for j in new if _item_key(j) == _item_key(item)), None)
            if match is None:
                unmatched_old.append(item)
                continue
            new.remove(match)
            if match.window != item.window:
                changes.append(TrustChange(ChangeKind.WINDOW_CHANGED, section, n, item, match))
        for item in unmatched_old:
            if new:
                changes.append(TrustChange(ChangeKind.KEY_CHANGED, section, n, item, new.pop(0)))
            else:
                changes.append(TrustChange(ChangeKind.REMOVED, section, n, item, None))
        changes.extend(TrustChange(ChangeKind.ADDED, section, n, None, item) for item in new)
    return changes


def diff(before: TrustSnapshot, after: TrustSnapshot) -> list[TrustChange]:
    """Every addition, removal, key change and validity-window change from `before` to
    `after`, section by section in file order; empty when they say the same.

    A log is named by its base URL, an authority by its URI, a service by its URL. A Rekor log
    whose kind changed (v1 <-> v2) counts as a key change.
    """
    changes: list[TrustChange] = []
    for section, ct in (("tlogs", False), ("ctlogs", True)):
        changes += _pair(
            section,
            [log for log in before.logs if (log.kind is LogKind.CT) == ct],
            [log for log in after.logs if (log.kind is LogKind.CT) == ct],
        )
    for section, kind in (("certificateAuthorities", "ca"), ("timestampAuthorities", "tsa")):
        changes += _pair(
            section,
            [a for a in before.authorities if a.kind == kind],
            [a for a in after.authorities if a.kind == kind],
        )
    for section, kind in _SERVICE_KEYS:
        changes += _pair(
            section,
            [s for s in before.services if s.kind == kind],
            [s for s in after.services if s.kind == kind],
        )
    return changes
