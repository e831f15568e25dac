"""How far a consumer group is behind on a stream (XPENDING, XINFO): for producers that must not outrun a
consumer (recorded-video ingest in fast mode, the drain before a session's end) and for health gauges."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from common.bus import Bus
from common.entries import text
from common.streams import StreamSpec


async def pending_count(bus: Bus, spec: StreamSpec[Any], sid: str | None = None) -> int:
    """How many entries of the spec's group are delivered but not acked."""
    key, group = spec.key(sid), spec.consumer_group
    info = await bus.run(f"pending {key}", lambda r: r.xpending(key, group))
    return int(info["pending"]) if isinstance(info, dict) else int(info[0])


async def group_backlog(bus: Bus, spec: StreamSpec[Any], sid: str | None = None, *, limit: int = 10_000) -> int | None:
    """Entries the spec's group has not acked (pending + not yet delivered, counted up to ``limit``).

    ``None`` when nobody reads it (no stream, no group, or a group no consumer has read from yet), so there is no
    backlog to wait for.
    """
    key, group = spec.key(sid), spec.consumer_group

    async def op(r: aioredis.Redis) -> int | None:
        try:
            groups = await r.xinfo_groups(key)
        except ResponseError:
            return None
        for info in groups:
            row = {text(k): v for k, v in info.items()}
            if text(row["name"]) == group and int(row["consumers"]):
                after = await r.xrange(key, min="(" + text(row["last-delivered-id"]), count=limit)
                return int(row["pending"]) + len(after or [])
        return None

    return await bus.run(f"backlog {key}", op)
