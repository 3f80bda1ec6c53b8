"""A whole gateway for integration tests: real Redis, real mock departments on loopback, API and worker in a thread.

Nothing is faked: the gateway runs `run_gateway` exactly as `gateway up` does, in its own event loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request, Response
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from gateway.client import GatewayClient
from gateway.runtime import run_gateway
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.connection import cluster_node_url, parse_sentinel_url
from mocks.serving import RunningServer, create_mock, free_port, start_in_thread

ALL_MOCKS = ("medical", "hrss", "tax", "housing_fund", "e_license", "sms")
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
TERMINAL = {"completed", "rejected", "skipped", "failed", "cancelled"}


def id_number(division: str, birth: str, sequence: int) -> str:
    body = f"{division}{birth}{sequence:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


class IdentityService:
    """The unified identity service: an EC key, its JWKS for the gateway, assertions for applicants."""

    def __init__(self, folder: Path, issuer: str = "test-idp") -> None:
        self.issuer = issuer
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

        self.jwks_path = folder / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(numbers.x),
                                                        "y": b64(numbers.y), "kid": issuer, "alg": "ES256"}]}))

    def assertion(self, sub: str, name: str | None = "韦样例", *, exp_s: int = 600, issuer: str | None = None,
                  key: ec.EllipticCurvePrivateKey | None = None, **claims: Any) -> str:
        """A fresh single-use assertion for the gateway's audience; `claims` override or (as None) drop claims."""
        now = int(time.time())
        payload: dict[str, Any] = {"sub": sub, "name": name, "acr": "L3", "iss": issuer or self.issuer,
                                   "aud": "flex-employment-gateway", "iat": now, "exp": now + exp_s,
                                   "jti": uuid.uuid4().hex}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.key, algorithm="ES256", headers={"kid": self.issuer})


class Recorder:
    """A webhook receiver (the platform's side): records every event, can be told to fail."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.failing = False
        self.refusal_rate = 0.0  # a flaky platform: refuse this share of deliveries at random
        self.delay_s = 0.0  # a slow platform: answer each delivery this late
        app = FastAPI()

        @app.post("/events")
        async def receive(request: Request) -> Response:
            await asyncio.sleep(self.delay_s)
            if self.failing or random.random() < self.refusal_rate:
                return Response(status_code=503)
            self.events.append(json.loads(await request.body()))
            self.headers.append(dict(request.headers))
            return Response(status_code=204)

        self.server = start_in_thread(app)
        self.url = self.server.url + "/events"


@dataclass
class RunningGateway:
    settings: Settings
    redis_url: str
    client: GatewayClient
    window_client: GatewayClient
    identity: IdentityService
    mocks: dict[str, RunningServer]
    webhook: Recorder
    callback_secrets: dict[str, str]  # each department's own key, known to its mock and its adapter
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event
    extra_stops: list[Callable[[], None]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def mock(self, name: str) -> str:
        return self.mocks[name].url

    def faults(self, name: str, **faults: Any) -> None:
        httpx.post(self.mock(name) + "/_mock/faults", json=faults).raise_for_status()

    def stats(self, name: str) -> dict[str, Any]:
        return httpx.get(self.mock(name) + "/_mock/stats").json()  # type: ignore[no-any-return]

    def submit(self, body: dict[str, Any], *, key: str | None = None, assertion: str | None | bool = True,
               window: bool = False) -> httpx.Response:
        if assertion is True:
            applicant = body.get("applicant", {})
            assertion = self.identity.assertion(applicant.get("id_number", ""), applicant.get("name", ""))
        client = self.window_client if window else self.client
        return client.submit_case(body, idempotency_key=key or uuid.uuid4().hex,
                                  assertion=assertion or None)

    def case(self, case_id: str) -> dict[str, Any]:
        """The case as its own caller sees it (a caller sees only its own cases)."""
        owner = self.redis().hget(keys.case(case_id), "caller")
        response = (self.window_client if owner == WINDOW[0] else self.client).get_case(case_id)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def wait(self, case_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        case = self.case(case_id)
        while not until(case):
            if time.monotonic() > deadline:
                raise AssertionError(f"case {case_id} did not get there in {timeout} s: "
                                     f"{[(t['matter'], t['status'], t['native_status']) for t in case['tasks']]}")
            time.sleep(0.1)
            case = self.case(case_id)
        return case

    def wait_terminal(self, case_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait(case_id, lambda c: all(t["status"] in TERMINAL for t in c["tasks"]), timeout)

    def wait_events(self, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0) -> list[dict[str, Any]]:
        """Webhook events as the platform received them, once `until` holds (delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while not until(list(self.webhook.events)):
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook events not there in {timeout} s: "
                                     f"{[(e['type'], e.get('matter'), e.get('status')) for e in self.webhook.events]}")
            time.sleep(0.05)
        return list(self.webhook.events)

    def redis(self) -> redis.Redis:
        return sync_redis(self.redis_url)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)
        self.client.close()
        self.window_client.close()
        for server in self.mocks.values():
            server.stop()
        self.webhook.server.stop()
        for stop in self.extra_stops:
            stop()


PLATFORM = ("test-platform", "test-platform-secret")
WINDOW = ("test-window", "test-window-secret")
OPERATOR = "clerk-0042"  # the window clerk the window client signs as


