"""Bounded input before any work: body size per route (413) and the JSON's shape (nesting depth, list lengths)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.errors import ApiError, ErrorItem


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, ErrorItem("body.too_large", "", f"请求体超过上限（{limit} 字节）",
                                   f"the body is larger than {limit} bytes"))


class BodyLimit:
    """Pure ASGI: a declared Content-Length over the route's limit is refused before a byte of the body is read;
    a chunked body is counted as it arrives and refused once over (the app's ApiError handler answers)."""

    def __init__(self, app: ASGIApp, case_bytes: int, other_bytes: int) -> None:
        self.app = app
        self.case_bytes = case_bytes
        self.other_bytes = other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.case_bytes if (scope["method"], scope["path"]) == ("POST", "/v1/cases") else self.other_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            refusal = body_too_large(limit)
            body = json.dumps(refusal.body(), ensure_ascii=False).encode()
            await send({"type": "http.response.start", "status": refusal.status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise body_too_large(limit)
            return message

        await self.app(scope, counted, send)


def parse_json(raw: bytes) -> Any:
    """orjson, several times faster than json; what it refuses, json decides as it always did: nesting past its
    recursion (body.too_deep), not JSON (body.invalid), or what json takes and orjson does not (NaN, a lone
    surrogate). One difference stays: orjson reads an integer past 64 bits as a float (no application field holds
    one)."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ApiError(422, ErrorItem("body.too_deep", "", "请求体嵌套层数过多", "the body is nested too deep")
                       ) from exc
    except ValueError as exc:
        raise ApiError(422, ErrorItem("body.invalid", "", "请求体不是合法的 JSON", "the body is not valid JSON")
                       ) from exc


def check_json_shape(body: Any, max_depth: int, max_items: int) -> None:
    """422 for a body nested deeper, or with a longer list or a larger object, than any application needs; linear,
    no recursion."""
    stack: list[tuple[Any, int, str]] = [(body, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict | list) and depth > max_depth:
            raise ApiError(422, ErrorItem("body.too_deep", path, f"请求体嵌套超过 {max_depth} 层",
                                          f"the body is nested deeper than {max_depth} levels"))
        if isinstance(node, dict):
            if len(node) > max_items:
                raise ApiError(422, ErrorItem("body.object_too_large", path, f"对象超过 {max_items} 个字段",
                                              f"an object has more than {max_items} members"))
            stack += [(value, depth + 1, f"{path}.{key}" if path else str(key)) for key, value in node.items()]
        elif isinstance(node, list):
            if len(node) > max_items:
                raise ApiError(422, ErrorItem("body.list_too_long", path, f"列表超过 {max_items} 项",
                                              f"a list has more than {max_items} items"))
            stack += [(value, depth + 1, f"{path}.{i}" if path else str(i)) for i, value in enumerate(node)]
