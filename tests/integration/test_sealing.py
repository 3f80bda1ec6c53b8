"""Nothing personal in clear: after whole cases, no key of any type in Redis and no log line holds the applicant's
ID number, name or phone, or what departments answered about the person (references, account and person numbers,
e-license identifiers); the keyring rotates with every value staying readable; files under var/ are the owner's."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog

from gateway.bootstrap import audit_signer, pii_cipher
from gateway.orchestration.intake import request_id_in_shard
from gateway.security.audit import AuditSigner
from gateway.security.pii import PiiCipher
from gateway.security.secrets import stored_secret
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.cases import CaseStore, NewTask
from gateway.store.connection import connect
from gateway.store.embedded_redis import EmbeddedRedis
from tests.integration.test_case_flow import application
from tests.support.harness import RunningGateway, applicant, start_gateway, sync_redis

GATEWAY = str(Path(sys.executable).parent / "gateway")
GUANGXI = ["employee_pension_enrolment", "employee_medical_enrolment", "contribution_declaration"]
JIUJIANG = ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment",
            "housing_fund_account", "contribution_declaration"]


def every_value(client: redis.Redis) -> Iterator[tuple[str, str]]:
    """(key, text) for the key's name and everything stored under it, whatever the key's type."""
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        yield key, key
        if kind == "string":
            yield key, client.get(key) or ""
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                yield key, f"{field}={value}"
        elif kind == "list":
            yield from ((key, item) for item in client.lrange(key, 0, -1))
        elif kind == "set":
            yield from ((key, item) for item in client.smembers(key))
        elif kind == "zset":
            yield from ((key, item) for item in client.zrange(key, 0, -1))
        elif kind == "stream":
            for _, fields in client.xrange(key):
                yield key, json.dumps(fields, ensure_ascii=False)
        else:
            raise AssertionError(f"{key}: a key type this scan does not read: {kind}")


def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def personal_values(gw: RunningGateway, case_id: str, person: dict[str, Any]) -> set[str]:
    """What the departments told the gateway about the person, read through the gateway's own keys."""
    async def read() -> set[str]:
        store = CaseStore(connect(gw.redis_url, gw.settings), pii_cipher(gw.settings), audit_signer(gw.settings))
        try:
            case = await store.get_case(case_id)
            assert case is not None
            found = {lic["identifier"] for lic in case.documents.get("licenses", [])}
            found |= {str(c["identifier"]) for c in case.certificates if c.get("identifier")}
            for task in await store.get_tasks(case_id, case.matters):
                found |= set(leaves(task.data)) | ({task.reference} if task.reference else set())
            return found
        finally:
            await store.redis.aclose()

    # Account, person and reference numbers, identifiers and links: long and with digits; not dates nor status words.
    answered = {v for v in asyncio.run(read()) if len(v) >= 8 and any(c.isdigit() for c in v)
                and not re.match(r"\d{4}-\d{2}-\d{2}", v)}
    return answered | {person["id_number"], person["name"], person["phone"]}


def assert_nothing_in_clear(gw: RunningGateway, secrets: set[str], logs: str) -> None:
    client = gw.redis()
    try:
        leaks = [(key, s) for key, text in every_value(client) for s in secrets if s in text]
    finally:
        client.close()
    assert not leaks, leaks[:5]
    assert not [s for s in secrets if s in logs], [s for s in secrets if s in logs]


def run_case(gw: RunningGateway, profile: str, matters: list[str], person: dict[str, Any]) -> str:
    response = gw.submit(application(gw, profile, matters, person))
    assert response.status_code == 202, response.text
    case_id = response.json()["id"]
    case = gw.wait_terminal(case_id, timeout=60)
    assert {t["status"] for t in case["tasks"]} == {"completed"}, case["tasks"]
    return case_id


def capture_logs(caplog: Any) -> io.StringIO:
    """Every structlog line (JSON) and every standard-library record of the gateway, into one buffer."""
    buffer = io.StringIO()
    structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer(
        ensure_ascii=False)], logger_factory=structlog.PrintLoggerFactory(buffer), cache_logger_on_first_use=False)
    caplog.set_level(logging.INFO)
    for chatty in ("httpx", "httpcore", "zeep"):  # as configure_logging sets them
        caplog.set_level(logging.WARNING, logger=chatty)
    return buffer


