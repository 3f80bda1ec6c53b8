"""The audit chain: every event of a case hashed onto the one before (SM3 here), verifiable from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.harness import applicant, start_gateway

GATEWAY = str(Path(sys.executable).parent / "gateway")
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def verify(redis_url: str, case_id: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GATEWAY_REDIS_URL=redis_url)
    return subprocess.run([GATEWAY, "audit", "verify", case_id], env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_cases_history_is_chained_and_tampering_is_found(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, audit_hash="sm3")
    try:
        body = {"profile": "guangxi", "channel": "window", "applicant": applicant(), "delivery": "window",
                "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}
        case_id = gw.submit(body, assertion=False, window=True).json()["id"]
        gw.wait_terminal(case_id)
        events = gw.wait_events(lambda es: any(e["case_id"] == case_id and e.get("status") == "completed"
                                               for e in es))
        mine = [e for e in events if e["case_id"] == case_id]
        chain = [json.loads(raw) for raw in gw.redis().lrange(f"gw:{{{case_id}}}:audit", 0, -1)]
        assert [entry["seq"] for entry in chain] == list(range(1, len(mine) + 1))
        assert all(entry["hash"].startswith("sm3:") for entry in chain)
        assert [entry["event"]["event_id"] for entry in chain] == [e["event_id"] for e in sorted(mine, key=lambda e:
                                                                                                e["seq"])]
        intact = verify(redis_url, case_id)
        assert intact.returncode == 0 and "intact" in intact.stdout, intact.stdout + intact.stderr
        # Someone rewrites history: the task "was" rejected.
        altered = chain[-1]
        altered["event"]["status"] = "rejected"
        gw.redis().lset(f"gw:{{{case_id}}}:audit", len(chain) - 1, json.dumps(altered, ensure_ascii=False))
        broken = verify(redis_url, case_id)
        assert broken.returncode == 1 and "was altered" in broken.stdout and "BROKEN" in broken.stdout
    finally:
        gw.stop()
