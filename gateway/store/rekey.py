"""`gateway keys rotate`: re-seal every sealed value in Redis under the current PII key, while the gateway runs.

Every process must already hold the new keyring (new current key id, the old keys still listed) so nothing new is
sealed under an old key. The walk SCANs in batches and replaces each value only if it is unchanged since it was read
(compare-and-set in Lua), so it is safe next to live workers, idempotent and resumable: a second run finds nothing
left but what was written meanwhile. Old values stay readable throughout; an old key can leave the keyring once a
run reports nothing left under it. Outbox stream entries cannot be rewritten in place: they are delivered and
deleted within seconds, and a later run counts any still waiting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.security.audit import event_associated
from gateway.security.pii import PiiCipher, is_sealed
from gateway.store import keys, scripts
from gateway.store.cases import CASE_SEALED, TASK_SEALED, case_field_associated, task_field_associated
from gateway.store.connection import StrRedis


@dataclass
class RotationCounts:
    resealed: int = 0
    current: int = 0  # already under the current key and cipher
    changed_meanwhile: int = 0  # rewritten by the gateway while we worked: sealed under the current key already
    outbox_waiting: int = 0  # outbox stream events still under an older key (delivered soon; run again)


class KeyRotation:
    def __init__(self, redis: StrRedis, cipher: PiiCipher, batch: int = 500) -> None:
        self.redis = redis
        self.pii = cipher.for_purpose("pii")
        self.events = cipher.for_purpose("events")
        self.batch = batch
        self.counts = RotationCounts()
        self._reseal_field = redis.register_script(scripts.RESEAL_FIELD)
        self._reseal_item = redis.register_script(scripts.RESEAL_ITEM)

    async def run(self) -> RotationCounts:
        # Every case's keys, on every node of a Cluster (scan_iter walks each primary in turn).
        async for key in self.redis.scan_iter(match=keys.CASE_KEYS_PATTERN, count=self.batch):
            case_id, _, rest = key.partition("}:c:")[2].partition(":")
            if rest == "case":
                await self._hash(key, {name: case_field_associated(case_id, name) for name in CASE_SEALED})
            elif rest.startswith("task:"):
                matter = rest[len("task:"):]
                await self._hash(key, {name: task_field_associated(case_id, matter, name) for name in TASK_SEALED})
            elif rest == "audit":
                await self._list(key, case_id)
        await self._list(keys.OUTBOX_DEAD, None)
        for shard in keys.all_shards():
            for _, fields in await self.redis.xrange(keys.outbox_stream(shard)):
                if is_sealed(fields.get("event", "")) and not self.events.is_current(fields["event"]):
                    self.counts.outbox_waiting += 1
        return self.counts

    async def _hash(self, key: str, associated: dict[str, str]) -> None:
        values = await self.redis.hmget(key, list(associated))
        for (name, ad), value in zip(associated.items(), values, strict=True):
            if not value or not is_sealed(value):
                continue
            if self.pii.is_current(value):
                self.counts.current += 1
                continue
            fresh = self.pii.reseal(value, ad.encode())
            self._count(await self._reseal_field(keys=[key], args=[name, value, fresh]))

    async def _list(self, key: str, case_id: str | None) -> None:
        """Audit entries (case_id given) or parked outbox events: JSON objects whose `event` is sealed."""
        for index, raw in enumerate(await self.redis.lrange(key, 0, -1)):
            item = json.loads(raw)
            sealed = str(item.get("event", ""))
            if not is_sealed(sealed):
                continue
            if self.events.is_current(sealed):
                self.counts.current += 1
                continue
            ad = event_associated(case_id or item["case_id"], int(item["seq"]))
            item["event"] = self.events.reseal(sealed, ad.encode())
            self._count(await self._reseal_item(keys=[key], args=[index, raw, json.dumps(item, ensure_ascii=False)]))

    def _count(self, replaced: int) -> None:
        if int(replaced):
            self.counts.resealed += 1
        else:
            self.counts.changed_meanwhile += 1
