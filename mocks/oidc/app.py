"""Mock identity service as an OpenID Connect provider, for the console's sign-in (authorization code + PKCE).

  GET  /.well-known/openid-configuration  discovery; the issuer is the URL the mock is reached at
  GET  /jwks                               its one EC P-256 public key (kid "mock-oidc-1")
  GET  /authorize                          signs in the person set by /_mock/user (no page: the person always says
                                           yes) and redirects to redirect_uri?code&state; a wrong client, redirect
                                           URI, response type or a missing S256 challenge answers 400
  POST /token                              authorization_code grant: the client (HTTP Basic or client_secret_post),
                                           redirect URI and PKCE verifier must match; the code is single-use;
                                           answers {access_token, token_type, expires_in, id_token (ES256)}
  POST /_mock/user   {"sub", "name"?, "claims"?: {...}}   who signs in next, and extra id_token claims (roles...)
  POST /_mock/tamper {"aud"?, "iss"?, "nonce"?, "exp_s"?, "kid"?}   the next id_token made wrong, for tests
  GET  /_mock/stats  {"authorized", "tokens"}

The registered client is `flex-gateway-console` with secret `mock-console-secret` (MOCK_OIDC_CLIENT_ID and
MOCK_OIDC_CLIENT_SECRET at start change them). Like every mock it imports nothing of the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

KID = "mock-oidc-1"
CODE_TTL_S = 60


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]
    issued_at: float


@dataclass
class _State:
    client_id: str
    client_secret: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    user: dict[str, Any] = field(default_factory=lambda: {"sub": "mock-user", "name": "模拟用户"})
    tamper: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, _Grant] = field(default_factory=dict)
    authorized: int = 0
    tokens: int = 0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _problem(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def create_app() -> FastAPI:
    state = _State(os.environ.get("MOCK_OIDC_CLIENT_ID", "flex-gateway-console"),
                   os.environ.get("MOCK_OIDC_CLIENT_SECRET", "mock-console-secret"))
    app = FastAPI(title="mock identity service (OIDC)")

    def issuer(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @app.get("/.well-known/openid-configuration")
    async def discovery(request: Request) -> dict[str, Any]:
        base = issuer(request)
        return {"issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks", "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["ES256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        numbers = state.key.public_key().public_numbers()
        return {"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
                          "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))}]}

    @app.get("/authorize")
    async def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != state.client_id:
            return _problem(400, "unauthorized_client", "unknown client_id")
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return _problem(400, "invalid_request", "response_type=code and scope openid are required")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return _problem(400, "invalid_request", "a PKCE S256 code_challenge is required")
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://127.0.0.1:", "http://localhost:", "https://")):
            return _problem(400, "invalid_request", "redirect_uri not allowed")
        code = secrets.token_urlsafe(24)
        state.grants[code] = _Grant(state.client_id, redirect_uri, q["code_challenge"], q.get("nonce", ""),
                                    dict(state.user), time.time())
        state.authorized += 1
        answer = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return RedirectResponse(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(answer)}",
                                status_code=302)

    @app.post("/token")
    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != state.client_id or not hmac.compare_digest(client_secret, state.client_secret):
            return _problem(401, "invalid_client", "client authentication failed")
        grant = state.grants.pop(form.get("code", ""), None)  # single use
        if form.get("grant_type") != "authorization_code" or grant is None \
                or time.time() - grant.issued_at > CODE_TTL_S:
            return _problem(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _problem(400, "invalid_grant", "redirect_uri differs from the authorization request's")
        verifier = form.get("code_verifier", "")
        if not hmac.compare_digest(_b64(hashlib.sha256(verifier.encode()).digest()), grant.challenge):
            return _problem(400, "invalid_grant", "PKCE verification failed")
        tamper, state.tamper = state.tamper, {}
        now = int(time.time())
        claims = {"iss": tamper.get("iss", issuer(request)), "aud": tamper.get("aud", client_id),
                  "sub": grant.claims["sub"], "name": grant.claims.get("name"), "iat": now,
                  "exp": now + int(tamper.get("exp_s", 300)), "nonce": tamper.get("nonce", grant.nonce),
                  **grant.claims.get("claims", {})}
        id_token = jwt.encode(claims, state.key, algorithm="ES256", headers={"kid": tamper.get("kid", KID)})
        state.tokens += 1
        return JSONResponse({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token}, headers={"Cache-Control": "no-store"})

    @app.post("/_mock/user")
    async def set_user(request: Request) -> dict[str, Any]:
        state.user = dict(await request.json())
        return state.user

    @app.post("/_mock/tamper")
    async def set_tamper(request: Request) -> dict[str, Any]:
        state.tamper = dict(await request.json())
        return state.tamper

    @app.get("/_mock/stats")
    async def stats() -> dict[str, int]:
        return {"authorized": state.authorized, "tokens": state.tokens}

    return app
