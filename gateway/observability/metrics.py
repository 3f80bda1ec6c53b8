"""Prometheus metrics. Labels never carry a name, phone or ID number: only routes, departments, codes, statuses."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

API_REQUESTS = Counter("gateway_api_requests_total", "API requests", ["method", "route", "status"])
API_LATENCY = Histogram("gateway_api_request_seconds", "API request latency", ["method", "route"])
DEPARTMENT_CALLS = Counter("gateway_department_calls_total", "Calls to department back-ends",
                           ["adapter", "operation", "outcome"])
DEPARTMENT_LATENCY = Histogram("gateway_department_call_seconds", "Department call latency", ["adapter", "operation"],
                               buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CASES_CREATED = Counter("gateway_cases_created_total", "Cases accepted", ["profile", "channel"])
VALIDATION_REJECTIONS = Counter("gateway_validation_errors_total", "Application problems reported", ["code"])
TASK_TRANSITIONS = Counter("gateway_task_transitions_total", "Task status changes", ["adapter", "status"])
ILLEGAL_TRANSITIONS = Counter("gateway_illegal_transitions_total", "Transitions refused by the state machine",
                              ["adapter", "target"])
UNKNOWN_NATIVE = Counter("gateway_unknown_native_status_total", "Department codes missing from the status table",
                         ["adapter", "native_status"])
DEAD_LETTERED = Counter("gateway_tasks_dead_lettered_total", "Tasks failed after exhausting retries", ["adapter"])
RETRIES = Counter("gateway_department_retries_total", "Retried department calls", ["adapter"])
CALLBACKS = Counter("gateway_callbacks_total", "Department callbacks", ["adapter", "result"])
LINKS_REFUSED = Counter("gateway_department_links_refused_total",
                        "Department H5 links refused: host off the adapter's allow-list or not https", ["adapter"])
OUTBOX = Counter("gateway_outbox_deliveries_total", "Outbox deliveries", ["channel", "result"])
BREAKER_OPEN = Gauge("gateway_breaker_open", "1 while a department's circuit breaker is open", ["adapter"])
BREAKER_DEFERRED = Counter("gateway_breaker_deferred_total", "Tasks deferred while a breaker was open", ["adapter"])
CALENDAR_FALLBACK = Counter("gateway_calendar_fallback_total",
                            "Deadlines computed with the Mon-Fri fallback for a year without holiday data", ["year"])
OVERDUE_CASES = Gauge("gateway_overdue_cases", "Open cases past their promised deadline")
QUEUE_PENDING = Gauge("gateway_task_stream_pending", "Task messages read but not yet acknowledged")
DEAD_LETTER_SIZE = Gauge("gateway_dlq_size", "Tasks waiting in the dead-letter set for ops")
DELAYED_SIZE = Gauge("gateway_delayed_messages", "Task messages waiting for their time (back-off, breaker, polls)")
OUTBOX_BACKLOG = Gauge("gateway_outbox_pending", "Events read by a dispatcher but not yet delivered")
OUTBOX_PARKED = Gauge("gateway_outbox_parked", "Events parked after repeated refusals (gateway outbox replay)")
