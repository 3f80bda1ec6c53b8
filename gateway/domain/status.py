"""Unified task status, the task state machine and the derived case status (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"  # waiting for prerequisites
    QUEUED = "queued"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"  # 受理
    IN_REVIEW = "in_review"  # 审核中
    AWAITING_PAYMENT = "awaiting_payment"  # 待缴费 / 待缴存 / 待上传照片: an applicant step behind an H5 link
    COMPLETED = "completed"  # 办结
    REJECTED = "rejected"  # 不予受理 / 不通过, with the department's reason
    SKIPPED = "skipped"  # a prerequisite was rejected
    FAILED = "failed"  # technical, retries exhausted: dead-lettered for ops
    CANCELLED = "cancelled"
    # The department answered a code its adapter's table does not know: explicit and alerting, never a silent default.
    UNKNOWN_NATIVE_STATUS = "unknown_native_status"


TERMINAL: frozenset[TaskStatus] = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.REJECTED, TaskStatus.SKIPPED, TaskStatus.FAILED, TaskStatus.CANCELLED}
)

# Progress only moves forward; a late or out-of-order department answer can never move a task back.
_PROGRESS: tuple[TaskStatus, ...] = (
    TaskStatus.QUEUED,
    TaskStatus.SUBMITTED,
    TaskStatus.ACCEPTED,
    TaskStatus.IN_REVIEW,
    TaskStatus.AWAITING_PAYMENT,
    TaskStatus.COMPLETED,
)


# The only moves against the progress order, each driven by a department answer and documented here. Every other
# backwards answer (completed -> anything, in_review -> accepted, awaiting_payment -> submitted, ...) is refused by
# the store and counted (gateway_illegal_transitions_total).
DEPARTMENT_BACK_STEPS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset({
    # The applicant did the step (photo uploaded, say) and the department works on: card production is a review.
    (TaskStatus.AWAITING_PAYMENT, TaskStatus.IN_REVIEW),
})


def _build_transitions() -> dict[TaskStatus, frozenset[TaskStatus]]:
    allowed: dict[TaskStatus, set[TaskStatus]] = {s: set() for s in TaskStatus}
    allowed[TaskStatus.PENDING] |= {TaskStatus.QUEUED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
    for i, status in enumerate(_PROGRESS[:-1]):
        allowed[status] |= set(_PROGRESS[i + 1 :])
        allowed[status] |= {TaskStatus.REJECTED, TaskStatus.FAILED, TaskStatus.CANCELLED}
        if status is not TaskStatus.QUEUED:
            allowed[status].add(TaskStatus.UNKNOWN_NATIVE_STATUS)
    for source, target in DEPARTMENT_BACK_STEPS:
        allowed[source].add(target)
    # A later known answer (or ops) resolves an unknown code.
    allowed[TaskStatus.UNKNOWN_NATIVE_STATUS] |= set(_PROGRESS[1:]) | {
        TaskStatus.REJECTED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
    }
    # Ops replay a dead-lettered task from the DLQ.
    allowed[TaskStatus.FAILED].add(TaskStatus.QUEUED)
    return {s: frozenset(targets) for s, targets in allowed.items()}


TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = _build_transitions()


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: TaskStatus) -> frozenset[TaskStatus]:
    """Every status a task may move to `target` from: what the store's atomic check compares against."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


class CaseStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    REJECTED = "rejected"
    ATTENTION_NEEDED = "attention_needed"  # a task failed technically or answered an unknown code: ops must look
    CANCELLED = "cancelled"


def derive_case_status(task_statuses: Iterable[TaskStatus]) -> CaseStatus:
    """The case status is derived from its tasks every time, never stored beside them."""
    statuses = list(task_statuses)
    if any(s in (TaskStatus.FAILED, TaskStatus.UNKNOWN_NATIVE_STATUS) for s in statuses):
        return CaseStatus.ATTENTION_NEEDED
    if not statuses or any(s not in TERMINAL for s in statuses):
        return CaseStatus.IN_PROGRESS
    if all(s is TaskStatus.COMPLETED for s in statuses):
        return CaseStatus.COMPLETED
    if all(s is TaskStatus.CANCELLED for s in statuses):
        return CaseStatus.CANCELLED
    if any(s is TaskStatus.COMPLETED for s in statuses):
        return CaseStatus.PARTIALLY_COMPLETED
    return CaseStatus.REJECTED
