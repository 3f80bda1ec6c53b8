"""The conformance kit on our five adapters, each against its own mock, and on adapters broken on purpose.

The genuine callback samples are built here with each mock's signing convention (`mocks.common.callback_headers`):
tests may know both sides, the adapters and the kit may not.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.e_license.adapter import CERTIFICATE_TYPES, ELicenseAdapter
from adapters.housing_fund.adapter import HousingFundAdapter
from adapters.hrss.adapter import HrssAdapter
from adapters.medical.adapter import MedicalAdapter
from adapters.tax.adapter import TaxAdapter
from gateway.profiles.loader import ProfileRegistry
from gateway.profiles.section_schema import section_schema
from gateway.sdk import (
    CallbackEvent,
    DepartmentAdapter,
    DepartmentRequest,
    NativeOutcome,
    StatusTable,
    new_request_id,
)
from gateway.sdk.conformance import CHECKS, ConformanceReport, ConformanceTarget, run_conformance, sent_fields
from mocks.common import callback_headers
from mocks.e_license.app import make_identifier, synthetic_uscc
from mocks.serving import RunningServer, create_mock, start_in_thread
from tests.support.adapters import department_request

GUANGXI = "450103199005171239"  # ordinary applicant (sequence digit 3)
GUANGXI_OTHER = "450103199005171247"  # another ordinary applicant
JIANGXI = "360403199005171231"
CALLBACK_ID = new_request_id()
PROFILES = ProfileRegistry.load_dir(Path(__file__).resolve().parents[2] / "profiles")


def annotated(adapter: str) -> dict[str, dict[str, str]]:
    """What the profiles' section schemas say this adapter must send (`x-sent-to`), per operation."""
    profiles = [PROFILES.get(code) for code in PROFILES.codes()]
    return sent_fields(adapter, [(m.operation, section_schema(p, m)) for p in profiles for m in p.matters
                                 if m.adapter == adapter])


CHANGES = [{"item": "mobile_phone", "before": "13912345678", "after": "13812345678", "confirmed": True}]

Signer = Callable[[str], tuple[dict[str, str], bytes]]


def signer(prefix: str, adapter: str, payload: dict[str, Any]) -> Signer:
    """The mocks' convention: HMAC-SHA256 over `adapter \\n request id \\n timestamp \\n body`, in
    X-<Dept>-Timestamp / X-Request-Id / X-<Dept>-Signature."""
    body = json.dumps(payload, ensure_ascii=False).encode()

    def signed(secret: str) -> tuple[dict[str, str], bytes]:
        return callback_headers(secret, adapter, CALLBACK_ID, body, signature_header=f"X-{prefix}-Signature",
                                timestamp_header=f"X-{prefix}-Timestamp"), body

    return signed


