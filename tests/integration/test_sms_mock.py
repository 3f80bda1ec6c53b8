import asyncio
import base64
import struct

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from mocks.serving import start_in_thread
from mocks.sms.app import card_photo_jpeg, links_in

PHONE = "13912345678"


async def send(client: httpx.AsyncClient, url: str, msg_id: str, text: str, phone: str = PHONE) -> httpx.Response:
    return await client.post(url + "/sms/send", json={"msg_id": msg_id, "phone": phone, "text": text,
                                                      "template": "task_status"})


async def test_messages_are_recorded_with_their_time_and_filtered_by_phone(mock_server):
    server = mock_server("sms")
    async with httpx.AsyncClient() as client:
        first = await send(client, server.url, "m-1", "您的灵活就业参保申请已受理")
        await send(client, server.url, "m-2", "另一位申请人", phone="13800000000")
        everyone = (await client.get(server.url + "/_mock/messages")).json()["messages"]
        mine = (await client.get(server.url + "/_mock/messages", params={"phone": PHONE})).json()["messages"]
    assert first.status_code == 200 and first.json()["code"] == "OK" and first.json()["biz_id"]
    assert [m["msg_id"] for m in everyone] == ["m-1", "m-2"]
    assert [(m["msg_id"], m["text"], m["template"]) for m in mine] == [("m-1", "您的灵活就业参保申请已受理",
                                                                         "task_status")]
    assert mine[0]["received_at"] and mine[0]["biz_id"] == first.json()["biz_id"]


async def test_a_retried_send_is_recorded_once(mock_server):
    server = mock_server("sms")
    async with httpx.AsyncClient() as client:
        first = (await send(client, server.url, "m-1", "您的申请已受理")).json()
        again = (await send(client, server.url, "m-1", "您的申请已受理")).json()
        messages = (await client.get(server.url + "/_mock/messages")).json()["messages"]
        stats = (await client.get(server.url + "/_mock/stats")).json()
    assert again == first and len(messages) == 1
    assert stats["received"] == 2 and stats["duplicates"] == 1 and stats["registrations"] == 1


@pytest.mark.parametrize(("body", "code"), [({"msg_id": "m", "phone": PHONE}, "INVALID_PARAMETERS"),
                                            ({"msg_id": "m", "phone": "12345", "text": "x"}, "MOBILE_NUMBER_ILLEGAL")])
async def test_bad_requests_are_refused_and_not_recorded(mock_server, body, code):
    server = mock_server("sms")
    async with httpx.AsyncClient() as client:
        response = await client.post(server.url + "/sms/send", json=body)
        messages = (await client.get(server.url + "/_mock/messages")).json()["messages"]
    assert response.status_code == 400 and response.json()["code"] == code and messages == []


@pytest.mark.parametrize(("fault", "status"), [({"error_rate": 1.0}, 500), ({"outage": True}, 503)])
async def test_faults_refuse_the_send(mock_server, fault, status):
    server = mock_server("sms")
    async with httpx.AsyncClient() as client:
        await client.post(server.url + "/_mock/faults", json=fault)
        response = await send(client, server.url, "m-1", "text")
    assert response.status_code == status and response.json()["code"] != "OK"


async def test_malformed_fault_garbles_the_reply(mock_server):
    server = mock_server("sms")
    async with httpx.AsyncClient() as client:
        await client.post(server.url + "/_mock/faults", json={"malformed_rate": 1.0})
        response = await send(client, server.url, "m-1", "text")
    with pytest.raises(ValueError):
        response.json()


def department_and_gateway() -> tuple[FastAPI, list[tuple[str, dict | None]]]:
    """A department's H5 pages and a gateway link route that redirects to them, the way the real pair behaves."""
    app = FastAPI()
    confirmed: list[tuple[str, dict | None]] = []

    @app.get("/link/{token}")
    async def gateway_link(token: str) -> RedirectResponse:
        step = "photo" if token.startswith("photo") else "pay"
        return RedirectResponse(f"/h5/{step}/REF-1?sig={token}", status_code=302)

    @app.get("/h5/{step}/{reference}")
    async def page(step: str, reference: str) -> HTMLResponse:
        return HTMLResponse(f"<html><body>{step} {reference}</body></html>")

    @app.post("/h5/{step}/{reference}/confirm")
    async def confirm(step: str, reference: str, request: Request) -> dict[str, str]:
        raw = await request.body()
        confirmed.append((f"{step}/{reference}?{request.url.query}", (await request.json()) if raw else None))
        return {"status": "confirmed"}

    return app, confirmed


