"""What a department's answer may and may not do, on real Redis with the mock departments over loopback.

The tax declaration waits for a payment nobody makes (no simulated applicant), so every callback here is ours:
forged, replayed, backwards, genuine. Links and request ids are checked on the same cases.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bootstrap import audit_signer, pii_cipher
from gateway.store import keys
from gateway.store.cases import CaseStore
from gateway.store.connection import connect
from mocks.common import callback_headers
from tests.support.forms import valid_section
from tests.support.harness import RunningGateway, applicant, start_gateway

MATTERS = ["employee_medical_enrolment", "contribution_declaration"]


@pytest.fixture
def gw(redis_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    gateway = start_gateway(tmp_path, redis_url)  # nobody pays: each declaration waits for our callbacks
    yield gateway
    gateway.stop()


def declaration_case(gw: RunningGateway, sequence: int) -> str:
    catalogue = {m["code"]: m for m in gw.client.profile("jiujiang").json()["matters"]}
    sections = {m: valid_section(catalogue[m]["section_schema"], m) for m in MATTERS}
    person = applicant(division="360402", birth="19880202", sequence=sequence)
    body = {"profile": "jiujiang", "channel": "online", "applicant": person, "matters": MATTERS,
            "sections": {m: s for m, s in sections.items() if s}, "delivery": "online"}
    response = gw.submit(body)
    assert response.status_code == 202, response.text
    case_id: str = response.json()["id"]
    gw.wait(case_id, lambda c: declaration(c)["status"] == "awaiting_payment")
    return case_id


def declaration(case: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in case["tasks"] if t["matter"] == "contribution_declaration")


def task_hash(gw: RunningGateway, case_id: str) -> dict[str, str]:
    return gw.redis().hgetall(keys.task(case_id, "contribution_declaration"))  # type: ignore[return-value]


def answer_fields(gw: RunningGateway, case_id: str) -> dict[str, Any]:
    """What a department answer could change (poll counters tick on by themselves), opened: sealed fields are
    sealed afresh, with a new nonce, whenever they are written."""

    async def read() -> dict[str, Any]:
        store = CaseStore(connect(gw.redis_url, gw.settings), pii_cipher(gw.settings), audit_signer(gw.settings))
        try:
            task = await store.get_task(case_id, "contribution_declaration")
        finally:
            await store.redis.aclose()
        assert task is not None
        return {"status": task.status, "native_status": task.native_status, "reason": task.reason,
                "reference": task.reference, "links": task.links, "data": task.data}

    return asyncio.run(read())


def tax_callback(gw: RunningGateway, request_id: str, status: str, *, secret: str | None = None,
                 adapter: str = "tax", signed_request_id: str | None = None,
                 message: str = "成功") -> tuple[bytes, dict[str, str]]:
    """The tax system's notification, signed the way the mock signs (HMAC over adapter, request id, time, body)."""
    body = json.dumps({"head": {"tranId": "SBF.TZ.JKJG", "rtnCode": "0000", "rtnMsg": message},
                       "body": {"ywlsh": request_id, "sbzt": status, "pzhm": "145260105000000001"}}).encode()
    headers = callback_headers(secret or gw.callback_secrets["tax"], adapter, signed_request_id or request_id, body,
                               signature_header="X-Gt3-Signature", timestamp_header="X-Gt3-Timestamp")
    if signed_request_id:
        headers["X-Request-Id"] = request_id  # the header agrees with the body; the signature does not
    return body, headers


