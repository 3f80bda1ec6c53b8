"""Cases and tasks in Redis: created atomically with their idempotency key, moved only by the state machine.

Every field derived from a person is sealed (gateway/security/pii.py) with associated data naming its case, task
and field, so a value copied elsewhere does not open; every event is sealed and chained onto the case's keyed audit
chain in the same atomic step as the change it records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from gateway.domain.status import TaskStatus, sources_of
from gateway.observability.tracing import current_trace_id, current_traceparent, tracing_enabled
from gateway.security.applicant_index import ApplicantIndex
from gateway.security.audit import AuditSigner
from gateway.security.pii import PiiCipher, is_sealed
from gateway.store import keys, pipelined, scripts
from gateway.store.connection import StrRedis
from gateway.store.pipelined import Script

# Fields sealed at rest: the applicant's data and everything a department answered about the person (e-license
# identifiers carry the ID number, department references and data carry account and person numbers, reasons and
# errors quote department replies).
CASE_SEALED = ("applicant", "agent", "sections", "authorization", "documents", "certificates", "attachments")
TASK_SEALED = ("reference", "data", "reason", "last_error")
_CHAIN_ATTEMPTS = 50


def case_field_associated(case_id: str, name: str) -> str:
    return f"{case_id}:{name}"


def task_field_associated(case_id: str, matter: str, name: str) -> str:
    return f"{case_id}:{matter}:{name}"


class ChainContention(RuntimeError):
    """The case's audit chain head moved on every attempt: too many writers on one case at once."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TaskRecord:
    case_id: str
    matter: str
    department: str
    adapter: str
    operation: str
    status: TaskStatus
    request_id: str
    prerequisite: list[str] = field(default_factory=list)
    deadline: str = ""
    native_status: str | None = None
    reason: str | None = None
    reference: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    polls: int = 0
    last_error: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def from_hash(cls, case_id: str, raw: dict[str, str], opened: dict[str, Any]) -> TaskRecord:
        """`opened`: the sealed fields (TASK_SEALED), already opened."""
        return cls(
            case_id=case_id,
            matter=raw["matter"],
            department=raw.get("department", ""),
            adapter=raw.get("adapter", ""),
            operation=raw.get("operation", ""),
            status=TaskStatus(raw["status"]),
            request_id=raw.get("request_id", ""),
            prerequisite=json.loads(raw.get("prerequisite", "[]")),
            deadline=raw.get("deadline", ""),
            native_status=raw.get("native_status") or None,
            reason=opened.get("reason") or None,
            reference=opened.get("reference") or None,
            links=json.loads(raw.get("links", "{}")),
            data=opened.get("data") or {},
            attempts=int(raw.get("attempts", 0)),
            polls=int(raw.get("polls", 0)),
            last_error=opened.get("last_error") or None,
            created_at=raw.get("created_at", ""),
            updated_at=raw.get("updated_at", ""),
        )

    def public(self) -> dict[str, Any]:
        return {
            "matter": self.matter,
            "department": self.department,
            "status": self.status.value,
            "native_status": self.native_status,
            "reason": self.reason,
            "reference": self.reference,
            "links": self.links,
            "deadline": self.deadline,
            "updated_at": self.updated_at,
        }


@dataclass
class CaseRecord:
    id: str
    caller: str
    profile: str
    channel: str
    delivery: str
    created_at: str
    deadline: str
    matters: list[str]
    applicant: dict[str, Any]
    agent: dict[str, Any] | None
    sections: dict[str, dict[str, Any]]
    warnings: list[dict[str, str]]
    certificates: list[dict[str, Any]]
    documents: dict[str, Any]
    statutory_deadline: str | None = None
    # The record of the applicant's consent (assertion jti, issuer, level, times): what allows e-license retrieval.
    authorization: dict[str, Any] | None = None
    operator: str | None = None  # the window clerk who took the case (X-Operator-Id), None online
    # Materials that came with the case (sealed at rest like the applicant) and those received at the counter.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    materials_received: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NewTask:
    matter: str
    department: str
    adapter: str
    operation: str
    request_id: str
    prerequisite: list[str]
    deadline: str
    ready: bool  # no prerequisite in this case: queued at once

    @property
    def initial_status(self) -> TaskStatus:
        return TaskStatus.QUEUED if self.ready else TaskStatus.PENDING


@dataclass(frozen=True)
class CreateResult:
    created: bool
    case_id: str | None  # the existing case when not created and the body matches
    conflict: bool = False  # the key was used for another body
    replicated: bool = True  # as many replicas as asked for hold it (always true when not asked to wait)


