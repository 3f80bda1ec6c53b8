"""What ops do to a stuck case, one implementation for the CLI and the console: replay dead-lettered tasks, re-send
an applicant's link, cancel.

Both move tasks only through CaseStore.transition (the state machine, with its audit entry in the same step) and
name who acted (`actor`: "cli" or "console:<operator id>") on that entry.
"""

from __future__ import annotations

import time

from gateway.bootstrap import Services
from gateway.domain.status import TERMINAL, TaskStatus
from gateway.orchestration.intake import deadline_score
from gateway.store import keys


async def replay_dead_letters(services: Services, *, actor: str, task: str | None = None,
                              adapter: str | None = None, case_id: str | None = None) -> int:
    """Put dead-lettered tasks back on the queue (failed -> queued): one (`task` "CASE_ID:MATTER"), an adapter's,
    or a case's. Returns how many moved."""
    replayed = 0
    for dead_case, matter, _ in await services.queue.dead_letters():
        if (task and task != f"{dead_case}:{matter}") or (case_id and case_id != dead_case):
            continue
        record = await services.store.get_task(dead_case, matter)
        if record is None or (adapter and record.adapter != adapter):
            continue
        result = await services.store.transition(dead_case, matter, TaskStatus.QUEUED,
                                                 {"last_error": "", "attempts": 0},
                                                 event={"reason": "replayed from the DLQ", "actor": actor},
                                                 then=("submit", 0))
        if result.moved:
            case = await services.store.get_case(dead_case)
            if case is not None:  # open again: back on the overdue watch
                await services.redis.zadd(keys.open_cases(keys.shard_of(dead_case)),
                                          {dead_case: deadline_score(case.deadline)})
                await services.redis.zadd(keys.caller_open_cases(case.caller), {dead_case: time.time()})
            replayed += 1
        await services.queue.forget_dead_letter(dead_case, matter)
    return replayed


async def cancel_case(services: Services, case_id: str, *, actor: str, reason: str) -> list[str]:
    """Cancel every task not yet settled; the case then settles as the engine settles it. Returns the matters
    cancelled (empty when there was nothing left to cancel)."""
    case = await services.store.get_case(case_id)
    if case is None:
        return []
    cancelled = []
    for task in await services.store.get_tasks(case_id, case.matters):
        if task.status in TERMINAL:
            continue
        result = await services.store.transition(case_id, task.matter, TaskStatus.CANCELLED, {},
                                                 event={"request_id": task.request_id, "reason": reason,
                                                        "actor": actor})
        if result.moved:
            cancelled.append(task.matter)
    if cancelled:
        await services.engine.after_terminal(case_id)
    return cancelled


async def resend_link(services: Services, case_id: str, matter: str, *, actor: str, reason: str) -> bool:
    """Send the applicant a fresh link for the H5 step their task waits on (SMS and webhook, on the audit chain with
    `actor` and `reason`), through the step reminder's own path. False when the task waits on no step."""
    return await services.engine.applicant_steps.resend(case_id, matter, actor=actor, reason=reason)
