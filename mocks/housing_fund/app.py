"""Mock 住房公积金 centre: flexible workers' account opening in the JGJ/T 320-2014 data-standard style.

One endpoint, `POST /gjj/api/gateway`, takes `{transCode, sendDate, sendTime, sendSeqno, body}` and answers the same
envelope plus `centerSeqno`, `recode` ("000000" success) and `msg`. Field codes are the standard's upper-case ones
(GRZH, DWZH, GRJCJS, GRYJCE/DWYJCE/YJCE, GRJCBL/DWJCBL, GRZHZT, JZNY, ZJLX/ZJHM); 缴存归集点 is JCGJD and the
gateway's request id travels as the business serial YWLSH. Transactions:
  1101  open a flexible worker's account: body {YWLSH, XINGMING, ZJLX, ZJHM, XINGBIE, CSNY, SJHM, JCGJD, YJCE, TZDZ}
  1109  business status by YWLSH
The applicant deposits through the H5 page (the Jiujiang Bank app in real life): `GET /h5/deposit/{token}` and
`POST /h5/deposit/{token}/confirm`; the centre records the month paid up to (JZNY) and posts a signed callback
(transCode 1201, headers X-Gjj-Timestamp / X-Gjj-Signature) to TZDZ.
Business states (body.BLZT): "opened" (awaiting the first deposit), "deposited"; refusal codes: NATIVE_CODES.
Population marker 7 (mocks/population.py) is a person who already has an account here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import itertools
import os
import secrets
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from mocks.common import (
    HANG_S,
    MockState,
    add_control_routes,
    decide_fault,
    env_float,
    env_secret,
    garbage_response,
    h5_page,
    send_callback,
)
from mocks.population import person

OPEN = "1101"
QUERY = "1109"
NOTIFY = "1201"
OK = "000000"

NATIVE_CODES = {
    "opened": "开户成功，待首次缴存",
    "deposited": "缴存成功",
    "200001": "该职工已有住房公积金个人账户，不能重复开户",
    "200002": "月缴存额超出本中心缴存上下限",
    "200003": "证件号码无效",
    "900001": "报文格式错误",
    "900404": "未找到业务记录",
    "999999": "系统忙，请稍后再试",
}

CENT = Decimal("0.01")


@dataclass(frozen=True)
class CentreRules:
    """What the centre's board sets each year; defaults are placeholders, configurable per deployment."""

    center_code: str = "3604"  # leading digits of account numbers (Jiujiang)
    min_monthly: Decimal = Decimal(100)
    max_monthly: Decimal = Decimal(10000)
    # A flexible worker pays both shares: YJCE = GRJCJS x (GRJCBL + DWJCBL).
    personal_ratio: Decimal = Decimal("0.12")
    unit_ratio: Decimal = Decimal("0.12")


def rules_from_env() -> CentreRules:
    defaults = CentreRules()
    return CentreRules(
        center_code=os.environ.get("MOCK_HOUSING_FUND_CENTER", defaults.center_code),
        min_monthly=Decimal(str(env_float("MOCK_HOUSING_FUND_MIN_YJCE", float(defaults.min_monthly)))),
        max_monthly=Decimal(str(env_float("MOCK_HOUSING_FUND_MAX_YJCE", float(defaults.max_monthly)))),
    )


