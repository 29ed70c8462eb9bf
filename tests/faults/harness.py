"""What the fault suite and the soak share: a configuration that sends the monitor through the
hostile proxy, `tlog-monitor check` in a subprocess, reads of the monitor's database (state,
alerts, deliveries) with plain sqlite3, and the tally of faults injected and survived."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monitor.notify.notifier import REPEAT_MARK
from monitor.sandbox import Sandbox
from tests.helpers import monitor_table, notify_table, write_keys
from tests.integration.receivers import HttpReceiver, message_alert_ids

WATCHED_EMAIL = "watched@example.com"
WATCHED = {"email": WATCHED_EMAIL}
"""The sandbox identity the watch rule matches (an `identity_seen`, severity info)."""

ROOT = Path(__file__).resolve().parents[2]


def write_config(
    directory: Path,
    sandbox: Sandbox,
    receiver: HttpReceiver,
    *,
    base_url: str,
    interval: str = "1s",
    request_timeout: str = "2s",
    scan_v1: bool = True,
    database: str = "monitor.db",
) -> Path:
    """A configuration monitoring the sandbox's two logs at `base_url` (the proxy), scanning
    them for `WATCHED`, alerting every severity to `receiver`. Returns its path."""
    write_keys(directory, sandbox, ca=True)
    scan = 'scan = true\nstart = 0\nfulcio_roots = "ca.pem"\n'
    path = directory / "config.toml"
    path.write_text(
        monitor_table(database=database, interval=interval, request_timeout=request_timeout)
        + f"""
[[log]]
name = "v1"
type = "rekor-v1"
url = "{base_url}"
public_key = "v1.pem"
origin = "{sandbox.v1_key_name}"
{scan if scan_v1 else ""}

[[log]]
name = "tiles"
type = "tiles"
url = "{base_url}/tiles"
public_key = "tiles.pem"
origin = "{sandbox.tiles_origin}"
{scan}

[[watch]]
name = "watched"
issuer = "https://accounts.google.com"
email = "{WATCHED_EMAIL}"
"""
        + notify_table(receiver)
    )
    return path


async def run_check(config: Path) -> tuple[int, str]:
    """`tlog-monitor check` on `config` as a subprocess in its directory: exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli.main", "--config", str(config), "check",
        cwd=config.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


def connect(db: Path) -> sqlite3.Connection:
    """A read-mostly connection to the monitor's database that waits for its writer."""
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def states(db: Path) -> dict[tuple[str, str], tuple[int, bytes, int, int | None]]:
    """(log, tree) -> (verified size, verified root, high-water mark, scan cursor)."""
    with closing(connect(db)) as conn:
        rows = conn.execute(
            "SELECT l.name, s.tree_id, s.verified_size, s.verified_root, s.high_water, "
            "s.scan_cursor FROM log_state s JOIN logs l ON l.id = s.log_id"
        ).fetchall()
    return {(r[0], r[1]): (r[2], bytes(r[3]), r[4], r[5]) for r in rows}


def alert_kinds(db: Path) -> Counter[tuple[str, str]]:
    """How many alerts of each (kind, severity) the database holds."""
    with closing(connect(db)) as conn:
        rows = conn.execute("SELECT kind, severity FROM alerts").fetchall()
    return Counter((r[0], r[1]) for r in rows)


def urgent_alerts(db: Path) -> list[str]:
    """Summaries of critical and high alerts: none may come from a fault."""
    with closing(connect(db)) as conn:
        rows = conn.execute(
            "SELECT kind, summary FROM alerts WHERE severity IN ('critical', 'high')"
        ).fetchall()
    return [f"{r[0]}: {r[1]}" for r in rows]


def match_count(db: Path) -> tuple[int, int]:
    """(match rows, distinct (log, tree, index, rule)): equal when no entry matched twice."""
    with closing(connect(db)) as conn:
        total = conn.execute("SELECT count(*) FROM matches").fetchone()[0]
        distinct = conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT log_id, tree_id, tree_index, rule FROM matches)"
        ).fetchone()[0]
    return int(total), int(distinct)


