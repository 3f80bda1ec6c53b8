"""The `gateway` command's ops entry points, as a person types them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GATEWAY = str(Path(sys.executable).parent / "gateway")
REPO = Path(__file__).resolve().parents[2]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=120, env={**clean, **env},
                          cwd=REPO)


def test_profiles_check_accepts_the_shipped_profiles_and_names_each_problem(tmp_path):
    for profile in ("guangxi", "jiujiang"):
        ok = run("profiles", "check", str(REPO / "profiles" / f"{profile}.yaml"))
        assert ok.returncode == 0 and "ok" in ok.stdout, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yaml"
    text = (REPO / "profiles" / "jiujiang.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("operation: housing_fund_account", "operation: open_account"), encoding="utf-8")
    refused = run("profiles", "check", str(broken))
    assert refused.returncode == 1
    assert "operation 'open_account' is not offered by adapter 'housing_fund'" in refused.stdout


def test_a_broken_profile_never_starts_the_gateway(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (REPO / "profiles" / "jiujiang.yaml").read_text(encoding="utf-8")
    broken = text.replace("operation: contribution_declaration", "operation: declare_fees")
    (profiles / "jiujiang.yaml").write_text(broken, encoding="utf-8")
    refused = run("worker", GATEWAY_PROFILES_DIR=str(profiles), GATEWAY_VAR_DIR=str(tmp_path / "var"))
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "operation 'declare_fees' is not offered by adapter 'tax'" in refused.stderr


def test_the_api_refuses_to_start_without_callers_and_jwks(tmp_path):
    refused = run("api", "--port", "1", GATEWAY_VAR_DIR=str(tmp_path / "var"))
    assert refused.returncode == 2 and "GATEWAY_CALLERS_FILE" in refused.stderr


def test_adapters_list_shows_the_five_departments_with_versions():
    listed = run("adapters", "list", "--no-health")
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert names >= {"hrss", "medical", "tax", "housing_fund", "e_license"}
    assert "soap" in next(line for line in listed.stdout.splitlines() if line.startswith("hrss"))


def test_gateway_mocks_serves_each_mock_with_the_faults_it_was_started_with(tmp_path):
    import json
    import signal
    import time

    import httpx

    from mocks.serving import free_port

    ports = {"medical": free_port(), "tax": free_port()}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env = {**clean, "GATEWAY_MOCK_PORTS": json.dumps(ports), "MOCK_FAULTS": '{"latency_ms": 7, "error_rate": 0.25}'}
    mocks = subprocess.Popen([GATEWAY, "mocks", "--only", "medical", "--only", "tax"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for port in ports.values():
            deadline = time.monotonic() + 30
            while True:
                try:
                    faults = httpx.get(f"http://127.0.0.1:{port}/_mock/faults").json()
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline and mocks.poll() is None
                    time.sleep(0.1)
            assert faults["latency_ms"] == 7 and faults["error_rate"] == 0.25
    finally:
        mocks.send_signal(signal.SIGTERM)
        assert mocks.wait(20) == 0
