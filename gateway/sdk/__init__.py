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
    new_request_id,
)
from gateway.sdk.http import CALLBACK_MAX_AGE_S, REQUEST_ID_HEADER, post_json, verify_signed_callback
from gateway.sdk.status_table import StatusEntry, StatusTable, StatusTableError

# The SDK's HMAC is the gateway's one signing module.
from gateway.security.signing import hmac_hex, verify_hmac_hex

__all__ = [
    "CALLBACK_MAX_AGE_S",
    "REQUEST_ID_HEADER",
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
    "new_request_id",
    "verify_hmac_hex",
    "verify_signed_callback",
]
