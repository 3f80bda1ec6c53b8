"""Prometheus metrics, named by Prometheus' conventions: a unit suffix (`_seconds`, `_duration_seconds`), `_total` on
counters, `_timestamp_seconds` on times. Labels never carry a name, phone or ID number, and only values from a known,
small set: routes (templates), adapters, operations, outcomes, unified statuses, validation codes.

The latency histograms carry the trace id as an exemplar when the observation happened inside a trace (exposed in
the OpenMetrics format, which Prometheus asks for when exemplar storage is on).

Under a supervisor (`gateway up`, `gateway api --processes N`) the child processes write to a shared
PROMETHEUS_MULTIPROC_DIR and `/metrics` adds them up: counters and histograms are summed; each gauge says how
(`multiprocess_mode`): the worker's readings of Redis keep the most recent, a breaker is open if open in any process,
the heartbeat is the newest. Exemplars are not kept in that mode.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gateway.observability.tracing import current_trace_id

API_REQUESTS = Counter("gateway_api_requests_total", "API requests", ["method", "route", "status"])
API_DURATION = Histogram("gateway_api_request_duration_seconds", "API request duration", ["method", "route"])
DEPARTMENT_CALLS = Counter("gateway_department_calls_total", "Calls to department back-ends",
                           ["adapter", "operation", "outcome"])
DEPARTMENT_DURATION = Histogram("gateway_department_call_duration_seconds", "Department call duration",
                                ["adapter", "operation"],
                                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CASES_CREATED = Counter("gateway_cases_created_total", "Cases accepted", ["profile", "channel"])
APPLICATIONS_REJECTED = Counter("gateway_applications_rejected_total",
                                "Applications refused with 422 (one per refused application)")
APPLICATION_PROBLEMS = Counter("gateway_application_problems_total",
                               "Problems found in refused applications, by validation code", ["code"])
TASK_TRANSITIONS = Counter("gateway_task_transitions_total", "Task status changes", ["adapter", "status"])
ILLEGAL_TRANSITIONS = Counter("gateway_illegal_transitions_total", "Transitions refused by the state machine",
                              ["adapter", "target"])
# No code label: an unknown code is by definition outside the status table, so its values would be unbounded; the
# code is in the log line and on the task (`gateway cases show`).
UNKNOWN_NATIVE = Counter("gateway_unknown_native_status_total", "Department codes missing from the status table",
                         ["adapter"])
DEAD_LETTERED = Counter("gateway_tasks_dead_lettered_total", "Tasks failed after exhausting retries", ["adapter"])
RETRIES = Counter("gateway_department_retries_total", "Retried department calls", ["adapter"])
CALLBACKS = Counter("gateway_callbacks_total", "Department callbacks", ["adapter", "result"])
LINKS_REFUSED = Counter("gateway_department_links_refused_total",
                        "Department H5 links refused: host off the adapter's allow-list or not https", ["adapter"])
OUTBOX = Counter("gateway_outbox_deliveries_total", "Outbox deliveries", ["channel", "result"])
OUTBOX_EVENTS_PARKED = Counter("gateway_outbox_events_parked_total",
                               "Outbox events parked for ops (refused too often, or unreadable)", ["reason"])
BREAKER_OPEN = Gauge("gateway_breaker_open", "1 while a department's circuit breaker is open", ["adapter"],
                     multiprocess_mode="max")
BREAKER_DEFERRED = Counter("gateway_breaker_deferred_total", "Tasks deferred while a breaker was open", ["adapter"])
APPLICANT_STEPS = Counter("gateway_applicant_step_timers_total", "Applicant H5 steps reminded or expired",
                          ["adapter", "outcome"])
CALENDAR_FALLBACK = Counter("gateway_calendar_fallback_total",
                            "Deadlines computed with the Mon-Fri fallback for a year without holiday data", ["year"])
OVERDUE_CASES = Gauge("gateway_overdue_cases", "Open cases past their promised deadline",
                      multiprocess_mode="mostrecent")
QUEUE_PENDING = Gauge("gateway_task_stream_pending", "Task messages read but not yet acknowledged",
                      multiprocess_mode="mostrecent")
DEAD_LETTER_TASKS = Gauge("gateway_dead_letter_tasks", "Tasks waiting in the dead-letter set for ops",
                          multiprocess_mode="mostrecent")
DELAYED_SIZE = Gauge("gateway_delayed_messages", "Task messages waiting for their time (back-off, breaker, polls)",
                     multiprocess_mode="mostrecent")
OUTBOX_BACKLOG = Gauge("gateway_outbox_pending", "Events read by a dispatcher but not yet delivered",
                       multiprocess_mode="mostrecent")
OUTBOX_PARKED = Gauge("gateway_outbox_parked", "Events parked after repeated refusals (gateway outbox replay)",
                      multiprocess_mode="mostrecent")
# Set by a worker's consumer loop on each round of housekeeping: when the loop is stuck, the process (and its metrics
# server) may still answer, but this time stops moving.
WORKER_HEARTBEAT = Gauge("gateway_worker_heartbeat_timestamp_seconds",
                         "When this worker's consumer loop last did its housekeeping (unix time)",
                         multiprocess_mode="max")


def observe_duration(histogram: Histogram, seconds: float) -> None:
    """Observe a labelled histogram child, with the current trace id as its exemplar when there is one."""
    trace_id = current_trace_id()
    histogram.observe(seconds, exemplar={"trace_id": trace_id} if trace_id else None)
