"""Scan throughput and memory, measured against the sandbox log (`make bench`).

The sandbox runs in its own process; this process is the monitor. For each log type it measures,
on the same entries in the same run:

  floor  the entries only fetched and leaf-hashed into a compact range (no parsing, no matching,
         no database): the cost any scanner pays;
  scan   the monitor end to end: poll, verify the checkpoint, fetch, prove every entry into the
         verified tree, pre-filter, parse and match, commit matches, alerts and cursor to SQLite.

and prints entries per second for both and their ratio. Last, it scans a long tiled log and
prints this process's peak resident memory (the sandbox's is not counted).

    python -m bench [--tiles N] [--v1 N] [--memory N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.config.settings import load_config
from monitor.core.merkle import CompactRange, leaf_hash
from monitor.core.note import parse_vkey
from monitor.logs.http import HttpPolicy
from monitor.logs.rekor_v1.client import RekorV1Client
from monitor.logs.tiles.client import TilesClient
from monitor.service.daemon import open_monitor
from monitor.service.wiring import RekorV1Source, TilesSource

REPO = "https://github.com/example/project"
GITHUB = "https://token.actions.githubusercontent.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sandbox(state: Path) -> Iterator[str]:
    """A sandbox log in its own process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli.main",
            "sandbox",
            "--port",
            str(port),
            "--state",
            str(state),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


async def admin(session: aiohttp.ClientSession, url: str, path: str, body: object = None) -> dict:
    method = session.post if body is not None else session.get
    async with method(f"{url}/admin/{path}", json=body) as r:
        r.raise_for_status()
        result: dict = await r.json()
        return result


async def fill(url: str, log: str, count: int) -> None:
    """`count` entries of noise with a few watched identities among them."""
    async with aiohttp.ClientSession() as s:
        done = 0
        while done < count:
            n = min(200_000, count - done)
            await admin(s, url, "append", {"log": log, "count": n})
            done += n
        for identity in (
            {"uri": f"{REPO}/.github/workflows/release.yml@refs/tags/v1", "issuer": GITHUB},
            {"uri": f"{REPO}/.github/workflows/other.yml@refs/heads/main", "issuer": GITHUB},
            {"email": "security@example.com"},
        ):
            await admin(s, url, "append", {"log": log, "count": 1, "identity": identity})


def write_config(work: Path, url: str, state: dict, log: str, start: int) -> Path:
    verifier = parse_vkey(state["tiles"]["vkey"])
    pem = Ed25519PublicKey.from_public_bytes(verifier.public_bytes).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (work / "tiles.pem").write_bytes(pem)
    (work / "v1.pem").write_text(state["v1"]["publicKey"])
    if log == "tiles":
        entry = (
            f'type = "tiles"\nurl = "{url}/tiles"\npublic_key = "tiles.pem"\n'
            f'origin = "{state["tiles"]["origin"]}"\nrequests_per_minute = 60000'
        )
    else:
        entry = (
            f'type = "rekor-v1"\nurl = "{url}"\npublic_key = "v1.pem"\n'
            f'origin = "{state["v1"]["keyName"]}"\nrequests_per_minute = 60000'
        )
    path = work / f"{log}.toml"
    path.write_text(
        f"""
[monitor]
database = "{log}.db"
http_listen = ""
[[log]]
name = "bench"
{entry}
scan = true
start = {start}
fulcio_roots = "ca.pem"
[[watch]]
name = "release"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/*"
allowed_signers = ["{REPO}/.github/workflows/release.yml@refs/tags/*"]
[[watch]]
name = "email"
issuer = "https://accounts.google.com"
email = "security@example.com"
"""
    )
    return path


