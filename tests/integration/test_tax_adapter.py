"""TaxAdapter against the GT3-style tax mock over loopback: declaration, payment H5 page, signed callback."""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.tax.adapter import TaxAdapter
from gateway.domain.status import TaskStatus
from gateway.sdk import (
    InvalidCallback,
    NativeOutcome,
)
from mocks.common import callback_headers
from mocks.tax.app import NATIVE_CODES
from tests.support.adapters import department_request, running_adapter
from tests.support.callbacks import CallbackRecorder, callback_recorder

SECRET = "tax-secret-under-test"


@pytest.fixture
def recorder() -> Iterator[CallbackRecorder]:
    with callback_recorder("tax") as record:
        yield record


@pytest.fixture
def tax_mock(mock_server, monkeypatch):
    monkeypatch.setenv("MOCK_TAX_CALLBACK_SECRET", SECRET)
    monkeypatch.setenv("MOCK_APPLICANT_DELAY_S", "off")
    return mock_server("tax")


def employee_row(**overrides: Any) -> dict[str, Any]:
    row = {"fee_type": "pension", "levy_item": "flexible_pension", "period_start": "2026-01-01",
           "period_end": "2026-03-31", "contribution_base": 5000}
    row.update(overrides)
    return row


def declaration(case_id: str = "case-tax-1", rows: list[dict[str, Any]] | None = None, **kwargs: Any):
    section = {"rows": [employee_row()] if rows is None else rows, "declaration_date": "2026-01-05"}
    return department_request("contribution_declaration", case_id=case_id, section=section, **kwargs)


def unified(outcome: NativeOutcome) -> TaskStatus:
    entry = TaxAdapter.status_table.lookup(outcome.native_status)
    assert entry is not None, f"native code {outcome.native_status!r} is not in the tax status table"
    return entry.status


def stats(server) -> dict[str, Any]:
    return httpx.get(server.url + "/_mock/stats").json()


async def test_declaration_awaits_payment_and_the_paid_callback_completes_it(tax_mock, recorder):
    request = declaration(callback_url=recorder.url)
    async with running_adapter(TaxAdapter, tax_mock.url, callback_secret=SECRET) as adapter:
        declared = await adapter.submit(request)
        assert unified(declared) is TaskStatus.AWAITING_PAYMENT
        # base 5000 x 20 % x 3 months, computed by the tax side
        assert declared.data["amount_due"] == "3000.00"
        assert declared.reference and len(declared.reference) == 18
        link = declared.links["payment"]
        assert link.startswith(tax_mock.url + "/h5/pay/")

        async with httpx.AsyncClient() as browser:
            page = await browser.get(link)
            assert page.status_code == 200 and "3000.00" in page.text
            assert f'action="{httpx.URL(link).path}/confirm"' in page.text
            first = await browser.post(link + "/confirm")
            again = await browser.post(link + "/confirm")  # a double tap pays once
        assert first.status_code == again.status_code == 200

        await recorder.wait_for(1)
        await asyncio.sleep(0.5)  # a second (wrong) callback would have arrived by now
        assert len(recorder.received) == 1
        headers, body = recorder.received[0]
        event = adapter.parse_callback(headers, body)
        assert event.request_id == request.request_id
        assert unified(event.outcome) is TaskStatus.COMPLETED
        receipt = event.outcome.data["receipt_number"]
        assert receipt and len(receipt) == 18 and receipt.isdigit()
        assert receipt in first.text and receipt in again.text
        assert event.outcome.reference == declared.reference
        assert event.outcome.data["amount_paid"] == "3000.00"

        queried = await adapter.query_status(request, declared.reference)
        assert queried.native_status == "paid" and queried.data["receipt_number"] == receipt
        repeated = await adapter.submit(request)  # a late retry learns it is paid and registers nothing
        assert repeated.native_status == "paid" and repeated.reference == declared.reference
    assert stats(tax_mock)["registrations"] == 1


