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
from tests.support.cluster import LocalCluster

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


def _redis_backends() -> list[str]:
    """GATEWAY_TEST_REDIS=cluster (or a list: embedded,external,cluster) runs every Redis test on those; by default
    the embedded Redis and the machine's when it answers."""
    chosen = [b.strip() for b in os.environ.get("GATEWAY_TEST_REDIS", "").split(",") if b.strip()]
    unknown = set(chosen) - {"embedded", "external", "cluster"}
    if unknown:
        raise pytest.UsageError(f"GATEWAY_TEST_REDIS: unknown backend(s) {sorted(unknown)}")
    return chosen or ["embedded"] + (["external"] if _external_redis_url() else [])


REDIS_BACKENDS = _redis_backends()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: also runs on the Redis Cluster fixture in the default suite")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on Redis runs on each backend; the key flows (marked `cluster`) on the cluster too, always."""
    if "redis_url" in metafunc.fixturenames:
        backends = list(REDIS_BACKENDS)
        if metafunc.definition.get_closest_marker("cluster") and "cluster" not in backends:
            backends.append("cluster")
        metafunc.parametrize("redis_url", backends, indirect=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """Three masters from the machine's redis-server on free ports, for the whole session."""
    cluster = LocalCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    folder = Path(tempfile.mkdtemp(prefix="gw-redis-"))
    server = EmbeddedRedis(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """Every Redis the gateway must work on: the embedded one always, the machine's (or configured) one when up, the
    Cluster fixture (`redis+cluster://`) for the key flows and under GATEWAY_TEST_REDIS=cluster."""
    if request.param == "embedded":
        server: EmbeddedRedis = request.getfixturevalue("embedded_redis")
        return server.url
    if request.param == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
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
