"""Mock 人社 (HRSS) system: SOAP 1.1, document/literal, behind the static WSDL next to this file.

`GET /hrss/service?wsdl` serves hrss.wsdl with its soap:address set to this service's own URL; `POST /hrss/service`
takes the envelopes, parsed with lxml without entities, network or DTDs.

Reply style (one of the two HRSS conventions in DOMAIN.md): `rc` 0 ok / 1 business error / 2 server error, with the
state in `zt` when rc is 0 and the business error in `errcode` when rc is 1. This system reports its own failures as
soap:Server faults (HTTP 500), so it never sends rc 2; a request it cannot read gets a soap:Client fault.
Every code it answers is in NATIVE_CODES.

Matters the seeds say are not immediate are reviewed in compressed time, then answered by a signed callback to the
request's callbackUrl (headers `X-Hrss-Timestamp`, `X-Hrss-Signature`: HMAC-SHA256 hex over timestamp + "\\n" +
body, key `MOCK_HRSS_CALLBACK_SECRET`); `queryBusiness` answers the current state too.
  resident pension, archive transfer: review of MOCK_HRSS_REVIEW_S seconds (default 1.0);
  social-security card: without a photo "awaiting photo" with an H5 link `<this url>/h5/photo/<token>` (the
  applicant's browser POSTs the JPEG, or an app JSON `{"photo_jpeg_base64"}`, to `<link>/confirm`), then card
  production of MOCK_HRSS_CARD_S (default 1.0).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import html
import itertools
import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from lxml import etree

from mocks.common import (
    HANG_S,
    MockState,
    add_control_routes,
    decide_fault,
    env_float,
    env_secret,
    send_callback,
)
from mocks.population import person

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "urn:mock:hrss:flexemp:v1"
WSDL_TEMPLATE = Path(__file__).with_name("hrss.wsdl").read_text(encoding="utf-8")

# zt (办理状态), answered with rc 0
STATES = {
    "01": "已受理，审核中",
    "02": "待上传制卡照片",
    "03": "制卡中",
    "09": "办结",
}
# errcode, answered with rc 1
ERRORS = {
    "1001": "已参加企业职工基本养老保险，不能重复参保",
    "1002": "已参加企业职工基本养老保险，不能参加城乡居民基本养老保险",
    "1003": "非本区户籍人员，不能参加城乡居民基本养老保险",
    "1004": "已申领社会保障卡，不能重复申领",
    "1005": "制卡照片不是有效的JPEG文件",
    "1006": "已办理就业登记，不能重复登记",
    "1007": "档案转出须提供调档函",
    "1008": "证件号码校验不通过",
    "1404": "未找到业务记录",
}
NATIVE_CODES = {**STATES, **ERRORS}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_DATE = re.compile(r"^\d{8}$")
_MONTH = re.compile(r"^\d{6}$")
_EMPLOYMENT_TYPES = {"1", "2", "3"}  # 灵活就业, 自谋职业, 自主创业
_ARCHIVE_REASONS = {"graduation", "resignation", "termination", "other"}
_OPERATIONS = {"registerEmployment", "enrolEmployeePension", "enrolResidentPension", "applySocialSecurityCard",
               "transferArchive", "queryBusiness"}


class ClientFault(Exception):
    """The request is not something this service can read: answered with a soap:Client fault."""


@dataclass
class Business:
    """One registered matter; the stored answer for its request id, updated as review moves it on."""

    request_id: str
    operation: str
    aac002: str
    code: str
    ywlsh: str = ""
    callback_url: str | None = None
    aac001: str | None = None
    h5url: str | None = None

    def reply(self) -> dict[str, Any]:
        ok = self.code in STATES
        # Field order is the XSD sequence of BusinessReply.
        return {"rc": 0 if ok else 1, "errcode": None if ok else self.code, "message": NATIVE_CODES[self.code],
                "requestId": self.request_id, "zt": self.code if ok else None, "ywlsh": self.ywlsh or None,
                "aac001": self.aac001, "h5url": self.h5url}


def parse_envelope(body: bytes) -> tuple[str, dict[str, list[str]]]:
    """(operation, element local name -> texts) of a SOAP 1.1 request; ClientFault for anything else."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ClientFault(f"报文不是合法的XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise ClientFault("报文不得包含DOCTYPE")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise ClientFault("报文不是SOAP 1.1信封")
    body_element = root.find(f"{{{SOAP_ENV}}}Body")
    children = [] if body_element is None else [c for c in body_element if isinstance(c.tag, str)]
    if len(children) != 1:
        raise ClientFault("SOAP Body 必须且只能包含一个业务请求")
    qname = etree.QName(children[0])
    if qname.namespace != TNS or qname.localname not in _OPERATIONS:
        raise ClientFault(f"未知的业务操作: {qname.text}")
    fields: dict[str, list[str]] = {}
    for child in children[0]:
        if not isinstance(child.tag, str):
            continue
        child_name = etree.QName(child)
        if child_name.namespace != TNS:
            raise ClientFault(f"未知的元素: {child_name.text}")
        fields.setdefault(child_name.localname, []).append((child.text or "").strip())
    return qname.localname, fields