async def test_repeated_declaration_registers_once(tax_mock):
    request = declaration(case_id="case-tax-dup")
    async with running_adapter(TaxAdapter, tax_mock.url) as adapter:
        first = await adapter.submit(request)
        again = await adapter.submit(request)
    assert again.reference == first.reference and again.links == first.links
    counts = stats(tax_mock)
    assert counts["registrations"] == 1 and counts["duplicates"] == 1


async def test_empty_section_declares_the_flexible_enrolments_for_this_month(tax_mock):
    """Jiujiang asks nothing at declaration: pension and medical at the lower base, current month."""
    request = department_request("contribution_declaration", case_id="case-jj", profile="jiujiang",
                                 region_code="360400", id_number="360403199005171231")
    async with running_adapter(TaxAdapter, tax_mock.url) as adapter:
        outcome = await adapter.submit(request)
    assert unified(outcome) is TaskStatus.AWAITING_PAYMENT
    today = dt.date.today()
    first_day = today.replace(day=1).isoformat()
    last_day = today.replace(day=calendar.monthrange(today.year, today.month)[1]).isoformat()
    rows = outcome.data["rows"]
    assert [row["levy_item_code"] for row in rows] == ["102100201", "102120201"]
    assert all(row["period_start"] == first_day and row["period_end"] == last_day for row in rows)
    assert outcome.data["amount_due"] == "1080.00"  # 4000 x 20 % + 4000 x 7 %


async def test_month_periods_and_resident_tiers_are_declared(tax_mock):
    rows = [{"fee_type": "medical", "levy_item": "resident_medical", "period_start": "2026-01",
             "period_end": "2026-12", "tier_amount": 400}]
    async with running_adapter(TaxAdapter, tax_mock.url) as adapter:
        outcome = await adapter.submit(declaration(case_id="case-resident", rows=rows))
    assert unified(outcome) is TaskStatus.AWAITING_PAYMENT
    assert outcome.data["amount_due"] == "400.00"
    assert outcome.data["rows"][0]["period_start"] == "2026-01-01"
    assert outcome.data["rows"][0]["period_end"] == "2026-12-31"


@pytest.mark.parametrize(
    ("row", "code"),
    [
        (employee_row(period_start="2026-05-01", period_end="2026-04-30"), "SB1001"),
        (employee_row(contribution_base=1), "SB1003"),
        ({"fee_type": "medical", "levy_item": "resident_medical", "period_start": "2026-01-01",
          "period_end": "2026-12-31", "tier_amount": 0}, "SB1003"),
        (employee_row(fee_type="medical"), "SB1007"),
    ],
    ids=["period-start-after-end", "base-below-minimum", "tier-below-minimum", "fee-type-mismatch"],
)
async def test_refused_rows_are_business_rejections(tax_mock, row, code):
    async with running_adapter(TaxAdapter, tax_mock.url) as adapter:
        outcome = await adapter.submit(declaration(rows=[row]))
    assert outcome.native_status == code
    entry = TaxAdapter.status_table.lookup(code)
    assert entry is not None and entry.kind == "rejection" and entry.status is TaskStatus.REJECTED
    assert outcome.message and NATIVE_CODES[code] in outcome.message
    assert stats(tax_mock)["registrations"] == 1  # a refusal is remembered for its request id too


async def test_invalid_id_number_and_unknown_levy_item_are_rejections(tax_mock):
    async with running_adapter(TaxAdapter, tax_mock.url,
                               options={"levy_items": {"flexible_pension": ["10210", "999999999"]}}) as adapter:
        unknown_item = await adapter.submit(declaration(case_id="case-unknown-item"))
        bad_id = await adapter.submit(declaration(case_id="case-bad-id", id_number="450103199005171A39"))
    assert unknown_item.native_status == "SB1005" and "999999999" in (unknown_item.message or "")
    assert bad_id.native_status == "SB1004"
    for outcome in (unknown_item, bad_id):
        assert unified(outcome) is TaskStatus.REJECTED


