"""The trust boundary per caller: channel and kind, the window clerk, rights, rate, open-case quota, own webhook,
and bounded input. Every refusal also shows that nothing was stored (case, idempotency key, task or outbox stream).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.client import GatewayClient, signed_headers
from gateway.security.signing import sign_caller_request
from gateway.store import keys
from tests.support.harness import (
    OPERATOR,
    PLATFORM,
    WINDOW,
    Recorder,
    RunningGateway,
    applicant,
    start_gateway,
)

LIMITED = ("limited-platform", "limited-secret")  # 1 request/s, burst 5
NEIGHBOUR = ("neighbour-platform", "neighbour-secret")  # no limit: must not feel the limited caller
GUANGXI_MEDICAL = ("gx-medical-window", "gx-medical-secret")  # only Guangxi employee medical enrolment
QUOTA = ("quota-window", "quota-secret")  # at most one open case
OWN_HOOK = ("own-hook-window", "own-hook-secret")  # its events go to its own webhook, signed with its own secret
OWN_HOOK_SECRET = "own-hook-webhook-secret"
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


@pytest.fixture(scope="module")
def own_hook() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.server.stop()


@pytest.fixture(scope="module")
def gw(embedded_redis, tmp_path_factory, own_hook) -> Iterator[RunningGateway]:
    folder = tmp_path_factory.mktemp("callers")
    callers = folder / "all-callers.json"
    callers.write_text(json.dumps([
        {"app_id": PLATFORM[0], "secret": PLATFORM[1]},
        {"app_id": WINDOW[0], "secret": WINDOW[1], "kind": "window"},
        {"app_id": LIMITED[0], "secret": LIMITED[1], "rate_limit": {"per_second": 1, "burst": 5}},
        {"app_id": NEIGHBOUR[0], "secret": NEIGHBOUR[1]},
        {"app_id": GUANGXI_MEDICAL[0], "secret": GUANGXI_MEDICAL[1], "kind": "window", "profiles": ["guangxi"],
         "matters": ["employee_medical_enrolment"]},
        {"app_id": QUOTA[0], "secret": QUOTA[1], "kind": "window", "max_open_cases": 1},
        {"app_id": OWN_HOOK[0], "secret": OWN_HOOK[1], "kind": "window", "webhook_url": own_hook.url,
         "webhook_secret": OWN_HOOK_SECRET},
    ]))
    gateway = start_gateway(folder, embedded_redis.url, callers_file=callers)
    yield gateway
    gateway.stop()


def window_case(sequence: int = 123, **overrides: Any) -> dict[str, Any]:
    body = {"profile": "guangxi", "channel": "window", "applicant": applicant(sequence=sequence),
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION},
            "delivery": "window"}
    return body | overrides


def client(gw: RunningGateway, caller: tuple[str, str], operator: str | None = OPERATOR) -> GatewayClient:
    return GatewayClient(gw.base_url, *caller, operator_id=operator)


def codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def stored(gw: RunningGateway) -> dict[str, Any]:
    """What a refused request must not have changed: cases, idempotency keys, and no stream entry for a case
    other than those (earlier cases still move while a test runs, so their entries may come and go)."""
    r = gw.redis()
    cases = sorted(r.scan_iter("gw:{*}:c:*:case"))
    known = {key.partition(":c:")[2].removesuffix(":case") for key in cases}
    strangers = [(stream, fields["case_id"]) for shard in keys.all_shards()
                 for stream in (keys.task_stream(shard), keys.outbox_stream(shard)) if r.exists(stream)
                 for _, fields in r.xrange(stream) if fields.get("case_id") and fields["case_id"] not in known]
    return {"cases": cases, "idempotency": sorted(r.scan_iter("gw:{*}:idem:*")), "stream entries of no case": strangers}


def test_a_platform_caller_may_not_submit_a_window_case(gw):
    before = stored(gw)
    body = window_case()
    response = gw.submit(body)  # the platform client, even with a valid assertion
    assert response.status_code == 403 and codes(response) == ["caller.channel.forbidden"]
    assert stored(gw) == before


def test_a_window_caller_must_name_its_clerk_and_sign_the_name(gw):
    before = stored(gw)
    raw = json.dumps(window_case(sequence=125)).encode()

    def post(headers: dict[str, str]) -> httpx.Response:
        return httpx.post(gw.base_url + "/v1/cases", content=raw, headers={
            "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json", **headers})

    missing = post(signed_headers(*WINDOW, "POST", "/v1/cases", raw))
    assert missing.status_code == 401 and codes(missing) == ["auth.operator_missing"]
    unsigned = signed_headers(*WINDOW, "POST", "/v1/cases", raw) | {"X-Operator-Id": OPERATOR}
    assert codes(post(unsigned)) == ["auth.signature_invalid"]
    swapped = signed_headers(*WINDOW, "POST", "/v1/cases", raw, operator_id=OPERATOR) | {"X-Operator-Id": "clerk-9"}
    assert codes(post(swapped)) == ["auth.signature_invalid"]
    non_ascii = signed_headers(*WINDOW, "POST", "/v1/cases", raw, operator_id=OPERATOR)
    response = httpx.post(gw.base_url + "/v1/cases", content=raw, headers={
        **non_ascii, "Idempotency-Key": uuid.uuid4().hex, "X-Operator-Id": "柜员".encode()})
    assert response.status_code == 401 and codes(response) == ["auth.header_invalid"]
    assert stored(gw) == before


def test_a_window_case_records_its_clerk_in_the_case_and_its_accepted_event(gw):
    response = gw.submit(window_case(sequence=127), assertion=False, window=True)
    assert response.status_code == 202, response.text
    case_id = response.json()["id"]
    assert response.json()["operator"] == OPERATOR
    assert gw.window_client.get_case(case_id).json()["operator"] == OPERATOR
    online = gw.submit(window_case(sequence=143, channel="online", delivery="online"))
    assert online.status_code == 202 and online.json()["operator"] is None, online.text
    events = gw.wait_events(lambda es: any(e["case_id"] == case_id and e["type"] == "case.accepted" for e in es))
    accepted = next(e for e in events if e["case_id"] == case_id and e["type"] == "case.accepted")
    assert accepted["operator"] == OPERATOR


def test_a_caller_outside_its_profiles_or_matters_is_403_and_nothing_is_stored(gw):
    restricted = client(gw, GUANGXI_MEDICAL)
    before = stored(gw)
    jiujiang = window_case(profile="jiujiang")
    response = restricted.submit_case(jiujiang)
    assert response.status_code == 403 and codes(response) == ["caller.profile.forbidden"]
    two = window_case(matters=["employee_medical_enrolment", "employee_pension_enrolment"])
    response = restricted.submit_case(two)
    assert response.status_code == 403 and codes(response) == ["caller.matter.forbidden"]
    assert response.json()["errors"][0]["field"] == "matters.1"
    assert stored(gw) == before
    allowed = restricted.submit_case(window_case(sequence=129))
    assert allowed.status_code == 202, allowed.text


def median_latency(caller: GatewayClient, n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        assert caller.profiles().status_code == 200
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_a_caller_over_its_rate_is_429_with_retry_after_and_another_caller_is_unaffected(gw):
    limited, neighbour = client(gw, LIMITED, None), client(gw, NEIGHBOUR, None)
    baseline = median_latency(neighbour, 15)
    answers = [limited.profiles() for _ in range(8)]
    statuses = [a.status_code for a in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:], statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert codes(refused) == ["caller.rate_limited"] and int(refused.headers["Retry-After"]) >= 1
    before = stored(gw)
    assert limited.submit_case(window_case(sequence=131, channel="online")).status_code == 429
    assert stored(gw) == before

    hammering = threading.Event()
    refusals = []

    def hammer() -> None:
        with GatewayClient(gw.base_url, *LIMITED) as own:
            while not hammering.is_set():
                refusals.append(own.profiles().status_code)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while 429 not in refusals:  # measure while the limited caller is actually being refused
            assert time.monotonic() < deadline, refusals
            time.sleep(0.01)
        during = median_latency(neighbour, 15)
    finally:
        hammering.set()
        thread.join()
    print(f"\nneighbour's median latency: {baseline * 1000:.1f} ms alone, {during * 1000:.1f} ms while the "
          f"limited caller was refused {refusals.count(429)} times")
    assert refusals.count(429) > 0
    assert during < 10 * baseline + 0.25  # same order of magnitude: a loose bound for a shared 2-core machine


def test_a_caller_at_its_open_case_maximum_is_refused_until_a_case_finishes(gw):
    quota = client(gw, QUOTA)
    gw.faults("medical", latency_ms=900)  # the first case stays open a while (under the adapter's 1 s timeout)
    try:
        first_body, first_key = window_case(sequence=133), uuid.uuid4().hex
        first = quota.submit_case(first_body, idempotency_key=first_key)
        assert first.status_code == 202, first.text
        before = stored(gw)
        second = quota.submit_case(window_case(sequence=135))
        assert second.status_code == 429 and codes(second) == ["caller.quota.open_cases"]
        assert stored(gw) == before
        again = quota.submit_case(first_body, idempotency_key=first_key)  # a retry still answers its case
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    finally:
        gw.faults("medical", latency_ms=0)
    deadline = time.monotonic() + 30
    while gw.redis().zcard(f"gw:caller-open:{QUOTA[0]}"):  # left when the engine finished the case
        assert time.monotonic() < deadline, quota.get_case(first.json()["id"]).json()
        time.sleep(0.05)
    assert quota.get_case(first.json()["id"]).json()["tasks"][0]["status"] == "completed"
    assert quota.submit_case(window_case(sequence=137)).status_code == 202


def test_a_callers_own_webhook_gets_its_cases_events_and_no_one_elses(gw, own_hook):
    mine = client(gw, OWN_HOOK).submit_case(window_case(sequence=139)).json()["id"]
    theirs = gw.submit(window_case(sequence=141), assertion=False, window=True).json()["id"]
    gw.wait_events(lambda es: any(e["case_id"] == theirs and e.get("status") == "completed" for e in es))
    deadline = time.monotonic() + 15
    while not any(e["case_id"] == mine and e.get("status") == "completed" for e in own_hook.events):
        assert time.monotonic() < deadline, own_hook.events
        time.sleep(0.05)
    assert {e["case_id"] for e in own_hook.events} == {mine}
    assert mine not in {e["case_id"] for e in gw.webhook.events}
    for event, headers in zip(own_hook.events, own_hook.headers, strict=True):
        body = json.dumps(event, ensure_ascii=False).encode()
        expected = hmac.new(OWN_HOOK_SECRET.encode(), headers["x-gateway-timestamp"].encode() + b"\n" + body,
                            hashlib.sha256).hexdigest()
        assert headers["x-gateway-signature"] == expected


def raw_exchange(gw: RunningGateway, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request head and some of a body, never the rest; the answer must come without it."""
    host, port = gw.settings.api_host, gw.settings.api_port
    with socket.create_connection((host, port), timeout=20) as conn:
        conn.sendall(head)
        for chunk in chunks:
            conn.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            data = conn.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_body_declared_over_the_limit_is_413_before_it_is_read(gw):
    before = stored(gw)
    headers = signed_headers(*PLATFORM, "POST", "/v1/cases", b"whatever")
    head = ("POST /v1/cases HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    started = time.perf_counter()
    answer = raw_exchange(gw, head, [b'{"profile": "' + b"x" * 1024])
    print(f"\n413 for a declared 50 MB body after {(time.perf_counter() - started) * 1000:.1f} ms")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"body.too_large" in answer
    assert stored(gw) == before


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_once_over(gw):
    before = stored(gw)
    headers = signed_headers(*PLATFORM, "POST", "/v1/cases", b"whatever")
    head = ("POST /v1/cases HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    chunk = b"x" * 32768
    over = gw.settings.max_case_body_bytes // len(chunk) + 2
    answer = raw_exchange(gw, head, [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * over)  # no final 0-chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert stored(gw) == before


def test_twenty_thousand_unknown_codes_are_answered_fast_with_at_most_100_errors(gw):
    before = stored(gw)
    as_list = window_case(matters=[f"m{i}" for i in range(20_000)])
    started = time.perf_counter()
    response = client(gw, WINDOW).submit_case(as_list)
    listed = time.perf_counter() - started
    assert response.status_code == 422 and codes(response) == ["body.list_too_long"]
    assert response.json()["errors"][0]["field"] == "matters"
    as_object = window_case(sections={f"x{i}": 0 for i in range(20_000)})
    assert codes(client(gw, WINDOW).submit_case(as_object)) == ["body.object_too_large"]
    # Within the caps, through the validator: 1,000 unknown matters and 1,000 unknown sections.
    as_sections = window_case(matters=[f"m{i}" for i in range(1000)], sections={f"x{i}": 0 for i in range(1000)})
    started = time.perf_counter()
    response = client(gw, WINDOW).submit_case(as_sections)
    validated = time.perf_counter() - started
    print(f"\n20,000 unknown codes: {listed * 1000:.0f} ms as a list; 2,000 through the validator: "
          f"{validated * 1000:.0f} ms, {len(response.content)} bytes answered")
    assert response.status_code == 422 and 0 < len(response.json()["errors"]) <= 100
    assert len(response.content) < 64 * 1024
    assert validated < 5  # a sanity bound only
    assert stored(gw) == before


def test_nesting_deeper_than_the_cap_is_422_whatever_the_depth(gw):
    before = stored(gw)
    for depth in (40, 50_000):  # over the cap; and beyond what the JSON parser itself would recurse into
        raw = b"[" * depth + b"]" * depth
        headers = signed_headers(*WINDOW, "POST", "/v1/cases", raw, operator_id=OPERATOR)
        response = httpx.post(gw.base_url + "/v1/cases", content=raw, headers={
            **headers, "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"})
        assert response.status_code == 422 and codes(response) == ["body.too_deep"], response.text[:200]
    assert stored(gw) == before


@pytest.mark.parametrize("header, value", [
    ("X-Signature", "é".encode() * 32),
    ("X-Signature", b"a" * 65),
    ("X-Nonce", "随机".encode()),
    ("X-Nonce", b"n" * 200),
    ("X-App-Id", "平台".encode()),
    ("X-Timestamp", "１７００".encode()),
    ("X-Applicant-Assertion", "令牌".encode() * 10),
    ("X-Applicant-Assertion", b"a" * 9000),
])
def test_non_ascii_or_over_long_header_values_are_401_never_500(gw, header, value):
    before = stored(gw)
    raw = json.dumps(window_case(channel="online")).encode()
    headers: dict[str, str | bytes] = {**signed_headers(*PLATFORM, "POST", "/v1/cases", raw),
                                       "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    headers[header] = value
    response = httpx.post(gw.base_url + "/v1/cases", content=raw, headers=headers)
    assert response.status_code == 401, response.text
    assert codes(response)[0] in ("auth.header_invalid", "auth.unknown_caller", "applicant.assertion.malformed")
    assert stored(gw) == before


def test_a_non_ascii_or_over_long_h5_token_is_refused_never_500(gw):
    for token in ("%C3%A9%C3%A9.abc", "a" * 3000 + ".b", "%E4%BB%A4%E7%89%8C"):
        response = httpx.get(f"{gw.base_url}/h5/{token}")
        assert response.status_code in (403, 404) and codes(response)[0].startswith("link."), response.text


def test_a_stale_timestamp_is_refused_before_the_body_is_read(gw):
    headers = signed_headers(*PLATFORM, "POST", "/v1/cases", b"")
    headers["X-Timestamp"] = str(int(time.time()) - 3600)
    headers["X-Signature"] = sign_caller_request(PLATFORM[1], "POST", "/v1/cases", headers["X-Timestamp"],
                                                 headers["X-Nonce"], b"")
    head = ("POST /v1/cases HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    answer = raw_exchange(gw, head, [b"{"])  # 199,999 bytes never come: only the headers were looked at
    assert answer.startswith(b"HTTP/1.1 401 ") and b"auth.timestamp_out_of_window" in answer
