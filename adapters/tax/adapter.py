"""税务 adapter: social-insurance fee declaration (社会保险费申报) over REST/JSON in the GT3 (金税三期) style.

Envelope `{head: {tranId, tranSeq, tranDate, tranTime, channelId, swjgDm}, body}`, reply `{head: {rtnCode, rtnMsg},
body}` with `rtnCode` "0000" on success. The declaration answers the amount due (`ybtse`), the declaration number
(`pzhm`) and the payment page (`jfUrl`, the tax WeChat account in real life); payment is confirmed later by a signed
callback or by querying the declaration with our request id (`ywlsh`).
"""

from __future__ import annotations

import calendar
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

DECLARE = "SBF.SB.SHBXFSB"
QUERY = "SBF.CX.SBJG"
OK = "0000"

# 参保费种 -> 征收项目代码 (zsxmDm) and 征收品目 -> (zsxmDm, zspmDm). The numeric codes are not public (DOMAIN.md):
# these are the values agreed with the mock, overridable per deployment through options `fee_types` and `levy_items`.
FEE_TYPES = {"pension": "10210", "medical": "10212", "long_term_care": "10216", "serious_illness": "10217"}
LEVY_ITEMS: dict[str, tuple[str, str]] = {
    "resident_pension": ("10210", "102100101"),
    "resident_medical": ("10212", "102120101"),
    "resident_long_term_care": ("10216", "102160101"),
    "resident_serious_illness": ("10217", "102170101"),
    "flexible_pension": ("10210", "102100201"),
    "flexible_medical": ("10212", "102120201"),
    "flexible_long_term_care": ("10216", "102160201"),
    "flexible_large_medical": ("10217", "102170201"),
}
# A section without rows (Jiujiang asks nothing at declaration): declare what flexible workers enrol in there.
DEFAULT_LEVY_ITEMS = ("flexible_pension", "flexible_medical")
# 税务's own ID-type codes: 201 resident ID (DOMAIN.md); residence-permit codes unconfirmed, so 299 (other) for now.
_ID_TYPE = {"resident_id": "201"}


def _month_bounds(value: Any, *, end: bool) -> str:
    """A period bound as GT3 wants it (YYYY-MM-DD) from a date or a month (YYYY-MM / YYYYMM)."""
    text = str(value).strip()
    if len(text) == 10:
        return dt.date.fromisoformat(text).isoformat()
    compact = text.replace("-", "")
    if len(compact) != 6 or not compact.isdigit():
        raise ValueError(f"period {value!r} is neither a date nor a month")
    year, month = int(compact[:4]), int(compact[4:])
    day = calendar.monthrange(year, month)[1] if end else 1
    return dt.date(year, month, day).isoformat()


