"""Bus round trip: publish -> consume -> ack, ours (common.bus) against raw redis-py, in one run.

Ours is the path live frames take: a session's stream written with XADD NOMKSTREAM, socket connect and read timeouts
inside the reconnect budget, the stats counters, the message encode and decode. "raw" is plain redis-py on the same
real Redis (started here) with neither timeouts nor counters; "raw+timeouts" is redis-py with the same socket
timeouts as ours, to show what the timeouts themselves cost. One message at a time; the paths take turns round trip
by round trip, in every order equally often, so the load of other processes on a shared machine falls on all alike.

Prints p50/p99 latency and messages/s for 1 KB and 150 KB payloads, and the overhead ratio (ours / raw, mean
round-trip time over both sizes; target <= 1.2). Means over a shared machine carry other processes' spikes, so the
ratio of medians is printed beside it, and ``overhead_ratio_cpu``: the CPU this process and Redis spend per round
trip (blocks of one path each), which the load of other processes hardly changes.

    python benchmarks/bus.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
from collections.abc import Awaitable

import redis.asyncio as aioredis

from common.bus import Bus
from common.messages import Frame
from common.streams import StreamSpec
from infra.redis_server import RedisServer

SPEC = StreamSpec("bench:{sid}", Frame, maxlen=1000, approximate=True, group="bench", retention="session")
PATHS = ("ours", "raw", "raw+timeouts")


async def ours_round_trip(bus: Bus, sid: str, payload: bytes, seq: int) -> float:
    msg = Frame(sid=sid, seq=seq, capture_ts=0.0, width=0, height=0, encoding="raw", data=payload)
    t0 = time.perf_counter()
    await bus.publish(SPEC, msg)
    got = await bus.consume(SPEC, [sid], "c", count=1, block_ms=1000)
    await bus.ack(got)
    return time.perf_counter() - t0


async def raw_round_trip(r: aioredis.Redis, key: str, payload: bytes, seq: int) -> float:
    t0 = time.perf_counter()
    await r.xadd(key, {b"seq": str(seq).encode(), b"data": payload}, maxlen=1000, approximate=True)
    reply = await r.xreadgroup("bench", "c", {key: ">"}, count=1, block=1000)
    entry_id, fields = reply[0][1][0]
    _ = int(fields[b"seq"]), fields[b"data"]
    await r.xack(key, "bench", entry_id)
    return time.perf_counter() - t0


def _server_cpu(server: RedisServer) -> float:
    """CPU seconds the Redis server has used (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{server.proc.pid if server.proc else 0}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(n: int) -> dict[str, float]:
    server = RedisServer().start()
    try:
        bus = await Bus.connect(server.url, name="bench")  # default Timeouts: connect 2 s, read 5 s
        raw = aioredis.Redis.from_url(server.url)
        raw_to = aioredis.Redis.from_url(server.url, socket_connect_timeout=2.0, socket_timeout=5.0)
        results: dict[str, float] = {}
        means: dict[str, list[float]] = {p: [] for p in PATHS}
        medians: dict[str, list[float]] = {p: [] for p in PATHS}
        cpus: dict[str, list[float]] = {"ours": [], "raw": []}
        for label, size in (("1kb", 1024), ("150kb", 150 * 1024)):
            payload = os.urandom(size)
            sid = f"b{label}"
            keys = {"raw": f"bench-raw:{{{label}}}", "raw+timeouts": f"bench-rawto:{{{label}}}"}
            for key in (SPEC.key(sid), *keys.values()):  # a session's stream exists from its start
                await raw.xgroup_create(key, "bench", id="$", mkstream=True)
            seq = [0]

            def step(
                path: str, sid: str = sid, payload: bytes = payload, keys: dict[str, str] = keys, seq: list[int] = seq
            ) -> Awaitable[float]:
                seq[0] += 1
                if path == "ours":
                    return ours_round_trip(bus, sid, payload, seq[0])
                return raw_round_trip(raw if path == "raw" else raw_to, keys[path], payload, seq[0])

            for path in PATHS * 10:  # warm-up
                await step(path)
            times: dict[str, list[float]] = {p: [] for p in PATHS}
            orders = list(itertools.permutations(PATHS))  # every path takes every place in turn equally often
            for i in range(n):
                for path in orders[i % len(orders)]:
                    times[path].append(await step(path))
            for path, ts in times.items():
                name = path.replace("+", "_")
                results[f"{name}_{label}_p50_ms"] = statistics.median(ts) * 1e3
                results[f"{name}_{label}_p99_ms"] = pct(ts, 0.99) * 1e3
                results[f"{name}_{label}_msgs_per_s"] = len(ts) / sum(ts)
                means[path].append(statistics.fmean(ts))
                medians[path].append(statistics.median(ts))
            cpu: dict[str, float] = {}
            for path in ("ours", "raw"):  # CPU of this process and of Redis per round trip, in blocks of one path
                c0, s0 = time.process_time(), _server_cpu(server)
                for _ in range(n):
                    await step(path)
                cpu[path] = (time.process_time() - c0 + _server_cpu(server) - s0) / n
                results[f"{path.replace('+', '_')}_{label}_cpu_us"] = cpu[path] * 1e6
                cpus[path].append(cpu[path])
            results[f"ratio_{label}"] = statistics.fmean(times["ours"]) / statistics.fmean(times["raw"])
            results[f"median_ratio_{label}"] = statistics.median(times["ours"]) / statistics.median(times["raw"])
        results["overhead_ratio"] = sum(means["ours"]) / sum(means["raw"])
        results["overhead_ratio_median"] = sum(medians["ours"]) / sum(medians["raw"])
        results["overhead_ratio_cpu"] = sum(cpus["ours"]) / sum(cpus["raw"])
        results["timeouts_ratio"] = sum(means["raw+timeouts"]) / sum(means["raw"])
        results["bus_refused"] = float(bus.stats.refused)
        await bus.close()
        await raw.aclose()
        await raw_to.aclose()
        return results
    finally:
        server.stop()


def print_table(res: dict[str, float]) -> None:
    print(f"{'payload':<8} {'path':<13} {'p50 ms':>8} {'p99 ms':>8} {'msgs/s':>9}")
    for label in ("1kb", "150kb"):
        for path in PATHS:
            name = path.replace("+", "_")
            print(
                f"{label:<8} {path:<13} {res[f'{name}_{label}_p50_ms']:8.3f} {res[f'{name}_{label}_p99_ms']:8.3f} "
                f"{res[f'{name}_{label}_msgs_per_s']:9.0f}"
            )
        print(f"{label:<8} ratio  {res[f'ratio_{label}']:8.3f} (means)  {res[f'median_ratio_{label}']:.3f} (medians)")
    print(f"timeouts alone: raw+timeouts / raw = {res['timeouts_ratio']:.3f}")
    for label in ("1kb", "150kb"):
        print(f"cpu per round trip (client + Redis) {label}: ours {res[f'ours_{label}_cpu_us']:.0f} us, "
              f"raw {res[f'raw_{label}_cpu_us']:.0f} us")  # fmt: skip
    print(f"overhead_ratio_cpu = {res['overhead_ratio_cpu']:.3f}  (CPU per round trip, ours / raw)")
    print(f"overhead_ratio = {res['overhead_ratio']:.3f}  (ours / raw, means; target <= 1.2); "
          f"medians {res['overhead_ratio_median']:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer round trips (well under a minute)")
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    args = parser.parse_args()
    res = asyncio.run(run(800 if args.quick else 5000))
    print_table(res)
    if args.json:
        args.json.write_text(json.dumps({k: round(v, 4) for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
