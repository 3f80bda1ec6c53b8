"""Running the gateway's parts in one event loop: the API server, the worker and the outbox dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import threading
from collections.abc import Generator
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
                                 limit_concurrency=settings.api_limit_concurrency, **tls))


def api_tls(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options from the settings: none (plain HTTP), a server certificate, or mutual TLS."""
    if not settings.tls_cert_file:
        return {}
    tls: dict[str, Any] = {"ssl_certfile": str(settings.tls_cert_file),
                           "ssl_keyfile": str(settings.tls_key_file) if settings.tls_key_file else None}
    if settings.tls_client_ca_file:  # X-Road style: a caller also proves who it is with a certificate
        tls |= {"ssl_ca_certs": str(settings.tls_client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return tls


async def run_gateway(settings: Settings, redis_url: str, *, api: bool, worker: bool, consumer: str,
                      stop: asyncio.Event | None = None, metrics_port: int | None = None,
                      adapter_classes: dict[str, type[DepartmentAdapter]] | None = None,
                      started: threading.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT when running in the main thread)."""
    from gateway.api.app import create_app
    from gateway.notifications.outbox import OutboxDispatcher
    from gateway.observability.tracing import configure_tracing
    from gateway.worker.runner import Worker

    configure_tracing()  # once per process, from OTEL_* in the environment; nothing when they are unset
    metrics_port = metrics_port or settings.metrics_port
    services = await build_services(settings, redis_url, consumer=consumer, api=api,
                                    adapter_classes=adapter_classes)
    stop = stop or asyncio.Event()
    servers: list[uvicorn.Server] = []
    if api:
        servers.append(http_server(create_app(settings, redis_url, services=services), settings.api_host,
                                   settings.api_port, settings, **api_tls(settings)))
    if metrics_port:
        from gateway.observability.http import metrics_server

        servers.append(http_server(metrics_server(settings.redeliver_after_s if worker else None), settings.api_host,
                                   metrics_port, settings))
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    jobs = [asyncio.create_task(server.serve()) for server in servers]
    if worker:
        jobs.append(asyncio.create_task(Worker(services).run(stop)))
        jobs.append(asyncio.create_task(OutboxDispatcher(services, consumer).run(stop)))
    try:
        while servers and not all(s.started for s in servers):
            if any(job.done() for job in jobs[: len(servers)]):  # could not bind: do not run half a gateway
                raise RuntimeError(f"HTTP server could not start on {settings.api_host}:{settings.api_port}")
            await asyncio.sleep(0.02)
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        stop.set()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*jobs, return_exceptions=True)
        await services.close()
