"""Mock SMS gateway: records the messages the gateway's outbox sends to applicants, and plays the applicant.

  POST /sms/send        {"msg_id", "phone", "text", "template"?} -> {"code": "OK", "biz_id", "message"}
                        errors: {"code": "INVALID_PARAMETERS" | "MOBILE_NUMBER_ILLEGAL" | "SYSTEM_ERROR" |
                        "SERVICE_UNAVAILABLE", "message"}; a repeated msg_id is recorded once (counted as a duplicate)
                        and answered with the first biz_id.
  GET  /_mock/messages  [?phone=] -> {"messages": [{msg_id, phone, text, template, biz_id, received_at}]}
  GET  /_mock/applicant -> {"actions": [{msg_id, url, final_url, get_status, confirm_url, confirm_status, photo, at,
                        error}]}

The simulated applicant (DESIGN.md "Mock conventions"): when MOCK_APPLICANT_DELAY_S is a number at start, each new
message's http(s) links are acted on after that delay, the way a person would: GET the link following redirects (the
gateway's signed link redirects to the department's H5 page), then POST `<final page URL path>/confirm` (same query
string). A page whose URL path mentions "photo" gets `{"photo_jpeg_base64": ...}` (a social-security card photo);
other pages get no body. Failures are recorded, never raised. A reminder's fresh link is acted on like the first
one, so a case whose first SMS was lost (or whose applicant ignored it) completes through its reminder.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import struct
import uuid
from functools import cache
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from mocks.common import HANG_S, MockState, add_control_routes, applicant_delay_s, decide_fault, garbage_response

# Chinese punctuation ends a link in an SMS text: a phone's linkifier stops there too.
_URL = re.compile(r"https?://[^\s<>\"'，。；！？、）】」]+")
_PHONE = re.compile(r"(?:\+86)?1\d{10}")
_BEIJING = dt.timezone(dt.timedelta(hours=8))


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


@cache
def card_photo_jpeg(width: int = 358, height: int = 441, dpi: int = 350, size: int = 35_000) -> bytes:
    """A baseline JPEG of a plain white card photo, built by hand: 24-bit colour (YCbCr), 358 × 441 px at 350 dpi,
    padded with a comment to `size` bytes so it sits inside every published size range (14-40 KB, 30-50 KB)."""
    app0 = _segment(0xE0, b"JFIF\x00" + struct.pack(">BBBHHBB", 1, 1, 1, dpi, dpi, 0, 0))
    dqt = _segment(0xDB, b"\x00" + b"\x01" * 64)  # all-ones table: coefficients are stored exactly
    sof0 = _segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00")
    # One DC table (categories 0 -> "0", 10 -> "10") and one AC table (EOB -> "0") shared by all components.
    dht_dc = _segment(0xC4, b"\x00" + bytes([1, 1] + [0] * 14) + b"\x00\x0a")
    dht_ac = _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")
    sos = _segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
    # Every 8x8 block is flat: white luma is DC 8 * (255 - 128) = 1016 in the first block, then unchanged
    # (difference 0); chroma stays neutral (0). Each block: DC code (+ magnitude bits), then end-of-block.
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = "10" + format(1016, "010b") + "0" + "00" * 2 + "000000" * (blocks - 1)
    bits += "1" * (-len(bits) % 8)  # pad the last byte with one-bits
    scan = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i:i + 8], 2)
        scan.append(byte)
        if byte == 0xFF:
            scan.append(0x00)  # byte stuffing
    body = dqt + sof0 + dht_dc + dht_ac + sos + bytes(scan) + b"\xff\xd9"
    filler = max(0, size - 2 - len(app0) - len(body) - 4)
    comment = (b"mock applicant card photo " * (filler // 26 + 1))[:filler]
    return b"\xff\xd8" + app0 + _segment(0xFE, comment) + body


def _now() -> str:
    return dt.datetime.now(_BEIJING).isoformat(timespec="milliseconds")


def links_in(text: str) -> list[str]:
    return [url.rstrip(".,;:!?)") for url in _URL.findall(text)]


def create_app() -> FastAPI:
    app = FastAPI(title="mock SMS gateway")
    state = MockState(name="sms")
    app.state.mock = state
    add_control_routes(app, state)
    delay = applicant_delay_s()
    # Messages live in state.answers (msg_id -> record), so /_mock/reset clears them with the rest.

    async def follow(record: dict[str, Any], url: str) -> dict[str, Any]:
        action: dict[str, Any] = {"msg_id": record["msg_id"], "url": url, "final_url": None, "get_status": None,
                                  "confirm_url": None, "confirm_status": None, "photo": False, "at": _now(),
                                  "error": None}
        try:
            page = await state.http.get(url, follow_redirects=True)
            action["final_url"], action["get_status"] = str(page.url), page.status_code
            if page.status_code >= 400:
                action["error"] = "the page did not open; a person would not confirm"
                return action
            confirm = page.url.copy_with(path=page.url.path.rstrip("/") + "/confirm")
            action["confirm_url"], action["photo"] = str(confirm), "photo" in page.url.path.lower()
            photo = base64.b64encode(card_photo_jpeg()).decode()
            payload = {"photo_jpeg_base64": photo} if action["photo"] else None
            action["confirm_status"] = (await state.http.post(confirm, json=payload, follow_redirects=True)).status_code
        except httpx.HTTPError as exc:
            action["error"] = f"{exc.__class__.__name__}: {exc}"
        return action

    async def act(record: dict[str, Any], urls: list[str], wait: float) -> None:
        await asyncio.sleep(wait)
        for url in urls:
            record["applicant"].append(await follow(record, url))

    async def record_message(body: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "msg_id": body["msg_id"], "phone": body["phone"], "text": body["text"], "template": body.get("template"),
            "biz_id": f"{dt.datetime.now(_BEIJING):%Y%m%d%H%M%S}{uuid.uuid4().hex[:12]}", "received_at": _now(),
            "applicant": [],
        }
        urls = links_in(body["text"])
        if delay is not None and urls:
            state.spawn(act(record, urls, delay))
        return record

    @app.post("/sms/send")
    async def send(request: Request) -> Response:
        decision = await decide_fault(state)
        if decision.kind == "outage":
            return JSONResponse({"code": "SERVICE_UNAVAILABLE", "message": "服务不可用"}, status_code=503)
        if decision.kind == "error":
            return JSONResponse({"code": "SYSTEM_ERROR", "message": "系统错误，请重试"}, status_code=500)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and body[k]
                                                 for k in ("msg_id", "phone", "text")):
            return JSONResponse({"code": "INVALID_PARAMETERS", "message": "msg_id、phone、text 必填"}, status_code=400)
        if not _PHONE.fullmatch(body["phone"]):
            return JSONResponse({"code": "MOBILE_NUMBER_ILLEGAL", "message": "手机号码格式错误"}, status_code=400)
        record = await state.once(body["msg_id"], lambda: record_message(body))
        if decision.kind == "timeout":
            await asyncio.sleep(HANG_S)
        if decision.kind == "malformed":
            return garbage_response()
        return JSONResponse({"code": "OK", "biz_id": record["biz_id"], "message": "OK"})

    def public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "applicant"}

    @app.get("/_mock/messages")
    async def messages(phone: str | None = None) -> dict[str, Any]:
        return {"messages": [public(r) for r in state.answers.values() if phone is None or r["phone"] == phone]}

    @app.get("/_mock/applicant")
    async def applicant() -> dict[str, Any]:
        return {"delay_s": delay, "actions": [a for r in state.answers.values() for a in r["applicant"]]}

    return app
