"""Retention: finished cases older than GATEWAY_RETENTION_DAYS leave Redis, their audit chain exported first and
verifiable afterwards; open, failed or recent cases stay; a dry run changes nothing; a crash between the export and
the removal loses nothing; a retry of a removed case's Idempotency-Key gets 410, never a second case."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.bootstrap import audit_signer, pii_cipher
from gateway.orchestration.applicant_steps import STEP_TIMER
from gateway.security.audit import AuditChain
from gateway.store import keys, retention
from gateway.store.connection import connect
from gateway.store.queue import delayed_member
from tests.support.harness import RunningGateway, medical_case, start_gateway, sync_redis

GATEWAY = str(Path(sys.executable).parent / "gateway")
def window_case(sequence: int) -> dict[str, Any]:
    return medical_case("window", sequence)


def finished(gw: RunningGateway, sequence: int, key: str | None = None) -> str:
    response = gw.submit(window_case(sequence), key=key, assertion=None, window=True)
    assert response.status_code == 202, response.text
    case_id = str(response.json()["id"])
    gw.wait_terminal(case_id)
    client, deadline = gw.redis(), time.monotonic() + 15
    while any(client.xlen(keys.outbox_stream(s)) or client.xlen(keys.task_stream(s)) for s in keys.all_shards()) \
            and time.monotonic() < deadline:
        time.sleep(0.05)  # its events delivered: nothing moves in Redis any more
    return case_id


def age(gw: RunningGateway, case_id: str, days: float) -> None:
    """Date the case's last change `days` back (retention counts from its last task's last change)."""
    when = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    client = gw.redis()
    for matter in json.loads(client.hget(keys.case(case_id), "matters")):
        client.hset(keys.task(case_id, matter), "updated_at", when)


def case_keys_in_redis(gw: RunningGateway, case_id: str) -> set[str]:
    return {k for k in gw.redis().scan_iter(match=f"*{case_id}*")}


def gateway_command(gw: RunningGateway, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, GATEWAY_REDIS_URL=gw.redis_url, GATEWAY_VAR_DIR=str(gw.settings.var_dir), **env)
    return subprocess.run([GATEWAY, *args], env=full_env, capture_output=True, text=True, timeout=60)


def snapshot(gw: RunningGateway) -> dict[str, Any]:
    client = gw.redis()
    return {key: client.dump(key) for key in client.scan_iter() if not key.startswith(keys.WORKERS)}


@pytest.fixture
def gw(redis_url: str, tmp_path: Path) -> Any:
    # The gateway's own worker does not sweep here (retention off): each test sweeps when it means to.
    gateway = start_gateway(tmp_path, redis_url, mock_names=["medical"], retention_days=0)
    try:
        yield gateway
    finally:
        gateway.stop()


def test_a_sweep_exports_then_removes_only_finished_cases_older_than_the_retention(gw):
    old, recent, old_failed = finished(gw, 301, key="old-case-key"), finished(gw, 302), finished(gw, 303)
    age(gw, old, 31)
    age(gw, old_failed, 31)
    matter = "employee_medical_enrolment"
    gw.redis().hset(keys.task(old_failed, matter), "status", "failed")  # waits for ops: not finished
    request_id = gw.redis().hget(keys.task(old, matter), "request_id")
    assert gw.redis().exists(keys.request_index(request_id))
    lookup = gw.redis().hget(keys.case(old), "applicant_index")  # the console's look-up by ID number names it
    assert lookup and gw.redis().zscore(lookup, old) is not None
    # A reminder timer that outlived its step (the applicant paid early) leaves with its case.
    timers = {c: delayed_member(c, matter, STEP_TIMER) for c in (old, recent)}
    for case_id, member in timers.items():
        gw.redis().zadd(keys.delayed(keys.shard_of(case_id)), {member: time.time() + 86400})
    before = snapshot(gw)

    dry = gateway_command(gw, "retention", "sweep", "--dry-run", GATEWAY_RETENTION_DAYS="30")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == old and "1 due (dry run: nothing changed)" in dry.stdout
    assert snapshot(gw) == before
    export = gw.settings.var_dir / "audit-export" / f"{old}.json"
    assert not export.exists()

    swept = gateway_command(gw, "retention", "sweep", GATEWAY_RETENTION_DAYS="30")
    assert swept.returncode == 0, swept.stderr
    assert "removed 1, kept 0" in swept.stdout
    assert case_keys_in_redis(gw, old) == set() and not gw.redis().exists(keys.request_index(request_id))
    assert gw.redis().zscore(lookup, old) is None
    assert case_keys_in_redis(gw, recent) and case_keys_in_redis(gw, old_failed)
    delayed = [m for s in keys.all_shards() for m in gw.redis().zrange(keys.delayed(s), 0, -1)]
    assert timers[recent] in delayed and timers[old] not in delayed
    assert gw.case(recent)["id"] == recent

    verified = gateway_command(gw, "audit", "verify", "--file", str(export))
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
    exported = json.loads(export.read_text())
    assert exported["case_id"] == old and len(exported["entries"]) >= 3
    # The export is the evidence: one altered entry and it no longer verifies.
    exported["entries"][1] = json.dumps({**json.loads(exported["entries"][1]), "seq": 3})
    export.write_text(json.dumps(exported))
    assert gateway_command(gw, "audit", "verify", "--file", str(export)).returncode == 1

    # The same key and body once more: the case is gone, and no second case is created.
    again = gw.submit(window_case(301), key="old-case-key", assertion=None, window=True)
    assert again.status_code == 410 and again.json()["errors"][0]["code"] == "case.removed", again.text
    assert {k for k in gw.redis().scan_iter(match=keys.CASE_PATTERN)} == {keys.case(recent), keys.case(old_failed)}


def test_a_crash_between_export_and_removal_loses_nothing_and_the_next_sweep_finishes(gw, monkeypatch):
    case_id = finished(gw, 304)
    age(gw, case_id, 40)
    folder = gw.settings.var_dir / "exports"
    kept = case_keys_in_redis(gw, case_id)

    async def sweep() -> retention.SweepReport:
        redis = connect(gw.redis_url, gw.settings)
        try:
            chain = AuditChain(redis, audit_signer(gw.settings), pii_cipher(gw.settings).for_purpose("events"))
            return await retention.sweep(redis, chain, folder, 30 * 86400)
        finally:
            await redis.aclose()

    async def crash(*_: Any) -> int:
        raise ConnectionError("the process died here")

    monkeypatch.setattr(retention, "remove_case", crash)
    with pytest.raises(ConnectionError):
        asyncio.run(sweep())
    first_export = (folder / f"{case_id}.json").read_text()
    assert case_keys_in_redis(gw, case_id) == kept  # exported, nothing removed

    monkeypatch.undo()
    report = asyncio.run(sweep())
    assert report.removed == [case_id] and case_keys_in_redis(gw, case_id) == set()
    assert (folder / f"{case_id}.json").read_text() == first_export
    assert not list(folder.glob("*.partial"))
    assert asyncio.run(sweep()).due == []  # once removed, a sweep finds nothing more to do


def test_a_case_changed_after_its_export_is_kept_for_the_next_sweep(gw):
    case_id = finished(gw, 305)
    age(gw, case_id, 40)

    async def export_change_remove() -> int:
        redis = connect(gw.redis_url, gw.settings)
        try:
            chain = AuditChain(redis, audit_signer(gw.settings), pii_cipher(gw.settings).for_purpose("events"))
            case = await retention.finished_case(redis, case_id)
            assert case is not None
            exported = await chain.export(case_id, gw.settings.var_dir / "exports")
            assert exported is not None and exported.head
            await redis.hset(keys.case(case_id), "audit_head", "a later change")
            return await retention.remove_case(redis, case, exported.head)
        finally:
            await redis.aclose()

    assert asyncio.run(export_change_remove()) == 0
    assert gw.redis().exists(keys.case(case_id), keys.audit(case_id)) == 2


def test_the_worker_sweeps_on_its_own_one_worker_per_interval(redis_url, tmp_path):
    # A retention of about 0.1 s: the case leaves once finished, by the worker's own sweep.
    gw = start_gateway(tmp_path, redis_url, mock_names=["medical"], retention_days=1e-6,
                       retention_sweep_interval_s=1)
    try:
        case_id = finished(gw, 306)
        export = gw.settings.var_dir / "audit-export" / f"{case_id}.json"
        deadline = time.monotonic() + 30
        while gw.redis().exists(keys.case(case_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not gw.redis().exists(keys.case(case_id)) and export.exists()
        verified = gateway_command(gw, "audit", "verify", "--file", str(export))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        gw.stop()


def test_no_retention_keeps_every_case(gw):
    case_id = finished(gw, 307)
    age(gw, case_id, 400)
    off = gateway_command(gw, "retention", "sweep", GATEWAY_RETENTION_DAYS="0")
    assert off.returncode == 0 and "retention is off" in off.stderr
    assert gw.redis().exists(keys.case(case_id))


def test_of_two_workers_one_sweeps_and_neither_again_within_the_interval(redis_url, tmp_path):
    from gateway.bootstrap import build_services
    from gateway.settings import Settings
    from gateway.worker.runner import Worker
    from tests.support.harness import flush

    flush(redis_url)
    settings = Settings(redis_url=redis_url, var_dir=tmp_path / "var", retention_days=30,
                        retention_sweep_interval_s=3600)

    async def race() -> list[bool]:
        services = [await build_services(settings, redis_url, consumer=f"worker-{n}", api=False) for n in (1, 2)]
        workers = [Worker(s) for s in services]
        try:
            await asyncio.gather(*(w._maybe_sweep() for w in workers))
            started = [w.retention is not None for w in workers]
            sweeps = [w.retention for w in workers]
            for sweep in sweeps:
                if sweep is not None:
                    await sweep
            await asyncio.gather(*(w._maybe_sweep() for w in workers))  # the same interval: nobody again
            assert [w.retention for w in workers] == sweeps
            return started
        finally:
            for s in services:
                await s.close()

    assert sorted(asyncio.run(race())) == [False, True]
    holder = sync_redis(redis_url).get(keys.RETENTION_SWEEP)
    assert holder in ("worker-1", "worker-2")
