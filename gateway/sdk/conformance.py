"""The conformance kit: what every department adapter must do, checked against the adapter and its running mock.

Integrators run it from their own CI (no pytest needed) or from a test::

    report = asyncio.run(run_conformance(ConformanceTarget(MyAdapter, mock_url, [sample], callback_sample=signer)))
    assert report.ok, report.summary()

The mock must speak the mock conventions: `POST /_mock/faults` (error_rate, timeout_rate, malformed_rate, outage) and
`GET /_mock/stats` (received, duplicates, registrations). Every check has a name (see `CHECKS`); a failure says what
was expected and what happened. The kit leaves the mock's faults reset to none when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import structlog
import uvicorn

from gateway.sdk.contract import (
    AdapterContext,
    AdapterSettings,
    CallbackEvent,
    DepartmentAdapter,
    DepartmentRequest,
    DepartmentTimeout,
    DepartmentUnavailable,
    InvalidCallback,
    MalformedReply,
    NativeOutcome,
    TechnicalFault,
    new_request_id,
)
from gateway.sdk.http import REQUEST_ID_HEADER
from gateway.sdk.status_table import StatusTable

CallbackSigner = Callable[[str], tuple[dict[str, str], bytes]]
DirectOperation = Callable[[DepartmentAdapter], Awaitable[object]]

CHECKS: dict[str, str] = {
    "declaration": "the adapter class declares name, department, version, protocol and operations",
    "status_table": "the status table is loaded, non-empty, of this department, with zh/en reasons on rejections",
    "operations_covered": "every declared operation is exercised by a sample (or a direct call), no sample is extra",
    "start": "start() succeeds against the running mock",
    "health": "health() answers True while the mock is up",
    "submit_known_code": "each sample's submit answers a NativeOutcome whose native code is in the status table",
    "idempotent_submit": "the same request id twice registers at most once; the mock counts the duplicate",
    "query_status": "query_status of each submitted sample answers a native code in the status table",
    "direct_operations": "each operation the core calls directly (not through submit) completes",
    "callback_genuine": "a genuinely signed callback parses to a request id and a native code in the status table",
    "callback_forged": "a callback signed with another key, altered after signing, or naming another request id "
                       "raises InvalidCallback",
    "callback_unsigned": "a callback without its signature raises InvalidCallback",
    "timeout_honoured": "with settings.timeout_s=0.5 a hanging department raises DepartmentTimeout in time",
    "server_error": "a department answering 5xx raises DepartmentUnavailable",
    "outage": "a department that is down raises DepartmentUnavailable",
    "connection_refused": "nothing listening raises DepartmentUnavailable",
    "malformed_reply": "a garbage reply raises MalformedReply",
}

Outcome = Literal["passed", "failed", "skipped"]
# The client the adapter gets waits far longer than the operation time-out: only the adapter's own time-out can end
# a hanging call in time, which is what the time-out check proves.
_CLIENT_TIMEOUT_S = 60.0
_SETTINGS_TIMEOUT_S = 5.0


@dataclass
class ConformanceTarget:
    adapter_cls: type[DepartmentAdapter]
    mock_url: str  # a running mock of the department, fresh for this run
    # One per operation, each expected to reach a business answer (progress or rejection), never a technical one.
    sample_requests: list[DepartmentRequest]
    # (secret) -> (headers, body) of a callback genuinely signed with that secret; None if the department never calls.
    callback_sample: CallbackSigner | None = None
    # Operations the core calls directly rather than through submit (e-license retrieval, say): name -> the call.
    direct_operations: Mapping[str, DirectOperation] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # AdapterSettings.options for the adapter under test
    timeout_s: float = 0.5  # the operation time-out set for the time-out check
    timeout_limit_s: float = 2.0  # how soon DepartmentTimeout must arrive in that check


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str


@dataclass
class ConformanceReport:
    adapter: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.outcome != "failed" for result in self.results)

    @property
    def passed(self) -> list[str]:
        return [result.name for result in self.results if result.outcome == "passed"]

    @property
    def failures(self) -> list[str]:
        return [f"{result.name}: {result.detail}" for result in self.results if result.outcome == "failed"]

    @property
    def failed_checks(self) -> set[str]:
        return {result.name for result in self.results if result.outcome == "failed"}

    def summary(self) -> str:
        counts = {kind: sum(r.outcome == kind for r in self.results) for kind in ("passed", "failed", "skipped")}
        lines = [f"conformance of adapter {self.adapter!r}: {counts['passed']} passed, {counts['failed']} failed, "
                 f"{counts['skipped']} skipped"]
        lines += [f"  {r.outcome.upper():7} {r.name}: {r.detail}" for r in self.results if r.outcome != "passed"]
        return "\n".join(lines)


class _Failed(Exception):
    """A check's verdict, raised from deep inside it."""


