"""Redis key names. Every key of one case carries the case id as a hash tag, so a case lives on one Cluster slot."""

from __future__ import annotations

PREFIX = "gw"
TASK_STREAM = f"{PREFIX}:tasks"
TASK_GROUP = "workers"
OUTBOX_STREAM = f"{PREFIX}:outbox"
OUTBOX_GROUP = "dispatchers"
OUTBOX_DEAD = f"{PREFIX}:outbox:dead"  # list: events no receiver accepted within the attempt bound
DELAYED = f"{PREFIX}:delayed"  # sorted set: stream message JSON scored by the time it becomes due
DLQ = f"{PREFIX}:dlq"  # sorted set: "case_id|matter" scored by the time it failed
WORKERS = f"{PREFIX}:workers:"  # + consumer name: a worker's heartbeat (JSON), expiring when it stops
OPEN_CASES = f"{PREFIX}:cases:open"  # sorted set: case id scored by its deadline (unix seconds)
RETENTION_SWEEP = f"{PREFIX}:retention:sweep"  # held (expiring) by the worker that swept last: one sweep per interval
REPLICATION_FENCE = f"{PREFIX}:replication:fence"  # counter written only so WAIT can vouch for earlier writes


def case(case_id: str) -> str:
    return f"{PREFIX}:{{{case_id}}}:case"


def task(case_id: str, matter: str) -> str:
    return f"{PREFIX}:{{{case_id}}}:task:{matter}"


def audit(case_id: str) -> str:
    return f"{PREFIX}:{{{case_id}}}:audit"


def idempotency(app_id: str, key: str) -> str:
    return f"{PREFIX}:idem:{app_id}:{key}"


def nonce(app_id: str, value: str) -> str:
    return f"{PREFIX}:nonce:{app_id}:{value}"


def assertion_used(issuer: str, jti: str) -> str:
    """A spent applicant assertion, kept until it expires: each one creates at most one case."""
    return f"{PREFIX}:assertion:{issuer}:{jti}"


def rate_bucket(app_id: str) -> str:
    return f"{PREFIX}:rate:{app_id}"  # hash: a caller's token bucket, shared by every API process


def caller_open_cases(app_id: str) -> str:
    return f"{PREFIX}:caller-open:{app_id}"  # sorted set: a caller's open case ids, scored by when they opened


def applicant_cases(id_mac: str) -> str:
    """Sorted set: the case ids one applicant's ID number opened, scored by creation time (unix seconds); keyed by
    the number's HMAC (gateway/security/applicant_index.py). No expiry: case data does not expire either."""
    return f"{PREFIX}:applicant-cases:{id_mac}"


def request_index(request_id: str) -> str:
    return f"{PREFIX}:reqid:{request_id}"


def breaker(adapter: str) -> str:
    return f"{PREFIX}:breaker:{adapter}"


def breaker_probe(adapter: str) -> str:
    """Held by the one caller that probes a half-open breaker."""
    return f"{PREFIX}:breaker:{adapter}:probe"


def certificate_lock(case_id: str) -> str:
    return f"{PREFIX}:{{{case_id}}}:certificate-lock"


def outbox_retry(event_id: str) -> str:
    return f"{PREFIX}:outbox:retry:{event_id}"


def outbox_done(event_id: str, channel: str) -> str:
    return f"{PREFIX}:outbox:done:{event_id}:{channel}"


def console_sign_in_failures(operator_id: str) -> str:
    return f"{PREFIX}:console:sign-in-failures:{operator_id}"  # counter, expiring: failed sign-ins of one id


def step_failures(message_id: str) -> str:
    return f"{PREFIX}:step-failures:{message_id}"


def h5_link(token_mac: str) -> str:
    """An H5 link's target, keyed by the HMAC of its token (the token itself is only in the SMS)."""
    return f"{PREFIX}:h5:{token_mac}"


def task_links(case_id: str, matter: str) -> str:
    return f"{PREFIX}:{{{case_id}}}:links:{matter}"


def callback_seen(adapter: str, callback_id: str) -> str:
    return f"{PREFIX}:callback-seen:{adapter}:{callback_id}"


def worker_heartbeat(consumer: str) -> str:
    return WORKERS + consumer