def integrity(db: Path) -> str:
    """`PRAGMA integrity_check` of the database ("ok" when sound)."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@dataclass(frozen=True)
class DeliveryAudit:
    """Alerts in the database against the messages the receiver accepted."""

    alerts: int
    delivered_rows: int
    pending_rows: int
    received: int
    lost: int  # delivered in the database, never received
    duplicated: int  # received again without the "(possible repeat)" mark: a silent duplicate
    repeats: int  # received again, marked as a possible repeat (a send cut off by a kill)
    repeat_messages: int  # messages marked as a possible repeat (a digest stands for many)
    unknown: int  # received, naming no alert of this database


def audit_deliveries(db: Path, receiver: HttpReceiver) -> DeliveryAudit:
    """Compare the outbox with what `receiver` got; every message names its alert (`alert #N`),
    a digest the ids of every alert it stands for."""
    with closing(connect(db)) as conn:
        alerts = {int(r[0]) for r in conn.execute("SELECT id FROM alerts")}
        rows = conn.execute("SELECT alert_id, status FROM deliveries").fetchall()
    delivered = {int(r[0]) for r in rows if r[1] == "delivered"}
    pending = sum(1 for r in rows if r[1] == "pending")
    got: Counter[int] = Counter()
    plain: Counter[int] = Counter()
    for post in receiver.posts:
        # A digest stands for many alerts: each counts as received.
        for alert_id in message_alert_ids(str(post.body.get("message", ""))):
            got[alert_id] += 1
            plain[alert_id] += REPEAT_MARK not in str(post.body.get("title", ""))
    return DeliveryAudit(
        alerts=len(alerts),
        delivered_rows=len(delivered),
        pending_rows=pending,
        received=sum(got.values()),
        lost=len(delivered - set(got)),
        duplicated=sum(n - 1 for n in plain.values() if n > 1),
        repeats=sum(got.values()) - len(got) - sum(n - 1 for n in plain.values() if n > 1),
        unknown=len(set(got) - alerts),
        repeat_messages=sum(
            REPEAT_MARK in str(post.body.get("title", "")) for post in receiver.posts
        ),
    )


# --- the tally --------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One fault scenario's figures."""

    injected: int = 0
    survived: bool = False
    alerts_lost: int = 0
    alerts_duplicated: int = 0
    alerts_repeated_marked: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


TALLY_FILE = "fault-tally-{}.json"
"""Each test process's tally, in the run's base temporary directory."""


@dataclass
class Tally:
    """Every scenario of a session; `summary()` is what the suite reports."""

    scenarios: dict[str, Scenario] = field(default_factory=dict)

    def scenario(self, name: str) -> Scenario:
        """The figures of `name`, created on first use."""
        return self.scenarios.setdefault(name, Scenario())

    def summary(self) -> dict[str, Any]:
        """Totals and the per-scenario figures, JSON-ready."""
        s = self.scenarios.values()
        return {
            "scenarios": len(self.scenarios),
            "scenarios_survived": sum(x.survived for x in s),
            "faults_injected": sum(x.injected for x in s),
            "faults_survived": sum(x.injected for x in s if x.survived),
            "alerts_lost": sum(x.alerts_lost for x in s),
            "alerts_duplicated": sum(x.alerts_duplicated for x in s),
            "alerts_repeated_marked": sum(x.alerts_repeated_marked for x in s),
            "detail": {name: asdict(x) for name, x in sorted(self.scenarios.items())},
        }

    def merge(self, detail: dict[str, dict[str, Any]]) -> None:
        """Add the scenarios of another process's `summary()["detail"]`."""
        for name, figures in detail.items():
            other = Scenario(**figures)
            mine = self.scenarios.get(name)
            if mine is None:
                self.scenarios[name] = other
                continue
            # A scenario that ran in several workers: counted whole, survived only if all did.
            mine.injected += other.injected
            mine.survived = mine.survived and other.survived
            mine.alerts_lost += other.alerts_lost
            mine.alerts_duplicated += other.alerts_duplicated
            mine.alerts_repeated_marked += other.alerts_repeated_marked
            mine.notes.update(other.notes)

    def write(self, path: Path) -> None:
        """Write `summary()` as JSON to `path`."""
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=True) + "\n")
