"""A signing client for the unified API, for platform teams and tests (sync and async, on httpx).

    client = GatewayClient("http://127.0.0.1:8080", app_id, secret)  # a window caller: operator_id="clerk id"
    case = client.submit_case(body, assertion=mint_demo_assertion("var/identity/demo-idp-key.pem", id_no, name))
    client.get_case(case.json()["id"])
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from gateway.security.signing import sign_caller_request


def signed_headers(app_id: str, secret: str, method: str, path_with_query: str, body: bytes,
                   operator_id: str | None = None) -> dict[str, str]:
    """A window caller names its clerk (operator_id): sent as X-Operator-Id and signed with the request."""
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    headers = {"X-App-Id": app_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
               "X-Signature": sign_caller_request(secret, method, path_with_query, timestamp, nonce, body,
                                                  operator_id)}
    if operator_id is not None:
        headers["X-Operator-Id"] = operator_id
    return headers


class GatewayAuth(httpx.Auth):
    """Signs every request of an httpx client, sync or async: `httpx.Client(auth=GatewayAuth(app_id, secret))`;
    a window caller's client names its clerk (`operator_id`), which the signature then covers."""

    requires_request_body = True

    def __init__(self, app_id: str, secret: str, operator_id: str | None = None) -> None:
        self.app_id, self.secret, self.operator_id = app_id, secret, operator_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.raw_path.decode("ascii")  # path and query exactly as sent
        request.headers.update(signed_headers(self.app_id, self.secret, request.method, path, request.content,
                                              self.operator_id))
        yield request


def mint_demo_assertion(key_path: str | Path, id_number: str, name: str, *, issuer: str = "demo-idp",
                        ttl_s: int = 600, acr: str = "L3", audience: str = "flex-employment-gateway") -> str:
    """A fresh, single-use applicant assertion signed with the demo identity key `gateway up` generated (never for
    production)."""
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    now = int(time.time())
    claims = {"sub": id_number, "name": name, "acr": acr, "iss": issuer, "aud": audience, "iat": now,
              "exp": now + ttl_s, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": issuer})  # type: ignore[arg-type]


def _encode(body: Any) -> bytes:
    return b"" if body is None else json.dumps(body, ensure_ascii=False).encode()


def _case_headers(idempotency_key: str | None, assertion: str | None) -> dict[str, str]:
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    if assertion:
        headers["X-Applicant-Assertion"] = assertion
    return headers


class GatewayClient:
    def __init__(self, base_url: str, app_id: str, secret: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, operator_id: str | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport,
                                 auth=GatewayAuth(app_id, secret, operator_id))

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
        raw = _encode(body)
        all_headers = ({"Content-Type": "application/json"} if body is not None else {}) | (headers or {})
        return self.http.request(method, path, content=raw or None, headers=all_headers)

    def submit_case(self, body: Any, *, idempotency_key: str | None = None,
                    assertion: str | None = None) -> httpx.Response:
        return self.request("POST", "/v1/cases", body, _case_headers(idempotency_key, assertion))

    def get_case(self, case_id: str) -> httpx.Response:
        return self.request("GET", f"/v1/cases/{case_id}")

    def overdue_cases(self) -> httpx.Response:
        return self.request("GET", "/v1/cases?overdue=true")

    def profiles(self) -> httpx.Response:
        return self.request("GET", "/v1/profiles")

    def profile(self, code: str) -> httpx.Response:
        return self.request("GET", f"/v1/profiles/{code}")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGatewayClient:
    def __init__(self, base_url: str, app_id: str, secret: str, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None, operator_id: str | None = None) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport,
                                 auth=GatewayAuth(app_id, secret, operator_id))

    async def request(self, method: str, path: str, body: Any = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        raw = _encode(body)
        all_headers = ({"Content-Type": "application/json"} if body is not None else {}) | (headers or {})
        return await self.http.request(method, path, content=raw or None, headers=all_headers)

    async def submit_case(self, body: Any, *, idempotency_key: str | None = None,
                          assertion: str | None = None) -> httpx.Response:
        return await self.request("POST", "/v1/cases", body, _case_headers(idempotency_key, assertion))

    async def get_case(self, case_id: str) -> httpx.Response:
        return await self.request("GET", f"/v1/cases/{case_id}")

    async def profile(self, code: str) -> httpx.Response:
        return await self.request("GET", f"/v1/profiles/{code}")

    async def aclose(self) -> None:
        await self.http.aclose()
