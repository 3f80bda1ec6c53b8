"""What validation found: errors (each once, at most ``MAX_ERRORS``) and warnings, in the one error shape."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_ERRORS = 100  # a body built to produce millions of problems gets the first hundred, in linear time


@dataclass(frozen=True)
class Problem:
    code: str
    field: str
    message_zh: str
    message_en: str


@dataclass(frozen=True)
class Application:
    profile: str
    channel: Literal["online", "window"]
    delivery: Literal["online", "post", "window"]
    applicant: dict[str, Any]
    agent: dict[str, Any] | None
    matters: list[str]
    sections: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ValidationOutcome:
    application: Application | None
    errors: list[Problem]
    warnings: list[Problem]


@dataclass
class Report:
    today: datetime.date
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    _seen: set[Problem] = field(default_factory=set)

    def add(self, code: str, path: str, zh: str, en: str) -> None:
        problem = Problem(code, path, zh, en)
        if problem not in self._seen and len(self.errors) < MAX_ERRORS:
            self._seen.add(problem)
            self.errors.append(problem)

    def warn(self, code: str, path: str, zh: str, en: str) -> None:
        if len(self.warnings) < MAX_ERRORS:
            self.warnings.append(Problem(code, path, zh, en))

    def ignored(self, path: str) -> None:
        # The contract names the applicant's optional fields only as "those of the seeds' forms": a field we do
        # not know is reported on the case and left out, not a reason to turn the applicant away.
        self.warn("field.ignored", path, f"未识别的字段 {path} 已忽略", f"Unrecognised field '{path}' was ignored")

    def required(self, path: str) -> None:
        self.add("field.required", path, f"缺少必填项 {path}", f"'{path}' is required")

    def invalid(self, path: str, zh: str, en: str) -> None:
        self.add("field.invalid", path, zh, en)
