"""Run the mock departments: all together for `gateway mocks` / `gateway up`, or one at a time in tests."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from mocks.common import TraceparentLog

# name -> "module:factory"; each factory builds a fresh FastAPI app with its own state.
MOCK_FACTORIES: dict[str, str] = {
    "medical": "mocks.medical.app:create_app",
    "hrss": "mocks.hrss.app:create_app",
    "tax": "mocks.tax.app:create_app",
    "housing_fund": "mocks.housing_fund.app:create_app",
    "e_license": "mocks.e_license.app:create_app",
    "sms": "mocks.sms.app:create_app",
}


def create_mock(name: str) -> FastAPI:
    module_name, _, factory = MOCK_FACTORIES[name].partition(":")
    create: Callable[[], FastAPI] = getattr(importlib.import_module(module_name), factory)
    app = create()
    app.add_middleware(TraceparentLog, name=name)
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(app: FastAPI, port: int, host: str = "127.0.0.1", **tls: Any) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                          timeout_graceful_shutdown=2, **tls)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve_mocks` stops every server together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_mocks(ports: dict[str, int], stop: asyncio.Event, host: str = "127.0.0.1") -> None:
    """Serve every named mock on its port in this event loop until `stop` is set."""
    servers = [_Server(_config(create_mock(name), port, host)) for name, port in ports.items()]
    jobs = [asyncio.create_task(server.serve()) for server in servers]
    await stop.wait()
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*jobs, return_exceptions=True)


@dataclass
class RunningServer:
    """An ASGI app served by uvicorn in a background thread, for tests and benchmarks."""

    app: FastAPI
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(app: FastAPI, port: int = 0, **tls: Any) -> RunningServer:
    """Serve `app`; uvicorn's `ssl_*` options in `tls` serve it over TLS (with `ssl_cert_reqs`, mutual TLS)."""
    port = port or free_port()
    server = uvicorn.Server(_config(app, port, **tls))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.02)
    return RunningServer(app=app, port=port, server=server, thread=thread, scheme="https" if tls else "http")