def test_settings(tmp_path: Path, redis_url: str, mocks: dict[str, RunningServer], identity: IdentityService,
                  webhook_url: str, callback_secrets: dict[str, str],
                  adapter_extra: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> Settings:
    callers = tmp_path / "callers.json"
    callers.write_text(json.dumps([
        {"app_id": PLATFORM[0], "secret": PLATFORM[1], "name": "test platform"},
        {"app_id": WINDOW[0], "secret": WINDOW[1], "name": "service-centre window", "kind": "window"},
    ]))
    port = free_port()
    values: dict[str, Any] = dict(
        redis_url=redis_url, var_dir=tmp_path / "var", api_port=port, callers_file=callers,
        identity_jwks_file=identity.jwks_path, identity_issuer=identity.issuer,
        adapters={name: {"base_url": server.url, "timeout_s": 1.0, "callback_secret": callback_secrets[name],
                         **(adapter_extra or {}).get(name, {})}
                  for name, server in mocks.items() if name != "sms"},
        sms_url=mocks["sms"].url if "sms" in mocks else None, webhook_url=webhook_url,
        retry_attempts=4, retry_max_s=5.0, retry_initial_s=0.05, retry_cap_s=0.2, redeliver_after_s=3.0,
        poll_initial_s=0.2, poll_cap_s=1.0, breaker_failures=3, breaker_open_s=2.0, outbox_timeout_s=1.0,
        outbox_redeliver_after_s=1.0,
    )
    values.update(overrides)
    return Settings(**values)


def start_gateway(tmp_path: Path, redis_url: str, *, mock_names: Iterable[str] = ALL_MOCKS,
                  applicant_delay: str = "off", mock_env: dict[str, str] | None = None,
                  adapter_extra: dict[str, dict[str, Any]] | None = None, **overrides: Any) -> RunningGateway:
    # The mocks read their behaviour from the environment when they are created, as they would at start-up.
    saved = dict(os.environ)
    callback_secrets = {name: secrets.token_hex(32) for name in mock_names}
    os.environ.update({"MOCK_APPLICANT_DELAY_S": applicant_delay, "MOCK_HRSS_REVIEW_S": "0.3",
                       "MOCK_HRSS_CARD_S": "0.3", **(mock_env or {}),
                       **{f"MOCK_{name.upper()}_CALLBACK_SECRET": secret for name, secret in callback_secrets.items()}})
    try:
        mocks = {name: start_in_thread(create_mock(name)) for name in mock_names}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    flush(redis_url)
    identity = IdentityService(tmp_path)
    webhook = Recorder()
    settings = test_settings(tmp_path, redis_url, mocks, identity, webhook.url, callback_secrets, adapter_extra,
                             **overrides)
    started = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            await run_gateway(settings, redis_url, api=True, worker=True, consumer=f"test-{uuid.uuid4().hex[:6]}",
                              stop=holder["stop"], started=started)

        try:
            asyncio.run(main())
        except BaseException as exc:
            holder["error"] = exc
            started.set()

    thread = threading.Thread(target=serve, name="gateway", daemon=True)
    thread.start()
    if not started.wait(30) or "error" in holder:
        raise RuntimeError(f"gateway did not start: {holder.get('error')!r}")
    base = settings.base_url
    return RunningGateway(settings=settings, redis_url=redis_url, client=GatewayClient(base, *PLATFORM),
                          window_client=GatewayClient(base, *WINDOW, operator_id=OPERATOR), identity=identity,
                          mocks=mocks, webhook=webhook, callback_secrets=callback_secrets, thread=thread,
                          loop=holder["loop"], stop_event=holder["stop"])


def sync_redis(url: str) -> redis.Redis:
    """A blocking client for a plain URL, a `redis+cluster://` one, or, through its Sentinels, a `redis+sentinel://`
    one."""
    node_url = cluster_node_url(url)
    if node_url:
        return RedisCluster.from_url(node_url, decode_responses=True)  # type: ignore[return-value]
    address = parse_sentinel_url(url)
    if address is None:
        return redis.Redis.from_url(url, decode_responses=True)
    sentinel = Sentinel(address.sentinels, socket_timeout=2)
    return sentinel.master_for(address.master_name, db=address.db, password=address.password,
                               decode_responses=True)


def flush(redis_url: str) -> None:
    """Each gateway starts on an empty database: nothing left over from another test can be picked up."""
    client = sync_redis(redis_url)
    client.flushdb()
    client.close()


def applicant(division: str = "450103", birth: str = "19900517", sequence: int = 123, **extra: Any) -> dict[str, Any]:
    # The household is declared, as a platform pre-fills it (信息预填): here, where the mock population has it.
    return {"name": "韦样例", "id_type": "resident_id", "id_number": id_number(division, birth, sequence),
            "phone": "13912345678", "household_division_code": division, **extra}


MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def medical_case(channel: str = "online", sequence: int = 123) -> dict[str, Any]:
    """A Guangxi employee medical enrolment, the one-matter case most tests need."""
    return {"profile": "guangxi", "channel": channel, "applicant": applicant(sequence=sequence),
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION},
            "delivery": channel}


def stream_pending(client: redis.Redis, stream_of: Callable[[int], str], group: str) -> int:
    """Entries read from every shard's stream and not yet acknowledged."""
    return sum(int(client.xpending(stream_of(shard), group)["pending"]) for shard in keys.all_shards()
               if client.exists(stream_of(shard)))


def holding_consumers(client: redis.Redis) -> set[str]:
    """The task-stream consumers holding an entry on any shard."""
    return {c["name"] for shard in keys.all_shards() if client.exists(keys.task_stream(shard))
            for c in client.xinfo_consumers(keys.task_stream(shard), keys.TASK_GROUP) if c["pending"]}


def dead_letter_count(client: redis.Redis) -> int:
    return sum(int(client.zcard(keys.dlq(shard))) for shard in keys.all_shards())
