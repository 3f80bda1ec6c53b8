"""Transport security: TLS on the API, mutual TLS and signed requests to departments, the HRSS WSDL from the package.

Certificates come from a CA made in each test; every server is real and on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from zeep.exceptions import ExternalReferenceForbidden

from adapters.hrss.adapter import WSDL_FILE, HrssAdapter, PackageTransport, soap_client
from adapters.medical.adapter import MedicalAdapter
from gateway.client import GatewayClient
from gateway.departments.registry import AdapterManager
from gateway.departments.transport import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_message, sm2_public_key
from gateway.domain.status import TaskStatus
from gateway.sdk import DepartmentUnavailable
from gateway.settings import Settings
from mocks.serving import RunningServer, create_mock, start_in_thread
from tests.support.adapters import department_request, mock_stats
from tests.support.harness import PLATFORM, applicant, start_gateway
from tests.support.tls import Issued, TestCA


def client_context(ca: Path, client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def test_api_serves_https_and_requires_a_caller_certificate(tmp_path, redis_url):
    ca = TestCA(tmp_path)
    server, caller = ca.issue("gateway", server=True), ca.issue("platform", server=False)
    gw = start_gateway(tmp_path, redis_url, mock_names=("medical",), tls_cert_file=server.cert,
                       tls_key_file=server.key, tls_client_ca_file=ca.cert)
    try:
        assert gw.base_url.startswith("https://")  # links and callbacks point at https
        transport = httpx.HTTPTransport(verify=client_context(ca.cert, caller))
        with GatewayClient(gw.base_url, *PLATFORM, transport=transport) as client:
            response = client.profiles()  # a signed request over mutual TLS
        assert response.status_code == 200 and response.json()
        with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake is refused
            httpx.get(gw.base_url + "/healthz", verify=client_context(ca.cert))
        with pytest.raises(httpx.ConnectError):  # a server certificate from another CA is not trusted
            httpx.get(gw.base_url + "/healthz", verify=client_context(TestCA(tmp_path, "other-ca").cert, caller))
    finally:
        gw.stop()


@pytest.fixture
def tls_medical(tmp_path) -> Iterator[tuple[TestCA, Issued, RunningServer]]:
    """The medical mock over TLS that requires a client certificate from the test CA; the gateway's certificate."""
    ca = TestCA(tmp_path)
    server_cert = ca.issue("medical", server=True)
    server = start_in_thread(create_mock("medical"), ssl_certfile=str(server_cert.cert),
                             ssl_keyfile=str(server_cert.key), ssl_ca_certs=str(ca.cert),
                             ssl_cert_reqs=ssl.CERT_REQUIRED)
    yield ca, ca.issue("gateway", server=False), server
    server.stop()


async def submit_through_core(tmp_path: Path, base_url: str, **adapter: Any) -> Any:
    """One medical enrolment through the core's own client for the adapter (AdapterManager), as the worker sends it."""
    settings = Settings(var_dir=tmp_path / "var", adapters={"medical": {"base_url": base_url, **adapter}})
    manager = AdapterManager(settings, {"medical": MedicalAdapter})
    await manager.start()
    try:
        return await manager.get("medical").submit(department_request("employee_medical_enrolment"))
    finally:
        await manager.close()


async def test_mutual_tls_to_a_department(tmp_path, tls_medical):
    ca, gateway_cert, server = tls_medical
    outcome = await submit_through_core(tmp_path, server.url, client_cert_file=gateway_cert.cert,
                                        client_key_file=gateway_cert.key, ca_bundle_file=ca.cert)
    assert MedicalAdapter.status_table.lookup(outcome.native_status).status is TaskStatus.COMPLETED
    with pytest.raises(DepartmentUnavailable):  # no client certificate: the department ends the handshake
        await submit_through_core(tmp_path, server.url, ca_bundle_file=ca.cert)
    with pytest.raises(DepartmentUnavailable):  # verified by default: the system CAs do not know the test CA
        await submit_through_core(tmp_path, server.url, client_cert_file=gateway_cert.cert,
                                  client_key_file=gateway_cert.key)
    other = TestCA(tmp_path, "other-ca")
    with pytest.raises(DepartmentUnavailable):  # the department's certificate checked against the wrong CA
        await submit_through_core(tmp_path, server.url, client_cert_file=gateway_cert.cert,
                                  client_key_file=gateway_cert.key, ca_bundle_file=other.cert)
    async with httpx.AsyncClient(verify=client_context(ca.cert, gateway_cert)) as control:
        stats = (await control.get(server.url + "/_mock/stats")).json()
    assert stats["received"] == 1 and stats["registrations"] == 1


@pytest.fixture
def signing_medical(monkeypatch) -> Iterator[RunningServer]:
    monkeypatch.setenv("MOCK_MEDICAL_GATEWAY_SECRET", "medical-onboarding-secret")
    server = start_in_thread(create_mock("medical"))
    yield server
    server.stop()


async def test_department_refuses_unsigned_or_forged_requests(tmp_path, signing_medical):
    url = signing_medical.url
    for adapter in ({}, {"signing_secret": "someone-elses-secret"}):
        outcome = await submit_through_core(tmp_path, url, **adapter)
        assert outcome.native_status == "E0401"
        assert MedicalAdapter.status_table.lookup("E0401").kind == "technical"  # retried, never a rejection
    body = b'{"infno": "4101", "msgid": "1", "input": {"data": {"ext_biz_no": "GW1", "certno": "x"}}}'
    now = str(int(time.time()))
    forged = hmac.new(b"guess", signed_message("POST", "/fsi/api/transaction", now, body), hashlib.sha256)
    async with httpx.AsyncClient() as http:
        replayed = await http.post(url + "/fsi/api/transaction", content=body,
                                   headers={TIMESTAMP_HEADER: now, SIGNATURE_HEADER: forged.hexdigest()})
    assert replayed.status_code == 401 and replayed.json()["err_msg"].startswith("E0401")
    assert mock_stats(url)["received"] == 0
    outcome = await submit_through_core(tmp_path, url, signing_secret="medical-onboarding-secret")
    assert MedicalAdapter.status_table.lookup(outcome.native_status).status is TaskStatus.COMPLETED
    assert mock_stats(url)["registrations"] == 1


