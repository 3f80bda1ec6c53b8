"""The soak in quick mode: two APIs and two workers on one Redis, faults in every department and the SMS gateway, a
department outage, workers, an API and Redis killed; the three ledgers (gateway, departments, platform) must agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_soak_reconciles_three_ledgers_with_no_mismatch():
    run = subprocess.run([sys.executable, "-m", "bench.soak", "--quick"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=600)
    report = run.stdout[-6000:] + run.stderr[-3000:]
    assert "=== ledgers ===" in run.stdout, report
    assert run.returncode == 0, report
