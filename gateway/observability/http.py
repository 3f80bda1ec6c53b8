"""What every API request gets: its server span, a request id in the logs and the response, its metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from gateway.observability.metrics import API_DURATION, API_REQUESTS, observe_duration
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
    """The registry in the format the scraper asks for: OpenMetrics (with exemplars) or the classic text format."""
    encoder, content_type = choose_encoder(accept or "")
    return Response(encoder(REGISTRY), media_type=content_type)
