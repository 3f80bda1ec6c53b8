"""HousingFundAdapter against the JGJ/T 320-style centre mock over loopback: opening, deposit H5 page, callback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.housing_fund.adapter import HousingFundAdapter
from gateway.domain.status import TaskStatus
from gateway.sdk import (
    InvalidCallback,
    NativeOutcome,
)
from mocks.common import callback_headers
from mocks.housing_fund.app import NATIVE_CODES
from tests.support.adapters import department_request, running_adapter
from tests.support.callbacks import CallbackRecorder, callback_recorder

SECRET = "gjj-secret-under-test"
JIUJIANG_ID = "360403199005171231"  # ordinary person (sequence ends in 3)


@pytest.fixture
def recorder() -> Iterator[CallbackRecorder]:
    with callback_recorder("housing_fund") as record:
        yield record


@pytest.fixture
def fund_mock(mock_server, monkeypatch):
    monkeypatch.setenv("MOCK_HOUSING_FUND_CALLBACK_SECRET", SECRET)
    monkeypatch.setenv("MOCK_APPLICANT_DELAY_S", "off")
    return mock_server("housing_fund")


def opening(case_id: str = "case-gjj-1", *, id_number: str = JIUJIANG_ID, monthly_amount: int = 500, **kwargs: Any):
    section = {"collection_point": "360403", "monthly_amount": monthly_amount, "has_employment_contract": False,
               "insured_elsewhere": False, "deposit_commitment": True}
    return department_request("housing_fund_account", case_id=case_id, id_number=id_number, section=section,
                              profile="jiujiang", region_code="360400", **kwargs)


def unified(outcome: NativeOutcome) -> TaskStatus:
    entry = HousingFundAdapter.status_table.lookup(outcome.native_status)
    assert entry is not None, f"native code {outcome.native_status!r} is not in the housing fund status table"
    return entry.status


def stats(server) -> dict[str, Any]:
    return httpx.get(server.url + "/_mock/stats").json()


async def test_opening_awaits_the_deposit_and_the_deposited_callback_completes_it(fund_mock, recorder):
    request = opening(callback_url=recorder.url)
    async with running_adapter(HousingFundAdapter, fund_mock.url, callback_secret=SECRET) as adapter:
        opened = await adapter.submit(request)
        assert unified(opened) is TaskStatus.AWAITING_PAYMENT
        account = opened.data["account_number"]
        assert opened.reference == account and len(account) == 12 and account.startswith("3604")
        assert opened.data["monthly_amount"] == "500.00" and opened.data["collection_point"] == "360403"
        assert opened.data["account_status"] == "0" and opened.data["paid_up_to"] is None
        link = opened.links["deposit"]
        assert link.startswith(fund_mock.url + "/h5/deposit/")

        async with httpx.AsyncClient() as bank_app:
            page = await bank_app.get(link)
            assert page.status_code == 200 and account in page.text and "500.00" in page.text
            assert f'action="{httpx.URL(link).path}/confirm"' in page.text
            first = await bank_app.post(link + "/confirm")
            again = await bank_app.post(link + "/confirm")  # a double tap deposits once
        assert first.status_code == again.status_code == 200

        await recorder.wait_for(1)
        await asyncio.sleep(0.5)  # a second (wrong) callback would have arrived by now
        assert len(recorder.received) == 1
        event = adapter.parse_callback(*recorder.received[0])
        assert event.request_id == request.request_id
        assert unified(event.outcome) is TaskStatus.COMPLETED
        this_month = dt.date.today().strftime("%Y%m")
        assert event.outcome.reference == account
        assert event.outcome.data["paid_up_to"] == this_month
        assert event.outcome.data["deposit_amount"] == "500.00"
        serial = event.outcome.data["bank_serial"]
        assert serial and serial in first.text and serial in again.text

        queried = await adapter.query_status(request, account)
        assert queried.native_status == "deposited" and queried.data["paid_up_to"] == this_month
        repeated = await adapter.submit(request)  # a late retry learns it is deposited and registers nothing
        assert repeated.native_status == "deposited" and repeated.reference == account
    assert stats(fund_mock)["registrations"] == 1


async def test_repeated_opening_registers_once(fund_mock):
    request = opening(case_id="case-gjj-dup")
    async with running_adapter(HousingFundAdapter, fund_mock.url) as adapter:
        first = await adapter.submit(request)
        again = await adapter.submit(request)
    assert again.reference == first.reference and again.links == first.links
    counts = stats(fund_mock)
    assert counts["registrations"] == 1 and counts["duplicates"] == 1


async def test_person_with_an_account_is_refused_with_its_status(fund_mock):
    async with running_adapter(HousingFundAdapter, fund_mock.url) as adapter:
        known = await adapter.submit(opening(case_id="case-known", id_number="360403199005171271"))  # marker 7
        first = await adapter.submit(opening(case_id="case-first"))
        second = await adapter.submit(opening(case_id="case-second"))  # same person, another case
    assert known.native_status == second.native_status == "200001"
    assert known.data["account_status"] == second.data["account_status"] == "0"
    assert second.reference == first.reference  # the account the person already has
    assert unified(first) is TaskStatus.AWAITING_PAYMENT
    for outcome in (known, second):
        assert unified(outcome) is TaskStatus.REJECTED and NATIVE_CODES["200001"] in (outcome.message or "")


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [({"monthly_amount": 50}, "200002"), ({"monthly_amount": 20000}, "200002"),
     ({"id_number": "360403199005171A33"}, "200003")],
    ids=["below-minimum", "above-maximum", "invalid-id"],
)
async def test_refusals_are_business_rejections(fund_mock, request_kwargs, code):
    async with running_adapter(HousingFundAdapter, fund_mock.url) as adapter:
        outcome = await adapter.submit(opening(**request_kwargs))
    assert outcome.native_status == code
    entry = HousingFundAdapter.status_table.lookup(code)
    assert entry is not None and entry.kind == "rejection" and entry.status is TaskStatus.REJECTED
    assert outcome.message and NATIVE_CODES[code] in outcome.message


async def test_query_before_opening_is_technical(fund_mock):
    async with running_adapter(HousingFundAdapter, fund_mock.url) as adapter:
        outcome = await adapter.query_status(opening(case_id="case-never"), None)
    entry = HousingFundAdapter.status_table.lookup(outcome.native_status)
    assert outcome.native_status == "900404" and entry is not None and entry.kind == "technical"


# Faults of every kind (5xx, outage, malformed, time-out, refused connection) are checked for every adapter by
# the conformance kit: tests/integration/test_conformance.py.


def test_every_native_code_of_the_mock_is_mapped():
    table = HousingFundAdapter.status_table.entries
    assert set(NATIVE_CODES) <= set(table), sorted(set(NATIVE_CODES) - set(table))
    assert table["opened"].status is TaskStatus.AWAITING_PAYMENT
    assert table["deposited"].status is TaskStatus.COMPLETED
    for code in ("900001", "900404", "999999"):
        assert table[code].kind == "technical"
    for code in ("200001", "200002", "200003"):
        assert table[code].kind == "rejection" and table[code].reason_zh and table[code].reason_en


def signed(body: bytes, *, secret: str = SECRET, age_s: float = 0, adapter: str = "housing_fund",
           request_id: str = "GW1") -> dict[str, str]:
    """The department's side of the callback contract, as the mock implements it."""
    return callback_headers(secret, adapter, request_id, body, signature_header="X-Gjj-Signature",
                            timestamp_header="X-Gjj-Timestamp", timestamp=str(int(time.time() - age_s)))


