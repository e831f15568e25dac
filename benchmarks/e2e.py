"""End to end: phantom patients over WebRTC through the whole embedded stack to a logged-in dashboard websocket.

The stack is ``feqa demo``'s (:mod:`infra.demo`): Redis, ingest, tracker (MediaPipe, the real landmarker), scorer
(the demo models, trained through that landmarker on first use), dashboard, each its own process. Sessions are
started as the demo clinician through the dashboard; the phantoms smile again and again (the task with a demo
model; the demo patient marks each repetition as a task), and their senders (aiortc, 320x240 at 10 fps) run in this
process; this process also watches every session on the dashboard's live websocket.

Figures:
- frame-to-score latency: a score's (hop or task end) ``capture_ts`` (sender's capture time of the window's last
  frame, on the ingest's clock) to its arrival on the dashboard websocket here (same machine, same clock); scores the
  model ran on.
- per-stage breakdown, from the timestamps the contracts carry: capture -> window created by the tracker (ingest,
  bus, landmarking, windowing; ``windows:{sid}`` read while live; the tracker's own capture -> observed p50 from its
  health entry splits it), window -> score published (scorer), score ->
  dashboard websocket (dashboard). Beside them, the reference path: the transport alone (ingest's capture -> Redis
  p50 from its health entry) and the ratio of the whole path to it.
- max_realtime_sessions: the most concurrent sessions that stay real time: no growing lag (least-squares slope of
  latency over the run below 0.05 s/s), the tracker keeping >= 95 % of frames (not skipped as stale) and p99 under
  2 s. Full mode runs 1, 2, 4, 6, 8 sessions for 2 minutes each (stopping at the first failure); ``--quick`` 1 and 2
  sessions for 25 s (lag growth over 25 s is a weaker test: the table says which mode ran).
- CPU: the stack's processes (receiving side: Redis and the four services, from /proc) per session, in all and per
  service (``s<N>_cpu_pct_per_session_<service>``), and this process's (senders: phantom rendering and VP8
  encoding) separately. The machine's load average before and after is kept beside them (other work on a shared
  machine takes cores from the stack).
- Scale-out: the stack runs ``--trackers`` tracker processes (default 2 on a machine with 2 or more CPUs) and
  ``--scorers`` scorers, sharing the sessions by lease as in a deployment.

    python benchmarks/e2e.py [--quick] [--json PATH] [--trackers N] [--scorers N] [--levels 1,4] [--seconds S]

JSON keys: latency_p50_ms, latency_p99_ms (at the first level tried, named by latency_sessions),
max_realtime_sessions, trackers, scorers, load averages, and per-level figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow packages.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import json
import logging
import os
import socket
import tempfile
import time
from typing import Any

import numpy as np
import websockets
from websockets.typing import Origin

from common.bus import Bus
from common.health import latest_health
from common.streams import WINDOWS
from common.tasks import stop_tasks
from infra.demo import USERNAME, Demo, DemoOptions, prepare_models
from infra.demo_dashboard import ClinicianClient
from infra.demo_models import DemoTraining
from infra.demo_patient import run_patient
from infra.settings import StackSettings
from phantom.spec import PatientSpec

SLOPE_MAX = 0.05  # s of extra latency per s of run
KEEP_MIN = 0.95  # share of frames the tracker must observe
P99_MAX_MS = 2000.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _tracker_counters(bus: Bus) -> dict[str, float]:
    out: dict[str, float] = {}
    for (service, _), h in (await latest_health(bus)).items():
        if service == "tracker":
            for k in ("frames", "stale"):
                out[k] = out.get(k, 0.0) + h.counters.get(k, 0.0)
            # several trackers: the slowest (one that observed nothing reports 0; its recent frames are kept after
            # the sessions end, so this is read after a level too)
            lag = h.gauges.get("lag_p50_ms", float("nan"))
            if lag == lag:
                out["tracker_lag_p50_ms"] = max(out.get("tracker_lag_p50_ms", lag), lag)
        if service == "ingest":
            out["ingest_p50_ms"] = h.gauges.get("latency_p50_ms", float("nan"))
    return out


async def _level(demo: Demo, bus: Bus, n: int, seconds: float, round_no: int) -> dict[str, Any]:
    """``n`` concurrent sessions for ``seconds``; latencies and CPU."""
    assert demo.stack is not None
    by_service: dict[str, list[int]] = {}
    for c in demo.stack.children:
        by_service.setdefault(c.spec.name, []).append(c.proc.pid)
    if demo.stack.redis is not None and demo.stack.redis.proc is not None:
        by_service["redis"] = [demo.stack.redis.proc.pid]
    pids = [p for group in by_service.values() for p in group]
    stop = asyncio.Event()
    arrivals: list[tuple[float, dict[str, Any]]] = []
    windows: dict[tuple[str, int, str], float] = {}
    async with ClinicianClient(demo.dashboard_url) as dash:
        await dash.login(USERNAME, demo.password)
        joins = []
        for k in range(n):
            spec = PatientSpec(9000 + 100 * round_no + k, "pfed5", round(4.0 * (k + 0.5) / n, 1), reps=40,
                               tasks=("smile",), identity_seed=9000 + k, head_motion=0.0)  # fmt: skip
            pid = await dash.patient(f"Bench patient {k + 1}", f"BENCH-{k + 1}", "synthetic")
            created = await dash.start_session(pid, "pfed5", note=f"benchmark {n} sessions")
            joins.append((str(created["join_url"]).rsplit("/", 1)[-1], spec, int(created["id"])))
        ws_url = demo.dashboard_url.replace("http://", "ws://") + "/ws"
        before = await _tracker_counters(bus)
        cpu0, own0, t0 = _cpu_s(pids), time.process_time(), time.monotonic()
        service0 = {name: _cpu_s(group) for name, group in by_service.items()}
        async with websockets.connect(ws_url, origin=Origin(demo.dashboard_url),
                                      additional_headers={"Cookie": dash.cookie_header}) as ws:  # fmt: skip
            for _, _, sid in joins:
                await ws.send(json.dumps({"op": "watch", "session": sid}))

            async def receive() -> None:
                async for raw in ws:
                    now = time.time()
                    for item in json.loads(raw).get("items", []):
                        if item.get("t") == "score":
                            arrivals.append((now, item["d"]))

            async def read_windows() -> None:
                seen: dict[str, str] = {}
                while True:
                    for s in {d["sid"] for _, d in arrivals} | set(seen):
                        got = await bus.range(WINDOWS, s, start=seen.get(s, "-"))
                        for d in got:
                            w = d.message
                            windows[(w.sid, w.last_seq, "task" if w.reason == "task_end" else "window")] = w.created_ts
                            seen[s] = "(" + d.id
                    await asyncio.sleep(0.5)

            receiver = asyncio.create_task(receive())
            reader = asyncio.create_task(read_windows())
            patients = [asyncio.create_task(run_patient(demo.ingest_url, token, spec, stop=stop))
                        for token, spec, _ in joins]  # fmt: skip
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.gather(*patients, return_exceptions=True)
            wall = time.monotonic() - t0
            cpu, own = _cpu_s(pids) - cpu0, time.process_time() - own0
            per_service = {name: _cpu_s(group) - service0[name] for name, group in by_service.items()}
            await asyncio.sleep(2.0)  # the last scores
            await stop_tasks([receiver, reader], what="benchmark reader")
    after = await _tracker_counters(bus)
    frames = after.get("frames", 0.0) - before.get("frames", 0.0)
    stale = after.get("stale", 0.0) - before.get("stale", 0.0)
    scored = [(t, d) for t, d in arrivals if d["score"] is not None]
    lat = [(t - d["capture_ts"]) * 1000 for t, d in scored]
    slope = float(np.polyfit([t for t, _ in scored], [x / 1000 for x in lat], 1)[0]) if len(scored) > 3 else 0.0
    stage_window: list[float] = []
    stage_scorer: list[float] = []
    stage_dash: list[float] = []
    for t, d in scored:
        made = windows.get((d["sid"], d["last_seq"], d["kind"]))
        if made is not None:
            stage_window.append((made - d["capture_ts"]) * 1000)
            stage_scorer.append((d["ts"] - made) * 1000)
        stage_dash.append((t - d["ts"]) * 1000)
    keep = (frames - stale) / frames if frames else 0.0
    p99 = _pct(lat, 99)
    realtime = bool(scored) and slope < SLOPE_MAX and keep >= KEEP_MIN and p99 < P99_MAX_MS
    return {
        "sessions": n,
        "scores": len(scored),
        "latency_p50_ms": _pct(lat, 50),
        "latency_p99_ms": p99,
        "lag_slope_s_per_s": slope,
        "tracker_kept": keep,
        "capture_to_obs_p50_ms": after.get("tracker_lag_p50_ms", float("nan")),
        "capture_to_window_p50_ms": _pct(stage_window, 50),
        "window_to_score_p50_ms": _pct(stage_scorer, 50),
        "score_to_dashboard_p50_ms": _pct(stage_dash, 50),
        "transport_p50_ms": after.get("ingest_p50_ms", float("nan")),
        "receiving_cpu_pct_per_session": 100 * cpu / wall / n,
        "sender_cpu_pct_per_session": 100 * own / wall / n,
        **{f"cpu_pct_per_session_{name}": 100 * v / wall / n for name, v in sorted(per_service.items())},
        "realtime": realtime,
    }


async def main(quick: bool, trackers: int, scorers: int, levels_: tuple[int, ...] = (),
               seconds_: float = 0.0) -> dict[str, Any]:  # fmt: skip
    levels, seconds = ((1, 2), 25.0) if quick else ((1, 2, 4, 6, 8), 120.0)
    custom = bool(levels_ or seconds_)
    levels, seconds = levels_ or levels, seconds_ or seconds
    opts = DemoOptions(training=DemoTraining(tasks=("smile",)))
    models = prepare_models(opts, print)
    print(f"stack: {trackers} tracker and {scorers} scorer processes; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs before the run")  # fmt: skip
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="feqa-bench-e2e-") as tmp:
        os.environ["FEQA_LOG_LEVEL"] = os.environ.get("FEQA_LOG_LEVEL", "WARNING")
        settings = StackSettings(data_dir=Path(tmp), ingest_port=_port(), dashboard_port=_port(), trackers=trackers,
                                 scorers=scorers)  # fmt: skip
        demo = Demo(opts, settings)
        demo.start(models)
        assert demo.stack is not None
        assert demo.stack.redis is not None
        bus = await Bus.connect(demo.stack.redis.url, name="bench-e2e")
        rows: list[dict[str, Any]] = []
        try:
            head = ("sessions", "scores", "p50 ms", "p99 ms", "slope", "kept", "cap>obs", "cap>win", "win>score",
                    "score>dash", "transport", "e2e/transport", "recv cpu%/s", "send cpu%/s", "realtime")  # fmt: skip
            print(("{:>9} " * len(head)).format(*head))
            for i, n in enumerate(levels):
                row = await _level(demo, bus, n, seconds, i)
                rows.append(row)
                ratio = row["latency_p50_ms"] / row["transport_p50_ms"] if row["transport_p50_ms"] else float("nan")
                print(("{:>9} {:>9} {:>9.0f} {:>9.0f} {:>9.3f} {:>9.2f} {:>9.0f} {:>9.0f} {:>9.0f} {:>9.0f} {:>9.1f} "
                       "{:>9.1f} {:>9.1f} {:>9.1f} {:>9}").format(
                    n, row["scores"], row["latency_p50_ms"], row["latency_p99_ms"], row["lag_slope_s_per_s"],
                    row["tracker_kept"], row["capture_to_obs_p50_ms"], row["capture_to_window_p50_ms"],
                    row["window_to_score_p50_ms"], row["score_to_dashboard_p50_ms"], row["transport_p50_ms"], ratio,
                    row["receiving_cpu_pct_per_session"], row["sender_cpu_pct_per_session"], str(row["realtime"])),
                    flush=True)  # fmt: skip
                services = {k.removeprefix("cpu_pct_per_session_"): v for k, v in row.items()
                            if k.startswith("cpu_pct_per_session_")}  # fmt: skip
                print("          receiving cpu % per session by service: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in services.items()), flush=True)  # fmt: skip
                if not row["realtime"]:
                    break
        finally:
            await bus.close()
            demo.stop()
    best = max([r["sessions"] for r in rows if r["realtime"]], default=0)
    figures: dict[str, Any] = {
        "mode": ("quick" if quick else "full") + (" (custom levels or seconds)" if custom else ""),
        "seconds_per_level": seconds,
        "latency_p50_ms": rows[0]["latency_p50_ms"],
        "latency_p99_ms": rows[0]["latency_p99_ms"],
        "latency_sessions": rows[0]["sessions"],
        "max_realtime_sessions": best,
        "trackers": trackers,
        "scorers": scorers,
        "load_average_before": load0,
        "load_average_after": os.getloadavg()[0],
    }
    for r in rows:
        for k, v in r.items():
            if k != "sessions":
                figures[f"s{r['sessions']}_{k}"] = v
    at = f"{rows[0]['sessions']} session" + ("s" if rows[0]["sessions"] != 1 else "")
    print(f"latency_p50_ms ({at}) = {figures['latency_p50_ms']:.0f} (target <= 150)")
    print(f"latency_p99_ms ({at}) = {figures['latency_p99_ms']:.0f} (target <= 500)")
    print(f"max_realtime_sessions = {best} of {list(levels)} tried, {seconds:.0f} s each (target >= 4)")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 2 sessions for 25 s each (< 1 minute of load)")
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    default_trackers = 2 if (os.cpu_count() or 1) >= 2 else 1
    parser.add_argument("--trackers", type=int, default=default_trackers,
                        help=f"tracker processes sharing the sessions (default here: {default_trackers})")  # fmt: skip
    parser.add_argument("--scorers", type=int, default=1, help="scorer processes sharing the sessions")
    parser.add_argument("--levels", type=lambda v: tuple(int(x) for x in v.split(",")), default=(),
                        help="session counts to try, comma separated (default: the mode's; the first gives the "
                        "latency keys)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=0.0, help="seconds per level (default: the mode's)")
    args = parser.parse_args()
    if args.trackers < 1 or args.scorers < 1:
        parser.error("--trackers and --scorers need at least 1")
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main(args.quick, args.trackers, args.scorers, args.levels, args.seconds))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
