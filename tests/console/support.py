"""A gateway with the console on, an operator and a viewer, and a case dead-lettered by a mock outage."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from gateway.console.demo import DEMO_ISSUER
from gateway.console.operators import hash_password
from gateway.security.applicant_identity import write_demo_identity
from gateway.security.callers import write_demo_callers
from tests.support.harness import RunningGateway, applicant, medical_case, start_gateway

OPERATOR = ("op-wei", "operator-password-1")
VIEWER = ("viewer-li", "viewer-password-1")


def write_operators(folder: Path) -> Path:
    path = folder / "operators.json"
    path.write_text(json.dumps([
        {"id": OPERATOR[0], "name": "韦值班", "role": "operator", "password_hash": hash_password(OPERATOR[1])},
        {"id": VIEWER[0], "name": "李查看", "role": "viewer", "password_hash": hash_password(VIEWER[1])},
    ], ensure_ascii=False))
    return path


def start_console_gateway(tmp_path: Path, redis_url: str, **overrides: Any) -> RunningGateway:
    # Few quick retries and no breaker in the way: a department that errors dead-letters its task within seconds.
    return start_gateway(tmp_path, redis_url, operators_file=write_operators(tmp_path), breaker_failures=1000,
                         retry_attempts=3, retry_max_s=3, **overrides)


def start_demo_console_gateway(tmp_path: Path, redis_url: str, **overrides: Any) -> RunningGateway:
    """As `gateway up` runs: its demo caller and demo identity service written under var/ and the only ones the
    gateway knows (the one form then submits through them). The harness's own platform client is not a caller here."""
    var = tmp_path / "var"
    write_demo_callers(var / "demo-callers.json")
    jwks, _ = write_demo_identity(var / "identity", DEMO_ISSUER)
    return start_console_gateway(tmp_path, redis_url, callers_file=var / "demo-callers.json",
                                 identity_jwks_file=jwks, identity_issuer=DEMO_ISSUER, **overrides)


def awaiting_payment_case() -> dict[str, Any]:
    """Jiujiang: its tax declaration waits on the applicant's payment (the mock applicant never pays)."""
    from tests.reliability.test_orchestration import JIUJIANG_SECTIONS

    matters = ["employee_medical_enrolment", "contribution_declaration"]
    return {"profile": "jiujiang", "channel": "online", "matters": matters, "delivery": "online",
            "applicant": applicant(division="360402", birth="19880202", sequence=173),
            "sections": {m: JIUJIANG_SECTIONS[m] for m in matters if JIUJIANG_SECTIONS.get(m)}}


def dead_lettered_case(gw: RunningGateway) -> str:
    """A case whose only task failed after its retries (the medical department answering errors)."""
    gw.faults("medical", error_rate=1.0)
    case_id: str = gw.submit(medical_case()).json()["id"]
    case = gw.wait_terminal(case_id)
    assert case["tasks"][0]["status"] == "failed"
    return case_id


def sign_in(gw: RunningGateway, who: tuple[str, str]) -> httpx.Client:
    client = httpx.Client(base_url=gw.base_url)
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post("/console/login", data={"id": who[0], "password": who[1], "login_token": token.group(1),
                                                 "next": "/console/"})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)
