"""No dead code in the package: vulture at 80 % confidence reports nothing (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_vulture_finds_no_dead_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vulture", "monitor", "--min-confidence", "80"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
