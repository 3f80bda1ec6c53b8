"""What every mock department has: fault injection, de-duplication by request id, stats, signed callbacks.

Mocks play other organisations' systems, so nothing here imports the gateway or the adapters: the wire format is the
only contract between them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel


class Faults(BaseModel):
    error_rate: float = 0.0  # answer 5xx (REST) or a SOAP server fault
    timeout_rate: float = 0.0  # do the work, then hang past any sane client time-out
    latency_ms: int = 0  # added to every business call
    malformed_rate: float = 0.0  # answer 200 with a garbage body
    outage: bool = False  # the department is down: every business call fails at once


def faults_from_env() -> Faults:
    """`MOCK_FAULTS` as JSON, passed on by `gateway up` and `gateway mocks` to every mock they start."""
    raw = os.environ.get("MOCK_FAULTS", "").strip()
    return Faults.model_validate_json(raw) if raw else Faults()


def applicant_delay_s() -> float | None:
    """How long the simulated applicant takes to act on an H5 link; None ("off") leaves it to a person or a test."""
    raw = os.environ.get("MOCK_APPLICANT_DELAY_S", "off").strip().lower()
    return None if raw in ("", "off", "none") else float(raw)


HANG_S = 120.0  # longer than any client time-out the gateway uses


@dataclass
class MockState:
    name: str
    faults: Faults = field(default_factory=faults_from_env)
    received: int = 0
    duplicates: int = 0
    registrations: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    # request id -> the answer given the first time: a repeat gets the same answer and registers nothing
    answers: dict[str, Any] = field(default_factory=dict)
    # Every business request as this department read it, so tests see exactly what arrived (GET /_mock/requests).
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    _http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The department's one pooled client for what it sends (callbacks; the simulated applicant's visits):
        a client made per message costs ~30 ms of CPU for its TLS context, which co-hosted mocks take from the
        gateway beside them."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        return self._http

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "received": self.received,
            "duplicates": self.duplicates,
            "registrations": self.registrations,
            "callbacks_sent": self.callbacks_sent,
            "callbacks_failed": self.callbacks_failed,
            "faults": self.faults.model_dump(),
        }

    async def once(self, request_id: str, register: Callable[[], Awaitable[Any]]) -> Any:
        """Run `register` the first time a request id is seen; afterwards answer what was answered then."""
        async with self.lock:
            self.received += 1
            if request_id in self.answers:
                self.duplicates += 1
                return self.answers[request_id]
            answer = await register()
            self.answers[request_id] = answer
            self.registrations += 1
            return answer

    def log_request(self, request_id: str, operation: str, body: Any) -> None:
        """Keep what arrived, parsed the way this department parses it (a bounded log: the newest 2000)."""
        self.requests.append({"request_id": request_id, "operation": operation, "received_at": time.time(),
                              "body": body})
        del self.requests[:-2000]

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


@dataclass(frozen=True)
class FaultDecision:
    kind: str  # "ok" | "error" | "timeout" | "malformed" | "outage"


async def decide_fault(state: MockState) -> FaultDecision:
    """Draw this call's fault from the settings, after the configured latency."""
    faults = state.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.outage:
        return FaultDecision("outage")
    draw = random.random()
    for kind, rate in (("error", faults.error_rate), ("timeout", faults.timeout_rate),
                       ("malformed", faults.malformed_rate)):
        if draw < rate:
            return FaultDecision(kind)
        draw -= rate
    return FaultDecision("ok")


def add_control_routes(app: FastAPI, state: MockState) -> None:
    """`/_mock/faults`, `/_mock/stats`, `/health`: the control plane answers even while the department is 'down'."""

    @app.get("/_mock/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.model_dump()

    @app.post("/_mock/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        state.faults = Faults.model_validate(await request.json())
        return state.faults.model_dump()

    @app.get("/_mock/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.get("/_mock/requests")
    async def requests(request_id: str | None = None) -> dict[str, Any]:
        found = [r for r in state.requests if request_id is None or r["request_id"] == request_id]
        return {"requests": found}

    @app.post("/_mock/reset")
    async def reset() -> dict[str, Any]:
        state.faults = Faults()
        state.received = state.duplicates = state.registrations = 0
        state.callbacks_sent = state.callbacks_failed = 0
        state.answers.clear()
        state.requests.clear()
        return state.stats()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "down" if state.faults.outage else "up", "name": state.name}


REQUEST_ID_HEADER = "X-Request-Id"


def sign(secret: str, adapter: str, request_id: str, timestamp: str, body: bytes) -> str:
    """The gateway's callback convention: HMAC-SHA256 over `adapter \\n request id \\n timestamp \\n body`."""
    message = b"\n".join([adapter.encode(), request_id.encode(), timestamp.encode(), body])
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def callback_headers(secret: str, adapter: str, request_id: str, body: bytes, *, signature_header: str,
                     timestamp_header: str, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    return {"Content-Type": "application/json", timestamp_header: timestamp, REQUEST_ID_HEADER: request_id,
            signature_header: sign(secret, adapter, request_id, timestamp, body)}


async def send_callback(state: MockState, url: str, payload: dict[str, Any], *, request_id: str, secret: str,
                        signature_header: str, timestamp_header: str, attempts: int = 5) -> None:
    """POST a signed callback the way a department's notifier would: a few tries, then give up (ops will poll).

    The mock's name is the gateway adapter's name it signs for; the request id is the gateway's, from the body.
    """
    body = json.dumps(payload, ensure_ascii=False).encode()
    for attempt in range(attempts):
        headers = callback_headers(secret, state.name, request_id, body, signature_header=signature_header,
                                   timestamp_header=timestamp_header)
        try:
            response = await state.http.post(url, content=body, headers=headers, timeout=5.0)
            if response.status_code < 500:
                state.callbacks_sent += 1
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2 * 2**attempt)
    state.callbacks_failed += 1


def h5_page(title: str, content: str, status: int = 200) -> HTMLResponse:
    """The shell of a department's mobile (H5) page: what the applicant sees after following the SMS link."""
    return HTMLResponse(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{content}</body></html>",
        status_code=status,
    )


def garbage_response() -> Response:
    return Response(content=b"<html><body>502 Bad Gateway\x00\xff", media_type="application/json", status_code=200)


def env_secret(name: str) -> str:
    """The key this department signs its callbacks with (`gateway up` / `gateway mocks` pass the gateway's)."""
    return os.environ.get(f"MOCK_{name.upper()}_CALLBACK_SECRET") or f"dev-{name}-callback-secret"


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class TraceparentLog:
    """Logs the W3C traceparent of every request the department receives, as a department's own server would: the
    gateway's trace then shows which of the department's log lines belong to it."""

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.log = logging.getLogger(f"mocks.{name}")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            traceparent = headers.get(b"traceparent", b"").decode("latin-1")
            if traceparent:
                self.log.info("request %s %s traceparent=%s", scope["method"], scope["path"], traceparent)
        await self.app(scope, receive, send)
