"""monitor.config.discovered: Sigstore's real trusted roots become monitored logs; overrides,
exclusions, key rotations, ended windows, new shards, names; hostile snapshots never raise."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config.discovered import (
    EXCLUDED,
    Discovery,
    ct_log_type,
    discover,
    discovered_log_name,
    effective_logs,
)
from monitor.config.settings import (
    DEFAULT_REQUESTS_PER_MINUTE,
    Config,
    LogType,
    check_log_url,
    load_config,
    parse_config,
)
from monitor.core.chain import CertificateTrust
from monitor.core.errors import ConfigError
from monitor.core.fields import NAME_PATTERN
from monitor.core.trust import LogKind, TrustedLogInfo, TrustSnapshot, Window, trust_snapshot
from tests.conftest import REAL_DATA

TRUST = REAL_DATA / "trust"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
V1 = "https://rekor.sigstore.dev"
V2 = "https://log2025-1.rekor.sigstore.dev"
CT = "https://ctfe.sigstore.dev/2022"
CT_TEST = "https://ctfe.sigstore.dev/test"


def snapshot(instance: str) -> TrustSnapshot:
    return trust_snapshot(
        (TRUST / instance / "trusted_root.json").read_bytes(),
        (TRUST / instance / "signing_config.v0.2.json").read_bytes(),
    )


PRODUCTION = snapshot("production")
STAGING = snapshot("staging")
REKOR_ONLY = dataclasses.replace(PRODUCTION, logs=PRODUCTION.rekor_logs())
"""Production without its CT logs, for the tests about Rekor logs."""


def config(text: str = "", instance: str = "production") -> Config:
    head = '[monitor]\ninterval = "2m"\nmax_stale = "1h"\n'
    return parse_config(
        f'{head}[[sigstore]]\ninstance = "{instance}"\n{text}',
        path=Path("/srv/mon/config.toml"),
        environ={},
    )


def run(
    cfg: Config,
    snap: TrustSnapshot = PRODUCTION,
    *,
    now: datetime = NOW,
    new_urls: frozenset[str] = frozenset(),
) -> Discovery:
    return discover(cfg, cfg.sigstore[0], snap, new_urls=new_urls, now=now)


def info(snap: TrustSnapshot, url: str) -> TrustedLogInfo:
    return next(log for log in snap.logs if log.base_url == url)


def pem_der(pem: str | None) -> bytes:
    assert pem is not None
    body = pem.split("-----BEGIN PUBLIC KEY-----\n")[1].split("-----END")[0]
    return base64.b64decode("".join(body.split()))


# --- the real trusted roots ----------------------------------------------------------------


def test_production() -> None:
    cfg = config()
    found = run(cfg)
    assert found.source == "production"
    assert [
        (log.name, log.type, log.url, log.origin, log.scan, log.start) for log in found.logs
    ] == [
        ("production-rekor-sigstore-dev", LogType.REKOR_V1, V1, None, False, None),
        (
            "production-log2025-1-rekor-sigstore-dev",
            LogType.TILES,
            V2,
            "log2025-1.rekor.sigstore.dev",  # from the trust root
            True,
            None,
        ),
        # Fulcio's CT logs (RFC 6962: a path under ctfe.sigstore.dev), polled, not scanned.
        ("production-ctfe-sigstore-dev-test", LogType.CT, CT_TEST, None, False, None),
        ("production-ctfe-sigstore-dev-2022", LogType.CT, CT, None, False, None),
    ]
    assert found.skipped == ()
    assert found.unverifiable == ()
    cas = [c for a in PRODUCTION.authorities if a.kind == "ca" for c in a.chain]
    # The /test log's window ended in 2022: kept at its final STH, like an ended shard.
    ended = {CT_TEST: datetime(2022, 10, 31, 23, 59, 59, 999000, tzinfo=UTC)}
    for log in found.logs:
        assert log.source == "production"
        assert log.valid_until == ended.get(log.url)
        assert log.trust_root is None and log.public_key_file is None
        assert pem_der(log.public_key_pem) == info(PRODUCTION, log.url).key
        assert (log.interval, log.max_stale) == (timedelta(minutes=2), timedelta(hours=1))
        assert log.requests_per_minute == DEFAULT_REQUESTS_PER_MINUTE[log.type]
        assert log.allow_insecure_http is False
        assert log.views == () and log.witnesses == ()
        assert log.fulcio_roots_pem is not None
        # Every Fulcio CA certificate, each once: certificates chain to the trust root's CAs.
        assert log.fulcio_roots_pem.count(b"BEGIN CERTIFICATE") == len(set(cas)) == 3
        CertificateTrust.from_pem_bundle(log.fulcio_roots_pem)
    assert effective_logs(cfg, [found]) == found.logs


def test_staging_shards() -> None:
    found = run(config(instance="staging"), STAGING)
    shards = {log.url: log for log in found.logs if log.type is LogType.TILES}
    assert [log.url for log in found.logs if not log.type.is_ct] == [
        "https://rekor.sigstage.dev",
        "https://log2025-alpha1.rekor.sigstage.dev",
        "https://log2025-alpha2.rekor.sigstage.dev",
        "https://log2025-alpha3.rekor.sigstage.dev",
    ]
    ended = {
        "https://log2025-alpha1.rekor.sigstage.dev": datetime(2025, 9, 4, tzinfo=UTC),
        "https://log2025-alpha2.rekor.sigstage.dev": datetime(2025, 9, 28, tzinfo=UTC),
    }
    for url, log in shards.items():
        assert log.origin == url.removeprefix("https://")
        # An ended shard is kept at its final checkpoint: polled, never scanned.
        assert log.valid_until == ended.get(url)
        assert log.scan is (url not in ended)
    assert found.skipped == ()
    cts = {log.url: (log.type, log.scan, log.valid_until) for log in found.logs if log.type.is_ct}
    assert cts == {
        "https://ctfe.sigstage.dev/2022": (
            LogType.CT,
            False,
            datetime(2022, 7, 31, tzinfo=UTC),
        ),
        "https://ctfe.sigstage.dev/2022-2": (LogType.CT, False, None),
        # A host of its own: the static-ct-api log (TesseraCT) of 2026.
        "https://log2026-1.ctfe.sigstage.dev": (LogType.STATIC_CT, False, None),
    }
    # The /test CT log signs with an RSA key: not an STH key the monitor can verify.
    ((rsa,),) = [found.unverifiable]
    assert rsa.base_url == "https://ctfe.sigstage.dev/test" and rsa.kind is LogKind.CT
    assert rsa.verifier_problem is not None and "ECDSA P-256" in rsa.verifier_problem


def test_staging_before_the_shards_ended() -> None:
    found = run(config(instance="staging"), STAGING, now=datetime(2025, 9, 1, tzinfo=UTC))
    assert [log.scan for log in found.logs] == [False, True, True, True, False, False, False]


# --- overrides and exclusions --------------------------------------------------------------


def test_a_log_with_the_same_url_overrides() -> None:
    cfg = config(
        '[[log]]\nname = "mine"\ntype = "tiles"\nurl = "https://LOG2025-1.rekor.sigstore.dev/"\n'
        'trust_root = "production"\nwitness_quorum = 0\n'
    )
    found = run(cfg, REKOR_ONLY)
    assert [log.url for log in found.logs] == [V1]
    assert (V2, 'overridden by [[log]] "mine"') in found.skipped
    assert [log.name for log in effective_logs(cfg, [found])] == [
        "mine",
        "production-rekor-sigstore-dev",
    ]


def test_exclude() -> None:
    cfg = config('exclude = ["HTTPS://Rekor.sigstore.dev/"]\n')
    found = run(cfg, REKOR_ONLY)
    assert [log.url for log in found.logs] == [V2]
    assert (V1, EXCLUDED) in found.skipped


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://rekor.example", 'https is required for "rekor.example"'),
        ("https://user:pw@rekor.example", "credentials (user:password@) are not allowed"),
        ("https://rekor.example/?q=1", "a query (?...) or fragment"),
        ("https://[::1", "not a valid URL"),
        ("https://rekor.example:99999", "invalid port"),
        ("https://" + "a" * 2100, "too long"),
    ],
)
def test_unusable_urls_are_skipped(url: str, why: str) -> None:
    snap = dataclasses.replace(
        PRODUCTION, logs=(dataclasses.replace(info(PRODUCTION, V1), base_url=url),)
    )
    found = run(config(), snap)
    assert found.logs == ()
    ((skipped_url, reason),) = found.skipped
    assert skipped_url == url
    assert reason.startswith("trusted root: ") and why in reason, reason


def test_loopback_http_and_allow_insecure_http() -> None:
    v1 = info(PRODUCTION, V1)
    snap = dataclasses.replace(
        PRODUCTION,
        logs=(
            dataclasses.replace(v1, base_url="http://127.0.0.1:8080/rekor/"),
            dataclasses.replace(v1, base_url="http://rekor.example"),
        ),
    )
    assert [log.url for log in run(config(), snap).logs] == ["http://127.0.0.1:8080/rekor"]
    insecure = run(config("allow_insecure_http = true\n"), snap)
    assert [log.url for log in insecure.logs] == [
        "http://127.0.0.1:8080/rekor",
        "http://rekor.example",
    ]
    assert all(log.allow_insecure_http for log in insecure.logs)


def test_unverifiable_keys_are_reported_not_monitored() -> None:
    v2 = dataclasses.replace(
        info(PRODUCTION, V2), verifier=None, verifier_problem="unsupported key"
    )
    snap = dataclasses.replace(PRODUCTION, logs=(info(PRODUCTION, V1), v2))
    found = run(config(), snap)
    assert [log.url for log in found.logs] == [V1]
    assert found.unverifiable == (v2,)


# --- key rotation, windows, new shards -----------------------------------------------------


def _at(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("windows", "now", "picked"),
    [
        # (old, new): the open one wins
        ((Window(_at(2021), _at(2024)), Window(_at(2024), None)), _at(2025), 1),
        ((Window(_at(2021), _at(2024)), Window(_at(2024), None)), _at(2023), 0),
        # both open: the later start
        ((Window(_at(2021), None), Window(_at(2023), None)), _at(2025), 1),
        ((Window(_at(2023), None), Window(_at(2021), None)), _at(2025), 0),
        ((Window(None, None), Window(_at(2021), None)), _at(2025), 1),
        # none open: the one that ends last
        ((Window(_at(2021), _at(2023)), Window(_at(2021), _at(2024))), _at(2025), 1),
        ((Window(_at(2021), _at(2024)), Window(_at(2021), _at(2023))), _at(2025), 0),
        # not started yet and ended: the open end is the latest
        ((Window(_at(2020), _at(2021)), Window(_at(2030), None)), _at(2025), 1),
        # equal: file order
        ((Window(_at(2021), None), Window(_at(2021), None)), _at(2025), 0),
    ],
)
def test_rotation_picks_one_key_per_url(
    windows: tuple[Window, Window], now: datetime, picked: int
) -> None:
    v1 = info(PRODUCTION, V1)
    other = info(PRODUCTION, V2)
    entries = (
        dataclasses.replace(v1, window=windows[0]),
        dataclasses.replace(v1, key=other.key, key_details="X", window=windows[1]),
    )
    snap = dataclasses.replace(PRODUCTION, logs=entries)
    (log,) = run(config(), snap, now=now).logs
    assert pem_der(log.public_key_pem) == entries[picked].key
    assert log.valid_until == entries[picked].window.end


def test_an_ended_window_freezes_the_shard() -> None:
    v2 = info(PRODUCTION, V2)
    end = _at(2025)
    snap = dataclasses.replace(
        PRODUCTION, logs=(dataclasses.replace(v2, window=Window(_at(2024), end)),)
    )
    for now, scan in ((end - timedelta(seconds=1), True), (end, False), (_at(2026), False)):
        (log,) = run(config(), snap, now=now, new_urls=frozenset({V2})).logs
        assert (log.valid_until, log.scan) == (end, scan)
        assert log.start == (0 if scan else None)


def test_new_shards_are_scanned_from_0() -> None:
    new = run(config(), REKOR_ONLY, new_urls=frozenset({V2, V1}))
    assert [(log.url, log.start) for log in new.logs] == [(V1, None), (V2, 0)]  # v1: searched
    assert [log.start for log in run(config(), REKOR_ONLY).logs] == [None, None]
    unscanned = run(config("scan = false\n"), REKOR_ONLY, new_urls=frozenset({V2}))
    assert [(log.scan, log.start) for log in unscanned.logs] == [(False, None), (False, None)]


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "url", "name"),
    [
        ("production", V1, "production-rekor-sigstore-dev"),
        ("production", V2, "production-log2025-1-rekor-sigstore-dev"),
        ("sb", "http://127.0.0.1:8080/tiles", "sb-127-0-0-1-8080-tiles"),
        ("sb", "http://127.0.0.1:8081/tiles", "sb-127-0-0-1-8081-tiles"),
        ("my_src", "https://Log.Example/a__b/", "my-src-log-example-a-b"),
        ("x", "http://[::1]:9/", "x-1-9"),
    ],
)
def test_names(source: str, url: str, name: str) -> None:
    assert discovered_log_name(source, url) == name


def test_long_names_end_in_a_hash_of_the_url() -> None:
    a = "https://log2030-1.rekor.sigstore.dev/a-very-long-path/that-goes/on-and-on/shard-1"
    b = a[:-1] + "2"
    name_a, name_b = discovered_log_name("production", a), discovered_log_name("production", b)
    assert len(name_a) == len(name_b) == 63
    assert name_a[:54] == name_b[:54] and name_a != name_b
    assert name_a == discovered_log_name("production", a)
    assert NAME_PATTERN.fullmatch(name_a)


@given(st.from_regex(NAME_PATTERN, fullmatch=True), st.text(max_size=300))
def test_every_name_is_a_valid_log_name(source: str, url: str) -> None:
    name = discovered_log_name(source, url)
    assert NAME_PATTERN.fullmatch(name), name
    assert name == discovered_log_name(source, url)


def test_name_collisions_never_share_a_name() -> None:
    v1 = info(PRODUCTION, V1)
    snap = dataclasses.replace(
        PRODUCTION,
        logs=(
            dataclasses.replace(v1, base_url="https://a-b.example"),
            dataclasses.replace(v1, base_url="https://a.b-example"),  # same name
        ),
    )
    cfg = config()
    found = run(cfg, snap)
    assert [log.url for log in found.logs] == ["https://a-b.example"]
    assert found.skipped == (
        (
            "https://a.b-example",
            "its name 'production-a-b-example' is taken by the trusted root's log "
            "https://a-b.example",
        ),
    )
    # A [[log]] named like a discovered log keeps its name; the discovered one is skipped.
    taken = config(
        '[[log]]\nname = "production-rekor-sigstore-dev"\ntype = "rekor-v1"\n'
        'url = "https://rekor.internal.example"\ntrust_root = "production"\n'
    )
    found = run(taken, REKOR_ONLY)
    assert [log.url for log in found.logs] == [V2]
    assert (V1, "its name 'production-rekor-sigstore-dev' is taken by [[log]] "
            "'production-rekor-sigstore-dev'") in found.skipped  # fmt: skip


def test_effective_logs_never_duplicates() -> None:
    cfg = config('[[log]]\nname = "rekor"\ntype = "rekor-v1"\nurl = "https://x.example"\n'
                 'trust_root = "production"\n')  # fmt: skip
    found = run(cfg, REKOR_ONLY)
    clash = dataclasses.replace(found.logs[0], name="rekor", url="https://y.example")
    again = Discovery("other", (found.logs[1], clash), (), ())
    logs = effective_logs(cfg, [found, again])
    assert [log.name for log in logs] == [
        "rekor",
        "production-rekor-sigstore-dev",
        "production-log2025-1-rekor-sigstore-dev",
    ]


# --- hostile snapshots ---------------------------------------------------------------------

_REAL_LOGS = PRODUCTION.logs + STAGING.logs
_TIMES = st.none() | st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
_URLS = st.one_of(
    st.sampled_from([log.base_url for log in _REAL_LOGS]),
    st.builds(
        lambda scheme, host, rest: f"{scheme}{host}{rest}",
        st.sampled_from(["https://", "http://", "HTTP://", "ftp://", "", "https://u:p@"]),
        st.sampled_from(
            ["rekor.sigstore.dev", "127.0.0.1", "[::1]", "[::1", "a.b-c", "a-b.c", "", "x" * 70]
        ),
        st.text(max_size=40),
    ),
    st.text(max_size=100),
)


@st.composite
def _mutated(draw: st.DrawFn) -> TrustedLogInfo:
    log = draw(st.sampled_from(_REAL_LOGS))
    donor = draw(st.sampled_from(_REAL_LOGS))
    changes: dict[str, object] = {}
    if draw(st.booleans()):
        changes["base_url"] = draw(_URLS)
    if draw(st.booleans()):
        changes["kind"] = draw(st.sampled_from(LogKind))
    if draw(st.booleans()):
        changes["window"] = Window(draw(_TIMES), draw(_TIMES))
    if draw(st.booleans()):
        changes["key"] = donor.key
    if draw(st.booleans()):
        changes["verifier"] = draw(st.sampled_from([None, donor.verifier]))
    if draw(st.booleans()):
        changes["origin"] = draw(st.none() | st.text(max_size=50))
    return dataclasses.replace(log, **changes)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    logs=st.lists(_mutated(), max_size=12),
    authorities=st.lists(st.sampled_from(PRODUCTION.authorities + STAGING.authorities), max_size=4),
    now=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    scan=st.booleans(),
    scan_ct=st.booleans(),
    insecure=st.booleans(),
    new=st.lists(_URLS, max_size=3),
    excluded=st.booleans(),
)
def test_discover_never_raises_on_mutated_snapshots(
    logs: list[TrustedLogInfo],
    authorities: list[object],
    now: datetime,
    scan: bool,
    scan_ct: bool,
    insecure: bool,
    new: list[str],
    excluded: bool,
) -> None:
    keys = f"scan = {'true' if scan else 'false'}\n"
    keys += f"scan_ct = {'true' if scan_ct else 'false'}\n"
    keys += f"allow_insecure_http = {'true' if insecure else 'false'}\n"
    if excluded:
        keys += f'exclude = ["{V2}"]\n'
    cfg = config(keys)
    snap = TrustSnapshot(logs=tuple(logs), authorities=tuple(authorities))  # type: ignore[arg-type]
    found = discover(cfg, cfg.sigstore[0], snap, new_urls=frozenset(new), now=now)
    names = [log.name for log in found.logs]
    assert len(set(names)) == len(names)
    assert len({log.url for log in found.logs}) == len(found.logs)
    for log in found.logs:
        assert NAME_PATTERN.fullmatch(log.name)
        assert check_log_url(log.url, "x", allow_insecure_http=insecure) == log.url
        assert log.source == "production"
        assert log.start is None or (log.scan and log.type is not LogType.REKOR_V1)
        assert log.scan is False or (scan_ct if log.type.is_ct else scan)
        assert pem_der(log.public_key_pem)
    # Every entry is accounted for: monitored, skipped with a reason, or unverifiable.
    accounted = {u for u, _ in found.skipped} | {log.url for log in found.logs}
    accounted |= {
        check_log_url(u.base_url, "x", allow_insecure_http=insecure) for u in found.unverifiable
    }
    for entry in logs:
        try:
            url = check_log_url(entry.base_url, "x", allow_insecure_http=insecure)
        except ConfigError:  # skipped under the URL as the trust root spells it
            url = entry.base_url
        assert url in accounted, entry.base_url
    assert effective_logs(cfg, [found, found]) == found.logs


# --- CT logs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "log_type"),
    [
        ("https://ctfe.sigstore.dev/2022", LogType.CT),
        ("https://ctfe.sigstore.dev/test", LogType.CT),
        ("https://ctfe.sigstage.dev/2022-2", LogType.CT),
        ("https://log2026-1.ctfe.sigstage.dev", LogType.STATIC_CT),
        ("https://log2026-1.ctfe.sigstage.dev/", LogType.STATIC_CT),
        ("https://[::1", LogType.CT),  # not a URL: never raises
    ],
)
def test_ct_log_type_from_the_url(url: str, log_type: LogType) -> None:
    assert ct_log_type(url) is log_type


def test_scan_ct_scans_the_open_ct_logs_only() -> None:
    found = run(config("scan_ct = true\n"), new_urls=frozenset({CT}))
    scans = {log.url: (log.scan, log.start) for log in found.logs if log.type.is_ct}
    # New since the previous snapshot: from entry 0; the ended /test log is never scanned.
    assert scans == {CT_TEST: (False, None), CT: (True, 0)}
    tiles = next(log for log in found.logs if log.type is LogType.TILES)
    assert tiles.scan is True
    # scan = false leaves the shards alone, not the CT logs.
    found = run(config("scan = false\nscan_ct = true\n"))
    assert {log.url: log.scan for log in found.logs} == {
        V1: False,
        V2: False,
        CT_TEST: False,
        CT: True,
    }


def test_a_ct_log_with_an_unsupported_key_is_unverifiable() -> None:
    ct = info(PRODUCTION, CT)
    rsa = info(STAGING, "https://ctfe.sigstage.dev/test")
    p384 = dataclasses.replace(ct, base_url="https://ct.example/p384", key=_P384_SPKI)
    snap = dataclasses.replace(
        PRODUCTION, logs=(dataclasses.replace(ct, key=rsa.key), p384, info(PRODUCTION, V1))
    )
    found = run(config(), snap)
    assert [log.url for log in found.logs] == [V1]
    assert [(u.base_url, u.kind) for u in found.unverifiable] == [
        (CT, LogKind.CT),
        ("https://ct.example/p384", LogKind.CT),
    ]
    for u in found.unverifiable:
        assert u.verifier_problem is not None and "ECDSA P-256" in u.verifier_problem


def test_a_ct_log_is_overridden_and_excluded_like_any() -> None:
    cfg = config(
        f'exclude = ["{CT_TEST}"]\n[[log]]\nname = "fulcio-ct"\ntype = "ct"\nurl = "{CT}"\n'
        'trust_root = "production"\n'
    )
    found = run(cfg)
    assert (CT, 'overridden by [[log]] "fulcio-ct"') in found.skipped
    assert (CT_TEST, EXCLUDED) in found.skipped
    assert not any(log.type.is_ct for log in found.logs)


# A real P-384 SubjectPublicKeyInfo: a valid key, but not an STH key.
_P384_SPKI = base64.b64decode(
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEnw7+rhgKdYCBMseoGxwuTmI3EvY5vgn2LcbpjYqsUnd0rdFoagyuuUS7"
    "ndgTGpeoYPmJBoMeMjRegp6eK4ghDfBUuzAyuQaLUVwhEairPOdK8o20VQiqv/Rurk0sj+7r"
)


def test_the_shipped_config_scans_fulcios_ct_log_forward_from_its_latest_tree_head() -> None:
    """Issue 15: the shipped config (and its identical example) monitors Fulcio's CT log, scanned
    from the first verified STH (not its history), like a shard that was there at the start."""
    shipped = load_config(Path(__file__).parents[2] / "config.toml", environ={})
    (ct,) = [log for log in run(shipped).logs if log.url == CT]
    assert (ct.type, ct.scan, ct.start) == (LogType.CT, True, None)
