"""The unified API (a contract with the platform): cases, profiles, department callbacks, H5 links, health."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.api.errors import ApiError, ErrorItem, not_found, unauthorized
from gateway.api.limits import BodyLimit, check_json_shape, parse_json
from gateway.api.openapi import contract
from gateway.api.schemas import (
    CallbackResult,
    CaseView,
    Health,
    OverdueCases,
    ProfileCatalogue,
    ProfileIndex,
)
from gateway.bootstrap import Services, build_services
from gateway.console.views import mount_console
from gateway.domain.status import TERMINAL
from gateway.observability.http import metrics_response, observe_request
from gateway.observability.metrics import CALLBACKS, LINKS_REFUSED
from gateway.observability.tracing import span
from gateway.orchestration.intake import overdue_cases, read_case, submit_case
from gateway.profiles.catalogue import catalogue, catalogue_index
from gateway.sdk import CALLBACK_MAX_AGE_S, DepartmentAdapter, InvalidCallback
from gateway.security.applicant_identity import ApplicantAssertion
from gateway.security.callers import Caller
from gateway.security.links import InvalidLink, redirect_allowed, redirect_hosts
from gateway.settings import Settings
from gateway.store import keys

log = structlog.get_logger("gateway.api")


def create_app(settings: Settings, redis_url: str,
               adapter_classes: dict[str, type[DepartmentAdapter]] | None = None,
               services: Services | None = None) -> FastAPI:
    """The API; it builds its services in its own event loop unless given (when it shares a process's loop)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        app.state.services = services or await build_services(settings, redis_url, consumer="api", api=True,
                                                              adapter_classes=adapter_classes)
        yield
        if own:
            await app.state.services.close()

    # Off in production unless asked for: the contract is published, not browsed on the live API.
    docs = settings.api_docs if settings.api_docs is not None else settings.env != "production"
    app = FastAPI(title="灵活就业参保一件事 gateway", version="0.1.0", lifespan=lifespan,
                  openapi_url="/openapi.json" if docs else None, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None,
                  # FastAPI's own telemetry (0.13x+) is off: ours (gateway/observability) names no URL path, and
                  # /h5/{token} carries a link token.
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(_: Request, exc: RequestValidationError) -> JSONResponse:
        """A path or query parameter of the wrong type: the API's one error shape, not FastAPI's."""
        items = [ErrorItem("query.invalid", ".".join(str(p) for p in e.get("loc", ())[1:]), "查询参数格式错误",
                           "a query parameter is malformed") for e in exc.errors()]
        return JSONResponse(ApiError(422, *items).body(), status_code=422)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(app, app.state.services.profiles)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(BodyLimit, case_bytes=settings.max_case_body_bytes,
                       other_bytes=settings.max_callback_body_bytes)

    async def store_busy(request: Request, exc: Exception) -> JSONResponse:
        """No free Redis connection within GATEWAY_REDIS_POOL_TIMEOUT_S (or Redis unreachable): shed the request
        with a 503 the caller can retry, instead of a 500."""
        log.warning("request shed: Redis busy or unreachable", error=type(exc).__name__, path=request.url.path)
        return await api_error(request, ApiError(
            503, ErrorItem("service.busy", "", "服务繁忙，请稍后重试", "the service is busy, retry later"),
            headers={"Retry-After": "1"}))

    for redis_unavailable in (RedisConnectionError, RedisTimeoutError):  # MaxConnectionsError is a ConnectionError
        app.add_exception_handler(redis_unavailable, store_busy)

    app.middleware("http")(observe_request)

    def svc(request: Request) -> Services:
        services: Services = request.app.state.services
        return services

    async def caller_of(request: Request) -> Caller:
        """Headers first, then the (bounded) body, then the HMAC, the nonce and the caller's rate."""
        services = svc(request)
        assert services.authenticator is not None
        signed = services.authenticator.check_headers({k.lower(): v for k, v in request.headers.items()})
        path = request.scope.get("raw_path", request.url.path.encode()).decode("utf-8", "replace")
        if request.url.query:
            path += "?" + request.url.query
        services.authenticator.verify(signed, request.method, path, await request.body())
        # After the signature, so nobody can burn another caller's nonces; with its rate token, in one round trip.
        await services.quotas.admit(signed.caller, services.authenticator.spend_nonce(signed))
        request.state.operator = signed.operator
        return signed.caller

    def assertion_of(request: Request) -> ApplicantAssertion | None:
        token = request.headers.get("x-applicant-assertion", "").strip()
        if not token:
            return None
        if not token.isascii() or len(token) > 8192:  # a JWT is ASCII and far shorter
            raise unauthorized("applicant.assertion.malformed", "申请人身份凭证格式错误",
                               "applicant assertion is not a JWT", "X-Applicant-Assertion")
        identity = svc(request).identity
        assert identity is not None
        return identity.verify(token)

    @app.post("/v1/cases", status_code=202)
    async def create_case(request: Request) -> Response:
        caller = await caller_of(request)
        assertion = assertion_of(request)
        body = parse_json(await request.body())
        check_json_shape(body, settings.max_json_depth, settings.max_json_list_items)
        accepted = await submit_case(svc(request), caller, request.headers.get("idempotency-key", "").strip(), body,
                                     assertion, operator=request.state.operator,
                                     nonce=request.headers.get("x-nonce", ""))
        case_id = accepted.view["id"]
        return Response(orjson.dumps(accepted.view), status_code=202 if accepted.created else 200,
                        media_type="application/json", headers={"Location": f"/v1/cases/{case_id}"})

    @app.get("/v1/cases", response_model=OverdueCases)
    async def list_cases(request: Request, overdue: bool = False) -> dict[str, Any]:
        caller = await caller_of(request)
        if not overdue:
            raise ApiError(422, ErrorItem("query.overdue.required", "overdue", "目前仅支持 overdue=true 查询",
                                          "only overdue=true listing is offered"))
        cases = await overdue_cases(svc(request), caller)
        return {"cases": cases, "count": len(cases)}

    @app.get("/v1/cases/{case_id}", response_model=CaseView)
    async def get_case(case_id: str, request: Request) -> dict[str, Any]:
        caller = await caller_of(request)
        view = await read_case(svc(request), case_id, caller)
        if view is None:
            raise not_found("case")
        return view

    @app.get("/v1/profiles", response_model=ProfileIndex)
    async def list_profiles(request: Request) -> dict[str, Any]:
        await caller_of(request)
        return catalogue_index(svc(request).profiles)

    @app.get("/v1/profiles/{profile}", response_model=ProfileCatalogue)
    async def get_profile(profile: str, request: Request) -> dict[str, Any]:
        await caller_of(request)
        try:
            return catalogue(svc(request).profiles.get(profile))
        except KeyError:
            raise not_found("profile") from None

    @app.post("/v1/callbacks/{adapter_name}", response_model=CallbackResult)
    async def department_callback(adapter_name: str, request: Request) -> dict[str, Any]:
        """Signed by the department's key (not a platform caller): verified by its adapter."""
        services = svc(request)
        adapter = services.adapters.adapters.get(adapter_name)
        if adapter is None:
            raise not_found("adapter")
        body = await request.body()
        try:
            event = adapter.parse_callback(dict(request.headers), body)
        except InvalidCallback as exc:
            CALLBACKS.labels(adapter_name, "refused").inc()
            log.warning("callback refused", adapter=adapter_name, reason=str(exc))
            raise unauthorized("callback.signature_invalid", "回调签名校验失败", str(exc)) from exc
        located = await services.store.locate_request(event.request_id)
        if located is None:
            CALLBACKS.labels(adapter_name, "unknown_request").inc()
            raise not_found("request")
        case_id, matter = located
        case, task = await services.store.get_case(case_id), await services.store.get_task(case_id, matter)
        if case is None or task is None or task.adapter != adapter_name:
            CALLBACKS.labels(adapter_name, "unknown_request").inc()
            raise not_found("request")
        # A replay inside the signature window, or an answer already applied, is acknowledged and changes nothing.
        seen = keys.callback_seen(adapter_name, hashlib.sha256(body).hexdigest())
        if (task.native_status == event.outcome.native_status
                or not await services.redis.set(seen, "1", nx=True, ex=2 * int(CALLBACK_MAX_AGE_S))):
            CALLBACKS.labels(adapter_name, "duplicate").inc()
            return {"result": "duplicate"}
        # Applied in the case's own trace, linked to this request's span (the department began a trace of its own).
        with (structlog.contextvars.bound_contextvars(case_id=case_id, matter=matter),
              span(f"callback {adapter_name}", parent=await services.store.traceparent(case_id), link_current=True,
                   attributes={"gateway.case_id": case_id, "gateway.matter": matter, "gateway.adapter": adapter_name})):
            try:
                # On the audit chain: departments send no id of their own, so the digest of what they sent.
                result = await services.engine.apply_outcome(case, task, adapter, event.outcome,
                                                             callback_id="sha256:" + hashlib.sha256(body).hexdigest())
            except BaseException:
                await services.redis.delete(seen)  # not applied: the department's retry must get through
                raise
            # "stale": the state machine refused to move the task backwards (counted as an illegal transition).
            outcome = ("ignored" if result is None else "applied" if result.moved else
                       "duplicate" if result.repeated else "stale")
            CALLBACKS.labels(adapter_name, outcome).inc()
            log.info("callback", adapter=adapter_name, result=outcome)  # with case_id, matter, request_id, trace_id
        return {"result": outcome}

    @app.get("/h5/{token}")
    async def h5_link(token: str, request: Request) -> Response:
        """The applicant's browser comes back with an SMS link: look it up, spend it, hand over to the department."""
        services = svc(request)
        try:
            if not token.isascii() or len(token) > 2048:  # never handed to a parser or Redis as it came
                raise InvalidLink("link.malformed", "link token is not a link token")
            target = await services.links.look_up(token)
            task = await services.store.get_task(target.case_id, target.matter)
            if task is not None and task.status in TERMINAL:  # paid, refused or expired: the step is over
                raise ApiError(410, ErrorItem("link.step_closed", "token", "该办理步骤已结束", "the step is over"))
            url = (task.data.get("department_links") or {}).get(target.step) if task else None
            if task is None or not url:
                raise ApiError(404, ErrorItem("link.unknown_step", "token", "链接对应的办理步骤不存在", "no such step"))
            # Checked again at redirect time: the allow-list may have shrunk since the answer was stored.
            if not redirect_allowed(url, redirect_hosts(services.settings.adapter(task.adapter)),
                                    development=services.settings.env == "development"):
                LINKS_REFUSED.labels(task.adapter).inc()
                raise ApiError(403, ErrorItem("link.redirect_refused", "token", "该办理页面不在部门允许的地址内",
                                              "the department page is not on the adapter's redirect allow-list"))
            await services.links.consume(token, target)
        except InvalidLink as exc:
            raise ApiError(403, ErrorItem(exc.code, "token", "链接无效、已使用或已过期", str(exc))) from exc
        return RedirectResponse(url, status_code=302)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Which dependency is down, never its error text (which may name hosts and credentials)."""
        try:
            await svc(request).redis.ping()
        except (RedisError, OSError) as exc:
            log.warning("not ready: redis unreachable", error=type(exc).__name__)
            return JSONResponse({"status": "not ready", "down": ["redis"]}, status_code=503)
        return JSONResponse({"status": "ready", "down": []})

    if not settings.metrics_port:  # with a metrics port, /metrics is served there only, off the public port
        @app.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            return metrics_response(request.headers.get("accept"))

    mount_console(app, settings)  # /console/ (GATEWAY_CONSOLE): gateway/console/
    return app