async def floor(url: str, log: str, state: dict) -> tuple[int, float]:
    """Fetch every entry and leaf-hash it into a compact range: nothing else."""
    policy = HttpPolicy()
    async with aiohttp.ClientSession() as session:
        if log == "tiles":
            size = state["tiles"]["treeSize"]
            source: TilesSource | RekorV1Source = TilesSource(
                TilesClient(session, f"{url}/tiles", policy)
            )
            tree = "tiles"
        else:
            size = state["v1"]["treeSize"]
            source = RekorV1Source(RekorV1Client(session, url, policy))
            await source.heads()
            tree = state["v1"]["treeID"]
        began = time.perf_counter()
        cr = CompactRange()
        for start in range(0, size, 4096):
            for body in await source.entries(tree, start, min(size, start + 4096), size):
                cr.append(leaf_hash(body))
        return size, time.perf_counter() - began


async def scan(config: Path) -> tuple[int, float, int]:
    """The monitor end to end (one check: poll, scan, commit); returns entries, seconds and
    the alerts raised."""
    cfg = load_config(config)
    began = time.perf_counter()
    async with open_monitor(cfg) as m:
        outcome = await m.poll("bench")
        state = m.store.store.log_states()[0]
    elapsed = time.perf_counter() - began
    if outcome.errors:
        raise SystemExit(f"scan failed: {outcome.errors}")
    return state.scan_cursor or 0, elapsed, len(outcome.alerts)


async def measure(work: Path, url: str, log: str) -> None:
    async with aiohttp.ClientSession() as s:
        state = await admin(s, url, "state")
        async with s.get(f"{url}/admin/ca.pem") as r:
            (work / "ca.pem").write_bytes(await r.read())
    config = write_config(work, url, state, log, start=0)
    n_floor, t_floor = await floor(url, log, state)
    n_scan, t_scan, alerts = await scan(config)
    f, sc = n_floor / t_floor, n_scan / t_scan
    print(
        f"{log:5}  entries {n_scan:>9,}  floor {f:>10,.0f}/s  scan {sc:>10,.0f}/s  "
        f"scan/floor {sc / f:5.2f}  alerts {alerts}"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    logging.getLogger("monitor").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=200_000, help="entries for the tiles figures")
    parser.add_argument("--v1", type=int, default=20_000, help="entries for the v1 figures")
    parser.add_argument("--memory", type=int, default=1_000_000, help="entries for the memory run")
    parser.add_argument("--scan-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_only:
        await scan_only(args.scan_only)
        return
    print(
        f"tlog-monitor scan benchmark ({os.cpu_count()} CPUs; sandbox in its own process; "
        "requests_per_minute raised to 60000 so the figures measure the scanner, not the "
        "politeness budget)"
    )
    with tempfile.TemporaryDirectory(prefix="tlog-bench-") as tmp:
        work = Path(tmp)
        with sandbox(work / "sandbox") as url:
            await fill(url, "tiles", args.tiles)
            await fill(url, "v1", args.v1)
            await measure(work, url, "tiles")
            await measure(work, url, "v1")
        if args.memory:
            with sandbox(work / "sandbox-long") as url:
                await fill(url, "tiles", args.memory)
                async with aiohttp.ClientSession() as s:
                    state = await admin(s, url, "state")
                    async with s.get(f"{url}/admin/ca.pem") as r:
                        (work / "ca.pem").write_bytes(await r.read())
                config = write_config(work, url, state, "tiles", start=0)
                (work / "tiles.db").unlink(missing_ok=True)
                # A fresh process, so its peak memory is the long scan's alone.
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench", "--scan-only", str(config),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, _ = await child.communicate()
            n, t, rss = json.loads(out)
            print(
                f"memory: scanned {n:,} tiles entries in {t:.1f} s ({n / t:,.0f}/s) in a fresh "
                f"process; its peak RSS {rss:.0f} MB"
            )


async def scan_only(config: Path) -> None:
    """The child of the memory run: one scan, then (entries, seconds, peak RSS MB) as JSON."""
    logging.getLogger("monitor").setLevel(logging.ERROR)
    n, t, _ = await scan(config)
    print(json.dumps([n, t, peak_rss_mb()]))


if __name__ == "__main__":
    asyncio.run(main())
