"""Exactly-once delivery, shown (issue 10, item 3): two dispatchers share the outbox, the platform's webhook answers
more slowly than the reclaim idle time, and still every event arrives once, with contiguous `seq` per case.

Before the task queue and the outbox shared one consumer loop, the outbox reclaimed entries idle for 3 s and kept
nothing alive, so a delivery slower than that was taken over mid-flight by the other dispatcher and posted twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest

from gateway.runtime import run_gateway
from gateway.store import keys
from tests.support.harness import applicant, start_gateway, stream_pending

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def second_worker(settings, redis_url: str) -> tuple[threading.Thread, dict]:
    """Another worker process's worker and dispatcher (no API), on the same Redis."""
    holder: dict = {"started": threading.Event()}

    def serve() -> None:
        async def main() -> None:
            holder["loop"], holder["stop"] = asyncio.get_running_loop(), asyncio.Event()
            await run_gateway(settings, redis_url, api=False, worker=True, consumer="second-worker",
                              stop=holder["stop"], started=holder["started"])

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert holder["started"].wait(30)
    return thread, holder


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_a_webhook_slower_than_the_reclaim_time_gets_each_event_once_with_two_dispatchers(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, outbox_timeout_s=6.0, outbox_redeliver_after_s=1.0, sms_url=None)
    thread, other = second_worker(gw.settings, gw.redis_url)
    try:
        gw.webhook.delay_s = 2.5  # each delivery takes 2.5 times the reclaim idle time
        case_ids = []
        for i in range(4):
            person = applicant(sequence=101 + 2 * i)
            response = gw.submit({"profile": "guangxi", "channel": "online", "applicant": person,
                                  "matters": ["employee_medical_enrolment"],
                                  "sections": {"employee_medical_enrolment": MEDICAL_SECTION}, "delivery": "online"})
            assert response.status_code == 202, response.text
            case_ids.append(response.json()["id"])
        for case_id in case_ids:
            gw.wait_terminal(case_id)
        expected = {case_id: int(gw.redis().hget(keys.case(case_id), "seq")) for case_id in case_ids}
        gw.wait_events(lambda es: sum(1 for e in es if e["case_id"] in expected) >= sum(expected.values()),
                       timeout=90)
        received = [e for e in gw.webhook.events if e["case_id"] in expected]
        counts = Counter(e["event_id"] for e in received)
        assert max(counts.values()) == 1, [e for e in received if counts[e["event_id"]] > 1]
        for case_id, last in expected.items():
            assert sorted(e["seq"] for e in received if e["case_id"] == case_id) == list(range(1, last + 1))
        deadline = time.monotonic() + 15  # the last ack follows the webhook's answer, a moment after it recorded
        while stream_pending(gw.redis(), keys.outbox_stream, keys.OUTBOX_GROUP):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        other["loop"].call_soon_threadsafe(other["stop"].set)
        thread.join(30)
        gw.stop()
