"""The console's look-up by a person's ID number: the cases under the number's MAC in the applicant index.

The number is normalised and MACed in memory and then dropped: it reaches neither Redis, nor the logs, nor a URL (the
form is a POST, so no access log carries it). Each look-up is audited: a log line with the operator and the MAC's
first characters, and a `console.id_lookup` event on the audit chain of every case it listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import structlog

from gateway.bootstrap import Services
from gateway.domain.status import TaskStatus, derive_case_status
from gateway.security.applicant_index import MAC_PREFIX_SHOWN
from gateway.store import keys

log = structlog.get_logger("gateway.console")
MAX_LISTED = 50  # the newest cases of one person; more is a question for the platform, not the console


@dataclass(frozen=True)
class ListedCase:
    id: str
    profile: str
    created_at: str
    status: str


async def cases_of_id_number(services: Services, operator_id: str, id_number: str) -> list[ListedCase]:
    """The newest cases the (normalised) number opened, newest first; the look-up audited."""
    id_mac = services.store.applicant_index.mac(id_number)
    redis = services.redis
    # Each case is indexed in its own shard: one pipeline reads the number's entries in every shard.
    async with redis.pipeline(transaction=False) as pipe:
        for shard in keys.all_shards():
            pipe.zrevrange(keys.applicant_cases(shard, id_mac), 0, MAX_LISTED - 1, withscores=True)
        found = [entry for entries in await pipe.execute() for entry in entries]
    case_ids = [case_id for case_id, _ in sorted(found, key=lambda entry: -entry[1])[:MAX_LISTED]]
    listed: list[ListedCase] = []
    for case_id in case_ids:
        profile, created_at, matters = await redis.hmget(keys.case(case_id), ["profile", "created_at", "matters"])
        if profile is None:  # an index entry outlived its case: nothing to show
            continue
        async with redis.pipeline(transaction=False) as pipe:
            for matter in json.loads(matters or "[]"):
                pipe.hget(keys.task(case_id, matter), "status")
            statuses = [TaskStatus(s) for s in await pipe.execute() if s]
        listed.append(ListedCase(case_id, profile, created_at or "", derive_case_status(statuses).value))
    prefix = id_mac[:MAC_PREFIX_SHOWN]
    for case in listed:
        await services.store.append_event(case.id, "console.id_lookup",
                                          {"actor": f"console:{operator_id}", "id_mac_prefix": prefix})
    log.info("console look-up by ID number", operator=operator_id, id_mac_prefix=prefix, found=len(listed))
    return listed
