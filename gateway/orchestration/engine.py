"""Carries each task of a case to its department and its answer back: the plan, retries, breakers, polling.

One message of the task stream is one step: `documents` (retrieve the applicant's e-licenses, then release the
case's ready tasks), `submit` or `poll` for one task. Every step is safe to run twice — the store's state machine
refuses stale moves and departments de-duplicate by the request id stored with the task — because a reclaimed message
from a dead worker will run again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter

from gateway.departments.registry import AdapterManager
from gateway.domain.attachments import for_matter
from gateway.domain.declaration import declared_rows
from gateway.domain.status import TERMINAL, TaskStatus
from gateway.domain.step_order import StepState, certificate_due, dependent_readiness
from gateway.domain.validation.rules import register_refusals
from gateway.observability.metrics import (
    BREAKER_DEFERRED,
    DEAD_LETTERED,
    DEPARTMENT_CALLS,
    DEPARTMENT_DURATION,
    ILLEGAL_TRANSITIONS,
    LINKS_REFUSED,
    RETRIES,
    TASK_TRANSITIONS,
    UNKNOWN_NATIVE,
    observe_duration,
)
from gateway.orchestration.applicant_steps import STEP_TIMER, ApplicantSteps
from gateway.profiles.loader import ProfileRegistry
from gateway.resilience.breaker import CircuitBreakers
from gateway.sdk import (
    DepartmentAdapter,
    DepartmentRequest,
    ELicenseSource,
    NativeOutcome,
    TechnicalFault,
    new_request_id,
)
from gateway.security.links import LinkStore, redirect_allowed, redirect_hosts
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.cases import CaseRecord, CaseStore, TaskRecord, TransitionResult, now_iso
from gateway.store.queue import TaskMessage, TaskQueue

log = structlog.get_logger("gateway.engine")

DOCUMENTS = "documents"  # the case-level step before any matter: e-license retrieval
CERTIFICATE = "certificate"  # the case-level step after every matter: the region's e-certificate
CERTIFICATE_REFUSED = "certificate.refused"  # the case's warning when the e-certificate was refused
E_LICENSE_ADAPTER = "e_license"
_WAITING_ON_DEPARTMENT = {TaskStatus.SUBMITTED, TaskStatus.ACCEPTED, TaskStatus.IN_REVIEW,
                          TaskStatus.AWAITING_PAYMENT, TaskStatus.UNKNOWN_NATIVE_STATUS}
_MAX_POLLS = 500


class BreakerOpen(Exception):
    def __init__(self, remaining_s: float) -> None:
        super().__init__(f"breaker open for {remaining_s:.1f} s")
        self.remaining_s = remaining_s


class Engine:
    def __init__(self, *, settings: Settings, store: CaseStore, queue: TaskQueue, adapters: AdapterManager,
                 profiles: ProfileRegistry, links: LinkStore, breakers: CircuitBreakers) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.adapters = adapters
        self.profiles = profiles
        self.links = links
        self.breakers = breakers
        self._department_slots: dict[str, asyncio.Semaphore] = {}
        self.applicant_steps = ApplicantSteps(settings=settings, store=store, queue=queue, profiles=profiles,
                                              links=links)

    # ---- one step ------------------------------------------------------------------------------------------
    async def process(self, message: TaskMessage) -> None:
        if message.kind == DOCUMENTS:
            await self.retrieve_documents(message.case_id)
            return
        if message.kind == CERTIFICATE:
            await self.retry_certificate(message.case_id)
            return
        if message.kind == STEP_TIMER:
            await self.step_timer(message.case_id, message.matter)
            return
        task = await self.store.get_task(message.case_id, message.matter)
        if task is None:
            return
        if task.status in TERMINAL:  # a crash may have come between its last move and releasing its dependents
            await self.after_terminal(message.case_id)
            return
        if message.kind == "submit" and task.status not in (TaskStatus.QUEUED, TaskStatus.SUBMITTED):
            return  # a repeated message for a task that has moved on
        if message.kind == "poll" and task.status not in _WAITING_ON_DEPARTMENT:
            return
        case = await self.store.get_case(message.case_id)
        if case is None:
            return
        adapter = self.adapters.get(task.adapter)
        request = self.department_request(case, task)
        if message.kind == "submit" and task.status is TaskStatus.QUEUED:
            await self._move(case, task, TaskStatus.SUBMITTED, {})

        async def submit() -> NativeOutcome:
            return await adapter.submit(request)

        async def query() -> NativeOutcome:
            return await adapter.query_status(request, task.reference)

        call = submit if message.kind == "submit" else query
        try:
            outcome = await self.call_department(adapter, request.operation, call, task)
        except BreakerOpen as exc:
            BREAKER_DEFERRED.labels(task.adapter).inc()
            await self.queue.enqueue(case.id, task.matter, message.kind, delay_s=exc.remaining_s + 0.1)
            return
        except TechnicalFault as exc:
            if message.kind == "poll":
                await self._schedule_poll(case.id, task)  # a failed poll is retried later, not dead-lettered
                return
            await self._dead_letter(case, task, exc)
            return
        await self.apply_outcome(case, task, adapter, outcome, from_poll=message.kind == "poll")

    # ---- department calls ----------------------------------------------------------------------------------
    def _slot(self, adapter: str) -> asyncio.Semaphore:
        if adapter not in self._department_slots:
            self._department_slots[adapter] = asyncio.Semaphore(self.settings.department_concurrency)
        return self._department_slots[adapter]

    async def call_department(self, adapter: DepartmentAdapter, operation: str,
                              call: Callable[[], Awaitable[NativeOutcome]], task: TaskRecord | None) -> NativeOutcome:
        """Call with bounded, jittered retries for technical faults only; the breaker stops calls while open."""
        name = adapter.name

        def before_sleep(state: RetryCallState) -> None:
            RETRIES.labels(name).inc()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry_attempts) | stop_after_delay(self.settings.retry_max_s),
            wait=wait_exponential_jitter(initial=self.settings.retry_initial_s, max=self.settings.retry_cap_s),
            retry=retry_if_exception_type(TechnicalFault),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                # A half-open breaker admits one probe, bounded by the backstop time-out below.
                remaining = await self.breakers.admit(name, self.settings.adapter(name).timeout_s * 3,
                                                      self.queue.consumer)
                if remaining > 0:
                    raise BreakerOpen(remaining)
                if task is not None:
                    await self.store.increment_task(task.case_id, task.matter, "attempts")
                started = time.perf_counter()
                try:
                    async with self._slot(name):
                        # The adapter has its own time-outs; this bound is the backstop for one that forgets.
                        outcome = await asyncio.wait_for(call(), timeout=self.settings.adapter(name).timeout_s * 3)
                except (TechnicalFault, TimeoutError) as exc:
                    DEPARTMENT_CALLS.labels(name, operation, "technical").inc()
                    observe_duration(DEPARTMENT_DURATION.labels(name, operation), time.perf_counter() - started)
                    await self.breakers.record_failure(name)
                    if isinstance(exc, TimeoutError):
                        raise TechnicalFault(f"{name} {operation} exceeded the backstop time-out") from exc
                    raise
                observe_duration(DEPARTMENT_DURATION.labels(name, operation), time.perf_counter() - started)
                entry = adapter.status_table.lookup(outcome.native_status)
                if entry is not None and entry.kind == "technical":
                    DEPARTMENT_CALLS.labels(name, operation, "technical").inc()
                    await self.breakers.record_failure(name)
                    raise TechnicalFault(f"{name} answered technical code {outcome.native_status}")
                DEPARTMENT_CALLS.labels(name, operation, "rejection" if entry and entry.kind == "rejection"
                                        else "ok").inc()
                await self.breakers.record_success(name)
                return outcome
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    # ---- answers ----------------------------------------------------------------------------------------------
    async def apply_outcome(self, case: CaseRecord, task: TaskRecord, adapter: DepartmentAdapter,
                            outcome: NativeOutcome, *, from_poll: bool = False,
                            callback_id: str | None = None) -> TransitionResult | None:
        """Map a department answer (reply, poll or callback) to the unified status and move the task.

        A task that moved into a waiting state starts a poll chain; a poll that found nothing new continues its
        chain. Callbacks never start a second chain for a task that was already waiting.
        """
        entry = adapter.status_table.lookup(outcome.native_status)
        reason: str | None
        if entry is not None and entry.kind == "technical":
            if from_poll:
                await self._schedule_poll(case.id, task)
            return None  # e.g. a callback saying "system busy": nothing learned about the matter
        if entry is None:
            UNKNOWN_NATIVE.labels(adapter.name).inc()
            log.warning("unknown native status", adapter=adapter.name, native_status=outcome.native_status,
                        case_id=case.id, matter=task.matter)
            target, reason = TaskStatus.UNKNOWN_NATIVE_STATUS, f"未知的部门状态码 {outcome.native_status}"
        else:
            target = entry.status
            reason = (outcome.message or entry.reason_zh) if target is TaskStatus.REJECTED else None
        data = dict(task.data)
        data.update({k: v for k, v in outcome.data.items() if v is not None})
        links = dict(task.links)
        if outcome.links:
            await self._take_links(case, task, outcome.links, links, data)
        fields: dict[str, Any] = {"native_status": outcome.native_status, "data": data, "links": links,
                                  "reason": reason, "reference": outcome.reference}
        if target is TaskStatus.AWAITING_PAYMENT and outcome.links and task.status is not TaskStatus.AWAITING_PAYMENT:
            fields.update(await self.applicant_steps.arm(case, task, list(outcome.links)))
        event: dict[str, Any] = {"native_status": outcome.native_status, "reason": reason, "links": links}
        if callback_id:
            event["callback_id"] = callback_id
        order = self.profiles.get(case.profile).step_order
        if target is TaskStatus.AWAITING_PAYMENT and task.matter == order.payment_matter and order.payment_notice_zh:
            event["notice_zh"] = order.payment_notice_zh  # where to pay, named in the SMS (e.g. 江西省税务局公众号)
        still_waiting = target in _WAITING_ON_DEPARTMENT and adapter.supports_polling
        # A move into a waiting state carries its first poll, so a crash right after cannot leave it unwatched.
        first_poll = ("poll", self._poll_delay(task.polls + 1)) if still_waiting and task.polls < _MAX_POLLS else None
        result = await self._move(case, task, target, fields, event=event, then=first_poll)
        if result.repeated:
            await self.store.update_task(case.id, task.matter, {"native_status": outcome.native_status,
                                                                "data": data, "links": links})
        if still_waiting and result.moved:
            await self.store.increment_task(case.id, task.matter, "polls")
        elif still_waiting and from_poll and result.repeated:
            await self._schedule_poll(case.id, task)
        if result.moved and target in TERMINAL:
            await self.links.revoke_task(case.id, task.matter)  # nothing is left to pay or upload
        if (result.moved or result.repeated) and target in TERMINAL:  # repeated: after a crash, redelivered
            await self.after_terminal(case.id)
        return result

    async def _take_links(self, case: CaseRecord, task: TaskRecord, department_links: dict[str, str],
                          links: dict[str, str], data: dict[str, Any]) -> None:
        """Keep each department H5 page on the adapter's allow-list behind a new gateway link (once per page).

        A page off the list is not stored: the task data names the refused step, never the URL.
        """
        allowed = redirect_hosts(self.settings.adapter(task.adapter))
        known = dict(data.get("department_links", {}))
        refused = set(data.get("refused_links", []))
        for step, url in department_links.items():
            if not redirect_allowed(url, allowed, development=self.settings.env == "development"):
                LINKS_REFUSED.labels(task.adapter).inc()
                log.warning("department link off the allow-list refused", case_id=case.id, matter=task.matter,
                            adapter=task.adapter, step=step)
                refused.add(step)
                continue
            if known.get(step) != url or step not in links:
                links[step] = await self.links.issue(case.id, task.matter, step)
            known[step] = url
        data["department_links"] = known
        if refused:
            data["refused_links"] = sorted(refused)

    async def _move(self, case: CaseRecord, task: TaskRecord, target: TaskStatus, fields: dict[str, Any],
                    event: dict[str, Any] | None = None, then: tuple[str, float] | None = None) -> TransitionResult:
        # The department request the change concerns, on the audit chain with the event.
        result = await self.store.transition(case.id, task.matter, target, fields,
                                             event={"request_id": task.request_id, **(event or {})}, then=then)
        if result.moved:
            TASK_TRANSITIONS.labels(task.adapter, target.value).inc()
        elif not result.repeated:
            ILLEGAL_TRANSITIONS.labels(task.adapter, target.value).inc()
            log.info("transition refused", case_id=case.id, matter=task.matter, target=target.value,
                     current=result.previous.value if result.previous else None)
        return result

    async def _schedule_poll(self, case_id: str, task: TaskRecord) -> None:
        polls = await self.store.increment_task(case_id, task.matter, "polls")
        if polls > _MAX_POLLS:
            return  # callbacks still arrive; ops see the task on the overdue list
        await self.queue.enqueue(case_id, task.matter, "poll", delay_s=self._poll_delay(polls))

    def _poll_delay(self, polls: int) -> float:
        return float(min(self.settings.poll_initial_s * 2 ** min(polls - 1, 16), self.settings.poll_cap_s))

    async def give_up(self, message: TaskMessage, exc: Exception) -> None:
        """A step that keeps crashing: its task is dead-lettered so ops see it, instead of looping for ever."""
        case = await self.store.get_case(message.case_id)
        task = await self.store.get_task(message.case_id, message.matter) if message.matter else None
        if case is not None and task is not None and task.status not in TERMINAL:
            await self._dead_letter(case, task, exc)

    async def _dead_letter(self, case: CaseRecord, task: TaskRecord, exc: Exception) -> None:
        result = await self._move(case, task, TaskStatus.FAILED, {"last_error": str(exc)[:500]},
                                  event={"reason": "technical failure, retries exhausted"})
        if result.moved:
            DEAD_LETTERED.labels(task.adapter).inc()
            await self.queue.dead_letter(case.id, task.matter)
            log.error("task dead-lettered", case_id=case.id, matter=task.matter, adapter=task.adapter,
                      error=type(exc).__name__)  # the message may quote the department: it is sealed in last_error

    async def step_timer(self, case_id: str, matter: str) -> None:
        """An applicant step's timer: a reminder, or the expiry, which settles the case like any terminal move."""
        if await self.applicant_steps.fire(case_id, matter):
            await self.after_terminal(case_id)

    # ---- the plan --------------------------------------------------------------------------------------------
    async def after_terminal(self, case_id: str) -> None:
        """Release dependents whose prerequisites allow it, skip those none can satisfy; issue a due certificate."""
        case = await self.store.get_case(case_id)
        if case is None:
            return
        profile = self.profiles.get(case.profile)
        tasks = {t.matter: t for t in await self.store.get_tasks(case_id, case.matters)}
        states = {matter: self._step_state(t) for matter, t in tasks.items()}
        for task in tasks.values():
            if task.status is not TaskStatus.PENDING:
                continue
            prerequisites = [m for m in task.prerequisite if m in tasks]
            readiness = dependent_readiness(profile.matter(task.matter).prerequisite,
                                            [states[m] for m in prerequisites])
            if readiness == "skip":
                names = "、".join(prerequisites)
                await self._move(case, task, TaskStatus.SKIPPED, {"reason": f"前置事项未办结：{names}"},
                                 event={"reason": f"prerequisite not completed: {names}"})
            elif readiness == "go":
                # Released together with its submit: a crash between the two cannot leave it queued for ever.
                await self._move(case, task, TaskStatus.QUEUED, {}, then=("submit", 0))
        current = await self.store.get_tasks(case_id, case.matters)
        if all(t.status in TERMINAL for t in current):
            await self.store.redis.zrem(keys.open_cases(keys.shard_of(case.id)), case.id)
            await self.store.redis.zrem(keys.caller_open_cases(case.caller), case.id)
        await self.finish_case(case, current)

    def _step_state(self, task: TaskRecord) -> StepState:
        entry = (self.adapters.get(task.adapter).status_table.lookup(task.native_status)
                 if task.status is TaskStatus.REJECTED and task.native_status else None)
        return StepState(status=task.status, already_enrolled=entry is not None and entry.already_enrolled)

    async def finish_case(self, case: CaseRecord, tasks: list[TaskRecord]) -> None:
        """Issue the region's e-certificate once its profile's order of steps says it is due (once per case)."""
        profile = self.profiles.get(case.profile)
        if not profile.certificate or case.certificates or any(w.get("code") == CERTIFICATE_REFUSED
                                                               for w in case.warnings):
            return
        if not certificate_due(profile.step_order, {t.matter: self._step_state(t) for t in tasks}):
            return
        # One issuer per case even when two workers finish two tasks at once.
        if not await self.store.redis.set(keys.certificate_lock(case.id), "1", nx=True, ex=300):
            return
        await self.issue_certificate(case, profile.certificate, profile.division_code)

    async def issue_certificate(self, case: CaseRecord, certificate_type: str, region_code: str) -> None:
        adapter = self.adapters.get(E_LICENSE_ADAPTER)
        if not isinstance(adapter, ELicenseSource):
            log.error("certificate wanted but no e-license adapter", case_id=case.id)
            return
        operation = "issue_certificate"
        # Chosen once and kept on the case: a retried issue sends the same id, so the system issues once.
        await self.store.redis.hsetnx(keys.case(case.id), "certificate_request_id", new_request_id())
        request_id = str(await self.store.redis.hget(keys.case(case.id), "certificate_request_id"))
        request = DepartmentRequest(
            request_id=request_id, case_id=case.id,
            matter=certificate_type, operation=operation, profile=case.profile, channel=case.channel,
            region_code=region_code, applicant=case.applicant, section={"certificate_type": certificate_type},
            agent=case.agent, callback_url=f"{self.settings.base_url}/v1/callbacks/{E_LICENSE_ADAPTER}")
        source: ELicenseSource = adapter

        async def issue() -> NativeOutcome:
            return await source.issue_certificate(request, certificate_type)

        try:
            outcome = await self.call_department(adapter, operation, issue, None)
        except (TechnicalFault, BreakerOpen) as exc:
            await self.store.redis.delete(keys.certificate_lock(case.id))
            await self.queue.enqueue(case.id, "", CERTIFICATE, delay_s=self.settings.retry_cap_s)
            log.warning("certificate issue deferred", case_id=case.id, error=type(exc).__name__)
            return
        entry = adapter.status_table.lookup(outcome.native_status)
        if entry is not None and entry.kind == "rejection":
            await self._refuse_certificate(case, certificate_type, outcome.native_status,
                                           outcome.message or entry.reason_zh)
            return
        certificate = {"type": certificate_type, "identifier": outcome.data.get("identifier"),
                       "issued_at": outcome.data.get("issued_at") or now_iso()}
        await self.store.update_case(case.id, {"certificates": [certificate]})
        await self.store.append_event(case.id, "case.certificate_issued", {"certificate": certificate})

    async def _refuse_certificate(self, case: CaseRecord, certificate_type: str, native_status: str,
                                  reason: str) -> None:
        """A refusal is final (a type code the platform does not issue, say — ours is a placeholder until the
        catalogue confirms it): the case says why, the platform hears it, nothing retries for ever."""
        warning = {"code": CERTIFICATE_REFUSED, "field": "certificates",
                   "message_zh": f"电子证照未签发：{reason}",
                   "message_en": f"the e-certificate was not issued (department code {native_status})"}
        await self.store.update_case(case.id, {"warnings": [*case.warnings, warning]})
        await self.store.append_event(case.id, "case.certificate_refused", {
            "certificate_type": certificate_type, "native_status": native_status, "reason": reason})
        log.warning("certificate refused", case_id=case.id, native_status=native_status)

    async def retry_certificate(self, case_id: str) -> None:
        case = await self.store.get_case(case_id)
        if case is not None:
            await self.finish_case(case, await self.store.get_tasks(case_id, case.matters))

    # ---- e-licenses ------------------------------------------------------------------------------------------
    async def retrieve_documents(self, case_id: str) -> None:
        """Fetch ID card and household register (证件免交、信息预填), cross-check them, then release the tasks."""
        case = await self.store.get_case(case_id)
        if case is None:
            return
        if not case.documents.get("status"):
            documents = await self._fetch_documents(case)
            await self.store.update_case(case_id, {"documents": documents})
            # The retrieval on record: under which authorization (assertion jti), which licences, for which matters.
            await self.store.append_event(case_id, "case.documents", {
                "documents": {"status": documents["status"]},
                "authorization": {k: (case.authorization or {}).get(k) for k in ("jti", "issuer", "acr")},
                "licences": [lic["kind"] for lic in documents.get("licenses", [])],
                "purpose": case.matters})
            case.documents = documents
        tasks = await self.store.get_tasks(case_id, case.matters)
        if case.documents.get("status") == "mismatch":
            reason = case.documents.get("reason", "电子证照信息与申请信息不一致")
            refusals = {t.matter: reason for t in tasks}
        else:
            # The register decides 户籍 over the declaration (without one, the declaration stands): a matter that
            # does not qualify is refused here, before anything is sent.
            refusals = register_refusals(self.profiles.get(case.profile), case.matters, case.applicant,
                                         case.documents.get("household_division_code"))
        for task in tasks:
            if task.matter in refusals and task.status in (TaskStatus.QUEUED, TaskStatus.PENDING):
                await self._move(case, task, TaskStatus.REJECTED, {"reason": refusals[task.matter]},
                                 event={"reason": "e-licence check: " + ("holder mismatch" if
                                        case.documents.get("status") == "mismatch" else "household register")})
        for task in tasks:
            if task.status is TaskStatus.QUEUED and task.matter not in refusals:
                await self.queue.enqueue(case_id, task.matter, "submit")
        if refusals:
            await self.after_terminal(case_id)  # dependents of a refused matter: released elsewhere or skipped

    async def _fetch_documents(self, case: CaseRecord) -> dict[str, Any]:
        adapter = self.adapters.adapters.get(E_LICENSE_ADAPTER)
        if adapter is None or not isinstance(adapter, ELicenseSource) or not case.authorization:
            return {"status": "not_requested"}
        source: ELicenseSource = adapter
        name, id_number = str(case.applicant.get("name", "")), str(case.applicant.get("id_number", ""))
        holder_authorization = dict(case.authorization)

        async def fetch() -> NativeOutcome:
            found = await source.fetch_identity_documents(name, id_number, holder_authorization)
            return NativeOutcome(native_status="found" if found else "not_found", data={"licenses": found})

        try:
            outcome = await self.call_department(adapter, "fetch_identity_documents", fetch, None)
        except (TechnicalFault, BreakerOpen) as exc:
            # The departments can still decide on the applicant's own data; the case is not held hostage.
            log.warning("e-license retrieval failed", case_id=case.id, error=type(exc).__name__)
            return {"status": "unavailable"}
        licenses = outcome.data.get("licenses") or []
        if not licenses:
            return {"status": "not_found"}
        summary: dict[str, Any] = {"status": "found", "licenses": []}
        for lic in licenses:
            if lic.holder_id_number.upper() != id_number.upper() or (lic.holder_name and lic.holder_name != name):
                return {"status": "mismatch", "reason": f"电子证照（{lic.kind}）持证人信息与申请人不一致"}
            summary["licenses"].append({"kind": lic.kind, "identifier": lic.identifier})
            if lic.kind == "household_register" and lic.fields.get("household_division_code"):
                summary["household_division_code"] = lic.fields["household_division_code"]
            if lic.kind == "id_card" and lic.fields.get("ethnicity_code"):
                summary["ethnicity"] = lic.fields.get("ethnicity")
                summary["ethnicity_code"] = lic.fields["ethnicity_code"]
        return summary

    # ---- requests --------------------------------------------------------------------------------------------
    def department_request(self, case: CaseRecord, task: TaskRecord) -> DepartmentRequest:
        profile = self.profiles.get(case.profile)
        applicant = dict(case.applicant)
        # The e-licenses are the register: what they hold decides over what the form declared.
        for name in ("household_division_code", "ethnicity", "ethnicity_code"):
            if case.documents.get(name):
                applicant[name] = case.documents[name]
        section = dict(case.sections.get(task.matter, {}))
        declares = profile.matter(task.matter).declares
        if declares is not None and not section.get("rows"):
            # Declared from the enrolments' choices, from the month of enrolment (the case's month, Beijing time).
            month = _beijing_month(case.created_at)
            section["rows"] = declared_rows(declares, case.sections, case.matters, month)
        return DepartmentRequest(
            request_id=task.request_id, case_id=case.id, matter=task.matter, operation=task.operation,
            profile=case.profile, channel=case.channel, region_code=profile.division_code, applicant=applicant,
            section=section, agent=case.agent,
            callback_url=f"{self.settings.base_url}/v1/callbacks/{task.adapter}",
            attachments=for_matter(case.attachments, task.matter),
        )


def _beijing_month(timestamp: str) -> str:
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return f"{moment.astimezone(timezone(timedelta(hours=8))):%Y-%m}"
