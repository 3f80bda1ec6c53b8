"""人社 (HRSS) adapter: SOAP 1.1 through zeep, from the WSDL that ships with this package (hrss.wsdl).

One zeep client, built from the packaged WSDL when the adapter is made; nothing is fetched at run time and the
service address comes from the settings. Its transport is the core's httpx client, so the core's time-outs, TLS,
signature and request-id hooks apply to SOAP calls too.
The department answers `rc` 0/1/2 with `zt` (state) or `errcode` (business error); see status_table.yaml.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import zeep
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import ExternalReferenceForbidden, Fault, TransportError, ValidationError
from zeep.helpers import serialize_object
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from adapters.hrss.photo import PhotoSpec, photo_problems
from gateway.sdk import (
    AdapterContext,
    CallbackEvent,
    DepartmentAdapter,
    DepartmentRequest,
    DepartmentTimeout,
    DepartmentUnavailable,
    InvalidCallback,
    MalformedReply,
    NativeOutcome,
    StatusTable,
    TechnicalFault,
    verify_signed_callback,
)

# Native codes this adapter produces itself (the rest come from the department); all are in status_table.yaml.
PHOTO_SPEC = "PHOTO_SPEC"  # the applicant's photo failed the spec check: refused without calling the department
SOAP_CLIENT_FAULT = "soap:Client"  # the department (or zeep, from its WSDL) refused our request as malformed

_SOAP_OPERATIONS = {
    "employment_registration": "registerEmployment",
    "employee_pension_enrolment": "enrolEmployeePension",
    "resident_pension_enrolment": "enrolResidentPension",
    "social_security_card": "applySocialSecurityCard",
    "archive_transfer": "transferArchive",
}
_SEX = {"male": "1", "female": "2"}  # GB/T 2261.1
# The region profiles' section codes (the platform's contract) -> HRSS codes.
_EMPLOYMENT_TYPE = {"flexible": "1", "self_employed": "2", "entrepreneur": "3"}  # 灵活就业, 自谋职业, 自主创业
_ARCHIVE_REASON = {"graduation": "graduation", "resignation_or_dismissal": "resignation",
                   "contract_ended": "termination", "other": "other"}
_EMPLOYEE_PENSION = "110"  # aae140: enterprise employees' basic pension
_LONG_TERM = "长期"  # idValidTo of an ID card valid for life
PACKAGE_DIR = Path(__file__).parent
WSDL_FILE = PACKAGE_DIR / "hrss.wsdl"
_BINDING = "{urn:mock:hrss:flexemp:v1}FlexibleEmploymentBinding"


def _compact(value: Any) -> str | None:
    """"1990-05-17" -> "19900517", "2026-04" -> "202604": the department's date and year-month forms."""
    return None if value in (None, "") else str(value).replace("-", "")


class PackageTransport(AsyncTransport):
    """zeep's AsyncTransport on the core's httpx client that reads documents only from files under `root`.

    The WSDL (and any XSD it imports) ships with the adapter: nothing is fetched at run time, and an xsd:import that
    points anywhere else (a URL, a file outside the package) is refused. zeep 4.3 applies `operation_timeout` only
    to a client it creates itself and replaces a given client's default headers, so this class sets neither on the
    core's shared client and passes the time-out per request.
    """

    def __init__(self, client: httpx.AsyncClient, operation_timeout: float, root: Path = PACKAGE_DIR) -> None:
        # AsyncTransport.__init__ is not called: it would build a WSDL-fetching client and overwrite our headers.
        self._close_session = False
        self.cache = None
        self.client = client
        self.operation_timeout = operation_timeout
        self.root = root.resolve()
        self.logger = logging.getLogger(__name__)

    def load(self, url: str) -> bytes:
        location = Path(url.removeprefix("file://")).resolve()
        if "://" in url.removeprefix("file://") or not location.is_relative_to(self.root):
            raise ExternalReferenceForbidden(url)
        return location.read_bytes()

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        response: httpx.Response = await self.client.post(address, content=message, headers=headers,
                                                          timeout=self.operation_timeout)
        return response


def soap_client(wsdl: Path, transport: PackageTransport) -> zeep.AsyncClient:
    """The zeep client for a WSDL file; ZeepError (ExternalReferenceForbidden, ...) if it cannot be read as is."""
    settings = zeep.Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    return zeep.AsyncClient(str(wsdl), transport=transport, settings=settings)


