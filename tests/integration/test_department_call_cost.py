"""What a department call must not cost, checked on the adapters as the core starts them (AdapterManager): no import
attempted per request, no static document read per call, one kept-alive connection reused by sequential calls."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.hrss.adapter import PackageTransport
from gateway.departments.registry import AdapterManager, discover
from gateway.sdk import AdapterSettings
from gateway.settings import Settings
from mocks.serving import RunningServer, create_mock, start_in_thread
from tests.support.adapters import department_request

ORDINARY = "450103199005171239"
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
CALLS = 20


@pytest.fixture(scope="module")
def mocks() -> Iterator[dict[str, RunningServer]]:
    servers = {name: start_in_thread(create_mock(name)) for name in ("medical", "hrss", "e_license")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
async def manager(mocks: dict[str, RunningServer], tmp_path: Path) -> Any:
    settings = Settings(var_dir=tmp_path / "var", adapters={
        name: AdapterSettings(base_url=server.url, signing_secret="test-signing-secret")
        for name, server in mocks.items()})
    started = AdapterManager(settings, {name: found.cls for name, found in discover().items() if name in mocks})
    await started.start()
    yield started
    await started.close()


class ImportWatch:
    """A meta-path finder that only records which modules Python looked for (a module already imported is not
    looked for: only a failed or first import reaches it)."""

    def __init__(self) -> None:
        self.looked_for: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        self.looked_for.append(name)


async def department_calls(manager: AdapterManager) -> None:
    medical = department_request("employee_medical_enrolment", id_number=ORDINARY, section=MEDICAL_SECTION)
    hrss = department_request("employment_registration", id_number=ORDINARY,
                              section={"employment_type": "flexible", "employment_start_date": "2026-03-01"})
    consent = {"jti": "test-assertion", "issuer": "test-idp"}
    for _ in range(CALLS):
        await manager.get("medical").submit(medical)
        await manager.get("hrss").submit(hrss)
        await manager.get("e_license").fetch_identity_documents(  # type: ignore[attr-defined]
            "韦样例", ORDINARY, consent)


async def test_no_module_is_looked_for_during_department_calls(manager: AdapterManager):
    await department_calls(manager)  # first calls may import lazily
    watch = ImportWatch()
    sys.meta_path.insert(0, watch)
    try:
        await department_calls(manager)
    finally:
        sys.meta_path.remove(watch)
    # httpcore asks for sniffio on every request: were it missing, each ask would search sys.path again.
    assert watch.looked_for == []


async def test_the_packaged_wsdl_is_read_when_the_adapter_is_built_never_per_call(manager: AdapterManager,
                                                                                 monkeypatch: pytest.MonkeyPatch):
    reads: list[str] = []
    original = PackageTransport.load

    def counted(self: PackageTransport, url: str) -> bytes:
        reads.append(url)
        return original(self, url)

    monkeypatch.setattr(PackageTransport, "load", counted)
    await department_calls(manager)
    assert reads == []


async def test_sequential_calls_to_a_department_reuse_one_kept_alive_connection(manager: AdapterManager):
    await department_calls(manager)
    for name in ("medical", "hrss", "e_license"):
        client = manager.get(name).ctx.http
        pool = client._transport._pool  # type: ignore[attr-defined]  # httpx's connection pool (httpcore)
        # e-license sends its two queries (then two downloads) at once: two connections, kept for the next case.
        assert len(pool.connections) == (2 if name == "e_license" else 1), name


def test_an_adapters_settings_read_the_generated_callback_key_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Under `gateway up` no callback key is configured: the engine asks for the adapter's settings on every call.
    import gateway.settings

    reads: list[str] = []
    original = gateway.settings.stored_secret

    def counted(var_dir: Path, name: str, n_bytes: int) -> bytes:
        reads.append(name)
        return original(var_dir, name, n_bytes)

    monkeypatch.setattr(gateway.settings, "stored_secret", counted)
    settings = Settings(var_dir=tmp_path / "var", adapters={"medical": AdapterSettings(base_url="http://127.0.0.1:9")})
    secrets = {settings.adapter("medical").callback_secret for _ in range(CALLS)}
    assert len(secrets) == 1 and reads == ["callback-medical.key"]
