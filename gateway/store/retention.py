"""Retention: finished cases leave Redis once they are old enough, their audit chain exported first.

A case is finished when every task is terminal and none failed (a failed task waits for ops); its age counts from
its last task's last change. The sweep exports the chain (gateway/security/audit.py: a whole file or none), then
removes every key of the case in one script that checks the chain head is still the exported one. A crash between
the two leaves the case in Redis with an export; the next sweep exports the same chain again over it and removes the
case: nothing is lost and nothing is removed twice. The idempotency key is not removed: it expires on its own TTL
(GATEWAY_IDEMPOTENCY_TTL_S), and until then a retry with the same key and body is answered 410 case.removed, never
a second case.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog

from gateway.domain.status import TERMINAL, TaskStatus
from gateway.orchestration.applicant_steps import STEP_TIMER
from gateway.security.audit import AuditChain
from gateway.store import keys, scripts
from gateway.store.connection import StrRedis
from gateway.store.queue import delayed_member

log = structlog.get_logger("gateway.retention")
# A failed task waits for ops (gateway dlq replay): its case is not finished and stays.
SETTLED = TERMINAL - {TaskStatus.FAILED}


@dataclass(frozen=True)
class FinishedCase:
    case_id: str
    caller: str
    matters: list[str]
    request_ids: list[str]
    finished_at: float  # unix seconds: the last change of its last task
    applicant_index: str = ""  # the console's look-up entry (by the ID number's MAC) naming this case, if any


@dataclass
class SweepReport:
    examined: int = 0
    due: list[str] = field(default_factory=list)  # finished and old enough (all that a dry run reports)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # changed after its export: left for the next sweep


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0


async def finished_case(redis: StrRedis, case_id: str) -> FinishedCase | None:
    """The case when every one of its tasks is settled, else None."""
    caller, matters_raw, applicant_index = await redis.hmget(keys.case(case_id),
                                                             ["caller", "matters", "applicant_index"])
    if matters_raw is None:
        return None
    matters = json.loads(matters_raw)
    async with redis.pipeline(transaction=False) as pipe:
        for matter in matters:
            pipe.hmget(keys.task(case_id, matter), ["status", "updated_at", "request_id"])
        rows = await pipe.execute()
    if any(status is None or TaskStatus(status) not in SETTLED for status, _, _ in rows):
        return None
    return FinishedCase(case_id, caller or "", matters, [r for _, _, r in rows if r],
                        max((_timestamp(updated) for _, updated, _ in rows), default=0.0), applicant_index or "")


def case_keys(case: FinishedCase) -> list[str]:
    """Every key a case leaves behind besides its hash and audit chain (the others expire on their own)."""
    found = [keys.certificate_lock(case.case_id)]
    for matter in case.matters:
        found += [keys.task(case.case_id, matter), keys.task_links(case.case_id, matter)]
    return found + [keys.request_index(request_id) for request_id in case.request_ids]


async def remove_case(redis: StrRedis, case: FinishedCase, exported_head: str) -> int:
    """1 removed, 0 its chain moved on since the export (kept), -1 already gone."""
    remove = redis.register_script(scripts.REMOVE_CASE)
    timers = [delayed_member(case.case_id, matter, STEP_TIMER) for matter in case.matters]
    shard = keys.shard_of(case.case_id)
    removed = int(await remove(
        keys=[keys.case(case.case_id), keys.audit(case.case_id), keys.open_cases(shard), keys.delayed(shard),
              *([case.applicant_index] if case.applicant_index else []), *case_keys(case)],
        args=[exported_head, case.case_id, "1" if case.applicant_index else "", *timers]))
    if removed == 1:  # normally left when the case finished; its own slot, so its own step
        await redis.zrem(keys.caller_open_cases(case.caller), case.case_id)
    return removed


async def sweep(redis: StrRedis, chain: AuditChain, export_dir: Path, older_than_s: float, *,
                dry_run: bool = False, limit: int = 1000) -> SweepReport:
    """Export and remove up to `limit` finished cases whose last change is older than `older_than_s`."""
    report = SweepReport()
    cutoff = time.time() - older_than_s
    async for key in redis.scan_iter(match=keys.CASE_PATTERN, count=500, _type="HASH"):
        case_id = await redis.hget(key, "id")
        if case_id is None:
            continue
        report.examined += 1
        case = await finished_case(redis, case_id)
        if case is None or case.finished_at > cutoff:
            continue
        report.due.append(case_id)
        if not dry_run:
            exported = await chain.export(case_id, export_dir)
            head = exported.head if exported else None
            if head is None:  # a case without a chain head was never written by this gateway: left to ops
                log.warning("finished case without an audit chain kept", case_id=case_id)
                report.kept.append(case_id)
            elif await remove_case(redis, case, head) == 0:
                report.kept.append(case_id)
            else:
                report.removed.append(case_id)
        if len(report.due) >= limit:
            break
    if report.removed:
        log.info("retention sweep", removed=len(report.removed), kept=len(report.kept), examined=report.examined)
    return report
