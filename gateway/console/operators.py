"""Console operators: people who sign in to the console, from a file (GATEWAY_OPERATORS_FILE), never from Redis.

The file is a JSON or YAML list of {id, name, password_hash, role, oidc_subject?}; `role` is `viewer` (reads, masked
personal fields) or `operator` (also acts: replay, cancel, unmask with a reason). `oidc_subject` is the operator's
`sub` at the identity service (console sign-in with OIDC, gateway/console/oidc.py); with it the password hash may be
left out, and the operator then signs in only there. Password hashes are scrypt from hashlib,
`scrypt$<n>$<r>$<p>$<base64 salt>$<base64 hash>`, printed by `gateway operators hash`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.security.callers import listed_entries

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# scrypt cost: 2^15 x 8 x 1 takes ~32 MiB and tens of milliseconds, a sign-in's worth and a brute force's burden.
_N, _R, _P = 2**15, 8, 1
_MAX_MEMORY = 64 * 1024 * 1024
_KEYS = {"id", "name", "password_hash", "role", "oidc_subject"}


class OperatorsFileError(ValueError):
    pass


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    password_hash: str  # "" for an operator who signs in only with the identity service
    role: Role
    oidc_subject: str = ""

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=_MAX_MEMORY, dklen=len(base64.b64decode(expected)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, base64.b64decode(expected))


# Checked against when the id is unknown, so a wrong id costs as long as a wrong password (no id probing).
_DECOY_HASH = hash_password(secrets.token_hex(16))


def authenticate(operators: dict[str, Operator], operator_id: str, password: str) -> Operator | None:
    operator = operators.get(operator_id)
    matched = verify_password(password, operator.password_hash if operator else _DECOY_HASH)
    return operator if operator and matched else None


def load_operators(path: Path) -> dict[str, Operator]:
    raw = listed_entries(path, "operators", OperatorsFileError, "{id, name, password_hash, role}")
    operators: dict[str, Operator] = {}
    for i, item in enumerate(raw):
        operator = _operator(item, f"{path}: entry {i}")
        if operator.id in operators:
            raise OperatorsFileError(f"{path}: entry {i}: id {operator.id!r} is listed twice")
        operators[operator.id] = operator
    return operators


def _operator(item: Any, where: str) -> Operator:
    if not isinstance(item, dict):
        raise OperatorsFileError(f"{where}: expected {{id, name, password_hash, role}}")
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise OperatorsFileError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    operator_id = str(item.get("id", ""))
    if not _ID.fullmatch(operator_id):
        raise OperatorsFileError(f"{where}: id must be 1-64 of A-Z a-z 0-9 . _ -")
    role = item.get("role")
    if role not in ROLES:
        raise OperatorsFileError(f"{where} ({operator_id}): role must be viewer or operator, not {role!r}")
    password_hash = str(item.get("password_hash", ""))
    subject = str(item.get("oidc_subject") or "")
    if (password_hash or not subject) and (not password_hash.startswith("scrypt$") or password_hash.count("$") != 5):
        raise OperatorsFileError(f"{where} ({operator_id}): password_hash must be a scrypt hash "
                                 "(gateway operators hash prints one), or be left out with an oidc_subject")
    return Operator(operator_id, str(item.get("name", operator_id)), password_hash, role, subject)


def write_demo_operators(path: Path) -> dict[str, str]:
    """An operator and a viewer with fresh passwords for `gateway up`; returns {id: password} (shown once)."""
    passwords = {"demo-operator": secrets.token_urlsafe(12), "demo-viewer": secrets.token_urlsafe(12)}
    entries = [
        {"id": "demo-operator", "name": "演示值班员 demo operator", "role": "operator",
         "password_hash": hash_password(passwords["demo-operator"])},
        {"id": "demo-viewer", "name": "演示查看员 demo viewer", "role": "viewer",
         "password_hash": hash_password(passwords["demo-viewer"])},
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2, ensure_ascii=False), encoding="utf-8")
    path.chmod(0o600)
    return passwords
