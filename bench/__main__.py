"""What users run into, measured against the sandbox log (`make bench`).

The sandbox serves the tiled log from its own process on 127.0.0.1; this process is the monitor,
and CPU figures are this process's CPU time (every thread) per entry. The log holds realistic
entries: hashedrekord 0.0.2 bodies of about 2 KB, in batches of 1,000 per identity, 70 % of the
batches GitHub Actions workflow certificates with every Fulcio extension and 30 % e-mail
certificates, plus three entries of the watched identities. On the same entries, interleaved
over `--rounds` rounds in one run (each scan a fresh `check` from entry 0 into a new database):

  floor     fetch every entry bundle (8 in flight), split it, leaf-hash each entry, fold the
            tree, check the root against the checkpoint: what any scanner of the log pays;
  scan      the monitor end to end with two ordinary rules (a workflow rule with
            `allowed_signers`, an e-mail rule): poll, verify the checkpoint, fetch, prove every
            entry into the verified tree, pre-filter, parse and match, commit to SQLite;
  regex     the same plus a rule with no single literal every match contains (`any_issuer` and
            a `san_regex` of two alternatives), which matches nothing here;
  digits    the same plus a rule with nothing literal at all (`any_issuer`, `san_regex =
            ".*[0-9]{7}.*"`), which matches nothing here;
  san *     the same plus `any_issuer` and `san = "*"`: a rule every entry matches, so every
            entry is parsed, matched and recorded with an alert (the cost of the flood).

Then the same sandbox's certificate transparency logs, each filled with `--ct` / `--static-ct`
entries (30,000 by default: about 45 s for both, three rounds) of the local CA's Fulcio-like
certificates (the same mix of identities, 100 entries each, x509_entry and precert_entry
alternating, plus the three watched identities'; the RFC 6962 log also holds the precertificate
the CA logs for each certificate it mints), interleaved over the same rounds:

  floor     ct: get-sth with its signature checked, every entry through get-entries (256 per
            request, 8 in flight), each MerkleTreeLeaf parsed, leaf-hashed and folded, the root
            checked against the STH; static-ct: the checkpoint verified, every data tile (8 in
            flight) split into its TileLeaf entries, leaf-hashed and folded, the root checked;
  scan      a fresh `check` of that log alone with the two ordinary rules (each certificate
            read and matched, every entry proven into the verified tree, committed to SQLite),

with the entries/s the log type's default request budget allows next to them.

Then one Rekor v1 search poll (in-process sandbox): 50 watched e-mails with one new entry each,
the requests it took next to the minimum (tests/integration/test_search_requests.py), and what
the default request budgets allow.

Then a long backfill (`--backfill`, 1,000,000 entries by default, in a sandbox of its own): a
fresh scan in one process against one with a worker process per CPU, interleaved over three
rounds, each in a fresh process: entries/s, the speed-up, the peak proportional set size of the
scan and its workers together, and the CPU the log server took on the same CPUs (it serves each
entry bundle from its file with sendfile, as a static tiles log does).

    python -m bench [--tiles N] [--ct N] [--static-ct N] [--rounds N] [--memory N]
                    [--backfill N [--backfill-workers W] [--backfill-only]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.config.settings import DEFAULT_REQUESTS_PER_MINUTE, LogType, load_config
from monitor.core.ct import ct_leaf_hash, parse_merkle_tree_leaf
from monitor.core.merkle import CompactRange, leaf_hash
from monitor.core.note import (
    Rfc6962NoteVerifier,
    parse_digitally_signed,
    parse_vkey,
    tree_head_signature_input,
    verify_checkpoint,
)
from monitor.logs.ct.client import ENTRIES_PER_REQUEST, CtClient
from monitor.logs.ct.static import StaticCtClient
from monitor.logs.http import HttpPolicy, gather_bounded
from monitor.logs.tiles.client import TILE_WIDTH, TilesClient, tile_width
from monitor.sandbox import Sandbox
from monitor.service.daemon import open_monitor
from monitor.service.wiring import TILES_TREE, TilesSource

REPO = "https://github.com/example/project"
GITHUB = "https://token.actions.githubusercontent.com"
GOOGLE = "https://accounts.google.com"
BATCH = 1000
"""Entries per identity, as real signers sign in bursts."""

ORDINARY = f"""
[[watch]]
name = "release"
issuer = "{GITHUB}"
san = "{REPO}/.github/workflows/*"
allowed_signers = ["{REPO}/.github/workflows/release.yml@refs/tags/*"]
[[watch]]
name = "email"
issuer = "{GOOGLE}"
email = "security@example.com"
"""
WILDCARDS = {
    "regex": (
        "any_issuer + san_regex (alternatives)",
        '[[watch]]\nname = "wild"\nany_issuer = true\nsan_regex = '
        "'https://github\\.com/(acme|initech)/[^/]+/\\.github/workflows/.+"
        "|[^@]+@(acme|initech)\\.example'\n",
    ),
    "digits": (
        "any_issuer + san_regex (no literal)",
        '[[watch]]\nname = "wild"\nany_issuer = true\nsan_regex = ".*[0-9]{7}.*"\n',
    ),
    "san *": (
        'any_issuer + san = "*" (matches all)',
        '[[watch]]\nname = "wild"\nany_issuer = true\nsan = "*"\n',
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SERVERS: dict[str, int] = {}
"""The process id of each sandbox log this run serves, by its URL."""


def server_cpu(url: str) -> float:
    """CPU seconds the sandbox log at `url` has used so far (it shares this machine's CPUs)."""
    fields = Path(f"/proc/{_SERVERS[url]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def sandbox(state: Path) -> Iterator[str]:
    """A sandbox log in its own process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli.main", "sandbox", "--port", str(port),
         "--state", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _SERVERS[url] = proc.pid
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


def identities(count: int, seed: int = 16, batch: int = BATCH) -> list[dict[str, object]]:
    """One identity per batch of `batch` entries: 70 % GitHub workflows, 30 % e-mails."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for n in range((count + batch - 1) // batch):
        if rng.random() < 0.7:
            org, repo = f"org{rng.randrange(10_000)}", f"repo-{rng.randrange(100_000)}"
            workflow = rng.choice(["build", "release", "publish", "ci"])
            ref = rng.choice(["refs/heads/main", f"refs/tags/v{n % 10}.{n % 7}.0"])
            uri = f"https://github.com/{org}/{repo}/.github/workflows/{workflow}.yml@{ref}"
            out.append({"uri": uri, "issuer": GITHUB})
        else:
            out.append({"email": f"dev{rng.randrange(1_000_000)}@example.org", "issuer": GOOGLE})
    return out


WATCHED: tuple[dict[str, object], ...] = (
    {"uri": f"{REPO}/.github/workflows/release.yml@refs/tags/v1", "issuer": GITHUB},
    {"uri": f"{REPO}/.github/workflows/other.yml@refs/heads/main", "issuer": GITHUB},
    {"email": "security@example.com", "issuer": GOOGLE},
)
"""The watched identities' entries, one each: two alerts and one unexpected signer."""


async def fill(url: str, count: int) -> None:
    """`count` realistic entries, then the three watched identities (two alerts, one
    unexpected signer)."""
    async with aiohttp.ClientSession() as s:
        left = count
        for identity in identities(count):
            n = min(BATCH, left)
            await admin(s, url, "append", {"log": "tiles", "count": n, "identity": identity})
            left -= n
        for identity in WATCHED:
            await admin(s, url, "append", {"log": "tiles", "count": 1, "identity": identity})


def write_config(work: Path, url: str, state: dict, name: str, rules: str) -> Path:
    verifier = parse_vkey(state["tiles"]["vkey"])
    pem = Ed25519PublicKey.from_public_bytes(verifier.public_bytes).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (work / "tiles.pem").write_bytes(pem)
    path = work / f"{name}.toml"
    path.write_text(
        f"""
[monitor]
database = "{name}.db"
http_listen = ""
[[log]]
name = "bench"
type = "tiles"
url = "{url}/tiles"
public_key = "tiles.pem"
origin = "{state["tiles"]["origin"]}"
requests_per_minute = 60000
scan = true
start = 0
fulcio_roots = "ca.pem"
{ORDINARY}
{rules}
"""
    )
    return path


@dataclass
class Run:
    entries: int
    seconds: float
    cpu: float
    alerts: int = 0

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.entries * 1e6

    @property
    def rate(self) -> float:
        return self.entries / self.seconds


async def floor(url: str, state: dict) -> Run:
    """Fetch every bundle (8 in flight), split, leaf-hash, fold and check the root against the
    checkpoint: nothing else."""
    policy = HttpPolicy()
    async with aiohttp.ClientSession() as session:
        client = TilesClient(session, f"{url}/tiles", policy, concurrency=8)
        began, cpu = time.perf_counter(), time.process_time()
        note = await client.checkpoint()
        checkpoint = verify_checkpoint(
            note, [parse_vkey(state["tiles"]["vkey"])], state["tiles"]["origin"]
        ).checkpoint
        size = checkpoint.size
        cr = CompactRange()
        step = 16 * TILE_WIDTH
        source = TilesSource(client)  # each call: its 16 bundles fetched 8 at a time, split
        for start in range(0, size, step):
            bodies = await source.entries(TILES_TREE, start, min(size, start + step), size)
            cr.extend([leaf_hash(body) for body in bodies])
        if cr.root() != checkpoint.root:
            raise SystemExit("floor: the entries do not fold to the checkpoint's root")
        return Run(size, time.perf_counter() - began, time.process_time() - cpu)


async def scan(config: Path, workers: int | None = None) -> Run:
    """The monitor end to end: one check (poll, scan, commit) of a fresh database (`workers`:
    the scanner's worker processes for a long backfill, when given)."""
    cfg = load_config(config)
    began, cpu = time.perf_counter(), time.process_time()
    async with open_monitor(cfg) as m:
        if workers is not None:
            m.scanners["bench"].workers = workers
        outcome = await m.poll("bench")
        state = m.store.store.log_states()[0]
    elapsed, used = time.perf_counter() - began, time.process_time() - cpu
    if outcome.errors:
        raise SystemExit(f"scan failed: {outcome.errors}")
    return Run(state.scan_cursor or 0, elapsed, used, len(outcome.alerts))


def spread(values: list[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


async def tiles_figures(work: Path, url: str, rounds: int) -> None:
    async with aiohttp.ClientSession() as s:
        state = await admin(s, url, "state")
        async with s.get(f"{url}/admin/ca.pem") as r:
            (work / "ca.pem").write_bytes(await r.read())
    kinds = ["scan", *WILDCARDS]
    runs: dict[str, list[Run]] = {k: [] for k in ["floor", *kinds]}
    for n in range(rounds):
        runs["floor"].append(await floor(url, state))
        for kind in kinds:
            rules = "" if kind == "scan" else WILDCARDS[kind][1]
            name = f"{kind.replace(' *', '-all')}-{n}"
            runs[kind].append(await scan(write_config(work, url, state, name, rules)))
    entries = runs["floor"][0].entries
    print(f"\ntiles: {entries:,} entries, {rounds} rounds (min / median / max)")
    print(f"  {'':38} {'CPU µs/entry':>22}  {'entries/s':>26}  alerts")
    for kind in ["floor", *kinds]:
        label = "floor" if kind == "floor" else ("scan, two ordinary rules" if kind == "scan" else
                                                 f"+ {WILDCARDS[kind][0]}")  # fmt: skip
        rs = runs[kind]
        alerts = "" if kind == "floor" else str(rs[0].alerts)
        print(
            f"  {label:38} {spread([r.cpu_us for r in rs], '6.1f'):>22}  "
            f"{spread([r.rate for r in rs], '8,.0f'):>26}  {alerts}"
        )
    ratios = [f.cpu_us / s.cpu_us for f, s in zip(runs["floor"], runs["scan"], strict=True)]
    print(f"  floor/scan CPU per entry: {spread(ratios, '.2f')} (goal >= 0.5)")
    for kind in WILDCARDS:
        penalty = [w.cpu_us / s.cpu_us for w, s in zip(runs[kind], runs["scan"], strict=True)]
        goal = "" if kind == "san *" else " (goal <= 3x)"
        print(f"  {WILDCARDS[kind][0]} / scan: {spread(penalty, '.1f')}x{goal}")
    rpm = DEFAULT_REQUESTS_PER_MINUTE[LogType.TILES]
    print(
        f"  (the bench raises requests_per_minute to 60000; the default budget of {rpm} "
        f"requests/minute caps a tiles scan at {rpm * TILE_WIDTH // 60:,} entries/s: one "
        f"request per {TILE_WIDTH}-entry bundle)"
    )


CT_ENTRIES = 30_000
"""Entries the bench appends to each CT log by default (a CT scan is slower per entry than a
tiles scan: every entry is a certificate to parse)."""
CT_BATCH = 100
"""Entries per identity in the CT logs: a CT log holds one entry per certificate (two with its
precertificate), so more, smaller bursts than the tiles log's."""
CT_ORIGINS = {"ct": "sandbox.ct.local", "static-ct": "sandbox.static-ct.local"}
CT_LABELS = {"ct": "ct (RFC 6962)", "static-ct": "static-ct (C2SP static-ct-api)"}


async def fill_ct(url: str, log: str, count: int) -> None:
    """`count` CT entries of realistic certificates (x509_entry and precert_entry alternating),
    then the three watched identities' (two certificate_issued, one unexpected_signer). The CA
    also logs each new certificate's precertificate to the RFC 6962 log when it mints it."""
    async with aiohttp.ClientSession() as s:
        left = count
        for identity in identities(count, seed=6962, batch=CT_BATCH):
            n = min(CT_BATCH, left)
            await admin(s, url, "append", {"log": log, "count": n, "identity": identity})
            left -= n
        for identity in WATCHED:
            await admin(s, url, "append", {"log": log, "count": 1, "identity": identity})


def write_ct_config(work: Path, url: str, log: str, name: str) -> Path:
    """A `check` of the sandbox's `log` ("ct" or "static-ct") alone, scanned from entry 0 with
    the two ordinary rules."""
    path = work / f"{name}.toml"
    prefix = f"{url}/static-ct" if log == "static-ct" else url
    path.write_text(
        f"""
[monitor]
database = "{name}.db"
http_listen = ""
[[log]]
name = "bench"
type = "{log}"
url = "{prefix}"
public_key = "ct.pem"
origin = "{CT_ORIGINS[log]}"
requests_per_minute = 60000
scan = true
start = 0
fulcio_roots = "ca.pem"
{ORDINARY}
"""
    )
    return path


async def ct_floor(url: str, log: str, pem: bytes) -> Run:
    """RFC 6962 ("ct"): get-sth, its signature checked; every entry through get-entries (256 per
    request, 8 in flight), each MerkleTreeLeaf parsed, leaf-hashed and folded; the root checked
    against the STH. static-ct: the checkpoint verified, every data tile (8 in flight) split
    into its TileLeaf entries, each leaf-hashed and folded, the root checked. Nothing else."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SystemExit(f"{log} floor: the sandbox's CT key is not an ECDSA key")
    policy = HttpPolicy()
    cr = CompactRange()
    step = 16 * ENTRIES_PER_REQUEST
    async with aiohttp.ClientSession() as session:
        began, cpu = time.perf_counter(), time.process_time()
        if log == "ct":
            client = CtClient(session, url, policy)
            client.concurrency = 8
            sth = await client.get_sth()
            key.verify(
                parse_digitally_signed(sth.signature),
                tree_head_signature_input(sth.timestamp, sth.tree_size, sth.root),
                ec.ECDSA(hashes.SHA256()),
            )
            size, root = sth.tree_size, sth.root
            for start in range(0, size, step):
                leaves = await client.entries(start, min(size, start + step))
                for body in leaves:
                    parse_merkle_tree_leaf(body)
                cr.extend([ct_leaf_hash(body) for body in leaves])
        else:
            static = StaticCtClient(session, f"{url}/static-ct", policy, concurrency=8)
            verifier = Rfc6962NoteVerifier(CT_ORIGINS[log], key)
            checkpoint = verify_checkpoint(
                await static.checkpoint(), [verifier], CT_ORIGINS[log]
            ).checkpoint
            size, root = checkpoint.size, checkpoint.root
            for start in range(0, size, step):
                end = min(size, start + step)
                jobs = [
                    (lambda n=n: static.data_tile(n, tile_width(0, n, size)))
                    for n in range(start // TILE_WIDTH, (end - 1) // TILE_WIDTH + 1)
                ]
                for tile in await gather_bounded(jobs, 8):
                    cr.extend([ct_leaf_hash(leaf.merkle_tree_leaf) for leaf in tile])
        if cr.root() != root:
            raise SystemExit(f"{log} floor: the entries do not fold to the signed root")
        return Run(size, time.perf_counter() - began, time.process_time() - cpu)


async def ct_figures(work: Path, url: str, log: str, rounds: int) -> None:
    """The floor against a fresh `check` with the two ordinary rules, interleaved."""
    async with aiohttp.ClientSession() as s:
        state = await admin(s, url, "state")
        async with s.get(f"{url}/admin/ca.pem") as r:
            (work / "ca.pem").write_bytes(await r.read())
    pem = state[log]["publicKey"].encode()
    (work / "ct.pem").write_bytes(pem)
    floors: list[Run] = []
    scans: list[Run] = []
    for n in range(rounds):
        floors.append(await ct_floor(url, log, pem))
        scans.append(await scan(write_ct_config(work, url, log, f"{log}-{n}")))
    print(
        f"\n{CT_LABELS[log]}: {floors[0].entries:,} entries, {rounds} rounds (min / median / max)"
    )
    print(f"  {'':38} {'CPU µs/entry':>22}  {'entries/s':>26}  alerts")
    for label, rs in (("floor", floors), ("scan, two ordinary rules", scans)):
        alerts = "" if rs is floors else str(rs[0].alerts)
        print(
            f"  {label:38} {spread([r.cpu_us for r in rs], '6.1f'):>22}  "
            f"{spread([r.rate for r in rs], '8,.0f'):>26}  {alerts}"
        )
    ratios = [f.cpu_us / s.cpu_us for f, s in zip(floors, scans, strict=True)]
    print(f"  floor/scan CPU per entry: {spread(ratios, '.2f')}")
    rpm = DEFAULT_REQUESTS_PER_MINUTE[LogType(log)]
    what = (
        f"one get-entries request per {ENTRIES_PER_REQUEST} entries"
        if log == "ct"
        else f"one data tile per {TILE_WIDTH} entries"
    )
    print(
        f"  (the bench raises requests_per_minute to 60000; the default budget of {rpm} "
        f"requests/minute caps a {log} scan at {rpm * 256 // 60:,} entries/s: {what})"
    )


SEARCH_TERMS = 50


async def search_figures(work: Path) -> None:
    """One poll of a v1 log watched by 50 e-mail rules, after one new entry for each (as
    tests/integration/test_search_requests.py)."""
    emails = [f"user{i}@example.com" for i in range(SEARCH_TERMS)]
    minimum = 1 + 1 + SEARCH_TERMS + SEARCH_TERMS // 10
    sb = Sandbox(work / "search-sandbox")
    await sb.start("127.0.0.1", 0)
    try:
        await sb.append("v1", 20)
        (work / "search").mkdir()
        (work / "search" / "ca.pem").write_bytes(sb.ca_pem)
        (work / "search" / "v1.pem").write_bytes(sb.v1_public_key_pem)
        rules = "".join(
            f'[[watch]]\nname = "user{i}"\nissuer = "{GOOGLE}"\nemail = "{e}"\n\n'
            for i, e in enumerate(emails)
        )
        config = work / "search" / "config.toml"
        config.write_text(
            f'[monitor]\ndatabase = "search.db"\nhttp_listen = ""\n[[log]]\nname = "v1"\n'
            f'type = "rekor-v1"\nurl = "{sb.url}"\npublic_key = "v1.pem"\n'
            f'origin = "{sb.v1_key_name}"\nfulcio_roots = "ca.pem"\n'
            f"requests_per_minute = 6000\n\n{rules}"
        )
        async with open_monitor(load_config(config)) as m:
            await m.poll("v1")
            for e in emails:
                await sb.append("v1", 1, {"email": e})
            before = len(sb.core.request_log)
            found = await m.poll("v1")
            with sb.core.lock:
                log = list(sb.core.request_log)[before:]
        counts = Counter(endpoint for _, view, endpoint in log if view == "main")
    finally:
        await sb.stop()
    total = sum(counts.values())
    rpm = DEFAULT_REQUESTS_PER_MINUTE[LogType.REKOR_V1]
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(
        f"\nRekor v1 search: one poll, {SEARCH_TERMS} watched e-mails with one new entry each: "
        f"{total} requests ({shown}); minimum {minimum}, ratio {total / minimum:.2f} "
        f"(goal <= 1.5); alerts {len(found.alerts)}"
    )
    print(
        f"  (the default budget of {rpm} requests/minute spends {total / rpm * 60:.1f} s on "
        "that poll)"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pss_mb(pid: int) -> float:
    """The proportional set size of `pid` and its child processes: memory they share (the
    chunks in shared memory, library pages) counted once in all, not once per process."""
    pids = {pid}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit():
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == pid:
                    pids.add(int(entry.name))
    total = 0.0
    for each in pids:
        with contextlib.suppress(OSError):  # a worker that just ended
            for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
    return total


class PeakPss:
    """The peak of `pss_mb` of this process, sampled every 250 ms from a thread while in use."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, pss_mb(os.getpid()))

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def main() -> None:
    logging.getLogger("monitor").setLevel(logging.ERROR)
    # The alerts column counts them; the alert log's lines would only break up the tables.
    logging.getLogger("monitor.service.alert_log").setLevel(logging.CRITICAL + 1)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=100_000, help="entries in the tiled log")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every tiles and CT figure")
    parser.add_argument(
        "--ct",
        type=int,
        default=CT_ENTRIES,
        help="entries appended to the RFC 6962 CT log (0: no ct figure)",
    )
    parser.add_argument(
        "--static-ct",
        type=int,
        default=CT_ENTRIES,
        help="entries appended to the static-ct-api log (0: no static-ct figure)",
    )
    parser.add_argument("--memory", type=int, default=0, help="entries for a memory run (0: none)")
    parser.add_argument("--no-search", action="store_true", help="skip the v1 search figure")
    parser.add_argument(
        "--backfill",
        type=int,
        default=1_000_000,
        help="entries for the backfill figure: one core vs worker processes (0: none; the "
        "workers start at scanner.BACKFILL = 300000 entries; 1000000, the default, takes "
        "about 2 minutes)",
    )
    parser.add_argument(
        "--backfill-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the backfill figure (default: one per CPU)",
    )
    parser.add_argument(
        "--backfill-only", action="store_true", help="only the backfill figure (with --backfill)"
    )
    parser.add_argument("--scan-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_only:
        await scan_only(args.scan_only, args.workers)
        return
    print(
        f"tlog-monitor benchmark ({os.cpu_count()} CPUs; sandbox in its own process; CPU is "
        "this process's)"
    )
    with tempfile.TemporaryDirectory(prefix="tlog-bench-") as tmp:
        work = Path(tmp)
        if args.backfill_only:
            await backfill(work, args.backfill, args.backfill_workers)
            return
        with sandbox(work / "sandbox") as url:
            began = time.perf_counter()
            await fill(url, args.tiles)
            print(f"filled the tiled log in {time.perf_counter() - began:.0f} s")
            await tiles_figures(work, url, args.rounds)
            for log, count in (("ct", args.ct), ("static-ct", args.static_ct)):
                if count:
                    began = time.perf_counter()
                    await fill_ct(url, log, count)
                    print(f"filled the {log} log in {time.perf_counter() - began:.0f} s")
                    await ct_figures(work, url, log, args.rounds)
        if not args.no_search:
            await search_figures(work)
        if args.memory:
            await memory(work, args.memory)
        if args.backfill:
            await backfill(work, args.backfill, args.backfill_workers)


async def memory(work: Path, count: int) -> None:
    with sandbox(work / "sandbox-long") as url:
        await fill(url, count)
        async with aiohttp.ClientSession() as s:
            state = await admin(s, url, "state")
            async with s.get(f"{url}/admin/ca.pem") as r:
                (work / "ca.pem").write_bytes(await r.read())
        config = write_config(work, url, state, "memory", "")
        n, t, rss, _ = await child_scan(config)
    print(
        f"\nmemory: scanned {n:,} tiles entries in {t:.1f} s ({n / t:,.0f}/s) in a fresh "
        f"process; its peak RSS {rss:.0f} MB"
    )


async def scan_only(config: Path, workers: int | None = None) -> None:
    """The child of the memory and backfill runs: one scan, then (entries, seconds, peak RSS
    MB, peak PSS MB of it and its worker processes together) as JSON."""
    logging.getLogger("monitor").setLevel(logging.ERROR)
    with PeakPss() as pss:
        run = await scan(config, workers)
    print(json.dumps([run.entries, run.seconds, peak_rss_mb(), pss.peak]))


async def child_scan(config: Path, workers: int | None = None) -> list[float]:
    """`scan_only` in a fresh process (so its peak memory is that scan's alone)."""
    more = [] if workers is None else ["--workers", str(workers)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", "--scan-only", str(config), *more,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await child.communicate()
    result: list[float] = json.loads(out)
    return result


async def backfill(work: Path, count: int, workers: int, rounds: int = 3) -> None:
    """A fresh scan of `count` entries (past `scanner.BACKFILL`): one core (no worker processes,
    the default) against `workers` worker processes, interleaved, each in a fresh process."""
    with sandbox(work / "sandbox-backfill") as url:
        began = time.perf_counter()
        await fill(url, count)
        filled = time.perf_counter() - began
        async with aiohttp.ClientSession() as s:
            state = await admin(s, url, "state")
            async with s.get(f"{url}/admin/ca.pem") as r:
                (work / "ca.pem").write_bytes(await r.read())
        single: list[list[float]] = []
        pooled: list[list[float]] = []
        served: dict[int, list[float]] = {1: [], workers: []}
        for n in range(rounds):
            for processes, runs in ((1, single), (workers, pooled)):
                config = write_config(work, url, state, f"scan-{processes}-{n}", "")
                before = server_cpu(url)
                runs.append(await child_scan(config, processes))
                served[processes].append(server_cpu(url) - before)
    rate = [r[0] / r[1] for r in single]
    prate = [r[0] / r[1] for r in pooled]
    speedup = [p / o for p, o in zip(prate, rate, strict=True)]
    memory = [r[3] for r in pooled]
    print(
        f"\nbackfill: a fresh scan of {count:,} tiles entries (filled in {filled:.0f} s), "
        f"{rounds} rounds (min / median / max)\n"
        f"  one core:                   {spread(rate, '8,.0f')} entries/s\n"
        f"  {workers} worker processes:         {spread(prate, '8,.0f')} entries/s\n"
        f"  speed-up: {spread(speedup, '.2f')}x (goal >= 1.6x); memory, the peak PSS of the "
        f"scan and its workers together: {spread(memory, '.0f')} MB (goal < 200 MB; one "
        f"core: {statistics.median(r[3] for r in single):.0f} MB)\n"
        f"  the log server shares these CPUs: {statistics.median(served[1]):.1f} s CPU for a "
        f"one-core scan, {statistics.median(served[workers]):.1f} s for a {workers}-worker one "
        "(median)"
    )


if __name__ == "__main__":
    asyncio.run(main())
