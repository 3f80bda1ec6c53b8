"""What every HTTP department adapter does the same way: verify a signed callback, post JSON with the fault mapping.

Both keep an adapter's wire details (paths, envelopes, header names, message labels) in the adapter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from gateway.sdk.contract import (
    AdapterContext,
    DepartmentTimeout,
    DepartmentUnavailable,
    InvalidCallback,
)
from gateway.security import signing
from gateway.security.signing import verify_hmac_hex

CALLBACK_MAX_AGE_S = 300.0
REQUEST_ID_HEADER = "X-Request-Id"  # the department repeats the request id of its body here; it is signed


def verify_signed_callback(headers: Mapping[str, str], body: bytes, *, adapter: str, request_id: str, secret: str,
                           timestamp_header: str, signature_header: str, department: str,
                           request_id_header: str = REQUEST_ID_HEADER,
                           max_age_s: float = CALLBACK_MAX_AGE_S) -> None:
    """Refuse (InvalidCallback) unless the callback is signed for this adapter and this request.

    `signature_header` must be hex HMAC-SHA256 under `secret` of `adapter \\n request_id \\n timestamp \\n body`
    (gateway.security.signing.callback), `request_id_header` must carry `request_id` (what the adapter read from
    the body), and `timestamp_header` (Unix seconds) must be within `max_age_s` of now. A signature made for another
    department or another task therefore fits nowhere else. Header names are matched case-insensitively and quoted
    in the messages as given.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    timestamp = lowered.get(timestamp_header.lower(), "")
    signature = lowered.get(signature_header.lower(), "")
    signed_request_id = lowered.get(request_id_header.lower(), "")
    if not timestamp or not signature or not signed_request_id:
        raise InvalidCallback(f"{department} callback without {timestamp_header} / {signature_header} / "
                              f"{request_id_header}")
    if signed_request_id != request_id:
        raise InvalidCallback(f"{department} callback: {request_id_header} is not the request id of its body")
    if not verify_hmac_hex(secret, signing.callback(adapter, request_id, timestamp, body), signature):
        raise InvalidCallback(f"{department} callback signature does not verify")
    try:
        sent = float(timestamp)
    except ValueError as exc:
        raise InvalidCallback(f"{department} callback timestamp is not a number") from exc
    # "nan" would pass any age comparison.
    if not math.isfinite(sent):
        raise InvalidCallback(f"{department} callback timestamp is not a number")
    age = time.time() - sent
    # A replayed (or far-future) callback is refused even with a valid signature.
    if abs(age) > max_age_s:
        raise InvalidCallback(f"{department} callback timestamp is {age:.0f} s off (limit {max_age_s:.0f} s): "
                              "replayed or clock skew")


async def post_json(ctx: AdapterContext, path: str, payload: Any, *, what: str,
                    headers: Mapping[str, str] | None = None) -> httpx.Response:
    """POST `payload` as JSON to `ctx.settings.base_url` + `path` on the core's client, with the operation time-out.

    Raises DepartmentTimeout, or DepartmentUnavailable for a failed connection or a 5xx; `what` (e.g. "tax
    SBF.SB.SHBXFSB") labels the messages. Any other response is returned for the adapter to read its envelope.
    """
    url = ctx.settings.base_url.rstrip("/") + path
    try:
        # Per request: the shared client's own time-out may be much longer.
        response = await ctx.http.post(url, json=payload, headers=headers, timeout=ctx.settings.timeout_s)
    except httpx.TimeoutException as exc:
        raise DepartmentTimeout(f"{what} timed out") from exc
    except httpx.HTTPError as exc:
        raise DepartmentUnavailable(f"{what} unreachable: {exc.__class__.__name__}") from exc
    if response.status_code >= 500:
        raise DepartmentUnavailable(f"{what} answered HTTP {response.status_code}")
    return response
