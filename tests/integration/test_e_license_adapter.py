import json
import time

import httpx
import pytest
import respx

from adapters.e_license.adapter import CERTIFICATE_TYPES, LICENCE_TYPES, ELicenseAdapter, HolderAuthorizationRefused
from adapters.e_license.identifiers import parse_identifier
from gateway.domain.status import TaskStatus
from gateway.sdk import (
    DepartmentTimeout,
    DepartmentUnavailable,
    InvalidCallback,
    MalformedReply,
)
from mocks.common import callback_headers, env_secret
from mocks.e_license import app as mock_app
from mocks.serving import free_port
from tests.support.adapters import department_request, running_adapter

GUANGXI = "450103199005171239"  # sequence ends in 3: ordinary, household in Guangxi (南宁市青秀区)
JIANGXI = "360403198803120014"  # sequence ends in 1: ordinary, household in Jiangxi (九江市浔阳区)
NO_RECORD = "450103199005171298"  # sequence ends in 9: no e-license record
TOKEN = {"jti": "a1b2c3d4e5f6", "issuer": "test-idp", "acr": "L3", "issued_at": 1, "expires_at": 2}


def certificate_request(**kwargs):
    return department_request("employment_entrepreneurship_certificate", operation="issue_certificate",
                              id_number=JIANGXI, profile="jiujiang", region_code="360400", **kwargs)


@pytest.mark.parametrize(("id_number", "division"), [(GUANGXI, "450103"), (JIANGXI, "360403")])
async def test_ordinary_person_has_both_licences_with_valid_identifiers(mock_server, id_number, division):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        licences = await adapter.fetch_identity_documents("韦样例", id_number, TOKEN)
    by_kind = {licence.kind: licence for licence in licences}
    assert sorted(by_kind) == ["household_register", "id_card"]
    for kind, licence in by_kind.items():
        assert parse_identifier(licence.identifier).type_code == LICENCE_TYPES[kind]
        assert licence.holder_name == "韦样例" and licence.holder_id_number == id_number
        assert licence.fields["name"] == "韦样例"
        assert licence.fields["birth_date"] == f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
        assert licence.fields["sex"] == "male"
        assert licence.fields["ethnicity"].endswith("族") and licence.fields["ethnicity_code"]
    household = by_kind["household_register"].fields
    assert household["household_division_code"] == division == id_number[:6]
    assert household["household_address"].startswith({"45": "广西壮族自治区", "36": "江西省"}[division[:2]])
    card = by_kind["id_card"].fields
    assert card["address"] and card["issuing_authority"].endswith("分局")
    assert card["long_term"] or card["valid_until"] > card["valid_from"]


async def test_same_id_number_is_the_same_person(mock_server):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        first = await adapter.fetch_identity_documents("韦样例", GUANGXI, TOKEN)
    again_server = mock_server("e_license")  # a fresh mock: nothing remembered, same person
    async with running_adapter(ELicenseAdapter, again_server.url) as adapter:
        again = await adapter.fetch_identity_documents("韦样例", GUANGXI, TOKEN)
    assert [(d.identifier, dict(d.fields)) for d in first] == [(d.identifier, dict(d.fields)) for d in again]


async def test_digit_nine_has_no_record(mock_server):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        assert await adapter.fetch_identity_documents("韦样例", NO_RECORD, TOKEN) == []


async def test_name_that_does_not_match_the_holder_finds_nothing(mock_server):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        assert await adapter.fetch_identity_documents("错名字", GUANGXI, TOKEN) == []
        assert len(await adapter.fetch_identity_documents("韦样例", GUANGXI, TOKEN)) == 2


async def test_missing_holder_authorization_is_a_technical_refusal(mock_server):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        with pytest.raises(HolderAuthorizationRefused, match="E0401"):
            await adapter.fetch_identity_documents("韦样例", GUANGXI, {})


ISSUER = mock_app.synthetic_uscc("450103", "public-security")
GOOD_ID_CARD = mock_app.make_identifier(LICENCE_TYPES["id_card"], ISSUER, GUANGXI)


@pytest.mark.parametrize("identifier", [
    GOOD_ID_CARD[:-1] + ("X" if GOOD_ID_CARD[-1] != "X" else "Y"),  # wrong check char
    GOOD_ID_CARD[:-2],  # no check char
    GOOD_ID_CARD.replace(ISSUER, ISSUER[:-1] + "I"),  # issuer not a USCC
    mock_app.make_identifier(LICENCE_TYPES["household_register"], ISSUER, GUANGXI),  # valid, but the wrong type
])
async def test_an_invalid_identifier_from_the_department_is_malformed(identifier):
    base = "http://e-license.test"
    item = {"certIdentifier": identifier, "holderCode": GUANGXI, "holderName": "韦样例"}
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{base}/api/license/query").respond(json={"ack_code": "SUCCESS", "errors": [], "data": [item]})
        async with running_adapter(ELicenseAdapter, base) as adapter:
            with pytest.raises(MalformedReply):
                await adapter.fetch_identity_documents("韦样例", GUANGXI, TOKEN)


