from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mocks.serving import RunningServer, create_mock, start_in_thread


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
