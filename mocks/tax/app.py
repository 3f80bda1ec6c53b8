"""Mock 税务 system: social-insurance fee declaration (社会保险费申报) in the GT3 (金税三期) style.

One endpoint, `POST /gt3/api/sbf`, takes `{head: {tranId, tranSeq, tranDate, tranTime, channelId, swjgDm}, body}` and
answers `{head: {tranId, tranSeq, rtnCode, rtnMsg, rtnTime}, body}`; `rtnCode` "0000" is success, anything else is the
refusal code in `rtnCode` with its text in `rtnMsg`. Services:
  SBF.SB.SHBXFSB  declare: body {ywlsh, nsrsbh, xm, sfzjlxDm, sfzjhm, sbrq, notifyUrl, sbmx: [rows]}
  SBF.CX.SBJG     declaration status by ywlsh (the gateway's request id)
A row: {shbxbm, zsxmDm, zspmDm, zszmDm, skssqq, skssqz (YYYY-MM-DD), jfdcje (resident tier), jfjs (employee base),
fl (employee rate)}.
The mock computes each row's amount due (yjfe) and the total (ybtse): a resident scheme pays its tier, an employee
scheme pays base x rate x months. The applicant pays on the H5 page (the tax WeChat account in real life):
`GET /h5/pay/{token}` and `POST /h5/pay/{token}/confirm`; the mock then issues an 18-digit electronic receipt number
(dzsphm) and posts a signed callback to `notifyUrl` (headers X-Gt3-Timestamp / X-Gt3-Signature).
Business states (body.sbzt): "declared" (awaiting payment), "paid"; refusal codes: NATIVE_CODES.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import itertools
import json
import os
import secrets
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from mocks.common import (
    HANG_S,
    MockState,
    add_control_routes,
    decide_fault,
    env_secret,
    garbage_response,
    h5_page,
    send_callback,
)

DECLARE = "SBF.SB.SHBXFSB"
QUERY = "SBF.CX.SBJG"
OK = "0000"

NATIVE_CODES = {
    "declared": "申报成功，待缴费",
    "paid": "缴费成功",
    "SB1001": "费款所属期起不能晚于费款所属期止",
    "SB1002": "该缴费人该费款所属期已缴费，不能重复申报",
    "SB1003": "缴费基数或缴费档次低于最低标准",
    "SB1004": "缴费人证件号码无效",
    "SB1005": "征收品目不存在",
    "SB1006": "该缴费人该费款所属期已申报未缴费，请先缴纳已申报费款",
    "SB1007": "征收项目与征收品目不匹配",
    "SB0000": "报文格式错误",
    "SB0404": "未找到申报记录",
    "SB9999": "系统繁忙，请稍后再试",
}

CENT = Decimal("0.01")


@dataclass(frozen=True)
class LevyItem:
    zsxm_dm: str  # 征收项目 (fee type)
    name: str
    scheme: Literal["resident", "employee"]
    rate: Decimal  # employee schemes: share of the monthly base
    minimum: Decimal  # resident: lowest tier (yuan per year); employee: lowest monthly base


# 征收品目 (zspmDm) -> item. The real numeric codes are not public (DOMAIN.md): these are placeholders, and so are the
# rates and minimums; override with MOCK_TAX_LEVY_ITEMS (JSON, same shape) to match a province.
DEFAULT_LEVY_ITEMS: dict[str, LevyItem] = {
    "102100101": LevyItem("10210", "城乡居民基本养老保险", "resident", Decimal(0), Decimal(100)),
    "102120101": LevyItem("10212", "城乡居民基本医疗保险", "resident", Decimal(0), Decimal(380)),
    "102160101": LevyItem("10216", "城乡居民长期护理保险", "resident", Decimal(0), Decimal(10)),
    "102170101": LevyItem("10217", "城乡居民大病医疗保险", "resident", Decimal(0), Decimal(10)),
    "102100201": LevyItem("10210", "灵活就业人员基本养老保险", "employee", Decimal("0.20"), Decimal(4000)),
    "102120201": LevyItem("10212", "灵活就业人员基本医疗保险", "employee", Decimal("0.07"), Decimal(4000)),
    "102160201": LevyItem("10216", "灵活就业人员长期护理保险", "employee", Decimal("0.003"), Decimal(4000)),
    "102170201": LevyItem("10217", "灵活就业人员大额医疗互助保险", "employee", Decimal("0.005"), Decimal(4000)),
}


def levy_items_from_env() -> dict[str, LevyItem]:
    raw = os.environ.get("MOCK_TAX_LEVY_ITEMS", "").strip()
    if not raw:
        return dict(DEFAULT_LEVY_ITEMS)
    return {
        code: LevyItem(str(spec["zsxmDm"]), str(spec["name"]), spec["scheme"], Decimal(str(spec.get("rate", 0))),
                       Decimal(str(spec["minimum"])))
        for code, spec in json.loads(raw).items()
    }


class Refusal(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class FormatError(Exception):
    pass


@dataclass
class Row:
    shbxbm: str
    zsxm_dm: str
    zspm_dm: str
    zszm_dm: str
    start: dt.date
    end: dt.date
    tier: Decimal | None
    base: Decimal | None
    rate: Decimal | None  # declared by the payer (须知2: 缴费基数及费率); else the item's configured rate
    due: Decimal = Decimal(0)


@dataclass
class Declaration:
    request_id: str
    pzhm: str  # 申报凭证号码: the declaration number
    id_number: str
    name: str
    declared_on: str
    rows: list[Row]
    total: Decimal
    token: str
    page_url: str
    notify_url: str
    status: str = "declared"
    dzsphm: str | None = None
    paid_at: str | None = None
    # Serialises payment: a double click must not pay (or notify) twice.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _date(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise FormatError(f"bad date {value!r}") from exc


def _amount(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise FormatError(f"bad amount {value!r}") from exc
    if not amount.is_finite():
        raise FormatError(f"bad amount {value!r}")
    return amount


def _rows(body: dict[str, Any]) -> list[Row]:
    raw_rows = body.get("sbmx")
    if not isinstance(raw_rows, list) or not raw_rows:
        raise FormatError("sbmx must be a non-empty list")
    rows = []
    for raw in raw_rows:
        if not isinstance(raw, dict):
            raise FormatError("a sbmx row must be an object")
        rows.append(Row(shbxbm=str(raw.get("shbxbm") or ""), zsxm_dm=str(raw.get("zsxmDm") or ""),
                        zspm_dm=str(raw.get("zspmDm") or ""), zszm_dm=str(raw.get("zszmDm") or ""),
                        start=_date(raw.get("skssqq")), end=_date(raw.get("skssqz")), tier=_amount(raw.get("jfdcje")),
                        base=_amount(raw.get("jfjs")), rate=_amount(raw.get("fl"))))
    return rows


def _months(start: dt.date, end: dt.date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month + 1


def create_app(levy_items: dict[str, LevyItem] | None = None) -> FastAPI:
    app = FastAPI(title="mock 税务 (tax: social-insurance fee)")
    state = MockState(name="tax")
    app.state.mock = state
    app.state.callback_secret = env_secret("tax")
    add_control_routes(app, state)
    items = levy_items if levy_items is not None else levy_items_from_env()
    declarations: dict[str, Declaration] = {}  # ywlsh (the gateway's request id) -> declaration
    by_token: dict[str, Declaration] = {}
    numbers = itertools.count(1)

    def head(tran_id: str, tran_seq: str, code: str, msg: str) -> dict[str, Any]:
        return {"tranId": tran_id, "tranSeq": tran_seq, "rtnCode": code, "rtnMsg": msg,
                "rtnTime": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}

    def refusal(tran_id: str, tran_seq: str, code: str, detail: str = "", status: int = 200) -> JSONResponse:
        msg = NATIVE_CODES[code] + (f"：{detail}" if detail else "")
        return JSONResponse({"head": head(tran_id, tran_seq, code, msg), "body": {}}, status_code=status)

    def declaration_body(decl: Declaration) -> dict[str, Any]:
        return {
            "ywlsh": decl.request_id,
            "pzhm": decl.pzhm,
            "sbzt": decl.status,
            "sbrq": decl.declared_on,
            "ybtse": _money(decl.total),
            "sjje": _money(decl.total if decl.status == "paid" else Decimal(0)),
            "dzsphm": decl.dzsphm,
            "jkrq": decl.paid_at,
            "jfUrl": decl.page_url,
            "sbmx": [{"shbxbm": row.shbxbm, "zsxmDm": items[row.zspm_dm].zsxm_dm, "zspmDm": row.zspm_dm,
                      "zszmDm": row.zszm_dm, "skssqq": row.start.isoformat(), "skssqz": row.end.isoformat(),
                      "yjfe": _money(row.due)} for row in decl.rows],
        }

    def check(id_number: str, rows: list[Row], request_id: str) -> None:
        if len(id_number) != 18 or not id_number[:17].isdigit():
            raise Refusal("SB1004")
        for row in rows:
            item = items.get(row.zspm_dm)
            if item is None:
                raise Refusal("SB1005", row.zspm_dm)
            if row.zsxm_dm and row.zsxm_dm != item.zsxm_dm:
                raise Refusal("SB1007", f"{row.zsxm_dm} / {row.zspm_dm} {item.name}")
            if row.start > row.end:
                raise Refusal("SB1001", f"{row.start} > {row.end}")
            if item.scheme == "resident":
                tier = item.minimum if row.tier is None else row.tier
                if tier < item.minimum:
                    raise Refusal("SB1003", f"{item.name}缴费档次{_money(tier)}元，最低{_money(item.minimum)}元")
                row.tier, row.due = tier, tier
            else:
                # No base declared: the lower limit applies, as for most flexible employees.
                base = item.minimum if row.base is None else row.base
                if base < item.minimum:
                    raise Refusal("SB1003", f"{item.name}缴费基数{_money(base)}元，下限{_money(item.minimum)}元")
                rate = item.rate if row.rate is None else row.rate
                row.base = base
                row.due = (base * rate * _months(row.start, row.end)).quantize(CENT, rounding=ROUND_HALF_UP)
            for other in declarations.values():
                if other.id_number != id_number or other.request_id == request_id:
                    continue
                for earlier in other.rows:
                    if earlier.zspm_dm == row.zspm_dm and earlier.start <= row.end and row.start <= earlier.end:
                        detail = f"{item.name} {earlier.start}至{earlier.end}，凭证号码{other.pzhm}"
                        raise Refusal("SB1002" if other.status == "paid" else "SB1006", detail)

    async def declare(body: dict[str, Any], rows: list[Row], base_url: str, region: str) -> dict[str, Any]:
        request_id = str(body["ywlsh"])
        id_number = str(body.get("sfzjhm") or body.get("nsrsbh") or "").strip().upper()
        try:
            check(id_number, rows, request_id)
        except Refusal as exc:
            return {"code": exc.code, "detail": exc.detail}
        today = dt.date.today()
        pzhm = f"1{region}{today:%y%m%d}{next(numbers):09d}"  # 18 digits, like a GT3 voucher number
        token = secrets.token_urlsafe(18)
        decl = Declaration(
            request_id=request_id, pzhm=pzhm, id_number=id_number, name=str(body.get("xm") or ""),
            declared_on=str(body.get("sbrq") or today.isoformat()), rows=rows,
            total=sum((r.due for r in rows), Decimal(0)),
            token=token, page_url=f"{base_url}/h5/pay/{token}", notify_url=str(body.get("notifyUrl") or ""),
        )
        declarations[request_id] = by_token[token] = decl
        return {"code": OK, "request_id": request_id}

    async def pay(decl: Declaration) -> None:
        async with decl.lock:
            if decl.status == "paid":
                return
            now = dt.datetime.now()
            # 18 digits: 3 + province + yymmdd + 9-digit serial, the layout of an electronic tax receipt number
            decl.dzsphm = f"3{decl.pzhm[1:3]}{now:%y%m%d}{next(numbers):09d}"
            decl.paid_at = now.strftime("%Y-%m-%d %H:%M:%S")
            decl.status = "paid"
        if decl.notify_url:
            payload = {"head": head("SBF.TZ.JKJG", decl.request_id, OK, NATIVE_CODES["paid"]),
                       "body": declaration_body(decl)}
            state.spawn(send_callback(state, decl.notify_url, payload, request_id=decl.request_id,
                                      secret=app.state.callback_secret,
                                      signature_header="X-Gt3-Signature", timestamp_header="X-Gt3-Timestamp"))

    @app.post("/gt3/api/sbf")
    async def service(request: Request) -> Response:
        decision = await decide_fault(state)
        if decision.kind == "outage":
            return JSONResponse({"head": {"rtnCode": "SB9999", "rtnMsg": "服务不可用"}}, status_code=503)
        if decision.kind == "error":
            return JSONResponse({"head": {"rtnCode": "SB9999", "rtnMsg": NATIVE_CODES["SB9999"]}}, status_code=500)
        try:
            envelope = await request.json()
            tran_id = str(envelope["head"]["tranId"])
            tran_seq = str(envelope["head"].get("tranSeq", ""))
            body = dict(envelope["body"])
            request_id = str(body["ywlsh"])
            rows = _rows(body) if tran_id == DECLARE else []
            region = str(envelope["head"].get("swjgDm") or "14500000000")[1:3]
        except (ValueError, KeyError, TypeError, AttributeError, FormatError) as exc:
            return refusal("", "", "SB0000", str(exc), status=400)
        if tran_id == QUERY:
            found = declarations.get(request_id)
            if found is None:
                return refusal(tran_id, tran_seq, "SB0404")
            result: dict[str, Any] = {"code": OK, "request_id": request_id}
        elif tran_id == DECLARE:
            base_url = str(request.base_url).rstrip("/")
            result = await state.once(request_id, lambda: declare(body, rows, base_url, region))
        else:
            return refusal(tran_id, tran_seq, "SB0000", f"unknown tranId {tran_id}", status=400)
        if decision.kind == "timeout":
            await asyncio.sleep(HANG_S)
        if decision.kind == "malformed":
            return garbage_response()
        if result["code"] != OK:
            return refusal(tran_id, tran_seq, result["code"], result["detail"])
        # Answer from the record as it is now: a repeat after payment says "paid".
        decl = declarations[result["request_id"]]
        return JSONResponse({"head": head(tran_id, tran_seq, OK, NATIVE_CODES[decl.status]),
                             "body": declaration_body(decl)})

    def page_for(token: str) -> Declaration | HTMLResponse:
        if state.faults.outage:
            return h5_page("服务暂不可用", "<p>系统维护中，请稍后再试。</p>", status=503)
        decl = by_token.get(token)
        if decl is None:
            return h5_page("缴费链接无效", "<p>该缴费链接不存在或已失效。</p>", status=404)
        return decl

    def summary(decl: Declaration) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(items[r.zspm_dm].name)}</td><td>{r.start}至{r.end}</td><td>{_money(r.due)}</td></tr>"
            for r in decl.rows
        )
        masked = decl.id_number[:6] + "********" + decl.id_number[-4:]
        return (f"<p>缴费人：{html.escape(decl.name)}（{masked}）</p><p>申报凭证号码：{decl.pzhm}</p>"
                f"<table><tr><th>征收品目</th><th>费款所属期</th><th>应缴费额（元）</th></tr>{rows}</table>"
                f"<p>合计应缴：<strong id=\"amount\">{_money(decl.total)}</strong> 元</p>")

    @app.get("/h5/pay/{token}")
    async def payment_page(token: str) -> HTMLResponse:
        decl = page_for(token)
        if isinstance(decl, HTMLResponse):
            return decl
        if decl.status == "paid":
            return h5_page("已缴费", summary(decl) + f"<p>电子税票号码：<span id=\"dzsphm\">{decl.dzsphm}</span></p>")
        form = (f"<form method=\"post\" action=\"/h5/pay/{token}/confirm\">"
                f"<button type=\"submit\">确认缴费 {_money(decl.total)} 元</button></form>")
        return h5_page("社会保险费缴纳", summary(decl) + form)

    @app.post("/h5/pay/{token}/confirm")
    async def confirm_payment(token: str) -> HTMLResponse:
        decl = page_for(token)
        if isinstance(decl, HTMLResponse):
            return decl
        await pay(decl)
        return h5_page("缴费成功", summary(decl) + f"<p>电子税票号码：<span id=\"dzsphm\">{decl.dzsphm}</span></p>")

    return app
