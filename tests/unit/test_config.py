"""Configuration loading: every key, defaults, durations, secrets, relative paths, the example."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.cli.main import main
from monitor.config.settings import (
    Config,
    ListenAddress,
    Severity,
    TrustRoot,
    load_config,
    redact_url,
)
from monitor.core.durations import MAX_DURATION, format_duration, parse_duration
from monitor.core.errors import ConfigError
from monitor.notify.notifier import delivery_targets

REPO = Path(__file__).resolve().parents[2]
REKOR_PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
"""
LOG = """
[[log]]
name = "rekor"
type = "rekor-v1"
url = "https://rekor.sigstore.dev"
trust_root = "production"
"""
TILES = """
[[log]]
name = "v2"
type = "tiles"
url = "https://log2025-1.rekor.sigstore.dev"
trust_root = "production"
"""
GITHUB = "https://token.actions.githubusercontent.com"
PRIVATE_PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n"


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)  # as an operator keeps a file with notify URLs (else: a warning)
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=env or {})


def fail(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path, environ=env or {})
    message = str(e.value)
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def log_table(**keys: object) -> str:
    """A [[log]] table: the rekor-v1 defaults overridden (or removed, with None) by `keys`."""
    base: dict[str, object] = {
        "name": "rekor",
        "type": "rekor-v1",
        "url": "https://rekor.sigstore.dev",
        "trust_root": "production",
    }
    base.update(keys)
    lines = ["[[log]]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in base.items() if v is not None]
    return "\n".join(lines) + "\n"


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


# --- the example and the file --------------------------------------------------------------


def test_example_config_loads() -> None:
    # As shipped it needs no environment: its channel is commented out (see
    # tests/integration/test_operator_config.py for the channel uncommented).
    config = load_config(REPO / "config.toml", environ={})
    # Its logs come from Sigstore production's trust root at run time (issue 14; the details
    # are in tests/unit/test_sigstore_config.py).
    assert config.logs == ()
    assert [(s.name, s.metadata_url) for s in config.sigstore] == [
        ("production", "https://tuf-repo-cdn.sigstore.dev")
    ]
    assert [r.name for r in config.watches] == ["release-signing"]
    assert config.channels == ()
    assert config.monitor.database == REPO / "tlog-monitor.db"
    assert len(config.warnings) == 1 and "no [[notify]] channels" in config.warnings[0]
    json.dumps(config.redacted())


def test_example_config_without_its_env_var_names_it(tmp_path: Path) -> None:
    enabled = (REPO / "config.toml").read_text().replace("# [[notify]]\n# name", "[[notify]]\nname")
    enabled = enabled.replace("# urls_env = [", "urls_env = [")
    path = tmp_path / "config.toml"
    path.write_text(enabled)
    with pytest.raises(ConfigError, match="TLOG_MONITOR_NOTIFY_URLS is not set"):
        load_config(path, environ={})


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, LOG + TILES)
    m = config.monitor
    assert m.database == tmp_path / "tlog-monitor.db"
    assert m.interval == timedelta(seconds=60)
    assert m.max_stale == timedelta(minutes=30)
    assert m.error_grace == timedelta(minutes=10)
    assert m.http_listen == ListenAddress("127.0.0.1", 9464)
    assert m.request_timeout == timedelta(seconds=30)
    assert m.max_response_bytes == 16 * 1024 * 1024
    assert m.user_agent.startswith("tlog-monitor/")
    assert m.scan_workers == 1
    assert config.redacted()["monitor"]["scan_workers"] == 1  # type: ignore[index]
    v1, v2 = config.logs
    assert v1.scan is False and v2.scan is True
    assert v1.requests_per_minute == 300 and v2.requests_per_minute == 600
    assert v1.start is None and v1.views == () and v1.origin is None
    assert v1.interval == m.interval and v1.max_stale == m.max_stale
    assert v1.allow_insecure_http is False
    assert v1.public_key_pem is None and v1.public_key_der is None
    assert config.watches == () and config.channels == ()
    assert config.path == tmp_path / "config.toml"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the configuration file"):
        load_config(tmp_path / "nope.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[monitor]\ndatabase = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    message = fail(tmp_path, "[monitor]\ninterval = \n")
    assert message.startswith("invalid TOML:")
    assert "line 2, column" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "log: missing: add at least one [[log]] table"),
        ("log = []\n", "log: empty: add at least one [[log]] table"),
        ('[log]\nname = "x"\n', "log: expected [[log]] (an array of tables), got a single [log]"),
        ("log = 3\n", "log: expected [[log]] tables, got an integer"),
        ("[[lgo]]\n", 'lgo: unknown top-level key; did you mean "log"?'),
        ("zzz = 1\n" + LOG, "zzz: unknown top-level key; expected [monitor]"),
        ("[[monitor]]\n" + LOG, "monitor: expected a table, got an array"),
        (LOG + '[watch]\nname = "x"\n', "watch: expected [[watch]] (an array of tables)"),
        ("notify = [1]\n" + LOG, "notify[0]: expected a table, got an integer"),
        (LOG + "notify = [1]\n", "log[0].notify: unknown key"),  # keys after [[log]] belong to it
    ],
)
def test_file_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert fail(tmp_path, text).startswith(expected)


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("60s", timedelta(seconds=60)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("90m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (" 5m ", timedelta(minutes=5)),
        ("366d", MAX_DURATION),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("soon", "not a duration"),
        ("5", "not a duration"),
        ("-5s", "negative"),
        ("1.5h", "not a duration"),
        ("5 m", "not a duration"),
        ("30m1h", "largest first"),
        ("1m1m", "largest first"),
        ("5M", "not a duration"),
        ("367d", "longer than the maximum"),
        ("99999999999999s", "not a duration"),
    ],
)
def test_parse_duration_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=60), "1m"),
        (timedelta(seconds=5400), "1h30m"),
        (timedelta(days=1, seconds=1), "1d1s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.integers(min_value=0, max_value=MAX_DURATION // timedelta(milliseconds=1)))
def test_duration_round_trip(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "interval",
            "soon",
            'expected a duration like "60s" or "5m" (units ms, s, m, h, d), got "soon"',
        ),
        ("interval", "-5s", 'got "-5s" (durations cannot be negative)'),
        ("interval", 60, 'got the number 60; write a string with a unit, e.g. "60s"'),
        ("interval", True, "expected a duration string"),
        ("interval", "500ms", 'must be at least 1s, got "500ms"'),
        ("interval", "0s", 'must be at least 1s, got "0s"'),
        ("interval", "2d", 'must be at most 1d, got "2d"'),
        ("interval", "45m", "max_stale (30m) must be longer than the poll interval (45m)"),
        ("max_stale", "30s", "max_stale (30s) must be longer than the poll interval (1m)"),
        ("max_stale", "31d", "must be at most 30d"),
        ("error_grace", "-1s", "negative"),
        ("error_grace", "31d", "must be at most 30d"),
        ("request_timeout", "0s", "must be at least 1s"),
        ("request_timeout", "11m", "must be at most 10m"),
    ],
)
def test_monitor_duration_errors(tmp_path: Path, key: str, value: object, expected: str) -> None:
    message = fail(tmp_path, f"[monitor]\n{key} = {toml_value(value)}\n" + LOG)
    assert message.startswith(f"monitor.{key}: "), message
    assert expected in message


