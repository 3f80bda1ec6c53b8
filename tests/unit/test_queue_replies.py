"""XAUTOCLAIM replies: Redis 6.2 (embedded) answers [next, entries] and lists deleted entries as nil;
Redis 7 answers [next, entries, deleted]. Both must give the same messages."""

from gateway.store.queue import parse_autoclaim

ENTRY = ["1-0", ["case_id", "c1", "matter", "employee_medical_enrolment", "kind", "submit"]]


def test_redis_6_reply_with_a_deleted_entry():
    messages = parse_autoclaim(["0-0", [ENTRY, ["2-0", None]]])
    assert [(m.message_id, m.case_id, m.matter, m.kind) for m in messages] == [
        ("1-0", "c1", "employee_medical_enrolment", "submit")]


def test_redis_7_reply_with_its_deleted_list():
    messages = parse_autoclaim(["0-0", [ENTRY], ["2-0"]])
    assert [m.message_id for m in messages] == ["1-0"]


def test_an_empty_claim():
    assert parse_autoclaim(["0-0", []]) == [] == parse_autoclaim(["0-0", [], []])
