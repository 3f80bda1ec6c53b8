"""/openapi.json as the contract: every body, every status with its error codes, the signing scheme, the webhooks.

FastAPI describes the routes and the answers built through gateway/api/schemas.py; this completes the document with
what it cannot see: the application body (read raw and judged by the domain validation) with each profile's sections
as the very JSON Schemas the catalogue serves, the refusals each route can answer, the security schemes, the OpenAPI
link from a submitted case to reading it, and the events the outbox delivers (OpenAPI 3.1 ``webhooks``).
"""

from __future__ import annotations

import copy
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from gateway.api.schemas import WEBHOOK_EVENTS, Agent, Applicant, ErrorList, EventBase, Readiness
from gateway.profiles.loader import ProfileRegistry
from gateway.profiles.section_schema import section_schema

REF = "#/components/schemas/{model}"
SIGNED = ("AppId", "Timestamp", "Nonce", "Signature")

STRING_TO_SIGN = (
    "X-Signature = lowercase hex HMAC-SHA256(caller secret, string to sign), the string to sign being the lines "
    "joined by \\n: METHOD (upper case), PATH_WITH_QUERY (exactly as sent, percent-encoding included), X-Timestamp, "
    "X-Nonce, lowercase hex SHA-256 of the raw body (of the empty string when there is none), and for a window "
    "caller a sixth line: X-Operator-Id."
)
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "AppId": {"name": "X-App-Id", "description": "The caller's app id, as registered with the gateway."},
    "Timestamp": {"name": "X-Timestamp", "description": "Unix time in seconds; refused beyond ±300 s of the gateway's "
                                                        "clock."},
    "Nonce": {"name": "X-Nonce", "description": "A fresh random token per request (8-128 of [A-Za-z0-9_-]); a "
                                                "nonce seen again is refused as a replay."},
    "Signature": {"name": "X-Signature", "description": STRING_TO_SIGN},
    "ApplicantAssertion": {"name": "X-Applicant-Assertion", "description": (
        "Online cases only: the unified identity service's JWT (ES256/RS256) for the applicant, audience "
        "flex-employment-gateway, single use, sub = the applicant's ID number, name = the applicant's name. "
        "It authorises the e-license retrieval. Not part of the string to sign.")},
    "OperatorId": {"name": "X-Operator-Id", "description": (
        "Window callers only: the clerk taking the case; signed as the sixth line of the string to sign.")},
}
_PLATFORM: dict[str, list[str]] = {name: [] for name in SIGNED}
_WINDOW = {**_PLATFORM, "OperatorId": []}
_SIGNED_SECURITY = [_PLATFORM, _WINDOW]
_CASE_SECURITY = [{**_PLATFORM, "ApplicantAssertion": []}, _WINDOW]

_AUTH_CODES = ["auth.header_missing", "auth.header_invalid", "auth.unknown_caller", "auth.timestamp_out_of_window",
               "auth.operator_missing", "auth.signature_invalid", "auth.nonce_reused"]
_ASSERTION_CODES = ["applicant.assertion.missing", "applicant.assertion.malformed", "applicant.assertion.invalid",
                    "applicant.assertion.expired", "applicant.assertion.issuer", "applicant.assertion.audience",
                    "applicant.assertion.claim_missing", "applicant.assertion.lifetime", "applicant.assertion.jti",
                    "applicant.assertion.acr", "applicant.assertion.replayed"]
_VALIDATION_CODES = [
    "body.invalid", "body.too_deep", "body.object_too_large", "body.list_too_long", "header.idempotency_key.required",
    "field.required", "field.invalid", "profile.unknown", "channel.not_allowed", "applicant.id_number",
    "applicant.id_number.division_unknown", "applicant.id_type.unsupported", "applicant.phone.invalid",
    "applicant.birth_date.mismatch", "applicant.sex.mismatch", "applicant.age.under_minimum",
    "applicant.age.over_retirement", "agent.not_allowed", "agent.required_fields", "agent.same_as_applicant",
    "agent.id_type.unsupported", "agent.phone.invalid", "matters.empty", "matters.unknown", "matters.duplicate",
    "matters.mutually_exclusive", "matters.prerequisite_missing", "matters.id_type_not_accepted",
    "section.missing", "section.unexpected", "section.field.required", "section.field.invalid", "section.id_number",
    "eligibility.household_registration", "eligibility.* (the profile's eligibility checks)",
    "applicant.assertion.subject_mismatch", "applicant.assertion.name_mismatch"]
_QUERY_CODES = ["query.invalid"]
_UNAVAILABLE = ["service.busy"]