def test_monitor_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[monitor]
database = "state/db.sqlite"
interval = "1h30m"
max_stale = "1d"
error_grace = "0s"
http_listen = "[::1]:9000"
request_timeout = "1m"
max_response_bytes = "512KiB"
user_agent = "tlog-monitor/test (ops@example.com)"
scan_workers = 2
"""
        + LOG,
    )
    m = config.monitor
    assert m.database == tmp_path / "state" / "db.sqlite"
    assert m.interval == timedelta(hours=1, minutes=30)
    assert m.error_grace == timedelta(0)
    assert m.http_listen == ListenAddress("::1", 9000) and str(m.http_listen) == "[::1]:9000"
    assert m.max_response_bytes == 512 * 1024
    assert m.user_agent == "tlog-monitor/test (ops@example.com)"
    assert m.scan_workers == 2
    assert config.log("rekor").interval == m.interval


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ListenAddress("127.0.0.1", 9464)),
        ("localhost:1", ListenAddress("localhost", 1)),
        ("0.0.0.0:65535", ListenAddress("0.0.0.0", 65535)),
        ("[::]:9464", ListenAddress("::", 9464)),
        ("", None),
    ],
)
def test_http_listen(tmp_path: Path, text: str, expected: ListenAddress | None) -> None:
    config = load(tmp_path, f"[monitor]\nhttp_listen = {json.dumps(text)}\n" + LOG)
    assert config.monitor.http_listen == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9464", 'expected "host:port"'),
        (":9464", 'expected "host:port"'),
        ("host:", 'expected "host:port"'),
        ("host:0", "port must be from 1 to 65535, got 0"),
        ("host:70000", "port must be from 1 to 65535, got 70000"),
        ("::1:9464", 'expected "host:port"'),
        ("[zz]:1", 'expected "host:port"'),
        ("[1::2::3]:1", "invalid IPv6 address"),
        ("300.1.1.1:80", "invalid IPv4 address"),
        ("a b:1", 'expected "host:port"'),
        (9464, 'expected "host:port", got an integer'),
    ],
)
def test_http_listen_errors(tmp_path: Path, value: object, expected: str) -> None:
    message = fail(tmp_path, f"[monitor]\nhttp_listen = {toml_value(value)}\n" + LOG)
    assert message.startswith("monitor.http_listen: ")
    assert expected in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1048576, 1048576),
        ("16MiB", 16 * 1024 * 1024),
        ("32MiB", 32 * 1024**2),
        ("65536", 65536),
        ("64 KiB", 65536),
    ],
)
def test_max_response_bytes(tmp_path: Path, value: object, expected: int) -> None:
    config = load(tmp_path, f"[monitor]\nmax_response_bytes = {toml_value(value)}\n" + LOG)
    assert config.monitor.max_response_bytes == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("16MB", 'expected a size in bytes or like "16MiB"'),
        (100, "expected an integer from 65536 to 33554432, got 100"),
        ("2GiB", "must be at most 32MiB (33554432 bytes), got 2147483648"),
        # Once allowed: 256MiB took the daemon to 1.64 GB, past the unit's MemoryMax=1G.
        ("256MiB", "must be at most 32MiB (33554432 bytes), got 268435456: a larger cap would"),
        ("1GiB", "MemoryMax=1G"),
        (32 * 1024**2 + 1, "must be at most 32MiB"),
        (True, "got a boolean"),
        (1.5, "got a float"),
    ],
)
def test_max_response_bytes_errors(tmp_path: Path, value: object, expected: str) -> None:
    shown = str(value) if isinstance(value, float) else toml_value(value)
    text = f"[monitor]\nmax_response_bytes = {shown}\n"
    message = fail(tmp_path, text + LOG)
    assert message.startswith("monitor.max_response_bytes: ")
    assert expected in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("database", "", "monitor.database: expected a file path, got an empty string"),
        ("database", 1, "monitor.database: expected a file path, got an integer"),
        ("user_agent", "tlog\u00e9", "monitor.user_agent: only ASCII"),
        ("user_agent", "a\nb", "monitor.user_agent: control characters"),
        ("user_agent", "x" * 257, "monitor.user_agent: too long"),
        ("intervall", "60s", 'monitor.intervall: unknown key; did you mean "interval"?'),
        ("max_stal", "60s", 'monitor.max_stal: unknown key; did you mean "max_stale"?'),
    ],
)
def test_monitor_other_errors(tmp_path: Path, key: str, value: object, expected: str) -> None:
    assert fail(tmp_path, f"[monitor]\n{key} = {toml_value(value)}\n" + LOG).startswith(expected)


@pytest.mark.parametrize("value", [1, 2, 16])
def test_scan_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: int) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    config = load(tmp_path, f"[monitor]\nscan_workers = {value}\n" + LOG)
    assert config.monitor.scan_workers == value
    assert config.redacted()["monitor"]["scan_workers"] == value  # type: ignore[index]
    assert not any("monitor.scan_workers" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "expected an integer from 1 to 16, got 0"),
        (17, "expected an integer from 1 to 16, got 17"),
        (-2, "expected an integer from 1 to 16, got -2"),
        ("2", "expected an integer from 1 to 16, got a string"),
        (True, "expected an integer from 1 to 16, got a boolean"),
        (2.0, "expected an integer from 1 to 16, got a float"),
        ([2], "expected an integer from 1 to 16, got an array"),
    ],
)
def test_scan_workers_errors(tmp_path: Path, value: object, expected: str) -> None:
    shown = str(value) if isinstance(value, float) else toml_value(value)
    message = fail(tmp_path, f"[monitor]\nscan_workers = {shown}\n" + LOG)
    assert message == f"monitor.scan_workers: {expected}"


def test_scan_workers_past_the_cpus_is_allowed_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A config may be written for a larger machine: it loads, and `config check` says so.
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    path = write(tmp_path, "[monitor]\nscan_workers = 3\n" + LOG)
    config = load_config(path, environ={})
    assert config.monitor.scan_workers == 3
    expected = f"{path}: monitor.scan_workers: 3 worker processes exceed the 2 CPUs of this machine"
    assert next(w for w in config.warnings if "monitor.scan_workers" in w).startswith(expected)
    assert main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["monitor"]["scan_workers"] == 3
    assert f"tlog-monitor: warning: {expected}" in err
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert not any("monitor.scan_workers" in w for w in load_config(path, environ={}).warnings)


# --- [[log]] -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"name": None}, "log[0].name: missing (required)"),
        ({"name": "Rekor"}, "log[0].name: expected a name of lowercase letters"),
        ({"name": "-rekor"}, "log[0].name: expected a name"),
        ({"name": "re kor"}, "log[0].name: expected a name"),
        ({"name": ""}, "log[0].name: expected a name, got an empty string"),
        ({"name": 1}, "log[0].name: expected a name, got an integer"),
        ({"type": None}, "log[0].type: missing (required)"),
        (
            {"type": "rekor-v2"},
            'log[0].type: expected one of "rekor-v1", "tiles", "ct", "static-ct", got "rekor-v2"; '
            'did you mean "rekor-v1"?',
        ),
        ({"type": "tile"}, 'did you mean "tiles"?'),
        ({"url": None}, "log[0].url: missing (required)"),
        (
            {"url": "ftp://rekor.sigstore.dev"},
            'log[0].url: expected an http:// or https:// URL, got a "ftp" URL',
        ),
        (
            {"url": "rekor.sigstore.dev"},
            'log[0].url: expected an http:// or https:// URL, got no "scheme://"',
        ),
        ({"url": "https://"}, "log[0].url: expected a URL with a host name"),
        (
            {"url": "http://rekor.sigstore.dev"},
            'log[0].url: https is required for "rekor.sigstore.dev"',
        ),
        ({"url": "https://rekor.sigstore.dev:99999"}, "log[0].url: invalid port in"),
        ({"url": "https://[::1"}, "log[0].url: not a valid URL"),
        ({"url": "https://rekor.sigstore.dev/?x=1"}, "log[0].url: a query (?...) or fragment"),
        ({"url": "https://rekor.sigstore.dev/#frag"}, "log[0].url: a query (?...) or fragment"),
        (
            {"url": "https://u:p@rekor.sigstore.dev"},
            "log[0].url: credentials (user:password@) are not allowed",
        ),
        ({"url": 5}, "log[0].url: expected an http:// or https:// URL, got an integer"),
        ({"trust_root": None}, "log[0]: set exactly one of trust_root"),
        ({"public_key": "key.pem"}, "log[0]: set exactly one of trust_root"),
        (
            {"trust_root": "prod"},
            'log[0].trust_root: expected one of "production", "staging", got "prod"',
        ),
        ({"trust_root": "Production"}, 'did you mean "production"?'),
        ({"origin": ""}, "log[0].origin: expected an origin line, got an empty string"),
        ({"origin": 1}, "log[0].origin: expected an origin line, got an integer"),
        ({"views": "https://mirror.example"}, "log[0].views: expected an array of strings"),
        ({"views": ["https://rekor.sigstore.dev/"]}, "log[0].views[0]: same as the log's own url"),
        (
            {"views": ["https://a.example", "https://A.example/"]},
            "log[0].views[1]: duplicate of views[0]",
        ),
        ({"views": ["http://a.example"]}, 'log[0].views[0]: https is required for "a.example"'),
        ({"views": ["https://a.example/?k=secret"]}, "log[0].views[0]: a query"),
        ({"scan": "yes"}, "log[0].scan: expected true or false, got a string"),
        (
            {"start": -1},
            'log[0].start: expected "latest" or a non-negative integer entry index, got -1',
        ),
        (
            {"start": "5"},
            'log[0].start: expected "latest" or a non-negative integer entry index, got "5"',
        ),
        ({"start": "Latest"}, 'got "Latest"'),
        ({"start": True}, "got a boolean"),
        ({"start": 5}, "log[0].start: a start index needs scan = true"),
        ({"interval": "soon"}, 'log[0].interval: expected a duration like "60s" or "5m"'),
        ({"interval": "0s"}, "log[0].interval: must be at least 1s"),
        (
            {"interval": "1h"},
            "log[0].interval: max_stale (30m) must be longer than the poll interval (1h)",
        ),
        (
            {"max_stale": "1m"},
            "log[0].max_stale: max_stale (1m) must be longer than the poll interval (1m)",
        ),
        ({"max_stale": 60}, "log[0].max_stale: expected a duration"),
        (
            {"requests_per_minute": 0},
            "log[0].requests_per_minute: expected an integer from 1 to 60000, got 0",
        ),
        (
            {"requests_per_minute": "300"},
            "log[0].requests_per_minute: expected an integer from 1 to 60000, got a string",
        ),
        ({"allow_insecure_http": 1}, "log[0].allow_insecure_http: expected true or false"),
        ({"witnesses": []}, "log[0].witnesses: unknown key"),
        ({"intervl": "5m"}, 'log[0].intervl: unknown key; did you mean "interval"?'),
        (
            {"trustroot": "production", "trust_root": None},
            'log[0].trustroot: unknown key; did you mean "trust_root"?',
        ),
    ],
)
def test_log_errors(tmp_path: Path, keys: dict[str, object], expected: str) -> None:
    message = fail(tmp_path, log_table(**keys))
    assert message.startswith(expected) if expected.startswith("log[0]") else expected in message


def test_log_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        log_table(
            url="HTTPS://Rekor.Example.com:8443/base/",
            origin="rekor.example.com - 123",
            views=["https://mirror.example/log", "http://127.0.0.1:8080"],
            scan=True,
            start=0,
            interval="10s",
            max_stale="5m",
            requests_per_minute=30,
        ),
    )
    log = config.log("rekor")
    assert log.url == "https://rekor.example.com:8443/base"
    assert log.origin == "rekor.example.com - 123"
    assert log.views == ("https://mirror.example/log", "http://127.0.0.1:8080")
    assert (log.scan, log.start) == (True, 0)
    assert (log.interval, log.max_stale) == (timedelta(seconds=10), timedelta(minutes=5))
    assert log.requests_per_minute == 30
    assert log.trust_root is TrustRoot.PRODUCTION


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8080", "http://127.0.0.1", "http://[::1]:3000", "http://log.localhost"],
)
def test_plain_http_on_loopback(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, log_table(url=url)).logs[0].url == url


def test_allow_insecure_http(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        log_table(
            url="http://log.internal", views=["http://peer.internal"], allow_insecure_http=True
        ),
    )
    assert config.logs[0].url == "http://log.internal"
    assert config.logs[0].allow_insecure_http is True


def test_start_latest_and_index(tmp_path: Path) -> None:
    assert load(tmp_path, log_table(start="latest")).logs[0].start is None
    assert load(tmp_path, log_table(start=121904262, scan=True)).logs[0].start == 121904262


def test_scan_defaults_can_be_overridden(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        log_table(scan=True)
        + log_table(name="v2", type="tiles", url="https://x.example", scan=False),
    )
    assert [log.scan for log in config.logs] == [True, False]


def test_duplicate_log_name_and_url(tmp_path: Path) -> None:
    assert fail(tmp_path, LOG + LOG) == 'log[1].name: duplicate name "rekor" (also log[0])'
    text = LOG + log_table(name="other", url="https://REKOR.sigstore.dev/")
    assert (
        fail(tmp_path, text)
        == 'log[1].url: duplicate url "https://rekor.sigstore.dev" (also log[0])'
    )


# public_key


def test_public_key_inline(tmp_path: Path) -> None:
    log = load(tmp_path, log_table(trust_root=None, public_key=REKOR_PEM)).logs[0]
    assert log.trust_root is None
    assert log.public_key_pem == REKOR_PEM
    assert log.public_key_file is None
    assert log.public_key_der is not None and log.public_key_der[0] == 0x30
    assert "MFkw" not in repr(log)


def test_public_key_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "rekor.pem").write_text("comment line\n" + REKOR_PEM.replace("\n", "\r\n"))
    path = write(tmp_path, log_table(trust_root=None, public_key="keys/rekor.pem"))
    cwd = os.getcwd()
    try:
        os.chdir("/")  # relative to the config file, not to the working directory
        log = load_config(path, environ={}).logs[0]
    finally:
        os.chdir(cwd)
    assert log.public_key_file == tmp_path / "keys" / "rekor.pem"
    assert log.public_key_pem == REKOR_PEM
    redacted = load_config(path, environ={}).redacted()["logs"]
    assert isinstance(redacted, list)
    key = redacted[0]["public_key"]
    assert key["pem_first_line"] == "-----BEGIN PUBLIC KEY-----"
    assert len(key["sha256"]) == 64


def test_public_key_from_shared_fixture(tmp_path: Path, real_data: Path) -> None:
    pem_path = real_data / "rekor-production" / "rekor_v1_prod.pub.pem"
    log = load(tmp_path, log_table(trust_root=None, public_key=str(pem_path))).logs[0]
    assert log.public_key_pem == pem_path.read_text()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("missing.pem", 'cannot read public key file "{tmp}/missing.pem": No such file'),
        ("", "expected a PEM public key or a file path, got an empty string"),
        (
            PRIVATE_PEM,
            "the inline value holds a PRIVATE key",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "must hold exactly one -----BEGIN PUBLIC KEY----- block "
            "(SubjectPublicKeyInfo), found 0",
        ),
        (REKOR_PEM + REKOR_PEM, "found 2"),
        ("-----BEGIN PUBLIC KEY-----\nM===Fkw\n-----END PUBLIC KEY-----\n", "not valid base64"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PUBLIC KEY-----\n",
            "not a DER",
        ),
        ("two\nlines", "expected a PEM block"),
    ],
)
def test_public_key_errors(tmp_path: Path, value: str, expected: str) -> None:
    message = fail(tmp_path, log_table(trust_root=None, public_key=value))
    assert message.startswith("log[0].public_key: ")
    assert expected.format(tmp=tmp_path) in message
    assert "MIGHAgEA" not in message  # private key material is never echoed


def test_private_key_file_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text(
        "-----BEGIN EC PRIVATE KEY-----\nSECRETKEYBYTES\n-----END EC PRIVATE KEY-----\n"
    )
    message = fail(tmp_path, log_table(trust_root=None, public_key="k.pem"))
    assert f'the file "{tmp_path}/k.pem" holds a PRIVATE key' in message
    assert "SECRETKEYBYTES" not in message


# --- [[notify]] ------------------------------------------------------------------------------


def test_notify_sources(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "urls").write_text(
        "# team channels\n\n  ntfys://tk_abc@ntfy.sh/topic  \nslack://A/B/C\n"
    )
    config = load(
        tmp_path,
        LOG
        + """
