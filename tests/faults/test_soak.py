"""The short soaks (the long one is `make soak`): `tlog-monitor run` against a sandbox growing
at 500 entries/s, through the hostile proxy switching faults every 2-5 s. `make test` runs the
6 s one; the 20 s one is `slow` (`make test-slow`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import soak
from tests.faults.harness import Tally

RATE = 500


@pytest.mark.parametrize(
    ("seconds", "min_faults", "rss_growth_mib"),
    [
        # Over 6 s the first tenth is still start-up, so growth "after warm-up" means nothing
        # there: the peak bound below is its memory check.
        pytest.param(6, 1, 300.0, id="6s"),
        pytest.param(20, 4, 64.0, id="20s", marks=pytest.mark.slow),
    ],
)
async def test_short_soak(
    tmp_path: Path, tally: Tally, seconds: int, min_faults: int, rss_growth_mib: float
) -> None:
    result = await soak(
        seconds,
        tmp_path,
        rate=RATE,
        seed=7,
        receiver_outage_every=None,
        drain_timeout=60,
        rss_growth_mib=rss_growth_mib,
    )
    figures = tally.scenario(f"soak, {seconds} s at {RATE} entries/s")
    figures.injected = result.faults_injected
    figures.alerts_lost, figures.alerts_duplicated = result.lost, result.duplicated
    figures.notes.update(
        scanned=result.scanned,
        alerts=result.alerts,
        rss_mib=[round(result.rss_start_mib, 1), round(result.rss_peak_mib, 1)],
    )
    assert result.problems == []
    # Half the offered rate at least (all of it on an idle machine), every entry scanned.
    assert result.scanned == result.appended >= seconds * RATE // 2
    assert result.faults_injected >= min_faults
    assert result.rss_peak_mib < 300
    figures.survived = True