async def test_a_department_that_asks_for_sm2_gets_sm2_signatures(tmp_path, monkeypatch):
    """GB/T 32918 SM2 with SM3 where the department asks: it verifies with our public key; HMAC or another SM2 key
    is refused."""
    ours, theirs = secrets.token_hex(32), secrets.token_hex(32)
    monkeypatch.setenv("MOCK_MEDICAL_GATEWAY_SM2_PUBLIC_KEY", sm2_public_key(ours))
    server = start_in_thread(create_mock("medical"))
    try:
        for adapter in ({}, {"signing_secret": "medical-onboarding-secret"},
                        {"signing_secret": theirs, "signing_algorithm": "sm2"}):
            assert (await submit_through_core(tmp_path, server.url, **adapter)).native_status == "E0401"
        assert mock_stats(server.url)["received"] == 0
        outcome = await submit_through_core(tmp_path, server.url, signing_secret=ours, signing_algorithm="sm2")
        assert MedicalAdapter.status_table.lookup(outcome.native_status).status is TaskStatus.COMPLETED
        assert mock_stats(server.url)["registrations"] == 1
    finally:
        server.stop()


def test_a_whole_case_completes_with_signed_department_requests(tmp_path, redis_url):
    secret = "medical-onboarding-secret"
    gw = start_gateway(tmp_path, redis_url, mock_env={"MOCK_MEDICAL_GATEWAY_SECRET": secret},
                       adapter_extra={"medical": {"signing_secret": secret}})
    try:
        catalogue = {m["code"]: m for m in gw.client.profile("guangxi").json()["matters"]}
        assert "employee_medical_enrolment" in catalogue
        section = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
        response = gw.submit({"profile": "guangxi", "channel": "online", "applicant": applicant(),
                              "delivery": "online", "matters": ["employee_medical_enrolment"],
                              "sections": {"employee_medical_enrolment": section}})
        assert response.status_code == 202, response.text
        case = gw.wait_terminal(response.json()["id"])
        assert case["tasks"][0]["status"] == "completed" and gw.stats("medical")["registrations"] == 1
    finally:
        gw.stop()


class WsdlBlocker:
    """ASGI wrapper in front of the HRSS mock: its WSDL endpoint answers rubbish; SOAP requests are recorded."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.wsdl_requests = 0
        self.posts: list[tuple[dict[str, str], bytes, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/hrss/service":
            self.wsdl_requests += 1
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/xml")]})
            await send({"type": "http.response.body", "body": b"<html>not a WSDL</html>"})
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            chunks: list[bytes] = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            self.posts.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body, scope["path"]))
            replayed = False

            async def replay() -> dict[str, Any]:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def test_hrss_works_from_its_packaged_wsdl_and_signs_soap_requests(tmp_path):
    blocker = WsdlBlocker(create_mock("hrss"))
    server = start_in_thread(blocker)  # type: ignore[arg-type]
    try:
        settings = Settings(var_dir=tmp_path / "var",
                            adapters={"hrss": {"base_url": server.url, "signing_secret": "hrss-secret"}})
        manager = AdapterManager(settings, {"hrss": HrssAdapter})
        await manager.start()
        try:
            outcome = await manager.get("hrss").submit(department_request("employment_registration"))
        finally:
            await manager.close()
    finally:
        server.stop()
    assert outcome.native_status == "09" and blocker.wsdl_requests == 0
    headers, body, path = blocker.posts[-1]
    expected = hmac.new(b"hrss-secret", signed_message("POST", path, headers["x-gateway-timestamp"], body),
                        hashlib.sha256).hexdigest()
    assert headers["x-gateway-signature"] == expected


def write_wsdl(folder: Path, name: str, schema_location: str) -> Path:
    text = WSDL_FILE.read_text(encoding="utf-8")
    importing = (f'<xsd:schema targetNamespace="urn:mock:hrss:flexemp:v1" elementFormDefault="qualified">'
                 f'<xsd:import namespace="urn:evil" schemaLocation="{schema_location}"/>')
    text = text.replace('<xsd:schema targetNamespace="urn:mock:hrss:flexemp:v1" elementFormDefault="qualified">',
                        importing, 1)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_wsdl_imports_outside_the_package_are_refused(tmp_path):
    fetched: list[str] = []

    async def evil(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            fetched.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
                                                              b' targetNamespace="urn:evil"/>'})

    outside = tmp_path / "outside.xsd"
    outside.write_text('<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:evil"/>')
    package = tmp_path / "package"
    package.mkdir()
    server = start_in_thread(evil)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient() as http:
            transport = PackageTransport(http, 1.0, root=package)
            for wsdl in (write_wsdl(package, "remote.wsdl", f"{server.url}/evil.xsd"),
                         write_wsdl(package, "relative.wsdl", "../outside.xsd"),
                         write_wsdl(package, "absolute.wsdl", str(outside)),
                         write_wsdl(tmp_path, "elsewhere.wsdl", "types.xsd")):
                with pytest.raises(ExternalReferenceForbidden):
                    soap_client(wsdl, transport)
            inside = package / "types.xsd"
            inside.write_text(outside.read_text())
            assert soap_client(write_wsdl(package, "local.wsdl", "types.xsd"), transport) is not None
    finally:
        server.stop()
    assert fetched == []