# Every status each operation answers besides its success, with the error codes it can carry.
ERRORS: dict[tuple[str, str], dict[int, list[str]]] = {
    ("post", "/v1/cases"): {
        401: _AUTH_CODES + _ASSERTION_CODES,
        403: ["caller.channel.forbidden", "caller.profile.forbidden", "caller.matter.forbidden"],
        409: ["idempotency_key.reused"], 410: ["case.removed"], 413: ["body.too_large"], 422: _VALIDATION_CODES,
        429: ["caller.rate_limited", "caller.quota.open_cases"], 503: [*_UNAVAILABLE, "store.not_replicated"]},
    ("get", "/v1/cases"): {401: _AUTH_CODES, 422: ["query.overdue.required", *_QUERY_CODES],
                           429: ["caller.rate_limited"], 503: _UNAVAILABLE},
    ("get", "/v1/cases/{case_id}"): {401: _AUTH_CODES, 404: ["case.not_found"], 429: ["caller.rate_limited"],
                                     503: _UNAVAILABLE},
    ("get", "/v1/profiles"): {401: _AUTH_CODES, 429: ["caller.rate_limited"], 503: _UNAVAILABLE},
    ("get", "/v1/profiles/{profile}"): {401: _AUTH_CODES, 404: ["profile.not_found"], 429: ["caller.rate_limited"],
                                        503: _UNAVAILABLE},
    ("post", "/v1/callbacks/{adapter_name}"): {401: ["callback.signature_invalid"],
                                               404: ["adapter.not_found", "request.not_found"],
                                               413: ["body.too_large"], 503: _UNAVAILABLE},
    ("get", "/h5/{token}"): {403: ["link.invalid", "link.malformed", "link.redirect_refused"],
                             404: ["link.unknown_step"], 410: ["link.step_closed"], 503: _UNAVAILABLE},
}
_STATUS_TEXT = {401: "Not authenticated: the signature headers, or the applicant assertion", 403: "Not allowed",
                404: "Not found (another caller's case does not exist for this one)",
                409: "The Idempotency-Key was used for another body",
                410: "Gone: the applicant's step is over, or the case finished and left after its retention",
                413: "The body is too large",
                422: "Invalid input: every problem at once; nothing was stored",
                429: "Too many requests, or too many open cases (Retry-After says when to come back)",
                503: "Busy or a dependency (Redis) unavailable: retry later (Retry-After)"}
OPERATION_IDS = {("post", "/v1/cases"): "submitCase", ("get", "/v1/cases"): "listOverdueCases",
                 ("get", "/v1/cases/{case_id}"): "getCase", ("get", "/v1/profiles"): "listProfiles",
                 ("get", "/v1/profiles/{profile}"): "getProfile",
                 ("post", "/v1/callbacks/{adapter_name}"): "departmentCallback", ("get", "/h5/{token}"): "openH5Link",
                 ("get", "/healthz"): "healthz", ("get", "/readyz"): "readyz", ("get", "/metrics"): "metrics"}

EXAMPLE_APPLICANT = {"name": "韦样例", "id_type": "resident_id", "id_number": "450103199005171239",
                     "phone": "13912345678", "household_division_code": "450103"}
EXAMPLE_APPLICATION = {
    "profile": "guangxi", "channel": "online", "delivery": "online", "applicant": EXAMPLE_APPLICANT,
    "matters": ["employee_medical_enrolment"],
    "sections": {"employee_medical_enrolment": {"insured_place": "450100",
                                                "insurance_types": ["employee_basic_medical"],
                                                "scheme": "combined_accounts"}}}
EXAMPLE_CASE: dict[str, Any] = {
    "id": "3f1c0e0a9b8d4c6e8a7b6c5d4e3f2a1b", "profile": "guangxi", "channel": "online", "operator": None,
    "delivery": "online", "status": "in_progress", "created_at": "2025-03-03T02:15:00.000Z",
    "deadline": "2025-03-10", "statutory_deadline": "2025-03-31",
    "tasks": [{"matter": "employee_medical_enrolment", "department": "medical", "status": "queued",
               "native_status": None, "reason": None, "reference": None, "links": {}, "deadline": "2025-03-10",
               "updated_at": "2025-03-03T02:15:00.000Z"}],
    "warnings": [], "certificates": [], "documents": {"status": "pending"}}
EXAMPLE_ERRORS = {"errors": [{"code": "field.required", "field": "applicant.phone",
                              "message_zh": "缺少必填项 applicant.phone",
                              "message_en": "'applicant.phone' is required"}]}
EXAMPLE_EVENT = {"event_id": "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "type": "task.status_changed",
                 "case_id": EXAMPLE_CASE["id"], "matter": "employee_medical_enrolment",
                 "at": "2025-03-04T01:00:00.000Z",
                 "seq": 3, "status": "completed", "request_id": "medical-3f1c0e0a-employee_medical_enrolment",
                 "native_status": "02", "reason": None, "links": {}}


