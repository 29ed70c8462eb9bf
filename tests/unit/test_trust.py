"""monitor.core.trust: Sigstore's real trusted roots and signing configs, diffs, hostile input."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.errors import ParseError, TrustRootError
from monitor.core.trust import (
    MAX_ITEMS,
    MAX_TRUST_FILE_BYTES,
    ChangeKind,
    LogKind,
    TrustSnapshot,
    diff,
    parse_signing_config,
    parse_time,
    parse_trusted_root,
    trust_snapshot,
)
from tests.conftest import REAL_DATA, real_files

TRUST = REAL_DATA / "trust"
ROOTS = real_files("trust/*/trusted_root.json", at_least=2)
CONFIGS = real_files("trust/*/signing_config.v0.2.json", at_least=2)


def _read(instance: str, name: str) -> bytes:
    return (TRUST / instance / name).read_bytes()


def _snapshot(instance: str) -> TrustSnapshot:
    return trust_snapshot(
        _read(instance, "trusted_root.json"), _read(instance, "signing_config.v0.2.json")
    )


def _root_json(instance: str = "production") -> dict[str, Any]:
    value: dict[str, Any] = json.loads(_read(instance, "trusted_root.json"))
    return value


def _dump(value: object) -> bytes:
    return json.dumps(value).encode()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the real files ---------------------------------------------------------------------------


def test_production_logs() -> None:
    snap = _snapshot("production")
    by_url = {log.base_url: log for log in snap.logs}
    assert list(by_url) == [
        "https://rekor.sigstore.dev",
        "https://log2025-1.rekor.sigstore.dev",
        "https://ctfe.sigstore.dev/test",
        "https://ctfe.sigstore.dev/2022",
    ]

    v1 = by_url["https://rekor.sigstore.dev"]
    pem = (REAL_DATA / "rekor-production" / "rekor_v1_prod.pub.pem").read_bytes()
    der = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert v1.kind is LogKind.REKOR_V1
    assert v1.key == der
    assert v1.key_details == "PKIX_ECDSA_P256_SHA_256"
    assert v1.origin is None
    assert v1.verifier is not None and v1.verifier.key_hint.hex() == "c0d23d6a"
    assert v1.key_id[:4].hex() == "c0d23d6a"
    assert v1.window.start == _utc("2021-01-12T11:53:27") and v1.window.end is None

    shard = by_url["https://log2025-1.rekor.sigstore.dev"]
    assert shard.kind is LogKind.REKOR_V2
    assert shard.origin == "log2025-1.rekor.sigstore.dev"
    assert shard.verifier is not None and shard.verifier.key_hint.hex() == "cf119915"
    assert shard.key_id[:4] == shard.verifier.key_hint
    assert shard.window.start == _utc("2025-09-23T00:00:00") and shard.window.end is None

    test_ct = by_url["https://ctfe.sigstore.dev/test"]
    assert test_ct.kind is LogKind.CT and test_ct.verifier is None and test_ct.origin is None
    assert test_ct.window.start == _utc("2021-03-14T00:00:00")
    assert test_ct.window.end == _utc("2022-10-31T23:59:59.999000")
    ct2022 = by_url["https://ctfe.sigstore.dev/2022"]
    assert ct2022.kind is LogKind.CT and ct2022.window.end is None
    assert ct2022.window.start == _utc("2022-10-20T00:00:00")


def test_production_authorities_and_services() -> None:
    snap = _snapshot("production")
    cas = [a for a in snap.authorities if a.kind == "ca"]
    tsas = [a for a in snap.authorities if a.kind == "tsa"]
    assert [(a.uri, a.subject, len(a.chain)) for a in cas] == [
        ("https://fulcio.sigstore.dev", "O=sigstore.dev, CN=sigstore", 1),
        ("https://fulcio.sigstore.dev", "O=sigstore.dev, CN=sigstore", 2),
    ]
    assert cas[0].window.end == _utc("2022-12-31T23:59:59.999000")
    assert cas[1].window.end is None
    assert [(a.uri, a.subject) for a in tsas] == [
        (
            "https://timestamp.sigstore.dev/api/v1/timestamp",
            "O=sigstore.dev, CN=sigstore-tsa-selfsigned",
        )
    ]
    assert [(s.kind, s.url, s.major_api_version, s.operator) for s in snap.services] == [
        ("rekor", "https://rekor.sigstore.dev", 1, "sigstore.dev"),
        ("ca", "https://fulcio.sigstore.dev", 1, "sigstore.dev"),
        ("tsa", "https://timestamp.sigstore.dev/api/v1/timestamp", 1, "sigstore.dev"),
        ("oidc", "https://oauth2.sigstore.dev/auth", 1, "sigstore.dev"),
    ]


def test_staging_shards_and_ct_logs() -> None:
    snap = _snapshot("staging")
    rekor = {log.base_url: log for log in snap.rekor_logs()}
    assert {u: log.kind for u, log in rekor.items()} == {
        "https://rekor.sigstage.dev": LogKind.REKOR_V1,
        "https://log2025-alpha1.rekor.sigstage.dev": LogKind.REKOR_V2,
        "https://log2025-alpha2.rekor.sigstage.dev": LogKind.REKOR_V2,
        "https://log2025-alpha3.rekor.sigstage.dev": LogKind.REKOR_V2,
    }
    alpha1 = rekor["https://log2025-alpha1.rekor.sigstage.dev"]
    assert alpha1.window.end == _utc("2025-09-04T00:00:00")
    assert rekor["https://log2025-alpha3.rekor.sigstage.dev"].window.end is None
    for log in rekor.values():
        assert log.verifier is not None and log.verifier.key_hint == log.key_id[:4]
    ct = {log.base_url: log for log in snap.logs if log.kind is LogKind.CT}
    assert list(ct) == [
        "https://ctfe.sigstage.dev/test",
        "https://ctfe.sigstage.dev/2022",
        "https://ctfe.sigstage.dev/2022-2",
        "https://log2026-1.ctfe.sigstage.dev",
    ]
    # The staging /test CT log's key is PKCS#1 RSA: parsed, listed, no note verifier needed.
    assert ct["https://ctfe.sigstage.dev/test"].key_details == "PKCS1_RSA_PKCS1V5"
    assert ct["https://ctfe.sigstage.dev/test"].window.end == _utc("2022-07-31T00:00:00")
    assert next(s.url for s in snap.services if s.kind == "rekor") == (
        "https://log2025-alpha3.rekor.sigstage.dev"
    )


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.parent.name)
def test_kind_without_signing_config_follows_key_type(root: Path) -> None:
    alone = parse_trusted_root(root.read_bytes())
    full = _snapshot(root.parent.name)
    assert [(log.base_url, log.kind) for log in alone.logs] == [
        (log.base_url, log.kind) for log in full.logs
    ]
    assert alone.services == ()


def test_signing_config_version_overrides_key_type() -> None:
    # An Ed25519 log that the signing config calls v1 is read as v1, as trust_roots does.
    config = json.loads(_read("production", "signing_config.v0.2.json"))
    config["rekorTlogUrls"].append(
        {"url": "https://log2025-1.rekor.sigstore.dev", "majorApiVersion": 1, "operator": "x"}
    )
    snap = trust_snapshot(_read("production", "trusted_root.json"), _dump(config))
    shard = next(log for log in snap.logs if "log2025-1" in log.base_url)
    assert shard.kind is LogKind.REKOR_V1 and shard.origin is None


def test_unsupported_rekor_key_is_reported_not_fatal() -> None:
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    root = _root_json()
    root["tlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(rsa_der).decode()
    root["tlogs"][0]["publicKey"]["keyDetails"] = "PKIX_RSA_PKCS1V15_2048_SHA256"
    log = parse_trusted_root(_dump(root)).logs[0]
    assert log.verifier is None
    assert log.verifier_problem is not None and "ECDSA P-256 or Ed25519" in log.verifier_problem


# --- diff -------------------------------------------------------------------------------------


def _new_key(kind: str) -> str:
    key = (
        ed25519.Ed25519PrivateKey.generate().public_key()
        if kind == "ed25519"
        else ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _add_shard(root: dict[str, Any]) -> None:
    shard = copy.deepcopy(root["tlogs"][1])
    shard["baseUrl"] = "https://log2026-1.rekor.sigstore.dev"
    shard["publicKey"]["rawBytes"] = _new_key("ed25519")
    shard["logId"]["keyId"] = base64.b64encode(b"\x01" * 32).decode()
    root["tlogs"].append(shard)


def _remove_ct_test(root: dict[str, Any]) -> None:
    del root["ctlogs"][0]


def _rotate_v1_key(root: dict[str, Any]) -> None:
    root["tlogs"][0]["publicKey"]["rawBytes"] = _new_key("p256")


def _end_shard(root: dict[str, Any]) -> None:
    root["tlogs"][1]["publicKey"]["validFor"]["end"] = "2026-06-01T00:00:00Z"


def _end_tsa(root: dict[str, Any]) -> None:
    root["timestampAuthorities"][0]["validFor"]["end"] = "2026-06-01T00:00:00Z"


def _drop_old_ca(root: dict[str, Any]) -> None:
    del root["certificateAuthorities"][0]


def _swap_ca_chain(root: dict[str, Any]) -> None:
    chains = [ca["certChain"] for ca in root["certificateAuthorities"]]
    root["certificateAuthorities"][0]["certChain"] = chains[1]
    root["certificateAuthorities"][1]["certChain"] = chains[0]


def _reformat_only(root: dict[str, Any]) -> None:
    # Same content, different bytes: a trailing slash and an equal time in another form.
    root["tlogs"][0]["baseUrl"] += "/"
    root["tlogs"][0]["publicKey"]["validFor"]["start"] = "2021-01-12T11:53:27.000Z"


DIFFS: list[tuple[str, Callable[[dict[str, Any]], None], list[tuple[ChangeKind, str, str]]]] = [
    ("nothing", lambda root: None, []),
    ("reformatted", _reformat_only, []),
    (
        "shard added",
        _add_shard,
        [(ChangeKind.ADDED, "tlogs", "https://log2026-1.rekor.sigstore.dev")],
    ),
    (
        "ct removed",
        _remove_ct_test,
        [(ChangeKind.REMOVED, "ctlogs", "https://ctfe.sigstore.dev/test")],
    ),
    (
        "key rotated",
        _rotate_v1_key,
        [(ChangeKind.KEY_CHANGED, "tlogs", "https://rekor.sigstore.dev")],
    ),
    (
        "shard window ends",
        _end_shard,
        [(ChangeKind.WINDOW_CHANGED, "tlogs", "https://log2025-1.rekor.sigstore.dev")],
    ),
    (
        "tsa window ends",
        _end_tsa,
        [
            (
                ChangeKind.WINDOW_CHANGED,
                "timestampAuthorities",
                "https://timestamp.sigstore.dev/api/v1/timestamp",
            )
        ],
    ),
    (
        "old ca removed",
        _drop_old_ca,
        [(ChangeKind.REMOVED, "certificateAuthorities", "https://fulcio.sigstore.dev")],
    ),
    (
        # Two CAs under one URI swapped chains: each chain keeps its identity, so only the
        # windows moved.
        "ca chains swapped",
        _swap_ca_chain,
        [
            (ChangeKind.WINDOW_CHANGED, "certificateAuthorities", "https://fulcio.sigstore.dev"),
            (ChangeKind.WINDOW_CHANGED, "certificateAuthorities", "https://fulcio.sigstore.dev"),
        ],
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [d[1:] for d in DIFFS], ids=[d[0] for d in DIFFS])
def test_diff(
    mutate: Callable[[dict[str, Any]], None], expected: list[tuple[ChangeKind, str, str]]
) -> None:
    before = parse_trusted_root(_read("production", "trusted_root.json"))
    root = _root_json()
    mutate(root)
    after = parse_trusted_root(_dump(root))
    changes = diff(before, after)
    assert [(c.kind, c.section, c.name) for c in changes] == expected
    for change in changes:
        evidence = change.evidence()
        json.dumps(evidence)  # JSON-ready for an alert's evidence
        assert (evidence["before"] is None) == (change.kind is ChangeKind.ADDED)
        assert (evidence["after"] is None) == (change.kind is ChangeKind.REMOVED)
    # The reverse diff names the same changes with the sides swapped (order may differ).
    assert sorted(diff(after, before), key=repr) == sorted(
        [
            type(c)(
                {ChangeKind.ADDED: ChangeKind.REMOVED, ChangeKind.REMOVED: ChangeKind.ADDED}.get(
                    c.kind, c.kind
                ),
                c.section,
                c.name,
                c.after,
                c.before,
            )
            for c in changes
        ],
        key=repr,
    )


def test_diff_key_change_carries_both_keys() -> None:
    before = parse_trusted_root(_read("production", "trusted_root.json"))
    root = _root_json()
    _rotate_v1_key(root)
    (change,) = diff(before, parse_trusted_root(_dump(root)))
    evidence = change.evidence()
    assert isinstance(evidence["before"], dict) and isinstance(evidence["after"], dict)
    assert evidence["before"]["key_der_hex"] == before.logs[0].key.hex()
    assert evidence["after"]["key_der_hex"] != evidence["before"]["key_der_hex"]


def test_diff_signing_config_services() -> None:
    before = _snapshot("staging")
    config = json.loads(_read("staging", "signing_config.v0.2.json"))
    config["rekorTlogUrls"][0]["validFor"]["end"] = "2026-01-01T00:00:00Z"
    del config["tsaUrls"][0]
    after = trust_snapshot(_read("staging", "trusted_root.json"), _dump(config))
    assert [(c.kind, c.section, c.name) for c in diff(before, after)] == [
        (ChangeKind.WINDOW_CHANGED, "rekorTlogUrls", "https://log2025-alpha3.rekor.sigstage.dev"),
        (ChangeKind.REMOVED, "tsaUrls", "https://timestamp.sigstage.dev/api/v1/timestamp"),
    ]


def test_diff_production_to_staging_names_everything() -> None:
    changes = diff(_snapshot("production"), _snapshot("staging"))
    added = {c.name for c in changes if c.kind is ChangeKind.ADDED}
    removed = {c.name for c in changes if c.kind is ChangeKind.REMOVED}
    assert "https://log2025-alpha3.rekor.sigstage.dev" in added
    assert "https://log2025-1.rekor.sigstore.dev" in removed
    assert not added & removed


# --- hostile input ----------------------------------------------------------------------------


def _with(path: list[str | int], value: object) -> bytes:
    root = _root_json()
    node: Any = root
    for step in path[:-1]:
        node = node[step]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return _dump(root)


_DELETE = object()
_KEY: list[str | int] = ["tlogs", 0, "publicKey"]

HOSTILE_ROOTS: list[tuple[str, bytes, str]] = [
    ("too big", b" " * (MAX_TRUST_FILE_BYTES + 1), "at most"),
    ("not json", b"{", "expected JSON"),
    ("not utf-8", b"\xff\xfe{}", "expected JSON"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "expected JSON"),
    ("NaN", b'{"mediaType": NaN}', "expected JSON"),
    ("array", b"[]", "expected an object"),
    ("no media type", _with(["mediaType"], _DELETE), "mediaType"),
    ("wrong media type", _with(["mediaType"], "application/json"), "mediaType"),
    ("tlogs not array", _with(["tlogs"], {}), "tlogs"),
    ("too many logs", _with(["tlogs"], [{}] * (MAX_ITEMS + 1)), "at most"),
    ("no baseUrl", _with(["tlogs", 0, "baseUrl"], _DELETE), "baseUrl"),
    ("ftp url", _with(["tlogs", 0, "baseUrl"], "ftp://rekor.sigstore.dev"), "http(s) URL"),
    ("bad ipv6 url", _with(["tlogs", 0, "baseUrl"], "https://[::1"), "http(s) URL"),
    ("url control char", _with(["tlogs", 0, "baseUrl"], "https://a\n.dev"), "control"),
    ("key not base64", _with([*_KEY, "rawBytes"], "!!!"), "base64"),
    ("key empty", _with([*_KEY, "rawBytes"], ""), "non-empty"),
    ("key not DER", _with([*_KEY, "rawBytes"], "AAAA"), "DER public key"),
    ("key huge", _with([*_KEY, "rawBytes"], base64.b64encode(b"0" * 5000).decode()), "at most"),
    ("keyId missing", _with(["tlogs", 0, "logId"], {}), "keyId"),
    ("keyId huge", _with(["tlogs", 0, "logId", "keyId"], "QUFB" * 100), "at most"),
    ("date no zone", _with([*_KEY, "validFor", "start"], "2021-01-12T11:53:27"), "RFC 3339"),
    ("date only", _with([*_KEY, "validFor", "start"], "2021-01-12"), "RFC 3339"),
    ("month 13", _with([*_KEY, "validFor", "start"], "2021-13-12T11:53:27Z"), "RFC 3339"),
    ("leap second", _with([*_KEY, "validFor", "start"], "2016-12-31T23:59:60Z"), "RFC 3339"),
    ("year 0", _with([*_KEY, "validFor", "start"], "0000-01-01T00:00:00Z"), "RFC 3339"),
    ("unix time", _with([*_KEY, "validFor", "start"], 1610452407), "RFC 3339"),
    ("end before start", _with([*_KEY, "validFor", "end"], "2020-01-01T00:00:00Z"), "end after"),
    (
        "ca chain empty",
        _with(["certificateAuthorities", 0, "certChain", "certificates"], []),
        "1 to",
    ),
    (
        "ca cert not DER",
        _with(["certificateAuthorities", 0, "certChain", "certificates", 0, "rawBytes"], "AAAA"),
        "DER certificate",
    ),
    ("ca no uri", _with(["certificateAuthorities", 0, "uri"], _DELETE), "uri"),
    (
        "subject not object",
        _with(["timestampAuthorities", 0, "subject"], "CN=x"),
        "subject",
    ),
]


@pytest.mark.parametrize(
    ("data", "needle"), [h[1:] for h in HOSTILE_ROOTS], ids=[h[0] for h in HOSTILE_ROOTS]
)
def test_hostile_trusted_root(data: bytes, needle: str) -> None:
    with pytest.raises(TrustRootError, match=None) as caught:
        parse_trusted_root(data)
    assert needle in str(caught.value)
    assert isinstance(caught.value, ParseError)


def _config_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    config: dict[str, Any] = json.loads(_read("production", "signing_config.v0.2.json"))
    change(config)
    return _dump(config)


HOSTILE_CONFIGS: list[tuple[str, bytes, str]] = [
    (
        "v0.1 media type",
        _config_with(
            lambda c: c.update(mediaType="application/vnd.dev.sigstore.signingconfig.v0.1+json")
        ),
        "mediaType",
    ),
    (
        "version zero",
        _config_with(lambda c: c["rekorTlogUrls"][0].update(majorApiVersion=0)),
        "majorApiVersion",
    ),
    (
        "version huge",
        _config_with(lambda c: c["rekorTlogUrls"][0].update(majorApiVersion=2**70)),
        "majorApiVersion",
    ),
    (
        "version bool",
        _config_with(lambda c: c["rekorTlogUrls"][0].update(majorApiVersion=True)),
        "majorApiVersion",
    ),
    (
        "version float",
        _config_with(lambda c: c["rekorTlogUrls"][0].update(majorApiVersion=1.0)),
        "majorApiVersion",
    ),
    ("no url", _config_with(lambda c: c["caUrls"][0].pop("url")), "url"),
    ("operator number", _config_with(lambda c: c["tsaUrls"][0].update(operator=7)), "operator"),
    ("urls not array", _config_with(lambda c: c.update(rekorTlogUrls="x")), "rekorTlogUrls"),
]


@pytest.mark.parametrize(
    ("data", "needle"), [h[1:] for h in HOSTILE_CONFIGS], ids=[h[0] for h in HOSTILE_CONFIGS]
)
def test_hostile_signing_config(data: bytes, needle: str) -> None:
    with pytest.raises(TrustRootError) as caught:
        trust_snapshot(_read("production", "trusted_root.json"), data)
    assert needle in str(caught.value)


def test_signing_config_is_not_a_trusted_root() -> None:
    with pytest.raises(TrustRootError, match="mediaType"):
        parse_signing_config(_read("production", "trusted_root.json"))
    with pytest.raises(TrustRootError, match="mediaType"):
        parse_trusted_root(_read("production", "signing_config.v0.2.json"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-09-23T00:00:00Z", datetime(2025, 9, 23, tzinfo=UTC)),
        ("2025-09-23t00:00:00z", datetime(2025, 9, 23, tzinfo=UTC)),
        ("2022-12-31T23:59:59.999Z", datetime(2022, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        ("2022-12-31T23:59:59.123456789Z", datetime(2022, 12, 31, 23, 59, 59, 123456, tzinfo=UTC)),
        ("2025-09-23T02:00:00+02:00", datetime(2025, 9, 23, tzinfo=UTC)),
        ("2025-09-22T22:00:00-02:00", datetime(2025, 9, 23, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_rfc3339(text: str, expected: datetime) -> None:
    assert parse_time(text, "t") == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025-09-23 00:00:00Z",
        "2025-09-23T00:00:00",
        "2025-09-23T00:00Z",
        "2025-9-23T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-09-23T24:00:00Z",
        "2025-09-23T00:00:00.Z",
        "2025-09-23T00:00:00.1234567890Z",
        "2025-09-23T00:00:00+24:00",
        "9999-12-31T23:59:59-01:00",  # past datetime's range once in UTC
        "0001-01-01T00:00:00+01:00",
        "２０２５-09-23T00:00:00Z",  # non-ASCII digits
        " 2025-09-23T00:00:00Z",
        "",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(TrustRootError):
        parse_time(text, "t")


# --- properties: anything parses or raises TrustRootError -------------------------------------

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "2025-09-23T00:00:00Z",
            "https://x.dev",
            "MCowBQYDK2VwAyEAt8rlp1knGwjfbcXAYPYAkn0XiLz1x8O4t0YkEhie244=",
            "PKIX_ED25519",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _parse_or_error(root: bytes, config: bytes | None) -> None:
    try:
        snap = trust_snapshot(root, config)
    except TrustRootError:
        return
    diff(snap, snap)
    for change in diff(snap, TrustSnapshot((), (), ())):
        json.dumps(change.evidence())


_SEEDS = [json.loads(p.read_bytes()) for p in (*ROOTS, *CONFIGS)]
_PROPERTY = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@_PROPERTY
@given(st.data())
def test_mutated_real_files_parse_or_raise(data: st.DataObject) -> None:
    seed = copy.deepcopy(data.draw(st.sampled_from(_SEEDS)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(seed)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        node: Any = seed
        for step in path[:-1]:
            node = node[step]
        if data.draw(st.booleans()):
            del node[path[-1]]
        else:
            node[path[-1]] = data.draw(_JSON_VALUES)
    blob = _dump(seed)
    if "signingconfig" in str(seed.get("mediaType", "")):
        _parse_or_error(_read("staging", "trusted_root.json"), blob)
    else:
        _parse_or_error(blob, None)


@_PROPERTY
@given(_JSON_VALUES, st.binary(max_size=200))
def test_random_input_parses_or_raises(value: object, blob: bytes) -> None:
    _parse_or_error(_dump(value), None)
    _parse_or_error(blob, None)
    _parse_or_error(_read("production", "trusted_root.json"), _dump(value))
