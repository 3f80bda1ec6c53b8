"""The department-call, dispatch and end-to-end benchmarks run in their quick mode: each finishes, prints its table and
writes its JSON with every row measured. No figure is asserted (a shared machine's timings are noise here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.department_call import NGINX
from gateway.store.embedded_redis import EmbeddedRedis
from tests.support.machine import arq_folder, debian_binary

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_quick(module: str, *args: str, path: tuple[str, ...] = ()) -> dict[str, Any]:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), *path, os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", module, "--quick", *args], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300, env=env)
    report = run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0, report
    written = REPO_ROOT / "bench" / "results" / f"{module.removeprefix('bench.')}_quick.json"
    assert f"written: {written.relative_to(REPO_ROOT)}" in run.stdout, report
    result: dict[str, Any] = json.loads(written.read_text())
    result["stdout"] = run.stdout
    return result


def test_department_call_measures_the_engine_and_adapter_paths_bare_httpx_and_an_nginx_hop():
    debian_binary(NGINX, "nginx")
    result = run_quick("bench.department_call")
    paths = {row["path"] for row in result["rows"]}
    assert paths == {"medical (engine)", "medical (adapter)", "hrss SOAP (adapter)", "e-license x4 (adapter)",
                     "medical (bare httpx)", "medical (nginx hop)"}
    for row in result["rows"]:
        assert row["calls"] == 100 and row["calls_per_s"] > 0 and row["gateway_cpu_us_per_call"] > 0, row
        assert (row["nginx_cpu_us_per_call"] is not None) == (row["path"] == "medical (nginx hop)"), row
    assert "gateway µs" in result["stdout"]


def test_dispatch_moves_every_task_through_our_stream_and_arq(embedded_redis: EmbeddedRedis):
    result = run_quick("bench.dispatch", "--redis-url", embedded_redis.url, path=(arq_folder(),))
    names = [row["dispatcher"] for row in result["rows"]]
    assert names[0] == "gateway task stream" and all(name.startswith("arq ") for name in names[1:]), names
    # Each run checks that every task was worked (ours: the stream empty after; arq: jobs_complete) or exits 1.
    assert all(row["tasks"] == 500 and row["worked_per_s"] > 0 for row in result["rows"]), result["rows"]


def test_end_to_end_takes_guangxi_three_matter_online_cases_to_their_end():
    result = run_quick("bench.end_to_end")
    [scenario] = result["results"]
    assert scenario["scenario"] == "guangxi-online"
    assert scenario["outcomes"] == {"completed": 10}, scenario["outcomes"]
    assert scenario["registration_mismatches"] == {}
    assert set(scenario["cpu_ms_per_case"]) == {"gateway", "mocks", "load + webhook"}
    assert "gateway ms/case" in result["stdout"]


def test_processes_measures_healthz_beside_a_busy_worker_and_one_and_two_api_processes(embedded_redis: EmbeddedRedis):
    result = run_quick("bench.processes", "--redis-url", embedded_redis.url)
    [healthz] = result["healthz"]
    assert healthz["healthz_idle_ms"]["n"] > 0 and healthz["healthz_worker_busy_ms"]["n"] > 0, healthz
    assert healthz["submit"]["statuses"].get("202"), healthz["submit"]
    submits = {row["processes"]: row for row in result["submits"]}
    assert set(submits) == {1, 2}
    for row in submits.values():  # every submit answered: accepted or shed, no reset or time-out
        assert row["errors"] == [] and set(row["statuses"]) <= {"202", "429", "503"}, row
        assert row["submits_per_s"] > 0 and row["api_cpu_ms_per_submit"] > 0, row
