"""validate_application on its own (pure, no I/O): ops/s and p50/p99 in microseconds.

    .venv/bin/python -m bench.validation [--count 3000] [--warmup 200]

Three valid applications: Guangxi with 1 matter, Guangxi with 5 matters (one per department), Jiujiang with all 5.
Sections come from the catalogue's JSON Schemas filled by the suite's own form filler (tests/support/forms.py), so the
benchmark follows the profiles as they change.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from bench import REPO_ROOT, summary, write_results
from gateway.domain.validation import validate_application
from gateway.orchestration.intake import china_today
from gateway.profiles.catalogue import catalogue
from gateway.profiles.loader import ProfileRegistry
from tests.support import forms
from tests.support.harness import applicant

GUANGXI_1 = ["employee_medical_enrolment"]
# One matter per department the Guangxi profile reaches: 人社 (archive, pension, card), 医保, 税务.
GUANGXI_5 = ["archive_transfer", "employee_pension_enrolment", "social_security_card", "employee_medical_enrolment",
             "contribution_declaration"]
JIUJIANG_5 = ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment",
              "housing_fund_account", "contribution_declaration"]


def application(registry: ProfileRegistry, profile: str, matters: list[str], person: dict[str, Any]) -> dict[str, Any]:
    """Sections filled from the catalogue by the suite's own form filler (nothing outside the repository)."""
    sections = forms.filled_sections(catalogue(registry.get(profile))["matters"], matters)
    return {"profile": profile, "channel": "online", "applicant": person, "matters": matters,
            "sections": sections, "delivery": "online"}


def measure(body: dict[str, Any], registry: ProfileRegistry, count: int, warmup: int) -> dict[str, Any]:
    today = china_today()
    outcome = validate_application(body, registry, today=today)
    if outcome.errors:  # a benchmark of the error path by accident would be meaningless
        raise SystemExit(f"the benchmark application is invalid: {[(e.code, e.field) for e in outcome.errors]}")
    for _ in range(warmup):  # compiled validators are cached on first use; measure the steady state
        validate_application(body, registry, today=today)
    samples: list[float] = []
    gc.collect()
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter_ns()
        validate_application(body, registry, today=today)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    elapsed = time.perf_counter() - started
    return {"ops_per_s": round(count / elapsed, 1), "latency_us": summary(samples, digits=1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="timed calls per application (default 3000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    args = parser.parse_args()

    registry = ProfileRegistry.load_dir(REPO_ROOT / "profiles")
    cases = {
        "guangxi, 1 matter": application(registry, "guangxi", GUANGXI_1, applicant()),
        "guangxi, 5 matters": application(registry, "guangxi", GUANGXI_5, applicant()),
        "jiujiang, 5 matters": application(registry, "jiujiang", JIUJIANG_5,
                                           applicant(division="360402", birth="19880202", sequence=131)),
    }
    results: dict[str, Any] = {}
    print(f"validate_application, {args.count} calls each, one thread\n")
    print(f"{'application':<22}{'ops/s':>10}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    for name, body in cases.items():
        result = measure(body, registry, args.count, args.warmup)
        results[name] = result
        lat = result["latency_us"]
        print(f"{name:<22}{result['ops_per_s']:>10.0f}{lat['p50']:>10.1f}{lat['p99']:>10.1f}{lat['max']:>10.1f}")
    write_results("validation", {"count": args.count, "warmup": args.warmup, "results": results})


if __name__ == "__main__":
    main()
