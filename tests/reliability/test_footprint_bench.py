"""The footprint benchmark in quick mode: finished cases measured and removed by retention, open cases held by
separate API and worker processes. Figures are printed and written, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_footprint_bench_runs_and_writes_its_figures():
    run = subprocess.run([sys.executable, "-m", "bench.footprint", "--quick"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=600)
    report = run.stdout[-4000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert "Redis bytes per finished case" in run.stdout and "RSS (MiB)" in run.stdout, report
    results = json.loads((REPO_ROOT / "bench" / "results" / "footprint.json").read_text())
    for scenario in results["finished"]:
        assert scenario["finished"] == scenario["cases"] == scenario["removed_by_retention"], scenario
        assert scenario["exports_intact"] == scenario["cases"], scenario
        assert scenario["case_keys_left_after_retention"] == 0, scenario
    assert results["open"]["accepted"] == results["open"]["cases"], results["open"]
