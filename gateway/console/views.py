"""The web console at /console/: server-rendered pages over the gateway's own services (no API of its own).

Reading works without JavaScript; every POST carries the session's CSRF token; acting (replay, cancel, unmask) is
for the `operator` role and lands on the case's audit chain with the operator's id.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import jinja2
import structlog
import yaml
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.bootstrap import ConfigurationError, Services
from gateway.console.demo import demo_caller, submit_one_form
from gateway.console.form import APPLICANT_FIELDS, form_context
from gateway.console.lookup import cases_of_id_number
from gateway.console.masking import mask_field, scrub_text
from gateway.console.oidc import FLOW_COOKIE, FLOW_TTL_S, Flow, OidcClient, SignInRefused, operator_of
from gateway.console.operators import ROLES, Operator, authenticate, load_operators
from gateway.console.sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, SessionSigner, same_token
from gateway.departments.registry import discover
from gateway.domain.identity_numbers import IdNumberError
from gateway.domain.status import TERMINAL, TaskStatus, derive_case_status
from gateway.orchestration.intake import china_today
from gateway.orchestration.interventions import cancel_case, replay_dead_letters, resend_link
from gateway.profiles.catalogue import catalogue
from gateway.security.applicant_index import normalised_id_number
from gateway.security.audit import AuditChain
from gateway.security.secrets import configured_key
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.cases import CaseRecord, TaskRecord
from gateway.store.queue import depths as queue_depths
from gateway.store.queue import overdue_case_ids, stream_consumers

log = structlog.get_logger("gateway.console")
HERE = Path(__file__).parent
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
# Pages only from this origin, scripts only from the console's own file, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATUS_ZH = {
    "pending": "等待前置事项", "queued": "排队中", "submitted": "已提交", "accepted": "已受理", "in_review": "审核中",
    "awaiting_payment": "待申请人办理", "completed": "已办结", "rejected": "不予受理", "skipped": "已跳过",
    "failed": "技术失败", "cancelled": "已撤销", "unknown_native_status": "未知部门状态",
    "in_progress": "办理中", "partially_completed": "部分办结", "attention_needed": "需人工处理",
}
EVENT_ZH = {"case.accepted": "案件受理", "task.status_changed": "状态变更", "case.certificate_issued": "证照签发",
            "case.documents": "证照材料", "console.pii_revealed": "查看明文", "task.step_reminder": "办理提醒",
            "console.id_lookup": "按证件号码查找"}
FIELD_ZH = {"name": "姓名", "id_type": "证件类型", "id_number": "证件号码", "phone": "手机号码", "sex": "性别",
            "birth_date": "出生日期", "household_division_code": "户籍地区划", "division_code": "区划代码",
            "address": "地址", "relation": "关系", "insured_place": "参保地", "insurance_types": "险种",
            "scheme": "缴费方式", "contribution_tier": "缴费档次", "insured_elsewhere": "异地参保",
            "type": "类型", "identifier": "证照标识", "issued_at": "签发时间", "status": "状态"}
MAX_REASON = 500
# Failed sign-ins of one operator id before it is refused until a window passes without failures (password guessing).
SIGN_IN_FAILURES, SIGN_IN_WINDOW_S = 10, 900


class Forbidden(Exception):
    def __init__(self, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_zh, self.message_en = message_zh, message_en


def mount_console(app: FastAPI, settings: Settings) -> None:
    """/console/ on the API when the settings turn it on (GATEWAY_CONSOLE, GATEWAY_OPERATORS_FILE)."""
    if settings.console_enabled:
        app.include_router(console_router(settings))


def _operators(settings: Settings) -> dict[str, Operator]:
    if settings.operators_file is None:
        return {}
    try:
        return load_operators(settings.operators_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"GATEWAY_OPERATORS_FILE {settings.operators_file}: {exc}") from exc


def _session_signer(settings: Settings) -> SessionSigner:
    key = configured_key(settings.console_session_key, settings.var_dir, "console-session.key")
    try:
        return SessionSigner(key, settings.console_session_ttl_s)
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_CONSOLE_SESSION_KEY: {exc}") from exc


def _trace_url(settings: Settings) -> str | None:
    template = settings.console_trace_url
    if template and ("{trace_id}" not in template or not template.startswith(("http://", "https://"))):
        raise ConfigurationError("GATEWAY_CONSOLE_TRACE_URL must be an http(s) URL with {trace_id} in it")
    return template


def _oidc_client(settings: Settings) -> OidcClient | None:
    if not (settings.console_oidc_issuer and settings.console_oidc_client_id):
        return None
    try:
        return OidcClient(settings.console_oidc_issuer, settings.console_oidc_client_id,
                          settings.console_oidc_client_secret, f"{settings.base_url.rstrip('/')}/console/oidc/callback",
                          settings.console_oidc_algorithms)
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_CONSOLE_OIDC_*: {exc}") from exc


def console_router(settings: Settings) -> APIRouter:
    operators = _operators(settings)
    signer = _session_signer(settings)
    trace_url = _trace_url(settings)
    oidc = _oidc_client(settings)
    secure_cookie = settings.base_url.startswith("https://")
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                   autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    templates.globals.update(status_zh=STATUS_ZH, event_zh=EVENT_ZH, field_zh=FIELD_ZH)
    adapter_versions = {name: found.version for name, found in discover().items()}
    router = APIRouter(prefix="/console", include_in_schema=False)

    def services_of(request: Request) -> Services:
        services: Services = request.app.state.services
        return services

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status,
                            headers=SECURITY_HEADERS)

    def signed_in(request: Request) -> tuple[Operator, Session] | None:
        session = signer.open(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        if session.role is not None:  # signed in with the identity service, the role from a token claim
            role = next((r for r in ROLES if r == session.role), None)
            return (Operator(session.operator_id, session.name, "", role), session) if role and oidc else None
        operator = operators.get(session.operator_id)
        return (operator, session) if operator else None  # removed from the file: signed out

    def to_sign_in(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)

    async def fields_of(request: Request) -> dict[str, list[str]]:
        """An urlencoded form (the only kind the console sends), every value of each field."""
        return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)

    async def form_of(request: Request) -> dict[str, str]:
        """The form's first value of each field."""
        return {k: v[0] for k, v in (await fields_of(request)).items()}

    async def acting(request: Request) -> tuple[Operator, dict[str, str]]:
        """The signed-in operator allowed to act, with the form; Forbidden for anything less."""
        who = signed_in(request)
        form = await form_of(request)
        if who is None:
            raise Forbidden("未登录或会话已过期", "not signed in, or the session expired")
        operator, session = who
        if not same_token(form.get("csrf"), session.csrf):
            raise Forbidden("表单令牌无效，请刷新页面后重试", "the form's CSRF token is missing or wrong")
        if not operator.may_act:
            raise Forbidden("查看员无权执行此操作", "the viewer role cannot act")
        return operator, form

    def refused(exc: Forbidden, who: tuple[Operator, Session] | None) -> HTMLResponse:
        return page("error.html", 403, who=who, title="禁止 Forbidden", message_zh=exc.message_zh,
                    message_en=exc.message_en)

    def reason_of(form: dict[str, str]) -> str:
        """An action's reason as kept on the audit chain: trimmed, bounded; fewer than 2 characters is none."""
        reason = form.get("reason", "").strip()[:MAX_REASON]
        return reason if len(reason) >= 2 else ""

    async def reason_missing(request: Request, case_id: str, what_zh: str) -> HTMLResponse:
        who = signed_in(request)
        assert who is not None  # acting() let the request through
        return await case_page(request, who, case_id, notice=f"请填写{what_zh}原因 Give a reason", status=422)

    def back_to_case(case_id: str, done: str) -> RedirectResponse:
        """After an action, the case page with what was done ("nothing" when there was nothing to do)."""
        return RedirectResponse(f"/console/cases/{quote(case_id, safe='')}?done={done}", status_code=303)

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"})

    @router.get("/login")
    async def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
        token = secrets.token_urlsafe(18)
        response = page("login.html", who=None, next=_safe_next(next), login_token=token, failed=False,
                        oidc=oidc is not None)
        response.set_cookie(LOGIN_COOKIE, token, max_age=600, path="/console/", httponly=True, samesite="strict",
                            secure=secure_cookie)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await form_of(request)
        if not same_token(form.get("login_token"), request.cookies.get(LOGIN_COOKIE, "")):
            return refused(Forbidden("登录表单已失效，请刷新后重试", "the sign-in form expired: reload it"), None)
        operator_id = form.get("id", "").strip()[:64]
        failures_key = keys.console_sign_in_failures(operator_id)
        redis = services_of(request).redis
        if int(await redis.get(failures_key) or 0) >= SIGN_IN_FAILURES:
            log.warning("console sign-in locked", operator=operator_id)
            return page("error.html", 429, who=None, title="请稍后再试 Too many attempts",
                        message_zh="登录失败次数过多，请 15 分钟后再试",
                        message_en="too many failed sign-ins: try again in 15 minutes")
        operator = await asyncio.to_thread(authenticate, operators, operator_id, form.get("password", ""))
        if operator is None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, SIGN_IN_WINDOW_S)  # each failure extends the window (Redis 6.2: no NX)
                await pipe.execute()
            log.info("console sign-in refused")
            return page("login.html", 401, who=None, next=_safe_next(form.get("next", "")),
                        login_token=form.get("login_token", ""), failed=True, oidc=oidc is not None)
        await redis.delete(failures_key)
        log.info("console sign-in", operator=operator.id, role=operator.role)
        return with_session(RedirectResponse(_safe_next(form.get("next", "")), status_code=303), operator, False)

    def with_session(response: Response, operator: Operator, role_from_token: bool) -> Response:
        """`response` setting a new session of `operator` (its role signed in the cookie when it came from a token)."""
        cookie, _ = (signer.issue(operator.id, role=operator.role, name=operator.name) if role_from_token
                     else signer.issue(operator.id))
        response.set_cookie(SESSION_COOKIE, cookie, max_age=signer.ttl_s, path="/console/", httponly=True,
                            samesite="strict", secure=secure_cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/console/")
        return response

    @router.get("/oidc/start")
    async def oidc_start(next: str = "/console/") -> Response:
        if oidc is None:
            return Response(status_code=404)
        flow = Flow.start(_safe_next(next))
        try:
            target = await oidc.authorization_url(flow)
        except (httpx.HTTPError, ValueError, KeyError, SignInRefused) as exc:
            log.warning("console OIDC discovery failed", error=str(exc))
            return page("error.html", 502, who=None, title="暂时无法登录 Sign-in unavailable",
                        message_zh="统一身份认证服务暂时不可用，请使用账号密码登录",
                        message_en="the identity service cannot be reached: sign in with a password")
        response = RedirectResponse(target, status_code=303)
        # Lax, not Strict: the provider's redirect back is a cross-site navigation that must carry it.
        response.set_cookie(FLOW_COOKIE, signer.sign(flow.data()), max_age=FLOW_TTL_S, path="/console/oidc/",
                            httponly=True, samesite="lax", secure=secure_cookie)
        return response

    @router.get("/oidc/callback")
    async def oidc_callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
        if oidc is None:
            return Response(status_code=404)
        flow = Flow.of(signer.verified(request.cookies.get(FLOW_COOKIE)))
        try:
            if flow is None:
                raise SignInRefused("登录已超时或不是从本浏览器发起，请重新登录",
                                    "no sign-in was started in this browser, or it expired: start again")
            if not same_token(state, flow.state):
                raise SignInRefused("登录状态不符，请重新登录", "the state does not match this browser's sign-in")
            if error or not code:
                raise SignInRefused("统一身份认证未完成登录",
                                    f"the identity service answered {error[:80] or 'no code'}")
            claims = await oidc.claims(code, flow)
            operator, role_from_token = operator_of(claims, operators, settings.console_oidc_role_claim,
                                                    settings.console_oidc_roles)
        except SignInRefused as exc:
            log.info("console OIDC sign-in refused", reason=exc.message_en)
            response: Response = refused(Forbidden(exc.message_zh, exc.message_en), None)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("console OIDC sign-in failed", error=str(exc))
            response = page("error.html", 502, who=None, title="暂时无法登录 Sign-in unavailable",
                            message_zh="统一身份认证服务暂时不可用",
                            message_en="the identity service cannot be reached")
        else:
            log.info("console sign-in", operator=operator.id, role=operator.role, via="oidc")
            # A page, not a redirect: the Strict session cookie is not sent on a navigation begun at another site.
            response = with_session(page("signed_in.html", who=None, next=flow.next), operator, role_from_token)
        response.delete_cookie(FLOW_COOKIE, path="/console/oidc/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        who = signed_in(request)
        form = await form_of(request)
        if who is None or not same_token(form.get("csrf"), who[1].csrf):
            return refused(Forbidden("表单令牌无效", "the form's CSRF token is missing or wrong"), who)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console/")
        return response

    @router.get("/")
    async def home(request: Request, case_id: str = "", app_id: str = "", key: str = "") -> Response:
        who = signed_in(request)
        if who is None:
            return to_sign_in(request)
        services = services_of(request)
        not_found = False
        if case_id or (app_id and key):
            found = await _find_case(services, case_id.strip(), app_id.strip(), key.strip())
            if found:
                return RedirectResponse(f"/console/cases/{quote(found, safe='')}", status_code=303)
            not_found = True
        dead = []
        for dead_case, matter, failed_at in await services.queue.dead_letters():
            task = await services.store.get_task(dead_case, matter)
            if task is not None:
                dead.append({"case_id": dead_case, "matter": matter, "adapter": task.adapter,
                             "failed_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failed_at))})
        return page("home.html", who=who, not_found=not_found, case_id=case_id, app_id=app_id, key=key,
                    dead=dead, callers=sorted(services.callers))

    @router.post("/lookup")
    async def lookup(request: Request) -> Response:
        """Cases by a person's ID number: a POST, so the number is in no URL, history or access log."""
        who = signed_in(request)
        form = await form_of(request)
        if who is None or not same_token(form.get("csrf"), who[1].csrf):
            return refused(Forbidden("表单令牌无效，请刷新页面后重试", "the form's CSRF token is missing or wrong"),
                           who)
        try:
            id_number = normalised_id_number(form.get("id_number", "")[:64])
        except IdNumberError as exc:
            return page("lookup.html", 422, who=who, problem=exc, listed=[], region_of={})
        listed = await cases_of_id_number(services_of(request), who[0].id, id_number)
        registry = services_of(request).profiles
        region_of = {code: registry.get(code).name_zh for code in registry.codes()}
        return page("lookup.html", who=who, problem=None, listed=listed, region_of=region_of)

    async def case_page(request: Request, who: tuple[Operator, Session], case_id: str, *, revealed: bool = False,
                        notice: str = "", status: int = 200, template: str = "case.html") -> HTMLResponse:
        services = services_of(request)
        case = await services.store.get_case(case_id)
        if case is None:
            return page("error.html", 404, who=who, title="未找到 Not found", message_zh="没有这个案件",
                        message_en="no such case")
        tasks = await services.store.get_tasks(case_id, case.matters)
        chain = AuditChain(services.redis, services.store.audit, services.store.events)
        events = [(entry.event, entry.trace_id) for entry in await chain.read(case_id) if entry.event is not None]
        report = await chain.verify(case_id)
        dead = {m for c, m, _ in await services.queue.dead_letters() if c == case_id}
        return page(template, status, who=who,
                    **_case_context(services, case, tasks, events, dead, revealed, trace_url),
                    chain_intact=report.intact, chain_entries=report.entries, notice=notice)

    @router.get("/cases/{case_id}")
    async def show_case(case_id: str, request: Request, done: str = "") -> Response:
        who = signed_in(request)
        if who is None:
            return to_sign_in(request)
        notice = {"replayed": "已重放，任务重新排队 Replayed: the task is queued again",
                  "cancelled": "已撤销 Cancelled", "resent": "已向申请人重发链接 A fresh link was sent",
                  "nothing": "没有可处理的任务 Nothing to do"}.get(done, "")
        return await case_page(request, who, case_id, notice=notice)

    @router.get("/cases/{case_id}/fragment")
    async def case_fragment(case_id: str, request: Request) -> Response:
        """The case page's changing part (status, tasks, timeline), masked, for the page to refresh in place."""
        who = signed_in(request)
        if who is None:
            return Response(status_code=401, headers=SECURITY_HEADERS)
        return await case_page(request, who, case_id, template="_case.html")

    @router.post("/cases/{case_id}/reveal")
    async def reveal(case_id: str, request: Request) -> Response:
        try:
            operator, form = await acting(request)
        except Forbidden as exc:
            return refused(exc, signed_in(request))
        reason = reason_of(form)
        if not reason:
            return await reason_missing(request, case_id, "查看")
        who = signed_in(request)
        assert who is not None
        if await services_of(request).store.get_case(case_id) is None:
            return await case_page(request, who, case_id)
        await services_of(request).store.append_event(case_id, "console.pii_revealed",
                                                      {"actor": f"console:{operator.id}", "reason": reason})
        log.info("console unmasked personal fields", operator=operator.id, case_id=case_id)
        return await case_page(request, who, case_id, revealed=True,
                               notice="已显示明文，此次查看已记入审计 Shown in clear; this view is audited")

    @router.post("/cases/{case_id}/replay")
    async def replay(case_id: str, request: Request) -> Response:
        try:
            operator, form = await acting(request)
        except Forbidden as exc:
            return refused(exc, signed_in(request))
        matter = form.get("matter", "")
        count = await replay_dead_letters(services_of(request), actor=f"console:{operator.id}",
                                          task=f"{case_id}:{matter}")
        log.info("console replay", operator=operator.id, case_id=case_id, matter=matter, replayed=count)
        return back_to_case(case_id, "replayed" if count else "nothing")

    @router.post("/cases/{case_id}/resend-link")
    async def resend(case_id: str, request: Request) -> Response:
        try:
            operator, form = await acting(request)
        except Forbidden as exc:
            return refused(exc, signed_in(request))
        reason, matter = reason_of(form), form.get("matter", "")
        if not reason:
            return await reason_missing(request, case_id, "重发")
        sent = await resend_link(services_of(request), case_id, matter, actor=f"console:{operator.id}",
                                 reason=reason)
        log.info("console resend link", operator=operator.id, case_id=case_id, matter=matter, sent=sent)
        return back_to_case(case_id, "resent" if sent else "nothing")

    @router.post("/cases/{case_id}/cancel")
    async def cancel(case_id: str, request: Request) -> Response:
        try:
            operator, form = await acting(request)
        except Forbidden as exc:
            return refused(exc, signed_in(request))
        reason = reason_of(form)
        if not reason:
            return await reason_missing(request, case_id, "撤销")
        cancelled = await cancel_case(services_of(request), case_id, actor=f"console:{operator.id}", reason=reason)
        log.info("console cancel", operator=operator.id, case_id=case_id, cancelled=len(cancelled))
        return back_to_case(case_id, "cancelled" if cancelled else "nothing")

    @router.get("/form")
    async def first_form(request: Request) -> Response:
        codes = services_of(request).profiles.codes()
        return RedirectResponse(f"/console/form/{codes[0]}" if codes else "/console/", status_code=303)

    def form_page(request: Request, who: tuple[Operator, Session], profile: str, *, status: int = 200,
                  posted: dict[str, list[str]] | None = None, errors: list[dict[str, Any]] | None = None,
                  idempotency_key: str = "") -> HTMLResponse:
        services = services_of(request)
        try:
            document = catalogue(services.profiles.get(profile))
        except KeyError:
            return page("error.html", 404, who=who, title="未找到 Not found", message_zh="没有这个地区",
                        message_en="no such profile")
        # A fresh key per rendered form: submitting the same form twice (a double click) makes one case.
        return page("form.html", status, who=who, profiles=services.profiles.codes(), **form_context(document),
                    demo=demo_caller(settings, services.callers) is not None, applicant_fields=APPLICANT_FIELDS,
                    posted=posted or {}, errors=errors or [],
                    idempotency_key=idempotency_key or secrets.token_urlsafe(18))

    @router.get("/form/{profile}")
    async def one_form(profile: str, request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return to_sign_in(request)
        return form_page(request, who, profile)

    @router.post("/form/{profile}")
    async def submit_one_form_page(profile: str, request: Request) -> Response:
        """Development only: the form goes to the real API through the demo caller, then to the case's page."""
        who = signed_in(request)
        posted = await fields_of(request)
        if who is None or not same_token((posted.get("csrf") or [""])[0], who[1].csrf):
            return refused(Forbidden("表单令牌无效，请刷新页面后重试", "the form's CSRF token is missing or wrong"),
                           who)
        services = services_of(request)
        caller = demo_caller(settings, services.callers)
        if caller is None:
            return refused(Forbidden("演示提交仅用于开发环境（gateway up）",
                                     "the demo submit is for development only (gateway up)"), who)
        if profile not in services.profiles.codes():
            return form_page(request, who, profile)
        key = (posted.get("idempotency_key") or [""])[0][:64]
        submitted = await submit_one_form(settings, caller, profile, posted, key)
        log.info("console demo submit", operator=who[0].id, profile=profile, case_id=submitted.case_id,
                 refused=len(submitted.errors))
        if submitted.case_id is None:  # nothing stored: the form again, with what was entered and why
            return form_page(request, who, profile, status=422, posted=posted, errors=submitted.errors,
                             idempotency_key=key)
        return RedirectResponse(f"/console/cases/{quote(submitted.case_id, safe='')}", status_code=303)

    @router.get("/health")
    async def health(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return to_sign_in(request)
        return page("health.html", who=who, **await _health(services_of(request), adapter_versions))

    @router.get("/health/fragment")
    async def health_fragment(request: Request) -> Response:
        if signed_in(request) is None:
            return Response(status_code=401, headers=SECURITY_HEADERS)
        return page("_health.html", **await _health(services_of(request), adapter_versions))

    return router


def _safe_next(target: str) -> str:
    """Only a console path of this site: never another host (`//evil`, `/\\evil`) after signing in."""
    if target.startswith("/console/") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/console/"


async def _find_case(services: Services, case_id: str, app_id: str, key: str) -> str | None:
    if case_id:
        return case_id if await services.redis.exists(keys.case(case_id)) else None
    stored = await services.redis.get(keys.idempotency(app_id, key))
    if not stored:
        return None
    found = str(stored).partition("|")[2]
    return found or None


def _days_left(services: Services, deadline: str) -> int | None:
    try:
        day = date.fromisoformat(deadline[:10])
    except ValueError:
        return None
    return services.calendar.working_days_between(china_today(), day)


def _case_context(services: Services, case: CaseRecord, tasks: list[TaskRecord],
                  events: list[tuple[dict[str, Any], str]], dead: set[str], revealed: bool,
                  trace_url: str | None) -> dict[str, Any]:
    """The case page's values; `events` are the audit chain's, each with the trace it happened in ("" if none)."""
    try:
        profile = services.profiles.get(case.profile)
        region, matter_names = profile.name_zh, {m.code: (m.name_zh, m.name_en) for m in profile.matters}
    except KeyError:
        region, matter_names = case.profile, {}

    def shown(value: Any, name: str = "") -> Any:
        return value if revealed else mask_field(name, value)

    def text(value: str | None) -> str:
        return (value or "") if revealed else scrub_text(value or "")

    timeline = []
    for event, trace_id in events:
        actor = event.get("actor") or ("部门回调 callback" if event.get("callback_id") else "")
        if event.get("type") == "case.accepted":
            clerk = f" / window:{event['operator']}" if event.get("operator") else ""
            actor = f"caller:{event.get('caller')}{clerk}"
        timeline.append({"at": str(event.get("at", "")), "type": str(event.get("type", "")),
                         "matter": event.get("matter") or "", "status": event.get("status") or "",
                         "request_id": event.get("request_id") or "", "native": event.get("native_status") or "",
                         "actor": actor, "reason": text(event.get("reason")), "trace_id": trace_id,
                         "trace_url": trace_url.replace("{trace_id}", quote(trace_id, safe=""))
                         if trace_url and trace_id else ""})
    return {
        "case": case, "region": region, "case_status": derive_case_status(t.status for t in tasks).value,
        "applicant": {k: shown(v, k) for k, v in case.applicant.items()},
        "agent": {k: shown(v, k) for k, v in (case.agent or {}).items()},
        "sections": {m: {k: shown(v, k) for k, v in fields.items()} for m, fields in case.sections.items()},
        "certificates": [{k: shown(v, k) for k, v in c.items()} for c in case.certificates],
        "revealed": revealed, "timeline": timeline, "matter_names": matter_names,
        "case_days_left": _days_left(services, case.deadline),
        "open": any(t.status not in TERMINAL for t in tasks),
        "tasks": [{"matter": t.matter, "department": t.department, "adapter": t.adapter, "status": t.status.value,
                   "native": t.native_status or "", "request_id": t.request_id, "deadline": t.deadline,
                   "days_left": _days_left(services, t.deadline) if t.deadline else None,
                   "attempts": t.attempts, "reason": text(t.reason), "error": text(t.last_error),
                   "dead": t.matter in dead and t.status is TaskStatus.FAILED}
                  for t in tasks],
    }


async def _health(services: Services, versions: dict[str, str]) -> dict[str, Any]:
    redis = services.redis
    adapters = []
    for name, adapter in sorted(services.adapters.adapters.items()):
        try:
            healthy = bool(await asyncio.wait_for(adapter.health(), timeout=2))
        except Exception:  # a probe that fails in any way is "down", which is what the page says
            healthy = False
        breaker = await redis.hgetall(keys.breaker(name))
        opened_until = float(breaker.get("opened_until") or 0)
        state = "closed" if not opened_until else "open" if opened_until > time.time() else "half-open"
        adapters.append({"name": name, "version": versions.get(name) or getattr(adapter, "version", "") or "-",
                         "protocol": getattr(adapter, "protocol", "-"), "healthy": healthy, "breaker": state,
                         "failures": int(breaker.get("failures") or 0)})
    queued = await queue_depths(redis)
    depths = {"tasks_stream": queued.tasks, "tasks_in_hand": queued.tasks_pending, "delayed": queued.delayed,
              "dlq": queued.dead_letters, "outbox_stream": queued.outbox, "outbox_parked": queued.outbox_parked}
    workers = [{"name": c["name"], "pending": c["pending"], "idle_s": round(c["idle"] / 1000, 1)}
               for c in await stream_consumers(redis)]
    by_region: Counter[str] = Counter()
    by_matter: Counter[str] = Counter()
    for case_id in await overdue_case_ids(redis, limit=1000):
        profile, matters = await redis.hmget(keys.case(case_id), ["profile", "matters"])
        if profile:
            by_region[profile] += 1
            for matter in json.loads(matters or "[]"):
                by_matter[matter] += 1
    regions = {code: services.profiles.get(code).name_zh for code in services.profiles.codes()}
    return {"adapters": adapters, "depths": depths, "workers": workers,
            "overdue_regions": [(regions.get(code, code), n) for code, n in by_region.most_common()],
            "overdue_matters": by_matter.most_common(), "checked_at": time.strftime("%H:%M:%S")}
