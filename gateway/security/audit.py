"""Each case's audit chain: every event, in seq order, MACed onto the one before (HMAC-SM3 or HMAC-SHA256).

entry n = {seq, prev, event, mac} with mac = HMAC(audit key, seq || prev || canonical JSON of the event); the first
prev is "". The audit key is kept outside Redis (GATEWAY_AUDIT_KEY or var/secrets/audit.key), so someone able to
write to Redis can neither rewrite an entry nor recompute the chain after a removed or reordered one. The entry is
appended by the same Lua step that makes the change (gateway/store/scripts.py), on top of the chain head the MAC
was computed against. The event itself is sealed (it may quote a department's reason), bound to its case and seq.
"""

from __future__ import annotations

import hmac as std_hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac

from gateway.security.pii import PiiCipher
from gateway.store import keys
from gateway.store.connection import StrRedis

HashName = Literal["sha256", "sm3"]


def canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def event_associated(case_id: str, seq: int) -> str:
    """An event body opens only as this case's entry `seq`: a blob moved to another place does not."""
    return f"{case_id}:event:{seq}"


class AuditSigner:
    def __init__(self, key: bytes, algorithm: HashName) -> None:
        if len(key) < 32:
            raise ValueError(f"the audit key must have at least 32 bytes, got {len(key)}")
        self.key = key
        self.algorithm = algorithm

    def mac(self, seq: int, previous: str, event: dict[str, Any], algorithm: HashName | None = None) -> str:
        algorithm = algorithm or self.algorithm
        h = hmac.HMAC(self.key, hashes.SM3() if algorithm == "sm3" else hashes.SHA256())
        h.update(f"{seq}\n{previous}\n".encode())
        h.update(canonical(event))
        return f"hmac-{algorithm}:{h.finalize().hex()}"

    def entry(self, case_id: str, seq: int, previous: str, event: dict[str, Any],
              events: PiiCipher) -> tuple[str, str, str]:
        """(sealed event, mac, entry JSON) for the entry `seq` on top of `previous`."""
        sealed = events.seal_json(event, event_associated(case_id, seq))
        mac = self.mac(seq, previous, event)
        return sealed, mac, json.dumps({"seq": seq, "prev": previous, "event": sealed, "mac": mac})


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
    def __init__(self, redis: StrRedis, signer: AuditSigner, events: PiiCipher) -> None:
        self.redis = redis
        self.signer = signer
        self.events = events

    async def verify(self, case_id: str) -> AuditReport:
        problems: list[str] = []
        previous = ""
        raw_entries = await self.redis.lrange(keys.audit(case_id), 0, -1)
        for position, raw in enumerate(raw_entries, start=1):
            try:
                entry = json.loads(raw)
                seq, stated_prev, stated_mac = int(entry["seq"]), str(entry["prev"]), str(entry["mac"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"entry {position} is not an audit entry")
                continue
            if seq != position:
                problems.append(f"entry {position} has seq {seq}: an entry is missing or out of order")
            if stated_prev != previous:
                problems.append(f"entry {position} does not follow the entry before it")
            algorithm: HashName = "sm3" if stated_mac.startswith("hmac-sm3:") else "sha256"
            try:
                event = self.events.open_json(str(entry["event"]), event_associated(case_id, seq))
            except (InvalidTag, ValueError):
                problems.append(f"entry {position} (seq {seq}) was altered: its event does not open here")
            else:
                expected = self.signer.mac(seq, stated_prev, event, algorithm)
                if not std_hmac.compare_digest(expected, stated_mac):
                    problems.append(f"entry {position} (seq {seq}) was altered: its MAC does not match")
            previous = stated_mac
        head = await self.redis.hget(keys.case(case_id), "audit_head")
        if raw_entries and head is not None and head != previous:
            problems.append("the chain ends before the case's last change: entries were removed from its end")
        return AuditReport(case_id, len(raw_entries), previous, problems)
