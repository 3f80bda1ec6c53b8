"""Taking one application: idempotency, applicant identity, validation, the plan, one atomic store."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from gateway.api.errors import ApiError, ErrorItem
from gateway.api.schemas import CaseView, Certificate, Documents, Problem, TaskView
from gateway.bootstrap import Services
from gateway.domain.attachments import read_materials
from gateway.domain.deadlines import case_deadline, task_deadline
from gateway.domain.status import TaskStatus, derive_case_status
from gateway.domain.validation import Application, validate_application
from gateway.observability.metrics import APPLICATION_PROBLEMS, APPLICATIONS_REJECTED, CASES_CREATED
from gateway.orchestration.engine import DOCUMENTS, E_LICENSE_ADAPTER
from gateway.security.applicant_identity import ApplicantAssertion
from gateway.security.caller_quotas import check_case_rights, open_cases_full
from gateway.security.callers import Caller
from gateway.store import keys, pipelined, scripts
from gateway.store.cases import CaseRecord, NewTask, TaskRecord, now_iso
from gateway.store.pipelined import Script
from gateway.store.queue import overdue_case_ids

BEIJING = timezone(timedelta(hours=8))


def china_today() -> date:
    """Deadlines count Chinese working days, so 'today' is the date in Beijing, whatever the server's zone."""
    return datetime.now(BEIJING).date()


def deadline_score(deadline: date | str) -> float:
    """Open cases are scored by the end of their deadline day in Beijing: a past score is an overdue case."""
    day = date.fromisoformat(deadline) if isinstance(deadline, str) else deadline
    return datetime(day.year, day.month, day.day, tzinfo=BEIJING).timestamp() + 86400


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
                          ).hexdigest()


def request_id_in_shard(shard: int) -> str:
    """A department request id of the SDK's form (new_request_id: "GW" + 30 hex digits), chosen in its case's shard so
    that its index is written in the same step as the case."""
    return "GW" + keys.new_id_in_shard(shard, hex_digits=30).upper()


@dataclass(frozen=True)
class Accepted:
    created: bool
    view: dict[str, Any]


def case_view(case: CaseRecord, tasks: list[TaskRecord]) -> dict[str, Any]:
    """Built through the published model: an answer cannot hold what /openapi.json does not say."""
    return CaseView(
        id=case.id,
        profile=case.profile,
        channel=case.channel,  # type: ignore[arg-type]  # validated by the model
        operator=case.operator,
        delivery=case.delivery,  # type: ignore[arg-type]
        status=derive_case_status(t.status for t in tasks),
        created_at=case.created_at,
        deadline=case.deadline,
        statutory_deadline=case.statutory_deadline,
        tasks=[TaskView.model_validate(t.public()) for t in tasks],
        warnings=[Problem.model_validate(w) for w in case.warnings],
        certificates=[Certificate.model_validate(c) for c in case.certificates],
        documents=Documents(status=case.documents.get("status", "pending")),
    ).model_dump(mode="json")


async def read_case(services: Services, case_id: str, caller: Caller) -> dict[str, Any] | None:
    case = await services.store.get_case(case_id)
    if case is None or case.caller != caller.app_id:  # another caller's case does not exist for this one
        return None
    return case_view(case, await services.store.get_tasks(case_id, case.matters))


def _assertion_problems(application: Application | None, body: Any,
                        assertion: ApplicantAssertion | None) -> list[ErrorItem]:
    """The assertion must be the applicant's own: the same ID number and the same name as the application."""
    if assertion is None:
        return []
    applicant = body.get("applicant") if isinstance(body, dict) else None
    if application is not None:
        id_number, name = str(application.applicant["id_number"]), str(application.applicant.get("name", ""))
    elif isinstance(applicant, dict):
        id_number = str(applicant.get("id_number", "")).strip().upper()
        name = str(applicant.get("name", "")).strip()
    else:
        id_number = name = ""
    problems = []
    if id_number and assertion.subject != id_number:
        problems.append(ErrorItem("applicant.assertion.subject_mismatch", "applicant.id_number",
                                  "申请人身份凭证与申请表中的证件号码不一致",
                                  "the applicant assertion is for another ID number than the application"))
    if name and assertion.name.strip() != name:
        problems.append(ErrorItem("applicant.assertion.name_mismatch", "applicant.name",
                                  "申请人身份凭证与申请表中的姓名不一致",
                                  "the applicant assertion is for another name than the application"))
    return problems


