"""Each case's audit chain: every event, in seq order, hashed onto the one before (SM3 or SHA-256).

entry n = {seq, event, prev, hash} with hash = H(prev || canonical JSON of the event); the first prev is "".
Changing, removing or reordering any entry breaks every hash after it, which `verify` reports. Events hold ids,
codes and statuses, never names, phone or ID numbers, so the chain itself carries no PII.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes

from gateway.store import keys, scripts
from gateway.store.connection import StrRedis

HashName = Literal["sha256", "sm3"]


def chain_hash(algorithm: HashName, previous: str, event: dict[str, Any]) -> str:
    digest = hashes.Hash(hashes.SM3() if algorithm == "sm3" else hashes.SHA256())
    digest.update(previous.encode())
    digest.update(json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    return f"{algorithm}:{digest.finalize().hex()}"


@dataclass(frozen=True)
class AuditReport:
    case_id: str
    entries: int
    head: str
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


class AuditChain:
    def __init__(self, redis: StrRedis, algorithm: HashName) -> None:
        self.redis = redis
        self.algorithm = algorithm
        self._append = redis.register_script(scripts.APPEND_AUDIT)

    async def append(self, event: dict[str, Any], seq: int) -> bool:
        """Chain the event; False when its predecessor is not chained yet (another dispatcher has it in hand)."""
        key = keys.audit(event["case_id"])
        last = await self.redis.lindex(key, -1)
        previous: dict[str, Any] = json.loads(last) if last else {"seq": 0, "hash": ""}
        previous_seq, previous_hash = int(previous["seq"]), str(previous["hash"])
        if previous_seq >= seq:
            return True
        if previous_seq != seq - 1:
            return False
        entry = {"seq": seq, "event": event, "prev": previous_hash,
                 "hash": chain_hash(self.algorithm, previous_hash, event)}
        result = await self._append(keys=[key], args=[seq, previous_hash, json.dumps(entry, ensure_ascii=False)])
        return int(result) in (1, 2)

    async def verify(self, case_id: str) -> AuditReport:
        problems: list[str] = []
        previous_hash = ""
        raw_entries = await self.redis.lrange(keys.audit(case_id), 0, -1)
        for position, raw in enumerate(raw_entries, start=1):
            entry = json.loads(raw)
            if entry["seq"] != position:
                problems.append(f"entry {position} has seq {entry['seq']}: an entry is missing or out of order")
            if entry["prev"] != previous_hash:
                problems.append(f"entry {position} does not follow the entry before it")
            algorithm = str(entry["hash"]).partition(":")[0]
            if algorithm not in ("sha256", "sm3") or entry["hash"] != chain_hash(
                    "sm3" if algorithm == "sm3" else "sha256", entry["prev"], entry["event"]):
                problems.append(f"entry {position} (seq {entry['seq']}) was altered: its hash does not match")
            previous_hash = entry["hash"]
        return AuditReport(case_id, len(raw_entries), previous_hash, problems)
