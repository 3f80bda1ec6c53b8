"""Applicant steps end: every H5 step (pay, deposit, photo) is reminded by SMS with a fresh link, then expires.

A department that answers with a link leaves the task in `awaiting_payment` until the applicant acts. `arm` plans
the step — reminder times and expiry from the matter's `applicant_steps` in the profile, else the settings
(`GATEWAY_STEP_REMINDERS_S`, `GATEWAY_STEP_EXPIRY_S`); a seed's payment cut-off ends it earlier — and sets its
timer before the task moves, so a crash between the two leaves a timer with nothing to do, never a step without
one. The timer is a `step_timer` message in the delayed set, in Redis, so it fires after any restart. When it
fires, `fire` reads the plan and the reminders counted and does only what is due: a reminder (counted and queued
in one atomic step, so a timer fired twice sends it once), or the expiry through the state machine (refused for a
task that moved on). A task that is no longer waiting on its step is left alone.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from gateway.domain.paths import holds
from gateway.domain.status import TaskStatus
from gateway.observability.metrics import APPLICANT_STEPS, TASK_TRANSITIONS
from gateway.profiles.loader import ProfileRegistry
from gateway.profiles.model import StepSchedule
from gateway.security.links import LinkStore
from gateway.settings import Settings
from gateway.store.cases import CaseRecord, CaseStore, TaskRecord
from gateway.store.queue import TaskQueue

log = structlog.get_logger("gateway.applicant_steps")

STEP_TIMER = "step_timer"  # the task-stream message kind of a step's timer
WAITING = TaskStatus.AWAITING_PAYMENT  # every H5 step waits here (tax: declared, housing fund: opened, hrss: 02)
STEP_NAMES_ZH = {"payment": "缴费", "deposit": "缴存", "photo": "上传社保卡照片"}
BEIJING = dt.timezone(dt.timedelta(hours=8))


def step_names_zh(steps: list[str]) -> str:
    return "、".join(STEP_NAMES_ZH.get(step, step) for step in steps)


@dataclass(frozen=True)
class StepPlan:
    steps: list[str]
    started_at: float  # unix seconds
    reminders_at: list[float]
    expires_at: float
    cutoff: str | None = None  # the seed's cut-off day (YYYY-MM-DD, Beijing) that set the expiry, if one did

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> StepPlan:
        return cls(**json.loads(raw))

    def reminders_due(self, now: float) -> int:
        return sum(1 for at in self.reminders_at if at <= now)

    def next_due(self, now: float) -> float:
        return min([at for at in self.reminders_at if at > now] + [self.expires_at])

    def expires_beijing(self) -> str:
        return dt.datetime.fromtimestamp(self.expires_at, BEIJING).strftime("%Y-%m-%d %H:%M")


def next_cutoff_end(last_days: list[str], now: float) -> tuple[float, str]:
    """The end (Beijing midnight after it) of the first of `last_days` (MM-DD) still ahead of `now`."""
    today = dt.datetime.fromtimestamp(now, BEIJING).date()
    ends = []
    for year in (today.year, today.year + 1):
        for month_day in last_days:
            try:
                day = dt.date.fromisoformat(f"{year}-{month_day}")
            except ValueError:  # 02-29 in a common year: that year's cut-off is the 28th
                day = dt.date(year, 2, 28)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), BEIJING).timestamp()
            if end > now:
                ends.append((end, day.isoformat()))
    return min(ends)


def plan_step(steps: list[str], schedules: dict[str, StepSchedule], section: dict[str, Any], settings: Settings,
              now: float) -> StepPlan:
    """Pure: the plan of the steps a department just opened (usually one; the strictest schedule wins)."""
    own = [schedules[s] for s in steps if s in schedules]
    reminders = next((s.reminders_s for s in own if s.reminders_s is not None), settings.step_reminders_s)
    expiry_s = min([s.expiry_s for s in own if s.expiry_s is not None] or [settings.step_expiry_s])
    expires_at, cutoff = now + expiry_s, None
    for schedule in own:
        for rule in schedule.cutoffs:
            if rule.when is None or holds(rule.when, section):
                end, day = next_cutoff_end(rule.last_days, now)
                if end < expires_at:
                    expires_at, cutoff = end, day
    reminders_at = sorted(now + r for r in reminders if now + r < expires_at)
    return StepPlan(steps=sorted(steps), started_at=now, reminders_at=reminders_at, expires_at=expires_at,
                    cutoff=cutoff)


class ApplicantSteps:
    def __init__(self, *, settings: Settings, store: CaseStore, queue: TaskQueue, profiles: ProfileRegistry,
                 links: LinkStore) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.profiles = profiles
        self.links = links

    async def arm(self, case: CaseRecord, task: TaskRecord, steps: list[str]) -> dict[str, Any]:
        """Plan the step and set its timer; the returned task fields go with the move into `awaiting_payment`."""
        profile = self.profiles.get(case.profile)
        schedules = profile.matter(task.matter).applicant_steps if profile.has_matter(task.matter) else {}
        plan = plan_step(steps, schedules, case.sections.get(task.matter, {}), self.settings, time.time())
        await self.queue.enqueue_at(case.id, task.matter, STEP_TIMER, plan.next_due(plan.started_at))
        return {"applicant_step": plan.to_json(), "step_reminded": 0}

    async def fire(self, case_id: str, matter: str) -> bool:
        """A step's timer: remind or expire, whichever is due, and set the next timer. True when the task expired."""
        task = await self.store.get_task(case_id, matter)
        if task is None or task.status is not WAITING:
            return False  # paid, reviewed, refused or expired already: the step is over
        raw, reminded = await self.store.applicant_step(case_id, matter)
        if not raw:
            return False
        plan, now = StepPlan.from_json(raw), time.time()
        if now >= plan.expires_at:
            return await self._expire(task, plan)
        due = plan.reminders_due(now)
        if due > reminded:
            # After an outage only the latest reminder missed goes out, once: never a burst of stale ones.
            await self._remind(task, plan, raw, reminded, due)
        await self.queue.enqueue_at(case_id, matter, STEP_TIMER, plan.next_due(now))
        return False

    async def resend(self, case_id: str, matter: str, *, actor: str, reason: str) -> bool:
        """Ops re-send the applicant a fresh link now (they lost the SMS, or spent the link on a failed visit): a
        reminder out of schedule, counted as the last one sent, so the planned reminders and the expiry stay as
        they were. False when the task is not waiting on an applicant step."""
        task = await self.store.get_task(case_id, matter)
        if task is None or task.status is not WAITING:
            return False
        raw, reminded = await self.store.applicant_step(case_id, matter)
        if not raw:
            return False
        return await self._remind(task, StepPlan.from_json(raw), raw, reminded, reminded,
                                  {"actor": actor, "reason": reason})

    async def _remind(self, task: TaskRecord, plan: StepPlan, raw: str, reminded: int, number: int,
                      extra: dict[str, Any] | None = None) -> bool:
        """Fresh links for the step's SMS and webhook, sent once if the task still waits on `plan` with `reminded`
        reminders counted (then `number` are)."""
        case_id, matter = task.case_id, task.matter
        links = {step: await self.links.issue(case_id, matter, step) for step in plan.steps}
        sent = await self.store.record_step_reminder(
            case_id, matter, WAITING, raw, reminded, number, links,
            {"steps": plan.steps, "reminder": number, "links": links, "expires_at": plan.expires_beijing(),
             **(extra or {})})
        if sent:
            APPLICANT_STEPS.labels(task.adapter, "reminded").inc()
            log.info("applicant step reminded", case_id=case_id, matter=matter, reminder=number,
                     actor=(extra or {}).get("actor"))
        return sent

    async def _expire(self, task: TaskRecord, plan: StepPlan) -> bool:
        names = step_names_zh(plan.steps)
        if plan.cutoff:
            reason = f"未在缴费截止日（{plan.cutoff}）前完成{names}，请重新申请"
            reason_en = f"the applicant's step ({', '.join(plan.steps)}) was not done by the cut-off {plan.cutoff}"
        else:
            reason = f"未在期限（{plan.expires_beijing()}）前完成{names}，请重新申请"
            reason_en = f"the applicant's step ({', '.join(plan.steps)}) was not done by its expiry"
        result = await self.store.transition(task.case_id, task.matter, TaskStatus.EXPIRED, {"reason": reason},
                                             event={"reason": reason_en, "steps": plan.steps})
        if result.moved:
            await self.links.revoke_task(task.case_id, task.matter)  # nothing is left to pay or upload
            TASK_TRANSITIONS.labels(task.adapter, TaskStatus.EXPIRED.value).inc()
            APPLICANT_STEPS.labels(task.adapter, "expired").inc()
            log.info("applicant step expired", case_id=task.case_id, matter=task.matter, steps=plan.steps)
        return result.moved
