"""医保 adapter: REST/JSON in the National Medical Security Information Platform envelope style (see DOMAIN.md)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
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

_TRANSACTION = {
    "employee_medical_enrolment": "4101",
    "employee_medical_change": "4102",
    "resident_medical_enrolment": "4201",
    "resident_medical_change": "4202",
}
_QUERY = "4301"
_INSUTYPE = {"employee_medical_enrolment": "310", "employee_medical_change": "310",
             "resident_medical_enrolment": "390", "resident_medical_change": "390"}
_ID_TYPE = {"resident_id": "01", "hmt_residence_permit": "06", "other": "99"}  # 医保's own ID-type codes
_SEX = {"male": "1", "female": "2"}
_sequence = itertools.count(1)


class MedicalAdapter(DepartmentAdapter):
    name = "medical"
    department = "medical"
    version = "0.1.0"
    protocol = "rest"
    operations = {
        "employee_medical_enrolment": "灵活就业人员医疗保险参保登记 (4101)",
        "employee_medical_change": "灵活就业人员医疗保险参保信息变更登记 (4102)",
        "resident_medical_enrolment": "城乡居民基本医疗保险参保登记 (4201)",
        "resident_medical_change": "城乡居民基本医疗保险参保信息变更登记 (4202)",
    }
    status_table = StatusTable.load(Path(__file__).with_name("status_table.yaml"))

    def _envelope(self, infno: str, request: DepartmentRequest, data: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now()
        institution = str(self.ctx.settings.options.get("institution_code", "H45010300001"))[:12].ljust(12, "0")
        admdvs = request.region_code
        return {
            "infno": infno,
            # 12-char institution code + yyyyMMddHHmmss + 4-digit sequence
            "msgid": f"{institution}{now:%Y%m%d%H%M%S}{next(_sequence) % 10000:04d}",
            "mdtrtarea_admvs": admdvs,
            "insuplc_admdvs": admdvs,
            "recer_sys_code": "FLEXGW",
            "infver": "V1.0",
            "opter_type": "1",
            "opter": "flexgw",
            "opter_name": "一件事网关",
            "inf_time": now.strftime("%Y-%m-%d %H:%M:%S"),
            "sign_no": "",
            "input": {"data": data},
        }

    def _person_data(self, request: DepartmentRequest) -> dict[str, Any]:
        applicant = request.applicant
        section = request.section
        return {
            "ext_biz_no": request.request_id,
            "psn_cert_type": _ID_TYPE.get(str(applicant.get("id_type")), "99"),
            "certno": applicant.get("id_number"),
            "psn_name": applicant.get("name"),
            "gend": _SEX.get(str(applicant.get("sex")), "0"),
            "naty": applicant.get("ethnicity_code", "01"),
            "brdy": applicant.get("birth_date"),
            "tel": applicant.get("phone"),
            "insutype": _INSUTYPE.get(request.operation, "310"),
            "insu_admdvs": section.get("insured_place") or request.region_code,
            "clct_way": "02",  # 个人缴费
            "biz_data": dict(section),
            "notify_url": request.callback_url,
        }

    async def _call(self, envelope: dict[str, Any]) -> dict[str, Any]:
        response = await post_json(self.ctx, "/fsi/api/transaction", envelope, what=f"medical {envelope['infno']}")
        try:
            body = response.json()
            infcode = int(body["infcode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedReply(f"medical reply is not its envelope (HTTP {response.status_code})") from exc
        if not isinstance(body, dict):
            raise MalformedReply("medical reply is not a JSON object")
        body["infcode"] = infcode
        return body

    @staticmethod
    def _outcome(body: dict[str, Any]) -> NativeOutcome:
        if body["infcode"] == 0:
            output = body.get("output") or {}
            return NativeOutcome(
                native_status=str(output.get("biz_stas", "")),
                reference=output.get("psn_no"),
                message=body.get("warn_msg") or None,
                data={"psn_no": output.get("psn_no"), "crt_insu_date": output.get("crt_insu_date")},
            )
        err = str(body.get("err_msg") or "").strip()
        code, _, text = err.partition(" ")
        return NativeOutcome(native_status=code or "-1", message=text or err or None)

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        infno = _TRANSACTION.get(request.operation)
        if infno is None:
            raise ValueError(f"medical adapter has no operation {request.operation!r}")
        return self._outcome(await self._call(self._envelope(infno, request, self._person_data(request))))

    async def query_status(self, request: DepartmentRequest, reference: str | None) -> NativeOutcome:
        data = {"ext_biz_no": request.request_id, "certno": request.applicant.get("id_number")}
        return self._outcome(await self._call(self._envelope(_QUERY, request, data)))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        try:
            payload = json.loads(body)
            payload["infcode"] = int(payload.get("infcode", 0))
            request_id = str(payload["output"]["ext_biz_no"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCallback("medical callback body is not its envelope") from exc
        verify_signed_callback(headers, body, adapter=self.ctx.name, request_id=request_id,
                               secret=self.ctx.settings.callback_secret, department="medical",
                               timestamp_header="X-Fsi-Timestamp", signature_header="X-Fsi-Signature")
        return CallbackEvent(request_id=request_id, outcome=self._outcome(payload))
