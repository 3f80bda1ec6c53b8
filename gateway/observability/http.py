"""What every API request gets (its server span, a request id in the logs and the response, its metrics), and the
metrics port's own small app."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from gateway.observability.metrics import API_DURATION, API_REQUESTS, WORKER_HEARTBEAT, observe_duration
from gateway.observability.tracing import finish_server_span, server_span

REQUEST_ID_HEADER = "X-Request-Id"


def request_id_of(request: Request) -> str:
    """The caller's X-Request-Id when it is a sane one (short, printable ASCII), else a fresh one."""
    given = request.headers.get(REQUEST_ID_HEADER, "").strip()
    if given and len(given) <= 64 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


async def observe_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    status = 500  # an exception escaping the app is answered 500 by the server: count it as such
    request_id = request_id_of(request)
    with (server_span(request.method, request.headers) as span,
          structlog.contextvars.bound_contextvars(request_id=request_id)):
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            API_REQUESTS.labels(request.method, route, str(status)).inc()
            observe_duration(API_DURATION.labels(request.method, route), time.perf_counter() - started)
            finish_server_span(span, request.method, route, status)


def metrics_response(accept: str | None) -> Response:
    """The registry in the format the scraper asks for: OpenMetrics (with exemplars) or the classic text format.
    Under a supervisor (PROMETHEUS_MULTIPROC_DIR set), every child process's metrics added up, without exemplars."""
    encoder, content_type = choose_encoder(accept or "")
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(encoder(registry), media_type=content_type)


def metrics_server(heartbeat_within_s: float | None) -> FastAPI:
    """The metrics port's app: /metrics, and for a worker /healthz, 200 only while its consumer loop's heartbeat is
    younger than `heartbeat_within_s` (a stuck loop fails its container's health check though this server answers)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return metrics_response(request.headers.get("accept"))

    if heartbeat_within_s is not None:
        @app.get("/healthz")
        async def healthz() -> Response:
            beat = REGISTRY.get_sample_value(WORKER_HEARTBEAT._name) or 0.0
            alive = time.time() - beat < heartbeat_within_s
            return Response(json.dumps({"status": "alive" if alive else "stalled"}), media_type="application/json",
                            status_code=200 if alive else 503)

    return app
