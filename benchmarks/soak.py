"""Soak: phantom sessions (default 4 at a time) streaming through the embedded stack, round after round, for a while.

The stack is ``feqa demo``'s (:mod:`infra.demo`: Redis, ingest, tracker with the real MediaPipe landmarker, scorer,
dashboard, each its own process); the senders (aiortc) run in this process. Each round starts ``--sessions`` phantom
patients as the demo clinician, each smiling a few times (task marks as the demo patient sends them), and waits
until all have hung up; rounds repeat until the time is up. No model is served: windows are scored for kinematics
and withheld (``no_model``), task scores are stored withheld; the load on every service is the live path's.

Figures, each the end of the run beside its start (the reference is the same stack after warm-up, the first quarter
of the run):
- memory: every service's resident set, taken at the same point of every round (its sessions just ended), so a
  session's own buffers do not pass for growth; ``rss_growth_pct`` is the largest rise of one process's median
  over the last two rounds against its median over the two rounds after warm-up (the first quarter of the rounds,
  at least one); ``rss_<process>_peak_mb`` is the largest of the samples taken every 2 s.
- Redis: within one round its data set swings from ~3 MiB to ~100 MiB (the sessions' frames and crops, deleted at
  their end) and its allocator (jemalloc) hands the freed pages back to the system on its own schedule (dirty page
  decay), so one instant's RSS lands anywhere between the round's high-water mark and the purged level (seen: 67
  to 119 MiB within one round, allocator_rss_ratio up to 24): a round-end sample moved by > 10 % with nothing
  growing. Redis's RSS is therefore compared by its high-water mark (the largest 2 s sample) in the first and the
  second half of the run (``rss_redis_*``), a bound on what the allocator keeps, and so is what Redis holds
  (``used_memory``: ``redis_used_peak_first_mb``, ``redis_used_peak_last_mb``, ``redis_used_growth_pct``). A
  stream without MAXLEN or a key without expiry shows as ``redis_used_left_mb``: ``used_memory`` once the
  sessions' retention has passed minus a fresh stack's (the stack's own streams are capped: health ~0.6 KiB an
  entry, 2,000 at most, ~1.2 MiB; announcements ~0.17 KiB, about 6 a round; a leaked frames stream is ~3 MiB).
- lag: score latency (a window score's publish time minus the capture time of the window's last frame);
  ``latency_ratio`` is the median over the last third of the run after warm-up against the first third, and
  ``latency_slope_ms_per_min`` the least-squares trend.
- crashes: ``services_exited`` counts the stack's processes that exited during the run (should be 0).
- leftovers: once the sessions have ended and their retention (20 s here; observations 0) has passed, the keys in
  Redis that a fresh stack (its services started and publishing health, plus the ``feqa:sessions`` announcements
  stream its first session makes) did not have (``leftover_keys``: should be 0). Join links (``feqa:join:<digest>``)
  are revoked at their session's end (ingest.tokens), so one left is a leftover too; they are also counted apart
  (``join_links_left``, ``join_link_max_ttl_s``).

    python benchmarks/soak.py [--quick | --long] [--sessions N] [--json PATH]

``--quick`` runs 1 minute, ``--long`` 30 minutes, the default 5 minutes. tests/integration/test_soak.py runs the
quick version and checks: RSS growth <= 10 %, latency ratio <= 1.5 (or the median rising < 250 ms), no leftover key.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow packages.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
from tqdm import tqdm

from common.bus import Bus
from common.streams import HEALTH, SCORES
from common.tasks import stop_tasks
from infra.demo import USERNAME, Demo, DemoOptions
from infra.demo_dashboard import ClinicianClient
from infra.demo_patient import run_patient
from infra.redis_server import free_port
from infra.settings import StackSettings
from phantom.spec import PatientSpec

RETENTION_S = 20
SOAK_ENV = {"FEQA_SESSION_RETENTION_S": str(RETENTION_S), "FEQA_OBS_RETENTION_S": "0"}
STACK_KEYS = {"feqa:sessions"}  # made by the first session's announcement; bounded (common.streams)
JOIN_PREFIX = "feqa:join:"  # join links are revoked when their session ends (ingest.tokens)
SERVICES = ("ingest", "tracker", "scorer", "dashboard")
REDIS_USED = "redis_used"  # a Memory sample's key for Redis's used_memory


async def _keys(bus: Bus) -> set[str]:
    raw = await bus.run("keys", lambda r: r.keys("*"))
    return {k.decode() if isinstance(k, bytes) else str(k) for k in raw}


async def _ttl_s(bus: Bus, key: str) -> float:
    """Seconds until ``key`` expires (<= 0: it never does, or it is gone)."""
    return float(await bus.run(f"pttl {key}", lambda r: r.pttl(key))) / 1000


async def _until(check: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"soak: not within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(0.5)


def high_water(samples: list[tuple[float, dict[str, float]]], name: str, t0: float, end: float) -> tuple[float, float]:
    """The largest sample of ``name`` in the first and in the second half of ``t0``..``end``: a high-water mark,
    which a round's timing moves far less than it moves one instant's sample."""
    mid = (t0 + end) / 2
    early = [s[name] for t, s in samples if t0 <= t < mid]
    late = [s[name] for t, s in samples if mid <= t <= end]
    return max(early, default=float("nan")), max(late, default=float("nan"))


class Memory:
    """RSS of the stack's processes and Redis's ``used_memory``, sampled every ``every_s`` while running."""

    def __init__(self, procs: dict[str, int], bus: Bus, every_s: float = 2.0) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}
        self.bus = bus
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.rounds: list[dict[str, float]] = []

    async def run(self) -> None:
        while True:
            sample = self.snapshot() | {REDIS_USED: await self.redis_used()}
            self.samples.append((time.monotonic(), sample))
            await asyncio.sleep(self.every_s)

    def snapshot(self) -> dict[str, float]:
        return {n: p.memory_info().rss / 2**20 for n, p in self.procs.items()}

    async def redis_used(self) -> float:
        """What Redis holds (``used_memory``, MiB): the data set and buffers, not the pages its allocator keeps."""
        info = await self.bus.run("info memory", lambda r: r.info("memory"))
        return float(info["used_memory"]) / 2**20

    def mark_round(self) -> None:
        """RSS at the end of a round (the same point of every round)."""
        self.rounds.append(self.snapshot())

    def growth(self) -> dict[str, tuple[float, float, float]]:
        """Per process: median RSS (MiB) of the two rounds after warm-up, of the last two rounds, and the peak."""
        warm = max(1, len(self.rounds) // 4)
        first, last = self.rounds[warm : warm + 2], self.rounds[-2:]
        out = {}
        if len(self.rounds) > warm:
            for name in self.procs:
                peak = max((s[name] for _, s in self.samples), default=float("nan"))
                out[name] = (statistics.median(r[name] for r in first), statistics.median(r[name] for r in last), peak)
        return out


async def soak(
    duration_s: float, sessions: int, data_dir: Path, progress: bool = True, retention_s: int = RETENTION_S
) -> dict[str, Any]:
    """Run the soak; return its figures (a flat dict). ``retention_s``: the sessions' retention (the wait for the
    leftover check at the end is about that long)."""
    settings = StackSettings(data_dir=data_dir / "feqa", ingest_port=free_port(), dashboard_port=free_port())
    demo = Demo(DemoOptions(models_root=data_dir / "models"), settings)
    saved = dict(os.environ)
    os.environ.update(SOAK_ENV, FEQA_SESSION_RETENTION_S=str(retention_s))
    try:
        demo.start(data_dir / "models" / "demo")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    stack = demo.stack
    assert stack is not None
    assert stack.redis is not None
    assert stack.redis.proc is not None
    bus = await Bus.connect(stack.redis.url, name="soak")
    procs = {c.spec.name: c.proc.pid for c in stack.children} | {"redis": stack.redis.proc.pid}
    memory = Memory(procs, bus)
    sampler = asyncio.create_task(memory.run())
    latencies: list[tuple[float, float]] = []  # (monotonic time of the score, latency ms)
    sids: list[str] = []
    try:

        async def all_healthy() -> bool:
            return {d.message.service for d in await bus.range(HEALTH)} >= set(SERVICES)

        await _until(all_healthy, 60, "every service publishes health")
        fresh = await _keys(bus)
        used_fresh = await memory.redis_used()
        t0 = time.monotonic()
        bar = tqdm(total=round(duration_s), unit="s", desc="soak", disable=not progress)
        async with ClinicianClient(demo.dashboard_url) as dash:
            await dash.login(USERNAME, demo.password)
            round_no = 0
            while time.monotonic() - t0 < duration_s:
                joins = []
                for k in range(sessions):
                    pid = await dash.patient(f"Soak patient {k + 1}", f"SOAK-{k + 1}", "synthetic")
                    created = await dash.start_session(pid, "pfed5", note=f"soak round {round_no + 1}")
                    joins.append((str(created["join_url"]).rsplit("/", 1)[-1], str(created["sid"])))
                specs = [PatientSpec(7000 + 100 * round_no + k, "pfed5", round(4.0 * (k + 0.5) / sessions, 1), reps=2,
                                     tasks=("smile",), identity_seed=7000 + k, head_motion=0.0)
                         for k in range(sessions)]  # fmt: skip
                await asyncio.gather(*(run_patient(demo.ingest_url, tok, spec)
                                       for (tok, _), spec in zip(joins, specs, strict=True)))  # fmt: skip
                now_wall, now_mono = time.time(), time.monotonic()
                for _, sid in joins:  # read before their retention runs out
                    for d in await bus.range(SCORES, sid):
                        s = d.message
                        if s.kind == "window" and s.capture_ts > 0:
                            latencies.append((now_mono - (now_wall - s.ts), (s.ts - s.capture_ts) * 1000))
                sids.extend(sid for _, sid in joins)
                memory.mark_round()
                round_no += 1
                bar.update(min(round(time.monotonic() - t0), round(duration_s)) - bar.n)
            bar.close()
        end = time.monotonic()
        leftover: set[str] = set()
        joins_ttl: list[float] = []

        async def clean() -> bool:
            nonlocal leftover, joins_ttl
            extra = await _keys(bus) - fresh - STACK_KEYS
            joins = [k for k in extra if k.startswith(JOIN_PREFIX)]
            ttls = [await _ttl_s(bus, k) for k in joins]
            joins_ttl = [t for t in ttls if t > 0]
            leftover = set(extra)  # a join link left after its session's end is one too
            return not leftover

        with contextlib.suppress(RuntimeError):  # what is left is reported (leftover_keys)
            await _until(clean, retention_s + 40, "only a fresh stack's keys left in Redis")
        used_after = await memory.redis_used()
        exited = [f"{c.spec.name} ({c.proc.returncode})" for c in stack.children if c.proc.poll() is not None]
    finally:
        await stop_tasks([sampler], what="memory sampler")
        await bus.close()
        demo.stop()
    out = figures(duration_s, sessions, round_no, t0, end, memory, latencies, leftover, len(sids))
    out.update(join_links_left=len(joins_ttl), join_link_max_ttl_s=round(max(joins_ttl, default=0.0)),
               services_exited=len(exited), services_exited_names=",".join(exited),
               redis_used_fresh_mb=round(used_fresh, 2), redis_used_after_mb=round(used_after, 2),
               redis_used_left_mb=round(used_after - used_fresh, 2))  # fmt: skip
    return out


def figures(duration_s: float, sessions: int, rounds: int, t0: float, end: float, memory: Memory,
            latencies: list[tuple[float, float]], leftover: set[str], n_sessions: int) -> dict[str, Any]:  # fmt: skip
    warm = t0 + (end - t0) / 4
    out: dict[str, Any] = {"duration_s": round(end - t0, 1), "sessions_at_once": sessions, "rounds": rounds,
                           "sessions_run": n_sessions, "leftover_keys": len(leftover),
                           "leftover_key_names": ",".join(sorted(leftover)[:20])}  # fmt: skip
    growth = memory.growth()
    if "redis" in growth:  # Redis's RSS by its high-water marks (module docstring: why not at the round's end)
        growth["redis"] = (*high_water(memory.samples, "redis", t0, end), growth["redis"][2])
    for name, (first, last, peak) in growth.items():
        out[f"rss_{name}_peak_mb"] = round(peak, 1)
        out[f"rss_{name}_start_mb"] = round(first, 1)
        out[f"rss_{name}_end_mb"] = round(last, 1)
        out[f"rss_{name}_growth_pct"] = round(100 * (last / first - 1), 2)
    used_first, used_last = high_water(memory.samples, REDIS_USED, t0, end)
    out.update(redis_used_peak_first_mb=round(used_first, 1), redis_used_peak_last_mb=round(used_last, 1),
               redis_used_growth_pct=round(100 * (used_last / used_first - 1), 2))  # fmt: skip
    out["rss_growth_pct"] = max((out[f"rss_{n}_growth_pct"] for n in growth), default=float("nan"))
    after = sorted((t, ms) for t, ms in latencies if t >= warm)
    third = len(after) // 3
    if third:
        first_p50 = statistics.median(ms for _, ms in after[:third])
        last_p50 = statistics.median(ms for _, ms in after[-third:])
        xs = np.array([t for t, _ in after]) / 60.0
        slope = float(np.polyfit(xs - xs[0], np.array([ms for _, ms in after]), 1)[0])
    else:
        first_p50 = last_p50 = slope = float("nan")
    out.update(scores=len(latencies), latency_p50_first_ms=round(first_p50, 1), latency_p50_last_ms=round(last_p50, 1),
               latency_ratio=round(last_p50 / first_p50, 3) if first_p50 else float("nan"),
               latency_slope_ms_per_min=round(slope, 1))  # fmt: skip
    return out


def table(f: dict[str, Any]) -> str:
    lines = [f"soak: {f['sessions_run']} sessions ({f['sessions_at_once']} at a time, {f['rounds']} rounds) in "
             f"{f['duration_s']:.0f} s; {f['scores']} window scores",
             f"{'process':<10} {'RSS after warm-up MiB':>22} {'RSS at the end MiB':>19} {'growth %':>9} "
             f"{'peak MiB':>9}"]  # fmt: skip
    for name in (*SERVICES, "redis"):
        if f"rss_{name}_start_mb" in f:
            lines.append(f"{name:<10} {f[f'rss_{name}_start_mb']:>22.1f} {f[f'rss_{name}_end_mb']:>19.1f} "
                         f"{f[f'rss_{name}_growth_pct']:>9.2f} {f[f'rss_{name}_peak_mb']:>9.1f}")  # fmt: skip
    lines.append(
        f"redis used_memory: high-water {f['redis_used_peak_first_mb']:.1f} -> "
        f"{f['redis_used_peak_last_mb']:.1f} MiB ({f['redis_used_growth_pct']:+.2f} %); fresh stack "
        f"{f['redis_used_fresh_mb']:.2f} MiB, after the sessions' retention {f['redis_used_after_mb']:.2f} MiB"
    )
    lines.append(f"score latency p50: first third {f['latency_p50_first_ms']:.0f} ms, last third "
                 f"{f['latency_p50_last_ms']:.0f} ms (ratio {f['latency_ratio']:.2f}; trend "
                 f"{f['latency_slope_ms_per_min']:+.1f} ms/min)")  # fmt: skip
    lines.append(f"services that exited during the run: {f['services_exited']} {f['services_exited_names']}")
    lines.append(f"keys left in Redis beyond a fresh stack's: {f['leftover_keys']} {f['leftover_key_names']}")
    lines.append(f"join links still there (revoked at their end): {f['join_links_left']}, longest TTL "
                 f"{f['join_link_max_ttl_s']} s")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1 minute")
    mode.add_argument("--long", action="store_true", help="30 minutes")
    parser.add_argument("--sessions", type=int, default=4, help="phantom sessions at a time (default 4)")
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seconds = 60.0 if args.quick else 1800.0 if args.long else 300.0
    with tempfile.TemporaryDirectory(prefix="feqa-soak-") as tmp:
        result = asyncio.run(soak(seconds, args.sessions, Path(tmp)))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
