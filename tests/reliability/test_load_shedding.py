"""Overload sheds cleanly: with a Redis pool far smaller than the requests in flight, submits wait for a connection
and, past GATEWAY_REDIS_POOL_TIMEOUT_S, are answered 503 service.busy with Retry-After; never a 500, never a reset,
and /healthz keeps answering throughout. And the real `gateway up`, its worker busy with what it accepted, takes 256
concurrent submits without collapsing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from gateway.client import AsyncGatewayClient, mint_demo_assertion
from tests.support.harness import PLATFORM, applicant, start_gateway
from tests.support.processes import start_gateway_up

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
IN_FLIGHT = 64


def medical_case(index: int) -> dict[str, Any]:
    person = applicant(sequence=(index // 7) * 10 + index % 7)  # ordinary applicants (last digit 0-6), each once
    return {"profile": "guangxi", "channel": "online", "applicant": person, "delivery": "online",
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}


Answers = list[httpx.Response | BaseException]


async def burst(base_url: str, caller: tuple[str, str], assertion: Callable[[str, str], str], in_flight: int,
                probes: tuple[str, ...] = ("/healthz",)) -> tuple[Answers, dict[str, list[int]]]:
    """`in_flight` signed submits at once on their own connections, and the probes polled beside them until they end
    (a probe that fails to answer fails the test)."""
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    client = AsyncGatewayClient(base_url, *caller, timeout=60, transport=httpx.AsyncHTTPTransport(limits=limits))
    cases = [medical_case(i) for i in range(in_flight)]
    assertions = [assertion(c["applicant"]["id_number"], c["applicant"]["name"]) for c in cases]
    answered: dict[str, list[int]] = {path: [] for path in probes}
    try:
        submits = asyncio.gather(*(client.submit_case(case, idempotency_key=f"burst-{i}", assertion=signed)
                                   for i, (case, signed) in enumerate(zip(cases, assertions, strict=True))),
                                 return_exceptions=True)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as probe:
            while not submits.done():
                for path in probes:
                    answered[path].append((await probe.get(path)).status_code)
        return list(await submits), answered
    finally:
        await client.aclose()


def test_a_burst_beyond_the_redis_pool_is_answered_202_or_503_never_500(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, redis_max_connections=4, redis_pool_timeout_s=0.05)
    try:
        answers, probed = asyncio.run(burst(gw.base_url, PLATFORM, gw.identity.assertion, IN_FLIGHT))
        health = probed["/healthz"]
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


def test_gateway_up_takes_256_concurrent_submits_with_202_or_a_shed_answer_and_keeps_answering_probes(tmp_path):
    up = start_gateway_up(tmp_path)
    try:
        base, key = up.base_url, up.identity_key

        def assertion(id_number: str, name: str) -> str:
            return mint_demo_assertion(key, id_number, name)

        answers, probed = asyncio.run(burst(base, (up.app_id, up.secret), assertion, 256,
                                            probes=("/healthz", "/readyz")))
        assert [repr(a) for a in answers if isinstance(a, BaseException)] == []  # no reset, no time-out
        responses = [a for a in answers if isinstance(a, httpx.Response)]
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) <= {202, 429, 503}, [(r.status_code, r.text[:200]) for r in responses
                                                  if r.status_code not in (202, 429, 503)][:5]
        assert 202 in statuses
        assert all(r.headers.get("Retry-After") for r in responses if r.status_code != 202)
        assert probed["/healthz"] and set(probed["/healthz"]) == {200}
        assert probed["/readyz"] and set(probed["/readyz"]) <= {200, 503}  # answered; 503 only says Redis is busy
        print(f"gateway up, 256 in flight: {statuses.count(202)} accepted, {statuses.count(429)} x 429, "
              f"{statuses.count(503)} x 503; /healthz {len(probed['/healthz'])}x, /readyz {probed['/readyz']}")
    finally:
        returncode = up.stop()
    assert returncode == 0, up.log.read_text()[-2000:]
