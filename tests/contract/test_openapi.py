"""/openapi.json is the contract: valid, complete, fuzzed against the live API, and enough to generate a client."""

from __future__ import annotations

import copy
import importlib
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api.openapi import EXAMPLE_APPLICATION
from gateway.client import signed_headers
from tests.support.harness import PLATFORM, RunningGateway, applicant, start_gateway

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SOURCE = Path(__file__).resolve().parents[2] / "gateway"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RunningGateway]:
    url = os.environ.get("GATEWAY_REDIS_URL") or request.getfixturevalue("embedded_redis").url
    gateway = start_gateway(tmp_path_factory.mktemp("openapi"), url)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def document(gw: RunningGateway) -> dict[str, Any]:
    response = httpx.get(gw.base_url + "/openapi.json")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


class PlatformSignature(requests.auth.AuthBase):
    """Signs the request exactly as it goes on the wire (final path, query and body bytes) as the test platform."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        request.headers.update(signed_headers(*PLATFORM, str(request.method), request.path_url, raw))
        return request


def test_the_document_is_valid_openapi_31_and_complete(gw: RunningGateway, document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"X-App-Id", "X-Signature", "X-Timestamp", "X-Nonce",
                                                     "X-Applicant-Assertion", "X-Operator-Id"}
    assert all(s["type"] == "apiKey" and s["in"] == "header" for s in schemes.values())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"], (method, path)
            for status, response in operation["responses"].items():
                assert "description" in response
                for media in response.get("content", {}).values():
                    assert media["schema"], (method, path, status)  # no empty schema left
    submit = document["paths"]["/v1/cases"]["post"]
    assert set(submit["responses"]) == {"200", "202", "401", "403", "409", "410", "413", "422", "429", "503"}
    assert submit["responses"]["202"]["links"]["GetCase"]["operationId"] == "getCase"
    assert submit["requestBody"]["content"]["application/json"]["example"]
    schemas = document["components"]["schemas"]
    assert {v["$ref"] for v in schemas["Application"]["oneOf"]} == {
        "#/components/schemas/GuangxiApplication", "#/components/schemas/JiujiangApplication"}
    # Each profile's sections are the very schemas the catalogue serves and the gateway validates with.
    profiles = gw.client.profiles().json()["profiles"]
    for summary in profiles:
        catalogue = gw.client.request("GET", f"/v1/profiles/{summary['code']}").json()
        prefix = "".join(p.capitalize() for p in summary["code"].split("_"))
        sections = schemas[f"{prefix}Sections"]["properties"]
        assert set(sections) == {m["code"] for m in catalogue["matters"]}
        for matter in catalogue["matters"]:
            component = copy.deepcopy(schemas[sections[matter["code"]]["$ref"].rsplit("/", 1)[1]])
            assert component.pop("x-name-zh") == matter["section_schema"]["title"]
            published = {k: v for k, v in matter["section_schema"].items() if k not in ("$schema", "title")}
            assert {k: v for k, v in component.items() if k != "title"} == published
    event_types = {v.rsplit("/", 1)[1] for v in document["webhooks"]["caseEvent"]["post"]["requestBody"]["content"]
                   ["application/json"]["schema"]["discriminator"]["mapping"].values()}
    assert event_types == {"CaseAccepted", "TaskStatusChanged", "CertificateIssued", "CertificateRefused",
                           "DocumentsRetrieved", "StepReminder", "PiiRevealed"}


def test_a_malformed_query_parameter_answers_the_one_error_shape(gw: RunningGateway) -> None:
    response = gw.client.request("GET", "/v1/cases?overdue=maybe")
    assert response.status_code == 422
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [("query.invalid", "overdue")]


def test_every_error_code_the_code_raises_is_listed_in_the_document(document: dict[str, Any]) -> None:
    """A new refusal code without its line in the contract fails here."""
    listed = {code for item in document["paths"].values() for operation in item.values()
              for response in operation["responses"].values() for code in response.get("x-error-codes", [])}
    raised = set()
    for path in SOURCE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        raised |= set(re.findall(r'(?:ErrorItem|unauthorized|_forbidden|_refuse|\.add)\(\s*"([a-z_]+\.[a-z_.]+)"',
                                 text))
        raised |= set(re.findall(r'InvalidLink\(\s*"([a-z_]+\.[a-z_.]+)"', text))
    assert raised - listed == set()


def test_schemathesis_finds_nothing_on_the_live_api(gw: RunningGateway, document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(gw.base_url + "/openapi.json")
    signer = PlatformSignature()

    @schema.auth(refresh_interval=None)
    class ApplicantAssertion:
        """The applicant's own assertion for the applicant in the generated body, when it names one."""

        def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> bool:
            return True

        def set(self, case: schemathesis.Case, data: bool, ctx: schemathesis.AuthContext) -> None:
            person = case.body.get("applicant") if isinstance(case.body, dict) else None
            if case.method.upper() == "POST" and case.path == "/v1/cases" and isinstance(person, dict):
                case.headers = {**(case.headers or {}), "X-Applicant-Assertion": gw.identity.assertion(
                    str(person.get("id_number", "")), str(person.get("name", "")))}

    bounded = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                       suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    statuses: Counter[tuple[str, int]] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @bounded
            @given(case=operation.as_strategy(generation_mode=mode, auth_storage=schema.auth))
            def exercise(case: schemathesis.Case) -> None:
                response = case.call(base_url=gw.base_url, auth=signer, timeout=10)
                statuses[(case.operation.label, response.status_code)] += 1
                case.validate_response(response, checks=CHECKS)

            try:
                exercise()
            except Unsatisfiable:
                # Nothing to break: no inputs (GET /healthz) or only a free string in the path (GET /h5/{token}).
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    # It reached the application, not only the signature check: validation answered generated bodies.
    assert statuses[("POST /v1/cases", 422)] > 0 and statuses[("GET /v1/cases/{case_id}", 404)] > 0

    # Stateful: follow the document's own link from each accepted case to reading it back, with every check.
    # (Done by hand rather than with schemathesis' hypothesis state machine: against a live gateway the answers
    # decide what the machine may draw next, which hypothesis refuses as inconsistent data generation.)
    submit, read = schema["/v1/cases"]["POST"], schema["/v1/cases/{case_id}"]["GET"]
    link = submit.definition.raw["responses"]["202"]["links"]["GetCase"]
    assert link["operationId"] == read.definition.raw["operationId"]
    parameter, expression = next(iter(link["parameters"].items()))
    assert expression == "$response.body#/id"
    seen: Counter[tuple[str, int]] = Counter()
    for sequence in (101, 103, 105, 107, 110):
        person = applicant(sequence=sequence)
        posted = submit.Case(body={**copy.deepcopy(EXAMPLE_APPLICATION), "applicant": person},
                             media_type="application/json",
                             headers={"Idempotency-Key": uuid.uuid4().hex,
                                      "X-Applicant-Assertion": gw.identity.assertion(person["id_number"],
                                                                                     person["name"])})
        response = posted.call(base_url=gw.base_url, auth=signer, timeout=10)
        posted.validate_response(response, checks=CHECKS)
        seen[("POST /v1/cases", response.status_code)] += 1
        followed = read.Case(path_parameters={parameter: response.json()["id"]})
        answer = followed.call(base_url=gw.base_url, auth=signer, timeout=10)
        followed.validate_response(answer, checks=CHECKS)
        seen[("GET /v1/cases/{case_id}", answer.status_code)] += 1
    assert seen == {("POST /v1/cases", 202): 5, ("GET /v1/cases/{case_id}", 200): 5}, seen


