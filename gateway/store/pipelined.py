"""Commands and Lua scripts sent together in one round trip.

redis-py's own pipeline asks Redis `SCRIPT EXISTS` for its scripts before every execute: a second round trip on the
hottest path. Here a script is sent by its SHA1 alone, and only when Redis answers NOSCRIPT (it restarted, failed
over or was flushed) is it loaded and the rest sent again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from gateway.store.connection import StrRedis


@dataclass(frozen=True)
class Script:
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())

    def call(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


async def execute(redis: StrRedis, commands: Sequence[tuple[Any, ...]], scripts: Sequence[Script]) -> list[Any]:
    """The replies of `commands`, sent in one round trip on one connection (so a WAIT among them counts the writes
    before it). Commands after a script must be safe to send twice: after NOSCRIPT they are sent again with it."""
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    missing = next((i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)), None)
    if missing is not None and scripts:
        for script in scripts:
            await redis.script_load(script.text)
        return replies[:missing] + await execute(redis, commands[missing:], ())  # NOSCRIPT again: raised
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