[[notify]]
name = "ops"
urls = ["json://hooks.example.com/alert"]
urls_env = ["OPS_URLS", "MORE"]
urls_file = "secrets/urls"
min_severity = "critical"
""",
        env={
            "OPS_URLS": " mailtos://u:p@example.com?to=a@x.com,b@x.com , discord://1/2\ttgram://123:AAH3/4\n",
            "MORE": "slack://A/B/C",
        },
    )
    channel = config.channel("ops")
    assert channel.urls == (
        "json://hooks.example.com/alert",
        "mailtos://u:p@example.com?to=a@x.com,b@x.com",  # commas inside a URL stay
        "discord://1/2",
        "tgram://123:AAH3/4",
        "slack://A/B/C",  # deduplicated across sources
        "ntfys://tk_abc@ntfy.sh/topic",
    )
    assert channel.urls_env == ("OPS_URLS", "MORE")
    assert channel.urls_file == tmp_path / "secrets" / "urls"
    assert channel.min_severity is Severity.CRITICAL
    assert channel.admits(Severity.CRITICAL) and not channel.admits(Severity.HIGH)


def test_notify_default_min_severity(tmp_path: Path) -> None:
    config = load(tmp_path, LOG + '[[notify]]\nname = "a"\nurls = ["slack://x/y/z"]\n')
    assert config.channels[0].min_severity is Severity.WARNING


def notify_table(**keys: object) -> str:
    base: dict[str, object] = {"name": "ops", "urls": ["slack://x/y/z"]}
    base.update(keys)
    lines = ["[[notify]]"] + [f"{k} = {toml_value(v)}" for k, v in base.items() if v is not None]
    return LOG + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"name": None}, "notify[0].name: missing (required)"),
        ({"name": "Ops"}, "notify[0].name: expected a name"),
        ({"urls": None}, "notify[0]: no URLs: set urls, urls_env or urls_file"),
        ({"urls": []}, "notify[0]: no URLs"),
        ({"urls": "slack://x/y/z"}, "notify[0].urls: expected an array of strings, got a string"),
        ({"urls": [""]}, "notify[0].urls[0]: expected an apprise URL, got an empty string"),
        (
            {"urls": ["slack:/x"]},
            'notify[0].urls[0]: expected an apprise URL such as "slack://..."',
        ),
        ({"urls": ["slack://a b"]}, "notify[0].urls[0]: expected an apprise URL"),
        (
            {"urls": ["slack://x/y/z", "slack://x/y/z"]},
            "notify[0].urls[1]: duplicate item (also at [0])",
        ),
        ({"urls": ["slack://x"] * 51}, "notify[0].urls: too many items: 51, at most 50"),
        (
            {"min_severity": "warn"},
            'notify[0].min_severity: expected one of "info", "warning", "high", "critical", '
            'got "warn"; did you mean "warning"?',
        ),
        ({"min_severity": 2}, "notify[0].min_severity: expected a severity, got an integer"),
        (
            {"urls_env": ["NOT SET"]},
            'notify[0].urls_env[0]: expected an environment variable name, got "NOT SET"',
        ),
        (
            {"urls_env": ["MISSING_VAR"]},
            "notify[0].urls_env[0]: environment variable MISSING_VAR is not set",
        ),
        (
            {"urls_env": ["EMPTY_VAR"]},
            "notify[0].urls_env[0]: environment variable EMPTY_VAR is empty",
        ),
        (
            {"urls_env": ["BAD_VAR"]},
            "notify[0].urls_env[0] (URL 2 in $BAD_VAR): expected an apprise URL",
        ),
        ({"urls_env": "BAD_VAR"}, "notify[0].urls_env: expected an array of strings"),
        (
            {"urls_file": "nope.txt"},
            'notify[0].urls_file: cannot read "{tmp}/nope.txt": No such file',
        ),
        ({"urls_file": "empty.txt"}, 'notify[0].urls_file: "{tmp}/empty.txt" holds no URLs'),
        (
            {"urls_file": "bad.txt"},
            'notify[0].urls_file ("{tmp}/bad.txt" line 3): expected an apprise URL',
        ),
        ({"urls_file": ""}, "notify[0].urls_file: expected a file path, got an empty string"),
        ({"url": "slack://x/y/z"}, 'notify[0].url: unknown key; did you mean "urls"?'),
        (
            {"min_severty": "high"},
            'notify[0].min_severty: unknown key; did you mean "min_severity"?',
        ),
    ],
)
def test_notify_errors(tmp_path: Path, keys: dict[str, object], expected: str) -> None:
    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    (tmp_path / "bad.txt").write_text("# c\nslack://a/b/c\nnot a url\n")
    env = {"EMPTY_VAR": "  \n", "BAD_VAR": "slack://a/b/c bogus"}
    assert fail(tmp_path, notify_table(**keys), env=env).startswith(expected.format(tmp=tmp_path))


def test_duplicate_notify_name(tmp_path: Path) -> None:
    text = notify_table() + '[[notify]]\nname = "ops"\nurls = ["slack://a/b/c"]\n'
    assert fail(tmp_path, text) == 'notify[1].name: duplicate name "ops" (also notify[0])'


# --- [[watch]] in the file: references and routing -------------------------------------------

CHANNELS = """
[[notify]]
name = "security"
urls = ["slack://a/b/c"]