class Fields:
    """Typed access to a request's elements; a missing or badly formed element is a ClientFault."""

    def __init__(self, raw: dict[str, list[str]]) -> None:
        self.raw = raw

    def get(self, name: str, *, required: bool = False, pattern: re.Pattern[str] | None = None,
            allowed: set[str] | None = None) -> str | None:
        values = self.raw.get(name) or [""]
        value = values[0]
        if not value:
            if required:
                raise ClientFault(f"缺少必填元素 {name}")
            return None
        if pattern is not None and not pattern.match(value):
            raise ClientFault(f"元素 {name} 格式错误: {value!r}")
        if allowed is not None and value not in allowed:
            raise ClientFault(f"元素 {name} 取值错误: {value!r}")
        return value

    def need(self, name: str, **checks: Any) -> str:
        value = self.get(name, required=True, **checks)
        assert value is not None
        return value


def validate(operation: str, fields: Fields) -> dict[str, Any]:
    """The request's values, checked the way the WSDL and this system's own rules describe them."""
    if operation == "queryBusiness":
        return {"requestId": fields.need("requestId")}
    values: dict[str, Any] = {
        "requestId": fields.need("requestId"),
        "callbackUrl": fields.get("callbackUrl"),
        "aae011": fields.need("aae011"),
        "aac002": fields.need("aac002").upper(),
        "aac003": fields.need("aac003"),
        "aac004": fields.get("aac004", allowed={"0", "1", "2", "9"}),
        "aac006": fields.get("aac006", pattern=_DATE),
    }
    if operation == "registerEmployment":
        fields.need("employmentType", allowed=_EMPLOYMENT_TYPES)
        fields.get("employmentDate", pattern=_DATE)
    elif operation == "enrolEmployeePension":
        fields.need("aae140", allowed={"110"})
        fields.get("aae003", pattern=_MONTH)
    elif operation == "enrolResidentPension":
        try:
            level = Decimal(fields.need("contributionLevel"))
        except InvalidOperation as exc:
            raise ClientFault("元素 contributionLevel 不是金额") from exc
        if not level.is_finite() or level < 0:
            raise ClientFault("元素 contributionLevel 不能为负数")
        fields.get("registrationDate", pattern=_DATE)
    elif operation == "applySocialSecurityCard":
        fields.need("bankName")
        fields.get("idValidFrom", pattern=_DATE)
        fields.get("idValidTo", pattern=re.compile(r"^(\d{8}|长期)$"))
        photo = fields.get("photo")
        try:
            values["photo"] = base64.b64decode("".join(photo.split()), validate=True) if photo else None
        except binascii.Error as exc:
            raise ClientFault("元素 photo 不是有效的base64") from exc
    elif operation == "transferArchive":
        values["direction"] = fields.need("direction", allowed={"in", "out"})
        fields.need("reason", allowed=_ARCHIVE_REASONS)
        values["transferLetterNo"] = fields.get("transferLetterNo")
    return values