def test_a_client_generated_from_openapi_json_alone_submits_and_reads_a_case(
        gw: RunningGateway, document: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "openapi.json").write_bytes(httpx.get(gw.base_url + "/openapi.json").content)
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run([str(generator), "generate", "--path", "openapi.json", "--meta", "none",
                           "--output-path", "gw_generated_client"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        generated = importlib.import_module("gw_generated_client")
        submit_case = importlib.import_module("gw_generated_client.api.default.submit_case")
        get_case = importlib.import_module("gw_generated_client.api.default.get_case")
        models = importlib.import_module("gw_generated_client.models")
    finally:
        sys.path.remove(str(tmp_path))

    def sign(request: httpx.Request) -> None:  # the integrator's own few lines: the scheme the document describes
        request.headers.update(signed_headers(*PLATFORM, request.method, request.url.raw_path.decode(),
                                              request.read()))

    person = applicant(sequence=901)
    client = generated.Client(base_url=gw.base_url, httpx_args={"event_hooks": {"request": [sign]}}).with_headers(
        {"X-Applicant-Assertion": gw.identity.assertion(person["id_number"], person["name"])})
    body = models.GuangxiApplication.from_dict({**copy.deepcopy(EXAMPLE_APPLICATION), "applicant": person})
    submitted = submit_case.sync_detailed(client=client, body=body, idempotency_key=uuid.uuid4().hex)
    assert submitted.status_code == 202, submitted.content
    accepted = submitted.parsed
    assert isinstance(accepted, models.CaseView) and accepted.profile == "guangxi"

    read = get_case.sync(client=client, case_id=accepted.id)
    assert isinstance(read, models.CaseView) and read.id == accepted.id
    assert [t.matter for t in read.tasks] == ["employee_medical_enrolment"]

    # The events the platform receives are what the document's webhooks say.
    events = gw.wait_events(lambda got: any(e["case_id"] == accepted.id and e["type"] == "task.status_changed"
                                            for e in got))
    webhook = jsonschema.Draft202012Validator({
        **document, "$ref": "#/webhooks/caseEvent/post/requestBody/content/application~1json/schema"})
    mine = [e for e in events if e["case_id"] == accepted.id]
    assert {e["type"] for e in mine} >= {"case.accepted", "task.status_changed"}
    for event in mine:
        webhook.validate(event)
