"""The unified API's bodies as pydantic models: what /openapi.json publishes and what the code answers through.

Responses are built through these models (``extra="forbid"``), so a field added to an answer without its model fails
in the tests instead of drifting from the document. Request bodies are still read raw and judged by the domain
validation (every problem at once); their models here describe the envelope for the document only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.domain.status import CaseStatus, TaskStatus
from gateway.profiles.model import IdType

Channel = Literal["online", "window"]
Delivery = Literal["online", "post", "window"]
PHONE = r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"
DocumentsStatus = Literal["pending", "not_requested", "unavailable", "not_found", "found", "mismatch"]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- errors and warnings ---------------------------------------------------------------------------------------
class Problem(Closed):
    """One problem: a refusal's error, or a warning kept on an accepted case. Messages never quote personal values."""

    code: str = Field(description="stable, dotted: what went wrong (e.g. field.required, auth.signature_invalid)")
    field: str = Field(description="dotted path of the field or header concerned; empty for the whole request")
    message_zh: str
    message_en: str


class ErrorList(Closed):
    """Every refusal (4xx, 503): all problems at once."""

    errors: list[Problem] = Field(min_length=1)


# ---- the application (request) ------------------------------------------------------------------------------
class Person(BaseModel):
    name: str = Field(max_length=50, description="as on the identity document")
    id_type: IdType
    id_number: str = Field(min_length=1, max_length=40)
    id_description: str | None = Field(default=None, max_length=50, description="what the document is (id_type other)")


class Applicant(Person):
    """The applicant (申请人). Fields not listed are reported as warnings (field.ignored) and left out."""

    phone: str = Field(pattern=PHONE, description="mobile, or a landline with its area code")
    sex: Literal["male", "female"] | None = Field(default=None, description="stated where the document carries none")
    birth_date: str | None = Field(default=None, description="YYYY-MM-DD, where the document carries none")
    ethnicity: str | None = Field(default=None, max_length=20)
    political_status: str | None = Field(default=None, max_length=20)
    household_address: str | None = Field(default=None, max_length=200)
    residence_address: str | None = Field(default=None, max_length=200)
    postcode: str | None = Field(default=None, pattern=r"^\d{6}$")
    household_division_code: str | None = Field(default=None, pattern=r"^\d{6}$", description="户籍地 (declared)")
    residence_division_code: str | None = Field(default=None, pattern=r"^\d{6}$")


class Agent(Person):
    """Someone applying on the applicant's behalf (代办), where the profile allows it."""

    relationship: str = Field(max_length=50)
    phone: str | None = Field(default=None, pattern=PHONE)


# ---- answers ----------------------------------------------------------------------------------------------------
class TaskView(Closed):
    """One matter's task at its department, with the unified status and the department's own."""

    matter: str
    department: str
    status: TaskStatus
    native_status: str | None = Field(description="the department's own status code, as it sent it")
    reason: str | None = Field(description="the department's reason (rejections, applicant steps)")
    reference: str | None = Field(description="the department's reference for the request")
    links: dict[str, str] = Field(description="applicant steps (payment, deposit, photo) → signed /h5 link")
    deadline: str = Field(description="promised date, YYYY-MM-DD (Chinese working days)")
    updated_at: str


class Certificate(Closed):
    type: str
    identifier: str | None
    issued_at: str


class Documents(Closed):
    status: DocumentsStatus = Field(description="the e-license retrieval (ID card, household register)")


class CaseView(Closed):
    id: str
    profile: str
    channel: Channel
    operator: str | None = Field(description="the window clerk who took the case (X-Operator-Id); null online")
    delivery: Delivery
    status: CaseStatus = Field(description="derived from the tasks every time")
    created_at: str
    deadline: str = Field(description="promised date, YYYY-MM-DD")
    statutory_deadline: str | None = Field(description="the statutory limit, YYYY-MM-DD, where the profile has one")
    tasks: list[TaskView]
    warnings: list[Problem] = Field(description="kept from validation: the case was accepted with these")
    certificates: list[Certificate]
    documents: Documents


class OverdueCases(Closed):
    cases: list[CaseView]
    count: int


class ProfileSummary(Closed):
    code: str
    name_zh: str
    name_en: str
    matters: list[str]


class ProfileIndex(Closed):
    profiles: list[ProfileSummary]


class MatterEntry(Closed):
    code: str
    name_zh: str
    name_en: str
    department: str
    section_schema: dict[str, Any] = Field(description="JSON Schema 2020-12 the gateway validates the section with")
    materials: list[dict[str, Any]]
    time_limits: dict[str, Any]
    statutory_working_days: int | None
    id_types: list[str]
    notices: list[dict[str, Any]]


class ProfileCatalogue(Closed):
    """What the platform renders its one form from."""

    profile: str
    name_zh: str
    name_en: str
    matters: list[MatterEntry]
    rules: dict[str, Any]


class CallbackResult(Closed):
    result: Literal["applied", "duplicate", "stale", "ignored"]


class Health(Closed):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]


# ---- webhook events (the outbox's deliveries) ---------------------------------------------------------------------
class EventBase(BaseModel):
    """Common to every event. Receivers ignore fields they do not know: events may gain fields."""

    model_config = ConfigDict(extra="allow")

    event_id: str = Field(description="unique; also in X-Gateway-Event-Id: deliveries repeat, dedupe on it")
    case_id: str
    matter: str | None
    at: str = Field(description="when it happened (UTC, ISO 8601)")
    seq: int = Field(description="the event's number within its case: a case's events arrive in this order")


class CaseAccepted(EventBase):
    type: Literal["case.accepted"]
    matters: list[str]
    request_ids: dict[str, str] = Field(description="matter → the department request id")


class TaskStatusChanged(EventBase):
    type: Literal["task.status_changed"]
    status: TaskStatus
    request_id: str | None = None
    native_status: str | None = None
    reason: str | None = None
    links: dict[str, str] | None = None


class CertificateIssued(EventBase):
    type: Literal["case.certificate_issued"]
    certificate: Certificate


class DocumentsRetrieved(EventBase):
    type: Literal["case.documents"]
    documents: Documents


class CertificateRefused(EventBase):
    type: Literal["case.certificate_refused"]
    certificate_type: str
    native_status: str
    reason: str = Field(description="the department's reason: final, the certificate is not retried")


class StepReminder(EventBase):
    type: Literal["task.step_reminder"]
    steps: list[str] = Field(description="the applicant's H5 steps still open (payment, deposit, photo)")
    reminder: int = Field(description="the reminder's number (an ops re-send: the number of the last one sent)")
    links: dict[str, str] = Field(description="fresh links, one per step")
    expires_at: str = Field(description="when the step expires (Beijing)")
    actor: str | None = Field(default=None, description="an ops re-send only: cli or console:<operator id>")
    reason: str | None = Field(default=None, description="an ops re-send only: why it was sent")


class PiiRevealed(EventBase):
    type: Literal["console.pii_revealed"]
    actor: str = Field(description="console:<operator id>")
    reason: str


WEBHOOK_EVENTS: tuple[type[EventBase], ...] = (CaseAccepted, TaskStatusChanged, CertificateIssued,
                                               CertificateRefused, DocumentsRetrieved, StepReminder, PiiRevealed)
