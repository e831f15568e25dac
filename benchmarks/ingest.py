"""Ingest cost and latency: N concurrent 640x480@25 phantom peers over loopback WebRTC into a real ingest server.

The ingest server runs as its own process (``python -m ingest``) so its CPU (decode + shape + publish) is measured
alone from /proc. Two server paths run side by side in one run: ours (i420 frames: swscale does the resize and the
colour conversion in one pass) and the plain reference path (rgb24 frames, as aiortc's server example converts
every frame to a packed RGB array). Glass-to-Redis latency: the time the phantom track hands frame ``i`` to the
sender, to the Redis entry id time of the frame whose embedded index code reads ``i``.

Every limit of the edge is on, as deployed: the service key, the Host check, the body caps, security headers and
the rate limiters on each call (session creation and joins allow 120 a minute here, so one benchmark client may
open 16 sessions at once). The fuzz round then throws the generated bad input of tests/fuzz_kit.py at an ingest on
loopback (no 5xx allowed) and reports how many cases a second it answers.

    python benchmarks/ingest.py [--quick] [--json PATH]

JSON keys: cpu_per_stream_pct (ours, 4 peers), latency_p99_ms (ours, 1 peer), fuzz_cases_per_s, and per-run figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the ingest package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import time
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from av import VideoFrame

from common.bus import Bus
from common.framecodec import decode_frame
from common.messages import Frame, SessionInfo
from common.session_store import SessionStore
from common.streams import FRAMES, StreamSpec
from infra.redis_server import RedisServer
from ingest.ice import offered_host_addresses, rtc_configuration
from phantom.face import Phantom
from phantom.index_code import read_index
from phantom.spec import PatientSpec
from phantom.track import PhantomTrack
from tests.conftest import SERVICE_HEADERS, SERVICE_KEY
from tests.fuzz_kit import Fuzzer, client, fuzz, fuzz_settings, ingest_in_thread, offer_template

FPS = 25


class TimedTrack(VideoStreamTrack):
    """Passes the phantom's frames through and notes when each phantom index left for the encoder."""

    kind = "video"

    def __init__(self, inner: PhantomTrack, sent: dict[int, float]) -> None:
        super().__init__()
        self._inner = inner
        self._sent = sent

    async def recv(self) -> VideoFrame:
        frame = await self._inner.recv()
        n = round(float(frame.pts or 0) * FPS / 90_000) % self._inner.phantom.n_frames
        self._sent[n] = time.time()
        return frame


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _start_server(redis_url: str, encoding: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {
        **os.environ,
        "FEQA_REDIS_URL": redis_url,
        "FEQA_LOG_LEVEL": "WARNING",
        "FEQA_INGEST_PORT": str(port),
        "FEQA_INGEST_ENCODING": encoding,
        "FEQA_INGEST_ICE_HOST_ADDRESSES": '["127.0.0.1"]',
        "FEQA_INGEST_IDLE_TIMEOUT_S": "30",
        "FEQA_INGEST_API_KEY": SERVICE_KEY,
        "FEQA_INGEST_RATE_SESSIONS_PER_MIN": "120",
        "FEQA_INGEST_RATE_JOINS_PER_MIN": "120",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(url + "/healthz")).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    proc.terminate()
    raise RuntimeError("ingest server did not start")


async def _peer(http: httpx.AsyncClient, phantom: Phantom, sent: dict[int, float]) -> tuple[str, RTCPeerConnection]:
    created = (await http.post("/api/sessions", json={"patient_id": "bench", "protocol": "pfed5"})).json()
    joined = (await http.post(f"/api/join/{created['token']}", json={"consent": True})).json()
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(TimedTrack(PhantomTrack(phantom), sent), direction="sendonly")
    with offered_host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    res = await http.post(
        f"/api/sessions/{joined['sid']}/offer",
        json={"sdp": pc.localDescription.sdp, "type": "offer"},
        headers={"X-Session-Key": joined["key"]},
    )
    res.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(**res.json()))
    return str(joined["sid"]), pc


async def _latencies(bus: Bus, sids: list[str], sent: list[dict[int, float]], stop: float, out: list[float]) -> None:
    cursors: dict[tuple[StreamSpec[Any], str | None], str] = {(FRAMES, s): "$" for s in sids}
    index_of = {s: i for i, s in enumerate(sids)}
    while time.time() < stop:
        for d in await bus.tail(cursors, count=64, block_ms=200):
            cursors[(FRAMES, d.sid)] = d.id
            msg = d.message
            if not isinstance(msg, Frame):
                continue
            rgb = await asyncio.to_thread(decode_frame, msg.data, msg.width, msg.height, msg.encoding)
            n = read_index(rgb)
            t_sent = sent[index_of[d.sid or ""]].get(n) if n is not None else None
            if t_sent is not None:
                out.append((int(d.id.split("-")[0]) / 1000 - t_sent) * 1000)


async def _ended(store: SessionStore, sid: str) -> SessionInfo:
    """The session's hash once it has ended (its counters are final then)."""
    deadline = time.monotonic() + 10
    while not (info := await store.require(sid)).ended:
        if time.monotonic() > deadline:
            raise RuntimeError(f"session {sid} did not end within 10 s of its stop")
        await asyncio.sleep(0.1)
    return info