[[notify]]
name = "pager"
urls = ["tgram://123:AAH1/2"]
min_severity = "critical"

[[notify]]
name = "feed"
urls = ["json://feed.example.com/in"]
min_severity = "info"
"""


def watch_table(**keys: object) -> str:
    base: dict[str, object] = {"name": "release", "issuer": GITHUB, "san": "https://github.com/x/*"}
    base.update(keys)
    return "[[watch]]\n" + "".join(
        f"{k} = {toml_value(v)}\n" for k, v in base.items() if v is not None
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            watch_table(notify=["securty"]),
            'watch[0].notify[0]: no [[notify]] named "securty"; did you mean "security"?',
        ),
        (
            watch_table(notify=["zzz"]),
            'watch[0].notify[0]: no [[notify]] named "zzz"; defined: "security", "pager", "feed"',
        ),
        (
            watch_table(logs=["rekr"]),
            'watch[0].logs[0]: no [[log]] named "rekr"; did you mean "rekor"?',
        ),
        (watch_table() + watch_table(), 'watch[1].name: duplicate name "release" (also watch[0])'),
        (
            watch_table(notify=["pager"]),
            'watch[0].notify: rule "release" raises info alerts (identity_seen) but every '
            "channel it lists has a higher min_severity",
        ),
        (
            watch_table(notify=["pager"], allowed_signers=["x"]),
            "raises high alerts (unexpected_signer)",
        ),
        (
            watch_table(san_regex="(", san=None),
            'watch[0].san_regex: invalid regular expression in rule "release"',
        ),
        (watch_table(sna="x"), 'watch[0].sna: unknown key; did you mean "san"?'),
    ],
)
def test_watch_errors_in_file(tmp_path: Path, text: str, expected: str) -> None:
    message = fail(tmp_path, LOG + CHANNELS + text)
    assert message.startswith(expected) if expected.startswith("watch[") else expected in message


def test_routing(tmp_path: Path) -> None:
    """The routing rule of docs/configuration.md, through the function the daemon routes by."""
    config = load(
        tmp_path,
        LOG
        + CHANNELS
        + watch_table(name="all-channels")
        + watch_table(name="to-security", notify=["security", "feed"], allowed_signers=["x"]),
    )
    everyone, listed = config.watches

    def names(severity: Severity, only: tuple[str, ...] | None = None) -> list[str]:
        targets = delivery_targets(config.channels, severity, only)
        return [t.split("#")[0] for t in targets]

    # log-level alerts: every channel whose min_severity admits them
    assert names(Severity.CRITICAL) == ["security", "pager", "feed"]
    assert names(Severity.WARNING) == ["security", "feed"]
    # watch alerts: the rule's channels, or all when it lists none; still filtered by severity
    assert names(Severity.INFO, everyone.notify) == ["feed"]
    assert names(Severity.HIGH, everyone.notify) == ["security", "feed"]
    assert names(Severity.HIGH, listed.notify) == ["security", "feed"]
    assert names(Severity.INFO, listed.notify) == ["feed"]
    assert config.rules_for_log("rekor") == (everyone, listed)


def test_rules_for_log(tmp_path: Path) -> None:
    config = load(tmp_path, LOG + TILES + watch_table(logs=["v2"]) + watch_table(name="b"))
    assert [r.name for r in config.rules_for_log("rekor")] == ["b"]
    assert [r.name for r in config.rules_for_log("v2")] == ["release", "b"]
    rules = config.redacted()["watch"]
    assert isinstance(rules, list)
    assert rules[0]["logs"] == ["v2"] and rules[1]["logs"] == ["rekor", "v2"]


def test_warnings(tmp_path: Path) -> None:
    config = load(tmp_path, LOG + watch_table())
    assert len(config.warnings) == 2
    assert "no [[notify]] channels" in config.warnings[0]
    assert 'watch[0]: rule "release" can see no entries' in config.warnings[1]
    searching = load(tmp_path, LOG + CHANNELS + watch_table(search=["x@example.com"]))
    assert searching.warnings == ()


def test_log_lookup(tmp_path: Path) -> None:
    config = load(tmp_path, LOG)
    with pytest.raises(KeyError):
        config.log("nope")
    with pytest.raises(KeyError):
        config.channel("nope")


# --- severity ------------------------------------------------------------------------------


def test_severity_order() -> None:
    assert Severity.INFO < Severity.WARNING < Severity.HIGH < Severity.CRITICAL
    assert sorted([Severity.HIGH, Severity.INFO, Severity.CRITICAL, Severity.WARNING]) == list(
        Severity
    )
    assert max(Severity) is Severity.CRITICAL
    assert Severity("high") is Severity.HIGH and str(Severity.HIGH) == "high"
    with pytest.raises(TypeError):
        assert Severity.HIGH < "warning"  # no alphabetical fallback


# --- secrets -------------------------------------------------------------------------------

SECRET_URLS = {
    "slack://TokenAAAA1111/TokenBBBB2222/TokenCCCC3333zzzz": [
        "TokenAAAA1111",
        "TokenBBBB2222",
        "TokenCCCC3333zzzz",
    ],
    "mailtos://alice.mailer:Pa55w0rdMail@gmail.com?to=bob.receiver@example.com": [
        "alice.mailer",
        "Pa55w0rdMail",
        "bob.receiver",
    ],
    "json://jsonuser:JsonSecretPass@hooks.example.com/SecretPathSeg?token=QueryTok123": [
        "jsonuser",
        "JsonSecretPass",
        "SecretPathSeg",
        "QueryTok123",
    ],
    "discord://112233445566778899/DiscordWebhookTokenXYZ": [
        "112233445566778899",
        "DiscordWebhookTokenXYZ",
    ],
    "tgram://123456789:AAHbotTokenSecretValue/987654321": [
        "AAHbotTokenSecretValue",
        "987654321",
        "123456789",
    ],
    "ntfys://tk_NtfyAccessToken42@ntfy.sh/SecretTopicName": [
        "tk_NtfyAccessToken42",
        "SecretTopicName",
    ],
    "ntfy://MyPrivateTopic": ["MyPrivateTopic"],
}
SECRETS = [s for secrets in SECRET_URLS.values() for s in secrets]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} leaked in {text!r}"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("slack://TokenAAAA1111/TokenBBBB2222/TokenCCCC3333zzzz", "slack://***"),
        (
            "mailtos://alice.mailer:Pa55w0rdMail@gmail.com?to=bob.receiver@example.com",
            "mailtos://***@gmail.com/***",
        ),
        (
            "json://jsonuser:JsonSecretPass@hooks.example.com/SecretPathSeg?token=QueryTok123",
            "json://***@hooks.example.com/***",
        ),
        ("discord://112233445566778899/DiscordWebhookTokenXYZ", "discord://***"),
        ("tgram://123456789:AAHbotTokenSecretValue/987654321", "tgram://***"),
        ("ntfys://tk_NtfyAccessToken42@ntfy.sh/SecretTopicName", "ntfys://***@ntfy.sh/***"),
        ("ntfy://MyPrivateTopic", "ntfy://***"),
        ("JSON://Hooks.Example.com:8080/", "json://hooks.example.com:8080"),
        ("json://localhost", "json://localhost"),
        ("jsons://[::1]:9/x", "jsons://[::1]:9/***"),
        ("not a url TokenZZZ", "***"),
        ("", "***"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def secret_config(tmp_path: Path) -> Config:
    urls = list(SECRET_URLS)
    (tmp_path / "urls.txt").write_text("\n".join(urls[3:]) + "\n")
    return load(
        tmp_path,
        LOG
        + f"""