def contract(app: FastAPI, profiles: ProfileRegistry) -> dict[str, Any]:
    """The whole document; the profiles' sections come from the registry the gateway validates with."""
    document = get_openapi(title=app.title, version=app.version, openapi_version="3.1.0", routes=app.routes,
                           description=_DESCRIPTION)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)  # FastAPI's own 422 shape: this API answers ErrorList instead
    schemas.pop("ValidationError", None)
    _, extra = models_json_schema([(m, "validation") for m in (Applicant, Agent, ErrorList, Readiness)]
                                  + [(m, "serialization") for m in WEBHOOK_EVENTS], ref_template=REF)
    for name, schema in extra.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["Application"] = _application_schemas(profiles, schemas)
    components["securitySchemes"] = {key: {"type": "apiKey", "in": "header", **value}
                                     for key, value in SECURITY_SCHEMES.items()}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            _complete(method, path, operation)
    document["webhooks"] = {"caseEvent": _webhook()}
    return document


def _application_schemas(profiles: ProfileRegistry, schemas: dict[str, Any]) -> dict[str, Any]:
    """One application schema per profile (its matters, its sections), chosen by `profile`."""
    variants, mapping = [], {}
    for code in profiles.codes():
        profile = profiles.get(code)
        prefix = _camel(code)
        sections: dict[str, Any] = {}
        for matter in profile.matters:
            name = f"{prefix}Section{_camel(matter.code)}"
            schema = copy.deepcopy(section_schema(profile, matter))
            schema.pop("$schema", None)  # the document's dialect is JSON Schema 2020-12 already
            # Generators name classes by title: the matter's Chinese name recurs across profiles, the component's not.
            schema["title"], schema["x-name-zh"] = name, schema.get("title")
            schemas[name] = schema
            sections[matter.code] = {"$ref": REF.format(model=name)}
        schemas[f"{prefix}Sections"] = {
            "type": "object", "title": f"{prefix}Sections",
            "description": f"One section per selected matter of profile {code} (GET /v1/profiles/{code} "
                           "publishes the same schemas as section_schema).",
            "properties": sections, "additionalProperties": False}
        name = f"{prefix}Application"
        schemas[name] = {
            "type": "object", "title": name,
            "description": f"An application under profile {code} ({profile.name_zh}). Unknown top-level fields are "
                           "reported as warnings (field.ignored) and left out.",
            "required": ["profile", "channel", "applicant", "matters"],
            "properties": {
                "profile": {"const": code},
                "channel": {"enum": ["online", "window"],
                            "description": "window: only window callers (with X-Operator-Id)"},
                "delivery": {"enum": ["online", "post", "window"],
                             "description": "how results reach the applicant; default: the channel's"},
                "applicant": {"$ref": REF.format(model="Applicant")},
                "agent": {"anyOf": [{"$ref": REF.format(model="Agent")}, {"type": "null"}]},
                "matters": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": {"enum": [m.code for m in profile.matters]}},
                "sections": {"$ref": REF.format(model=f"{prefix}Sections")},
            }}
        variants.append({"$ref": REF.format(model=name)})
        mapping[code] = REF.format(model=name)
    return {"title": "Application", "description": "One application (一表申请) for one region's profile.",
            "oneOf": variants, "discriminator": {"propertyName": "profile", "mapping": mapping}}


def _complete(method: str, path: str, operation: dict[str, Any]) -> None:
    key = (method, path)
    operation["operationId"] = OPERATION_IDS.get(key, operation.get("operationId", ""))
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's default shape; the route's own 422 (if any) is added below
    if path.startswith("/v1/") and not path.startswith("/v1/callbacks/"):
        operation["security"] = _CASE_SECURITY if key == ("post", "/v1/cases") else _SIGNED_SECURITY
    else:
        operation["security"] = []
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        ERRORS.setdefault(key, {}).setdefault(422, _QUERY_CODES)
    for status, codes in ERRORS.get(key, {}).items():
        responses[str(status)] = _error_response(status, codes)
    special = {("post", "/v1/cases"): _submit_case, ("post", "/v1/callbacks/{adapter_name}"): _callback,
               ("get", "/h5/{token}"): _h5, ("get", "/readyz"): _readyz, ("get", "/metrics"): _metrics,
               ("get", "/v1/cases/{case_id}"): _get_case}.get(key)
    if special is not None:
        special(operation)


def _error_response(status: int, codes: list[str]) -> dict[str, Any]:
    listed = ", ".join(f"`{c}`" for c in codes)
    response: dict[str, Any] = {
        "description": f"{_STATUS_TEXT[status]}. Codes: {listed}.",
        "x-error-codes": codes,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorList")},
                                         "example": _error_example(codes[0])}}}
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"description": "seconds (rate limits)", "schema": {"type": "string"}}}
    return response


