"""Console sign-in with the identity service: OpenID Connect authorization code flow with PKCE.

The browser is sent to the provider's authorization endpoint with a fresh `state`, `nonce` and PKCE challenge; the
three (and where to go afterwards) travel in a short-lived cookie signed like the session (gateway/console/sessions.py),
so the answer is accepted only in the browser that asked: its `state` must be the cookie's. The code is exchanged at
the token endpoint with the PKCE verifier (and the client secret, HTTP Basic, when there is one); the id_token is
verified with pyjwt against the provider's JWKS: an algorithm of the allow-list (never `none` or HMAC), the issuer,
our client id as audience (and `azp` when several), `exp`/`iat` with 60 s leeway, and the cookie's `nonce`.
Endpoints come from the provider's discovery document, whose `issuer` must be the configured one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

from gateway.console.operators import ROLES, Operator, Role

FLOW_COOKIE = "gw_console_oidc"
FLOW_TTL_S = 600  # time to sign in at the provider
LEEWAY_S = 60
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Asymmetric only: an HMAC algorithm would let anyone holding the client secret mint tokens, `none` anyone at all.
_ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class SignInRefused(Exception):
    def __init__(self, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_zh, self.message_en = message_zh, message_en


@dataclass(frozen=True)
class Flow:
    """What one browser's sign-in must come back with."""

    state: str
    nonce: str
    verifier: str
    next: str

    @classmethod
    def start(cls, next_path: str) -> Flow:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)

    def data(self) -> dict[str, Any]:
        return {"typ": "oidc-flow", "state": self.state, "nonce": self.nonce, "verifier": self.verifier,
                "next": self.next, "exp": int(time.time()) + FLOW_TTL_S}

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Flow | None:
        if not data or data.get("typ") != "oidc-flow":  # signed by the same key as sessions: never one of them
            return None
        try:
            return cls(str(data["state"]), str(data["nonce"]), str(data["verifier"]), str(data["next"]))
        except KeyError:
            return None

    @property
    def challenge(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()


class OidcClient:
    def __init__(self, issuer: str, client_id: str, client_secret: str | None, redirect_uri: str,
                 algorithms: list[str]) -> None:
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            raise ValueError(f"the issuer {issuer!r} must be an https URL (plain http only on loopback, for tests)")
        unsafe = sorted(set(algorithms) - _ASYMMETRIC)
        if unsafe or not algorithms:
            raise ValueError(f"id_token algorithms must be asymmetric ones of {sorted(_ASYMMETRIC)}, not {unsafe}")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.algorithms = algorithms
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}

    async def _get(self, url: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(url)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            document = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise SignInRefused("统一身份认证服务配置不符", f"the discovery document names issuer "
                                    f"{document.get('issuer')!r}, not {self.issuer!r}")
            self._discovery = document
        return self._discovery

    async def authorization_url(self, flow: Flow) -> str:
        endpoint = str((await self.discovery())["authorization_endpoint"])
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                           "scope": "openid profile", "state": flow.state, "nonce": flow.nonce,
                           "code_challenge": flow.challenge, "code_challenge_method": "S256"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def claims(self, code: str, flow: Flow) -> dict[str, Any]:
        """The verified claims of the id_token the code is exchanged for; SignInRefused for anything wrong."""
        discovery = await self.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": flow.verifier, "client_id": self.client_id}
        # client_secret_basic for a confidential client; a public one proves itself by PKCE alone.
        auth = httpx.BasicAuth(self.client_id, self.client_secret) if self.client_secret else None
        async with httpx.AsyncClient(timeout=5, auth=auth) as http:
            answer = await http.post(str(discovery["token_endpoint"]), data=form)
        if answer.status_code != 200:
            raise SignInRefused("统一身份认证未能换取令牌", f"the token endpoint answered {answer.status_code}")
        id_token = answer.json().get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("统一身份认证未返回身份令牌", "the token endpoint returned no id_token")
        return await self.verify(id_token, flow.nonce)

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
            algorithm = header.get("alg")
            if algorithm not in self.algorithms:
                raise SignInRefused("身份令牌算法不被接受", f"id_token algorithm {algorithm!r} is not allowed")
            key = await self._key(str(header.get("kid") or ""))
            claims: dict[str, Any] = jwt.decode(
                id_token, key.key, algorithms=[algorithm], audience=self.client_id, issuer=self.issuer,
                leeway=LEEWAY_S, options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"]})
        except jwt.ExpiredSignatureError as exc:
            raise SignInRefused("身份令牌已过期，请重新登录", "the id_token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise SignInRefused("身份令牌不是签发给本控制台的", "the id_token is for another audience") from exc
        except jwt.PyJWTError as exc:
            raise SignInRefused("身份令牌无效", f"the id_token is invalid: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInRefused("身份令牌不是签发给本控制台的", "the id_token's azp is not this console")
        if not hmac.compare_digest(str(claims["nonce"]).encode(), nonce.encode()):
            raise SignInRefused("身份令牌与本次登录不符，请重新登录", "the id_token's nonce is not this sign-in's")
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK:
        """The provider's key `kid` (the only key when the token names none); the JWKS is fetched again once for a
        kid not seen yet, so a provider's key rollover needs no restart."""
        if kid not in self._keys and not (not kid and len(self._keys) == 1):
            jwks = await self._get(str((await self.discovery())["jwks_uri"]))
            found = jwt.PyJWKSet.from_dict(jwks).keys
            self._keys = {str(k.key_id or ""): k for k in found}
        if not kid and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if kid not in self._keys:
            raise SignInRefused("身份令牌的签名密钥未知", f"no key {kid!r} in the provider's JWKS")
        return self._keys[kid]


def operator_of(claims: dict[str, Any], operators: dict[str, Operator], role_claim: str | None,
                role_map: dict[str, Role]) -> tuple[Operator, bool]:
    """The operator the verified claims sign in, and whether the role came from the token (else from the file).

    With a role claim, its value (a string or a list) is mapped; `operator` wins over `viewer`, values that map to
    neither are ignored, and a token with no known role is refused. Without one, the operators file entry whose
    oidc_subject is `sub` decides, and a subject no entry names is refused.
    """
    subject = str(claims["sub"])
    name = str(claims.get("name") or claims.get("preferred_username") or subject)
    if role_claim:
        raw = claims.get(role_claim)
        values = raw if isinstance(raw, list) else [raw] if raw is not None else []
        roles = {role_map.get(str(v)) or (str(v) if str(v) in ROLES else None) for v in values}
        for role in reversed(ROLES):  # operator before viewer
            if role in roles:
                return Operator(f"oidc:{subject}"[:64], name, "", role, subject), True
        raise SignInRefused("该账号没有控制台角色", f"the token's {role_claim!r} claim names no console role "
                            "(viewer or operator)")
    for operator in operators.values():
        if operator.oidc_subject and hmac.compare_digest(operator.oidc_subject.encode(), subject.encode()):
            return operator, False
    raise SignInRefused("该账号不是控制台用户", "this identity is not a console operator")
