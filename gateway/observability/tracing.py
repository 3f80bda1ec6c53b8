"""Traces (OpenTelemetry) across a case's whole path: API request, stream step, department call, callback, outbox.

Off unless configured, and then free: with neither `OTEL_EXPORTER_OTLP_ENDPOINT` nor `OTEL_TRACES_EXPORTER` set no
provider is installed, no transport is wrapped, no `traceparent` is written, and every helper here returns at once.
`OTEL_TRACES_EXPORTER=console` prints each finished span as JSON on stdout; an OTLP endpoint exports over HTTP;
`OTEL_TRACES_EXPORTER=none` keeps tracing off even with an endpoint set.

The W3C `traceparent` ties the parts together: it travels in the task stream's entries (the step that queued a
message is the parent of the step that handles it), on the case hash (the case's own trace: delayed messages,
callbacks and outbox deliveries continue it), and on every request to a department (so the department's logs name
the trace). Span attributes carry ids and codes only (case id, matter, adapter, route): never a person's data, never a
URL's query or an H5 token.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("gateway")
_lock = threading.Lock()
_enabled = False


def configure_tracing(service_name: str = "flex-employment-gateway") -> bool:
    """Install the exporter the environment asks for, once per process; False (and nothing done) when none is."""
    global _enabled
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or "").strip()
    if exporter == "none" or (not exporter and not endpoint):
        return False
    with _lock:
        if _enabled:
            return True
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name}))
        names = {name.strip() for name in exporter.split(",") if name.strip()} or {"otlp"}
        if "console" in names:  # for a person or a test reading stdout: each span as it ends
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        if "otlp" in names or endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        # Its spans name the command only ("HSET ? ? ?"): arguments hold sealed values, idempotency keys and nonces.
        RedisInstrumentor().instrument(tracer_provider=provider)
        _enabled = True
        return True


def tracing_enabled() -> bool:
    return _enabled


def current_traceparent() -> str:
    """The current span as a W3C traceparent, "" when tracing is off or no span is current."""
    if not _enabled:
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def current_trace_id() -> str:
    """The current trace id (32 hex digits), "" when there is none."""
    if not _enabled:
        return ""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def trace_id_of(traceparent: str | None) -> str:
    """The trace id inside a traceparent ("00-<trace id>-<span id>-<flags>"), "" when it is none."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


def _context_of(traceparent: str | None) -> Context | None:
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}) if traceparent else None


@contextmanager
def span(name: str, *, parent: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
         attributes: Mapping[str, Any] | None = None, link_current: bool = False) -> Iterator[trace.Span | None]:
    """A span, child of `parent` (a traceparent) when given, else of the current span.

    `link_current`: the span joins `parent`'s trace and links to the current span (a callback's HTTP request, which
    began its own trace, is linked from the case's trace).
    """
    if not _enabled:
        yield None
        return
    links = []
    if link_current:
        current = trace.get_current_span().get_span_context()
        if current.is_valid and (not parent or format(current.trace_id, "032x") != trace_id_of(parent)):
            links.append(Link(current))
    context = _context_of(parent) if parent else None
    with _TRACER.start_as_current_span(name, context=context, kind=kind, links=links,
                                       attributes=dict(attributes or {})) as current_span:
        yield current_span


@contextmanager
def server_span(method: str, headers: Mapping[str, str]) -> Iterator[trace.Span | None]:
    """The span of one API request, continuing the caller's trace when it sent a traceparent."""
    if not _enabled:
        yield None
        return
    context = _PROPAGATOR.extract(dict(headers))
    with _TRACER.start_as_current_span(method, context=context, kind=SpanKind.SERVER,
                                       attributes={"http.request.method": method}) as current_span:
        yield current_span


def finish_server_span(current_span: trace.Span | None, method: str, route: str, status: int) -> None:
    if current_span is None:
        return
    current_span.update_name(f"{method} {route}")
    current_span.set_attribute("http.route", route)
    current_span.set_attribute("http.response.status_code", status)
    if status >= 500:
        current_span.set_status(Status(StatusCode.ERROR))


class TracedTransport(httpx.AsyncBaseTransport):
    """A client span per request, and the request carries its traceparent to the receiver.

    Attributes name the method, host and status only: paths and queries of department APIs may carry personal data.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, peer: str) -> None:
        self.inner = inner
        self.peer = peer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attributes: dict[str, Any] = {"http.request.method": request.method, "server.address": request.url.host,
                                      "gateway.peer": self.peer}
        if request.url.port:
            attributes["server.port"] = request.url.port
        with _TRACER.start_as_current_span(f"{request.method} {self.peer}", kind=SpanKind.CLIENT,
                                           attributes=attributes) as current_span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            for name, value in carrier.items():
                request.headers[name] = value
            response = await self.inner.handle_async_request(request)
            current_span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current_span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def traced(transport: httpx.AsyncBaseTransport, peer: str) -> httpx.AsyncBaseTransport:
    """The transport itself when tracing is off (no cost), else wrapped in a client span."""
    return TracedTransport(transport, peer) if _enabled else transport
