"""The applicant's identity assertion from the unified identity service: a JWT verified against a JWKS file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.api.errors import unauthorized

ALGORITHMS = ["ES256", "RS256"]


@dataclass(frozen=True)
class ApplicantAssertion:
    subject: str  # the applicant's ID number
    name: str
    acr: str
    claims: dict[str, Any]
    token: str


class IdentityVerifier:
    def __init__(self, jwks_path: Path, issuer: str) -> None:
        self.issuer = issuer
        self.keys = jwt.PyJWKSet.from_dict(json.loads(jwks_path.read_text(encoding="utf-8")))

    def verify(self, token: str) -> ApplicantAssertion:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized("applicant.assertion.malformed", "申请人身份凭证格式错误",
                               "applicant assertion is not a JWT", "X-Applicant-Assertion") from exc
        candidates = [k for k in self.keys.keys if not header.get("kid") or k.key_id == header.get("kid")]
        last_error: Exception | None = None
        for key in candidates:
            try:
                claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, issuer=self.issuer,
                                    options={"require": ["sub", "iss", "iat", "exp"]}, leeway=30)
            except jwt.ExpiredSignatureError as exc:
                raise unauthorized("applicant.assertion.expired", "申请人身份凭证已过期",
                                   "applicant assertion has expired", "X-Applicant-Assertion") from exc
            except jwt.InvalidIssuerError as exc:
                raise unauthorized("applicant.assertion.issuer", "申请人身份凭证签发方不受信任",
                                   "applicant assertion issuer is not trusted", "X-Applicant-Assertion") from exc
            except jwt.PyJWTError as exc:
                last_error = exc
                continue
            return ApplicantAssertion(str(claims["sub"]).upper(), str(claims.get("name", "")),
                                      str(claims.get("acr", "")), claims, token)
        raise unauthorized("applicant.assertion.invalid", "申请人身份凭证验签失败",
                           f"applicant assertion does not verify ({type(last_error).__name__})",
                           "X-Applicant-Assertion")


def write_demo_identity(folder: Path, issuer: str = "demo-idp") -> tuple[Path, Path]:
    """A demo identity service key pair for a newcomer: the JWKS for the gateway, the private key for the client."""
    folder.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = folder / "demo-idp-key.pem", folder / "demo-idp-jwks.json"
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))  # type: ignore[arg-type]
    jwk.update({"kid": issuer, "use": "sig", "alg": "ES256"})
    jwks_path.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
    return jwks_path, key_path
