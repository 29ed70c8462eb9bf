"""The live TUF trust source against a real TUF repository served on 127.0.0.1 (tests/tuf_repo.py):
updates are followed, every TUF failure is a typed `TrustSourceError` and the last good copy
survives it, also across restarts (the cache)."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from monitor.config.trust_roots import embedded_tuf_root
from monitor.config.tuf_source import (
    FetchedTrust,
    TrustSourceError,
    TrustSourceFailure,
    TufSource,
    TufVersions,
)
from monitor.core.keys import KeyLoadError
from tests.tuf_repo import TufRepo, serve

ROOT_V1 = b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'
SIGNING_V1 = b'{"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"}'


@pytest.fixture
def repo(tmp_path: Path) -> TufRepo:
    return TufRepo(
        tmp_path / "repo", {"trusted_root.json": ROOT_V1, "signing_config.v0.2.json": SIGNING_V1}
    )


@pytest.fixture
def url(repo: TufRepo) -> Iterator[str]:
    with serve(repo.directory) as base:
        yield base


def source(url: str, repo: TufRepo, cache: Path) -> TufSource:
    return TufSource(url, f"{url}/targets", cache, repo.bootstrap, timeout=5)


def refused(src: TufSource, reason: TrustSourceFailure) -> TrustSourceError:
    with pytest.raises(TrustSourceError) as caught:
        src.refresh()
    assert caught.value.reason is reason, caught.value
    return caught.value


def test_first_refresh_fetches_the_targets(repo: TufRepo, url: str, tmp_path: Path) -> None:
    src = source(url, repo, tmp_path / "cache")
    assert src.last_good() is None
    got = src.refresh()
    assert got == FetchedTrust(ROOT_V1, SIGNING_V1, TufVersions(1, 1, 1, 1))
    assert src.last_good() == got
    # The cache decides what is trusted: nobody else may read or change it.
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700


def test_a_new_targets_version_is_picked_up(repo: TufRepo, url: str, tmp_path: Path) -> None:
    src = source(url, repo, tmp_path / "cache")
    src.refresh()
    repo.publish_targets({"trusted_root.json": b'{"v": 2}'})
    got = src.refresh()
    assert got.trusted_root == b'{"v": 2}'
    assert got.signing_config is None  # no longer published
    assert got.versions == TufVersions(root=1, timestamp=2, snapshot=2, targets=2)


def test_expired_timestamp_keeps_the_last_good(repo: TufRepo, url: str, tmp_path: Path) -> None:
    src = source(url, repo, tmp_path / "cache")
    good = src.refresh()
    repo.publish_targets({"trusted_root.json": b'{"v": 2}'})
    repo.expire_timestamp()
    error = refused(src, TrustSourceFailure.EXPIRED)
    assert "last good trust is kept" in str(error)
    assert src.last_good() == good
    # A restarted monitor, too, starts from the last good copy.
    assert source(url, repo, tmp_path / "cache").last_good() == good


def test_targets_rollback_is_refused(repo: TufRepo, url: str, tmp_path: Path) -> None:
    src = source(url, repo, tmp_path / "cache")
    src.refresh()
    repo.publish_targets({"trusted_root.json": b'{"v": 2}'})
    good = src.refresh()
    repo.rollback_targets()
    refused(src, TrustSourceFailure.ROLLBACK)
    assert src.last_good() == good


def test_metadata_signed_by_the_wrong_key_is_refused(
    repo: TufRepo, url: str, tmp_path: Path
) -> None:
    src = source(url, repo, tmp_path / "cache")
    good = src.refresh()
    repo.sign_timestamp_with_wrong_key()
    refused(src, TrustSourceFailure.BAD_SIGNATURE)
    assert src.last_good() == good


def test_a_target_that_fails_its_hash_is_refused(tmp_path: Path, repo: TufRepo, url: str) -> None:
    repo.corrupt_target("trusted_root.json")
    src = source(url, repo, tmp_path / "cache")
    refused(src, TrustSourceFailure.HASH_MISMATCH)
    assert src.last_good() is None


def test_a_root_rotation_is_followed(repo: TufRepo, url: str, tmp_path: Path) -> None:
    src = source(url, repo, tmp_path / "cache")
    src.refresh()
    repo.rotate_root()
    repo.publish_targets({"trusted_root.json": b'{"v": 2}'})
    got = src.refresh()
    assert got.versions.root == 2
    assert got.trusted_root == b'{"v": 2}'


def test_unreachable_then_offline_start_from_the_cache(repo: TufRepo, tmp_path: Path) -> None:
    with serve(repo.directory) as base:
        good = source(base, repo, tmp_path / "cache").refresh()
    # The server is gone: its port now refuses connections.
    restarted = source(base, repo, tmp_path / "cache")
    error = refused(restarted, TrustSourceFailure.UNREACHABLE)
    assert base.removeprefix("http://") in str(error)
    assert restarted.last_good() == good


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_no_server_at_all_and_no_cache(repo: TufRepo, tmp_path: Path) -> None:
    src = source(f"http://127.0.0.1:{closed_port()}", repo, tmp_path / "cache")
    refused(src, TrustSourceFailure.UNREACHABLE)
    assert src.last_good() is None


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b'{"trusted_root": "@@", "signing_config": null}', b"[]", b"{}"],
)
def test_a_corrupt_cache_is_reported_not_trusted(
    repo: TufRepo, url: str, tmp_path: Path, content: bytes
) -> None:
    source(url, repo, tmp_path / "cache").refresh()
    (tmp_path / "cache" / "last_good.json").write_bytes(content)
    with pytest.raises(TrustSourceError) as caught:
        source(url, repo, tmp_path / "cache").last_good()
    assert caught.value.reason is TrustSourceFailure.CACHE
    assert "delete it" in str(caught.value)


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [(b'"root": 1', b'"root": 0', "out of range"), (b'"sha256": "', b'"sha256": "0', "checksum")],
)
def test_a_tampered_cached_copy_is_refused(
    repo: TufRepo, url: str, tmp_path: Path, before: bytes, after: bytes, says: str
) -> None:
    source(url, repo, tmp_path / "cache").refresh()
    path = tmp_path / "cache" / "last_good.json"
    path.write_bytes(path.read_bytes().replace(before, after))
    with pytest.raises(TrustSourceError, match=says):
        source(url, repo, tmp_path / "cache").last_good()


async def test_refresh_async_runs_in_a_thread(repo: TufRepo, url: str, tmp_path: Path) -> None:
    got = await source(url, repo, tmp_path / "cache").refresh_async()
    assert got.trusted_root == ROOT_V1


@pytest.mark.parametrize("instance", ["production", "staging"])
def test_the_embedded_bootstrap_roots_are_tuf_roots(instance: str, tmp_path: Path) -> None:
    data = embedded_tuf_root(instance)
    assert Metadata.from_bytes(data).signed.type == "root"
    # ngclient accepts it as a bootstrap root (the constructor verifies its self-signatures);
    # an unreachable repository is then the only failure.
    base = f"http://127.0.0.1:{closed_port()}"
    src = TufSource(f"{base}/m", f"{base}/t", tmp_path, data, timeout=2)
    refused(src, TrustSourceFailure.UNREACHABLE)


def test_an_unknown_instance_has_no_embedded_root() -> None:
    with pytest.raises(KeyLoadError, match="'production' or 'staging'"):
        embedded_tuf_root("prod")


def test_a_bad_bootstrap_root_is_invalid(tmp_path: Path) -> None:
    src = TufSource("http://127.0.0.1:9/m", "http://127.0.0.1:9/t", tmp_path, b"{not json")
    refused(src, TrustSourceFailure.INVALID)
