"""The outbox: every event is delivered to the platform's webhook, applicant-facing ones also by SMS.

Events are written to the outbox stream in the same atomic step as the change they describe. Delivery is at least
once, each event with a stable `event_id` and a per-case `seq`; a channel that acknowledged an event is marked so
that a retry for the other channel never sends it twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import structlog

from gateway.bootstrap import Services
from gateway.observability.metrics import OUTBOX
from gateway.security.audit import AuditChain
from gateway.store import keys
from gateway.store.queue import autoclaim_entries

log = structlog.get_logger("gateway.outbox")

_SMS_STATUSES = {"completed": "已办结", "rejected": "未通过", "skipped": "未办理（前置事项未办结）",
                 "awaiting_payment": "待您办理"}
_STEP_NAMES = {"payment": "缴费", "deposit": "缴存", "photo": "上传社保卡照片"}


def sms_text(event: dict[str, Any], matter_name: str | None = None) -> str | None:
    """The applicant-facing message for an event, or None when the applicant need not hear of it."""
    if event.get("type") == "case.certificate_issued":
        return "【灵活就业一件事】您的《就业创业证》电子证照已生成，可在政务服务平台查看。"
    if event.get("type") != "task.status_changed":
        return None
    status = event.get("status", "")
    if status not in _SMS_STATUSES:
        return None
    text = f"【灵活就业一件事】您申请的事项（{matter_name or event.get('matter', '')}）{_SMS_STATUSES[status]}。"
    if status == "rejected" and event.get("reason"):
        text += f"原因：{event['reason']}。"
    if event.get("notice_zh"):  # the profile's payment notice, e.g. where to pay (江西省税务局公众号)
        text += str(event["notice_zh"])
    for step, url in (event.get("links") or {}).items():
        text += f"请点击链接完成{_STEP_NAMES.get(step, step)}：{url} "
    return text.strip()


class OutboxDispatcher:
    def __init__(self, services: Services, consumer: str) -> None:
        self.services = services
        self.consumer = consumer
        settings = services.settings
        self.http = httpx.AsyncClient(timeout=settings.outbox_timeout_s)
        self.webhook_url = settings.webhook_url
        self.webhook_secret = settings.webhook_secret
        self.sms_url = settings.sms_url
        self.audit = AuditChain(services.redis, settings.audit_hash)

    async def run(self, stop: asyncio.Event) -> None:
        redis = self.services.redis
        last_reclaim = 0.0
        try:
            while not stop.is_set():
                try:
                    entries: list[tuple[str, dict[str, str]]] = []
                    if time.monotonic() - last_reclaim > 2:
                        last_reclaim = time.monotonic()
                        reply = await redis.execute_command("XAUTOCLAIM", keys.OUTBOX_STREAM, keys.OUTBOX_GROUP,
                                                            self.consumer, 3000, "0-0", "COUNT", 50)
                        entries += autoclaim_entries(reply)
                    reply = await redis.xreadgroup(keys.OUTBOX_GROUP, self.consumer, {keys.OUTBOX_STREAM: ">"},
                                                   count=50, block=200)
                    for _stream, items in reply or []:
                        entries += [(mid, fields) for mid, fields in items if fields]
                    await self.handle_all(entries)
                except Exception as exc:  # delivery must outlive any error; unacknowledged events come back
                    log.warning("outbox loop error", error=str(exc)[:200])
                    await asyncio.sleep(1)
        finally:
            await self.http.aclose()

    async def handle_all(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Cases in parallel, so one slow receiver call does not hold every applicant's SMS behind it; each case's
        events in their order, so the platform sees a case's changes as they happened."""
        by_case: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for message_id, fields in entries:
            by_case.setdefault(fields.get("case_id", ""), []).append((message_id, fields))

        async def one_case(items: list[tuple[str, dict[str, str]]]) -> None:
            for message_id, fields in items:
                if not await self.handle(message_id, fields):
                    return  # later events of this case wait for this one: they come back in stream order

        await asyncio.gather(*(one_case(items) for items in by_case.values()))

    async def handle(self, message_id: str, fields: dict[str, str]) -> bool:
        """Deliver one event when its back-off allows; acknowledged once every channel took it, or when parked.

        True when the event is done with (delivered or parked).
        """
        redis = self.services.redis
        event = json.loads(fields["event"])
        event_id = event["event_id"]
        # Chained before it is delivered, so whatever the receivers do, the case's history is on record.
        if not await self.audit.append(event, int(fields.get("seq", 0))):
            return False
        retry_key = keys.outbox_retry(event_id)
        next_at = await redis.hget(retry_key, "next_at")
        if next_at and float(next_at) > time.time():
            return False
        if await self.deliver(fields):
            await self._ack(message_id)
            await redis.delete(retry_key)
            return True
        attempts = int(await redis.hincrby(retry_key, "attempts", 1))
        delay = min(0.5 * 2 ** min(attempts, 16), self.services.settings.outbox_retry_cap_s)
        await redis.hset(retry_key, "next_at", time.time() + delay)
        await redis.expire(retry_key, 7 * 24 * 3600)
        if attempts >= self.services.settings.outbox_max_attempts:
            # A receiver that refuses an event for this long needs a person: park it where ops can see it.
            await redis.rpush(keys.OUTBOX_DEAD, json.dumps(fields, ensure_ascii=False))
            await self._ack(message_id)
            OUTBOX.labels("any", "dead_lettered").inc()
            log.error("outbox event parked after repeated refusals", event_id=event_id, attempts=attempts)
            return True
        return False

    async def _ack(self, message_id: str) -> None:
        await self.services.redis.xack(keys.OUTBOX_STREAM, keys.OUTBOX_GROUP, message_id)
        await self.services.redis.xdel(keys.OUTBOX_STREAM, message_id)

    async def deliver(self, fields: dict[str, str]) -> bool:
        event = json.loads(fields["event"])
        event["seq"] = int(fields.get("seq", 0))
        delivered = True
        if self.webhook_url:
            delivered &= await self._once(event, "webhook", self._webhook)
        if self.sms_url and sms_text(event) is not None:
            delivered &= await self._once(event, "sms", self._sms)
        return delivered

    async def _once(self, event: dict[str, Any], channel: str, send: Any) -> bool:
        marker = keys.outbox_done(event["event_id"], channel)
        if await self.services.redis.exists(marker):
            return True
        try:
            ok = bool(await send(event))
        except httpx.HTTPError as exc:
            log.info("outbox delivery failed", channel=channel, event_id=event["event_id"], error=type(exc).__name__)
            ok = False
        OUTBOX.labels(channel, "delivered" if ok else "failed").inc()
        if ok:
            await self.services.redis.set(marker, "1", ex=7 * 24 * 3600)
        return ok

    async def _webhook(self, event: dict[str, Any]) -> bool:
        assert self.webhook_url
        body = json.dumps(event, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        signature = hmac.new(self.webhook_secret.encode(), timestamp.encode() + b"\n" + body,
                             hashlib.sha256).hexdigest()
        response = await self.http.post(self.webhook_url, content=body, headers={
            "Content-Type": "application/json", "X-Gateway-Event-Id": event["event_id"],
            "X-Gateway-Timestamp": timestamp, "X-Gateway-Signature": signature})
        return response.is_success

    async def _sms(self, event: dict[str, Any]) -> bool:
        assert self.sms_url
        case = await self.services.store.get_case(event["case_id"])
        phone = (case.applicant.get("phone") if case else None) or ""
        if case is None or not phone:
            return True  # nobody to tell; the platform still has the event
        profile = self.services.profiles.get(case.profile)
        matter = event.get("matter")
        text = sms_text(event, profile.matter(matter).name_zh if matter and profile.has_matter(matter) else None)
        assert text is not None
        response = await self.http.post(self.sms_url.rstrip("/") + "/sms/send", json={
            "msg_id": event["event_id"], "phone": phone, "text": text, "template": event.get("type")})
        return response.is_success
