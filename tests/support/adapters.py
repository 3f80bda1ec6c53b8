"""Build a real adapter against a real mock over loopback, the way the core does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import structlog

from gateway.sdk import AdapterContext, AdapterSettings, DepartmentAdapter, DepartmentRequest, new_request_id
from mocks.common import env_secret

A = TypeVar("A", bound=DepartmentAdapter)


@asynccontextmanager
async def running_adapter(adapter_cls: type[A], base_url: str, **settings: Any) -> AsyncIterator[A]:
    # By default the key the mock department of that name signs with (tests may know both sides).
    settings.setdefault("callback_secret", env_secret(adapter_cls.name))
    adapter_settings = AdapterSettings(base_url=base_url, **settings)
    async with httpx.AsyncClient(timeout=adapter_settings.timeout_s) as http:
        ctx = AdapterContext(name=adapter_cls.name, settings=adapter_settings, http=http,
                             logger=structlog.get_logger(adapter_cls.name))
        adapter = adapter_cls(ctx)
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.close()


def department_request(matter: str, *, id_number: str = "450103199005171239", case_id: str = "case-test-1",
                       section: dict[str, Any] | None = None, operation: str | None = None,
                       callback_url: str = "http://127.0.0.1:9/v1/callbacks/none", profile: str = "guangxi",
                       region_code: str = "450000", **applicant: Any) -> DepartmentRequest:
    operation = operation or matter
    person = {"name": "韦样例", "id_type": "resident_id", "id_number": id_number, "phone": "13912345678",
              "sex": "male" if int(id_number[16]) % 2 else "female",
              "birth_date": f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"}
    person.update(applicant)
    return DepartmentRequest(
        request_id=new_request_id(), case_id=case_id, matter=matter, operation=operation,
        profile=profile, channel="online", region_code=region_code, applicant=person, section=section or {},
        agent=None, callback_url=callback_url,
    )


def mock_stats(mock_url: str) -> dict[str, Any]:
    """The mock's own counters (received, duplicates, registrations)."""
    stats: dict[str, Any] = httpx.get(mock_url + "/_mock/stats").json()
    return stats


def set_faults(mock_url: str, **faults: Any) -> None:
    httpx.post(mock_url + "/_mock/faults", json=faults).raise_for_status()