def test_whole_guangxi_and_jiujiang_cases_leave_nothing_personal_in_redis_or_the_logs(redis_url, tmp_path, caplog):
    logs = capture_logs(caplog)
    gw = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    stopped = False
    try:
        guangxi = applicant(sequence=211)
        guangxi_case = run_case(gw, "guangxi", GUANGXI, guangxi)
        secrets = personal_values(gw, guangxi_case, guangxi)
        jiujiang = applicant(division="360402", birth="19880202", sequence=213)
        jiujiang_case = run_case(gw, "jiujiang", JIUJIANG, jiujiang)
        gw.wait(jiujiang_case, lambda c: bool(c["certificates"]), timeout=60)
        jiujiang_secrets = personal_values(gw, jiujiang_case, jiujiang)
        # The values checked include what the departments answered: references and the housing-fund account.
        assert len(jiujiang_secrets) > 5 and len(secrets) > 4, (secrets, jiujiang_secrets)
        gw.stop()
        stopped = True
        log_text = logs.getvalue() + "\n".join(r.getMessage() for r in caplog.records)
        assert_nothing_in_clear(gw, secrets | jiujiang_secrets, log_text)
    finally:
        structlog.reset_defaults()
        if not stopped:
            gw.stop()


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_rotation_reseals_every_value_under_the_new_key_and_the_chain_stays_intact(redis_url, tmp_path):
    key_a, key_b = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    audit = AuditSigner(os.urandom(32), "sha256")
    client = sync_redis(redis_url)
    client.flushdb()
    case_id = keys.new_id_in_shard(keys.idempotency_shard("p", "k"))
    person = applicant(sequence=215)

    async def seal_under_a() -> None:
        store = CaseStore(connect(redis_url, Settings()), PiiCipher({"a": base64.b64decode(key_a)}), audit)
        try:
            await store.create(caller="p", idempotency_key="k", request_hash="h", case_id=case_id, case_fields={
                "id": case_id, "caller": "p", "profile": "jiujiang", "channel": "online", "delivery": "online",
                "created_at": "2026-01-01T00:00:00Z", "deadline": "2026-02-01", "matters": ["housing_fund_account"],
                "applicant": person, "agent": None, "sections": {}, "authorization": {"jti": "j"},
                "warnings": [], "certificates": [],
                "documents": {"licenses": [{"identifier": "X" + person["id_number"]}]},
            }, tasks=[NewTask("housing_fund_account", "housing_fund", "housing_fund", "open_account",
                              request_id_in_shard(keys.shard_of(case_id)), [],
                              "2026-02-01", True)], deadline_ts=0, ttl_s=60, first_messages=[])
            await store.update_task(case_id, "housing_fund_account", {"data": {"account_no": "GJJ0099887766"},
                                                                      "reference": "HF-REF-778899"})
            await store.append_event(case_id, "case.documents", {"reason": "quoted " + person["name"]})
        finally:
            await store.redis.aclose()

    asyncio.run(seal_under_a())
    sealed_under_a = [text for _, text in every_value(client) if "v2:a:" in text]
    assert len(sealed_under_a) >= 8  # case fields, task fields, audit entries, outbox events
    # Delivered and gone, as the outbox does within seconds.
    client.delete(*(keys.outbox_stream(shard) for shard in keys.all_shards()))

    env = dict(os.environ, GATEWAY_REDIS_URL=redis_url, GATEWAY_PII_KEYS=json.dumps({"a": key_a, "b": key_b}),
               GATEWAY_PII_KEY_ID="b", GATEWAY_AUDIT_KEY=base64.b64encode(audit.key).decode(),
               GATEWAY_VAR_DIR=str(tmp_path / "var"))
    rotated = subprocess.run([GATEWAY, "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    # 7 case fields (applicant, agent, sections, authorization, documents, certificates, attachments), the task's
    # data and reference, 2 audit entries
    assert "key b: re-sealed 11," in rotated.stdout and "already current 0" in rotated.stdout, rotated.stdout
    assert not [text for _, text in every_value(client) if "v2:a:" in text]
    again = subprocess.run([GATEWAY, "keys", "rotate"], env=env, capture_output=True, text=True, timeout=60)
    assert "re-sealed 0" in again.stdout  # idempotent: a second run has nothing left

    async def read_with_b_only() -> tuple[Any, Any]:
        store = CaseStore(connect(redis_url, Settings()), PiiCipher({"b": base64.b64decode(key_b)}), audit)
        try:
            return (await store.get_case(case_id), await store.get_task(case_id, "housing_fund_account"))
        finally:
            await store.redis.aclose()

    case, task = asyncio.run(read_with_b_only())
    assert case.applicant == person and case.documents["licenses"][0]["identifier"] == "X" + person["id_number"]
    assert task.data == {"account_no": "GJJ0099887766"} and task.reference == "HF-REF-778899"
    env_b_only = dict(env, GATEWAY_PII_KEYS=json.dumps({"b": key_b}))
    verified = subprocess.run([GATEWAY, "audit", "verify", case_id], env=env_b_only, capture_output=True, text=True,
                              timeout=60)
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
    client.close()


def test_values_sealed_before_key_ids_stay_readable_and_ciphers_use_their_own_subkeys():
    key = os.urandom(32)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    legacy = "aes-gcm:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, b'"old"', b"c:applicant")).decode()
    ring = PiiCipher({"old": key, "new": os.urandom(32)}, current="new")
    assert ring.open_json(legacy, "c:applicant") == "old"
    aes, sm4 = PiiCipher(key, "aes-gcm"), PiiCipher(key, "sm4-gcm")
    assert aes._subkey("k0", "aes-gcm")[:16] != sm4._subkey("k0", "sm4-gcm")
    assert aes._subkey("k0", "aes-gcm") != aes.for_purpose("events")._subkey("k0", "aes-gcm")
    sealed = sm4.seal_json({"a": 1}, "x")
    assert sealed.startswith("v2:k0:sm4-gcm:") and aes.open_json(sealed, "x") == {"a": 1}


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_under_var_that_hold_data_or_secrets_are_the_owners_alone(tmp_path):
    var = tmp_path / "var"
    stored_secret(var, "pii.key", 32)
    pii_cipher(Settings(var_dir=var))
    audit_signer(Settings(var_dir=var))
    assert mode(var / "secrets") == 0o700
    assert {p.name: mode(p) for p in (var / "secrets").iterdir()} == {"pii.key": 0o600, "audit.key": 0o600}
    server = EmbeddedRedis(var / "redis")
    server.start()
    try:
        client = redis.Redis(unix_socket_path=str(server.socket_path))
        client.set("k", "v")
        client.execute_command("BGREWRITEAOF")
        client.close()
    finally:
        server.stop()
    assert mode(var / "redis") == 0o700
    files = [p for p in (var / "redis").rglob("*") if p.is_file()]
    assert any("appendonly" in p.name for p in files)
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
