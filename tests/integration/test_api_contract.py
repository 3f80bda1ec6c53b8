"""The unified API's contract: caller signatures, applicant assertions, 422 shapes, idempotency, 404s, health."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.client import GatewayClient, signed_headers
from tests.support.harness import PLATFORM, RunningGateway, applicant, start_gateway


@pytest.fixture(scope="module")
def gw(embedded_redis, tmp_path_factory):
    gateway = start_gateway(tmp_path_factory.mktemp("api"), embedded_redis.url)
    yield gateway
    gateway.stop()


def medical_case(**overrides):
    body = {"profile": "guangxi", "channel": "online", "applicant": applicant(),
            "matters": ["employee_medical_enrolment"],
            "sections": {"employee_medical_enrolment": {"insured_place": "450100",
                                                        "insurance_types": ["employee_basic_medical"],
                                                        "scheme": "combined_accounts"}},
            "delivery": "online"}
    body.update(overrides)
    return body


def case_count(gw: RunningGateway) -> int:
    return len(list(gw.redis().scan_iter("gw:{*}:c:*:case")))


def codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def post_raw(gw: RunningGateway, headers: dict[str, str], body: bytes = b"{}") -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/cases", content=body, headers={"Idempotency-Key": uuid.uuid4().hex,
                                                                      "Content-Type": "application/json", **headers})


def test_a_valid_case_is_accepted_with_its_deadline_and_location(gw):
    response = gw.submit(medical_case())
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/cases/{body['id']}"
    assert body["deadline"] and body["status"] == "in_progress"
    assert [t["matter"] for t in body["tasks"]] == ["employee_medical_enrolment"]
    read = gw.case(body["id"])
    assert set(read) >= {"id", "profile", "status", "created_at", "deadline", "tasks"}
    assert set(read["tasks"][0]) >= {"matter", "department", "status", "native_status", "reason", "links",
                                     "updated_at"}


@pytest.mark.parametrize("missing", ["X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_a_missing_signature_header_is_401_and_creates_nothing(gw, missing):
    before = case_count(gw)
    body = b'{"profile": "guangxi"}'
    headers = signed_headers(*PLATFORM, "POST", "/v1/cases", body)
    del headers[missing]
    response = post_raw(gw, headers, body)
    assert response.status_code == 401 and codes(response) == ["auth.header_missing"]
    assert case_count(gw) == before


def test_wrong_secret_stale_timestamp_unknown_caller_and_replayed_nonce_are_401(gw):
    body = b"{}"
    forged = signed_headers(PLATFORM[0], "not-the-secret", "POST", "/v1/cases", body)
    assert codes(post_raw(gw, forged, body)) == ["auth.signature_invalid"]
    stranger = signed_headers("stranger", "whatever", "POST", "/v1/cases", body)
    assert codes(post_raw(gw, stranger, body)) == ["auth.unknown_caller"]
    stale = signed_headers(*PLATFORM, "POST", "/v1/cases", body)
    stale["X-Timestamp"] = str(int(time.time()) - 301)
    from gateway.security.signing import sign_caller_request

    stale["X-Signature"] = sign_caller_request(PLATFORM[1], "POST", "/v1/cases", stale["X-Timestamp"],
                                               stale["X-Nonce"], body)
    assert codes(post_raw(gw, stale, body)) == ["auth.timestamp_out_of_window"]
    once = signed_headers(*PLATFORM, "GET", "/v1/profiles", b"")
    assert httpx.get(gw.base_url + "/v1/profiles", headers=once).status_code == 200
    replay = httpx.get(gw.base_url + "/v1/profiles", headers=once)
    assert replay.status_code == 401 and codes(replay) == ["auth.nonce_reused"]


def test_the_signature_covers_the_body(gw):
    headers = signed_headers(*PLATFORM, "POST", "/v1/cases", b'{"a": 1}')
    assert codes(post_raw(gw, headers, b'{"a": 2}')) == ["auth.signature_invalid"]


def test_applicant_assertion_is_required_and_verified_for_online_cases(gw):
    before = case_count(gw)
    body = medical_case()
    id_no, name = body["applicant"]["id_number"], body["applicant"]["name"]
    assert codes(gw.submit(body, assertion=False)) == ["applicant.assertion.missing"]
    assert codes(gw.submit(body, assertion=gw.identity.assertion(id_no, name, exp_s=-120))) == [
        "applicant.assertion.expired"]
    assert codes(gw.submit(body, assertion=gw.identity.assertion(id_no, name, issuer="evil-idp"))) == [
        "applicant.assertion.issuer"]
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert codes(gw.submit(body, assertion=gw.identity.assertion(id_no, name, key=other_key))) == [
        "applicant.assertion.invalid"]
    assert codes(gw.submit(body, assertion="not-a-jwt")) == ["applicant.assertion.malformed"]
    someone_else = gw.submit(body, assertion=gw.identity.assertion(applicant(sequence=125)["id_number"], name))
    assert someone_else.status_code == 422 and "applicant.assertion.subject_mismatch" in codes(someone_else)
    assert case_count(gw) == before


def test_a_service_centre_window_submits_without_an_assertion(gw):
    response = gw.submit(medical_case(channel="window", delivery="window"), assertion=False, window=True)
    assert response.status_code == 202, response.text


def test_every_problem_is_reported_at_once_and_nothing_is_stored(gw):
    before = case_count(gw)
    body = medical_case(applicant={"name": "", "id_type": "resident_id", "id_number": "110105194912310020",
                                   "phone": "12"},
                        matters=["employee_medical_enrolment", "resident_medical_enrolment", "no_such_matter"],
                        channel="carrier-pigeon")
    response = gw.submit(body, assertion=gw.identity.assertion("110105194912310020", ""))
    assert response.status_code == 422
    found = codes(response)
    for expected in ("applicant.id_number.checksum", "matters.unknown", "applicant.phone.invalid"):
        assert expected in found, found
    assert len(found) >= 4
    for error in response.json()["errors"]:
        assert set(error) == {"code", "field", "message_zh", "message_en"} and error["message_zh"]
    assert case_count(gw) == before


def test_unknown_profile_and_bad_json_are_422_not_500(gw):
    assert codes(gw.submit(medical_case(profile="atlantis"))) == ["profile.unknown"]
    raw = b"{not json"
    response = post_raw(gw, signed_headers(*PLATFORM, "POST", "/v1/cases", raw), raw)
    assert response.status_code == 422 and codes(response) == ["body.invalid"]


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_idempotency_same_body_same_case_other_body_409_missing_key_422(gw):
    key = uuid.uuid4().hex
    body = medical_case()
    first = gw.submit(body, key=key)
    again = gw.submit(body, key=key)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    conflict = gw.submit(medical_case(delivery="post"), key=key)
    assert conflict.status_code == 409 and codes(conflict) == ["idempotency_key.reused"]
    no_key = gw.client.request("POST", "/v1/cases", body, {
        "X-Applicant-Assertion": gw.identity.assertion(body["applicant"]["id_number"], "韦样例")})
    assert no_key.status_code == 422 and codes(no_key) == ["header.idempotency_key.required"]


def test_unknown_case_and_another_callers_case_are_404(gw):
    case_id = gw.submit(medical_case()).json()["id"]
    assert gw.client.get_case("0" * 32).status_code == 404
    assert gw.window_client.get_case(case_id).status_code == 404
    assert gw.client.get_case(case_id).status_code == 200


def test_profiles_catalogue(gw):
    index = gw.client.profiles().json()
    assert {p["code"] for p in index["profiles"]} >= {"guangxi", "jiujiang"}
    guangxi = gw.client.profile("guangxi").json()
    assert len(guangxi["matters"]) == 9
    assert all("section_schema" in m and "time_limits" in m for m in guangxi["matters"])
    assert gw.client.profile("atlantis").status_code == 404


def test_health_readiness_metrics_and_openapi(gw):
    assert httpx.get(gw.base_url + "/healthz").json() == {"status": "alive"}
    assert httpx.get(gw.base_url + "/readyz").status_code == 200
    metrics = httpx.get(gw.base_url + "/metrics").text
    assert "gateway_api_requests_total" in metrics and "gateway_api_request_duration_seconds_bucket" in metrics
    spec = httpx.get(gw.base_url + "/openapi.json").json()
    assert "/v1/cases" in spec["paths"] and "/v1/cases/{case_id}" in spec["paths"]


def test_the_client_signs_queries(gw):
    with GatewayClient(gw.base_url, *PLATFORM) as client:
        assert client.overdue_cases().status_code == 200