def _contribution_level(section: Mapping[str, Any]) -> str | None:
    """The yearly amount: a listed tier, 0 for 个人不缴费, or the amount of the region's own extra tier."""
    tier = section.get("contribution_tier")
    if tier == "no_contribution":
        return "0"
    if tier == "local_extra":
        tier = section.get("local_extra_amount")
    return None if tier is None else str(tier)


class HrssAdapter(DepartmentAdapter):
    name = "hrss"
    department = "hrss"
    version = "0.1.0"
    protocol = "soap"
    operations = {
        "employment_registration": "就业登记 (registerEmployment)",
        "employee_pension_enrolment": "灵活就业人员养老保险登记 / 职工参保登记, aae140=110 (enrolEmployeePension)",
        "resident_pension_enrolment": "城乡居民基本养老保险参保登记, reviewed (enrolResidentPension)",
        "social_security_card": "社会保障卡申领, photo checked before sending (applySocialSecurityCard)",
        "archive_transfer": "流动人员人事档案接收和转递, reviewed (transferArchive)",
    }
    status_table = StatusTable.load(Path(__file__).with_name("status_table.yaml"))

    def __init__(self, ctx: AdapterContext) -> None:
        super().__init__(ctx)
        options = ctx.settings.options
        self._client = soap_client(WSDL_FILE, PackageTransport(ctx.http, ctx.settings.timeout_s))
        # The address comes from the settings; the packaged WSDL's soap:address is a placeholder.
        self._service = AsyncServiceProxy(self._client, self._client.wsdl.bindings[_BINDING],
                                          address=ctx.settings.base_url.rstrip("/") + "/hrss/service")
        self._photo_spec = PhotoSpec(min_bytes=int(options.get("photo_min_bytes", 30 * 1024)),
                                     max_bytes=int(options.get("photo_max_bytes", 50 * 1024)))

    async def _call(self, operation: str, fields: dict[str, Any]) -> NativeOutcome:
        try:
            reply = await getattr(self._service, operation)(**{k: v for k, v in fields.items() if v is not None})
        except httpx.TimeoutException as exc:
            raise DepartmentTimeout(f"hrss {operation} timed out") from exc
        except httpx.HTTPError as exc:
            raise DepartmentUnavailable(f"hrss unreachable: {exc.__class__.__name__}") from exc
        except Fault as exc:
            if str(exc.code or "").rpartition(":")[2] == "Client":
                return NativeOutcome(native_status=SOAP_CLIENT_FAULT, message=exc.message)
            raise DepartmentUnavailable(f"hrss {operation}: SOAP fault {exc.code}: {exc.message}") from exc
        except ValidationError as exc:
            # zeep would not build the envelope from the WSDL: the same mistake a soap:Client fault reports.
            return NativeOutcome(native_status=SOAP_CLIENT_FAULT, message=f"request not sent: {exc.message}")
        except TransportError as exc:
            if exc.status_code >= 500:
                raise DepartmentUnavailable(f"hrss {operation} answered HTTP {exc.status_code}") from exc
            raise MalformedReply(f"hrss {operation} reply is not SOAP (HTTP {exc.status_code})") from exc
        except ZeepError as exc:
            raise MalformedReply(f"hrss {operation} reply unreadable: {exc.__class__.__name__}") from exc
        return self._outcome(serialize_object(reply, dict), operation)

    @staticmethod
    def _outcome(reply: Any, where: str) -> NativeOutcome:
        """A BusinessReply (SOAP reply or callback body) as the department's own outcome."""
        if not isinstance(reply, Mapping):
            raise MalformedReply(f"hrss {where}: reply is not a BusinessReply")
        try:
            rc = int(reply["rc"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedReply(f"hrss {where}: reply without rc") from exc
        if rc == 2:
            raise DepartmentUnavailable(f"hrss {where}: server error {reply.get('message')!r}")
        native = reply.get("zt") if rc == 0 else reply.get("errcode") if rc == 1 else None
        if not native:
            raise MalformedReply(f"hrss {where}: rc {rc} without its code")
        h5url = reply.get("h5url")
        return NativeOutcome(
            native_status=str(native),
            reference=reply.get("ywlsh"),
            message=reply.get("message"),
            links={"photo": str(h5url)} if h5url else {},
            data={"aac001": reply["aac001"]} if reply.get("aac001") else {},
        )

    def _person(self, request: DepartmentRequest) -> dict[str, Any]:
        applicant = request.applicant
        return {
            "requestId": request.request_id,
            "callbackUrl": request.callback_url or None,
            "aae011": str(self.ctx.settings.options.get("operator", "flexgw")),
            "regionCode": request.region_code,
            "aac002": applicant.get("id_number"),
            "aac003": applicant.get("name"),
            "aac004": _SEX.get(str(applicant.get("sex"))),
            "aac006": _compact(applicant.get("birth_date")),
            "phone": applicant.get("phone"),
        }

    def _check_photo(self, section: Mapping[str, Any]) -> tuple[str | None, NativeOutcome | None]:
        """(base64 photo to send, or None) or a PHOTO_SPEC refusal the applicant can act on."""
        encoded = section.get("photo_jpeg_base64")
        if not encoded:
            return None, None
        try:
            photo = base64.b64decode("".join(str(encoded).split()), validate=True)
        except binascii.Error:
            return None, NativeOutcome(native_status=PHOTO_SPEC, message="照片不是有效的base64编码",
                                       data={"photo_problems": [{"code": "format", "zh": "照片不是有效的base64编码",
                                                                 "en": "the photo is not valid base64"}]})
        problems = photo_problems(photo, self._photo_spec)
        if problems:
            return None, NativeOutcome(
                native_status=PHOTO_SPEC, message="；".join(p.zh for p in problems),
                data={"photo_problems": [{"code": p.code, "zh": p.zh, "en": p.en} for p in problems]})
        return base64.b64encode(photo).decode(), None

    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        operation = _SOAP_OPERATIONS.get(request.operation)
        if operation is None:
            raise ValueError(f"hrss adapter has no operation {request.operation!r}")
        section = request.section
        fields = self._person(request)
        if request.operation == "employment_registration":
            kind = str(section.get("employment_type", "flexible"))
            fields |= {"employmentType": _EMPLOYMENT_TYPE.get(kind, kind),
                       "employmentDate": _compact(section.get("employment_start_date"))}
        elif request.operation == "employee_pension_enrolment":
            fields |= {"aae140": _EMPLOYEE_PENSION, "aae003": _compact(section.get("start_month")),
                       "insuredPlace": section.get("insured_place") or request.region_code}
        elif request.operation == "resident_pension_enrolment":
            fields |= {"contributionLevel": _contribution_level(section),
                       "registrationDate": _compact(section.get("registration_date")),
                       "specialGroup": list(section.get("special_groups") or []) or None}
        elif request.operation == "social_security_card":
            photo, refusal = self._check_photo(section)
            if refusal is not None:
                return refusal
            valid_to = _LONG_TERM if section.get("id_valid_long_term") else _compact(section.get("id_valid_to"))
            fields |= {"bankName": section.get("bank"), "idValidFrom": _compact(section.get("id_valid_from")),
                       "idValidTo": valid_to, "photo": photo}
        else:  # archive_transfer
            # The one-stop form asks to receive the archive (档案计划从…转至…); a transfer out needs a 调档函.
            reason = str(section.get("transfer_reason", ""))
            fields |= {"direction": section.get("direction", "in"), "fromOrg": section.get("archive_from"),
                       "toOrg": section.get("archive_to"), "reason": _ARCHIVE_REASON.get(reason, reason),
                       "transferLetterNo": section.get("transfer_letter_no"),
                       "personCategory": section.get("person_category")}
        return await self._call(operation, fields)

    async def query_status(self, request: DepartmentRequest, reference: str | None) -> NativeOutcome:
        return await self._call("queryBusiness", {"requestId": request.request_id, "ywlsh": reference})

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        try:
            payload = json.loads(body)
            request_id = str(payload["requestId"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCallback("hrss callback body is not a BusinessReply") from exc
        verify_signed_callback(headers, body, adapter=self.ctx.name, request_id=request_id,
                               secret=self.ctx.settings.callback_secret, department="hrss",
                               timestamp_header="X-Hrss-Timestamp", signature_header="X-Hrss-Signature")
        try:
            outcome = self._outcome(payload, "callback")
        except (ValueError, KeyError, TypeError, TechnicalFault) as exc:
            raise InvalidCallback("hrss callback body is not a BusinessReply") from exc
        return CallbackEvent(request_id=request_id, outcome=outcome)
