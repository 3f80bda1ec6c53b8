"""The gateway's metrics against Prometheus' naming conventions: units in names, `_total` counters, durations named
`_duration_seconds`, label sets from small known vocabularies only, and trace ids as exemplars on the durations."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

import gateway.observability.metrics as gateway_metrics
import gateway.observability.tracing as tracing
from gateway.observability.metrics import observe_duration

# Every metric's exposed name (counters with _total) and its labels. A new metric or label is added here on purpose.
EXPECTED = {
    "gateway_api_requests_total": {"method", "route", "status"},
    "gateway_api_request_duration_seconds": {"method", "route"},
    "gateway_department_calls_total": {"adapter", "operation", "outcome"},
    "gateway_department_call_duration_seconds": {"adapter", "operation"},
    "gateway_cases_created_total": {"profile", "channel"},
    "gateway_applications_rejected_total": set(),
    "gateway_application_problems_total": {"code"},
    "gateway_task_transitions_total": {"adapter", "status"},
    "gateway_illegal_transitions_total": {"adapter", "target"},
    "gateway_unknown_native_status_total": {"adapter"},
    "gateway_tasks_dead_lettered_total": {"adapter"},
    "gateway_department_retries_total": {"adapter"},
    "gateway_callbacks_total": {"adapter", "result"},
    "gateway_outbox_deliveries_total": {"channel", "result"},
    "gateway_outbox_events_parked_total": {"reason"},
    "gateway_breaker_open": {"adapter"},
    "gateway_breaker_deferred_total": {"adapter"},
    "gateway_calendar_fallback_total": {"year"},
    "gateway_overdue_cases": set(),
    "gateway_task_stream_pending": set(),
    "gateway_dead_letter_tasks": set(),
    "gateway_delayed_messages": set(),
    "gateway_outbox_pending": set(),
    "gateway_outbox_parked": set(),
    "gateway_worker_heartbeat_timestamp_seconds": set(),
    "gateway_department_links_refused_total": {"adapter"},
    "gateway_applicant_step_timers_total": {"adapter", "outcome"},
}
# Labels whose values come from a small set the gateway knows (routes are templates, codes are the validator's).
BOUNDED_LABELS = {"method", "route", "status", "adapter", "operation", "outcome", "profile", "channel", "code",
                  "target", "result", "reason", "year"}
RETIRED = ("gateway_api_request_seconds", "gateway_department_call_seconds", "gateway_dlq_size",
           "gateway_validation_errors_total")


def gateway_metric_objects() -> list[MetricWrapperBase]:
    return [v for v in vars(gateway_metrics).values() if isinstance(v, MetricWrapperBase)]


def exposed_name(metric: MetricWrapperBase) -> str:
    return metric._name + ("_total" if metric._type == "counter" else "")  # type: ignore[attr-defined]


def test_names_and_label_sets_are_the_expected_ones() -> None:
    found = {exposed_name(m): set(m._labelnames) for m in gateway_metric_objects()}  # type: ignore[attr-defined]
    assert found == EXPECTED
    assert not set(found) & set(RETIRED)


@pytest.mark.parametrize("metric", gateway_metric_objects(), ids=exposed_name)
def test_each_metric_follows_the_naming_conventions(metric: MetricWrapperBase) -> None:
    name, kind = exposed_name(metric), metric._type  # type: ignore[attr-defined]
    assert name.startswith("gateway_") and name == name.lower()
    assert set(metric._labelnames) <= BOUNDED_LABELS, "a label outside the bounded vocabularies"  # type: ignore[attr-defined]
    if kind == "counter":
        assert name.endswith("_total")
    else:
        assert not name.endswith("_total")
    if kind == "histogram":  # every histogram here times something
        assert name.endswith("_duration_seconds")
    if "seconds" in name or "timestamp" in name:
        assert name.endswith(("_duration_seconds", "_timestamp_seconds"))
    assert not name.endswith(("_size", "_count", "_sum", "_bucket"))


def test_duration_observations_carry_the_trace_id_as_exemplar(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    histogram = Histogram("t_duration_seconds", "t", ["route"], registry=registry)
    observe_duration(histogram.labels("/v1/cases"), 0.02)  # no trace: no exemplar
    assert "trace_id" not in openmetrics(registry).decode()

    monkeypatch.setattr(tracing, "_enabled", True)
    context = SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(context)):
        observe_duration(histogram.labels("/v1/cases"), 0.03)
    exposed = openmetrics(registry).decode()
    exemplar = '# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.03 '
    assert 't_duration_seconds_bucket{le="0.05",route="/v1/cases"} 2.0 ' + exemplar in exposed
