"""A department's native codes mapped to the unified status, declared as data next to its adapter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gateway.domain.status import TaskStatus

# progress: an ordinary answer; rejection: the department said no (business, never retried);
# technical: the department failed to answer properly (retried, then dead-lettered).
EntryKind = Literal["progress", "rejection", "technical"]


@dataclass(frozen=True)
class StatusEntry:
    native: str
    status: TaskStatus
    kind: EntryKind
    reason_zh: str
    reason_en: str
    # A refusal meaning the applicant already holds what was asked (重复参保): it satisfies a prerequisite.
    already_enrolled: bool = False


class StatusTableError(ValueError):
    pass


@dataclass(frozen=True)
class StatusTable:
    department: str
    entries: dict[str, StatusEntry]

    def lookup(self, native: str) -> StatusEntry | None:
        return self.entries.get(native)

    @classmethod
    def load(cls, path: Path) -> StatusTable:
        """Read `status_table.yaml`: {department, codes: {native: {status, kind, zh, en, already_enrolled?}}};
        refuse a broken table."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not isinstance(raw.get("codes"), dict):
            raise StatusTableError(f"{path}: expected a mapping with 'department' and 'codes'")
        entries: dict[str, StatusEntry] = {}
        for native, spec in raw["codes"].items():
            where = f"{path}: code {native!r}"
            if not isinstance(spec, dict):
                raise StatusTableError(f"{where}: expected a mapping")
            kind = spec.get("kind", "progress")
            if kind not in ("progress", "rejection", "technical"):
                raise StatusTableError(f"{where}: kind must be progress, rejection or technical, not {kind!r}")
            try:
                status = TaskStatus(spec.get("status", "failed" if kind == "technical" else ""))
            except ValueError as exc:
                raise StatusTableError(f"{where}: unknown unified status {spec.get('status')!r}") from exc
            if kind == "rejection" and status is not TaskStatus.REJECTED:
                raise StatusTableError(f"{where}: a rejection must map to 'rejected'")
            already_enrolled = spec.get("already_enrolled", False)
            if already_enrolled not in (True, False) or (already_enrolled and kind != "rejection"):
                raise StatusTableError(f"{where}: already_enrolled is a true/false flag of a rejection")
            entries[str(native)] = StatusEntry(
                native=str(native),
                status=status,
                kind=kind,
                reason_zh=str(spec.get("zh", "")),
                reason_en=str(spec.get("en", "")),
                already_enrolled=already_enrolled,
            )
        return cls(department=str(raw.get("department", "")), entries=entries)