def _error_example(code: str) -> dict[str, Any]:
    example = copy.deepcopy(EXAMPLE_ERRORS)
    example["errors"][0]["code"] = code.split(" ")[0]
    return example


def _case_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": {"Location": {"description": "/v1/cases/{id}", "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": REF.format(model="CaseView")},
                                             "example": EXAMPLE_CASE}},
            "links": {"GetCase": {"operationId": "getCase", "parameters": {"case_id": "$response.body#/id"},
                                  "description": "the case just accepted"}}}


def _submit_case(operation: dict[str, Any]) -> None:
    operation["summary"] = "Submit one application"
    operation["parameters"] = [{
        "name": "Idempotency-Key", "in": "header", "required": True,
        "description": "The platform's key for this application (1-200 characters): the same key with the same body "
                       "answers the same case (200); with another body, 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"}}]
    operation["requestBody"] = {
        "required": True,
        "description": "Read as sent and validated against the profile: every problem at once (422), nothing stored.",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Application")},
                                         "example": EXAMPLE_APPLICATION}}}
    operation["responses"] = {
        "202": _case_response("Accepted: the case and its tasks"),
        "200": _case_response("The case already accepted under this Idempotency-Key with the same body"),
        **{k: v for k, v in operation["responses"].items() if k not in ("200", "202")}}


def _get_case(operation: dict[str, Any]) -> None:
    operation["responses"]["200"]["content"]["application/json"]["example"] = EXAMPLE_CASE


def _callback(operation: dict[str, Any]) -> None:
    operation["description"] = (
        "For departments, not platforms: the department's own payload and signature headers, verified by its "
        "adapter with the department's key (GATEWAY_ADAPTERS__<NAME>__CALLBACK_SECRET).")
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {
            "schema": {"type": "object", "description": "the department's native callback (see its adapter)"},
            "example": {"request_id": "medical-3f1c0e0a-employee_medical_enrolment", "status": "02"}}}}


def _h5(operation: dict[str, Any]) -> None:
    operation["description"] = ("The applicant's browser: an opaque, expiring link (payment and photo links open "
                                "once), redirected to the department page on the adapter's allow-list.")
    operation["responses"] = {
        "302": {"description": "Redirect to the department's page",
                "headers": {"Location": {"schema": {"type": "string"}}}},
        **{k: v for k, v in operation["responses"].items() if k != "200"}}


def _readyz(operation: dict[str, Any]) -> None:
    ready = {"application/json": {"schema": {"$ref": REF.format(model="Readiness")}}}
    operation["responses"] = {"200": {"description": "Redis answers", "content": ready},
                              "503": {"description": "Redis does not answer", "content": ready}}


def _metrics(operation: dict[str, Any]) -> None:
    operation["responses"] = {"200": {"description": "Prometheus text exposition",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}}


def _webhook() -> dict[str, Any]:
    event_refs = {get_args(model.model_fields["type"].annotation)[0]: REF.format(model=model.__name__)
                  for model in WEBHOOK_EVENTS}
    header = {"in": "header", "required": True, "schema": {"type": "string"}}
    return {"post": {
        "summary": "A case event, delivered by the gateway to the caller's webhook_url (else GATEWAY_WEBHOOK_URL)",
        "description": "At least once, in each case's order (seq); any answer but 2xx is retried with back-off, "
                       "then parked for operators. Dedupe on X-Gateway-Event-Id. " + (EventBase.__doc__ or ""),
        "operationId": "caseEvent",
        "parameters": [
            {**header, "name": "X-Gateway-Event-Id", "description": "the event's event_id"},
            {**header, "name": "X-Gateway-Timestamp", "description": "Unix time in seconds of this delivery"},
            {**header, "name": "X-Gateway-Signature",
             "description": "lowercase hex HMAC-SHA256(webhook secret, X-Gateway-Timestamp + \"\\n\" + raw body)"}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [{"$ref": ref} for ref in event_refs.values()],
                       "discriminator": {"propertyName": "type", "mapping": event_refs}},
            "example": EXAMPLE_EVENT}}},
        "responses": {"2XX": {"description": "Received; not delivered again"},
                      "default": {"description": "Not received: delivered again later"}}}}


def _camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.replace("-", "_").split("_"))


_DESCRIPTION = """The unified API of 灵活就业参保一件事: one application, fanned out to the departments.

Every /v1 request except department callbacks is signed (security schemes AppId, Timestamp, Nonce, Signature; window
callers add OperatorId; online cases add ApplicantAssertion). Every refusal answers
`{"errors": [{code, field, message_zh, message_en}]}`; each response lists the codes it can carry. Case events reach
the platform's webhook (see `webhooks`)."""
