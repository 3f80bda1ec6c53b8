"""电子证照 adapter: REST/JSON in the GB/T 36906 shared-service style (see DOMAIN.md).

Retrieves the applicant's 居民身份证 and 居民户口簿 (query by holder name + ID type 111 + ID number, then download by
identifier with a usage reason, both under the holder's authorization) and issues the 《就业创业证》 e-certificate.
Every identifier the department sends is validated (structure, MOD 37,36 check character, issuer USCC).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from adapters.e_license.identifiers import InvalidIdentifier, parse_identifier
from gateway.sdk import (
    CALLBACK_MAX_AGE_S,
    CallbackEvent,
    DepartmentAdapter,
    DepartmentRequest,
    ELicense,
    ELicenseSource,
    InvalidCallback,
    MalformedReply,
    NativeOutcome,
    StatusTable,
    TechnicalFault,
    post_json,
    verify_signed_callback,
)

_CATALOGUE: dict[str, Any] = yaml.safe_load(Path(__file__).with_name("catalogue.yaml").read_text(encoding="utf-8"))
LICENCE_TYPES: dict[str, str] = {kind: spec["code"] for kind, spec in _CATALOGUE["licences"].items()}
CERTIFICATE_TYPES: dict[str, str] = {kind: spec["code"] for kind, spec in _CATALOGUE["certificates"].items()}
_ETHNICITY_CODES: dict[str, str] = {str(k): str(v) for k, v in _CATALOGUE["ethnicities"].items()}
_CERTIFICATE_BY_CODE = {code: kind for kind, code in CERTIFICATE_TYPES.items()}

# The record of the holder's consent (assertion jti, issuer, level, times) as compact JSON: which authorization
# allowed this retrieval. The applicant's token itself never leaves the gateway.
AUTH_HEADER = "X-Holder-Authorization"
CITIZEN_ID = "111"  # holderTypeCode for a citizen ID number (GB/T 36903 / GA/T 517 style)
DEFAULT_CERTIFICATE = "employment_entrepreneurship_certificate"
_BEIJING = dt.timezone(dt.timedelta(hours=8))
_SEX = {"男": "male", "女": "female"}


class HolderAuthorizationRefused(TechnicalFault):
    """The e-license system refused the holder authorization we pass on: our configuration or assertion hand-off is
    wrong (the applicant already authenticated to reach us), so ops must look; never an applicant-facing rejection."""


def _date(text: Any) -> str:
    """A licence date (19900517, 1990-05-17, 1990.05.17 or 1990年5月17日) as ISO 8601."""
    digits = re.fullmatch(r"(\d{4})\D?(\d{1,2})\D?(\d{1,2})\D?", str(text).strip())
    if digits is None:
        raise MalformedReply(f"e-license date {text!r} is not a date")
    try:
        return dt.date(*(int(part) for part in digits.groups())).isoformat()
    except ValueError as exc:
        raise MalformedReply(f"e-license date {text!r} is not a date") from exc


def _ethnicity(face_value: Any) -> tuple[str, str | None]:
    name = str(face_value).strip()
    full = name if name.endswith("族") else name + "族"
    return full, _ETHNICITY_CODES.get(full)


class ELicenseAdapter(DepartmentAdapter, ELicenseSource):
    name = "e_license"
    department = "e_license"
    version = "0.1.0"
    protocol = "rest"
    operations = {
        "issue_certificate": "签发电子证照（《就业创业证》）",
        # Called by the core at intake with the holder's authorization, never submitted as a matter.
        "fetch_identity_documents": "获取居民身份证、居民户口簿电子证照（持证人授权）",
    }
    status_table = StatusTable.load(Path(__file__).with_name("status_table.yaml"))

    async def _call(self, path: str, body: dict[str, Any],
                    authorization: Mapping[str, Any] | None = None) -> dict[str, Any]:
        headers = {AUTH_HEADER: json.dumps(dict(authorization), separators=(",", ":"), sort_keys=True)
                   } if authorization else {}
        response = await post_json(self.ctx, "/api/license/" + path, body, headers=headers, what=f"e-license {path}")
        try:
            reply = response.json()
        except ValueError as exc:
            raise MalformedReply(f"e-license {path} reply is not JSON (HTTP {response.status_code})") from exc
        if not isinstance(reply, dict) or reply.get("ack_code") not in ("SUCCESS", "FAILURE"):
            raise MalformedReply(f"e-license {path} reply is not its envelope (HTTP {response.status_code})")
        if reply["ack_code"] == "FAILURE" and not self._error(reply)[0]:
            raise MalformedReply(f"e-license {path} failed without an error code")
        return reply

    @staticmethod
    def _error(reply: Mapping[str, Any]) -> tuple[str, str]:
        errors = reply.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        return str(first.get("code") or ""), str(first.get("message") or "")

    def _refuse(self, path: str, reply: Mapping[str, Any]) -> TechnicalFault:
        """Retrieval has no business outcome: any refusal is a technical fault, the auth one named as such."""
        code, message = self._error(reply)
        if code == "E0401":
            return HolderAuthorizationRefused(f"e-license refused the holder authorization on {path} ({code} {message})"
                                              "; check the assertion hand-off and our e-license credentials")
        return TechnicalFault(f"e-license refused {path}: {code} {message}")

    # ---- ELicenseSource

    async def fetch_identity_documents(self, name: str, id_number: str,
                                       authorization: Mapping[str, Any]) -> list[ELicense]:
        kinds: list[Literal["id_card", "household_register"]] = ["id_card", "household_register"]
        found = await asyncio.gather(*(self._query(kind, name, id_number, authorization) for kind in kinds))
        wanted = [(kind, identifier) for kind, identifiers in zip(kinds, found, strict=True)
                  for identifier in identifiers]
        documents = await asyncio.gather(*(self._download(kind, identifier, id_number, authorization)
                                           for kind, identifier in wanted))
        return list(documents)

    async def _query(self, kind: str, name: str, id_number: str, authorization: Mapping[str, Any]) -> list[str]:
        type_code = LICENCE_TYPES[kind]
        body = {"holderName": name, "holderTypeCode": CITIZEN_ID, "holderCode": id_number, "certTypeCode": type_code}
        reply = await self._call("query", body, authorization)
        if reply["ack_code"] != "SUCCESS":
            raise self._refuse("query", reply)
        items = reply.get("data")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise MalformedReply("e-license query data is not a list of licences")
        identifiers = []
        for item in items:
            identifier = self._identifier(item, type_code)
            if str(item.get("holderCode", "")).upper() != id_number.upper():
                raise MalformedReply("e-license query answered a licence of another holder")
            identifiers.append(identifier)
        return identifiers

    @staticmethod
    def _identifier(item: Mapping[str, Any], type_code: str) -> str:
        identifier = str(item.get("certIdentifier", ""))
        try:
            parsed = parse_identifier(identifier)
        except InvalidIdentifier as exc:
            raise MalformedReply(f"e-license sent an invalid licence identifier: {exc}") from exc
        if parsed.type_code != type_code:
            raise MalformedReply(f"e-license sent a licence of type {parsed.type_code}, not {type_code}")
        return identifier

    async def _download(self, kind: Literal["id_card", "household_register"], identifier: str, id_number: str,
                        authorization: Mapping[str, Any]) -> ELicense:
        use_cause = str(self.ctx.settings.options.get("use_cause") or _CATALOGUE["use_cause"])
        reply = await self._call("download", {"certIdentifier": identifier, "useCause": use_cause}, authorization)
        if reply["ack_code"] != "SUCCESS":
            raise self._refuse("download", reply)
        data = reply.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("surface"), dict):
            raise MalformedReply("e-license download data has no licence face")
        if self._identifier(data, LICENCE_TYPES[kind]) != identifier:
            raise MalformedReply("e-license download answered another licence")
        if str(data.get("holderCode", "")).upper() != id_number.upper():
            raise MalformedReply("e-license download answered a licence of another holder")
        try:
            fields = self._id_card(data) if kind == "id_card" else self._household_register(data)
        except KeyError as exc:
            raise MalformedReply(f"e-license {kind} lacks the face item {exc}") from exc
        return ELicense(kind=kind, identifier=identifier, holder_name=str(data.get("holderName") or fields["name"]),
                        holder_id_number=id_number, fields=fields)

    @staticmethod
    def _person(face: Mapping[str, Any]) -> dict[str, Any]:
        ethnicity, ethnicity_code = _ethnicity(face["MZ"])
        return {"name": str(face["XM"]).strip(), "sex": _SEX.get(str(face["XB"]).strip()), "ethnicity": ethnicity,
                "ethnicity_code": ethnicity_code, "birth_date": _date(face["CSRQ"])}

    def _id_card(self, data: Mapping[str, Any]) -> dict[str, Any]:
        face = data["surface"]
        start, _, end = str(face["YXQX"]).partition("-")
        long_term = end.strip() == "长期"
        return self._person(face) | {
            "address": str(face["ZZ"]).strip(),
            "issuing_authority": str(face["QFJG"]).strip(),
            "valid_from": _date(start),
            "valid_until": None if long_term else _date(end),
            "long_term": long_term,
        }

    def _household_register(self, data: Mapping[str, Any]) -> dict[str, Any]:
        face = data["surface"]
        division = str(face["HKSZDXZQHDM"]).strip()
        if not re.fullmatch(r"\d{6}", division):
            raise MalformedReply(f"e-license household division code {division!r} is not 6 digits")
        return self._person(face) | {
            "household_address": str(face["HKSZD"]).strip(),
            "household_division_code": division,
            "household_number": str(face["HH"]).strip(),
            "head_of_household": str(face["HZXM"]).strip(),
            "relationship_to_head": str(face["YHZGX"]).strip(),
            "registration_authority": str(face.get("CBDW") or data.get("issueOrgName") or "").strip(),
        }

    async def issue_certificate(self, request: DepartmentRequest, certificate_type: str) -> NativeOutcome:
        type_code = CERTIFICATE_TYPES.get(certificate_type)
        if type_code is None:
            raise ValueError(f"e-license catalogue has no certificate {certificate_type!r}")
        applicant = request.applicant
        face = {"XM": applicant.get("name"), "XB": {"male": "男", "female": "女"}.get(str(applicant.get("sex")), ""),
                "GMSFHM": applicant.get("id_number"), "JYZT": "灵活就业", "DJRQ": dt.date.today().isoformat()}
        body = {"requestId": request.request_id, "certTypeCode": type_code, "holderName": applicant.get("name"),
                "holderTypeCode": CITIZEN_ID, "holderCode": applicant.get("id_number"),
                "regionCode": request.region_code, "surface": face}
        return self._outcome(await self._call("issue", body))

    # ---- DepartmentAdapter

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        if request.operation == "issue_certificate":
            return await self.issue_certificate(request, str(request.section.get("certificate_type",
                                                                                 DEFAULT_CERTIFICATE)))
        # fetch_identity_documents needs the holder's authorization, which only the core's direct call carries.
        raise ValueError(f"e-license adapter cannot submit operation {request.operation!r}")

    async def query_status(self, request: DepartmentRequest, reference: str | None) -> NativeOutcome:
        return self._outcome(await self._call("issue/query", {"requestId": request.request_id}))

    def _outcome(self, reply: Mapping[str, Any]) -> NativeOutcome:
        raw = reply.get("data")
        data: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        if reply.get("ack_code") != "SUCCESS":
            code, message = self._error(reply)
            return NativeOutcome(native_status=code, message=message or None)
        type_code = str(data.get("certTypeCode", ""))
        identifier = self._identifier(data, type_code)
        if type_code not in _CERTIFICATE_BY_CODE:
            raise MalformedReply(f"e-license issued a certificate of unknown type {type_code}")
        try:
            issued_at = dt.datetime.strptime(str(data.get("issueTime")), "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING)
        except ValueError as exc:
            raise MalformedReply(f"e-license issueTime {data.get('issueTime')!r} is not a time") from exc
        return NativeOutcome(
            native_status=str(data.get("status", "")),
            reference=identifier,
            data={"identifier": identifier, "issued_at": issued_at.isoformat(),
                  "type": _CERTIFICATE_BY_CODE[type_code]},
        )

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        settings = self.ctx.settings
        try:
            payload = json.loads(body)
            request_id = str(payload["data"]["requestId"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCallback("e-license callback body is not its envelope") from exc
        verify_signed_callback(headers, body, adapter=self.ctx.name, request_id=request_id,
                               secret=settings.callback_secret, department="e-license",
                               timestamp_header="X-License-Timestamp", signature_header="X-License-Signature",
                               max_age_s=float(settings.options.get("callback_max_age_s", CALLBACK_MAX_AGE_S)))
        try:
            outcome = self._outcome(payload)
        except (ValueError, KeyError, TypeError, MalformedReply) as exc:
            raise InvalidCallback("e-license callback body is not its envelope") from exc
        return CallbackEvent(request_id=request_id, outcome=outcome)
