"""What the fault suite and the soak share: a configuration that sends the monitor through the
hostile proxy, reads of the monitor's database (state, alerts, deliveries) with plain sqlite3, and
the tally of faults injected and survived."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from monitor.notify import REPEAT_MARK
from monitor.sandbox import Sandbox
from tests.integration.receivers import HttpReceiver

WATCHED_EMAIL = "watched@example.com"
WATCHED = {"email": WATCHED_EMAIL}
"""The sandbox identity the watch rule matches (an `identity_seen`, severity info)."""

_ALERT_ID = re.compile(r"alert #(\d+)")


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
    tiles_pem = (
        Ed25519PublicKey.from_public_bytes(sandbox.tiles_verifier().public_bytes)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    (directory / "v1.pem").write_bytes(sandbox.v1_public_key_pem)
    (directory / "tiles.pem").write_text(tiles_pem)
    (directory / "ca.pem").write_bytes(sandbox.ca_pem)
    scan = 'scan = true\nstart = 0\nfulcio_roots = "ca.pem"\n'
    path = directory / "config.toml"
    path.write_text(
        f"""
[monitor]
database = "{database}"
interval = "{interval}"
max_stale = "1h"
error_grace = "0s"
http_listen = ""
request_timeout = "{request_timeout}"

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

[[notify]]
name = "ops"
urls = ["{receiver.url("alerts")}"]
min_severity = "info"
"""
    )
    return path


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
            "SELECT count(*) FROM (SELECT DISTINCT log_id, tree_id, log_index, rule FROM matches)"
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
    unknown: int  # received, naming no alert of this database


def audit_deliveries(db: Path, receiver: HttpReceiver) -> DeliveryAudit:
    """Compare the outbox with what `receiver` got; every message names its alert (`alert #N`)."""
    with closing(connect(db)) as conn:
        alerts = {int(r[0]) for r in conn.execute("SELECT id FROM alerts")}
        rows = conn.execute("SELECT alert_id, status FROM deliveries").fetchall()
    delivered = {int(r[0]) for r in rows if r[1] == "delivered"}
    pending = sum(1 for r in rows if r[1] == "pending")
    got: Counter[int] = Counter()
    plain: Counter[int] = Counter()
    for post in receiver.posts:
        found = _ALERT_ID.search(str(post.body.get("message", "")))
        if found:
            got[int(found.group(1))] += 1
            plain[int(found.group(1))] += REPEAT_MARK not in str(post.body.get("title", ""))
    return DeliveryAudit(
        alerts=len(alerts),
        delivered_rows=len(delivered),
        pending_rows=pending,
        received=sum(got.values()),
        lost=len(delivered - set(got)),
        duplicated=sum(n - 1 for n in plain.values() if n > 1),
        repeats=sum(got.values()) - len(got) - sum(n - 1 for n in plain.values() if n > 1),
        unknown=len(set(got) - alerts),
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

    def write(self, path: Path) -> None:
        """Write `summary()` as JSON to `path`."""
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=True) + "\n")