def medical_target(url: str) -> ConformanceTarget:
    return ConformanceTarget(
        adapter_cls=MedicalAdapter, mock_url=url,
        sample_requests=[
            department_request("employee_medical_enrolment", case_id="conf-med", section={
                "insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                "scheme": "combined_accounts", "contribution_tier": "combined_accounts"}),
            department_request("employee_medical_change", case_id="conf-med", section={"changes": CHANGES}),
            department_request("resident_medical_enrolment", case_id="conf-med", id_number=GUANGXI_OTHER,
                               section={"community": "青秀区新竹社区"}),
            department_request("resident_medical_change", case_id="conf-med", id_number=GUANGXI_OTHER,
                               section={"insured_unit": "青秀区新竹社区", "changes": CHANGES}),
        ],
        sent_fields=annotated("medical"),
        callback_sample=signer("Fsi", "medical", {"infcode": 0, "output": {"ext_biz_no": CALLBACK_ID, "biz_stas": "1",
                                                                "psn_no": "450103000001"}}),
    )


def hrss_target(url: str) -> ConformanceTarget:
    return ConformanceTarget(
        adapter_cls=HrssAdapter, mock_url=url,
        sample_requests=[
            department_request("employment_registration", case_id="conf-hrss", section={
                "employment_type": "self_employed", "employment_start_date": "2026-01-05"}),
            department_request("employee_pension_enrolment", case_id="conf-hrss", section={
                "start_month": "2026-04", "insured_place": "360403", "contribution_tier": 150}),
            department_request("resident_pension_enrolment", case_id="conf-hrss", id_number=GUANGXI_OTHER, section={
                "registration_date": "2026-01-05", "contribution_tier": "local_extra", "local_extra_amount": 2500,
                "special_groups": ["other"], "special_group_other": "退役军人", "is_student": False,
                "old_rural_pension": True, "old_rural_pension_start": "2008-01-01", "other_pension": True,
                "other_pension_start": "2012-01-01"}),
            department_request("social_security_card", case_id="conf-hrss", section={
                "bank": "桂林银行", "id_valid_long_term": False, "id_valid_from": "2020-01-01",
                "id_valid_to": "2040-01-01", "card_applied_before": False}),
            department_request("archive_transfer", case_id="conf-hrss", section={
                "direction": "out", "transfer_reason": "other", "transfer_reason_other": "异地发展",
                "archive_from": "广西大学", "archive_to": "南宁市人才服务中心", "transfer_letter_no": "DDH2026-0001",
                "person_category": "graduate", "household_location": "南宁市青秀区", "birthplace": "南宁",
                "native_place": "广西南宁", "marital_status": "unmarried", "is_graduate": True,
                "email": "wei@example.cn", "emergency_contact": "韦父", "emergency_phone": "13912345679",
                "education": [{"degree": "bachelor", "degree_nature": "full_time",
                               "graduation_date": "2025-06-30", "school": "广西大学"}],
                "work": {"former_employer": "某公司"}}),
        ],
        sent_fields=annotated("hrss"),
        callback_sample=signer("Hrss", "hrss", {"requestId": CALLBACK_ID, "rc": 0, "zt": "09", "message": "办结",
                                        "ywlsh": "RS000001"}),
    )


def tax_target(url: str) -> ConformanceTarget:
    row = {"fee_type": "pension", "levy_item": "flexible_pension", "period_start": "2026-01-01",
           "period_end": "2026-03-31", "contribution_base": 5000}
    return ConformanceTarget(
        adapter_cls=TaxAdapter, mock_url=url,
        sample_requests=[department_request("contribution_declaration", case_id="conf-tax",
                                            section={"rows": [row], "declaration_date": "2026-01-05",
                                                     "taxpayer_id": "450103199005171239"})],
        sent_fields=annotated("tax"),
        callback_sample=signer("Gt3", "tax", {
            "head": {"tranId": "SBF.TZ.JKJG", "rtnCode": "0000", "rtnMsg": "缴费成功"},
            "body": {"ywlsh": CALLBACK_ID, "pzhm": "145260105000000001", "sbzt": "paid",
                     "dzsphm": "345260105000000002"}}),
    )


def housing_fund_target(url: str) -> ConformanceTarget:
    section = {"collection_point": "360403", "monthly_amount": 500, "has_employment_contract": False,
               "insured_elsewhere": False, "deposit_commitment": True}
    return ConformanceTarget(
        adapter_cls=HousingFundAdapter, mock_url=url,
        sample_requests=[department_request("housing_fund_account", case_id="conf-gjj", id_number=JIANGXI,
                                            section=section, profile="jiujiang", region_code="360400")],
        sent_fields=annotated("housing_fund"),
        callback_sample=signer("Gjj", "housing_fund", {"transCode": "1201", "recode": "000000", "msg": "缴存成功",
                                       "body": {"YWLSH": CALLBACK_ID, "BLZT": "deposited", "GRZH": "360400000001",
                                                "JZNY": "202601"}}),
    )


def e_license_target(url: str) -> ConformanceTarget:
    certificate = CERTIFICATE_TYPES["employment_entrepreneurship_certificate"]
    identifier = make_identifier(certificate, synthetic_uscc("360400", "hrss"), "360400202601010000001")

    async def fetch(adapter: DepartmentAdapter) -> None:
        assert isinstance(adapter, ELicenseAdapter)
        consent = {"jti": "conformance-jti-1", "issuer": "test-idp"}  # the record of the holder's authorization
        documents = await adapter.fetch_identity_documents("韦样例", GUANGXI, consent)
        assert sorted(d.kind for d in documents) == ["household_register", "id_card"], documents

    return ConformanceTarget(
        adapter_cls=ELicenseAdapter, mock_url=url,
        sample_requests=[department_request("employment_entrepreneurship_certificate", operation="issue_certificate",
                                            case_id="conf-lic", id_number=JIANGXI, profile="jiujiang",
                                            region_code="360400")],
        direct_operations={"fetch_identity_documents": fetch},
        callback_sample=signer("License", "e_license", {"ack_code": "SUCCESS", "errors": [], "data": {
            "requestId": CALLBACK_ID, "certTypeCode": certificate, "certIdentifier": identifier,
            "issueTime": "2026-01-01 09:00:00", "status": "issued"}}),
    )


TARGETS: dict[str, Callable[[str], ConformanceTarget]] = {
    "medical": medical_target, "hrss": hrss_target, "tax": tax_target, "housing_fund": housing_fund_target,
    "e_license": e_license_target,
}


@pytest.fixture
def department(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], RunningServer]]:
    """A fresh mock by name, with no simulated applicant and quick reviews."""
    monkeypatch.setenv("MOCK_APPLICANT_DELAY_S", "off")
    monkeypatch.setenv("MOCK_HRSS_REVIEW_S", "0.2")
    monkeypatch.setenv("MOCK_HRSS_CARD_S", "0.2")
    monkeypatch.delenv("MOCK_FAULTS", raising=False)
    started: list[RunningServer] = []

    def start(name: str) -> RunningServer:
        started.append(start_in_thread(create_mock(name)))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("name", list(TARGETS))
