"""Department adapters found by entry point (group `gateway.adapters`) and started with their context."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points, version
from typing import Any

import httpx
import structlog

from gateway.departments.transport import department_client
from gateway.sdk import AdapterContext, DepartmentAdapter, TechnicalFault
from gateway.settings import Settings

ENTRY_POINT_GROUP = "gateway.adapters"
log = structlog.get_logger("gateway.adapters")


@dataclass(frozen=True)
class DiscoveredAdapter:
    name: str
    cls: type[DepartmentAdapter]
    distribution: str
    version: str


def discover() -> dict[str, DiscoveredAdapter]:
    found: dict[str, DiscoveredAdapter] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # one broken adapter package must not take every department down
            log.error("adapter entry point failed to load", adapter=ep.name, error=f"{type(exc).__name__}: {exc}")
            continue
        dist = ep.dist.name if ep.dist else "?"
        found[ep.name] = DiscoveredAdapter(ep.name, cls, dist, getattr(cls, "version", None) or version(dist))
    return found


class AdapterManager:
    """Owns one started adapter per department and the http client each one uses."""

    def __init__(self, settings: Settings, classes: dict[str, type[DepartmentAdapter]] | None = None) -> None:
        self.settings = settings
        self.classes = classes if classes is not None else {n: d.cls for n, d in discover().items()}
        self.adapters: dict[str, DepartmentAdapter] = {}
        self._clients: list[httpx.AsyncClient] = []

    async def start(self) -> None:
        for name, cls in self.classes.items():
            adapter_settings = self.settings.adapter(name)
            client = department_client(adapter_settings, name)
            self._clients.append(client)
            adapter = cls(AdapterContext(name=name, settings=adapter_settings, http=client,
                                         logger=structlog.get_logger(f"adapter.{name}")))
            try:
                await adapter.start()
            except TechnicalFault as exc:
                # A department that is down at start-up is not a reason to refuse the others: it retries later.
                log.warning("adapter start deferred", adapter=name, error=str(exc))
            self.adapters[name] = adapter

    def get(self, name: str) -> DepartmentAdapter:
        return self.adapters[name]

    def known_operations(self) -> dict[str, set[str]]:
        return {name: set(cls.operations) for name, cls in self.classes.items()}

    async def health(self) -> dict[str, Any]:
        return {name: await adapter.health() for name, adapter in self.adapters.items()}

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()
        for client in self._clients:
            await client.aclose()
