"""The short soak (the long one is `make soak`): `tlog-monitor run` for 20 s against a sandbox
growing at 500 entries/s, through the hostile proxy switching faults every few seconds."""

from __future__ import annotations

from pathlib import Path

from bench.soak import soak
from tests.faults.harness import Tally


async def test_short_soak(tmp_path: Path, tally: Tally) -> None:
    result = await soak(
        20, tmp_path, rate=500, seed=7, receiver_outage_every=None, drain_timeout=60
    )
    figures = tally.scenario("soak, 20 s at 500 entries/s")
    figures.injected = result.faults_injected
    figures.alerts_lost, figures.alerts_duplicated = result.lost, result.duplicated
    figures.notes.update(
        scanned=result.scanned,
        alerts=result.alerts,
        rss_mib=[round(result.rss_start_mib, 1), round(result.rss_peak_mib, 1)],
    )
    assert result.problems == []
    assert result.scanned == result.appended >= 5000  # 10,000 on an idle machine
    assert result.faults_injected >= 4
    assert result.rss_peak_mib < 300
    figures.survived = True