async def test_our_adapters_conform(department: Callable[[str], RunningServer], name: str) -> None:
    report = await run_conformance(TARGETS[name](department(name).url))
    assert report.ok, report.summary()
    skipped = {r.name for r in report.results if r.outcome == "skipped"}
    # Only e-license has a direct operation (and no form section); every other check ran for real.
    assert skipped == ({"fields_sent"} if name == "e_license" else {"direct_operations"}), report.summary()
    assert [r.name for r in report.results] == list(CHECKS)


# ---- adapters broken on purpose: each must fail the kit with the right check named


class ForgetfulMedical(MedicalAdapter):
    """Sends a fresh request id on every call, so a retry registers again."""

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        fresh = new_request_id()
        return await super().submit(dataclasses.replace(request, request_id=fresh))


class UnmappedMedical(MedicalAdapter):
    """Its table misses "1", the code the mock answers to a successful enrolment."""

    status_table = StatusTable(department="medical", entries={
        code: entry for code, entry in MedicalAdapter.status_table.entries.items() if code != "1"})


class GullibleMedical(MedicalAdapter):
    """Believes every callback."""

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        return CallbackEvent(request_id=CALLBACK_ID, outcome=NativeOutcome(native_status="1"))


class PatientMedical(MedicalAdapter):
    """Leaves the time-out to the shared client instead of applying its settings' operation time-out."""

    async def _call(self, envelope: dict[str, Any]) -> dict[str, Any]:
        url = self.ctx.settings.base_url.rstrip("/") + "/fsi/api/transaction"
        body: dict[str, Any] = (await self.ctx.http.post(url, json=envelope)).json()
        body["infcode"] = int(body["infcode"])
        return body


class ShyMedical(MedicalAdapter):
    """Turns a 5xx into a business answer instead of a technical fault."""

    async def _call(self, envelope: dict[str, Any]) -> dict[str, Any]:
        url = self.ctx.settings.base_url.rstrip("/") + "/fsi/api/transaction"
        response = await self.ctx.http.post(url, json=envelope, timeout=self.ctx.settings.timeout_s)
        if response.status_code >= 500:
            return {"infcode": -1, "err_msg": "E1004 "}
        return await super()._call(envelope)


class ForgetfulOfTheSchemeMedical(MedicalAdapter):
    """Drops a field the section schema marks `x-sent-to` (the 参保方式 chosen on the form)."""

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        section = {k: v for k, v in request.section.items() if k != "scheme"}
        return await super().submit(dataclasses.replace(request, section=section))


class UndeclaredRejectionMedical(MedicalAdapter):
    """A rejection without the reason the applicant is shown."""

    status_table = StatusTable(department="medical", entries={
        code: dataclasses.replace(entry, reason_en="") if code == "E1001" else entry
        for code, entry in MedicalAdapter.status_table.entries.items()})


@pytest.mark.parametrize(("broken", "check"), [
    (ForgetfulMedical, "idempotent_submit"),
    (UnmappedMedical, "submit_known_code"),
    (GullibleMedical, "callback_forged"),
    (GullibleMedical, "callback_unsigned"),
    (PatientMedical, "timeout_honoured"),
    (ShyMedical, "server_error"),
    (UndeclaredRejectionMedical, "status_table"),
    (ForgetfulOfTheSchemeMedical, "fields_sent"),
], ids=lambda value: value if isinstance(value, str) else value.__name__)
async def test_broken_adapters_fail_the_named_check(department: Callable[[str], RunningServer],
                                                   broken: type[MedicalAdapter], check: str) -> None:
    target = dataclasses.replace(medical_target(department("medical").url), adapter_cls=broken)
    report = await run_conformance(target)
    assert not report.ok
    assert check in report.failed_checks, report.summary()
    assert any(failure.startswith(f"{check}: ") for failure in report.failures)


async def test_a_missing_sample_is_named(department: Callable[[str], RunningServer]) -> None:
    target = medical_target(department("medical").url)
    target.sample_requests = target.sample_requests[:1]
    report = await run_conformance(target)
    assert report.failed_checks == {"operations_covered"}, report.summary()
    assert "resident_medical_enrolment" in report.failures[0]


async def test_the_kit_leaves_the_mock_without_faults(department: Callable[[str], RunningServer]) -> None:
    server = department("medical")
    report: ConformanceReport = await run_conformance(dataclasses.replace(medical_target(server.url),
                                                                          adapter_cls=ShyMedical))
    assert not report.ok
    assert server.app.state.mock.faults.model_dump() == {"error_rate": 0.0, "timeout_rate": 0.0, "latency_ms": 0,
                                                         "malformed_rate": 0.0, "outage": False}
