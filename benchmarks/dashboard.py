"""Websocket fan-out: N clients x M live sessions, ours (the dashboard's hub: bounded per-client queues, batched
frames, login and session checks) against a plain broadcast loop with no backpressure (one reader, every entry sent
to every subscriber in turn), in one run on the same real Redis.

Each session's scores are published at ``--rate`` per second; every client watches every session (the console
view). Delivery latency is the time from a score's publication (``Score.ts``) to its arrival at a client. A second
round adds one stalled client (connected, reading nothing): ours keeps delivering to the rest, the plain loop
blocks on it. Both servers run as their own processes (uvicorn), the clients and the publisher here.

    python benchmarks/dashboard.py [--quick] [--json PATH] [--clients 50] [--sessions 4]

JSON: ``delivery_p99_ms`` (ours, 50 clients x 4 sessions; target <= 250), ``delivery_p50_ms``, ``messages_per_s``,
``lost``, the same with ``reference_`` in front, ``p99_ratio_vs_reference``, and the stalled round's
``stalled_delivery_p99_ms``, ``stalled_delivered_fraction``, ``reference_stalled_delivered_fraction``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.bus import Bus  # noqa: E402
from common.messages import Consent, Score, SessionInfo  # noqa: E402
from common.session_store import SessionStore  # noqa: E402
from common.streams import SCORES  # noqa: E402
from common.tasks import stop_tasks  # noqa: E402
from infra.redis_server import RedisServer, free_port  # noqa: E402

PASSWORD = "benchmark passphrase"


# ------------------------------------------------------------------------------------------ servers (subprocess)


def serve_ours(port: int, redis_url: str, db_url: str) -> None:
    import uvicorn

    from common.settings import CommonSettings
    from dashboard.app import create_app
    from dashboard.settings import DashboardSettings

    settings = DashboardSettings(
        common=CommonSettings(redis_url=redis_url, log_level="WARNING"),
        database_url=db_url,
        port=port,
        instance="bench",
    )
    app = create_app(settings, background=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


def serve_reference(port: int, redis_url: str) -> None:
    """The plain broadcast loop: read the streams, send each entry to each subscriber, awaiting every send."""
    import uvicorn
    from fastapi import FastAPI

    from dashboard.hub import encode_entry, sid_of

    app = FastAPI()
    subscribers: dict[str, list[WebSocket]] = {}
    cursors: dict[str, str] = {}
    holder: dict[str, Any] = {}

    async def reader() -> None:
        bus = await Bus.connect(redis_url, name="bench-ref")
        while True:
            if not cursors:
                await asyncio.sleep(0.05)
                continue
            for d in await bus.tail({(SCORES, sid_of(k)): c for k, c in cursors.items()}, count=500, block_ms=200):
                cursors[d.stream] = d.id
                text = '{"t":"batch","items":[' + encode_entry(d.stream, d.id, d.message) + "]}"
                for ws in list(subscribers.get(d.stream, [])):
                    try:
                        await ws.send_text(text)
                    except Exception:
                        subscribers[d.stream].remove(ws)

    @app.websocket("/ws")
    async def socket_route(ws: WebSocket) -> None:
        await ws.accept()
        if "reader" not in holder:
            holder["reader"] = asyncio.ensure_future(reader())
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                msg = json.loads(await ws.receive_text())
                key = SCORES.key(msg["sid"])
                cursors.setdefault(key, f"{int(time.time() * 1000)}-0")  # new entries only
                subscribers.setdefault(key, []).append(ws)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


# ------------------------------------------------------------------------------------------ clients


def prepare_db(db_url: str, sids: list[str]) -> dict[str, int]:
    from dashboard.accounts import create_clinic, create_user
    from dashboard.db import Database
    from dashboard.tables import Patient, Session

    db = Database(db_url)
    db.migrate()
    out: dict[str, int] = {}
    with db.session() as s:
        clinic = create_clinic(s, "Bench")
        create_user(s, "bench", PASSWORD, "clinician", clinic)
        for sid in sids:
            p = Patient(clinic_id=clinic.id, ref="pt-" + sid, display_name=sid, mrn=sid, created_ts=1.0)
            s.add(p)
            s.flush()
            row = Session(
                sid=sid,
                patient_id=p.id,
                clinic_id=clinic.id,
                protocol="pfed5",
                consent_live_scoring=True,
                consent_recording=False,
                consent_research=False,
                state="live",
                created_ts=1.0,
                started_ts=1.0,
                ended_ts=0.0,
                end_reason="",
                join_url="",
                join_expires_ts=0.0,
                note="",
            )
            s.add(row)
            s.flush()
            out[sid] = row.id
    db.close()
    return out


async def login_cookie(base: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        page = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        pre = re.search(r"feqa_login_csrf=([^;]+)", page.headers["set-cookie"])
        assert token
        assert pre
        res = await http.post(
            "/login",
            data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)},
            headers={"Cookie": f"feqa_login_csrf={pre.group(1)}"},
        )
        found = re.search(r"feqa_session=([^;]+)", res.headers.get("set-cookie", ""))
        assert found, res.headers
        return f"feqa_session={found.group(1)}"


class Receiver:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count = 0
        self.ready = asyncio.Event()

    async def run(self, url: str, headers: dict[str, str], watch: list[str]) -> None:
        async with connect(url, additional_headers=headers, max_size=None) as ws:
            for msg in watch:
                await ws.send(msg)
            self.ready.set()
            async for raw in ws:
                now = time.time()
                for item in json.loads(raw).get("items", []):
                    if item.get("t") == "score" and item["d"]["kind"] == "window":
                        self.count += 1
                        self.latencies.append(now - item["d"]["ts"])


def stalled_client(port: int, path_headers: str, watch: list[str]) -> socket.socket:
    """A client that completes the handshake, asks to watch, then never reads."""
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"), max_size=None)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connecting, so the window stays small
    sock.connect(("127.0.0.1", port))
    req = proto.connect()
    for line in path_headers.splitlines():
        name, _, value = line.partition(": ")
        if name:
            req.headers[name] = value
    proto.send_request(req)
    sock.sendall(b"".join(proto.data_to_send()))
    while proto.state.name != "OPEN":
        proto.receive_data(sock.recv(4096))
    for msg in watch:
        proto.send_text(msg.encode())
    sock.sendall(b"".join(proto.data_to_send()))
    return sock


HEAVY = {f"region_{i:03d}": 0.123456 for i in range(150)}  # ~4.5 kB entries for the stalled round's burst


def _score(sid: str, i: int, heavy: bool = False) -> Score:
    kin = {"rom_mouth": 0.31, "rom_brow": 0.22, "asym_mouth": 0.05, "blink_rate": 14.0, "mouth_open": 0.12}
    if heavy:
        kin.update(HEAVY)
    return Score(
        sid=sid,
        ts=time.time(),
        kind="window",
        protocol="pfed5",
        task="smile",
        rep=0,
        first_seq=i * 8,
        last_seq=i * 8 + 127,
        capture_ts=time.time(),
        score=1.5,
        raw=1.6,
        scale="mds-updrs-3.2",
        scale_min=0.0,
        scale_max=4.0,
        model="trampformer:pfed5/smile",
        version="v1",
        kinematics=kin,
        quality={"face_fraction": 0.99, "det_score": 0.9},
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.asynccontextmanager
async def server(args: list[str], port: int) -> AsyncIterator[None]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, __file__, *args], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"benchmark server {args[1]} did not start") from None
                await asyncio.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def round_(
    kind: str,
    redis_url: str,
    db_url: str,
    sids: list[str],
    ids: dict[str, int],
    clients: int,
    rate: float,
    duration: float,
    stalled: bool,
) -> dict[str, float]:
    port = free_port()
    args = ["--serve", kind, "--port", str(port), "--redis", redis_url, "--db", db_url]
    print(f"round {kind}{' with a stalled client' if stalled else ''} ...", flush=True)
    async with server(args, port):
        base = f"http://127.0.0.1:{port}"
        if kind == "ours":
            cookie = await login_cookie(base)
            headers = {"Cookie": cookie, "Origin": base}
            watch = [json.dumps({"op": "watch", "session": ids[s]}) for s in sids]
        else:
            headers = {}
            watch = [json.dumps({"sid": s}) for s in sids]
        receivers = [Receiver() for _ in range(clients)]
        tasks = [asyncio.ensure_future(r.run(base.replace("http", "ws") + "/ws", headers, watch)) for r in receivers]
        await asyncio.wait_for(asyncio.gather(*(r.ready.wait() for r in receivers)), 60)
        stall = None
        if stalled:
            hdr = "\n".join(f"{k}: {v}" for k, v in headers.items())
            stall = await asyncio.to_thread(stalled_client, port, hdr, watch)
        await asyncio.sleep(1.0)
        bus = await Bus.connect(redis_url, name="bench-pub")
        sent, started = 0, time.monotonic()
        interval = 1.0 / rate
        for tick in range(round(rate * duration)):  # a fixed amount, paced (late ticks are sent at once)
            await bus.publish_many(SCORES, [_score(s, tick, heavy=stalled) for s in sids])
            sent += len(sids)
            await asyncio.sleep(max(0.0, started + (tick + 1) * interval - time.monotonic()))
        elapsed = time.monotonic() - started
        expected = sent * clients
        deadline = time.monotonic() + 5
        while sum(r.count for r in receivers) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await bus.close()
        await stop_tasks(tasks, what="benchmark client")
        if stall is not None:
            stall.close()
    lat = [x for r in receivers for x in r.latencies]
    got = sum(r.count for r in receivers)
    return {
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "messages_per_s": got / elapsed,
        "delivered_fraction": got / expected if expected else float("nan"),
        "lost": float(expected - got),
        "published": float(sent),
    }


async def start_sessions(redis_url: str, sids: list[str]) -> None:
    """Live sessions in Redis as the ingest makes them (their streams exist from the start)."""
    bus = await Bus.connect(redis_url, name="bench-sessions")
    store = SessionStore(bus)
    for sid in sids:
        await store.create(
            SessionInfo(
                sid=sid,
                patient_id="pt-" + sid,
                protocol="pfed5",
                consent=Consent(True),
                state="created",
                source="webrtc",
                fps=30.0,
                created_ts=time.time(),
            )
        )
        await store.start(sid, "pfed5")
    await bus.close()


async def main(args: argparse.Namespace) -> dict[str, float]:
    rounds = ("ours", "reference", "ours_stalled", "reference_stalled")
    sids = {r: [f"b{r[:3]}{'s' if 'stalled' in r else ''}{i}" for i in range(args.sessions)] for r in rounds}
    duration = 4.0 if args.quick else 12.0
    with RedisServer() as redis, tempfile.TemporaryDirectory(prefix="feqa-bench-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'dash.sqlite'}"
        ids = prepare_db(db_url, [s for r in rounds for s in sids[r]])
        await start_sessions(redis.url, [s for r in rounds for s in sids[r]])  # fresh streams per round: no replay
        results: dict[str, dict[str, float]] = {}
        for kind in ("ours", "reference"):
            results[kind] = await round_(
                kind, redis.url, db_url, sids[kind], ids, args.clients, args.rate, duration, False
            )
        # a burst of ~7 MB per client outgrows a stalled client's socket buffers within seconds
        burst_rate, burst_s, burst_clients = 125.0, 3.0, 10
        for kind in ("ours", "reference"):
            name = kind + "_stalled"
            results[name] = await round_(
                kind, redis.url, db_url, sids[name], ids, burst_clients, burst_rate, burst_s, True
            )
    print(
        f"\nwebsocket fan-out: {args.clients} clients x {args.sessions} sessions at {args.rate:g} scores/s each, "
        f"{duration:g} s"
    )
    print("(the *_stalled rounds: 10 clients plus one that reads nothing, 125 large scores/s per session for 3 s)")
    print(f"{'round':<20}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'delivered':>11}{'lost':>8}")
    for name, r in results.items():
        print(
            f"{name:<20}{r['messages_per_s']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}"
            f"{r['delivered_fraction']:>10.1%}{r['lost']:>8.0f}"
        )
    ours, ref = results["ours"], results["reference"]
    flat = {
        "clients": float(args.clients),
        "sessions": float(args.sessions),
        "rate_per_session": args.rate,
        "delivery_p50_ms": ours["p50_ms"],
        "delivery_p99_ms": ours["p99_ms"],
        "messages_per_s": ours["messages_per_s"],
        "lost": ours["lost"],
        "reference_delivery_p50_ms": ref["p50_ms"],
        "reference_delivery_p99_ms": ref["p99_ms"],
        "reference_messages_per_s": ref["messages_per_s"],
        "reference_lost": ref["lost"],
        "p99_ratio_vs_reference": ours["p99_ms"] / ref["p99_ms"] if ref["p99_ms"] else float("nan"),
        "stalled_delivery_p99_ms": results["ours_stalled"]["p99_ms"],
        "stalled_delivered_fraction": results["ours_stalled"]["delivered_fraction"],
        "reference_stalled_delivery_p99_ms": results["reference_stalled"]["p99_ms"],
        "reference_stalled_delivered_fraction": results["reference_stalled"]["delivered_fraction"],
    }
    print(
        f"\nours p99 {flat['delivery_p99_ms']:.1f} ms (target <= 250), {flat['p99_ratio_vs_reference']:.2f}x the "
        f"plain loop's; with one stalled client ours delivered {flat['stalled_delivered_fraction']:.1%} to the "
        f"others, the plain loop {flat['reference_stalled_delivered_fraction']:.1%}"
    )
    return flat


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (under a minute)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=4.0, help="scores per second per session (hop 8 at 30 fps)")
    parser.add_argument("--serve", choices=["ours", "reference"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="", help=argparse.SUPPRESS)
    parser.add_argument("--db", default="", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve == "ours":
        serve_ours(ns.port, ns.redis, ns.db)
    elif ns.serve == "reference":
        serve_reference(ns.port, ns.redis)
    else:
        figures = asyncio.run(main(ns))
        if ns.json:
            ns.json.write_text(json.dumps(figures, indent=2, allow_nan=True))