@dataclass
class Account:
    request_id: str
    grzh: str
    dwzh: str
    id_number: str
    name: str
    collection_point: str
    monthly: Decimal
    opened_on: str
    token: str
    page_url: str
    notify_url: str
    status: str = "opened"
    paid_up_to: str = ""  # JZNY, YYYYMM
    bank_serial: str | None = None
    deposited_at: str | None = None
    # Serialises the deposit: a double tap in the bank app must not deposit (or notify) twice.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FormatError(Exception):
    pass


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def create_app(rules: CentreRules | None = None) -> FastAPI:
    app = FastAPI(title="mock 住房公积金 (housing provident fund)")
    state = MockState(name="housing_fund")
    app.state.mock = state
    app.state.callback_secret = env_secret("housing_fund")
    add_control_routes(app, state)
    centre = rules if rules is not None else rules_from_env()
    accounts: dict[str, Account] = {}  # YWLSH (the gateway's request id) -> account
    by_id_number: dict[str, Account] = {}
    by_token: dict[str, Account] = {}
    serials = itertools.count(1)
    dwzh = f"{centre.center_code}99000001"  # the centre's virtual unit for flexible workers

    def envelope(trans_code: str, send_seqno: str, recode: str, msg: str, body: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now()
        return {"transCode": trans_code, "sendDate": now.strftime("%Y%m%d"), "sendTime": now.strftime("%H%M%S"),
                "sendSeqno": send_seqno, "centerSeqno": f"{now:%Y%m%d}{next(serials):010d}", "recode": recode,
                "msg": msg, "body": body}

    def refusal(trans_code: str, send_seqno: str, code: str, body: dict[str, Any] | None = None,
                detail: str = "", status: int = 200) -> JSONResponse:
        msg = NATIVE_CODES[code] + (f"：{detail}" if detail else "")
        return JSONResponse(envelope(trans_code, send_seqno, code, msg, body or {}), status_code=status)

    def split(monthly: Decimal) -> dict[str, str]:
        total_ratio = centre.personal_ratio + centre.unit_ratio
        personal = (monthly * centre.personal_ratio / total_ratio).quantize(CENT, rounding=ROUND_HALF_UP)
        return {"YJCE": _money(monthly), "GRYJCE": _money(personal), "DWYJCE": _money(monthly - personal),
                "GRJCJS": _money(monthly / total_ratio), "GRJCBL": str(centre.personal_ratio),
                "DWJCBL": str(centre.unit_ratio)}

    def account_body(account: Account) -> dict[str, Any]:
        return {"YWLSH": account.request_id, "BLZT": account.status, "GRZH": account.grzh, "DWZH": account.dwzh,
                "GRZHZT": "0", "JCGJD": account.collection_point, "KHRQ": account.opened_on,
                "JZNY": account.paid_up_to, "JCJE": _money(account.monthly) if account.status == "deposited" else "",
                "YHLSH": account.bank_serial or "", "JCSJ": account.deposited_at or "", "JCURL": account.page_url,
                **split(account.monthly)}

    async def open_account(body: dict[str, Any], monthly: Decimal, base_url: str) -> dict[str, Any]:
        request_id = str(body["YWLSH"])
        id_number = str(body.get("ZJHM") or "").strip().upper()
        if len(id_number) != 18 or not id_number[:17].isdigit():
            return {"code": "200003"}
        existing = by_id_number.get(id_number)
        if existing is not None and existing.request_id != request_id:
            return {"code": "200001", "body": {"GRZH": existing.grzh, "GRZHZT": "0"}}
        if person(id_number).already_enrolled:
            # Someone the centre has known for years: an ordinary, normal account.
            return {"code": "200001", "body": {"GRZH": f"{centre.center_code}{id_number[-8:]}", "GRZHZT": "0"}}
        if not centre.min_monthly <= monthly <= centre.max_monthly:
            limits = f"{_money(centre.min_monthly)}至{_money(centre.max_monthly)}元"
            return {"code": "200002", "detail": f"{_money(monthly)}元，应在{limits}之间"}
        token = secrets.token_urlsafe(18)
        account = Account(
            request_id=request_id, grzh=f"{centre.center_code}{next(serials):08d}", dwzh=dwzh, id_number=id_number,
            name=str(body.get("XINGMING") or ""), collection_point=str(body["JCGJD"]), monthly=monthly,
            opened_on=dt.date.today().isoformat(), token=token, page_url=f"{base_url}/h5/deposit/{token}",
            notify_url=str(body.get("TZDZ") or ""),
        )
        accounts[request_id] = by_id_number[id_number] = by_token[token] = account
        return {"code": OK, "request_id": request_id}

    async def deposit(account: Account) -> None:
        async with account.lock:
            if account.status == "deposited":
                return
            now = dt.datetime.now()
            account.paid_up_to = now.strftime("%Y%m")
            account.bank_serial = f"JJB{now:%Y%m%d%H%M%S}{next(serials):06d}"
            account.deposited_at = now.strftime("%Y-%m-%d %H:%M:%S")
            account.status = "deposited"
        if account.notify_url:
            payload = envelope(NOTIFY, account.request_id, OK, NATIVE_CODES["deposited"], account_body(account))
            state.spawn(send_callback(state, account.notify_url, payload, request_id=account.request_id,
                                      secret=app.state.callback_secret,
                                      signature_header="X-Gjj-Signature", timestamp_header="X-Gjj-Timestamp"))

    @app.post("/gjj/api/gateway")
    async def gateway(request: Request) -> Response:
        decision = await decide_fault(state)
        if decision.kind == "outage":
            return JSONResponse({"recode": "999999", "msg": "服务不可用"}, status_code=503)
        if decision.kind == "error":
            return JSONResponse({"recode": "999999", "msg": NATIVE_CODES["999999"]}, status_code=500)
        try:
            message = await request.json()
            trans_code = str(message["transCode"])
            send_seqno = str(message.get("sendSeqno", ""))
            body = dict(message["body"])
            request_id = str(body["YWLSH"])
            monthly = Decimal(str(body["YJCE"])) if trans_code == OPEN else Decimal(0)
            if trans_code == OPEN and (not monthly.is_finite() or not str(body.get("JCGJD") or "")):
                raise FormatError("YJCE and JCGJD are required")
        except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation, FormatError) as exc:
            return refusal("", "", "900001", detail=str(exc), status=400)
        if trans_code == QUERY:
            if request_id not in accounts:
                return refusal(trans_code, send_seqno, "900404")
            result: dict[str, Any] = {"code": OK, "request_id": request_id}
        elif trans_code == OPEN:
            base_url = str(request.base_url).rstrip("/")
            result = await state.once(request_id, lambda: open_account(body, monthly, base_url))
        else:
            return refusal(trans_code, send_seqno, "900001", detail=f"unknown transCode {trans_code}", status=400)
        if decision.kind == "timeout":
            await asyncio.sleep(HANG_S)
        if decision.kind == "malformed":
            return garbage_response()
        if result["code"] != OK:
            return refusal(trans_code, send_seqno, result["code"], result.get("body"), result.get("detail", ""))
        # Answer from the account as it is now: a repeat after the deposit says "deposited".
        account = accounts[result["request_id"]]
        return JSONResponse(envelope(trans_code, send_seqno, OK, NATIVE_CODES[account.status],
                                     account_body(account)))

    def page_for(token: str) -> Account | HTMLResponse:
        if state.faults.outage:
            return h5_page("服务暂不可用", "<p>系统维护中，请稍后再试。</p>", status=503)
        account = by_token.get(token)
        if account is None:
            return h5_page("缴存链接无效", "<p>该缴存链接不存在或已失效。</p>", status=404)
        return account

    def summary(account: Account) -> str:
        return (f"<p>缴存人：{html.escape(account.name)}</p>"
                f"<p>个人公积金账号：<span id=\"grzh\">{account.grzh}</span></p>"
                f"<p>月缴存额：<strong id=\"amount\">{_money(account.monthly)}</strong> 元</p>")

    def receipt(account: Account) -> str:
        return (f"<p>缴存至：<span id=\"jzny\">{account.paid_up_to}</span></p>"
                f"<p>银行流水号：<span id=\"yhlsh\">{account.bank_serial}</span></p>")

    @app.get("/h5/deposit/{token}")
    async def deposit_page(token: str) -> HTMLResponse:
        account = page_for(token)
        if isinstance(account, HTMLResponse):
            return account
        if account.status == "deposited":
            return h5_page("已缴存", summary(account) + receipt(account))
        form = (f"<form method=\"post\" action=\"/h5/deposit/{token}/confirm\">"
                f"<button type=\"submit\">确认缴存 {_money(account.monthly)} 元</button></form>")
        return h5_page("住房公积金缴存", summary(account) + form)

    @app.post("/h5/deposit/{token}/confirm")
    async def confirm_deposit(token: str) -> HTMLResponse:
        account = page_for(token)
        if isinstance(account, HTMLResponse):
            return account
        await deposit(account)
        return h5_page("缴存成功", summary(account) + receipt(account))

    return app
