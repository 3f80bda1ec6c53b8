"""The order of steps of one case, from the region profile: when a dependent may start, when the certificate is due.

Pure: it sees task statuses and whether a refusal meant "already enrolled" (a flag on the department's status
table entry), never Redis or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gateway.domain.status import TERMINAL, TaskStatus
from gateway.profiles.model import Prerequisite, StepOrder


@dataclass(frozen=True)
class StepState:
    status: TaskStatus
    already_enrolled: bool = False  # rejected with a native code meaning the applicant already holds it


def satisfies(state: StepState) -> bool:
    """A prerequisite is satisfied by its completion, or by a refusal saying the applicant already holds it."""
    return state.status is TaskStatus.COMPLETED or (state.status is TaskStatus.REJECTED and state.already_enrolled)


Readiness = Literal["wait", "go", "skip"]


def dependent_readiness(prerequisite: Prerequisite | None, states: list[StepState]) -> Readiness:
    """Any-of: one satisfied prerequisite releases the dependent (after all of them settled when the profile asks
    `after_all_selected`); it is skipped only when every selected prerequisite settled and none is satisfied."""
    if not states:
        return "go"
    settled = all(s.status in TERMINAL for s in states)
    if any(satisfies(s) for s in states):
        return "go" if settled or prerequisite is None or not prerequisite.after_all_selected else "wait"
    return "skip" if settled else "wait"


def certificate_due(order: StepOrder, tasks: Mapping[str, StepState]) -> bool:
    """Profiles without a step order: every matter completed. Otherwise every `certificate_after` matter of the case
    completed (at least one selected) and, when the case enrols in any of `payment_after`, the payment completed."""
    if not order.certificate_after:
        return bool(tasks) and all(s.status is TaskStatus.COMPLETED for s in tasks.values())
    needed = [m for m in order.certificate_after if m in tasks]
    if not needed or not all(tasks[m].status is TaskStatus.COMPLETED for m in needed):
        return False
    if order.payment_matter and any(m in tasks for m in order.payment_after):
        payment = tasks.get(order.payment_matter)
        return payment is not None and payment.status is TaskStatus.COMPLETED
    return True
