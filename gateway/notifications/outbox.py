"""The outbox: every event is delivered to the platform's webhook, applicant-facing ones also by SMS.

Events are written to the outbox stream (sealed: they may quote a department's reason) and chained onto the case's
audit chain in the same atomic step as the change they describe; the outbox only delivers, opening each event for
its receivers. Delivery is at least
once, each event with a stable `event_id` and a per-case `seq`; a channel that acknowledged an event is marked so
that a retry for the other channel never sends it twice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from typing import Any

import httpx
import structlog
from opentelemetry.trace import SpanKind

from gateway.bootstrap import Services
from gateway.observability.metrics import OUTBOX, OUTBOX_EVENTS_PARKED
from gateway.observability.tracing import span, traced
from gateway.orchestration.applicant_steps import STEP_NAMES_ZH, step_names_zh
from gateway.security import signing
from gateway.security.audit import event_associated
from gateway.security.pii import PiiCipher, is_sealed
from gateway.store import keys
from gateway.store.consumer import ConsumerLoop, Entry, StreamConsumer

log = structlog.get_logger("gateway.outbox")

_SMS_STATUSES = {"completed": "已办结", "rejected": "未通过", "skipped": "未办理（前置事项未办结）",
                 "awaiting_payment": "待您办理",
                 "expired": "已终止（未在期限内完成您需办理的步骤），如需办理请重新申请"}


def open_event(events: PiiCipher, fields: dict[str, str]) -> dict[str, Any]:
    """The event of an outbox entry, with its seq."""
    seq = int(fields.get("seq", 0))
    raw = fields["event"]
    event: dict[str, Any] = (events.open_json(raw, event_associated(fields["case_id"], seq)) if is_sealed(raw)
                             else json.loads(raw))  # queued before events were sealed
    event["seq"] = seq
    return event


QUOTED_REASON_MAX = 60
# Anything a reader could follow or call: links, bare domains, e-mail addresses, runs of 5+ digits (phone numbers).
_FOLLOWABLE = re.compile(r"(?i)(?:[a-z][a-z0-9+.-]*://|www\.)\S*|\S+@\S+|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:cn|com|net|org"
                         r"|gov|top|xyz|io|cc|me|info)\b\S*|\d[\d\s-]{3,}\d")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def quoted_reason(text: str) -> str:
    """A department's text as the official SMS may quote it: no control characters, nothing to follow or call,
    at most QUOTED_REASON_MAX characters. The department cannot make the gateway's SMS carry its own link."""
    cleaned = _FOLLOWABLE.sub("", _CONTROL.sub(" ", text))
    cleaned = " ".join(cleaned.split()).strip(" ，。,.;；:：")
    return cleaned if len(cleaned) <= QUOTED_REASON_MAX else cleaned[: QUOTED_REASON_MAX - 1] + "…"


def sms_text(event: dict[str, Any], matter_name: str | None = None) -> str | None:
    """The applicant-facing message for an event, or None when the applicant need not hear of it."""
    if event.get("type") == "case.certificate_issued":
        return "【灵活就业一件事】您的《就业创业证》电子证照已生成，可在政务服务平台查看。"
    if event.get("type") == "task.step_reminder":
        # The step and the matter by name, the time it ends, and a fresh link: what a person needs to act on it.
        text = (f"【灵活就业一件事】提醒：您申请的事项（{matter_name or event.get('matter', '')}）尚待您完成"
                f"{step_names_zh(event.get('steps') or [])}，请于{event.get('expires_at', '')}前办理。")
        for step, url in (event.get("links") or {}).items():
            text += f"请点击链接完成{STEP_NAMES_ZH.get(step, step)}：{url} "
        return text.strip()
    if event.get("type") != "task.status_changed":
        return None
    status = event.get("status", "")
    if status not in _SMS_STATUSES:
        return None
    text = f"【灵活就业一件事】您申请的事项（{matter_name or event.get('matter', '')}）{_SMS_STATUSES[status]}。"
    reason = quoted_reason(str(event.get("reason") or "")) if status == "rejected" else ""
    if reason:
        text += f"原因：{reason}。"
    if event.get("notice_zh"):  # the profile's payment notice, e.g. where to pay (江西省税务局公众号)
        text += str(event["notice_zh"])
    for step, url in (event.get("links") or {}).items():
        text += f"请点击链接完成{STEP_NAMES_ZH.get(step, step)}：{url} "
    return text.strip()