async def test_certificate_is_issued_once_for_a_repeated_request_id(mock_server):
    server = mock_server("e_license")
    request = certificate_request()
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        first = await adapter.submit(request)
        again = await adapter.issue_certificate(request, "employment_entrepreneurship_certificate")
        status = await adapter.query_status(request, first.reference)
    assert ELicenseAdapter.status_table.lookup(first.native_status).status is TaskStatus.COMPLETED
    identifier = first.data["identifier"]
    assert parse_identifier(identifier).type_code == CERTIFICATE_TYPES["employment_entrepreneurship_certificate"]
    assert first.data["type"] == "employment_entrepreneurship_certificate"
    assert first.data["issued_at"].endswith("+08:00")
    assert again.data == first.data and status.data == first.data and first.reference == identifier
    async with httpx.AsyncClient() as client:
        stats = (await client.get(server.url + "/_mock/stats")).json()
    assert stats["registrations"] == 1 and stats["duplicates"] == 1


async def test_incomplete_holder_is_a_business_rejection(mock_server):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        outcome = await adapter.submit(certificate_request(name=""))
    entry = ELicenseAdapter.status_table.lookup(outcome.native_status)
    assert entry is not None and entry.kind == "rejection" and outcome.message


async def test_status_of_a_certificate_never_issued_is_not_found_yet(mock_server):
    server = mock_server("e_license")
    async with running_adapter(ELicenseAdapter, server.url) as adapter:
        outcome = await adapter.query_status(certificate_request(), None)
    entry = ELicenseAdapter.status_table.lookup(outcome.native_status)
    assert outcome.native_status == "E0404" and entry is not None and entry.kind == "technical"


FAULTS = [({"error_rate": 1.0}, DepartmentUnavailable), ({"outage": True}, DepartmentUnavailable),
          ({"malformed_rate": 1.0}, MalformedReply), ({"timeout_rate": 1.0}, DepartmentTimeout)]


@pytest.mark.parametrize(("fault", "error"), FAULTS)
async def test_faults_on_retrieval_are_technical(mock_server, fault, error):
    server = mock_server("e_license")
    async with httpx.AsyncClient() as client:
        await client.post(server.url + "/_mock/faults", json=fault)
    async with running_adapter(ELicenseAdapter, server.url, timeout_s=0.5) as adapter:
        with pytest.raises(error):
            await adapter.fetch_identity_documents("韦样例", GUANGXI, TOKEN)


@pytest.mark.parametrize(("fault", "error"), FAULTS)
async def test_faults_on_issue_are_technical(mock_server, fault, error):
    server = mock_server("e_license")
    async with httpx.AsyncClient() as client:
        await client.post(server.url + "/_mock/faults", json=fault)
    async with running_adapter(ELicenseAdapter, server.url, timeout_s=0.5) as adapter:
        with pytest.raises(error):
            await adapter.submit(certificate_request())


async def test_refused_connection_is_unavailable():
    async with running_adapter(ELicenseAdapter, f"http://127.0.0.1:{free_port()}") as adapter:
        with pytest.raises(DepartmentUnavailable):
            await adapter.fetch_identity_documents("韦样例", GUANGXI, TOKEN)


def test_every_native_code_of_the_mock_is_mapped():
    missing = set(mock_app.NATIVE_CODES) - set(ELicenseAdapter.status_table.entries)
    assert not missing


def _signed(body: bytes, secret: str = env_secret("e_license"), timestamp: str | None = None,
            request_id: str = "GW123", adapter: str = "e_license") -> dict[str, str]:
    return callback_headers(secret, adapter, request_id, body, signature_header="X-License-Signature",
                            timestamp_header="X-License-Timestamp", timestamp=timestamp)


CALLBACK = json.dumps({"ack_code": "SUCCESS", "errors": [], "data": {
    "requestId": "GW123", "certTypeCode": CERTIFICATE_TYPES["employment_entrepreneurship_certificate"],
    "certIdentifier": mock_app.make_identifier(CERTIFICATE_TYPES["employment_entrepreneurship_certificate"],
                                               mock_app.synthetic_uscc("360400", "hrss"), "360400202601010000001"),
    "issueTime": "2026-01-01 09:00:00", "status": "issued"}}).encode()


async def test_signed_callback_is_read():
    async with running_adapter(ELicenseAdapter, "http://127.0.0.1:9") as adapter:
        event = adapter.parse_callback(_signed(CALLBACK), CALLBACK)
    assert event.request_id == "GW123" and event.outcome.native_status == "issued"
    assert event.outcome.data["issued_at"] == "2026-01-01T09:00:00+08:00"


@pytest.mark.parametrize("headers", [
    {},
    _signed(CALLBACK, secret="not-the-department"),
    _signed(CALLBACK, timestamp=str(int(time.time()) - 3600)),
    _signed(CALLBACK.replace(b"GW123", b"GW999")),  # signed over another body
    _signed(CALLBACK, request_id="GW999"),  # signed for another request
    _signed(CALLBACK, adapter="hrss"),  # signed for another department
])
async def test_forged_or_stale_callbacks_are_refused(headers):
    async with running_adapter(ELicenseAdapter, "http://127.0.0.1:9") as adapter:
        with pytest.raises(InvalidCallback):
            adapter.parse_callback(headers, CALLBACK)
