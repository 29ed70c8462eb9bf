"""The `[[sigstore]]` table (issue 14): every key, default and error; `[[log]]` made optional;
watch rules naming a source; `config check`; the shipped example."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.settings import (
    DEFAULT_TRUST_REFRESH,
    MAX_SIGSTORE,
    MAX_TUF_ROOT_BYTES,
    LogConfig,
    LogType,
    SigstoreInstance,
    load_config,
)
from monitor.config.trust_roots import TRUST_ROOT_NAMES, embedded_tuf_root
from tests.unit.test_config import CHANNELS, LOG, REPO, fail, load, toml_value, watch_table, write

PRODUCTION = '[[sigstore]]\ninstance = "production"\n'
TUF_ROOT = json.dumps({"signed": {"_type": "root", "version": 1}, "signatures": []})


def sigstore_table(**keys: object) -> str:
    """A [[sigstore]] table: instance = "production" overridden (or removed, with None)."""
    base: dict[str, object] = {"instance": "production"}
    base.update(keys)
    lines = ["[[sigstore]]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in base.items() if v is not None]
    return "\n".join(lines) + "\n"


def custom(**keys: object) -> str:
    """A [[sigstore]] table for a custom TUF repository (root.json next to the config)."""
    base: dict[str, object] = {
        "instance": None,
        "name": "private",
        "url": "https://tuf.internal.example/",
        "root": "root.json",
    }
    base.update(keys)
    return sigstore_table(**base)


def with_root(tmp_path: Path, content: str | bytes = TUF_ROOT, name: str = "root.json") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --- defaults ------------------------------------------------------------------------------


def test_instance_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, PRODUCTION)
    assert config.logs == ()  # no [[log]] needed
    (source,) = config.sigstore
    assert source.name == "production"
    assert source.instance is SigstoreInstance.PRODUCTION
    assert (
        source.metadata_url == TRUST_ROOT_NAMES["production"] == "https://tuf-repo-cdn.sigstore.dev"
    )
    assert source.targets_url == "https://tuf-repo-cdn.sigstore.dev/targets"
    assert source.bootstrap_root == embedded_tuf_root("production")
    assert source.bootstrap_file is None
    assert source.refresh == DEFAULT_TRUST_REFRESH == timedelta(hours=6)
    assert source.scan is True
    assert source.exclude == ()
    assert source.allow_insecure_http is False
    assert source.cache_dir == tmp_path / "tuf" / "production"
    assert "bootstrap_root" not in repr(source)


def test_staging_with_a_name_and_every_key(tmp_path: Path) -> None:
    text = sigstore_table(
        instance="staging",
        name="stage_1",
        refresh="7d",
        scan=False,
        exclude=["HTTPS://Log2025-Alpha1.rekor.sigstage.dev/", "http://10.0.0.1:8080/x/"],
        allow_insecure_http=True,
    )
    text = '[monitor]\ndatabase = "/srv/state/mon.db"\n' + text
    (source,) = load(tmp_path, text).sigstore
    assert (source.name, source.instance) == ("stage_1", SigstoreInstance.STAGING)
    assert source.metadata_url == "https://tuf-repo-cdn.sigstage.dev"
    assert source.bootstrap_root == embedded_tuf_root("staging")
    assert (source.refresh, source.scan, source.allow_insecure_http) == (
        timedelta(days=7),
        False,
        True,
    )
    # Normalised as log URLs are, so that they compare with the trust root's.
    assert source.exclude == (
        "https://log2025-alpha1.rekor.sigstage.dev",
        "http://10.0.0.1:8080/x",
    )
    assert source.cache_dir == Path("/srv/state/tuf/stage_1")


def test_custom_repository(tmp_path: Path) -> None:
    root = with_root(tmp_path / "trust", name="tuf-root.json")
    text = custom(url="http://127.0.0.1:8080/repo/", root="trust/tuf-root.json", refresh="1s")
    (source,) = load(tmp_path, text).sigstore
    assert source.instance is None
    assert source.name == "private"
    assert source.metadata_url == "http://127.0.0.1:8080/repo"  # loopback: http allowed
    assert source.targets_url == "http://127.0.0.1:8080/repo/targets"
    assert source.bootstrap_root == root.read_bytes()
    assert source.bootstrap_file == root
    assert source.refresh == timedelta(seconds=1)
    assert source.cache_dir == tmp_path / "tuf" / "private"


def test_insecure_http_repository_when_allowed(tmp_path: Path) -> None:
    with_root(tmp_path)
    text = custom(url="http://tuf.internal.example", allow_insecure_http=True)
    assert load(tmp_path, text).sigstore[0].metadata_url == "http://tuf.internal.example"


def test_logs_and_sources_together(tmp_path: Path) -> None:
    with_root(tmp_path)
    config = load(tmp_path, LOG + PRODUCTION + custom())
    assert [log.name for log in config.logs] == ["rekor"]
    assert [s.name for s in config.sigstore] == ["production", "private"]
    assert config.logs[0].source is None and config.logs[0].valid_until is None


def test_at_most_ten_sections(tmp_path: Path) -> None:
    with_root(tmp_path)
    text = "".join(custom(name=f"s{i}", url=f"https://tuf{i}.example") for i in range(9))
    assert len(load(tmp_path, PRODUCTION + text).sigstore) == MAX_SIGSTORE


# --- errors --------------------------------------------------------------------------------


SIGSTORE_ERRORS = [
    ("", "log: missing: add at least one [[log]] table, or a [[sigstore]] table"),
    ("log = []\n", "log: empty: add at least one [[log]] table, or a [[sigstore]] table"),
    ('[sigstore]\ninstance = "production"\n', "sigstore: expected [[sigstore]] (an array"),
    ("sigstore = 1\n", "sigstore: expected [[sigstore]] tables, got an integer"),
    ("[[sigstor]]\n", 'sigstor: unknown top-level key; did you mean "sigstore"?'),
    (
        sigstore_table(intance="production", instance=None),
        'sigstore[0].intance: unknown key; did you mean "instance"?',
    ),
    ('[[sigstore]]\nname = "x"\n', "sigstore[0]: set exactly one of instance"),
    (
        sigstore_table(url="https://tuf.example", root="root.json", name="x"),
        "sigstore[0]: set exactly one of instance",
    ),
    (
        sigstore_table(instance="prodution"),
        'sigstore[0].instance: expected one of "production", "staging", got "prodution"; '
        'did you mean "production"?',
    ),
    (sigstore_table(instance=1), "sigstore[0].instance: expected an instance, got an integer"),
    (sigstore_table(root="root.json"), "sigstore[0].root: only with url: instance"),
    (sigstore_table(name="Prod"), "sigstore[0].name: expected a name of lowercase letters"),
    (custom(root=None), "sigstore[0].root: missing (required with url: the path of"),
    (custom(name=None), "sigstore[0].name: missing (required with url: the name"),
    (custom(url="http://tuf.example"), 'sigstore[0].url: https is required for "tuf.example"'),
    (custom(url="https://u:p@tuf.example"), "sigstore[0].url: credentials (user:password@)"),
    (
        custom(url="ftp://tuf.example"),
        'sigstore[0].url: expected an http:// or https:// URL, got a "ftp" URL',
    ),
    (custom(url="https://tuf.example/?x=1"), "sigstore[0].url: a query (?...) or fragment"),
    (custom(root="missing.json"), "sigstore[0].root: cannot read TUF root"),
    (custom(root=3), "sigstore[0].root: expected the path of a TUF root.json, got an integer"),
    (sigstore_table(refresh="0s"), 'sigstore[0].refresh: must be at least 1s, got "0s"'),
    (sigstore_table(refresh="8d"), 'sigstore[0].refresh: must be at most 7d, got "8d"'),
    (sigstore_table(refresh=60), "sigstore[0].refresh: expected a duration"),
    (sigstore_table(refresh="soon"), "sigstore[0].refresh: expected a duration"),
    (sigstore_table(scan="yes"), "sigstore[0].scan: expected true or false, got a string"),
    (
        sigstore_table(allow_insecure_http=1),
        "sigstore[0].allow_insecure_http: expected true or false, got an integer",
    ),
    (sigstore_table(exclude="https://x.example"), "sigstore[0].exclude: expected an array"),
    (
        sigstore_table(exclude=["ftp://x.example"]),
        "sigstore[0].exclude[0]: expected an http:// or https:// URL",
    ),
    (
        sigstore_table(exclude=["https://x.example/", "HTTPS://X.example"]),
        "sigstore[0].exclude[1]: duplicate of exclude[0] once normalised",
    ),
    (
        sigstore_table(exclude=["https://a:b@x.example"]),
        "sigstore[0].exclude[0]: credentials (user:password@) are not allowed",
    ),
    (PRODUCTION + PRODUCTION, 'sigstore[1].name: duplicate name "production" (also sigstore[0])'),
    (
        PRODUCTION + custom(url="https://tuf-repo-cdn.sigstore.dev/"),
        'sigstore[1].url: the TUF repository "https://tuf-repo-cdn.sigstore.dev" is also '
        "sigstore[0]; one [[sigstore]] per repository",
    ),
    (
        sigstore_table(instance="staging", name="a") + sigstore_table(instance="staging", name="b"),
        'sigstore[1].instance: the TUF repository "https://tuf-repo-cdn.sigstage.dev" is also '
        "sigstore[0]",
    ),
    (
        LOG + sigstore_table(name="rekor"),
        'sigstore[0].name: "rekor" is also the name of log[0]',
    ),
    (
        PRODUCTION * (MAX_SIGSTORE + 1),
        f"sigstore: too many [[sigstore]] tables: {MAX_SIGSTORE + 1}, at most {MAX_SIGSTORE}",
    ),
    (
        PRODUCTION + watch_table(logs=["prodution"]),
        'watch[0].logs[0]: no [[log]] or [[sigstore]] named "prodution"; '
        'did you mean "production"?',
    ),
    (LOG + watch_table(logs=["production"]), 'watch[0].logs[0]: no [[log]] named "production"'),
]


@pytest.mark.parametrize(
    ("text", "expected"), SIGSTORE_ERRORS, ids=[e[1][:60] for e in SIGSTORE_ERRORS]
)
def test_errors(tmp_path: Path, text: str, expected: str) -> None:
    with_root(tmp_path)
    message = fail(tmp_path, text)
    assert message.startswith(expected), message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe not utf-8", "is not JSON"),
        (b"{", "is not JSON"),
        (b'{"signed": NaN}', "is not JSON"),
        (b"[1, 2]", "is not a TUF root.json"),
        (b'{"signed": {"_type": "targets"}}', "is not a TUF root.json"),
        (b'{"signed": []}', "is not a TUF root.json"),
        (b"[" * 100_000 + b"]" * 100_000, "is not JSON"),
        (b" " * MAX_TUF_ROOT_BYTES + b"{}", f"is larger than {MAX_TUF_ROOT_BYTES // 1024} KiB"),
    ],
    ids=["binary", "truncated", "nan", "array", "targets", "signed-array", "deep", "huge"],
)
def test_bad_root_files(tmp_path: Path, content: bytes, expected: str) -> None:
    with_root(tmp_path, content)
    message = fail(tmp_path, custom())
    assert message.startswith('sigstore[0].root: "'), message
    assert expected in message, message


def test_root_larger_than_the_limit_is_not_read_whole(tmp_path: Path) -> None:
    # A bootstrap pointed at a device or a huge file must not be read into memory.
    path = with_root(tmp_path, b"")
    with path.open("wb") as file:
        file.truncate(64 * MAX_TUF_ROOT_BYTES)  # sparse
    assert "is larger than" in fail(tmp_path, custom())


# --- watch rules, warnings, redaction ------------------------------------------------------


def _discovered(name: str, source: str | None) -> LogConfig:
    return LogConfig(
        name=name,
        type=LogType.TILES,
        url=f"https://{name}.example",
        trust_root=None,
        public_key_pem=None,
        public_key_file=None,
        origin=None,
        views=(),
        scan=True,
        start=None,
        interval=timedelta(seconds=60),
        max_stale=timedelta(minutes=30),
        requests_per_minute=600,
        allow_insecure_http=False,
        source=source,
    )


def test_rules_may_name_a_source(tmp_path: Path) -> None:
    text = (
        LOG
        + PRODUCTION
        + sigstore_table(instance="staging")
        + watch_table(name="prod-only", logs=["production"])
        + watch_table(name="everywhere")
        + watch_table(name="rekor-only", logs=["rekor"])
        + watch_table(name="both", logs=["rekor", "staging"])
    )
    config = load(tmp_path, text)
    rules = {
        log.name: [r.name for r in config.rules_for(log)]
        for log in (
            config.log("rekor"),
            _discovered("production-x", "production"),
            _discovered("staging-x", "staging"),
        )
    }
    assert rules == {
        "rekor": ["everywhere", "rekor-only", "both"],
        "production-x": ["prod-only", "everywhere"],
        "staging-x": ["everywhere", "both"],
    }
    # A discovered log is not selected by its own name unless a rule lists it.
    assert config.rules_for_log("rekor") == config.rules_for(config.log("rekor"))
    shown = config.redacted()["watch"]
    assert isinstance(shown, list)
    assert [(r["logs"], r["sigstore"]) for r in shown] == [
        ([], ["production"]),
        (["rekor"], ["production", "staging"]),
        (["rekor"], []),
        (["rekor"], ["staging"]),
    ]


@pytest.mark.parametrize(
    ("text", "blind"),
    [
        (PRODUCTION + watch_table(), False),  # scanned shards feed it
        (sigstore_table(scan=False) + watch_table(), True),
        (sigstore_table(scan=False) + watch_table(search=["x@example.com"]), False),  # v1 index
        (LOG + PRODUCTION + watch_table(logs=["rekor"]), True),  # the source is not its log
        (LOG + PRODUCTION + watch_table(logs=["production"]), False),
        (LOG + sigstore_table(scan=False) + watch_table(logs=["production"]), True),
    ],
    ids=["scan", "no-scan", "no-scan-search", "other-log", "named", "named-no-scan"],
)
def test_can_see_no_entries_warning(tmp_path: Path, text: str, blind: bool) -> None:
    warnings = load(tmp_path, CHANNELS + text).warnings
    assert any("can see no entries" in w for w in warnings) is blind, warnings


def test_redacted_shows_each_source(tmp_path: Path) -> None:
    root = with_root(tmp_path)
    config = load(tmp_path, PRODUCTION + custom(exclude=["https://log.example/"]))
    shown = config.redacted()
    json.dumps(shown)
    assert shown["sigstore"] == [
        {
            "name": "production",
            "instance": "production",
            "url": "https://tuf-repo-cdn.sigstore.dev",
            "targets_url": "https://tuf-repo-cdn.sigstore.dev/targets",
            "root": "the root.json embedded in sigstore-python",
            "root_sha256": hashlib.sha256(embedded_tuf_root("production")).hexdigest(),
            "refresh": "6h",
            "scan": True,
            "scan_ct": False,
            "exclude": [],
            "allow_insecure_http": False,
            "cache_dir": str(tmp_path / "tuf" / "production"),
            "logs": "discovered from the trusted root at run time",
        },
        {
            "name": "private",
            "instance": None,
            "url": "https://tuf.internal.example",
            "targets_url": "https://tuf.internal.example/targets",
            "root": str(root),
            "root_sha256": hashlib.sha256(root.read_bytes()).hexdigest(),
            "refresh": "6h",
            "scan": True,
            "scan_ct": False,
            "exclude": ["https://log.example"],
            "allow_insecure_http": False,
            "cache_dir": str(tmp_path / "tuf" / "private"),
            "logs": "discovered from the trusted root at run time",
        },
    ]


def test_config_check_counts_the_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CHANNELS + LOG + PRODUCTION + sigstore_table(instance="staging"))
    assert main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert [s["name"] for s in json.loads(out)["sigstore"]] == ["production", "staging"]
    assert err == (
        "tlog-monitor: note: 2 [[sigstore]] sources (production, staging): their logs are "
        "discovered from their TUF repositories at run time (`tlog-monitor report status` "
        "lists them)\n"
    )
    path = write(tmp_path, CHANNELS + LOG)
    assert main(["--config", str(path), "config", "check"]) == 0
    assert capsys.readouterr().err == ""


# --- the shipped example -------------------------------------------------------------------


def test_shipped_config_follows_production() -> None:
    config = load_config(REPO / "config.toml", environ={})
    assert config.logs == ()
    (source,) = config.sigstore
    assert (source.name, source.instance, source.scan) == (
        "production",
        SigstoreInstance.PRODUCTION,
        True,
    )
    assert source.cache_dir == REPO / "tuf" / "production"
    # Its rule sees the scanned shards: the only warning is about notify channels.
    assert len(config.warnings) == 1 and "no [[notify]] channels" in config.warnings[0]


def test_shipped_config_commented_log_examples_load(tmp_path: Path) -> None:
    """The commented [[log]] override and pinned-log examples, uncommented, are valid."""
    text = (REPO / "config.toml").read_text()
    blocks = [b for b in text.split("\n\n") if "# [[log]]" in b]
    assert blocks, "config.toml shows a commented [[log]] example"
    enabled = text
    for block in blocks:
        lines = [line for line in block.splitlines() if line.startswith("# ")]
        start = next(i for i, line in enumerate(lines) if line.startswith("# [[log]]"))
        enabled += "\n" + "\n".join(line[2:] for line in lines[start:]) + "\n"
    (tmp_path / "keys").mkdir()
    pem = (REPO / "tests/data/rekor-production/rekor_v1_prod.pub.pem").read_text()
    (tmp_path / "keys" / "private-rekor.pub.pem").write_text(pem)
    config = load(tmp_path, enabled)
    assert config.logs and all(log.source is None for log in config.logs)
