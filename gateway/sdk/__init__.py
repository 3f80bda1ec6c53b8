"""The adapter SDK: everything a department integrator imports. Adapters depend on this, never on the core."""

from gateway.domain.status import TaskStatus
from gateway.sdk.contract import (
    AdapterContext,
    AdapterSettings,
    CallbackEvent,
    DepartmentAdapter,
    DepartmentRequest,
    DepartmentTimeout,
    DepartmentUnavailable,
    ELicense,
    ELicenseSource,
    InvalidCallback,
    MalformedReply,
    NativeOutcome,
    TechnicalFault,
    hmac_hex,
    request_id_for,
    verify_hmac_hex,
)
from gateway.sdk.http import CALLBACK_MAX_AGE_S, post_json, verify_signed_callback
from gateway.sdk.status_table import StatusEntry, StatusTable, StatusTableError

__all__ = [
    "CALLBACK_MAX_AGE_S",
    "AdapterContext",
    "AdapterSettings",
    "CallbackEvent",
    "DepartmentAdapter",
    "DepartmentRequest",
    "DepartmentTimeout",
    "DepartmentUnavailable",
    "ELicense",
    "ELicenseSource",
    "InvalidCallback",
    "MalformedReply",
    "NativeOutcome",
    "StatusEntry",
    "StatusTable",
    "StatusTableError",
    "TaskStatus",
    "TechnicalFault",
    "hmac_hex",
    "post_json",
    "request_id_for",
    "verify_hmac_hex",
    "verify_signed_callback",
]