async def run_case(redis: RedisServer, encoding: str, peers: int, warm_s: float, measure_s: float) -> dict[str, float]:
    proc, url = await _start_server(redis.url, encoding)
    phantom = Phantom(PatientSpec(seed=7, protocol="pfed5", severity=1.0), 640, 480, FPS)
    bus = await Bus.connect(redis.url, name="bench-ingest")
    pcs: list[RTCPeerConnection] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20, headers=SERVICE_HEADERS) as http:
            sent = [dict[int, float]() for _ in range(peers)]
            sids = []
            for i in range(peers):
                sid, pc = await _peer(http, phantom, sent[i])
                sids.append(sid)
                pcs.append(pc)
            await asyncio.sleep(warm_s)
            lat: list[float] = []
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            await _latencies(bus, sids, sent, time.time() + measure_s, lat)
            cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            for sid in sids:  # a clinician ends each session, so its stats are written now, not after the resume grace
                (await http.post(f"/api/sessions/{sid}/stop", json={})).raise_for_status()
            for pc in pcs:
                await pc.close()
            infos = [await _ended(SessionStore(bus), s) for s in sids]
    finally:
        proc.terminate()
        proc.wait(10)
        await bus.close()
    frames = sum(i.stats.get("published", 0) for i in infos)
    drops = sum(i.stats.get("dropped_busy", 0) for i in infos)
    if not frames or not lat:  # a figure about frames nobody published would measure nothing
        raise RuntimeError(f"{encoding} x{peers}: {frames} frames published, {len(lat)} latencies measured")
    lat.sort()
    return {
        "cpu_pct": cpu * 100,
        "cpu_per_stream_pct": cpu * 100 / peers,
        "latency_p50_ms": statistics.median(lat) if lat else float("nan"),
        "latency_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "frames": frames,
        "dropped_busy": drops,
    }


def fuzz_round(redis: RedisServer, cases: int) -> dict[str, float]:
    """The fuzz test's cases against an ingest on loopback (in a thread, real sockets); raises on any 5xx."""
    template = offer_template()
    with ingest_in_thread(fuzz_settings(redis.url, _port())) as (url, _app), client(url) as http:
        fuzzer = Fuzzer(http, template)
        t0 = time.monotonic()
        fuzz(fuzzer, cases)
        took = time.monotonic() - t0
    four = sum(n for code, n in fuzzer.statuses.items() if 400 <= code < 500)
    return {"fuzz_cases": fuzzer.count, "fuzz_seconds": took, "fuzz_cases_per_s": fuzzer.count / took,
            "fuzz_4xx": four}  # fmt: skip


async def main(quick: bool) -> dict[str, Any]:
    counts = (1, 4) if quick else (1, 4, 16)
    warm, measure = (2.0, 4.0) if quick else (3.0, 10.0)
    results: dict[str, Any] = {}
    with RedisServer() as redis:
        head = ("peers", "path", "cpu %", "cpu/stream %", "lat p50 ms", "lat p99 ms", "drops")
        print("{:>5} {:>9} {:>7} {:>13} {:>11} {:>11} {:>6}".format(*head))
        for n in counts:
            row: dict[str, dict[str, float]] = {}
            for label, encoding in (("ours", "i420"), ("reference", "rgb24")):
                r = await run_case(redis, encoding, n, warm, measure)
                row[label] = r
                print(
                    f"{n:>5} {label:>9} {r['cpu_pct']:>7.1f} {r['cpu_per_stream_pct']:>13.2f} "
                    f"{r['latency_p50_ms']:>11.1f} {r['latency_p99_ms']:>11.1f} {r['dropped_busy']:>6}"
                )
                for key, value in r.items():
                    results[f"{label}_{n}peers_{key}"] = value
            ratio = row["ours"]["cpu_per_stream_pct"] / max(1e-9, row["reference"]["cpu_per_stream_pct"])
            results[f"cpu_ratio_ours_vs_reference_{n}peers"] = ratio
            print(f"{n:>5} {'ratio':>9} cpu/stream ours/reference = {ratio:.2f}")
        fuzzed = await asyncio.to_thread(fuzz_round, redis, 150 if quick else 600)  # its own event loops
        results.update(fuzzed)
        print(
            f"fuzz: {fuzzed['fuzz_cases']} cases in {fuzzed['fuzz_seconds']:.1f} s = "
            f"{fuzzed['fuzz_cases_per_s']:.1f} cases/s, {fuzzed['fuzz_4xx']} answered 4xx, 0 with 5xx"
        )
    results["cpu_per_stream_pct"] = results["ours_4peers_cpu_per_stream_pct"]
    results["latency_p99_ms"] = results["ours_1peers_latency_p99_ms"]
    results["latency_p50_ms"] = results["ours_1peers_latency_p50_ms"]
    print(f"cpu_per_stream_pct (4 peers) = {results['cpu_per_stream_pct']:.2f} (target <= 10)")
    print(f"latency_p99_ms (1 peer) = {results['latency_p99_ms']:.1f} (target <= 100)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 4 peers, short windows (< 60 s)")
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    args = parser.parse_args()
    figures = asyncio.run(main(args.quick))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, sort_keys=True))
