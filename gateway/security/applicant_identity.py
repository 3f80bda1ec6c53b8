"""The applicant's identity assertion from the unified identity service: a JWT verified against a JWKS file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.api.errors import ApiError, unauthorized
from gateway.security.secrets import private_folder

ALGORITHMS = ["ES256", "RS256"]
REQUIRED_CLAIMS = ["iss", "sub", "name", "aud", "iat", "exp", "jti"]
_FIELD = "X-Applicant-Assertion"


@dataclass(frozen=True)
class ApplicantAssertion:
    subject: str  # the applicant's ID number
    name: str
    acr: str
    issuer: str
    jti: str  # single use: consumed when the case is created
    issued_at: int
    expires_at: int

    def authorization(self) -> dict[str, Any]:
        """What the case keeps of the assertion: the record of the holder's consent, never the token itself."""
        return {"jti": self.jti, "issuer": self.issuer, "acr": self.acr, "issued_at": self.issued_at,
                "expires_at": self.expires_at}


def _refuse(code: str, message_zh: str, message_en: str) -> ApiError:
    return unauthorized(code, message_zh, message_en, _FIELD)


class IdentityVerifier:
    def __init__(self, jwks_path: Path, issuer: str, *, audience: str, max_age_s: int,
                 acr_allowed: list[str] | None = None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.max_age_s = max_age_s
        self.acr_allowed = set(acr_allowed or [])
        self.keys = jwt.PyJWKSet.from_dict(json.loads(jwks_path.read_text(encoding="utf-8")))

    def verify(self, token: str) -> ApplicantAssertion:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _refuse("applicant.assertion.malformed", "申请人身份凭证格式错误",
                          "applicant assertion is not a JWT") from exc
        kid = header.get("kid")
        candidates = [k for k in self.keys.keys if not kid or k.key_id == kid]
        last_error: Exception | None = None
        for key in candidates:
            try:
                claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, issuer=self.issuer, audience=self.audience,
                                    options={"require": REQUIRED_CLAIMS}, leeway=30)
            except jwt.ExpiredSignatureError as exc:
                raise _refuse("applicant.assertion.expired", "申请人身份凭证已过期",
                              "applicant assertion has expired") from exc
            except jwt.InvalidIssuerError as exc:
                raise _refuse("applicant.assertion.issuer", "申请人身份凭证签发方不受信任",
                              "applicant assertion issuer is not trusted") from exc
            except jwt.InvalidAudienceError as exc:
                raise _refuse("applicant.assertion.audience", "申请人身份凭证不是签发给本网关的",
                              "applicant assertion is not for this gateway (aud)") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise _refuse("applicant.assertion.claim_missing", f"申请人身份凭证缺少声明 {exc.claim}",
                              f"applicant assertion lacks the {exc.claim} claim") from exc
            except jwt.PyJWTError as exc:
                last_error = exc
                continue
            return self._checked(claims)
        raise _refuse("applicant.assertion.invalid", "申请人身份凭证验签失败",
                      f"applicant assertion does not verify ({type(last_error).__name__})")

    def _checked(self, claims: dict[str, Any]) -> ApplicantAssertion:
        """The claims PyJWT does not judge: a bounded lifetime, a usable jti, an accepted assurance level."""
        try:
            issued_at, expires_at = int(claims["iat"]), int(claims["exp"])
        except (TypeError, ValueError) as exc:
            raise _refuse("applicant.assertion.invalid", "申请人身份凭证时间声明无效",
                          "applicant assertion iat/exp are not numbers") from exc
        if expires_at - issued_at > self.max_age_s:
            raise _refuse("applicant.assertion.lifetime", f"申请人身份凭证有效期超过 {self.max_age_s} 秒",
                          f"applicant assertion lives longer than {self.max_age_s} s")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 8 <= len(jti) <= 128 or not jti.isascii() or not jti.isprintable():
            raise _refuse("applicant.assertion.jti", "申请人身份凭证的 jti 无效",
                          "applicant assertion jti must be 8 to 128 printable ASCII characters")
        acr = str(claims.get("acr", ""))
        if self.acr_allowed and acr not in self.acr_allowed:
            raise _refuse("applicant.assertion.acr", "申请人身份认证等级不足",
                          "applicant assertion assurance level (acr) is not accepted")
        return ApplicantAssertion(subject=str(claims["sub"]).upper(), name=str(claims["name"]), acr=acr,
                                  issuer=str(claims["iss"]), jti=jti, issued_at=issued_at, expires_at=expires_at)


def write_demo_identity(folder: Path, issuer: str = "demo-idp") -> tuple[Path, Path]:
    """A demo identity service key pair for a newcomer: the JWKS for the gateway, the private key for the client."""
    private_folder(folder)
    key_path, jwks_path = folder / "demo-idp-key.pem", folder / "demo-idp-jwks.json"
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))  # type: ignore[arg-type]
    jwk.update({"kid": issuer, "use": "sig", "alg": "ES256"})
    jwks_path.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
    return jwks_path, key_path