class _Skipped(Exception):
    pass


async def run_conformance(target: ConformanceTarget) -> ConformanceReport:
    """Run every check in `CHECKS` order; one failing check never stops the others."""
    report = ConformanceReport(adapter=getattr(target.adapter_cls, "name", target.adapter_cls.__name__))
    async with httpx.AsyncClient(base_url=target.mock_url.rstrip("/"), timeout=10.0) as control:
        kit = _Kit(target, report, control)
        await kit.set_faults()
        try:
            await kit.run()
        finally:
            await kit.set_faults()
    return report


class _Kit:
    def __init__(self, target: ConformanceTarget, report: ConformanceReport, control: httpx.AsyncClient) -> None:
        self.target = target
        self.report = report
        self.control = control  # the mock's control plane: /_mock/faults and /_mock/stats
        self.cls = target.adapter_cls
        # A fresh key per run: an adapter that verifies with anything but its settings' secret fails.
        self.secret = secrets.token_hex(16)
        self.outcomes: list[tuple[DepartmentRequest, NativeOutcome]] = []

    async def check(self, name: str, body: Callable[[], Awaitable[str]]) -> None:
        try:
            detail = await body()
        except _Failed as exc:
            self.report.results.append(CheckResult(name, "failed", str(exc)))
        except _Skipped as exc:
            self.report.results.append(CheckResult(name, "skipped", str(exc)))
        except Exception as exc:  # an adapter bug must be reported as this check failing, not end the run
            self.report.results.append(CheckResult(name, "failed", f"raised {_describe(exc)}"))
        else:
            self.report.results.append(CheckResult(name, "passed", detail))

    async def run(self) -> None:
        await self.check("declaration", self.declaration)
        await self.check("status_table", self.status_table)
        await self.check("operations_covered", self.operations_covered)
        async with self.adapter(base_url=self.target.mock_url, timeout_s=_SETTINGS_TIMEOUT_S) as adapter:
            await self.check("start", lambda: self.start(adapter))
            if self.report.results[-1].outcome == "failed":
                for name in ("health", "submit_known_code", "idempotent_submit", "query_status", "direct_operations"):
                    self.report.results.append(CheckResult(name, "skipped", "the adapter did not start"))
            else:
                await self.check("health", lambda: self.health(adapter))
                await self.check("submit_known_code", lambda: self.submit_known_code(adapter))
                await self.check("idempotent_submit", lambda: self.idempotent_submit(adapter))
                await self.check("query_status", lambda: self.query_status(adapter))
                await self.check("direct_operations", lambda: self.direct_operations(adapter))
            await self.check("callback_genuine", lambda: self.callback_genuine(adapter))
            await self.check("callback_forged", lambda: self.callback_forged(adapter))
            await self.check("callback_unsigned", lambda: self.callback_unsigned(adapter))
            await self.check("timeout_honoured", self.timeout_honoured)
            await self.check("server_error", lambda: self.fault(adapter, {"error_rate": 1.0}, DepartmentUnavailable))
            await self.check("outage", lambda: self.fault(adapter, {"outage": True}, DepartmentUnavailable))
            await self.check("connection_refused", self.connection_refused)
            await self.check("malformed_reply", lambda: self.fault(adapter, {"malformed_rate": 1.0}, MalformedReply))

    @contextlib.asynccontextmanager
    async def adapter(self, *, base_url: str, timeout_s: float) -> AsyncIterator[DepartmentAdapter]:
        settings = AdapterSettings(base_url=base_url, timeout_s=timeout_s, callback_secret=self.secret,
                                   options=dict(self.target.options))
        async with httpx.AsyncClient(timeout=_CLIENT_TIMEOUT_S) as http:
            adapter = self.cls(AdapterContext(name=self.report.adapter, settings=settings, http=http,
                                              logger=structlog.get_logger(f"conformance.{self.report.adapter}")))
            try:
                yield adapter
            finally:
                await adapter.close()

    async def start(self, adapter: DepartmentAdapter) -> str:
        await adapter.start()
        return "started"

    # ---- static checks

    async def declaration(self) -> str:
        problems = []
        name = getattr(self.cls, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            problems.append(f"name {name!r} is not an identifier (it is the entry-point name)")
        for attribute in ("department", "version", "protocol"):
            value = getattr(self.cls, attribute, None)
            if not isinstance(value, str) or not value:
                problems.append(f"{attribute} is {value!r}, expected a non-empty string")
        operations = getattr(self.cls, "operations", None)
        if not isinstance(operations, Mapping) or not operations:
            problems.append(f"operations is {operations!r}, expected a non-empty mapping operation -> description")
        if problems:
            raise _Failed("; ".join(problems))
        return f"{name} {self.cls.version} ({self.cls.protocol}), {len(self.cls.operations)} operation(s)"

    async def status_table(self) -> str:
        table = getattr(self.cls, "status_table", None)
        if not isinstance(table, StatusTable):
            raise _Failed(f"status_table is {type(table).__name__}, expected a StatusTable (StatusTable.load(path))")
        if not table.entries:
            raise _Failed("the status table has no codes")
        if table.department != self.cls.department:
            raise _Failed(f"the status table is of department {table.department!r}, the adapter of "
                          f"{self.cls.department!r}")
        unexplained = sorted(code for code, entry in table.entries.items()
                             if entry.kind == "rejection" and not (entry.reason_zh.strip() and entry.reason_en.strip()))
        if unexplained:
            raise _Failed(f"rejection code(s) {unexplained} lack a zh or en reason shown to the applicant")
        return f"{len(table.entries)} codes"

    async def operations_covered(self) -> str:
        declared = set(self.cls.operations)
        sampled = [request.operation for request in self.target.sample_requests]
        direct = set(self.target.direct_operations)
        problems = []
        missing = sorted(declared - set(sampled) - direct)
        if missing:
            problems.append(f"operation(s) {missing} have no sample request")
        extra = sorted((set(sampled) | direct) - declared)
        if extra:
            problems.append(f"sample(s) for undeclared operation(s) {extra}")
        both = sorted(set(sampled) & direct)
        if both:
            problems.append(f"operation(s) {both} are both sampled and called directly")
        if problems:
            raise _Failed("; ".join(problems))
        return f"{len(sampled)} sample(s), {len(direct)} direct"

    # ---- against the mock

    async def health(self, adapter: DepartmentAdapter) -> str:
        if await adapter.health() is not True:
            raise _Failed("health() did not answer True while the mock is up")
        return "up"

    def _known(self, outcome: object, what: str, *, technical_ok: bool) -> NativeOutcome:
        if not isinstance(outcome, NativeOutcome):
            raise _Failed(f"{what} returned {type(outcome).__name__}, expected a NativeOutcome")
        entry = self.cls.status_table.lookup(outcome.native_status)
        if entry is None:
            raise _Failed(f"{what} answered native code {outcome.native_status!r}, which is not in the status table "
                          "(it would become unknown_native_status)")
        if entry.kind == "technical" and not technical_ok:
            raise _Failed(f"{what} answered technical code {outcome.native_status!r} ({entry.reason_en}): a sample "
                          "must reach a business answer")
        return outcome

    async def submit_known_code(self, adapter: DepartmentAdapter) -> str:
        answered = []
        for request in self.target.sample_requests:
            outcome = self._known(await adapter.submit(request), f"submit {request.operation}", technical_ok=False)
            self.outcomes.append((request, outcome))
            answered.append(f"{request.operation}={outcome.native_status}")
        return ", ".join(answered)

    async def stats(self) -> dict[str, int]:
        response = await self.control.get("/_mock/stats")
        try:
            raw = response.json()
            return {key: int(raw[key]) for key in ("received", "duplicates", "registrations")}
        except (ValueError, KeyError, TypeError) as exc:
            raise _Failed(f"the mock's GET /_mock/stats does not report received, duplicates and registrations "
                          f"(HTTP {response.status_code})") from exc

    async def idempotent_submit(self, adapter: DepartmentAdapter) -> str:
        if not self.outcomes:
            raise _Skipped("no sample was answered")
        for request, first in self.outcomes:
            before = await self.stats()
            again = await adapter.submit(request)
            after = await self.stats()
            what = f"submit {request.operation} again (request id {request.request_id})"
            if not isinstance(again, NativeOutcome):
                raise _Failed(f"{what} returned {type(again).__name__}")
            registered = after["registrations"] - before["registrations"]
            if registered > 0:
                raise _Failed(f"{what}: the mock registered {registered} more time(s); the adapter must send the "
                              "request id so the department de-duplicates")
            if after["duplicates"] <= before["duplicates"]:
                raise _Failed(f"{what}: the mock counted no duplicate, so it did not see the same request id")
            if (again.native_status, again.reference) != (first.native_status, first.reference):
                raise _Failed(f"{what} answered {again.native_status!r}/{again.reference!r}, the first time "
                              f"{first.native_status!r}/{first.reference!r}")
        return f"{len(self.outcomes)} repeat(s) registered nothing"

    async def query_status(self, adapter: DepartmentAdapter) -> str:
        if not self.outcomes:
            raise _Skipped("no sample was answered")
        answered = []
        for request, outcome in self.outcomes:
            queried = await adapter.query_status(request, outcome.reference)
            self._known(queried, f"query_status {request.operation}", technical_ok=True)
            answered.append(f"{request.operation}={queried.native_status}")
        return ", ".join(answered)

    async def direct_operations(self, adapter: DepartmentAdapter) -> str:
        if not self.target.direct_operations:
            raise _Skipped("the adapter has no direct operations")
        for operation, call in self.target.direct_operations.items():
            try:
                await call(adapter)
            except Exception as exc:
                raise _Failed(f"{operation} raised {_describe(exc)}") from exc
        return ", ".join(self.target.direct_operations)

    # ---- callbacks (no mock needed: the sample is signed here)

    def _refused(self, adapter: DepartmentAdapter, headers: Mapping[str, str], body: bytes, what: str) -> None:
        try:
            event = adapter.parse_callback(headers, body)
        except InvalidCallback:
            return
        except Exception as exc:
            raise _Failed(f"{what} raised {_describe(exc)}, expected InvalidCallback") from exc
        raise _Failed(f"{what} was accepted (request id {getattr(event, 'request_id', event)!r}), "
                      "expected InvalidCallback")

    async def callback_genuine(self, adapter: DepartmentAdapter) -> str:
        signer = self.target.callback_sample
        if signer is None:
            raise _Skipped("no callback_sample given")
        try:
            event = adapter.parse_callback(*signer(self.secret))
        except InvalidCallback as exc:
            raise _Failed(f"a callback signed with settings.callback_secret was refused: {exc}") from exc
        if not isinstance(event, CallbackEvent) or not isinstance(event.request_id, str) or not event.request_id:
            raise _Failed(f"parse_callback returned {event!r}, expected a CallbackEvent with a request id")
        self._known(event.outcome, "the genuine callback", technical_ok=True)
        return f"request id {event.request_id}, native code {event.outcome.native_status!r}"

    async def callback_forged(self, adapter: DepartmentAdapter) -> str:
        signer = self.target.callback_sample
        if signer is None:
            headers = {"X-Timestamp": str(int(time.time())), "X-Signature": "0" * 64}
            self._refused(adapter, headers, _ANY_BODY, "a callback with a made-up signature")
            return "a made-up signature is refused"
        self._refused(adapter, *signer(secrets.token_hex(16)), "a callback signed with another key")
        headers, body = signer(self.secret)
        self._refused(adapter, headers, body + b" ", "a genuinely signed callback whose body changed after signing")
        other_request = {key: new_request_id() if key.lower() == REQUEST_ID_HEADER.lower() else value
                         for key, value in headers.items()}
        self._refused(adapter, other_request, body, f"a genuinely signed callback whose {REQUEST_ID_HEADER} names "
                      "another request")
        return "another key, an altered body and another request id are refused"

    async def callback_unsigned(self, adapter: DepartmentAdapter) -> str:
        signer = self.target.callback_sample
        headers, body = signer(self.secret) if signer is not None else ({}, _ANY_BODY)
        self._refused(adapter, {}, body, "a callback without any headers")
        stripped = {key: value for key, value in headers.items() if "sign" not in key.lower()}
        if stripped != headers:
            self._refused(adapter, stripped, body, "a callback without its signature header")
        return "refused"

    # ---- faults

    async def set_faults(self, **faults: object) -> None:
        response = await self.control.post("/_mock/faults", json=faults)
        if response.status_code >= 400:
            raise _Failed(f"the mock refused POST /_mock/faults {faults}: HTTP {response.status_code}")

    def _sample(self) -> DepartmentRequest:
        if not self.target.sample_requests:
            raise _Skipped("no sample request")
        return self.target.sample_requests[0]

    async def fault(self, adapter: DepartmentAdapter, faults: dict[str, object],
                    expected: type[TechnicalFault]) -> str:
        request = self._sample()
        await self.set_faults(**faults)
        try:
            outcome = await adapter.submit(request)
        except expected as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            raise _Failed(f"with faults {faults} submit raised {_describe(exc)}, expected {expected.__name__}") from exc
        finally:
            await self.set_faults()
        raise _Failed(f"with faults {faults} submit answered {outcome!r}, expected {expected.__name__}")

    async def timeout_honoured(self) -> str:
        request = self._sample()
        limit = self.target.timeout_limit_s
        async with self.adapter(base_url=self.target.mock_url, timeout_s=self.target.timeout_s) as adapter:
            await adapter.start()  # before the fault: loading a WSDL, say, is not what is measured
            await self.set_faults(timeout_rate=1.0)
            began = time.monotonic()
            call = asyncio.ensure_future(adapter.submit(request))
            try:
                done, _ = await asyncio.wait({call}, timeout=limit)
                if not done:
                    call.cancel()
                    with contextlib.suppress(BaseException):
                        await call
                    raise _Failed(f"submit still waiting after {limit} s with settings.timeout_s="
                                  f"{self.target.timeout_s}: the adapter does not apply its operation time-out")
            finally:
                await self.set_faults()
        elapsed = time.monotonic() - began
        error = call.exception()
        if not isinstance(error, DepartmentTimeout):
            got = "an answer" if error is None else _describe(error)
            raise _Failed(f"a hanging department gave {got}, expected DepartmentTimeout")
        return f"DepartmentTimeout after {elapsed:.2f} s"

    async def connection_refused(self) -> str:
        request = self._sample()
        url = f"http://127.0.0.1:{_free_port()}"
        async with self.adapter(base_url=url, timeout_s=_SETTINGS_TIMEOUT_S) as adapter:
            try:
                await adapter.start()
                outcome = await adapter.submit(request)
            except DepartmentUnavailable as exc:
                return f"DepartmentUnavailable: {exc}"
            except Exception as exc:
                raise _Failed(f"nothing listening: raised {_describe(exc)}, expected DepartmentUnavailable") from exc
        raise _Failed(f"nothing listening: submit answered {outcome!r}, expected DepartmentUnavailable")


_ANY_BODY = b'{"requestId": "GW0000000000000000000000000000000"}'


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_mock(app: Any, *, start_timeout_s: float = 15.0) -> Iterator[str]:
    """Serve an ASGI app (a department mock) on a loopback port in a background thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name=f"mock-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the mock did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
