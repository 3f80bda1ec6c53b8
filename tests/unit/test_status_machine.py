"""The task state machine and the derived case status, alone (no I/O)."""

import pytest

from gateway.domain.status import (
    DEPARTMENT_BACK_STEPS,
    TERMINAL,
    CaseStatus,
    TaskStatus,
    can_transition,
    derive_case_status,
    sources_of,
)

S = TaskStatus


@pytest.mark.parametrize(("current", "target"), [
    (S.PENDING, S.QUEUED), (S.PENDING, S.SKIPPED), (S.QUEUED, S.SUBMITTED), (S.SUBMITTED, S.ACCEPTED),
    (S.SUBMITTED, S.COMPLETED), (S.ACCEPTED, S.IN_REVIEW), (S.IN_REVIEW, S.AWAITING_PAYMENT),
    (S.AWAITING_PAYMENT, S.COMPLETED), (S.AWAITING_PAYMENT, S.IN_REVIEW), (S.SUBMITTED, S.REJECTED),
    (S.SUBMITTED, S.FAILED), (S.IN_REVIEW, S.UNKNOWN_NATIVE_STATUS), (S.UNKNOWN_NATIVE_STATUS, S.COMPLETED),
    (S.FAILED, S.QUEUED), (S.QUEUED, S.CANCELLED),
])
def test_allowed(current, target):
    assert can_transition(current, target)
    assert current in sources_of(target)


@pytest.mark.parametrize(("current", "target"), [
    (S.COMPLETED, S.IN_REVIEW), (S.COMPLETED, S.REJECTED), (S.REJECTED, S.COMPLETED), (S.IN_REVIEW, S.ACCEPTED),
    (S.IN_REVIEW, S.SUBMITTED), (S.PENDING, S.SUBMITTED), (S.PENDING, S.COMPLETED), (S.SKIPPED, S.QUEUED),
    (S.CANCELLED, S.QUEUED), (S.QUEUED, S.UNKNOWN_NATIVE_STATUS), (S.COMPLETED, S.COMPLETED),
    (S.AWAITING_PAYMENT, S.SUBMITTED), (S.AWAITING_PAYMENT, S.ACCEPTED), (S.ACCEPTED, S.SUBMITTED),
])
def test_refused(current, target):
    assert not can_transition(current, target)


def test_the_only_backwards_moves_are_the_documented_department_driven_ones():
    progress = [S.QUEUED, S.SUBMITTED, S.ACCEPTED, S.IN_REVIEW, S.AWAITING_PAYMENT, S.COMPLETED]
    backwards = {(a, b) for i, a in enumerate(progress) for b in progress[:i] if can_transition(a, b)}
    assert backwards == set(DEPARTMENT_BACK_STEPS) == {(S.AWAITING_PAYMENT, S.IN_REVIEW)}


def test_terminal_states_never_move_except_failed_back_to_the_queue():
    for status in TERMINAL:
        expected = {S.QUEUED} if status is S.FAILED else set()
        assert {t for t in TaskStatus if can_transition(status, t)} == expected


@pytest.mark.parametrize(("statuses", "case"), [
    ([S.COMPLETED, S.COMPLETED], CaseStatus.COMPLETED),
    ([S.COMPLETED, S.REJECTED], CaseStatus.PARTIALLY_COMPLETED),
    ([S.COMPLETED, S.SKIPPED], CaseStatus.PARTIALLY_COMPLETED),
    ([S.REJECTED, S.SKIPPED], CaseStatus.REJECTED),
    ([S.COMPLETED, S.IN_REVIEW], CaseStatus.IN_PROGRESS),
    ([S.COMPLETED, S.FAILED], CaseStatus.ATTENTION_NEEDED),
    ([S.QUEUED, S.UNKNOWN_NATIVE_STATUS], CaseStatus.ATTENTION_NEEDED),
    ([S.CANCELLED], CaseStatus.CANCELLED),
    ([], CaseStatus.IN_PROGRESS),
])
def test_case_status_is_derived_from_tasks(statuses, case):
    assert derive_case_status(statuses) is case