[[notify]]
name = "ops"
urls = {toml_value(urls[:2])}
urls_env = ["OPS"]
urls_file = "urls.txt"
""",
        env={"OPS": urls[2]},
    )


def test_secrets_not_in_redacted_view_or_repr(tmp_path: Path) -> None:
    config = secret_config(tmp_path)
    assert len(config.channel("ops").urls) == len(SECRET_URLS)
    assert_no_secret(json.dumps(config.redacted()))
    assert_no_secret(repr(config))
    assert_no_secret(str(config))
    assert_no_secret(repr(config.channel("ops")))


def test_secrets_not_in_cli_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    urls = list(SECRET_URLS)
    path = write(tmp_path, LOG + f'[[notify]]\nname = "ops"\nurls = {toml_value(urls)}\n')
    assert main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert_no_secret(out + err)
    shown = json.loads(out)
    assert shown["notify"][0]["urls"][0] == "slack://***"
    assert shown["logs"][0]["name"] == "rekor"


def _secret_error_cases() -> list[tuple[str, str, dict[str, str]]]:
    urls = list(SECRET_URLS)
    cases: list[tuple[str, str, dict[str, str]]] = []
    for i, url in enumerate(urls):
        env = {"OPS": f"{url} TokenInEnvBogus{i}"}
        cases += [
            (f"dup-{i}", f'[[notify]]\nname = "x"\nurls = {toml_value([url, url])}\n', {}),
            (
                f"no-scheme-{i}",
                f'[[notify]]\nname = "x"\nurls = {toml_value([url.replace("://", "/")])}\n',
                {},
            ),
            (f"not-a-list-{i}", f'[[notify]]\nname = "x"\nurls = {toml_value(url)}\n', {}),
            (f"unknown-key-{i}", f'[[notify]]\nname = "x"\nurl = {toml_value(url)}\n', {}),
            (
                f"bad-severity-{i}",
                f'[[notify]]\nname = "x"\nurls = {toml_value([url])}\nmin_severity = "x"\n',
                {},
            ),
            (f"env-{i}", '[[notify]]\nname = "x"\nurls_env = ["OPS"]\n', env),
            (f"syntax-{i}", f'[[notify]]\nname = "x"\nurls = [{toml_value(url)}\n', {}),
            (f"space-{i}", f'[[notify]]\nname = "x"\nurls = {toml_value([url + " x"])}\n', {}),
            (
                f"log-url-{i}",
                log_table(name="y", url=url),
                {},
            ),
        ]
    cases += [
        (
            "log-userinfo",
            log_table(name="y", url="https://user:LogPassTokenAAAA1111@rekor.example"),
            {},
        ),
        ("log-query", log_table(name="y", url="https://rekor.example/?t=TokenAAAA1111"), {}),
    ]
    return cases


@pytest.mark.parametrize(
    ("text", "env"),
    [(t, e) for _, t, e in _secret_error_cases()],
    ids=[c[0] for c in _secret_error_cases()],
)
def test_secrets_not_in_errors(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    message = fail(tmp_path, LOG + text, env=env)
    assert_no_secret(message)
    assert "TokenInEnvBogus" not in message


def test_secrets_not_in_urls_file_errors(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("\n".join(SECRET_URLS) + "\nhooks.slack.com/TokenAAAA1111\n")
    message = fail(tmp_path, LOG + '[[notify]]\nname = "x"\nurls_file = "urls.txt"\n')
    assert "line 8" in message
    assert_no_secret(message)


# --- relative paths and the CLI --------------------------------------------------------------


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    (tmp_path / "etc" / "keys").mkdir(parents=True)
    (tmp_path / "etc" / "keys" / "k.pem").write_text(REKOR_PEM)
    (tmp_path / "etc" / "urls").write_text("slack://a/b/c\n")
    text = (
        '[monitor]\ndatabase = "../var/db.sqlite"\n'
        + log_table(trust_root=None, public_key="keys/k.pem")
        + '[[notify]]\nname = "x"\nurls_file = "urls"\n'
    )
    path = write(tmp_path, text, name="etc/config.toml")
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "etc" / "keys")
        config = load_config(Path(os.path.relpath(path)), environ={})
    finally:
        os.chdir(cwd)
    assert config.monitor.database == tmp_path / "var" / "db.sqlite"
    assert config.logs[0].public_key_file == tmp_path / "etc" / "keys" / "k.pem"
    assert config.channels[0].urls_file == tmp_path / "etc" / "urls"
    assert config.path == tmp_path / "etc" / "config.toml"


def test_absolute_database_path(tmp_path: Path) -> None:
    config = load(tmp_path, f'[monitor]\ndatabase = "{tmp_path}/abs.db"\n' + LOG)
    assert config.monitor.database == tmp_path / "abs.db"


def test_cli_config_check_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, log_table(interval="soon"))
    assert main(["--config", str(path), "config", "check"]) == 2
    _, err = capsys.readouterr()
    assert f'{path}: log[0].interval: expected a duration like "60s" or "5m"' in err


def test_cli_config_check_prints_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, LOG)
    assert main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["monitor"]["interval"] == "1m"
    assert "warning: " in err and "no [[notify]] channels" in err


def test_cli_config_requires_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["config"])
    assert e.value.code == 2
