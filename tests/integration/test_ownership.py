"""Session ownership (common.ownership) on a real Redis: gain, renew, lose to another owner, release at the end,
load spreading, and takeover of a SIGKILLed holder's sessions within the lease time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from common.bus import Bus
from common.leases import Leases
from common.ownership import OwnershipChange, SessionOwnership
from infra.redis_server import RedisServer

pytestmark = pytest.mark.integration
TTL_MS = 600


async def test_gain_renew_and_release_at_the_end(bus: Bus, sid: str) -> None:
    a = SessionOwnership(bus, "scorer", "a", TTL_MS)
    leases = Leases(bus, "scorer")
    a.started(sid)
    assert await a.maintain() == OwnershipChange(gained=(sid,))
    assert await leases.holder(sid) == "a" and a.owned == {sid}
    await asyncio.sleep(TTL_MS / 2000)
    assert await a.maintain() == OwnershipChange(renewed=(sid,))
    ttl = await bus.run("pttl", lambda r: r.pttl(leases.key(sid)))
    assert ttl > TTL_MS * 0.8  # renewed, not just left to run out
    a.ended(sid)
    assert await a.maintain() == OwnershipChange(lost=(sid,))
    assert await leases.holder(sid) is None and a.owned == set()


async def test_a_stalled_owner_loses_the_session_to_another(bus: Bus, sid: str) -> None:
    a = SessionOwnership(bus, "scorer", "a", TTL_MS)
    b = SessionOwnership(bus, "scorer", "b", TTL_MS)
    a.started(sid)
    b.started(sid)
    assert (await a.maintain()).gained == (sid,)
    assert await b.maintain() == OwnershipChange()  # held by a: b waits
    await asyncio.sleep(TTL_MS / 1000 + 0.1)  # a stalls past its ttl
    assert (await b.maintain()).gained == (sid,)
    assert await a.maintain() == OwnershipChange(lost=(sid,))  # a learns it, and must drop its state
    assert await Leases(bus, "scorer").holder(sid) == "b"
    assert a.owned == set() and b.owned == {sid}


async def test_the_less_loaded_worker_gets_a_new_session(bus: Bus, sid: str) -> None:
    busy = SessionOwnership(bus, "scorer", "busy", TTL_MS)
    idle = SessionOwnership(bus, "scorer", "idle", TTL_MS)
    for s in (sid + "1", sid + "2"):
        busy.started(s)
    assert (await busy.maintain()).gained == (sid + "1",)  # owning one, it lets the second wait a round
    assert (await busy.maintain()).gained == (sid + "2",)
    for w in (busy, idle):
        w.started(sid + "3")
    await busy.maintain()  # the busy one has seen it free once: it waits for 2 rounds
    assert (await idle.maintain()).gained == (sid + "3",)
    await busy.maintain()
    await busy.maintain()
    assert sid + "3" not in busy.owned


HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from common.bus import Bus
    from common.ownership import SessionOwnership
    async def main():
        bus = await Bus.connect(sys.argv[1])
        own = SessionOwnership(bus, "scorer", "doomed", int(sys.argv[3]))
        own.started(sys.argv[2])
        while True:
            change = await own.maintain()
            if change.gained:
                print("holding", flush=True)
            await asyncio.sleep(own.renew_every_s)
    asyncio.run(main())
    """
)


async def test_takeover_after_sigkill_within_the_lease_time(redis_server: RedisServer, bus: Bus, sid: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, redis_server.url, sid, str(TTL_MS)],
                            stdout=subprocess.PIPE, env=env, text=True)  # fmt: skip
    survivor = SessionOwnership(bus, "scorer", "survivor", TTL_MS)
    survivor.started(sid)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)  # type: ignore[union-attr]
        assert line.strip() == "holding"
        for _ in range(3):  # while the holder lives, the survivor never gets it
            assert sid not in (await survivor.maintain()).gained
            await asyncio.sleep(survivor.renew_every_s)
        os.kill(proc.pid, signal.SIGKILL)  # no release: the lease just stops being renewed
        killed = time.monotonic()
        while sid not in survivor.owned:
            await survivor.maintain()
            await asyncio.sleep(survivor.renew_every_s)
            assert time.monotonic() - killed < 5, "no takeover"
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
    assert took <= TTL_MS / 1000 + 2 * survivor.renew_every_s + 0.3, took  # within the ttl and one renew round
    assert await Leases(bus, "scorer").holder(sid) == "survivor"
