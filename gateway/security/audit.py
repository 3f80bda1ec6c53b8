"""Each case's audit chain: every event, in seq order, MACed onto the one before (HMAC-SM3 or HMAC-SHA256).

entry n = {seq, prev, event, mac} with mac = HMAC(audit key, seq || prev || canonical JSON of the event); the first
prev is "". The audit key is kept outside Redis (GATEWAY_AUDIT_KEY or var/secrets/audit.key), so someone able to
write to Redis can neither rewrite an entry nor recompute the chain after a removed or reordered one. The entry is
appended by the same Lua step that makes the change (gateway/store/scripts.py), on top of the chain head the MAC
was computed against. The event itself is sealed (it may quote a department's reason), bound to its case and seq.
"""

from __future__ import annotations

import asyncio
import hmac as std_hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
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
              events: PiiCipher, trace_id: str = "") -> tuple[str, str, str]:
        """(sealed event, mac, entry JSON) for the entry `seq` on top of `previous`.

        `trace_id`, the trace the change happened in, sits beside the MACed part: a pointer for ops into the traces,
        not evidence.
        """
        sealed = events.seal_json(event, event_associated(case_id, seq))
        mac = self.mac(seq, previous, event)
        entry = {"seq": seq, "prev": previous, "event": sealed, "mac": mac}
        if trace_id:
            entry["trace_id"] = trace_id
        return sealed, mac, json.dumps(entry, separators=(",", ":"))


@dataclass(frozen=True)
class AuditReport:
    case_id: str
    entries: int
    head: str
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class OpenedEntry:
    seq: int
    event: dict[str, Any] | None  # None: the entry does not open here (altered, or another key)
    trace_id: str


@dataclass(frozen=True)
class ExportedChain:
    path: Path
    head: str | None  # the case's chain head as exported


def _write_whole(target: Path, content: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.partial")
    with partial.open("w", encoding="utf-8") as out:
        json.dump(content, out, ensure_ascii=False)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)


class AuditChain:
    def __init__(self, redis: StrRedis, signer: AuditSigner, events: PiiCipher) -> None:
        self.redis = redis
        self.signer = signer
        self.events = events

    async def read(self, case_id: str) -> list[OpenedEntry]:
        """The case's entries in chain order, each event opened (for reading; `verify` checks the chain)."""
        opened = []
        for raw in await self.redis.lrange(keys.audit(case_id), 0, -1):
            entry = json.loads(raw)
            seq = int(entry["seq"])
            try:
                event: dict[str, Any] | None = self.events.open_json(str(entry["event"]),
                                                                     event_associated(case_id, seq))
            except (InvalidTag, ValueError):
                event = None
            opened.append(OpenedEntry(seq, event, str(entry.get("trace_id", ""))))
        return opened

    async def verify(self, case_id: str) -> AuditReport:
        raw_entries = await self.redis.lrange(keys.audit(case_id), 0, -1)
        head = await self.redis.hget(keys.case(case_id), "audit_head")
        return self.verify_entries(case_id, raw_entries, head)

    async def export(self, case_id: str, folder: Path) -> ExportedChain | None:
        """Write the case's chain, as stored, with its head to `folder/<case id>.json` (None: no chain).

        Written to a temporary file, flushed to disk, then renamed over any earlier export: a crash leaves either
        no export or a whole one, and exporting again writes the same file. `gateway audit verify --file` checks it.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(keys.audit(case_id), 0, -1)
            pipe.hget(keys.case(case_id), "audit_head")
            raw_entries, head = await pipe.execute()
        if not raw_entries:
            return None
        target = folder / f"{case_id}.json"
        # Off the event loop: the fsync waits for the disk.
        await asyncio.to_thread(_write_whole, target, {"case_id": case_id, "audit_head": head, "entries": raw_entries})
        return ExportedChain(target, head)

    def verify_export(self, path: Path) -> AuditReport:
        exported = json.loads(path.read_text(encoding="utf-8"))
        return self.verify_entries(str(exported["case_id"]), list(exported["entries"]), exported.get("audit_head"))

    def verify_entries(self, case_id: str, raw_entries: list[str], head: str | None) -> AuditReport:
        """Check a chain: every entry opens as this case's, follows the one before and carries its MAC; `head`, the
        case's recorded chain head, shows a cut-off tail."""
        problems: list[str] = []
        previous = ""
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
        if raw_entries and head is not None and head != previous:
            problems.append("the chain ends before the case's last change: entries were removed from its end")
        return AuditReport(case_id, len(raw_entries), previous, problems)