async def test_same_person_and_period_under_another_request_is_refused(tax_mock):
    async with running_adapter(TaxAdapter, tax_mock.url) as adapter:
        first = await adapter.submit(declaration(case_id="case-a"))
        # overlapping period (March), another case: unpaid first, then paid
        overlapping = [employee_row(period_start="2026-03-01", period_end="2026-06-30")]
        unpaid = await adapter.submit(declaration(case_id="case-b", rows=overlapping))
        async with httpx.AsyncClient() as browser:
            await browser.post(first.links["payment"] + "/confirm")
        paid = await adapter.submit(declaration(case_id="case-c", rows=overlapping))
        later = await adapter.submit(declaration(case_id="case-d", rows=[employee_row(
            period_start="2026-04-01", period_end="2026-06-30")]))
        other_person = await adapter.submit(declaration(case_id="case-e", id_number="450103199005171247"))
    assert unpaid.native_status == "SB1006" and first.reference in (unpaid.message or "")
    assert paid.native_status == "SB1002"
    assert unified(unpaid) is unified(paid) is TaskStatus.REJECTED
    assert unified(later) is TaskStatus.AWAITING_PAYMENT
    assert unified(other_person) is TaskStatus.AWAITING_PAYMENT


async def test_query_before_declaration_is_technical(tax_mock):
    async with running_adapter(TaxAdapter, tax_mock.url) as adapter:
        outcome = await adapter.query_status(declaration(case_id="case-never"), None)
    entry = TaxAdapter.status_table.lookup(outcome.native_status)
    assert outcome.native_status == "SB0404" and entry is not None and entry.kind == "technical"


# Faults of every kind (5xx, outage, malformed, time-out, refused connection) are checked for every adapter by
# the conformance kit: tests/integration/test_conformance.py.


def test_every_native_code_of_the_mock_is_mapped():
    table = TaxAdapter.status_table.entries
    assert set(NATIVE_CODES) <= set(table), sorted(set(NATIVE_CODES) - set(table))
    assert table["declared"].status is TaskStatus.AWAITING_PAYMENT
    assert table["paid"].status is TaskStatus.COMPLETED
    for code in ("SB0000", "SB0404", "SB9999"):
        assert table[code].kind == "technical"
    for code in ("SB1001", "SB1002", "SB1003", "SB1004", "SB1005", "SB1006", "SB1007"):
        assert table[code].kind == "rejection" and table[code].reason_zh and table[code].reason_en


def signed(body: bytes, *, secret: str = SECRET, age_s: float = 0, adapter: str = "tax",
           request_id: str = "GW1") -> dict[str, str]:
    """The department's side of the callback contract, as the mock implements it."""
    return callback_headers(secret, adapter, request_id, body, signature_header="X-Gt3-Signature",
                            timestamp_header="X-Gt3-Timestamp", timestamp=str(int(time.time() - age_s)))


CALLBACK = json.dumps({"head": {"tranId": "SBF.TZ.JKJG", "rtnCode": "0000", "rtnMsg": "缴费成功"},
                       "body": {"ywlsh": "GW1", "pzhm": "145260105000000001", "sbzt": "paid",
                                "dzsphm": "345260105000000002"}}, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "headers",
    [{}, signed(CALLBACK, secret="not-the-tax-key"), signed(CALLBACK, age_s=301),
     {**signed(CALLBACK), "X-Gt3-Signature": "0" * 64}, {**signed(CALLBACK), "X-Gt3-Timestamp": "yesterday"},
     signed(CALLBACK, request_id="GW2"), {**signed(CALLBACK), "X-Request-Id": "GW2"},
     signed(CALLBACK, adapter="medical")],
    ids=["unsigned", "forged", "stale", "wrong-signature", "bad-timestamp", "signed-for-another-request",
         "request-id-header-swapped", "signed-for-another-adapter"],
)
async def test_bad_callbacks_are_refused(headers):
    async with running_adapter(TaxAdapter, "http://127.0.0.1:9", callback_secret=SECRET) as adapter:
        assert adapter.parse_callback(signed(CALLBACK), CALLBACK).request_id == "GW1"  # the same body, signed, passes
        with pytest.raises(InvalidCallback):
            adapter.parse_callback(headers, CALLBACK)
