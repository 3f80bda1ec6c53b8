"""Look-up by a person's ID number: a keyed hash in Redis, never the number; audited; bad numbers explained."""

from __future__ import annotations

import os
import re

import pytest

from gateway.bootstrap import audit_signer
from gateway.security.applicant_index import ApplicantIndex
from gateway.security.audit import AuditSigner
from gateway.security.pii import PiiCipher
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.cases import CaseStore
from gateway.store.connection import connect
from tests.console.support import OPERATOR, VIEWER, csrf_of, medical_case, sign_in, start_console_gateway
from tests.support.harness import id_number


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_console_gateway(tmp_path, redis_url)
    yield gateway
    gateway.stop()


def look_up(client, number: str, csrf: str | None = None):
    if csrf is None:
        csrf = csrf_of(client.get("/console/").text)
    return client.post("/console/lookup", data={"csrf": csrf, "id_number": number})


def listed_ids(page: str) -> list[str]:
    return re.findall(r'data-testid="listed-case"><td><a href="/console/cases/([0-9a-f]+)"', page)


def test_an_id_number_finds_that_persons_cases_and_only_theirs(gw):
    first = gw.submit(medical_case(sequence=123)).json()["id"]
    second = gw.submit(medical_case(sequence=123)).json()["id"]
    other = gw.submit(medical_case(sequence=125)).json()["id"]
    number = id_number("450103", "19900517", 123)
    client = sign_in(gw, VIEWER)  # reading: a viewer may look up
    answer = look_up(client, number)
    assert answer.status_code == 200
    assert listed_ids(answer.text) == [second, first]  # newest first
    assert other not in answer.text and number not in answer.text
    # Typed as a person would: spaces, full-width digits, a lower-case check character all find the same.
    typed = " ".join(number[i:i + 6] for i in range(0, 18, 6)).replace("1", "１").lower()
    assert listed_ids(look_up(client, typed).text) == [second, first]
    assert listed_ids(look_up(client, id_number("450103", "19900517", 127)).text) == []
    redis = gw.redis()
    index_macs = {k.rpartition(":")[2] for k in redis.scan_iter("gw:*:applicant-cases:*")}
    assert len(index_macs) == 2  # two people (each case indexed in its own shard)
    for key in redis.scan_iter("*"):  # the number is nowhere in Redis in clear, not even in a key name
        assert number not in key
        if redis.type(key) == "zset":
            assert not any(number in m for m in redis.zrange(key, 0, -1))


def test_a_look_up_is_on_each_listed_cases_audit_chain_without_the_number(gw):
    case_id = gw.submit(medical_case()).json()["id"]
    number = id_number("450103", "19900517", 123)
    client = sign_in(gw, OPERATOR)
    look_up(client, number)
    page = client.get(f"/console/cases/{case_id}").text
    assert "按证件号码查找" in page and f"console:{OPERATOR[0]}" in page and number not in page
    mac = ApplicantIndex(audit_signer(gw.settings).key).mac(number)
    assert gw.redis().zrange(keys.applicant_cases(keys.shard_of(case_id), mac), 0, -1) == [case_id]


def test_a_malformed_number_gets_a_clear_message_and_lists_nothing(gw):
    gw.submit(medical_case())
    number = id_number("450103", "19900517", 123)
    wrong_check = number[:17] + ("0" if number[17] != "0" else "1")
    client = sign_in(gw, VIEWER)
    for typed, message in ((wrong_check, "校验位不正确"), (number[:14], "应为18位"),
                           ("450103900517123", "15位身份证号码已停止使用"), ("李四", "证件号码格式不正确"),
                           ("", "应为18位")):
        answer = look_up(client, typed)
        assert answer.status_code == 422 and message in answer.text and listed_ids(answer.text) == [], typed


def test_a_look_up_needs_a_session_and_its_csrf_token(gw):
    client = sign_in(gw, VIEWER)
    assert look_up(client, id_number("450103", "19900517", 123), csrf="forged").status_code == 403
    client.cookies.clear()
    assert look_up(client, id_number("450103", "19900517", 123), csrf="").status_code == 403


def test_the_index_key_is_the_audit_keys_so_a_pii_key_rotation_keeps_look_ups(redis_url):
    """`gateway keys rotate` changes the PII keyring, never the audit key the index MAC is derived from."""
    audit = AuditSigner(os.urandom(32), "sha256")
    before = CaseStore(connect(redis_url, Settings()), PiiCipher({"2025a": os.urandom(32)}), audit)
    after = CaseStore(connect(redis_url, Settings()), PiiCipher({"2025a": os.urandom(32), "2026a": os.urandom(32)},
                                                    current="2026a"), audit)
    number = id_number("450103", "19900517", 123)
    assert before.applicant_index.mac(number) == after.applicant_index.mac(number)
    assert ApplicantIndex(os.urandom(32)).mac(number) != before.applicant_index.mac(number)