def _is_jpeg(data: bytes) -> bool:
    return data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"


def _person_number(aac002: str) -> str:
    return aac002[:2] + str(int(hashlib.sha256(aac002.encode()).hexdigest()[:12], 16) % 10**10).zfill(10)


def soap_reply(operation: str, reply: dict[str, Any]) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "rs": TNS})
    response = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body"), f"{{{TNS}}}{operation}Response")
    for name, value in reply.items():
        if value is not None:
            etree.SubElement(response, f"{{{TNS}}}{name}").text = str(value)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def soap_fault(code: str, text: str) -> Response:
    """SOAP 1.1 fault (always HTTP 500): `Client` when the request was wrong, `Server` when this system failed."""
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soap:{code}"
    etree.SubElement(fault, "faultstring").text = text
    return Response(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), status_code=500,
                    media_type="text/xml; charset=utf-8")


_PHOTO_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>上传社会保障卡制卡照片</title></head><body><h1>上传社会保障卡制卡照片</h1><p>{status}</p>
<p>白底免冠彩色证件照，358×441像素，350dpi，JPG格式。</p>
<input id="photo" type="file" accept="image/jpeg"><button id="send">提交</button><p id="result"></p>
<script>
document.getElementById("send").onclick = async () => {{
  const file = document.getElementById("photo").files[0];
  if (!file) return;
  const answer = await fetch(location.pathname + "/confirm", {{method: "POST", body: file,
                                                              headers: {{"Content-Type": "image/jpeg"}}}});
  document.getElementById("result").textContent = (await answer.json()).message;
}};
</script></body></html>"""


async def _uploaded_photo(request: Request) -> bytes:
    """The page's script posts the raw JPEG; an app posts JSON `{"photo_jpeg_base64": ...}`: take both."""
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            return base64.b64decode(json.loads(body)["photo_jpeg_base64"], validate=True)
        except (ValueError, KeyError, TypeError):
            return b""
    return body


