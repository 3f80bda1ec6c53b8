"""The operator's view: `gateway cases show CASE_ID` (one case's history, like a workflow's event history) and
`gateway status` (adapters, breakers, queues, outbox, workers), as rich tables.

Personal values never reach the screen whole: ID numbers and phones show their first and last four characters
(`4501**********1239`), names their first character.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from gateway.bootstrap import Services, audit_signer, pii_cipher
from gateway.domain.status import derive_case_status
from gateway.security.audit import AuditChain, OpenedEntry
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.cases import CaseRecord, CaseStore, TaskRecord
from gateway.store.connection import StrRedis
from gateway.store.queue import depths as queue_depths

_LONG_NUMBER = re.compile(r"[0-9][0-9Xx]{6,}")  # ID numbers, phones, account and card numbers in free text


def mask_number(value: str) -> str:
    keep = 4 if len(value) > 8 else 2
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_text(text: str) -> str:
    return _LONG_NUMBER.sub(lambda m: mask_number(m.group(0)), text)


def mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1) if name else ""


def console() -> Console:
    # Piped or captured output gets room for whole ids instead of the 80 columns rich assumes.
    return Console(width=None if sys.stdout.isatty() else 240)


def actor_of(event: dict[str, Any], adapters: dict[str, str]) -> str:
    """Who made the change: the platform caller (and clerk), a department (reply or callback), ops, the gateway."""
    if event.get("type") == "case.accepted":
        operator = event.get("operator")
        return f"caller {event.get('caller')}" + (f" / clerk {operator}" if operator else "")
    adapter = adapters.get(str(event.get("matter") or ""), "department")
    if event.get("callback_id"):
        return f"{adapter} callback"
    if "replayed" in str(event.get("reason") or ""):
        return "ops (dlq replay)"
    if event.get("native_status"):
        return f"{adapter} reply"
    return "gateway"


def timeline_table(case_id: str, entries: list[OpenedEntry], tasks: list[TaskRecord]) -> Table:
    adapters = {t.matter: t.adapter for t in tasks}
    table = Table(title=f"case {case_id}: history (audit chain)", show_lines=False)
    for column in ("seq", "time", "event", "matter", "status", "actor", "department request", "trace id"):
        table.add_column(column, no_wrap=True)  # ids are looked up and copied whole
    table.add_column("note", overflow="fold")
    for entry in entries:
        event = entry.event
        if event is None:
            table.add_row(str(entry.seq), "", "[red]does not open[/red]", "", "", "", "", entry.trace_id, "")
            continue
        notes = [f"{k}={event[k]}" for k in ("native_status", "reason") if event.get(k)]
        if event.get("type") == "case.documents":
            notes.append(f"documents={(event.get('documents') or {}).get('status')}")
        table.add_row(str(entry.seq), str(event.get("at", "")), str(event.get("type", "")),
                      str(event.get("matter") or ""), str(event.get("status") or ""), actor_of(event, adapters),
                      str(event.get("request_id") or ""), entry.trace_id or "-", mask_text("; ".join(notes)))
    return table


def tasks_table(tasks: list[TaskRecord]) -> Table:
    table = Table(title="tasks")
    for column in ("matter", "adapter", "status", "native", "department request", "attempts", "polls", "updated"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold")
    for task in tasks:
        table.add_row(task.matter, task.adapter, task.status.value, task.native_status or "", task.request_id,
                      str(task.attempts), str(task.polls), task.updated_at, mask_text(task.reason or ""))
    return table


def case_summary(case: CaseRecord, tasks: list[TaskRecord], intact: bool, entries: int) -> Table:
    applicant = case.applicant
    table = Table(show_header=False, box=None)
    rows = [("case", case.id), ("status", derive_case_status(t.status for t in tasks).value),
            ("profile / channel", f"{case.profile} / {case.channel}"),
            ("caller", case.caller + (f" (clerk {case.operator})" if case.operator else "")),
            ("created", case.created_at), ("deadline", case.deadline),
            ("applicant", f"{mask_name(str(applicant.get('name', '')))} "
                          f"{mask_number(str(applicant.get('id_number', '')))} "
                          f"{mask_number(str(applicant.get('phone', ''))) if applicant.get('phone') else ''}".strip()),
            ("documents", str(case.documents.get("status", "pending"))),
            ("certificates", ", ".join(str(c.get("type")) for c in case.certificates) or "-"),
            ("audit chain", f"{entries} entries, {'intact' if intact else 'BROKEN (gateway audit verify)'}")]
    for name, value in rows:
        table.add_row(f"[bold]{name}[/bold]", value)
    return table


async def show_case(settings: Settings, redis: StrRedis, case_id: str) -> bool:
    """Print the case; False when there is no such case."""
    cipher, signer = pii_cipher(settings), audit_signer(settings)
    store = CaseStore(redis, cipher, signer)
    case = await store.get_case(case_id)
    if case is None:
        return False
    tasks = await store.get_tasks(case_id, case.matters)
    chain = AuditChain(redis, signer, cipher.for_purpose("events"))
    entries, report = await chain.read(case_id), await chain.verify(case_id)
    out = console()
    out.print(case_summary(case, tasks, report.intact, report.entries))
    out.print(timeline_table(case_id, entries, tasks))
    out.print(tasks_table(tasks))
    return True


async def workers(redis: StrRedis) -> list[tuple[str, dict[str, Any]]]:
    found = []
    async for key in redis.scan_iter(match=keys.WORKERS + "*", count=200):
        raw = await redis.get(key)
        if raw:
            found.append((key.removeprefix(keys.WORKERS), json.loads(raw)))
    return sorted(found)


async def show_status(services: Services) -> int:
    """Print the gateway's state; the number of live workers."""
    from gateway.departments.registry import discover

    redis = services.redis
    found = discover()
    health = await services.adapters.health()
    adapters = Table(title="adapters")
    for column in ("adapter", "version", "protocol", "health", "breaker", "failures"):
        adapters.add_column(column)
    for name, adapter in sorted(services.adapters.adapters.items()):
        state, failures = await services.engine.breakers.state(name)
        version = found[name].version if name in found else adapter.version
        adapters.add_row(name, version, adapter.protocol,
                         "[green]up[/green]" if health.get(name) else "[red]down[/red]",
                         state if state == "closed" else f"[red]{state}[/red]", str(failures))

    queued = await queue_depths(redis)
    queues = Table(title=f"queues (summed over {keys.shard_count()} shards)")
    queues.add_column("queue")
    queues.add_column("depth", justify="right")
    now = time.time()
    for name, depth in (
            ("task stream (entries)", queued.tasks),
            ("task stream pending (in a worker's hands)", queued.tasks_pending),
            ("delayed (back-off, breaker, polls)", queued.delayed),
            ("dead-lettered tasks (gateway dlq list)", queued.dead_letters),
            ("outbox (events not yet delivered)", queued.outbox),
            ("outbox pending (in a dispatcher's hands)", queued.outbox_pending),
            ("outbox parked (gateway outbox replay)", queued.outbox_parked),
            ("open cases", queued.open_cases),
            ("overdue cases", queued.overdue_cases)):
        queues.add_row(name, str(depth))

    alive = await workers(redis)
    beats = Table(title="workers (heartbeats)")
    for column in ("worker", "host", "pid", "in hand", "last beat"):
        beats.add_column(column)
    for name, beat in alive:
        beats.add_row(name, str(beat.get("host", "")), str(beat.get("pid", "")),
                      f"{beat.get('in_hand', 0)}/{beat.get('concurrency', '?')}",
                      f"{max(0.0, now - float(beat.get('at', now))):.1f} s ago")
    out = console()
    for table in (adapters, queues, beats):
        out.print(table)
    if not alive:
        out.print("[red]no live worker: no heartbeat in the last "
                  f"{services.settings.redeliver_after_s:g} s[/red]")
    return len(alive)
