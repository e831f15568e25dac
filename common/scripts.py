"""Lua scripts on Redis, run by SHA through the bus's retries (loaded on first use, and again after a Redis restart
forgot them). The session-state and lease modules use these for their atomic read-modify-writes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from common.bus import Bus


async def run_script(bus: Bus, what: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run ``source`` with ``keys`` and ``args``; return its reply."""
    sha = hashlib.sha1(source.encode()).hexdigest()

    async def op(r: aioredis.Redis) -> Any:
        try:
            return await r.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            await r.script_load(source)
            return await r.evalsha(sha, len(keys), *keys, *args)

    return await bus.run(what, op)
