"""Mock 医保 system in the National Medical Security Information Platform style.

One endpoint, `POST /fsi/api/transaction`, takes the platform envelope (`infno`, `msgid`, `input`, ...) and answers
`{infcode, inf_refmsgid, err_msg, output, ...}`. `infcode` is sent as a number or a string (both happen in the field).
Enrolment transactions are this mock's own choice in the platform's style:
  4101 flexible-employment (employee) medical enrolment   4102 employee information change
  4201 resident medical enrolment                          4202 resident information change
  4301 enrolment status query
Business outcome codes (output.biz_stas or err_msg code): see NATIVE_CODES below.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from mocks.common import (
    HANG_S,
    MockState,
    add_control_routes,
    decide_fault,
    env_secret,
    garbage_response,
)
from mocks.gateway_signature import gateway_verifier
from mocks.population import person

TRANSACTIONS = {"4101": "employee_enrolment", "4102": "employee_change", "4201": "resident_enrolment",
                "4202": "resident_change", "4301": "query"}

# biz_stas values this system answers, and its business error codes
NATIVE_CODES = {
    "1": "参保登记成功",
    "2": "变更登记成功",
    "E1001": "参保人已参加职工基本医疗保险，不能重复参保",
    "E1002": "参保人已参加城乡居民基本医疗保险",
    "E1003": "参保人未参保，不能办理参保信息变更",
    "E1004": "证件号码校验不通过",
    "E0401": "接入方签名验证失败",
    "E9001": "系统繁忙，请稍后再试",
}


def create_app() -> FastAPI:
    app = FastAPI(title="mock 医保 (medical insurance)")
    state = MockState(name="medical")
    app.state.mock = state
    app.state.callback_secret = env_secret("medical")
    verify_gateway = gateway_verifier("medical")
    add_control_routes(app, state)
    enrolled: dict[str, dict[str, Any]] = {}  # certno -> record

    def envelope(infcode: int | str, output: dict[str, Any] | None, err_msg: str = "") -> dict[str, Any]:
        now = dt.datetime.now()
        return {
            # Real platforms send infcode as a number or as a string; so does this mock.
            "infcode": infcode if random.random() < 0.5 else str(infcode),
            "inf_refmsgid": f"450000{now:%Y%m%d%H%M%S}{random.randint(0, 9999):04d}{random.randint(0, 99999999):08d}",
            "refmsg_time": now.strftime("%Y%m%d%H%M%S%f")[:17],
            "respond_time": now.strftime("%Y%m%d%H%M%S%f")[:17],
            "err_msg": err_msg,
            "warn_msg": "",
            "output": output or {},
        }

    async def register(txn: str, data: dict[str, Any]) -> dict[str, Any]:
        certno = str(data.get("certno", ""))
        who = person(certno)
        if len(certno) != 18:
            return {"infcode": -1, "err": "E1004"}
        record = enrolled.get(certno)
        employee_enrolled = who.already_enrolled or (record is not None and record["insutype"] == "310")
        if txn == "employee_enrolment":
            if employee_enrolled:
                return {"infcode": -1, "err": "E1001"}
            enrolled[certno] = {"insutype": "310", "psn_no": f"45{certno[-10:]}"}
            return {"infcode": 0, "biz_stas": "1", "psn_no": enrolled[certno]["psn_no"]}
        if txn == "resident_enrolment":
            if employee_enrolled or (record is not None and record["insutype"] == "390"):
                return {"infcode": -1, "err": "E1002" if record else "E1001"}
            enrolled[certno] = {"insutype": "390", "psn_no": f"45{certno[-10:]}"}
            return {"infcode": 0, "biz_stas": "1", "psn_no": enrolled[certno]["psn_no"]}
        # change registrations need an existing enrolment
        if record is None and not who.already_enrolled:
            return {"infcode": -1, "err": "E1003"}
        return {"infcode": 0, "biz_stas": "2", "psn_no": (record or {}).get("psn_no", f"45{certno[-10:]}")}

    @app.post("/fsi/api/transaction")
    async def transaction(request: Request) -> Response:
        if verify_gateway and not verify_gateway(request, await request.body()):
            return JSONResponse(envelope(-1, None, f"E0401 {NATIVE_CODES['E0401']}"), status_code=401)
        decision = await decide_fault(state)
        if decision.kind == "outage":
            return JSONResponse({"infcode": -1, "err_msg": "服务不可用"}, status_code=503)
        if decision.kind == "error":
            return JSONResponse({"infcode": -1, "err_msg": "E9001 系统繁忙，请稍后再试"}, status_code=500)
        try:
            body = await request.json()
            txn = TRANSACTIONS[str(body["infno"])]
            data = dict(body["input"]["data"])
            if not body.get("msgid"):  # the platform refuses an envelope without its message id
                raise KeyError("msgid")
        except (ValueError, KeyError, TypeError):
            return JSONResponse(envelope(-1, None, "E0001 报文格式错误"), status_code=400)
        if txn == "query":
            result = state.answers.get(str(data.get("ext_biz_no", "")))
            if result is None:
                return JSONResponse(envelope(-1, None, "E0404 未找到业务记录"))
        else:
            result = await state.once(str(data.get("ext_biz_no", "")), lambda: register(txn, data))
        if decision.kind == "timeout":
            await asyncio.sleep(HANG_S)
        if decision.kind == "malformed":
            return garbage_response()
        if result["infcode"] != 0:
            code = result["err"]
            return JSONResponse(envelope(-1, None, f"{code} {NATIVE_CODES[code]}"))
        output = {"psn_no": result["psn_no"], "biz_stas": result["biz_stas"], "ext_biz_no": data.get("ext_biz_no"),
                  "psn_insu_stas": "1", "crt_insu_date": dt.date.today().isoformat()}
        return JSONResponse(envelope(0, output))

    return app
