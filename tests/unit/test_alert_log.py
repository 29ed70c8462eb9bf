"""Each new alert reaches the daemon's log at its severity's level (journald priority)."""

from __future__ import annotations

import logging

import pytest

from monitor.core.alerts import Alert, AlertKind
from monitor.core.severity import Severity
from monitor.service.alert_log import raised
from monitor.service.logsetup import syslog_priority


@pytest.mark.parametrize(
    ("kind", "priority"),
    [
        (AlertKind.SPLIT_VIEW, 2),
        (AlertKind.UNEXPECTED_SIGNER, 3),
        (AlertKind.LOG_ERROR, 4),
        (AlertKind.IDENTITY_SEEN, 6),
    ],
)
def test_an_alert_is_logged_at_its_severitys_priority(
    kind: AlertKind, priority: int, caplog: pytest.LogCaptureFixture
) -> None:
    into: list[tuple[int, Alert]] = []
    alert = Alert(kind, f"{kind}:x", "summary")
    with caplog.at_level(logging.DEBUG):
        raised([(7, alert)], into)
    [record] = caplog.records
    assert syslog_priority(record.levelno) == priority
    assert record.getMessage() == f"alert 7 {kind.value}: summary"
    assert into == [(7, alert)]


def test_every_severity_has_a_level() -> None:
    from monitor.service.alert_log import LOG_LEVEL

    assert set(LOG_LEVEL) == set(Severity)
