"""The department's check of the signature the gateway puts on each request (agreed at onboarding, like X-Road).

A mock given `MOCK_<NAME>_GATEWAY_SECRET` refuses requests that are unsigned, forged or older than five minutes;
without it (a department that has not switched the check on) every request is taken.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time

from fastapi import Request

MAX_AGE_S = 300.0


def gateway_secret(name: str) -> str | None:
    return os.environ.get(f"MOCK_{name.upper()}_GATEWAY_SECRET") or None


def signed_by_gateway(secret: str, request: Request, body: bytes) -> bool:
    """X-Gateway-Signature: hex HMAC-SHA256 of METHOD, PATH_WITH_QUERY, X-Gateway-Timestamp and hex(SHA256(body)),
    joined by newlines, within five minutes of now."""
    timestamp = request.headers.get("x-gateway-timestamp", "")
    signature = request.headers.get("x-gateway-signature", "")
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    if not math.isfinite(sent) or abs(time.time() - sent) > MAX_AGE_S:
        return False
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    message = f"{request.method}\n{path}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())
