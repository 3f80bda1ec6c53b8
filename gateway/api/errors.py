"""One error shape for every refusal: {"errors": [{code, field, message_zh, message_en}]}."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorItem:
    code: str
    field: str
    message_zh: str
    message_en: str


class ApiError(Exception):
    def __init__(self, status: int, *items: ErrorItem, headers: dict[str, str] | None = None) -> None:
        super().__init__(", ".join(i.code for i in items))
        self.status = status
        self.items = list(items)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errors": [asdict(i) for i in self.items]}


def unauthorized(code: str, message_zh: str, message_en: str, field: str = "") -> ApiError:
    return ApiError(401, ErrorItem(code, field, message_zh, message_en))


def not_found(what: str) -> ApiError:
    return ApiError(404, ErrorItem(f"{what}.not_found", what, "未找到", f"no such {what}"))