async def submit_case(services: Services, caller: Caller, idempotency_key: str, body: Any,
                      assertion: ApplicantAssertion | None, *, operator: str | None = None,
                      nonce: str = "") -> Accepted:
    """Three round trips to Redis for a new case at most: the caller's (nonce and rate token, gateway/api/app.py),
    then _admit's (the caller's open-case count and the assertion's claim, each in its own slot; skipped for a window
    case of a caller with no maximum), then the create step, which answers a retry and a conflict itself; the 202 is
    built from what it wrote."""
    if not idempotency_key or len(idempotency_key) > 200:
        raise ApiError(422, ErrorItem("header.idempotency_key.required", "Idempotency-Key",
                                      "缺少 Idempotency-Key 请求头（不超过200个字符）",
                                      "the Idempotency-Key header is required (at most 200 characters)"))
    check_case_rights(caller, body)
    digest = request_hash(body)
    channel = body.get("channel", "online") if isinstance(body, dict) else "online"
    if channel == "online" and assertion is None and caller.kind != "window":
        if retry := await _retry_of_accepted(services, caller, idempotency_key, digest):
            return retry
        raise ApiError(401, ErrorItem("applicant.assertion.missing", "X-Applicant-Assertion",
                                      "线上申请须提供申请人身份凭证",
                                      "an online application needs the applicant's identity assertion"))
    today = china_today()
    fetch_documents = assertion is not None and E_LICENSE_ADAPTER in services.adapters.adapters
    outcome = validate_application(body, services.profiles, today=today, register_follows=fetch_documents)
    problems = [ErrorItem(p.code, p.field, p.message_zh, p.message_en) for p in outcome.errors]
    problems += _assertion_problems(outcome.application, body, assertion)
    materials = (read_materials(body, services.profiles.get(outcome.application.profile), outcome.application)
                 if outcome.application is not None else None)
    if materials is not None:
        problems += [ErrorItem(p.code, p.field, p.message_zh, p.message_en) for p in materials.errors]
    if problems or outcome.application is None or materials is None:
        if retry := await _retry_of_accepted(services, caller, idempotency_key, digest):
            return retry
        APPLICATIONS_REJECTED.inc()
        for p in problems:
            APPLICATION_PROBLEMS.labels(p.code).inc()
        raise ApiError(422, *problems)
    application = outcome.application
    # The case lives in its idempotency record's shard: one atomic step writes both (gateway/store/keys.py).
    shard = keys.idempotency_shard(caller.app_id, idempotency_key)
    case_id = keys.new_id_in_shard(shard)
    profile = services.profiles.get(application.profile)
    tasks: list[NewTask] = []
    for code in application.matters:
        spec = profile.matter(code)
        prerequisite = [m for m in (spec.prerequisite.any_of if spec.prerequisite else []) if m in application.matters]
        tasks.append(NewTask(
            matter=code, department=spec.department, adapter=spec.adapter, operation=spec.operation,
            request_id=request_id_in_shard(shard), prerequisite=prerequisite,
            deadline=task_deadline(profile, code, application.channel, today, services.calendar).isoformat(),
            ready=not prerequisite))
    deadline = case_deadline(profile, application.matters, application.channel, today, services.calendar)
    statutory_days = profile.statutory_days(application.matters)  # the profile's formula over this case's matters
    statutory = services.calendar.add_working_days(today, statutory_days).isoformat() if statutory_days else None
    first = ([{"matter": "", "kind": DOCUMENTS}] if fetch_documents else
             [{"matter": t.matter, "kind": "submit"} for t in tasks if t.ready])
    case_fields: dict[str, Any] = {
        "id": case_id, "caller": caller.app_id, "profile": application.profile, "channel": application.channel,
        "operator": operator or "",
        "delivery": application.delivery, "created_at": now_iso(), "deadline": deadline.isoformat(),
        "statutory_deadline": statutory or "", "matters": application.matters,
        "applicant": application.applicant, "agent": application.agent, "sections": application.sections,
        "authorization": assertion.authorization() if assertion else None,
        "warnings": [{"code": w.code, "field": w.field, "message_zh": w.message_zh, "message_en": w.message_en}
                     for w in outcome.warnings],
        "certificates": [], "documents": {},
        "attachments": materials.attachments, "materials_received": materials.received,
    }
    if retry := await _admit(services, caller, case_id, idempotency_key, digest, assertion):
        return retry
    result = await services.store.create(
        caller=caller.app_id, idempotency_key=idempotency_key, request_hash=digest, case_id=case_id,
        case_fields=case_fields,
        tasks=tasks,
        deadline_ts=deadline_score(deadline),
        ttl_s=services.settings.idempotency_ttl_s,
        first_messages=first,
        nonce=nonce,
    )
    if not result.created:
        await services.quotas.not_stored(caller, case_id)
    if result.conflict:
        raise _conflict()
    if not result.replicated:
        raise _not_replicated()
    if not result.created:
        view = await read_case(services, str(result.case_id), caller)
        if view is None:
            raise _removed(str(result.case_id))
        return Accepted(created=False, view=view)
    CASES_CREATED.labels(application.profile, application.channel).inc()
    return Accepted(created=True, view=_as_written(case_fields, tasks))


# Spends an applicant assertion for one request, in the jti's own slot (scripts.CLAIM_ASSERTION).
CLAIM_ASSERTION = Script(scripts.CLAIM_ASSERTION)


