"""The department's check of the signature the gateway puts on each request (agreed at onboarding, like X-Road).

A mock given `MOCK_<NAME>_GATEWAY_SECRET` (HMAC-SHA256) or `MOCK_<NAME>_GATEWAY_SM2_PUBLIC_KEY` (SM2 with SM3,
hex x || y) refuses requests that are unsigned, forged or older than five minutes; without either (a department
that has not switched the check on) every request is taken.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable

from fastapi import Request

MAX_AGE_S = 300.0


Verifier = Callable[[Request, bytes], bool]


def gateway_verifier(name: str) -> Verifier | None:
    """How this department checks the gateway's requests, if it does."""
    secret = os.environ.get(f"MOCK_{name.upper()}_GATEWAY_SECRET")
    public_key = os.environ.get(f"MOCK_{name.upper()}_GATEWAY_SM2_PUBLIC_KEY")
    if public_key:
        from gmssl import sm2

        checker = sm2.CryptSM2(private_key="", public_key=public_key)
        return lambda request, body: _signed(request, body, lambda message, signature: bool(
            checker.verify_with_sm3(signature, message)))
    if secret:
        return lambda request, body: _signed(request, body, lambda message, signature: hmac.compare_digest(
            hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(), signature.lower()))
    return None


def _signed(request: Request, body: bytes, check: Callable[[bytes, str], bool]) -> bool:
    """X-Gateway-Signature over METHOD, PATH_WITH_QUERY, X-Gateway-Timestamp and hex(SHA256(body)), joined by
    newlines, within five minutes of now."""
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
    try:
        return bool(signature.strip()) and check(message, signature.strip())
    except (ValueError, TypeError):  # not hex, wrong length: forged
        return False
