"""The HRSS adapter against the HRSS mock over real SOAP on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request

from adapters.hrss.adapter import PHOTO_SPEC, SOAP_CLIENT_FAULT, HrssAdapter
from gateway.domain.status import TaskStatus
from gateway.sdk import (
    AdapterContext,
    AdapterSettings,
    DepartmentTimeout,
    DepartmentUnavailable,
    InvalidCallback,
    MalformedReply,
    NativeOutcome,
    StatusEntry,
)
from mocks.common import callback_headers, env_secret
from mocks.hrss.app import NATIVE_CODES
from mocks.serving import RunningServer, free_port, start_in_thread
from tests.support.adapters import department_request, running_adapter

ORDINARY = "450103199005171239"  # sequence digit 3: an ordinary Guangxi applicant
ENROLLED = "450103199005171271"  # 7: already enrolled in employee pension
CARD_HOLDER = "45010319900517128X"  # 8: already holds a social-security card
JIANGXI = "360403199005171233"  # household registration outside Guangxi
SECRET = env_secret("hrss")  # the mock's default key, which running_adapter gives the adapter


def entry(outcome: NativeOutcome) -> StatusEntry:
    found = HrssAdapter.status_table.lookup(outcome.native_status)
    assert found is not None, f"native code {outcome.native_status!r} is not in the status table"
    return found


def stats(server: RunningServer) -> dict[str, int]:
    result: dict[str, int] = httpx.get(server.url + "/_mock/stats").json()
    return result


def set_faults(server: RunningServer, **faults: object) -> None:
    httpx.post(server.url + "/_mock/faults", json=faults).raise_for_status()


def photo(width: int = 358, height: int = 441, dpi: int = 350, size: int = 40 * 1024) -> str:
    """A JPEG's headers built by hand, padded to `size` bytes, base64 as the section carries it."""

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    head = (b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x02\x01" + dpi.to_bytes(2, "big") * 2 + b"\x00\x00")
            + segment(0xC0, b"\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big")
                      + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"))
    data = head + segment(0xFE, b"\x00" * (size - len(head) - 6)) + b"\xff\xd9"
    return base64.b64encode(data).decode()


@pytest.fixture
def hrss(mock_server, monkeypatch) -> RunningServer:
    """The HRSS mock with reviews and card production compressed to 0.2 s and no simulated applicant."""
    monkeypatch.setenv("MOCK_HRSS_REVIEW_S", "0.2")
    monkeypatch.setenv("MOCK_HRSS_CARD_S", "0.2")
    monkeypatch.setenv("MOCK_APPLICANT_DELAY_S", "off")
    monkeypatch.delenv("MOCK_FAULTS", raising=False)
    server: RunningServer = mock_server("hrss")
    return server


class Receiver:
    """The gateway's callback endpoint, reduced to recording what arrives."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()

        @self.app.post("/v1/callbacks/hrss")
        async def record(request: Request) -> dict[str, bool]:
            self.posts.append((dict(request.headers), await request.body()))
            return {"ok": True}

    async def wait(self, count: int = 1, timeout_s: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.posts) < count:
            assert time.monotonic() < deadline, f"expected {count} callback(s), got {len(self.posts)}"
            await asyncio.sleep(0.05)
        return self.posts


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    server = start_in_thread(receiver.app)
    yield receiver, server.url + "/v1/callbacks/hrss"
    server.stop()


def test_every_native_code_the_mock_can_answer_is_mapped():
    table = HrssAdapter.status_table.entries
    assert set(NATIVE_CODES) | {PHOTO_SPEC, SOAP_CLIENT_FAULT} == set(table)
    for code in table.values():
        assert code.reason_zh and code.reason_en
    assert table[SOAP_CLIENT_FAULT].kind == "technical"
    assert table[PHOTO_SPEC].status is TaskStatus.REJECTED


@pytest.mark.parametrize("operation", ["employment_registration", "employee_pension_enrolment"])
async def test_immediate_matters_complete(hrss, operation):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        outcome = await adapter.submit(department_request(operation, section={"start_month": "2026-04"}
                                                          if operation == "employee_pension_enrolment" else {}))
    assert entry(outcome).status is TaskStatus.COMPLETED
    assert outcome.reference and outcome.reference.startswith("RS")
    if operation == "employee_pension_enrolment":
        assert outcome.data["aac001"]


async def test_repeat_submit_registers_once(hrss):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        request = department_request("employment_registration", section={"employment_type": "self_employed"})
        first = await adapter.submit(request)
        again = await adapter.submit(request)
        # A new request (another case) for the same person is a second registration: refused.
        other = await adapter.submit(department_request("employment_registration", case_id="case-test-2"))
    assert again.native_status == first.native_status == "09" and again.reference == first.reference
    assert entry(other).kind == "rejection" and other.native_status == "1006"
    counts = stats(hrss)
    assert counts["registrations"] == 2 and counts["duplicates"] == 1 and counts["received"] == 3


async def test_resident_pension_review_ends_with_a_signed_callback(hrss, receiver):
    recorder, url = receiver
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        request = department_request("resident_pension_enrolment", callback_url=url,
                                     section={"contribution_tier": 300, "special_groups": ["subsistence_allowance"]})
        outcome = await adapter.submit(request)
        assert entry(outcome).status is TaskStatus.IN_REVIEW
        assert entry(await adapter.query_status(request, outcome.reference)).status is TaskStatus.IN_REVIEW
        headers, body = (await recorder.wait())[0]
        assert "x-hrss-timestamp" in headers and "x-hrss-signature" in headers
        event = adapter.parse_callback(headers, body)
        polled = await adapter.query_status(request, outcome.reference)
    assert event.request_id == request.request_id
    assert entry(event.outcome).status is TaskStatus.COMPLETED and event.outcome.data["aac001"]
    assert event.outcome.reference == outcome.reference
    assert entry(polled).status is TaskStatus.COMPLETED


async def test_resident_pension_needs_guangxi_household_registration(hrss, receiver):
    recorder, url = receiver
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        request = department_request("resident_pension_enrolment", id_number=JIANGXI, callback_url=url,
                                     section={"contribution_tier": 100})
        assert entry(await adapter.submit(request)).status is TaskStatus.IN_REVIEW
        headers, body = (await recorder.wait())[0]
        event = adapter.parse_callback(headers, body)
    refused = entry(event.outcome)
    assert refused.kind == "rejection" and event.outcome.native_status == "1003" and event.outcome.message


@pytest.mark.parametrize(("id_number", "operation", "section", "code"), [
    (ENROLLED, "employee_pension_enrolment", {}, "1001"),
    (ENROLLED, "resident_pension_enrolment", {"contribution_tier": 200}, "1002"),
    (CARD_HOLDER, "social_security_card", {"bank": "工商银行"}, "1004"),
    (ORDINARY, "archive_transfer",
     {"direction": "out", "transfer_reason": "resignation_or_dismissal", "archive_to": "南宁人才服务中心"}, "1007"),
])
async def test_business_rejections(hrss, id_number, operation, section, code):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        outcome = await adapter.submit(department_request(operation, id_number=id_number, section=section))
    assert outcome.native_status == code
    assert entry(outcome).kind == "rejection" and outcome.message == NATIVE_CODES[code]


async def test_employee_pension_then_resident_pension_is_refused(hrss):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        await adapter.submit(department_request("employee_pension_enrolment"))
        outcome = await adapter.submit(department_request("resident_pension_enrolment",
                                                          section={"contribution_tier": 300}))
    assert outcome.native_status == "1002"


async def test_archive_transfer_is_reviewed(hrss, receiver):
    recorder, url = receiver
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        request = department_request("archive_transfer", callback_url=url, section={
            "direction": "out", "transfer_reason": "graduation", "archive_from": "广西大学",
            "archive_to": "南宁市人才服务中心",
            "transfer_letter_no": "DDH2026-0001"})
        assert entry(await adapter.submit(request)).status is TaskStatus.IN_REVIEW
        event = adapter.parse_callback(*(await recorder.wait())[0])
    assert event.request_id == request.request_id and entry(event.outcome).status is TaskStatus.COMPLETED


async def test_card_without_photo_waits_for_the_applicant_behind_an_h5_link(hrss, receiver):
    recorder, url = receiver
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        request = department_request("social_security_card", callback_url=url,
                                     section={"bank": "桂林银行", "id_valid_long_term": True})
        outcome = await adapter.submit(request)
        assert entry(outcome).status is TaskStatus.AWAITING_PAYMENT
        link = outcome.links["photo"]
        assert link.startswith(hrss.url + "/h5/photo/")
        assert recorder.posts == []
        async with httpx.AsyncClient() as browser:
            page = await browser.get(link)
            assert page.status_code == 200 and "上传社会保障卡制卡照片" in page.text
            refused = await browser.post(link + "/confirm", content=b"not a jpeg")
            assert refused.status_code == 400
            upload = await browser.post(link + "/confirm", content=base64.b64decode(photo()),
                                        headers={"Content-Type": "image/jpeg"})
            assert upload.status_code == 200
        assert entry(await adapter.query_status(request, outcome.reference)).status is TaskStatus.IN_REVIEW  # 制卡中
        event = adapter.parse_callback(*(await recorder.wait())[0])
    assert event.request_id == request.request_id and entry(event.outcome).status is TaskStatus.COMPLETED


async def test_applicant_uploads_the_photo_as_json_through_the_link(mock_server, monkeypatch, receiver):
    recorder, url = receiver
    monkeypatch.setenv("MOCK_HRSS_CARD_S", "0.1")
    server = mock_server("hrss")
    async with running_adapter(HrssAdapter, server.url) as adapter:
        request = department_request("social_security_card", callback_url=url, section={"bank": "北部湾银行"})
        outcome = await adapter.submit(request)
        assert entry(outcome).status is TaskStatus.AWAITING_PAYMENT
        async with httpx.AsyncClient() as browser:
            assert (await browser.post(outcome.links["photo"] + "/confirm",
                                       json={"photo_jpeg_base64": "bm90IGEganBlZw=="})).status_code == 400
            assert (await browser.post(outcome.links["photo"] + "/confirm",
                                       json={"photo_jpeg_base64": photo()})).status_code == 200
        event = adapter.parse_callback(*(await recorder.wait())[0])
    assert entry(event.outcome).status is TaskStatus.COMPLETED


async def test_card_with_photo_to_spec_goes_to_production(hrss, receiver):
    recorder, url = receiver
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        outcome = await adapter.submit(department_request(
            "social_security_card", callback_url=url, section={"bank": "工商银行", "photo_jpeg_base64": photo()}))
        assert outcome.native_status == "03" and entry(outcome).status is TaskStatus.IN_REVIEW
        event = adapter.parse_callback(*(await recorder.wait())[0])
    assert entry(event.outcome).status is TaskStatus.COMPLETED


@pytest.mark.parametrize(("picture", "problem"), [
    (photo(width=413, height=531), "dimensions"),
    (photo(dpi=300), "dpi"),
    (photo(size=20 * 1024), "size"),
    (photo(size=60 * 1024), "size"),
    ("this is not base64!", "format"),
])
async def test_photo_off_spec_is_refused_without_calling_the_department(hrss, picture, problem):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        outcome = await adapter.submit(department_request(
            "social_security_card", section={"bank": "工商银行", "photo_jpeg_base64": picture}))
    assert outcome.native_status == PHOTO_SPEC and entry(outcome).kind == "rejection"
    assert [p["code"] for p in outcome.data["photo_problems"]] == [problem] and outcome.message
    assert stats(hrss)["received"] == 0


async def test_photo_byte_range_comes_from_the_settings(hrss):
    async with running_adapter(HrssAdapter, hrss.url,
                               options={"photo_min_bytes": 14 * 1024, "photo_max_bytes": 40 * 1024}) as adapter:
        small = await adapter.submit(department_request(
            "social_security_card", section={"bank": "工商银行", "photo_jpeg_base64": photo(size=20 * 1024)}))
        large = await adapter.submit(department_request(
            "social_security_card", case_id="case-test-2",
            section={"bank": "工商银行", "photo_jpeg_base64": photo(size=45 * 1024)}))
    assert small.native_status == "03" and large.native_status == PHOTO_SPEC


async def test_soap_client_fault_is_technical(hrss):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        # The department's own schema check: a birth date it cannot read.
        fault = await adapter.submit(department_request("employment_registration", birth_date="17.05.1990"))
        # zeep's check against the WSDL: a required element missing, so nothing is sent.
        unsent = await adapter.submit(department_request("resident_pension_enrolment", case_id="case-test-2"))
    assert fault.native_status == unsent.native_status == SOAP_CLIENT_FAULT
    assert entry(fault).kind == "technical" and "aac006" in (fault.message or "")
    assert "contributionLevel" in (unsent.message or "")
    assert stats(hrss)["registrations"] == 0 and stats(hrss)["received"] == 0


@pytest.mark.parametrize(("fault", "error"), [({"error_rate": 1.0}, DepartmentUnavailable),
                                              ({"outage": True}, DepartmentUnavailable),
                                              ({"malformed_rate": 1.0}, MalformedReply)])
async def test_faults_are_technical(hrss, fault, error):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        set_faults(hrss, **fault)
        with pytest.raises(error):
            await adapter.submit(department_request("employment_registration"))
        with pytest.raises(error):
            await adapter.query_status(department_request("employment_registration"), None)


async def test_operation_timeout_is_the_adapters_own(hrss):
    # The shared client would wait 60 s: only the adapter's operation time-out can end the call in time.
    settings = AdapterSettings(base_url=hrss.url, timeout_s=0.5)
    async with httpx.AsyncClient(timeout=60.0) as http:
        adapter = HrssAdapter(AdapterContext(name="hrss", settings=settings, http=http,
                                             logger=structlog.get_logger("hrss")))
        await adapter.start()
        set_faults(hrss, timeout_rate=1.0)
        with pytest.raises(DepartmentTimeout):
            await asyncio.wait_for(adapter.submit(department_request("employment_registration")), 10)
        await adapter.close()
    assert stats(hrss)["registrations"] == 1  # the department did the work; only its answer was lost


async def test_query_for_an_unknown_request_is_technical(hrss):
    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        outcome = await adapter.query_status(department_request("archive_transfer"), None)
    assert outcome.native_status == "1404" and entry(outcome).kind == "technical"


async def test_department_down_is_unavailable_at_the_call_then_works(hrss):
    set_faults(hrss, outage=True)
    async with httpx.AsyncClient() as http:
        adapter = HrssAdapter(AdapterContext(name="hrss", settings=AdapterSettings(base_url=hrss.url), http=http,
                                             logger=structlog.get_logger("hrss")))
        await adapter.start()  # the WSDL ships with the adapter: starting never depends on the department
        with pytest.raises(DepartmentUnavailable):
            await adapter.submit(department_request("employment_registration"))
        set_faults(hrss)
        outcome = await adapter.submit(department_request("employment_registration"))
        await adapter.close()
    assert outcome.native_status == "09"


async def test_nothing_listening_is_unavailable():
    settings = AdapterSettings(base_url=f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    async with httpx.AsyncClient() as http:
        adapter = HrssAdapter(AdapterContext(name="hrss", settings=settings, http=http,
                                             logger=structlog.get_logger("hrss")))
        await adapter.start()
        with pytest.raises(DepartmentUnavailable):
            await adapter.submit(department_request("employment_registration"))


async def test_the_shared_client_keeps_its_headers(hrss):
    async with httpx.AsyncClient(headers={"X-Gateway": "flexgw"}) as http:
        adapter = HrssAdapter(AdapterContext(name="hrss", settings=AdapterSettings(base_url=hrss.url), http=http,
                                             logger=structlog.get_logger("hrss")))
        await adapter.start()
        await adapter.close()
        assert http.headers["X-Gateway"] == "flexgw" and "zeep" not in http.headers["User-Agent"].lower()


async def test_forged_stale_or_unsigned_callbacks_are_refused(hrss):
    body = json.dumps({"requestId": "GW1", "rc": 0, "zt": "09", "message": "办结"}).encode()

    def signed(payload: bytes = body, *, secret: str = SECRET, adapter: str = "hrss", request_id: str = "GW1",
               timestamp: str | None = None) -> dict[str, str]:
        return callback_headers(secret, adapter, request_id, payload, signature_header="X-Hrss-Signature",
                                timestamp_header="X-Hrss-Timestamp", timestamp=timestamp)

    async with running_adapter(HrssAdapter, hrss.url) as adapter:
        good = signed()
        assert adapter.parse_callback(good, body).request_id == "GW1"
        refused = [
            (good, body.replace(b"09", b"01")),  # body changed after signing
            (signed(secret="someone-else"), body),
            (signed(timestamp=str(int(time.time()) - 301)), body),
            ({"X-Hrss-Timestamp": good["X-Hrss-Timestamp"], "X-Request-Id": "GW1"}, body),
            ({**good, "X-Hrss-Timestamp": "yesterday"}, body),
            (signed(adapter="tax"), body),  # a signature made for another department
            (signed(request_id="GW2"), body),  # ... or for another request
            ({**good, "X-Request-Id": "GW2"}, body),
        ]
        for headers, payload in refused:
            with pytest.raises(InvalidCallback):
                adapter.parse_callback(headers, payload)
        unreadable = b"{not json"
        with pytest.raises(InvalidCallback):
            adapter.parse_callback(signed(unreadable), unreadable)


def test_wsdl_points_at_the_service_itself(hrss):
    wsdl = httpx.get(hrss.url + "/hrss/service?wsdl")
    assert wsdl.status_code == 200 and f'location="{hrss.url}/hrss/service"' in wsdl.text


_QUERY = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:rs="urn:mock:hrss:flexemp:v1">'
          b"<soap:Body><rs:queryBusiness><rs:requestId>%s</rs:requestId></rs:queryBusiness></soap:Body></soap:Envelope>")


@pytest.mark.parametrize("envelope", [
    # Well-formed queries, but with a DTD: refused as a whole, entities never expanded.
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "boom">]>' + _QUERY % b"GW1",
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "boom">]>' + _QUERY % b"&x;",
    b"<soap:Envelope",
    b'<Envelope xmlns="urn:other"/>',
])
def test_mock_answers_unreadable_envelopes_with_a_client_fault(hrss, envelope):
    answer = httpx.post(hrss.url + "/hrss/service", content=envelope, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 500
    assert "<faultcode>soap:Client</faultcode>" in answer.text and "boom" not in answer.text
