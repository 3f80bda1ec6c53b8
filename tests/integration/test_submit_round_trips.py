"""The lean submit path: a new online case of a caller with a maximum of open cases costs three Redis round trips
(the nonce with the caller's rate token; the open-case count with the assertion's claim, each in its own Cluster
slot; the create step), its 202 is what a read-back answers, and a Redis that lost its scripts costs a reload, not a
refusal.

Round trips are counted where redis-py writes to its socket (one write per command or pipeline), with the API in
this process and no worker beside it, so every trip counted is the request's."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio.connection import AbstractConnection

from gateway.api.app import create_app
from gateway.api.schemas import CaseView
from gateway.client import signed_headers
from tests.support import harness
from tests.support.harness import IdentityService, applicant, flush, sync_redis

CALLER = ("trips-platform", "trips-platform-secret")
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
COMMAND_NAME = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


def medical_case(sequence: int) -> dict[str, Any]:
    return {"profile": "guangxi", "channel": "online", "applicant": applicant(sequence=sequence),
            "matters": ["employee_medical_enrolment"], "delivery": "online",
            "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}


class TripCounter:
    """Each write of a command or a pipeline to a Redis socket, with the commands it carried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trips: list[list[str]] = []
        send = AbstractConnection.send_packed_command

        async def counted(connection: AbstractConnection, command: Any, check_health: bool = True) -> None:
            packed = command if isinstance(command, bytes) else b"".join(command)
            self.trips.append([name.decode().upper() for name in COMMAND_NAME.findall(packed)])
            await send(connection, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)


@asynccontextmanager
async def api(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, IdentityService]]:
    """The API alone in this process (no worker), for a caller with a rate limit and a maximum of open cases, so
    every check of the submit path is on it."""
    flush(redis_url)
    callers = tmp_path / "trip-callers.json"
    callers.write_text(json.dumps([{"app_id": CALLER[0], "secret": CALLER[1], "max_open_cases": 50,
                                    "rate_limit": {"per_second": 100, "burst": 100}}]))
    identity = IdentityService(tmp_path)
    settings = harness.test_settings(tmp_path, redis_url, {}, identity, "http://127.0.0.1:9/events", {},
                             callers_file=callers)
    app = create_app(settings, redis_url)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client):
        yield client, identity


async def submit(client: httpx.AsyncClient, identity: IdentityService, body: dict[str, Any], key: str,
                 assertion: str | None = None) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    person = body["applicant"]
    headers = {**signed_headers(*CALLER, "POST", "/v1/cases", raw), "Idempotency-Key": key,
               "Content-Type": "application/json",
               "X-Applicant-Assertion": assertion or identity.assertion(person["id_number"], person["name"])}
    return await client.post("/v1/cases", content=raw, headers=headers)


async def read(client: httpx.AsyncClient, case_id: str) -> dict[str, Any]:
    path = f"/v1/cases/{case_id}"
    response = await client.get(path, headers=signed_headers(*CALLER, "GET", path, b""))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_new_case_costs_three_redis_round_trips_and_answers_what_a_read_back_answers(
        redis_url, tmp_path, monkeypatch):
    async with api(tmp_path, redis_url) as (client, identity):
        warm_up = await submit(client, identity, medical_case(103), uuid.uuid4().hex)  # connections, scripts
        assert warm_up.status_code == 202, warm_up.text
        counter = TripCounter(monkeypatch)
        body, key = medical_case(113), uuid.uuid4().hex
        assertion = identity.assertion(body["applicant"]["id_number"], body["applicant"]["name"])
        accepted = await submit(client, identity, body, key, assertion)
        assert accepted.status_code == 202, accepted.text
        rounds = [["SET", "EVALSHA"],  # the nonce, the rate token
                  ["EVALSHA", "EVALSHA"],  # the open-case count, the claim
                  ["EVALSHA"]]  # the create step
        if redis_url.startswith("redis+cluster://"):
            # A Cluster pipeline writes to each node it touches at once: one round, one write per node.
            assert sorted(sum(counter.trips, [])) == sorted(sum(rounds, [])), counter.trips
            assert len(counter.trips) <= 5, counter.trips
        else:
            assert counter.trips == rounds

        view = accepted.json()
        assert CaseView.model_validate(view).model_dump(mode="json") == view  # the published model, nothing more
        assert await read(client, view["id"]) == view  # built from what was written, equal to reading it back
        retry = await submit(client, identity, body, key, assertion)  # its assertion spent: the case still answers
        assert retry.status_code == 200 and retry.json() == view


async def test_a_redis_that_lost_its_scripts_loads_them_and_spends_each_nonce_once(embedded_redis, tmp_path,
                                                                                   monkeypatch):
    async with api(tmp_path, embedded_redis.url) as (client, identity):
        assert (await submit(client, identity, medical_case(123), uuid.uuid4().hex)).status_code == 202
        sync_redis(embedded_redis.url).script_flush()  # as after a restart or a failover to a fresh replica
        counter = TripCounter(monkeypatch)
        accepted = await submit(client, identity, medical_case(133), uuid.uuid4().hex)
        assert accepted.status_code == 202, accepted.text  # the nonce was not sent twice (that would be a 401)
        loads = [trip for trip in counter.trips if trip == ["SCRIPT"]]
        assert len(loads) == 4, counter.trips  # the rate token's, the count's, the claim's and the create step's