def post(gw: RunningGateway, callback: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = callback
    return httpx.post(gw.base_url + "/v1/callbacks/tax", content=body, headers=headers)


def metric(gw: RunningGateway, series: str) -> float:
    for line in httpx.get(gw.base_url + "/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_forged_replayed_and_backwards_callbacks_change_nothing(gw):
    case_id = declaration_case(gw, 171)
    request_id = task_hash(gw, case_id)["request_id"]
    before = answer_fields(gw, case_id)
    forged = [
        tax_callback(gw, request_id, "paid", secret="an outsider's guess at the key"),
        tax_callback(gw, request_id, "paid", adapter="housing_fund"),  # the right key, signed for another adapter
        tax_callback(gw, request_id, "paid", signed_request_id="GW" + "0" * 30),  # signed for another request
        tax_callback(gw, request_id, "paid", secret=gw.callback_secrets["housing_fund"]),  # another department's key
    ]
    for callback in forged:
        refused = post(gw, callback)
        assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "callback.signature_invalid"
    after = answer_fields(gw, case_id)
    assert after["status"] == "awaiting_payment" and after == before  # not a field touched
    assert not list(gw.redis().scan_iter("gw:callback-seen:*"))

    # Same request id, same native status as already applied: acknowledged, ignored.
    same = post(gw, tax_callback(gw, request_id, "declared"))
    assert same.status_code == 200 and same.json()["result"] == "duplicate"
    assert answer_fields(gw, case_id) == before

    paid = tax_callback(gw, request_id, "paid")
    assert post(gw, paid).json()["result"] == "applied"
    assert declaration(gw.wait_terminal(case_id))["status"] == "completed"
    settled = answer_fields(gw, case_id)
    replay = post(gw, paid)  # the very same request again, inside the signature window
    assert replay.status_code == 200 and replay.json()["result"] == "duplicate"

    # completed -> awaiting_payment: refused by the state machine, and counted.
    series = 'gateway_illegal_transitions_total{adapter="tax",target="awaiting_payment"}'
    counted = metric(gw, series)
    backwards = tax_callback(gw, request_id, "declared", message="再次申报")
    answer = post(gw, backwards)
    assert answer.status_code == 200 and answer.json()["result"] == "stale", answer.text
    assert metric(gw, series) >= counted + 1
    assert post(gw, backwards).json()["result"] == "duplicate"  # its replay is recognised by the callback id
    assert answer_fields(gw, case_id) == settled


def test_request_ids_are_random_and_not_derivable(gw):
    first, second = declaration_case(gw, 181), declaration_case(gw, 191)
    ids = [task_hash(gw, case_id)["request_id"] for case_id in (first, second)]
    assert ids[0] != ids[1]
    for case_id, request_id in zip((first, second), ids, strict=True):
        assert re.fullmatch(r"GW[0-9A-F]{30}", request_id)
        old = hashlib.sha256(f"{case_id}|contribution_declaration|contribution_declaration".encode())
        assert request_id != "GW" + old.hexdigest()[:30].upper()
        assert gw.redis().get(keys.request_index(request_id)) == f"{case_id}|contribution_declaration"


def _revealed(token: str, secrets_: list[str]) -> list[str]:
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("latin-1")
    return [s for s in secrets_ if s.lower() in token.lower() or s.lower() in decoded.lower()]


def test_an_h5_token_reveals_nothing_opens_once_and_dies_with_its_task(gw):
    case_id = declaration_case(gw, 211)
    task = declaration(gw.case(case_id))
    link = task["links"]["payment"]
    token = link.rsplit("/", 1)[1]
    request_id = task_hash(gw, case_id)["request_id"]
    assert not _revealed(token, [case_id, case_id[:8], "contribution_declaration", "payment", "tax", request_id])
    assert not gw.redis().keys(f"*{token}*")  # Redis holds a keyed digest of it, not the token

    other_case = declaration_case(gw, 221)
    unused = declaration(gw.case(other_case))["links"]["payment"]
    opened = httpx.get(link)
    assert opened.status_code == 302 and opened.headers["location"].startswith(gw.mock("tax") + "/h5/pay/")
    again = httpx.get(link)
    assert again.status_code == 403 and again.json()["errors"][0]["code"] == "link.invalid"

    # The other declaration is paid (the department says so): its unused link is revoked with the task.
    other_request = task_hash(gw, other_case)["request_id"]
    assert post(gw, tax_callback(gw, other_request, "paid")).json()["result"] == "applied"
    gw.wait_terminal(other_case)
    assert httpx.get(unused).status_code == 403


def test_a_department_page_off_the_allow_list_is_refused_on_arrival_and_at_redirect(gw):
    case_id = declaration_case(gw, 231)
    link = declaration(gw.case(case_id))["links"]["payment"]
    page = answer_fields(gw, case_id)["data"]["department_links"]["payment"]
    # Ops narrow the tax system's allow-list to its public payment host (https only from now on).
    gw.settings.adapters["tax"].redirect_hosts = ["etax.jiangxi.chinatax.gov.cn"]

    refused = httpx.get(link)
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "link.redirect_refused"

    # An answer carrying a page off the list: the page is not stored, the task records only the refused step.
    later = declaration_case(gw, 241)
    task = declaration(gw.case(later))
    data = answer_fields(gw, later)["data"]
    assert "payment" not in task["links"] and data["refused_links"] == ["payment"]
    assert "payment" not in data.get("department_links", {}) and gw.mock("tax") not in json.dumps(data)

    # Back to the default list (the mock's loopback host, plain http in development): the first link still
    # opens, so the refusal did not spend it.
    gw.settings.adapters["tax"].redirect_hosts = []
    opened = httpx.get(link)
    assert opened.status_code == 302 and opened.headers["location"] == page
