"""The one form's submit, in development only: the real API, signed as a platform signs, through the demo caller.

`gateway up` writes a demo caller (var/demo-callers.json) and a demo identity service's key
(var/identity/demo-idp-key.pem). With both, outside production, the console submits the form as a platform would:
`GET /v1/profiles/{p}` for the schemas, `POST /v1/cases` with an applicant assertion minted with the demo key. Only
that public contract is used, so the code is what a platform team copies.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.client import AsyncGatewayClient, mint_demo_assertion
from gateway.console.form import case_body
from gateway.settings import Settings

DEMO_ISSUER = "demo-idp"  # the issuer `gateway up` names its demo identity service


@dataclass(frozen=True)
class DemoCaller:
    app_id: str
    secret: str
    identity_key: Path


@dataclass(frozen=True)
class Submitted:
    case_id: str | None  # the case the API accepted, or None
    errors: list[dict[str, Any]]  # the API's problems (bilingual) when it refused


def demo_caller(settings: Settings, known_callers: Collection[str]) -> DemoCaller | None:
    """The demo caller, when this is development and the gateway accepts it and the demo identity's assertions."""
    if settings.env == "production" or settings.identity_issuer != DEMO_ISSUER:
        return None
    callers_file, key = settings.var_dir / "demo-callers.json", settings.var_dir / "identity" / "demo-idp-key.pem"
    if not callers_file.is_file() or not key.is_file():
        return None
    try:
        entry = json.loads(callers_file.read_text(encoding="utf-8"))[0]
        caller = DemoCaller(str(entry["app_id"]), str(entry["secret"]), key)
    except (OSError, ValueError, LookupError, TypeError):
        return None
    return caller if caller.app_id in known_callers else None


async def submit_one_form(settings: Settings, caller: DemoCaller, profile: str, posted: dict[str, list[str]],
                          idempotency_key: str) -> Submitted:
    """Submit the posted form to this gateway's own API as the demo platform."""
    client = AsyncGatewayClient(settings.base_url, caller.app_id, caller.secret)
    try:
        return await _submit(client, caller, profile, posted, idempotency_key)
    except httpx.HTTPError as exc:
        return Submitted(None, [{"field": "", "message_zh": f"无法访问接口 {settings.base_url}",
                                 "message_en": f"the API at {settings.base_url} did not answer: {type(exc).__name__}"}])
    finally:
        await client.aclose()


async def _submit(client: AsyncGatewayClient, caller: DemoCaller, profile: str, posted: dict[str, list[str]],
                  idempotency_key: str) -> Submitted:
    catalogue = await client.profile(profile)
    if catalogue.status_code != 200:
        return Submitted(None, _problems(catalogue))
    body = case_body(catalogue.json(), posted)
    applicant = body["applicant"]
    assertion = await asyncio.to_thread(mint_demo_assertion, caller.identity_key, applicant.get("id_number", ""),
                                        applicant.get("name", ""), issuer=DEMO_ISSUER)
    answer = await client.submit_case(body, idempotency_key=idempotency_key or uuid.uuid4().hex, assertion=assertion)
    if answer.is_success:
        return Submitted(str(answer.json()["id"]), [])
    return Submitted(None, _problems(answer))


def _problems(answer: httpx.Response) -> list[dict[str, Any]]:
    try:
        errors = answer.json()["errors"]
        return [{"field": str(e.get("field", "")), "message_zh": str(e.get("message_zh", "")),
                 "message_en": str(e.get("message_en", ""))} for e in errors]
    except (ValueError, LookupError, TypeError, AttributeError):
        return [{"field": "", "message_zh": f"接口返回 {answer.status_code}",
                 "message_en": f"the API answered {answer.status_code}"}]
