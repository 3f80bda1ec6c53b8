"""住房公积金 adapter: flexible workers' account opening over REST/JSON in the JGJ/T 320-2014 style.

Envelope `{transCode, sendDate, sendTime, sendSeqno, body}`, reply adds `centerSeqno`, `recode` ("000000" success) and
`msg`; fields are the standard's upper-case codes. Opening answers the personal account (GRZH) and the deposit page
(JCURL, the Jiujiang Bank app in real life); the first deposit is confirmed later by a signed callback or by querying
the business serial YWLSH (our request id).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.sdk import (
    CallbackEvent,
    DepartmentAdapter,
    DepartmentRequest,
    InvalidCallback,
    MalformedReply,
    NativeOutcome,
    StatusTable,
    post_json,
    verify_signed_callback,
)

OPEN = "1101"
QUERY = "1109"
OK = "000000"
# The centre's own codes: 01 resident ID card; other documents are not confirmed, so 99 (other).
_ID_TYPE = {"resident_id": "01"}
_SEX = {"male": "1", "female": "2"}


class HousingFundAdapter(DepartmentAdapter):
    name = "housing_fund"
    department = "housing_fund"
    version = "0.1.0"
    protocol = "rest"
    operations = {"housing_fund_account": "灵活就业人员住房公积金开户 (1101), deposit H5 link"}
    status_table = StatusTable.load(Path(__file__).with_name("status_table.yaml"))

    def _envelope(self, trans_code: str, body: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now()
        return {
            "transCode": trans_code,
            "sendDate": now.strftime("%Y%m%d"),
            "sendTime": now.strftime("%H%M%S"),
            "sendSeqno": uuid.uuid4().hex[:20],  # per message; the business key is body.YWLSH
            "body": body,
        }

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        response = await post_json(self.ctx, "/gjj/api/gateway", message, what=f"housing fund {message['transCode']}")
        try:
            reply = response.json()
            str(reply["recode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedReply(f"housing fund reply is not its envelope (HTTP {response.status_code})") from exc
        if not isinstance(reply, dict):
            raise MalformedReply("housing fund reply is not a JSON object")
        return reply

    @staticmethod
    def _outcome(reply: dict[str, Any]) -> NativeOutcome:
        code = str(reply["recode"])
        message = str(reply.get("msg") or "") or None
        body = reply.get("body") or {}
        # A refusal can still name the account (e.g. the one the person already has) and its status.
        data = {"account_number": body.get("GRZH"), "account_status": body.get("GRZHZT")}
        if code != OK:
            return NativeOutcome(native_status=code, reference=body.get("GRZH"), message=message, data=data)
        status = str(body.get("BLZT", ""))
        links = {"deposit": str(body["JCURL"])} if status == "opened" and body.get("JCURL") else {}
        data.update({
            "employer_account": body.get("DWZH"),
            "collection_point": body.get("JCGJD"),
            "monthly_amount": body.get("YJCE"),
            "personal_monthly_amount": body.get("GRYJCE"),
            "unit_monthly_amount": body.get("DWYJCE"),
            "deposit_base": body.get("GRJCJS"),
            "opened_on": body.get("KHRQ"),
            "paid_up_to": body.get("JZNY") or None,
            "deposit_amount": body.get("JCJE") or None,
            "bank_serial": body.get("YHLSH") or None,
        })
        return NativeOutcome(native_status=status, reference=body.get("GRZH"), message=message, links=links, data=data)

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        if request.operation not in self.operations:
            raise ValueError(f"housing fund adapter has no operation {request.operation!r}")
        applicant = request.applicant
        section = request.section
        birth = str(applicant.get("birth_date") or "")
        body = {
            "YWLSH": request.request_id,
            "XINGMING": applicant.get("name"),
            "ZJLX": _ID_TYPE.get(str(applicant.get("id_type")), "99"),
            "ZJHM": applicant.get("id_number"),
            "XINGBIE": _SEX.get(str(applicant.get("sex")), "9"),
            "CSNY": birth[:7],  # 出生年月 YYYY-MM
            "SJHM": applicant.get("phone"),
            # 缴存归集点: the profile's codes are division codes; without one, the region's own centre
            "JCGJD": str(section.get("collection_point") or request.region_code),
            "YJCE": f"{float(section.get('monthly_amount') or 0):.2f}",
            "TZDZ": request.callback_url,
        }
        return self._outcome(await self._call(self._envelope(OPEN, body)))

    async def query_status(self, request: DepartmentRequest, reference: str | None) -> NativeOutcome:
        body = {"YWLSH": request.request_id, "GRZH": reference or ""}
        return self._outcome(await self._call(self._envelope(QUERY, body)))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        try:
            payload = json.loads(body)
            str(payload["recode"])
            request_id = str(payload["body"]["YWLSH"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCallback("housing fund callback body is not its envelope") from exc
        verify_signed_callback(headers, body, adapter=self.ctx.name, request_id=request_id,
                               secret=self.ctx.settings.callback_secret, department="housing fund",
                               timestamp_header="X-Gjj-Timestamp", signature_header="X-Gjj-Signature")
        return CallbackEvent(request_id=request_id, outcome=self._outcome(payload))
