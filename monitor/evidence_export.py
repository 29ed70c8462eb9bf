"""`tlog-monitor evidence export|verify`: the IO around `monitor.evidence`.

Export reads one alert from the database (read-only) and writes its evidence document: the one
attached to the alert when it was raised, or, for a split view recorded before documents were
attached, one built from the alert's notes and the log's key as configured now.
"""

from __future__ import annotations

import json
from typing import Any

from monitor import evidence
from monitor.config import Config
from monitor.errors import ConfigError
from monitor.sources import log_spec
from monitor.store import Store


class EvidenceExportError(ConfigError):
    """The alert does not exist or has no portable evidence (a usage error: exit 2)."""


def export_alert(store: Store, config: Config, alert_id: int) -> bytes:
    """The canonical evidence document of split-view alert `alert_id`."""
    rows = store.query(
        "SELECT a.kind, a.details, l.name AS log FROM alerts a LEFT JOIN logs l "
        "ON l.id = a.log_id WHERE a.id = ?",
        (alert_id,),
    )
    if not rows:
        raise EvidenceExportError(f"evidence export: no alert #{alert_id} in the database")
    row = rows[0]
    if row["kind"] != "split_view":
        raise EvidenceExportError(
            f"evidence export: alert #{alert_id} is a {row['kind']} alert; only split_view "
            "alerts carry evidence that others can verify offline (see docs/threat-model.md)"
        )
    details: dict[str, Any] = json.loads(row["details"])
    attached = details.get("evidence")
    if isinstance(attached, dict):
        return evidence.dump(attached)
    try:
        log_config = config.log(str(row["log"]))
    except KeyError:
        raise EvidenceExportError(
            f"evidence export: alert #{alert_id} is of log {row['log']!r}, which is no longer "
            "configured: its key is needed to build the evidence"
        ) from None
    proof = details.get("proof")
    document = evidence.build_split_view(
        log_name=log_config.name,
        tree_id=str(details["tree_id"]),
        verifier=log_spec(config, log_config).verifiers[0],
        a=(str(details["view_a"]), str(details["note_a"])),
        b=(str(details["view_b"]), str(details["note_b"])),
        proof=None if proof is None else [bytes.fromhex(h) for h in proof],
        reason=str(details.get("reason", "")),
    )
    return evidence.dump(document)