class OutboxDispatcher:
    def __init__(self, services: Services, consumer: str) -> None:
        self.services = services
        self.consumer = consumer
        settings = services.settings
        self.http = httpx.AsyncClient(timeout=settings.outbox_timeout_s,
                                      transport=traced(httpx.AsyncHTTPTransport(), "outbox"))
        self.webhook_url = settings.webhook_url
        self.webhook_secret = settings.webhook_secret
        self.sms_url = settings.sms_url
        self.events = services.store.events

    async def run(self, stop: asyncio.Event) -> None:
        """Cases in parallel, so one slow receiver call does not hold every applicant's SMS behind it; each case's
        events in their order, so the platform sees a case's changes as they happened."""
        settings = self.services.settings
        stream = StreamConsumer(self.services.redis, keys.outbox_stream, keys.OUTBOX_GROUP, self.consumer,
                                reclaim_idle_s=settings.outbox_redeliver_after_s)
        loop = ConsumerLoop(consumer=stream, handle=lambda entry: self.handle(*entry), give_up=self._park_poison,
                            order_key=lambda entry: entry[1].get("case_id", ""),
                            concurrency=settings.outbox_concurrency)
        try:
            await loop.run(stop)
        finally:
            await self.http.aclose()

    async def handle(self, message_id: str, fields: dict[str, str]) -> bool:
        """Deliver one event when its back-off allows. True when it is done with (delivered on every channel, or
        parked): the loop then acknowledges it; False leaves it pending until its next try."""
        redis = self.services.redis
        event = open_event(self.events, fields)
        event_id = event["event_id"]
        retry_key = keys.outbox_retry(event_id)
        next_at = await redis.hget(retry_key, "next_at")
        if next_at and float(next_at) > time.time():
            return False
        # A delivery belongs to its case's trace (the change it reports happened there).
        with span("outbox deliver", parent=await self.services.store.traceparent(event["case_id"]),
                  kind=SpanKind.PRODUCER, attributes={"gateway.case_id": event["case_id"],
                                                      "gateway.event_type": str(event.get("type", ""))}):
            delivered = await self.deliver(event)
        if delivered:
            await redis.delete(retry_key)
            return True
        attempts = int(await redis.hincrby(retry_key, "attempts", 1))
        delay = min(0.5 * 2 ** min(attempts, 16), self.services.settings.outbox_retry_cap_s)
        await redis.hset(retry_key, "next_at", time.time() + delay)
        await redis.expire(retry_key, 7 * 24 * 3600)
        if attempts >= self.services.settings.outbox_max_attempts:
            # A receiver that refuses an event for this long needs a person: park it where ops can see it.
            await redis.rpush(keys.OUTBOX_DEAD, json.dumps(fields, ensure_ascii=False))
            OUTBOX_EVENTS_PARKED.labels("refused").inc()
            log.error("outbox event parked after repeated refusals", event_id=event_id, attempts=attempts)
            return True
        return False

    async def _park_poison(self, entry: Entry, exc: Exception) -> None:
        """An event whose handling keeps crashing (unreadable, say) is parked for ops like a refused one."""
        await self.services.redis.rpush(keys.OUTBOX_DEAD, json.dumps(entry[1], ensure_ascii=False))
        OUTBOX_EVENTS_PARKED.labels("unreadable").inc()

    async def deliver(self, event: dict[str, Any]) -> bool:
        delivered = True
        webhook = await self._webhook_of(event["case_id"])
        if webhook is not None:
            delivered &= await self._once(event, "webhook", functools.partial(self._webhook, *webhook))
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

    async def _webhook_of(self, case_id: str) -> tuple[str, str] | None:
        """The case's caller's own webhook when it has one, else the gateway's (None: not delivered)."""
        caller = self.services.callers.get(await self.services.redis.hget(keys.case(case_id), "caller") or "")
        if caller is not None and caller.webhook_url and caller.webhook_secret:
            return caller.webhook_url, caller.webhook_secret
        return (self.webhook_url, self.webhook_secret) if self.webhook_url else None

    async def _webhook(self, url: str, secret: str, event: dict[str, Any]) -> bool:
        body = json.dumps(event, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        signature = signing.hmac_hex(secret, signing.webhook(timestamp, body))
        response = await self.http.post(url, content=body, headers={
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
