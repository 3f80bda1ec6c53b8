from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from gateway.store.embedded_redis import EmbeddedRedis
from mocks.serving import RunningServer, create_mock, start_in_thread
from tests.contract.test_platform_smoke import SMOKE as PLATFORM_SMOKE

MACHINE_REDIS = "redis://127.0.0.1:6379/15"

# The platform's contract smoke check lives beside the checkout (as in CI). A fresh clone has nothing beside it: the
# check is then not collected, and the run says so in one line instead of failing.
SMOKE_NOT_RUN = f"platform contract smoke NOT run: {PLATFORM_SMOKE} is absent (it runs where that folder is, as in CI)"
collect_ignore = [] if PLATFORM_SMOKE.exists() else ["contract/test_platform_smoke.py"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not PLATFORM_SMOKE.exists():
        terminalreporter.write_line(SMOKE_NOT_RUN)


def _external_redis_url() -> str | None:
    """The configured Redis, else the machine's own at 127.0.0.1:6379 (db 15) when one answers."""
    url = os.environ.get("GATEWAY_REDIS_URL") or MACHINE_REDIS
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.ConnectionError, OSError):
        if os.environ.get("GATEWAY_REDIS_URL"):
            raise
        return None
    return url


REDIS_BACKENDS = ["embedded"] + (["external"] if _external_redis_url() else [])


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    folder = Path(tempfile.mkdtemp(prefix="gw-redis-"))
    server = EmbeddedRedis(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=REDIS_BACKENDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    """Every Redis the gateway must work on: the embedded one always, the machine's (or configured) one when up."""
    if request.param == "embedded":
        server: EmbeddedRedis = request.getfixturevalue("embedded_redis")
        return server.url
    url = _external_redis_url()
    assert url is not None
    return url


@pytest.fixture
def mock_server() -> Iterator[Callable[[str], RunningServer]]:
    """Start a fresh mock department (by name) on a loopback port; stopped after the test."""
    started: list[RunningServer] = []

    def start(name: str) -> RunningServer:
        server = start_in_thread(create_mock(name))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
