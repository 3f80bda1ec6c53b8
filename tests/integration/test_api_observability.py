"""What the API shows about itself: /metrics on its own port (not the public one), /docs and /openapi.json off when
asked, /readyz naming the dependency that is down without its error text, a request id on every answer, a worker
heartbeat in Redis and metric labels from bounded sets."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.bootstrap import build_services
from gateway.observability.http import metrics_server
from gateway.observability.metrics import WORKER_HEARTBEAT
from gateway.settings import Settings
from gateway.store.connection import connect
from mocks.serving import free_port
from tests.support.harness import applicant, start_gateway

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def test_metrics_on_their_own_port_docs_off_and_a_request_id(redis_url, tmp_path):
    metrics_port = free_port()
    gw = start_gateway(tmp_path, redis_url, metrics_port=metrics_port, api_docs=False)
    try:
        base = gw.base_url
        body = {"profile": "guangxi", "channel": "online", "applicant": applicant(), "delivery": "online",
                "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}
        case_id = gw.submit(body).json()["id"]
        gw.wait_terminal(case_id)
        bad = dict(body, matters=["no_such_matter"])
        assert gw.submit(bad).status_code == 422

        for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
            assert httpx.get(base + path).status_code == 404, path
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics",
                            headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("application/openmetrics-text")
        text = metrics.text
        assert 'gateway_api_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/cases"}' in text
        assert re.search(r'gateway_department_call_duration_seconds_count\{adapter="medical",'
                         r'operation="employee_medical_enrolment"\} [1-9]', text)
        assert re.search(r"gateway_applications_rejected_total [1-9]", text)
        # Bounded values: routes are templates (no case id in a label), no catch-all channel.
        routes = set(re.findall(r'route="([^"]*)"', text))
        assert "/v1/cases/{case_id}" in routes and not any(case_id in route for route in routes)
        assert 'channel="any"' not in text
        assert re.search(r"gateway_worker_heartbeat_timestamp_seconds [0-9.e+]+", text)

        # The worker's heartbeat, as `gateway status` reads it.
        beats = {key: json.loads(gw.redis().get(key)) for key in gw.redis().scan_iter("gw:workers:*")}
        assert len(beats) == 1
        beat = next(iter(beats.values()))
        assert beat["concurrency"] == gw.settings.worker_concurrency and beat["at"] > 0
        assert 0 < gw.redis().ttl(next(iter(beats))) <= int(gw.settings.redeliver_after_s)

        given = httpx.get(base + "/healthz", headers={"X-Request-Id": "platform-req-42"})
        assert given.headers["X-Request-Id"] == "platform-req-42"
        fresh = httpx.get(base + "/healthz", headers={"X-Request-Id": "x" * 65})
        assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["X-Request-Id"])
    finally:
        gw.stop()


def test_readyz_names_redis_when_it_is_down_without_its_error(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url)
    gw.stop()  # only its settings are needed: a fresh API on the same settings, whose Redis then goes away
    services = asyncio.run(build_services(gw.settings, redis_url, consumer="readyz-test", api=True))
    dead_port = free_port()
    services.redis = connect(f"redis://127.0.0.1:{dead_port}/0", Settings())
    with TestClient(create_app(gw.settings, redis_url, services=services)) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not ready", "down": ["redis"]}
    assert str(dead_port) not in answer.text and "Error" not in answer.text


def test_a_workers_health_check_fails_once_its_loop_stops_beating():
    app = metrics_server(heartbeat_within_s=30.0)
    with TestClient(app) as client:
        WORKER_HEARTBEAT.set(time.time() - 31)  # the consumer loop's last housekeeping, 31 s ago
        stalled = client.get("/healthz")
        WORKER_HEARTBEAT.set(time.time())
        alive = client.get("/healthz")
        assert client.get("/metrics").status_code == 200
    assert stalled.status_code == 503 and stalled.json() == {"status": "stalled"}
    assert alive.status_code == 200
    with TestClient(metrics_server(heartbeat_within_s=None)) as client:  # an API process: no worker to vouch for
        assert client.get("/healthz").status_code == 404