def _amount(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class TaxAdapter(DepartmentAdapter):
    name = "tax"
    department = "tax"
    version = "0.1.0"
    protocol = "rest"
    operations = {"contribution_declaration": "灵活就业人员社会保险费申报 (SBF.SB.SHBXFSB), payment H5 link"}
    status_table = StatusTable.load(Path(__file__).with_name("status_table.yaml"))

    def _option_map(self, key: str, default: Mapping[str, Any]) -> dict[str, Any]:
        override = self.ctx.settings.options.get(key) or {}
        return {**default, **override}

    def _envelope(self, tran_id: str, request: DepartmentRequest, body: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now()
        region = request.region_code[:2]
        return {
            "head": {
                "tranId": tran_id,
                "tranSeq": uuid.uuid4().hex,  # per message; the business key is body.ywlsh
                "tranDate": now.strftime("%Y%m%d"),
                "tranTime": now.strftime("%H%M%S"),
                "channelId": str(self.ctx.settings.options.get("channel_id", "FLEXGW")),
                # 税务机关代码: 1 + province + zeros unless configured (the provincial bureau)
                "swjgDm": str(self.ctx.settings.options.get("tax_authority_code", f"1{region}00000000")),
            },
            "body": body,
        }

    def _rows(self, request: DepartmentRequest) -> list[dict[str, Any]]:
        fee_types = self._option_map("fee_types", FEE_TYPES)
        levy_items = self._option_map("levy_items", LEVY_ITEMS)
        section_rows = request.section.get("rows") or []
        if not section_rows:
            today = dt.date.today()
            month = f"{today:%Y-%m}"
            defaults = self.ctx.settings.options.get("default_levy_items") or DEFAULT_LEVY_ITEMS
            # No base: the tax side applies its lower limit, which is what Jiujiang's enrolment tiers start from.
            section_rows = [{"levy_item": item, "period_start": month, "period_end": month} for item in defaults]
        rows = []
        for row in section_rows:
            levy_item = str(row.get("levy_item", ""))
            if levy_item not in levy_items:
                raise ValueError(f"tax adapter has no levy-item code for {levy_item!r}")
            zsxm, zspm = levy_items[levy_item]
            fee_type = row.get("fee_type")
            rows.append({
                "shbxbm": row.get("social_insurance_code") or "",
                "zsxmDm": fee_types.get(str(fee_type), zsxm) if fee_type else zsxm,
                "zspmDm": zspm,
                "zszmDm": row.get("levy_sub_item") or "",
                "skssqq": _month_bounds(row.get("period_start"), end=False),
                "skssqz": _month_bounds(row.get("period_end"), end=True),
                "jfdcje": _amount(row.get("tier_amount")),
                "jfjs": _amount(row.get("contribution_base")),
                "fl": _amount(row.get("contribution_rate")),
            })
        return rows

    async def _call(self, envelope: dict[str, Any]) -> dict[str, Any]:
        response = await post_json(self.ctx, "/gt3/api/sbf", envelope, what=f"tax {envelope['head']['tranId']}")
        try:
            reply = response.json()
            str(reply["head"]["rtnCode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedReply(f"tax reply is not its envelope (HTTP {response.status_code})") from exc
        if not isinstance(reply, dict):
            raise MalformedReply("tax reply is not a JSON object")
        return reply

    @staticmethod
    def _outcome(reply: dict[str, Any]) -> NativeOutcome:
        head = reply["head"]
        code = str(head["rtnCode"])
        message = str(head.get("rtnMsg") or "") or None
        if code != OK:
            return NativeOutcome(native_status=code, message=message)
        body = reply.get("body") or {}
        status = str(body.get("sbzt", ""))
        links = {"payment": str(body["jfUrl"])} if status == "declared" and body.get("jfUrl") else {}
        return NativeOutcome(
            native_status=status,
            reference=body.get("pzhm"),
            message=message,
            links=links,
            data={
                "declaration_number": body.get("pzhm"),
                "amount_due": body.get("ybtse"),
                "amount_paid": body.get("sjje"),
                "receipt_number": body.get("dzsphm"),
                "paid_at": body.get("jkrq"),
                "rows": [{"levy_item_code": row.get("zspmDm"), "period_start": row.get("skssqq"),
                          "period_end": row.get("skssqz"), "amount_due": row.get("yjfe")}
                         for row in body.get("sbmx") or []],
            },
        )

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        if request.operation not in self.operations:
            raise ValueError(f"tax adapter has no operation {request.operation!r}")
        applicant = request.applicant
        section = request.section
        body = {
            "ywlsh": request.request_id,
            # A natural person's 纳税人识别号 is the ID number unless the form says otherwise.
            "nsrsbh": section.get("taxpayer_id") or applicant.get("id_number"),
            "xm": applicant.get("name"),
            "sfzjlxDm": _ID_TYPE.get(str(applicant.get("id_type")), "299"),
            "sfzjhm": applicant.get("id_number"),
            "sbrq": section.get("declaration_date") or dt.date.today().isoformat(),
            "notifyUrl": request.callback_url,
            "sbmx": self._rows(request),
        }
        return self._outcome(await self._call(self._envelope(DECLARE, request, body)))

    async def query_status(self, request: DepartmentRequest, reference: str | None) -> NativeOutcome:
        body = {"ywlsh": request.request_id, "pzhm": reference or ""}
        return self._outcome(await self._call(self._envelope(QUERY, request, body)))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        try:
            payload = json.loads(body)
            str(payload["head"]["rtnCode"])
            request_id = str(payload["body"]["ywlsh"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCallback("tax callback body is not its envelope") from exc
        verify_signed_callback(headers, body, adapter=self.ctx.name, request_id=request_id,
                               secret=self.ctx.settings.callback_secret, department="tax",
                               timestamp_header="X-Gt3-Timestamp", signature_header="X-Gt3-Signature")
        return CallbackEvent(request_id=request_id, outcome=self._outcome(payload))