async def _admit(services: Services, caller: Caller, case_id: str, key: str, digest: str,
                 assertion: ApplicantAssertion | None) -> Accepted | None:
    """Before the case is stored, in one round trip: the case counted among the caller's open ones (when it has a
    maximum) and the applicant assertion claimed for this request (caller, key and body: a retry of the same request
    claims it again and then finds its case). Each is a key of its own slot, so neither can be in the create step.
    A full caller's retry of a case it was answered before gets that case again."""
    join = services.quotas.join_open(caller, case_id)
    # Kept past exp by more than the verifier's leeway, so the assertion cannot be replayed while it is valid.
    claim = (CLAIM_ASSERTION.call([keys.assertion_used(assertion.issuer, assertion.jti)],
                                  [f"{caller.app_id}|{key}|{digest}",
                                   max(1, assertion.expires_at - int(time.time()) + 60)])
             if assertion else None)
    commands = [command for command in (join, claim) if command is not None]
    if not commands:
        return None
    replies = iter(await pipelined.execute(services.redis, commands,
                                           [services.quotas.join_script, CLAIM_ASSERTION]))
    joined = join is None or bool(int(next(replies))) or await services.quotas.join_after_orphans(caller, case_id)
    claimed = claim is None or bool(int(next(replies)))
    if not joined:
        if retry := await _retry_of_accepted(services, caller, key, digest):
            return retry
        raise open_cases_full(caller)
    if not claimed:
        await services.quotas.not_stored(caller, case_id)
        raise ApiError(401, ErrorItem("applicant.assertion.replayed", "X-Applicant-Assertion",
                                      "申请人身份凭证已使用过，请重新认证",
                                      "this applicant assertion was already used for another application"))
    return None


def _as_written(case_fields: dict[str, Any], tasks: list[NewTask]) -> dict[str, Any]:
    """The view of a case just created, from what the create step wrote: the same answer a read-back gives."""
    case = CaseRecord(**{**case_fields, "operator": case_fields["operator"] or None,
                         "statutory_deadline": case_fields["statutory_deadline"] or None})
    created_at = case.created_at
    return case_view(case, [TaskRecord(case_id=case.id, matter=t.matter, department=t.department, adapter=t.adapter,
                                       operation=t.operation, status=t.initial_status, request_id=t.request_id,
                                       prerequisite=t.prerequisite, deadline=t.deadline, created_at=created_at,
                                       updated_at=created_at) for t in tasks])


async def _retry_of_accepted(services: Services, caller: Caller, key: str, digest: str) -> Accepted | None:
    """A request refused before the create step may retry one accepted before (the day's rules or its headers may
    differ since): the key's case answers it, as the create step would, and another body under the key is a 409."""
    stored = await services.redis.get(keys.idempotency(caller.app_id, key))
    if not stored:
        return None
    stored_hash, _, case_id = stored.partition("|")
    if stored_hash != digest:
        raise _conflict()
    view = await read_case(services, case_id, caller)
    if view is None:
        raise _removed(case_id)
    if not await services.store.replicated():
        raise _not_replicated()
    return Accepted(created=False, view=view)


def _removed(case_id: str) -> ApiError:
    """The key's case finished and was removed by retention while the key lives on: never a second case."""
    return ApiError(410, ErrorItem("case.removed", "Idempotency-Key",
                                   f"该申请（{case_id}）已办结并按保存期限移出网关",
                                   f"this request's case {case_id} finished and was removed after its retention"))


def _conflict() -> ApiError:
    return ApiError(409, ErrorItem("idempotency_key.reused", "Idempotency-Key", "该 Idempotency-Key 已用于另一份申请",
                                   "this Idempotency-Key was used for another body"))


def _not_replicated() -> ApiError:
    """The case is stored on the primary but no replica confirmed it in time: a failover now could lose it, so it is
    not acknowledged. The same Idempotency-Key later answers the case if it survived, or creates it again."""
    return ApiError(503, ErrorItem("store.not_replicated", "",
                                   "申请尚未同步到备用存储，请稍后用同一 Idempotency-Key 重试",
                                   "the case is not yet held by a replica: retry with the same Idempotency-Key"),
                    headers={"Retry-After": "1"})


# A failed task is not settled: it waits for ops, and its case stays on the overdue list.
_SETTLED = {s.value for s in (TaskStatus.COMPLETED, TaskStatus.REJECTED, TaskStatus.SKIPPED, TaskStatus.CANCELLED)}


async def overdue_cases(services: Services, caller: Caller) -> list[dict[str, Any]]:
    """Open cases of this caller whose promised deadline has passed."""
    case_ids = await overdue_case_ids(services.redis)
    views = []
    for case_id in case_ids:
        view = await read_case(services, case_id, caller)
        if view is not None and any(t["status"] not in _SETTLED for t in view["tasks"]):
            views.append(view)
    return views
