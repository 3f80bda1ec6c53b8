"""``gateway profiles check [--strict] FILE``: the loader's problems, and the values the seeds leave open.

Placeholders (values the seeds do not give, each with the seed sentence that leaves it open) are listed by
``--strict``, which then fails: strict is the production gate. Without it they are counted, and the check passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.profiles.loader import ProfileError, load_profile
from gateway.profiles.model import Placeholder


@dataclass(frozen=True)
class CheckResult:
    problems: list[str] = field(default_factory=list)
    placeholders: list[Placeholder] = field(default_factory=list)


def check_profile_file(path: Path, *, known_operations: Mapping[str, set[str]] | None = None) -> CheckResult:
    try:
        profile = load_profile(path, known_operations=known_operations)
    except ProfileError as exc:
        return CheckResult(problems=list(exc.problems))
    return CheckResult(placeholders=list(profile.placeholders))


def placeholder_lines(path: Path, placeholders: list[Placeholder]) -> list[str]:
    return [f"{path}: placeholder: {p.value} (seed: 「{p.seed_zh}」){f' - {p.note}' if p.note else ''}"
            for p in placeholders]
