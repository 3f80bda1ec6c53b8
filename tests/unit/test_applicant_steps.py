"""The plan of an applicant's H5 step, alone (no I/O): reminders, expiry, the seeds' payment cut-offs."""

import datetime as dt

from gateway.orchestration.applicant_steps import BEIJING, StepPlan, next_cutoff_end, plan_step
from gateway.profiles.loader import ProfileRegistry
from gateway.settings import REPO_ROOT, Settings

SETTINGS = Settings(step_reminders_s=[100, 300], step_expiry_s=1000)


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BEIJING).timestamp()


def guangxi_payment():
    profile = ProfileRegistry.load_dir(REPO_ROOT / "profiles").get("guangxi")
    return profile.matter("contribution_declaration").applicant_steps


def test_without_a_schedule_in_the_profile_the_settings_decide():
    plan = plan_step(["deposit"], {}, {}, SETTINGS, now=5000.0)
    assert plan == StepPlan(steps=["deposit"], started_at=5000.0, reminders_at=[5100.0, 5300.0], expires_at=6000.0)
    assert plan.next_due(5000.0) == 5100.0 and plan.next_due(5100.0) == 5300.0 and plan.next_due(5300.0) == 6000.0
    assert [plan.reminders_due(t) for t in (5099.0, 5100.0, 5400.0)] == [0, 1, 2]
    assert StepPlan.from_json(plan.to_json()) == plan


def test_a_resident_medical_payment_ends_at_the_june_cutoff_and_drops_reminders_after_it():
    section = {"rows": [{"levy_item": "resident_medical"}]}
    now = at("2026-06-30T23:58:00")
    plan = plan_step(["payment"], guangxi_payment(), section, SETTINGS, now)
    assert plan.expires_at == at("2026-07-01T00:00:00") and plan.cutoff == "2026-06-30"
    assert plan.reminders_at == [now + 100]  # the second reminder would fall after the cut-off


def test_cutoffs_apply_only_to_the_levy_item_they_name():
    now = at("2026-06-30T23:58:00")
    plan = plan_step(["payment"], guangxi_payment(), {"rows": [{"levy_item": "flexible_pension"}]}, SETTINGS, now)
    assert plan.expires_at == now + 1000 and plan.cutoff is None


def test_the_next_cutoff_may_be_next_year():
    end, day = next_cutoff_end(["01-31"], at("2026-02-10T09:00:00"))
    assert (end, day) == (at("2027-02-01T00:00:00"), "2027-01-31")
    assert next_cutoff_end(["06-30", "12-31"], at("2026-07-01T00:00:00"))[1] == "2026-12-31"
