"""Stands in for the gateway's callback endpoint in adapter tests: records what a department posts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request

from mocks.serving import start_in_thread


@dataclass
class CallbackRecorder:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    # The recorder serves in its own thread and event loop: a thread condition bridges the two.
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def record(self, headers: dict[str, str], body: bytes) -> None:
        with self.arrived:
            self.received.append((headers, body))
            self.arrived.notify_all()

    def _wait(self, count: int) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout=10)

    async def wait_for(self, count: int) -> None:
        assert await asyncio.to_thread(self._wait, count), f"{len(self.received)} callbacks, expected {count}"


@contextmanager
def callback_recorder(adapter: str) -> Iterator[CallbackRecorder]:
    app = FastAPI()
    server = start_in_thread(app)
    path = f"/v1/callbacks/{adapter}"
    recorder = CallbackRecorder(url=server.url + path)

    @app.post(path)
    async def callback(request: Request) -> dict[str, str]:
        recorder.record(dict(request.headers), await request.body())
        return {"status": "received"}

    try:
        yield recorder
    finally:
        server.stop()