async def wait_for(predicate, timeout_s: float = 10.0) -> None:
    """Poll an async predicate until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "the simulated applicant did not act in time"
        await asyncio.sleep(0.05)


async def test_applicant_follows_the_link_and_confirms(mock_server, monkeypatch):
    monkeypatch.setenv("MOCK_APPLICANT_DELAY_S", "0.1")
    server = mock_server("sms")
    app, confirmed = department_and_gateway()
    department = start_in_thread(app)
    try:
        async with httpx.AsyncClient() as client:
            await send(client, server.url, "m-pay", f"请缴费：{department.url}/link/pay-abc。逾期失效")
            await send(client, server.url, "m-photo", f"请上传社保卡照片 {department.url}/link/photo-xyz")
            await send(client, server.url, "m-pay", f"请缴费：{department.url}/link/pay-abc。逾期失效")  # a retry

            async def both_confirmed() -> bool:
                return len(confirmed) >= 2

            await wait_for(both_confirmed)
            await asyncio.sleep(0.3)  # a duplicate action would have arrived by now
            actions = (await client.get(server.url + "/_mock/applicant")).json()["actions"]
    finally:
        department.stop()
    by_page = dict(confirmed)
    assert sorted(by_page) == ["pay/REF-1?sig=pay-abc", "photo/REF-1?sig=photo-xyz"]
    assert by_page["pay/REF-1?sig=pay-abc"] is None
    photo = base64.b64decode(by_page["photo/REF-1?sig=photo-xyz"]["photo_jpeg_base64"])
    assert photo == card_photo_jpeg()
    assert sorted((a["msg_id"], a["get_status"], a["confirm_status"], a["photo"]) for a in actions) == [
        ("m-pay", 200, 200, False), ("m-photo", 200, 200, True)]
    assert all(a["final_url"].startswith(department.url + "/h5/") and a["error"] is None for a in actions)


async def test_applicant_records_a_link_that_does_not_open(mock_server, monkeypatch):
    monkeypatch.setenv("MOCK_APPLICANT_DELAY_S", "0")
    server = mock_server("sms")
    app, confirmed = department_and_gateway()
    department = start_in_thread(app)
    try:
        async with httpx.AsyncClient() as client:
            await send(client, server.url, "m-1", f"{department.url}/nowhere and http://127.0.0.1:9/refused")

            async def two_actions() -> bool:
                return len((await client.get(server.url + "/_mock/applicant")).json()["actions"]) == 2

            await wait_for(two_actions)
            actions = (await client.get(server.url + "/_mock/applicant")).json()["actions"]
            healthy = (await client.get(server.url + "/health")).status_code
    finally:
        department.stop()
    assert confirmed == [] and healthy == 200
    assert actions[0]["get_status"] == 404 and actions[0]["confirm_status"] is None and actions[0]["error"]
    assert actions[1]["get_status"] is None and "ConnectError" in actions[1]["error"]


async def test_applicant_is_off_by_default(mock_server, monkeypatch):
    monkeypatch.delenv("MOCK_APPLICANT_DELAY_S", raising=False)
    server = mock_server("sms")
    app, confirmed = department_and_gateway()
    department = start_in_thread(app)
    try:
        async with httpx.AsyncClient() as client:
            await send(client, server.url, "m-1", f"请缴费 {department.url}/link/pay-abc")
            await asyncio.sleep(0.5)
            actions = (await client.get(server.url + "/_mock/applicant")).json()
    finally:
        department.stop()
    assert confirmed == [] and actions == {"delay_s": None, "actions": []}


def test_links_end_at_chinese_punctuation():
    text = "请缴费：https://gw.example/l/abc?x=1。逾期（http://b.example/p）失效, see http://c.example/q."
    assert links_in(text) == ["https://gw.example/l/abc?x=1", "http://b.example/p", "http://c.example/q"]


def test_card_photo_is_a_350_dpi_colour_jpeg_of_the_card_size():
    photo = card_photo_jpeg()
    assert photo[:2] == b"\xff\xd8" and photo.endswith(b"\xff\xd9")
    assert 30_000 <= len(photo) <= 40_000  # inside both published size ranges
    jfif = photo.index(b"JFIF\x00")
    assert struct.unpack(">BHH", photo[jfif + 7:jfif + 12]) == (1, 350, 350)  # units dpi, 350 x 350
    sof = photo.index(b"\xff\xc0")
    precision, height, width, components = struct.unpack(">BHHB", photo[sof + 4:sof + 10])
    assert (precision, width, height, components) == (8, 358, 441, 3)
