"""Bus round trip: publish -> consume -> ack, ours (common.bus) against raw redis-py, in one run.

Both paths talk to the same real Redis (started here), one message at a time, interleaved in rounds so machine
noise hits both alike. Prints p50/p99 latency and messages/s for 1 KB and 150 KB payloads, and the overhead ratio
(ours / raw, mean round-trip time over both sizes; target <= 1.2).

    python benchmarks/bus.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import redis.asyncio as aioredis

from common.bus import Bus
from common.messages import Frame
from common.streams import StreamSpec
from infra.redis_server import RedisServer

SPEC = StreamSpec("bench:{sid}", Frame, maxlen=1000, approximate=True, group="bench")


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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(n: int, rounds: int) -> dict[str, float]:
    server = RedisServer().start()
    try:
        bus = await Bus.connect(server.url, name="bench")
        raw = aioredis.Redis.from_url(server.url)
        results: dict[str, float] = {}
        means: dict[str, list[float]] = {"ours": [], "raw": []}
        for label, size in (("1kb", 1024), ("150kb", 150 * 1024)):
            payload = os.urandom(size)
            sid = f"b{label}"
            raw_key = f"bench-raw:{{{label}}}"
            await bus.ensure_group(SPEC, sid, "$")
            await raw.xgroup_create(raw_key, "bench", id="$", mkstream=True)
            times: dict[str, list[float]] = {"ours": [], "raw": []}
            seq = 0
            for _ in range(10):  # warm-up
                await ours_round_trip(bus, sid, payload, seq)
                await raw_round_trip(raw, raw_key, payload, seq)
            for _ in range(rounds):
                for _ in range(n // rounds):
                    seq += 1
                    times["ours"].append(await ours_round_trip(bus, sid, payload, seq))
                for _ in range(n // rounds):
                    seq += 1
                    times["raw"].append(await raw_round_trip(raw, raw_key, payload, seq))
            for path, ts in times.items():
                results[f"{path}_{label}_p50_ms"] = statistics.median(ts) * 1e3
                results[f"{path}_{label}_p99_ms"] = pct(ts, 0.99) * 1e3
                results[f"{path}_{label}_msgs_per_s"] = len(ts) / sum(ts)
                means[path].append(statistics.fmean(ts))
            results[f"ratio_{label}"] = statistics.fmean(times["ours"]) / statistics.fmean(times["raw"])
        results["overhead_ratio"] = sum(means["ours"]) / sum(means["raw"])
        await bus.close()
        await raw.aclose()
        return results
    finally:
        server.stop()


def print_table(res: dict[str, float]) -> None:
    print(f"{'payload':<8} {'path':<6} {'p50 ms':>8} {'p99 ms':>8} {'msgs/s':>9}")
    for label in ("1kb", "150kb"):
        for path in ("ours", "raw"):
            print(
                f"{label:<8} {path:<6} {res[f'{path}_{label}_p50_ms']:8.3f} {res[f'{path}_{label}_p99_ms']:8.3f} "
                f"{res[f'{path}_{label}_msgs_per_s']:9.0f}"
            )
        print(f"{label:<8} ratio  {res[f'ratio_{label}']:8.3f}  (ours / raw, mean round trip)")
    print(f"overhead_ratio = {res['overhead_ratio']:.3f}  (target <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer round trips (well under a minute)")
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    args = parser.parse_args()
    n, rounds = (1000, 10) if args.quick else (6000, 20)
    res = asyncio.run(run(n, rounds))
    print_table(res)
    if args.json:
        args.json.write_text(json.dumps({k: round(v, 4) for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