CALLBACK = json.dumps({"transCode": "1201", "recode": "000000", "msg": "缴存成功",
                       "body": {"YWLSH": "GW1", "BLZT": "deposited", "GRZH": "360400000001", "JZNY": "202601"}},
                      ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "headers",
    [{}, signed(CALLBACK, secret="not-the-centre-key"), signed(CALLBACK, age_s=301),
     {**signed(CALLBACK), "X-Gjj-Signature": "0" * 64}, {**signed(CALLBACK), "X-Gjj-Timestamp": "yesterday"},
     signed(CALLBACK, request_id="GW2"), {**signed(CALLBACK), "X-Request-Id": "GW2"},
     signed(CALLBACK, adapter="medical")],
    ids=["unsigned", "forged", "stale", "wrong-signature", "bad-timestamp", "signed-for-another-request",
         "request-id-header-swapped", "signed-for-another-adapter"],
)
async def test_bad_callbacks_are_refused(headers):
    async with running_adapter(HousingFundAdapter, "http://127.0.0.1:9", callback_secret=SECRET) as adapter:
        assert adapter.parse_callback(signed(CALLBACK), CALLBACK).request_id == "GW1"  # the same body, signed, passes
        with pytest.raises(InvalidCallback):
            adapter.parse_callback(headers, CALLBACK)
