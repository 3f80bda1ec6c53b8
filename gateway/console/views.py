"""The web console at /console/: server-rendered pages over the gateway's own services (no API of its own).

Reading works without JavaScript; every POST carries the session's CSRF token; acting (replay, cancel, unmask) is
for the `operator` role and lands on the case's audit chain with the operator's id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
import structlog
import yaml
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.bootstrap import ConfigurationError, Services
from gateway.console.form import form_context
from gateway.console.masking import mask_field, scrub_text
from gateway.console.operators import Operator, authenticate, load_operators
from gateway.console.sessions import LOGIN_COOKIE, SESSION_COOKIE, Session, SessionSigner, same_token
from gateway.departments.registry import discover
from gateway.domain.status import TERMINAL, TaskStatus, derive_case_status
from gateway.orchestration.intake import china_today
from gateway.orchestration.interventions import cancel_case, replay_dead_letters
from gateway.profiles.catalogue import catalogue
from gateway.security.audit import AuditChain
from gateway.security.secrets import stored_secret
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
            "case.documents": "证照材料", "console.pii_revealed": "查看明文"}
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
    key = (base64.b64decode(settings.console_session_key) if settings.console_session_key
           else stored_secret(settings.var_dir, "console-session.key", 32))
    try:
        return SessionSigner(key, settings.console_session_ttl_s)
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_CONSOLE_SESSION_KEY: {exc}") from exc


def console_router(settings: Settings) -> APIRouter:
    operators = _operators(settings)
    signer = _session_signer(settings)
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
        operator = operators.get(session.operator_id) if session else None
        return (operator, session) if operator and session else None  # removed from the file: signed out

    def to_sign_in(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)

    async def form_of(request: Request) -> dict[str, str]:
        """An urlencoded form (the only kind the console sends), first value of each field."""
        parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

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

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"})

    @router.get("/login")
    async def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
        token = secrets.token_urlsafe(18)
        response = page("login.html", who=None, next=_safe_next(next), login_token=token, failed=False)
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
                        login_token=form.get("login_token", ""), failed=True)
        await redis.delete(failures_key)
        cookie, _ = signer.issue(operator.id)
        log.info("console sign-in", operator=operator.id, role=operator.role)
        response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=signer.ttl_s, path="/console/", httponly=True,
                            samesite="strict", secure=secure_cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/console/")
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

    async def case_page(request: Request, who: tuple[Operator, Session], case_id: str, *, revealed: bool = False,
                        notice: str = "", status: int = 200) -> HTMLResponse:
        services = services_of(request)
        case = await services.store.get_case(case_id)
        if case is None:
            return page("error.html", 404, who=who, title="未找到 Not found", message_zh="没有这个案件",
                        message_en="no such case")
        tasks = await services.store.get_tasks(case_id, case.matters)
        chain = AuditChain(services.redis, services.store.audit, services.store.events)
        events = [entry.event for entry in await chain.read(case_id) if entry.event is not None]
        report = await chain.verify(case_id)
        dead = {m for c, m, _ in await services.queue.dead_letters() if c == case_id}
        return page("case.html", status, who=who, **_case_context(services, case, tasks, events, dead, revealed),
                    chain_intact=report.intact, chain_entries=report.entries, notice=notice)

    @router.get("/cases/{case_id}")
    async def show_case(case_id: str, request: Request, done: str = "") -> Response:
        who = signed_in(request)
        if who is None:
            return to_sign_in(request)
        notice = {"replayed": "已重放，任务重新排队 Replayed: the task is queued again",
                  "cancelled": "已撤销 Cancelled", "nothing": "没有可处理的任务 Nothing to do"}.get(done, "")
        return await case_page(request, who, case_id, notice=notice)

    @router.post("/cases/{case_id}/reveal")
    async def reveal(case_id: str, request: Request) -> Response:
        try:
            operator, form = await acting(request)
        except Forbidden as exc:
            return refused(exc, signed_in(request))
        reason = form.get("reason", "").strip()[:MAX_REASON]
        who = signed_in(request)
        assert who is not None
        if len(reason) < 2:
            return await case_page(request, who, case_id, notice="请填写查看原因 Give a reason", status=422)
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
        return RedirectResponse(f"/console/cases/{quote(case_id, safe='')}?done={'replayed' if count else 'nothing'}",
                                status_code=303)

    @router.post("/cases/{case_id}/cancel")
    async def cancel(case_id: str, request: Request) -> Response:
        try:
            operator, form = await acting(request)
        except Forbidden as exc:
            return refused(exc, signed_in(request))
        reason = form.get("reason", "").strip()[:MAX_REASON]
        if len(reason) < 2:
            who = signed_in(request)
            assert who is not None
            return await case_page(request, who, case_id, notice="请填写撤销原因 Give a reason", status=422)
        cancelled = await cancel_case(services_of(request), case_id, actor=f"console:{operator.id}", reason=reason)
        log.info("console cancel", operator=operator.id, case_id=case_id, cancelled=len(cancelled))
        return RedirectResponse(f"/console/cases/{quote(case_id, safe='')}?done="
                                f"{'cancelled' if cancelled else 'nothing'}", status_code=303)

    @router.get("/form")
    async def first_form(request: Request) -> Response:
        codes = services_of(request).profiles.codes()
        return RedirectResponse(f"/console/form/{codes[0]}" if codes else "/console/", status_code=303)

    @router.get("/form/{profile}")
    async def one_form(profile: str, request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return to_sign_in(request)
        registry = services_of(request).profiles
        try:
            document = catalogue(registry.get(profile))
        except KeyError:
            return page("error.html", 404, who=who, title="未找到 Not found", message_zh="没有这个地区",
                        message_en="no such profile")
        return page("form.html", who=who, profiles=registry.codes(), **form_context(document))

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


def _case_context(services: Services, case: CaseRecord, tasks: list[TaskRecord], events: list[dict[str, Any]],
                  dead: set[str], revealed: bool) -> dict[str, Any]:
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
    for event in events:
        actor = event.get("actor") or ("部门回调 callback" if event.get("callback_id") else "")
        if event.get("type") == "case.accepted":
            clerk = f" / window:{event['operator']}" if event.get("operator") else ""
            actor = f"caller:{event.get('caller')}{clerk}"
        timeline.append({"at": str(event.get("at", "")), "type": str(event.get("type", "")),
                         "matter": event.get("matter") or "", "status": event.get("status") or "",
                         "request_id": event.get("request_id") or "", "native": event.get("native_status") or "",
                         "actor": actor, "reason": text(event.get("reason"))})
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
