"""Structured logs (structlog). Callers log ids and codes, never names, phones or ID numbers.

Context rides along without being passed: the API binds `request_id`, a worker step and a callback bind `case_id`
and `matter` (structlog's context variables), and every line inside a trace carries its `trace_id`.
"""

from __future__ import annotations

import logging

import structlog
from structlog.typing import EventDict, WrappedLogger

from gateway.observability.tracing import current_trace_id


def add_trace_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    if "trace_id" not in event_dict:
        trace_id = current_trace_id()
        if trace_id:
            event_dict["trace_id"] = trace_id
    return event_dict


def configure_logging(level: str = "INFO", json_output: bool = False) -> None:
    logging.basicConfig(level=level, format="%(message)s")
    # One line per department call is noise at INFO; our own logs and metrics say what matters.
    for chatty in ("httpx", "httpcore", "zeep"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Plain tracebacks only: a pretty traceback prints local variables, and locals hold ID numbers and names.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json_output else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([structlog.processors.format_exc_info] if json_output else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
