"""New alerts in the daemon's own log, each at the level of its severity.

Under systemd the level becomes journald's priority (`monitor.service.logsetup`): a critical
alert is priority 2 (`journalctl -p crit`), high 3, warning 4, info 6, so an operator filtering
the journal by priority sees what the alerts say.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from monitor.core.alerts import Alert
from monitor.core.severity import Severity

__all__ = ["LOG_LEVEL", "raised"]

log = logging.getLogger(__name__)

LOG_LEVEL = {
    Severity.CRITICAL: logging.CRITICAL,
    Severity.HIGH: logging.ERROR,
    Severity.WARNING: logging.WARNING,
    Severity.INFO: logging.INFO,
}
"""The logging level of an alert of each severity."""


def raised(created: Sequence[tuple[int, Alert]], into: list[tuple[int, Alert]]) -> None:
    """Log each newly recorded alert (id, alert) at its severity's level and add it to `into`."""
    for alert_id, alert in created:
        log.log(
            LOG_LEVEL[alert.severity], "alert %d %s: %s", alert_id, alert.kind.value, alert.summary
        )
        into.append((alert_id, alert))
