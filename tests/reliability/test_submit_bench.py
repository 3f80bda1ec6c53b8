"""The submit benchmark in quick mode: every layout starts, answers signed submits over keep-alive connections and
sheds what it cannot take with 429/503, never with another status or a reset. Figures are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_submit_benchmark_runs_every_layout_and_answers_only_202_or_shed(embedded_redis):
    run = subprocess.run([sys.executable, "-m", "bench.submit", "--quick", "--redis-url", embedded_redis.url],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    report = run.stdout[-6000:] + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert "written: bench/results/submit-quick.json" in run.stdout, report
    rows = json.loads((REPO_ROOT / "bench" / "results" / "submit-quick.json").read_text())["rows"]
    assert {row["layout"].split(" ")[0] for row in rows} == {"api", "up", "healthz"}
    for row in rows:
        assert row["accepted"] > 0 and row["errors"] == 0, row
