"""Running the gateway's parts: in one event loop (the API server, the worker and the outbox dispatcher), or as
child processes of one supervisor (several API processes on one port, workers beside them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from gateway.bootstrap import build_services
from gateway.sdk import DepartmentAdapter
from gateway.settings import Settings


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process decides how to stop (children included)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def http_server(asgi: Any, host: str, port: int, settings: Settings, **tls: Any) -> Server:
    """h11, so the request head is bounded (httptools has no such limit); connections beyond the limit get 503."""
    return Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5,
                                 http="h11", h11_max_incomplete_event_size=settings.api_max_header_bytes,
                                 limit_concurrency=settings.api_limit_concurrency,
                                 timeout_keep_alive=settings.api_keep_alive_s, **tls))


def api_tls(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options from the settings: none (plain HTTP), a server certificate, or mutual TLS."""
    if not settings.tls_cert_file:
        return {}
    tls: dict[str, Any] = {"ssl_certfile": str(settings.tls_cert_file),
                           "ssl_keyfile": str(settings.tls_key_file) if settings.tls_key_file else None}
    if settings.tls_client_ca_file:  # X-Road style: a caller also proves who it is with a certificate
        tls |= {"ssl_ca_certs": str(settings.tls_client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return tls


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT: each API process binds its own on the same port and the kernel spreads
    new connections over them, so a process busy with one request never holds up another process's accepts."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def ensure_port_free(host: str, port: int) -> None:
    """Raise OSError when something listens on the port already: SO_REUSEPORT would otherwise let the API processes
    silently share it with another gateway of the same user."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


async def run_gateway(settings: Settings, redis_url: str, *, api: bool, worker: bool, consumer: str,
                      stop: asyncio.Event | None = None, metrics_port: int | None = None,
                      adapter_classes: dict[str, type[DepartmentAdapter]] | None = None,
                      started: threading.Event | None = None, reuse_port: bool = False) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT when running in the main thread). With `reuse_port`, this is one
    of several processes serving the API (and metrics) port, started by `Supervisor`."""
    from gateway.api.app import create_app
    from gateway.notifications.outbox import OutboxDispatcher
    from gateway.observability.tracing import configure_tracing
    from gateway.worker.runner import Worker

    configure_tracing()  # once per process, from OTEL_* in the environment; nothing when they are unset
    metrics_port = metrics_port or settings.metrics_port
    services = await build_services(settings, redis_url, consumer=consumer, api=api,
                                    adapter_classes=adapter_classes)
    stop = stop or asyncio.Event()
    servers: list[tuple[uvicorn.Server, int]] = []
    if api:
        servers.append((http_server(create_app(settings, redis_url, services=services), settings.api_host,
                                    settings.api_port, settings, **api_tls(settings)), settings.api_port))
    if metrics_port:
        from gateway.observability.http import metrics_server

        servers.append((http_server(metrics_server(settings.redeliver_after_s if worker else None),
                                    settings.api_host, metrics_port, settings), metrics_port))
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    jobs = [asyncio.create_task(server.serve([shared_port_socket(settings.api_host, port)] if reuse_port else None))
            for server, port in servers]
    if worker:
        jobs.append(asyncio.create_task(Worker(services).run(stop)))
        jobs.append(asyncio.create_task(OutboxDispatcher(services, consumer).run(stop)))
    try:
        while servers and not all(s.started for s, _ in servers):
            if any(job.done() for job in jobs[: len(servers)]):  # could not bind: do not run half a gateway
                raise RuntimeError(f"HTTP server could not start on {settings.api_host}:{settings.api_port}")
            await asyncio.sleep(0.02)
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        stop.set()
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*jobs, return_exceptions=True)
        await services.close()


class Supervisor:
    """The gateway's parts as child processes started and stopped together: SIGTERM/SIGINT to the supervisor, or any
    child ending on its own, stops every child (SIGTERM, then SIGKILL after `grace_s`). Nothing is restarted: one
    process gone means a smaller gateway than asked for, and the orchestrator (or the person at the terminal)
    decides what happens next.

    The children share one Prometheus multiprocess folder (PROMETHEUS_MULTIPROC_DIR, under var/, wiped at start and
    removed at the end): whichever API process answers `/metrics` adds up every child's counters and histograms."""

    def __init__(self, var_dir: Path, grace_s: float = 30) -> None:
        self.metrics_dir = var_dir / "metrics" / str(os.getpid())
        for folder in [*self.metrics_dir.parent.glob("*"), self.metrics_dir]:  # left by a supervisor killed -9
            if folder == self.metrics_dir or not Path("/proc", folder.name).exists():
                shutil.rmtree(folder, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True, mode=0o700)
        self.grace_s = grace_s
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        # From now on: a signal during start-up still stops the children started so far.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.children[name] = subprocess.Popen(command, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)})
        return self.children[name]

    def wait(self) -> str | None:
        """Until a stop signal (None) or the first child to end (its name)."""
        while not self._stop.wait(0.2):
            for name, child in self.children.items():
                if child.poll() is not None:
                    return name
        return None

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + self.grace_s
        for child in self.children.values():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
