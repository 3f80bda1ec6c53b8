"""Mock 电子证照 (e-license) shared service in the GB/T 36906 style: query, download, and issue licences.

  POST /api/license/query         {holderName, holderTypeCode: "111", holderCode, certTypeCode}
                                  -> data: [{certIdentifier, certTypeCode, certName, certNo, holderName, ...}]
  POST /api/license/download      {certIdentifier, useCause} -> data: {metadata..., surface: {face items}}
  POST /api/license/issue         {requestId, certTypeCode, holderName, holderTypeCode, holderCode, regionCode,
                                   surface} -> data: {requestId, certIdentifier, certTypeCode, issueTime, status}
  POST /api/license/issue/query   {requestId} -> the same data as the issue answered

Every reply: {ack_code: SUCCESS|FAILURE, errors: [{code, message}], data, correlation_id, response_id} (the envelope
is this mock's choice in the national platform's style). Query and download need the holder's authorization: the
record of the applicant's consent (JSON with the assertion's `jti` and `issuer`) in `X-Holder-Authorization`;
without it, E0401. Issuing is the
department's own act (the seed: generated automatically once everything is paid), so it needs no holder token.

The population (docs/mock-population.md): last digit of the ID sequence 9 -> no licence record (empty list); anyone
else holds a 居民身份证 and a 居民户口簿 whose household division code is the ID number's division code. Each person
has a fixed synthetic name derived from the ID number, but a query with name + ID number answers with the name it
was given, so any ordinary test applicant passes the gateway's name cross-check. A name starting with 错 ("wrong")
does not match the holder: no record, as a real system answers a name/ID mismatch. A download by identifier alone
uses the name of the last query for that holder, else the fixed name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from stdnum.cn import uscc
from stdnum.iso7064 import mod_37_36

from mocks.common import HANG_S, MockState, add_control_routes, decide_fault, garbage_response
from mocks.population import Person, person

# This system's copy of the national catalogue (type code -> name). The two PLACEHOLDER codes stand in for catalogue
# codes we do not know; the gateway's adapter keeps the same codes in its own configuration.
ID_CARD = "11100000000013127D001"
HOUSEHOLD_REGISTER = "PLACEHOLDER0000HKB001"
EMPLOYMENT_CERTIFICATE = "PLACEHOLDER0000JYC001"
CATALOGUE = {ID_CARD: "居民身份证", HOUSEHOLD_REGISTER: "居民户口簿", EMPLOYMENT_CERTIFICATE: "就业创业证"}
HOLDER_LICENCES = (ID_CARD, HOUSEHOLD_REGISTER)  # what this system holds for every citizen with a record
ISSUABLE = (EMPLOYMENT_CERTIFICATE,)
CITIZEN_ID = "111"  # holderTypeCode: citizen ID number (GB/T 36903)
PREFIX = "1.2.156.3005.2."
NAME_MISMATCH_MARK = "错"
# Someone who changed their name (改名) and applies under the new one: this system matches on the ID number and still
# holds the licences under the registered name, which the gateway must catch as a mismatch.
RENAMED_MARK = "改"
AUTH_HEADER = "X-Holder-Authorization"

# Codes this system answers: `status` of an issue, or `errors[0].code` of a FAILURE.
NATIVE_CODES = {
    "issued": "证照已签发",
    "E0400": "请求参数错误",
    "E0401": "缺少持证人授权或授权无效",
    "E0404": "证照或签发记录不存在",
    "E0500": "系统繁忙，请稍后再试",
    "E0503": "服务不可用",
    "E2001": "持证人信息不完整，不予签发",
    "E2002": "证照类型不在签发目录中",
}
_HTTP_STATUS = {"E0400": 400, "E0401": 401, "E0500": 500, "E0503": 503}

_DIVISIONS = {  # the few divisions the test population uses; others get a generic address
    "450102": ("南宁市", "兴宁区"), "450103": ("南宁市", "青秀区"), "450105": ("南宁市", "江南区"),
    "450202": ("柳州市", "城中区"), "450305": ("桂林市", "七星区"),
    "360102": ("南昌市", "东湖区"), "360402": ("九江市", "濂溪区"), "360403": ("九江市", "浔阳区"),
    "360404": ("九江市", "柴桑区"),
}
_HRSS_AUTHORITIES = {"360400": "九江市人力资源和社会保障局", "450000": "广西壮族自治区人力资源和社会保障厅"}
_SURNAMES = {"45": "韦黄覃陆蒙莫梁李陈农", "36": "刘李王张陈胡吴黄罗万"}
_OTHER_SURNAMES = "王李张刘陈杨赵周吴徐"
_GIVEN = "建华明丽芳强军伟秀英玲静杰勇涛婷宇欣文斌海燕桂兰志红"
_ETHNICITIES = {"45": ("汉", "汉", "汉", "壮", "壮", "瑶", "苗", "侗", "仫佬", "京"), "36": ("汉",) * 9 + ("畲",)}
_STREETS = ("人民路", "解放路", "建设路", "友谊路", "朝阳路", "中山路", "民主路", "新华路")


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def synthetic_uscc(division: str, unit: str) -> str:
    """A valid unified social credit code for an authority of `division` (11 = a government organ)."""
    base = f"11{division}{_digest(division, unit) % 10**8:08d}0"
    return base + uscc.calc_check_digit(base)


def make_identifier(type_code: str, issuer: str, serial: str, version: str = "001") -> str:
    check = mod_37_36.calc_check_digit(type_code + issuer + serial + version)
    return f"{PREFIX}{type_code}.{issuer}.{serial}.{version}.{check}"


def split_identifier(identifier: str) -> tuple[str, str, str] | None:
    """(type code, issuer, serial) when the identifier is well formed and its check character matches."""
    if not identifier.startswith(PREFIX):
        return None
    parts = identifier[len(PREFIX):].split(".")
    if len(parts) != 5 or not all(p.isalnum() and p.isascii() and p == p.upper() for p in parts):
        return None
    type_code, issuer, serial, version, check = parts
    if len(type_code) != 21 or len(issuer) != 18 or len(version) != 3 or len(check) != 1:
        return None
    if mod_37_36.calc_check_digit(type_code + issuer + serial + version) != check:
        return None
    return type_code, issuer, serial


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class Citizen:
    """Everything the licences say about one person, derived from the ID number alone."""

    who: Person
    registered_name: str
    ethnicity: str
    address: str
    district: str
    city: str
    relationship: str  # 与户主关系
    head_given_name: str  # the head of household's given name when that is someone else
    spouse_surname: str
    household_number: str

    @property
    def birth(self) -> dt.date:
        return dt.date.fromisoformat(self.who.birth_date)

    def id_card_term(self, today: dt.date) -> tuple[dt.date, dt.date | None]:
        """The card currently valid: first issued at 16, renewed on expiry; term by age (5/10/20 years, 46+ long)."""
        issued = _add_years(self.birth, 16 + _digest(self.who.id_number, "issue") % 3)
        while True:
            age = issued.year - self.birth.year
            if age >= 46:
                return issued, None
            expires = _add_years(issued, 5 if age < 16 else 10 if age <= 25 else 20)
            if expires > today or issued > today:
                return issued, expires
            issued = expires


def citizen(id_number: str) -> Citizen:
    who = person(id_number)
    h = _digest(who.id_number)
    province = who.division_code[:2]
    surnames = _SURNAMES.get(province, _OTHER_SURNAMES)
    name = surnames[h % len(surnames)] + _GIVEN[(h >> 8) % len(_GIVEN)] + _GIVEN[(h >> 16) % len(_GIVEN)]
    city, district = _DIVISIONS.get(who.division_code, ("", ""))
    street = _STREETS[(h >> 24) % len(_STREETS)]
    place = f"{who.province}{city}{district}" if city else f"{who.province}（区划{who.division_code}）"
    ethnicities = _ETHNICITIES.get(province, ("汉",))
    relationships = ("户主", "子") if who.sex == "1" else ("户主", "妻", "女")
    relationship = relationships[(h >> 32) % len(relationships)]
    return Citizen(
        who=who,
        registered_name=name,
        ethnicity=ethnicities[(h >> 36) % len(ethnicities)],
        address=f"{place}{street}{(h >> 44) % 300 + 1}号",
        district=district,
        city=city,
        relationship=relationship,
        head_given_name=_GIVEN[(h >> 48) % len(_GIVEN)] + _GIVEN[(h >> 52) % len(_GIVEN)],
        spouse_surname=surnames[(h >> 40) % len(surnames)],
        household_number=f"{(h >> 20) % 10**9:09d}",
    )


def _police_authority(holder: Citizen) -> str:
    if holder.city:
        return f"{holder.city}公安局{holder.district.removesuffix('区')}分局"
    return f"{holder.who.province}公安厅"


def envelope(data: Any = None, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    return {
        "ack_code": "FAILURE" if code else "SUCCESS",
        "errors": [{"code": code, "message": message or NATIVE_CODES[code]}] if code else [],
        "data": data,
        "correlation_id": uuid.uuid4().hex,
        "response_id": uuid.uuid4().hex,
    }


def failure(code: str, message: str | None = None) -> JSONResponse:
    return JSONResponse(envelope(None, code, message), status_code=_HTTP_STATUS.get(code, 200))


def create_app() -> FastAPI:
    app = FastAPI(title="mock 电子证照 (e-license shared service)")
    state = MockState(name="e_license")
    app.state.mock = state
    add_control_routes(app, state)
    queried_names: dict[str, str] = {}  # ID number -> name of the last matching query
    issued: dict[str, dict[str, Any]] = {}  # identifier -> issued certificate (downloadable like any licence)
    sequence = itertools.count(1)

    def metadata(type_code: str, holder: Citizen) -> dict[str, Any]:
        number = holder.who.id_number
        issuer = synthetic_uscc(holder.who.division_code, "public-security")
        authority = _police_authority(holder)
        if type_code == ID_CARD:
            issue_date, _ = holder.id_card_term(dt.date.today())
            cert_no = number
        else:
            issue_date = holder.birth  # registered at birth
            cert_no = holder.household_number
        return {
            "certIdentifier": make_identifier(type_code, issuer, number),
            "certTypeCode": type_code,
            "certName": CATALOGUE[type_code],
            "certNo": cert_no,
            "holderName": queried_names.get(number, holder.registered_name),
            "holderTypeCode": CITIZEN_ID,
            "holderCode": number,
            "issueOrgName": authority,
            "issueOrgCode": issuer,
            "issueDate": issue_date.isoformat(),
        }

    def surface(type_code: str, holder: Citizen, name: str) -> dict[str, str]:
        """The licence face (照面信息), in the pinyin-initial item names licence templates use."""
        who = holder.who
        common = {"XM": name, "XB": "男" if who.sex == "1" else "女", "MZ": holder.ethnicity,
                  "CSRQ": who.birth_date.replace("-", ""), "GMSFHM": who.id_number}
        if type_code == ID_CARD:
            issued_on, expires = holder.id_card_term(dt.date.today())
            term = f"{issued_on:%Y.%m.%d}-" + (f"{expires:%Y.%m.%d}" if expires else "长期")
            return common | {"ZZ": holder.address, "QFJG": _police_authority(holder), "YXQX": term}
        # Built from the name on the licence so that a head who is a parent shares the holder's surname.
        head = {"户主": name, "妻": holder.spouse_surname + holder.head_given_name}.get(
            holder.relationship, name[:1] + holder.head_given_name)
        return common | {"HH": holder.household_number, "HZXM": head, "YHZGX": holder.relationship,
                         "HKSZD": holder.address, "HKSZDXZQHDM": who.division_code,
                         "CBDW": f"{_police_authority(holder)}户政科"}

    def authorized(request: Request) -> bool:
        """A record of the holder's consent: which assertion (jti) from which identity service allowed the call."""
        try:
            record = json.loads(request.headers.get(AUTH_HEADER, ""))
        except ValueError:
            return False
        return isinstance(record, dict) and bool(record.get("jti")) and bool(record.get("issuer"))

    async def business_faults() -> tuple[str, Response | None]:
        decision = await decide_fault(state)
        if decision.kind == "outage":
            return decision.kind, failure("E0503")
        if decision.kind == "error":
            return decision.kind, failure("E0500")
        return decision.kind, None

    async def answer(kind: str, body: dict[str, Any]) -> Response:
        """Apply the faults drawn before the work: hang after doing it, or garble the reply."""
        if kind == "timeout":
            await asyncio.sleep(HANG_S)
        if kind == "malformed":
            return garbage_response()
        return JSONResponse(body)

    async def read_json(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def admit_holder_call(request: Request) -> tuple[str, dict[str, Any] | None] | Response:
        """What every call on a holder's licences does first: its fault, its count, the holder's authorization."""
        kind, refused = await business_faults()
        if refused:
            return refused
        state.received += 1
        if not authorized(request):
            return failure("E0401")
        return kind, await read_json(request)

    @app.post("/api/license/query")
    async def query(request: Request) -> Response:
        admitted = await admit_holder_call(request)
        if isinstance(admitted, Response):
            return admitted
        kind, body = admitted
        if body is None or not all(isinstance(body.get(k), str) for k in ("holderName", "holderCode")):
            return failure("E0400", "请求参数错误：holderName、holderCode 必填")
        if body.get("holderTypeCode") != CITIZEN_ID:
            return failure("E0400", "请求参数错误：仅支持持证主体代码类型 111（公民身份号码）")
        name, number = body["holderName"].strip(), body["holderCode"].strip().upper()
        type_code = body.get("certTypeCode")
        wanted = HOLDER_LICENCES if type_code in (None, "") else (type_code,)
        holder = citizen(number)
        found: list[dict[str, Any]] = []
        if len(number) == 18 and holder.who.has_e_license and name and not name.startswith(NAME_MISMATCH_MARK):
            if name.startswith(RENAMED_MARK):
                queried_names.pop(number, None)  # the licences keep the registered name
            else:
                queried_names[number] = name
            found = [metadata(code, holder) for code in wanted if code in HOLDER_LICENCES]
        return await answer(kind, envelope(found))

    @app.post("/api/license/download")
    async def download(request: Request) -> Response:
        admitted = await admit_holder_call(request)
        if isinstance(admitted, Response):
            return admitted
        kind, body = admitted
        if body is None or not isinstance(body.get("certIdentifier"), str):
            return failure("E0400", "请求参数错误：certIdentifier 必填")
        if not str(body.get("useCause") or "").strip():
            return failure("E0400", "请求参数错误：用证事由 useCause 必填")
        identifier = body["certIdentifier"]
        if identifier in issued:
            return await answer(kind, envelope(issued[identifier]))
        parts = split_identifier(identifier)
        if parts is None:
            return failure("E0400", "请求参数错误：证照标识无效")
        type_code, issuer, serial = parts
        holder = citizen(serial)
        if (type_code not in HOLDER_LICENCES or len(serial) != 18 or not holder.who.has_e_license
                or issuer != synthetic_uscc(holder.who.division_code, "public-security")):
            return await answer(kind, envelope(None, "E0404"))
        record = metadata(type_code, holder)
        record["surface"] = surface(type_code, holder, record["holderName"])
        return await answer(kind, envelope(record))

    async def register_certificate(body: dict[str, Any]) -> dict[str, Any]:
        type_code = body.get("certTypeCode")
        if type_code not in ISSUABLE:
            return {"code": "E2002"}
        name = str(body.get("holderName") or "").strip()
        number = str(body.get("holderCode") or "").strip().upper()
        region = str(body.get("regionCode") or "")
        if not name or len(number) != 18 or body.get("holderTypeCode") != CITIZEN_ID or len(region) != 6:
            return {"code": "E2001"}
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))  # Beijing time, as the platform stamps it
        issuer = synthetic_uscc(region, "human-resources-social-security")
        serial = f"{region}{now:%Y%m%d}{next(sequence):06d}"
        identifier = make_identifier(str(type_code), issuer, serial)
        face = {str(k): str(v) for k, v in dict(body.get("surface") or {}).items()}
        issued[identifier] = {
            "certIdentifier": identifier, "certTypeCode": type_code, "certName": CATALOGUE[str(type_code)],
            "certNo": serial, "holderName": name, "holderTypeCode": CITIZEN_ID, "holderCode": number,
            "issueOrgName": _HRSS_AUTHORITIES.get(region, f"{region}人力资源和社会保障局"), "issueOrgCode": issuer,
            "issueDate": now.date().isoformat(), "surface": face | {"XM": name, "GMSFHM": number},
        }
        return {"requestId": body.get("requestId"), "certIdentifier": identifier, "certTypeCode": type_code,
                "issueTime": now.strftime("%Y-%m-%d %H:%M:%S"), "status": "issued"}

    @app.post("/api/license/issue")
    async def issue(request: Request) -> Response:
        kind, refused = await business_faults()
        if refused:
            return refused
        body = await read_json(request)
        if body is None or not str(body.get("requestId") or "").strip():
            return failure("E0400", "请求参数错误：requestId 必填")
        state.log_request(str(body["requestId"]), "issue", body)
        result = await state.once(str(body["requestId"]), lambda: register_certificate(body))
        if "code" in result:
            return await answer(kind, envelope({"requestId": body["requestId"]}, result["code"]))
        return await answer(kind, envelope(result))

    @app.post("/api/license/issue/query")
    async def issue_query(request: Request) -> Response:
        kind, refused = await business_faults()
        if refused:
            return refused
        state.received += 1
        body = await read_json(request)
        request_id = str((body or {}).get("requestId") or "")
        result = state.answers.get(request_id)
        if result is None:
            return await answer(kind, envelope({"requestId": request_id}, "E0404"))
        if "code" in result:
            return await answer(kind, envelope({"requestId": request_id}, result["code"]))
        return await answer(kind, envelope(result))

    return app
