import pytest

from adapters.medical.adapter import MedicalAdapter
from gateway.domain.status import TaskStatus
from gateway.sdk import DepartmentUnavailable, MalformedReply
from tests.support.adapters import department_request, mock_stats, running_adapter, set_faults


async def test_employee_enrolment_completes_and_repeat_registers_once(mock_server):
    server = mock_server("medical")
    async with running_adapter(MedicalAdapter, server.url) as adapter:
        request = department_request("employee_medical_enrolment")
        first = await adapter.submit(request)
        again = await adapter.submit(request)
    assert MedicalAdapter.status_table.lookup(first.native_status).status is TaskStatus.COMPLETED
    assert again.native_status == first.native_status and again.reference == first.reference
    stats = mock_stats(server.url)
    assert stats["registrations"] == 1 and stats["duplicates"] == 1


async def test_already_enrolled_person_is_a_business_rejection(mock_server):
    server = mock_server("medical")
    async with running_adapter(MedicalAdapter, server.url) as adapter:
        outcome = await adapter.submit(department_request("employee_medical_enrolment", id_number="450103199005171271"))
    entry = MedicalAdapter.status_table.lookup(outcome.native_status)
    assert entry is not None and entry.kind == "rejection" and outcome.message


@pytest.mark.parametrize(("fault", "error"), [({"error_rate": 1.0}, DepartmentUnavailable),
                                              ({"outage": True}, DepartmentUnavailable),
                                              ({"malformed_rate": 1.0}, MalformedReply)])
async def test_faults_are_technical(mock_server, fault, error):
    server = mock_server("medical")
    set_faults(server.url, **fault)
    async with running_adapter(MedicalAdapter, server.url) as adapter:
        with pytest.raises(error):
            await adapter.submit(department_request("employee_medical_enrolment"))
