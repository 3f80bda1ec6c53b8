"""Overload sheds cleanly: with a Redis pool far smaller than the requests in flight, submits wait for a connection
and, past GATEWAY_REDIS_POOL_TIMEOUT_S, are answered 503 service.busy with Retry-After; never a 500, never a reset,
and /healthz keeps answering throughout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.client import AsyncGatewayClient
from tests.support.harness import PLATFORM, applicant, start_gateway

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
IN_FLIGHT = 64


def medical_case(index: int) -> dict[str, Any]:
    person = applicant(sequence=(index % 100) * 10 + index % 7)  # ordinary applicants: last digit 0-6
    return {"profile": "guangxi", "channel": "online", "applicant": person, "delivery": "online",
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}


async def burst(gw: Any) -> tuple[list[httpx.Response | BaseException], list[int]]:
    """IN_FLIGHT signed submits at once on their own connections, and /healthz polled beside them until they end."""
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    client = AsyncGatewayClient(gw.base_url, *PLATFORM, timeout=60, transport=httpx.AsyncHTTPTransport(limits=limits))
    cases = [medical_case(i) for i in range(IN_FLIGHT)]
    assertions = [gw.identity.assertion(c["applicant"]["id_number"], c["applicant"]["name"]) for c in cases]
    health: list[int] = []
    try:
        submits = asyncio.gather(*(client.submit_case(case, idempotency_key=f"burst-{i}", assertion=assertion)
                                   for i, (case, assertion) in enumerate(zip(cases, assertions, strict=True))),
                                 return_exceptions=True)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as probe:
            while not submits.done():
                health.append((await probe.get("/healthz")).status_code)
        return list(await submits), health
    finally:
        await client.aclose()


def test_a_burst_beyond_the_redis_pool_is_answered_202_or_503_never_500(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, redis_max_connections=4, redis_pool_timeout_s=0.05)
    try:
        answers, health = asyncio.run(burst(gw))
        resets = [repr(a) for a in answers if isinstance(a, BaseException)]
        assert resets == []
        responses = [a for a in answers if isinstance(a, httpx.Response)]
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) <= {202, 503}, statuses
        shed = [r for r in responses if r.status_code == 503]
        assert shed, statuses  # 4 connections cannot serve 64 in flight within 0.05 s: some are shed
        for response in shed:
            assert response.headers["Retry-After"] == "1"
            assert [e["code"] for e in response.json()["errors"]] == ["service.busy"]
        assert health and set(health) == {200}
        print(f"burst of {IN_FLIGHT}: {statuses.count(202)} accepted, {len(shed)} shed; /healthz {len(health)}x 200")
    finally:
        gw.stop()