def create_app() -> FastAPI:
    app = FastAPI(title="mock 人社 (HRSS)")
    state = MockState(name="hrss")
    app.state.mock = state
    secret = env_secret("hrss")
    review_s = env_float("MOCK_HRSS_REVIEW_S", 1.0)
    card_s = env_float("MOCK_HRSS_CARD_S", 1.0)
    add_control_routes(app, state)
    serial = itertools.count(1)
    # (operation, aac002) -> the matter that holds it; only valid while it is still the stored answer, so
    # `/_mock/reset` (which clears the answers) also forgets who is enrolled.
    held: dict[tuple[str, str], Business] = {}
    photo_links: dict[str, Business] = {}

    def holds(operation: str, aac002: str) -> bool:
        business = held.get((operation, aac002))
        return business is not None and business.code in STATES and (
            state.answers.get(business.request_id) is business)

    async def conclude(business: Business, delay: float, code: str) -> None:
        """End a review (or card production) after `delay` and tell the gateway."""
        await asyncio.sleep(delay)
        business.code = code
        if code == "09" and business.operation == "enrolResidentPension":
            business.aac001 = _person_number(business.aac002)
        if business.callback_url:
            await send_callback(state, business.callback_url, business.reply(),
                                request_id=business.request_id, secret=secret,
                                signature_header="X-Hrss-Signature", timestamp_header="X-Hrss-Timestamp")

    async def register(operation: str, values: dict[str, Any], base_url: str) -> Business:
        aac002 = values["aac002"]
        business = Business(request_id=values["requestId"], operation=operation, aac002=aac002, code="09",
                            ywlsh=f"RS{dt.date.today():%Y%m%d}{next(serial):06d}", callback_url=values["callbackUrl"])
        who = person(aac002)
        if len(aac002) != 18:
            business.code = "1008"
        elif operation == "registerEmployment":
            business.code = "1006" if holds(operation, aac002) else "09"
        elif operation == "enrolEmployeePension":
            if who.already_enrolled or holds(operation, aac002):
                business.code = "1001"
            else:
                business.aac001 = _person_number(aac002)
        elif operation == "enrolResidentPension":
            if who.already_enrolled or holds("enrolEmployeePension", aac002):
                business.code = "1002"
            else:
                # The review checks the household registration (户籍) the region requires.
                business.code = "01"
                state.spawn(conclude(business, review_s, "09" if who.division_code.startswith("45") else "1003"))
        elif operation == "applySocialSecurityCard":
            photo: bytes | None = values["photo"]
            if who.holds_card or holds(operation, aac002):
                business.code = "1004"
            elif photo is not None and not _is_jpeg(photo):
                business.code = "1005"
            elif photo is not None:
                business.code = "03"
                state.spawn(conclude(business, card_s, "09"))
            else:
                business.code = "02"
                token = secrets.token_urlsafe(18)
                business.h5url = f"{base_url}/h5/photo/{token}"
                photo_links[token] = business
        elif operation == "transferArchive":
            if values["direction"] == "out" and not values["transferLetterNo"]:
                business.code = "1007"
            else:
                business.code = "01"
                state.spawn(conclude(business, review_s, "09"))
        if business.code in STATES:
            held[(operation, aac002)] = business
        return business

    @app.get("/hrss/service")
    async def wsdl(request: Request) -> Response:
        if state.faults.outage:
            return Response("Service Unavailable", status_code=503, media_type="text/plain")
        if "wsdl" not in {key.lower() for key in request.query_params}:
            return Response("GET ?wsdl for the service description; POST SOAP envelopes here", status_code=400,
                            media_type="text/plain")
        address = html.escape(str(request.url.replace(query="")), quote=True)
        return Response(WSDL_TEMPLATE.replace("{{SERVICE_URL}}", address), media_type="text/xml; charset=utf-8")

    @app.post("/hrss/service")
    async def service(request: Request) -> Response:
        decision = await decide_fault(state)
        if decision.kind == "outage":
            return Response("Service Unavailable", status_code=503, media_type="text/plain")
        if decision.kind == "error":
            return soap_fault("Server", "系统内部错误，请稍后再试")
        try:
            operation, raw = parse_envelope(await request.body())
            values = validate(operation, Fields(raw))
        except ClientFault as exc:
            return soap_fault("Client", str(exc))
        if operation == "queryBusiness":
            found = state.answers.get(values["requestId"])
            business = found if isinstance(found, Business) else Business(
                request_id=values["requestId"], operation=operation, aac002="", code="1404")
        else:
            base_url = str(request.base_url).rstrip("/")
            business = await state.once(values["requestId"], lambda: register(operation, values, base_url))
        if decision.kind == "timeout":
            await asyncio.sleep(HANG_S)
        body = soap_reply(operation, business.reply())
        if decision.kind == "malformed":
            body = body[: len(body) // 2]  # the connection cut mid-reply: a truncated envelope
        return Response(body, media_type="text/xml; charset=utf-8")

    @app.get("/h5/photo/{token}")
    async def photo_page(token: str) -> Response:
        business = photo_links.get(token)
        if business is None:
            return HTMLResponse("<p>链接无效或已过期</p>", status_code=404)
        status = "请上传照片" if business.code == "02" else "照片已收到"
        return HTMLResponse(_PHOTO_PAGE.format(status=status))

    @app.post("/h5/photo/{token}/confirm")
    async def photo_confirm(token: str, request: Request) -> Response:
        business = photo_links.get(token)
        if business is None:
            return JSONResponse({"result": "invalid", "message": "链接无效或已过期"}, status_code=404)
        if business.code != "02":
            return JSONResponse({"result": "received", "message": "照片已收到"})
        if not _is_jpeg(await _uploaded_photo(request)):
            return JSONResponse({"result": "rejected", "message": ERRORS["1005"]}, status_code=400)
        business.code = "03"
        state.spawn(conclude(business, card_s, "09"))
        return JSONResponse({"result": "received", "message": "照片已收到，制卡中"})

    return app
