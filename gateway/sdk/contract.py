"""The whole contract between the gateway core and a department adapter.

An adapter turns one matter of one case into its department's own protocol and its department's answer back into a
`NativeOutcome`; the core owns everything else (retries, breakers, status mapping, storage, notifications).
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
import structlog
from pydantic import BaseModel

from gateway.sdk.status_table import StatusTable


class AdapterSettings(BaseModel):
    """Per-department settings (env `GATEWAY_ADAPTERS__<NAME>__BASE_URL` and so on)."""

    base_url: str = ""
    timeout_s: float = 5.0
    # The department's key for signing its callbacks to us (shared secret agreed at onboarding). Unset: in
    # development the gateway generates one per department under var/secrets; production refuses to start.
    callback_secret: str = ""
    # Hosts the applicant may be sent to from this department's H5 links (https only). Empty: base_url's host.
    redirect_hosts: list[str] = []
    # Transport to the department: mutual TLS (our client certificate, their CA) and our signature on every request.
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    ca_bundle_file: Path | None = None  # unset: the system's CAs
    verify: bool = True  # False only for a department's test system with a self-made certificate
    signing_secret: str | None = None  # HMAC-SHA256 key for X-Gateway-Signature; unset: requests go unsigned
    # `sm2` where the department asks for GB/T 32918 signatures: signing_secret is then our SM2 private key (hex).
    signing_algorithm: Literal["hmac-sha256", "sm2"] = "hmac-sha256"
    options: dict[str, Any] = {}


@dataclass(frozen=True)
class DepartmentRequest:
    request_id: str  # random, chosen once and stored with the task: every retry sends the same one
    case_id: str
    matter: str
    operation: str
    profile: str
    channel: str
    region_code: str  # the profile's division code, e.g. "450000"
    applicant: Mapping[str, Any]  # validated, normalised, enriched from the e-licenses
    section: Mapping[str, Any]
    agent: Mapping[str, Any] | None
    callback_url: str  # where the department posts its asynchronous answers


@dataclass
class NativeOutcome:
    """What the department said, in its own terms; the core maps `native_status` through the status table."""

    native_status: str
    reference: str | None = None  # the department's own business number
    message: str | None = None  # the department's text: the reason shown to the applicant on rejection
    links: dict[str, str] = field(default_factory=dict)  # applicant steps: {"payment": department H5 URL}
    data: dict[str, Any] = field(default_factory=dict)  # e.g. amount due, account number, certificate identifier


@dataclass(frozen=True)
class CallbackEvent:
    request_id: str
    outcome: NativeOutcome


class TechnicalFault(Exception):
    """The department did not answer properly: retried with back-off, then dead-lettered. Never a rejection."""


class DepartmentTimeout(TechnicalFault):
    pass


class DepartmentUnavailable(TechnicalFault):
    """Connection refused or reset, 5xx, SOAP server fault."""


class MalformedReply(TechnicalFault):
    pass


class InvalidCallback(Exception):
    """An unsigned, forged, stale or unreadable callback: refused, changes nothing."""


@dataclass(frozen=True)
class AdapterContext:
    name: str
    settings: AdapterSettings
    http: httpx.AsyncClient  # owned by the core: time-outs, metrics and request-id hooks live there
    logger: structlog.typing.FilteringBoundLogger


class DepartmentAdapter(ABC):
    name: ClassVar[str]  # entry-point name, e.g. "medical"
    department: ClassVar[str]  # hrss | medical | tax | housing_fund | e_license | ...
    version: ClassVar[str] = "0.1.0"
    protocol: ClassVar[str] = "rest"  # rest | soap
    operations: ClassVar[Mapping[str, str]]  # operation -> what it does
    status_table: ClassVar[StatusTable]
    # True when the department answers some operations only later (callback or polling).
    supports_polling: ClassVar[bool] = True

    def __init__(self, ctx: AdapterContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:  # noqa: B027 - optional hook, most adapters need nothing here
        """Build what is expensive once (a zeep client per WSDL, say)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what start() built; the core closes the shared http client itself."""

    @abstractmethod
    async def submit(self, request: DepartmentRequest) -> NativeOutcome:
        """Send the matter; the department de-duplicates by `request.request_id`."""

    @abstractmethod
    async def query_status(self, request: DepartmentRequest, reference: str | None) -> NativeOutcome:
        """Ask where the matter stands."""

    @abstractmethod
    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        """Verify the department's signature and read its callback; raise InvalidCallback otherwise."""

    async def health(self) -> bool:
        try:
            response = await self.ctx.http.get(self.ctx.settings.base_url.rstrip("/") + "/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code < 500


def new_request_id() -> str:
    """A department request id: "GW" + 30 random upper-case hex digits. Nobody can derive it from a case's data,
    so only the department that received it (and the gateway) can name the task in a callback."""
    return "GW" + secrets.token_hex(15).upper()


@dataclass(frozen=True)
class ELicense:
    kind: Literal["id_card", "household_register"]
    identifier: str  # 1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>
    holder_name: str
    holder_id_number: str
    fields: Mapping[str, Any]  # e.g. address, household_division_code, ethnicity, valid_until


class ELicenseSource(ABC):
    """What the e-license adapter offers besides matters: documents for the case, certificates at its end."""

    @abstractmethod
    async def fetch_identity_documents(self, name: str, id_number: str,
                                       authorization: Mapping[str, Any]) -> list[ELicense]:
        """ID card and household register of the holder; [] when the system has no record.

        `authorization` is the record of the holder's consent (assertion `jti`, issuer, level, times), passed on as
        such: the call itself goes out under the gateway's own credential, never the applicant's token.
        """

    @abstractmethod
    async def issue_certificate(self, request: DepartmentRequest, certificate_type: str) -> NativeOutcome:
        """Issue an e-certificate (e.g. 《就业创业证》); `data` carries identifier and issued_at."""
