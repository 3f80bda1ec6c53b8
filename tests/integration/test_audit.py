"""The keyed audit chain: every event of a case MACed onto the one before (HMAC-SM3 here) in the step that made the
change, with who asked (caller, nonce, assertion) and which department request; verifiable from the CLI. Someone with
write access to Redis but not the audit key can neither rewrite, remove nor reorder an entry unnoticed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.bootstrap import pii_cipher
from gateway.security.audit import canonical, event_associated
from gateway.store import keys
from tests.support.harness import applicant, start_gateway

GATEWAY = str(Path(sys.executable).parent / "gateway")
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def verify(redis_url: str, var_dir: Path, case_id: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GATEWAY_REDIS_URL=redis_url, GATEWAY_VAR_DIR=str(var_dir), GATEWAY_AUDIT_HASH="sm3")
    return subprocess.run([GATEWAY, "audit", "verify", case_id], env=env, capture_output=True, text=True,
                          timeout=60)


def test_a_cases_history_is_chained_with_a_key_and_tampering_is_found(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, audit_hash="sm3")
    try:
        body = {"profile": "guangxi", "channel": "online", "applicant": applicant(), "delivery": "online",
                "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}
        case_id = gw.submit(body).json()["id"]
        gw.wait_terminal(case_id)
        events = gw.wait_events(lambda es: any(e["case_id"] == case_id and e.get("status") == "completed"
                                               for e in es))
        mine = sorted((e for e in events if e["case_id"] == case_id), key=lambda e: e["seq"])
        key = keys.audit(case_id)
        client = gw.redis()
        raw_chain = client.lrange(key, 0, -1)
        chain = [json.loads(raw) for raw in raw_chain]
        # On record at the change itself, before any delivery: one entry per event the platform received.
        assert [entry["seq"] for entry in chain] == [e["seq"] for e in mine] == list(range(1, len(mine) + 1))
        assert all(entry["mac"].startswith("hmac-sm3:") for entry in chain)
        events_cipher = pii_cipher(gw.settings).for_purpose("events")
        opened = [events_cipher.open_json(entry["event"], event_associated(case_id, entry["seq"])) for entry in chain]
        assert [e["event_id"] for e in opened] == [e["event_id"] for e in mine]
        accepted = opened[0]
        assert accepted["type"] == "case.accepted" and accepted["caller"] == "test-platform"
        assert accepted["nonce"] and accepted["assertion_jti"] and accepted["request_ids"]
        moves = [e for e in opened if e["type"] == "task.status_changed"]
        assert moves and all(e["request_id"] == accepted["request_ids"]["employee_medical_enrolment"] for e in moves)

        intact = verify(redis_url, gw.settings.var_dir, case_id)
        assert intact.returncode == 0 and "intact" in intact.stdout, intact.stdout + intact.stderr

        # Someone with Redis write access (and even the PII key) rewrites history: the task "was" rejected, and
        # the entry gets a recomputed hash — without the audit key it cannot be the right MAC.
        last = len(chain) - 1
        altered_event = dict(opened[last], status="rejected")
        forged = dict(chain[last], event=events_cipher.seal_json(altered_event, event_associated(case_id, last + 1)),
                      mac="hmac-sm3:" + hashlib.sha256(chain[last]["prev"].encode() + canonical(altered_event))
                      .hexdigest())
        client.lset(key, last, json.dumps(forged))
        broken = verify(redis_url, gw.settings.var_dir, case_id)
        assert broken.returncode == 1 and f"entry {last + 1} (seq {last + 1}) was altered" in broken.stdout
        assert "BROKEN" in broken.stdout
        client.lset(key, last, raw_chain[last])
        assert verify(redis_url, gw.settings.var_dir, case_id).returncode == 0

        # An entry removed from the middle, then two entries swapped.
        client.lrem(key, 1, raw_chain[1])
        removed = verify(redis_url, gw.settings.var_dir, case_id)
        assert removed.returncode == 1 and "entry 2 has seq 3: an entry is missing" in removed.stdout
        client.delete(key)
        client.rpush(key, raw_chain[1], raw_chain[0], *raw_chain[2:])
        reordered = verify(redis_url, gw.settings.var_dir, case_id)
        assert reordered.returncode == 1 and "entry 1 has seq 2" in reordered.stdout
        # The tail cut off: the case's chain head still names the last change.
        client.delete(key)
        client.rpush(key, *raw_chain[:-1])
        truncated = verify(redis_url, gw.settings.var_dir, case_id)
        assert truncated.returncode == 1 and "entries were removed from its end" in truncated.stdout
        client.close()
    finally:
        gw.stop()