@dataclass(frozen=True)
class TransitionResult:
    moved: bool
    previous: TaskStatus | None
    repeated: bool = False  # the task was already in the target status: harmless
    missing: bool = False


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Enum):
        return str(value.value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class CaseStore:
    def __init__(self, redis: StrRedis, cipher: PiiCipher, audit: AuditSigner, wait_replicas: int = 0,
                 wait_timeout_ms: int = 1000) -> None:
        self.redis = redis
        self.cipher = cipher.for_purpose("pii")
        self.events = cipher.for_purpose("events")
        self.audit = audit
        self.applicant_index = ApplicantIndex(audit.key)
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._create = Script(scripts.CREATE_CASE)
        self._transition = redis.register_script(scripts.TRANSITION)
        self._append_event = redis.register_script(scripts.APPEND_EVENT)
        self._step_reminder = redis.register_script(scripts.STEP_REMINDER)

    async def create(self, *, caller: str, idempotency_key: str, request_hash: str, case_id: str,
                     case_fields: dict[str, Any], tasks: list[NewTask], deadline_ts: float,
                     ttl_s: int, first_messages: list[dict[str, str]],
                     nonce: str = "") -> CreateResult:
        """Store the case, its tasks and its first queue messages in one atomic step with the idempotency key, in
        one round trip (with the WAIT for replicas when asked for). The applicant assertion is spent before, in its
        own slot (gateway/orchestration/intake.py, CLAIM_ASSERTION).

        `case_id` must be in the shard of the idempotency record (keys.new_id_in_shard(keys.idempotency_shard(...))).
        `nonce` is the signed request's nonce, recorded on the audit chain with the caller, clerk and assertion.
        """
        shard = keys.idempotency_shard(caller, idempotency_key)
        if {keys.shard_of(case_id), *(keys.shard_of(t.request_id) for t in tasks)} != {shard}:
            raise ValueError(f"case {case_id} and its request ids must be chosen in shard {shard} of its "
                             "idempotency record (keys.new_id_in_shard): one step writes them all")
        sealed = dict(case_fields)
        traceparent = current_traceparent()
        if traceparent:  # the case's own trace: its delayed steps, callbacks and deliveries continue it
            sealed["traceparent"] = traceparent
            first_messages = [{**m, "traceparent": traceparent} for m in first_messages]
        for name in CASE_SEALED:
            sealed[name] = self.cipher.seal_json(case_fields.get(name), case_field_associated(case_id, name))
        created_at = str(case_fields["created_at"])
        task_payload = [
            {"fields": {"matter": t.matter, "department": t.department, "adapter": t.adapter,
                        "operation": t.operation, "request_id": t.request_id,
                        "prerequisite": _encode(t.prerequisite),
                        "status": t.initial_status.value,
                        "deadline": t.deadline, "created_at": created_at, "updated_at": created_at,
                        "links": "{}", "attempts": "0"}}
            for t in tasks
        ]
        task_keys: list[str] = []
        for t in tasks:
            task_keys += [keys.task(case_id, t.matter), keys.request_index(t.request_id)]
        authorization = case_fields.get("authorization") or {}
        event = self._event("case.accepted", case_id, None, {
            "matters": [t.matter for t in tasks], "caller": case_fields.get("caller"), "nonce": nonce,
            "operator": case_fields.get("operator"), "assertion_jti": authorization.get("jti"),
            "request_ids": {t.matter: t.request_id for t in tasks}})
        # A new case id has no chain yet: its first entry needs no read of the head.
        sealed_event, mac, entry = self.audit.entry(case_id, 1, "", event, self.events, current_trace_id())
        # The console's look-up by ID number: the case under the number's MAC in its shard, written with the case.
        id_number = str((case_fields.get("applicant") or {}).get("id_number") or "")
        index_keys = [keys.applicant_cases(shard, self.applicant_index.mac(id_number))] if id_number else []
        commands: list[tuple[Any, ...]] = [self._create.call(
            keys=[keys.idempotency(caller, idempotency_key), keys.case(case_id), keys.outbox_stream(shard),
                  keys.task_stream(shard), keys.open_cases(shard), keys.audit(case_id), *task_keys, *index_keys],
            args=[request_hash, case_id, ttl_s, json.dumps({k: _encode(v) for k, v in sealed.items()}),
                  deadline_ts, json.dumps(task_payload), json.dumps(first_messages),
                  1, "", sealed_event, entry, mac, time.time(), "1" if index_keys else ""])]
        if self.wait_replicas:  # WAIT counts the replicas holding this connection's writes: sent with the script
            commands.append(("WAIT", self.wait_replicas, self.wait_timeout_ms))
        (status, value), *acked = await pipelined.execute(self.redis, commands, [self._create])
        if status == "created":
            return CreateResult(created=True, case_id=case_id,
                                replicated=not acked or int(acked[0]) >= self.wait_replicas)
        stored_hash, _, existing_id = str(value).partition("|")
        if stored_hash != request_hash:
            return CreateResult(created=False, case_id=None, conflict=True)
        return CreateResult(created=False, case_id=existing_id, replicated=await self.replicated())

    async def replicated(self) -> bool:
        """Whether the replicas asked for hold everything written so far, an existing case included: a write after
        it (the fence) acknowledged by them proves it, since a replica applies the primary's writes in order."""
        if not self.wait_replicas:
            return True
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(keys.REPLICATION_FENCE)
            pipe.wait(self.wait_replicas, self.wait_timeout_ms)
            _, acked = await pipe.execute()
        return int(acked) >= self.wait_replicas

    async def get_case(self, case_id: str) -> CaseRecord | None:
        raw = await self.redis.hgetall(keys.case(case_id))
        if not raw:
            return None
        opened = {name: self._open(raw[name], case_field_associated(case_id, name))
                  for name in CASE_SEALED if raw.get(name)}
        return CaseRecord(
            id=raw["id"],
            caller=raw["caller"],
            profile=raw["profile"],
            channel=raw["channel"],
            delivery=raw["delivery"],
            created_at=raw["created_at"],
            deadline=raw["deadline"],
            statutory_deadline=raw.get("statutory_deadline") or None,
            matters=json.loads(raw["matters"]),
            applicant=opened.get("applicant") or {},
            agent=opened.get("agent"),
            sections=opened.get("sections") or {},
            authorization=opened.get("authorization"),
            attachments=opened.get("attachments") or [],
            materials_received=json.loads(raw.get("materials_received", "[]")),
            operator=raw.get("operator") or None,
            warnings=json.loads(raw.get("warnings", "[]")),
            certificates=opened.get("certificates") or [],
            documents=opened.get("documents") or {},
        )

    async def get_tasks(self, case_id: str, matters: list[str]) -> list[TaskRecord]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for matter in matters:
                pipe.hgetall(keys.task(case_id, matter))
            raws = await pipe.execute()
        return [self._task(case_id, raw) for raw in raws if raw]

    async def get_task(self, case_id: str, matter: str) -> TaskRecord | None:
        raw = await self.redis.hgetall(keys.task(case_id, matter))
        return self._task(case_id, raw) if raw else None

    def _task(self, case_id: str, raw: dict[str, str]) -> TaskRecord:
        matter = raw["matter"]
        opened = {name: self._open(raw[name], task_field_associated(case_id, matter, name))
                  for name in TASK_SEALED if raw.get(name)}
        return TaskRecord.from_hash(case_id, raw, opened)

    def _open(self, value: str, associated: str) -> Any:
        if is_sealed(value):
            return self.cipher.open_json(value, associated)
        # Written before this field was sealed: JSON for the structured fields, the text itself for the others.
        return json.loads(value) if value[:1] in ("{", "[") else value

    def _seal_task(self, case_id: str, matter: str, fields: dict[str, Any]) -> dict[str, str]:
        return {k: self.cipher.seal_json(v, task_field_associated(case_id, matter, k)) if k in TASK_SEALED
                else _encode(v) for k, v in fields.items()}

    async def _chained(self, case_id: str, event: dict[str, Any],
                       run: Callable[[list[Any]], Awaitable[Any]], stale: Callable[[Any], bool]) -> Any:
        """Run a chained script on the chain head read now; read it again while another change got there first."""
        for _ in range(_CHAIN_ATTEMPTS):
            seq_raw, head = await self.redis.hmget(keys.case(case_id), ["seq", "audit_head"])
            seq, previous = int(seq_raw or 0) + 1, head or ""
            sealed_event, mac, entry = self.audit.entry(case_id, seq, previous, event, self.events,
                                                        current_trace_id())
            result = await run([seq, previous, sealed_event, entry, mac])
            if not stale(result):
                return result
        raise ChainContention(f"case {case_id}: audit chain head kept moving")

    async def transition(self, case_id: str, matter: str, target: TaskStatus, fields: dict[str, Any] | None = None,
                         *, event: dict[str, Any] | None = None,
                         then: tuple[str, float] | None = None) -> TransitionResult:
        """Move a task if the state machine allows it from its current status, atomically with its event and, given
        `then` = (kind, delay in seconds), with the task's next queue message."""
        updates = self._seal_task(case_id, matter, {k: v for k, v in (fields or {}).items() if v is not None})
        updates["updated_at"] = now_iso()
        payload = {"matter": matter, "status": target.value, **(event or {})}
        recorded = self._event("task.status_changed", case_id, matter, payload)
        kind, delay_s = then or ("", 0.0)
        follow_up = json.dumps({"case_id": case_id, "matter": matter, "kind": kind}, sort_keys=True) if then else ""
        shard = keys.shard_of(case_id)

        async def run(chain: list[Any]) -> Any:
            return await self._transition(
                keys=[keys.task(case_id, matter), keys.case(case_id), keys.outbox_stream(shard), keys.audit(case_id),
                      keys.task_stream(shard), keys.delayed(shard)],
                args=[target.value, ",".join(s.value for s in sources_of(target)), json.dumps(updates), *chain,
                      follow_up, time.time() + delay_s if delay_s > 0 else 0])

        code, previous = await self._chained(case_id, recorded, run, lambda r: int(r[0]) == 3)
        code = int(code)
        return TransitionResult(moved=code == 1, previous=TaskStatus(previous) if previous else None,
                                repeated=code == 2, missing=code == -1)

    async def update_task(self, case_id: str, matter: str, fields: dict[str, Any]) -> None:
        await self.redis.hset(keys.task(case_id, matter), mapping=self._seal_task(case_id, matter, fields))

    async def increment_task(self, case_id: str, matter: str, name: str) -> int:
        return int(await self.redis.hincrby(keys.task(case_id, matter), name, 1))

    async def update_case(self, case_id: str, fields: dict[str, Any]) -> None:
        await self.redis.hset(keys.case(case_id), mapping={
            k: self.cipher.seal_json(v, case_field_associated(case_id, k)) if k in CASE_SEALED else _encode(v)
            for k, v in fields.items()})

    async def traceparent(self, case_id: str) -> str:
        """The trace the case was created in ("" when tracing is off: no read then)."""
        if not tracing_enabled():
            return ""
        return await self.redis.hget(keys.case(case_id), "traceparent") or ""

    async def locate_request(self, request_id: str) -> tuple[str, str] | None:
        raw = await self.redis.get(keys.request_index(request_id))
        if not raw:
            return None
        case_id, _, matter = raw.partition("|")
        return case_id, matter

    async def append_event(self, case_id: str, event_type: str, payload: dict[str, Any]) -> None:
        """An event that is not a task transition (certificate issued, documents retrieved)."""
        event = self._event(event_type, case_id, payload.get("matter"), payload)

        async def run(chain: list[Any]) -> Any:
            return await self._append_event(keys=[keys.case(case_id), keys.outbox_stream(keys.shard_of(case_id)),
                                                  keys.audit(case_id)],
                                            args=chain)

        await self._chained(case_id, event, run, lambda r: int(r) == 0)

    async def applicant_step(self, case_id: str, matter: str) -> tuple[str | None, int]:
        """The task's applicant-step plan (JSON as stored) and how many reminders of it were sent."""
        plan, reminded = await self.redis.hmget(keys.task(case_id, matter), ["applicant_step", "step_reminded"])
        return plan, int(reminded or 0)

    async def record_step_reminder(self, case_id: str, matter: str, waiting: TaskStatus, plan: str, reminded: int,
                                   number: int, links: dict[str, str], payload: dict[str, Any]) -> bool:
        """Send reminder `number` (its event, the fresh links on the task) if the task still waits on `plan` with
        `reminded` reminders counted: a timer fired twice, or for a task that moved on, sends nothing."""
        event = self._event("task.step_reminder", case_id, matter, payload)

        async def run(chain: list[Any]) -> Any:
            return await self._step_reminder(
                keys=[keys.task(case_id, matter), keys.case(case_id), keys.outbox_stream(keys.shard_of(case_id)),
                      keys.audit(case_id)],
                args=[waiting.value, plan, reminded, number, json.dumps(links, ensure_ascii=False), now_iso(),
                      *chain])

        return int(await self._chained(case_id, event, run, lambda r: int(r) == 3)) == 1

    @staticmethod
    def _event(event_type: str, case_id: str, matter: str | None, payload: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": uuid.uuid4().hex, "type": event_type, "case_id": case_id, "matter": matter,
                "at": now_iso(), **payload}
