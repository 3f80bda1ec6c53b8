"""The applicant assertion (issue 8, item 4): audience, bounded lifetime, single use, the applicant's own name, an
assurance-level allow-list, and e-license retrieval under the record of consent instead of the token itself."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import pytest

from gateway.security.applicant_identity import IdentityVerifier
from tests.support.harness import RunningGateway, applicant, start_gateway


@pytest.fixture(scope="module")
def gw(embedded_redis, tmp_path_factory):
    gateway = start_gateway(tmp_path_factory.mktemp("assertion"), embedded_redis.url)
    yield gateway
    gateway.stop()


def medical_case(person: dict[str, str] | None = None) -> dict[str, object]:
    return {"profile": "guangxi", "channel": "online", "applicant": person or applicant(),
            "matters": ["employee_medical_enrolment"],
            "sections": {"employee_medical_enrolment": {"insured_place": "450100",
                                                        "insurance_types": ["employee_basic_medical"],
                                                        "scheme": "combined_accounts"}},
            "delivery": "online"}


def codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def stored_cases(gw: RunningGateway) -> int:
    return len(list(gw.redis().scan_iter("gw:{*}:c:*:case")))


@pytest.mark.parametrize(("claims", "code"), [
    ({"aud": None}, "applicant.assertion.claim_missing"),
    ({"aud": "another-gateway"}, "applicant.assertion.audience"),
    ({"jti": None}, "applicant.assertion.claim_missing"),
    ({"name": None}, "applicant.assertion.claim_missing"),
    ({"iat": None}, "applicant.assertion.claim_missing"),
    ({"jti": "short"}, "applicant.assertion.jti"),
])
def test_an_assertion_without_the_required_claims_is_refused_and_nothing_is_stored(gw, claims, code):
    body = medical_case()
    person = body["applicant"]
    assert isinstance(person, dict)
    before = stored_cases(gw)
    token = gw.identity.assertion(person["id_number"], **{"name": person["name"], **claims})
    response = gw.submit(body, assertion=token)
    assert response.status_code == 401 and codes(response) == [code], response.text
    assert stored_cases(gw) == before


def test_a_ten_year_assertion_is_refused_for_its_lifetime(gw):
    body = medical_case()
    person = body["applicant"]
    assert isinstance(person, dict)
    before = stored_cases(gw)
    decade = gw.identity.assertion(person["id_number"], person["name"], exp_s=10 * 365 * 86400)
    response = gw.submit(body, assertion=decade)
    assert response.status_code == 401 and codes(response) == ["applicant.assertion.lifetime"]
    just_over = gw.identity.assertion(person["id_number"], person["name"], exp_s=901)
    assert codes(gw.submit(body, assertion=just_over)) == ["applicant.assertion.lifetime"]
    assert stored_cases(gw) == before


def test_an_assertion_creates_one_case_only_but_a_retry_of_the_same_request_answers_its_case(gw):
    body = medical_case()
    person = body["applicant"]
    assert isinstance(person, dict)
    token = gw.identity.assertion(person["id_number"], person["name"])
    key = uuid.uuid4().hex
    first = gw.submit(body, key=key, assertion=token)
    assert first.status_code == 202, first.text
    retry = gw.submit(body, key=key, assertion=token)
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    before = stored_cases(gw), len(list(gw.redis().scan_iter("gw:{*}:idem:*")))
    assert before[1] >= 1  # the first request's record is there to count
    replay = gw.submit(body, assertion=token)  # a new application (new Idempotency-Key) with the spent assertion
    assert replay.status_code == 401 and codes(replay) == ["applicant.assertion.replayed"]
    assert (stored_cases(gw), len(list(gw.redis().scan_iter("gw:{*}:idem:*")))) == before


def test_the_assertion_must_carry_the_applicants_own_name(gw):
    body = medical_case()
    person = body["applicant"]
    assert isinstance(person, dict)
    before = stored_cases(gw)
    response = gw.submit(body, assertion=gw.identity.assertion(person["id_number"], "黄别人"))
    assert response.status_code == 422 and codes(response) == ["applicant.assertion.name_mismatch"]
    assert stored_cases(gw) == before


def test_the_e_license_retrieval_carries_the_consent_record_never_the_token(gw):
    body = medical_case()
    person = body["applicant"]
    assert isinstance(person, dict)
    token = gw.identity.assertion(person["id_number"], person["name"])
    jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["jti"]
    response = gw.submit(body, assertion=token)
    assert response.status_code == 202, response.text
    case_id = response.json()["id"]
    case = gw.wait(case_id, lambda c: c["documents"]["status"] != "pending")
    assert case["documents"]["status"] == "found"
    events = gw.wait_events(lambda es: any(e["case_id"] == case_id and e["type"] == "case.documents" for e in es))
    record = next(e for e in events if e["case_id"] == case_id and e["type"] == "case.documents")
    assert record["authorization"]["jti"] == jti and record["authorization"]["issuer"] == gw.identity.issuer
    assert sorted(record["licences"]) == ["household_register", "id_card"]
    redis = gw.redis()
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        values = ([redis.get(key)] if kind == "string" else list(redis.hvals(key)) if kind == "hash" else
                  [json.dumps(f) for _i, f in redis.xrange(key)] if kind == "stream" else [])
        assert not any(token in (v or "") or token.split(".")[2] in (v or "") for v in values), key


def test_the_acr_allow_list_refuses_a_lower_assurance_level(tmp_path):
    from tests.support.harness import IdentityService

    identity = IdentityService(tmp_path)
    verifier = IdentityVerifier(identity.jwks_path, identity.issuer, audience="flex-employment-gateway",
                                max_age_s=900, acr_allowed=["L3", "L4"])
    assert verifier.verify(identity.assertion("450103199005171239", acr="L4")).acr == "L4"
    with pytest.raises(Exception) as refused:
        verifier.verify(identity.assertion("450103199005171239", acr="L1"))
    assert "applicant.assertion.acr" in str(refused.value)
    issued = verifier.verify(identity.assertion("450103199005171239"))
    assert issued.expires_at - issued.issued_at == 600 and abs(issued.issued_at - time.time()) < 60
