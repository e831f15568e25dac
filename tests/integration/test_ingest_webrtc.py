"""A real aiortc client peer against the ingest server over loopback: frames, task events, coaching, session end."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import numpy as np
import pytest
import uvicorn
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from common.bus import Bus
from common.framecodec import decode_frame
from common.messages import Event, Frame
from common.settings import CommonSettings
from common.streams import COACH, EVENTS, FRAMES, SESSIONS
from infra.redis_server import RedisServer
from ingest.app import create_app
from ingest.ice import offered_host_addresses, rtc_configuration
from ingest.settings import IngestSettings
from tests.conftest import SERVICE_HEADERS, SERVICE_KEY, session_of

pytestmark = pytest.mark.integration


class PatternTrack(VideoStreamTrack):
    """Real 640x480 frames: a moving gradient whose brightness encodes the frame index."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 25) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.index = 0
        self._t0: float | None = None
        self.vanished = asyncio.Event()

    def vanish(self) -> None:
        """Stop producing media without any goodbye, like a phone that lost its network."""
        self.vanished.set()

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self.index / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if self.vanished.is_set():
            await asyncio.Event().wait()
        x = np.linspace(0, 255, self.width, dtype=np.float32)
        img = np.empty((self.height, self.width, 3), np.uint8)
        img[:] = ((x + self.index * 4) % 256).astype(np.uint8)[None, :, None]
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self.index * 90000 // self.fps
        frame.time_base = fractions.Fraction(1, 90000)
        self.index += 1
        return frame


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingest_settings(redis_url: str, port: int, **overrides: Any) -> IngestSettings:
    base: dict[str, Any] = {
        "common": CommonSettings(redis_url=redis_url),
        "host": "127.0.0.1",
        "port": port,
        "ice_host_addresses": ["127.0.0.1"],
        "idle_timeout_s": 2.0,
        "connect_timeout_s": 10.0,
        "resume_grace_s": 1.0,
        "api_key": SERVICE_KEY,
    }
    base.update(overrides)
    return IngestSettings(**base)


@contextlib.asynccontextmanager
async def serve(settings: IngestSettings) -> AsyncIterator[str]:
    """The ingest app on a real uvicorn server on 127.0.0.1 (in this event loop)."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.port, log_config=None, ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def create_and_join(http: httpx.AsyncClient, protocol: str = "pfed5") -> dict[str, Any]:
    created = (await http.post("/api/sessions", json={"patient_id": "p1", "protocol": protocol})).json()
    joined = await http.post(f"/api/join/{created['token']}", json={"consent": True})
    assert joined.status_code == 200, joined.text
    return {**created, **joined.json()}


async def connect_client(http: httpx.AsyncClient, sid: str, key: str, track: VideoStreamTrack) -> RTCPeerConnection:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver(track, direction="sendonly")
    with offered_host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
    res = await http.post(f"/api/sessions/{sid}/offer", json=offer, headers={"X-Session-Key": key})
    assert res.status_code == 200, res.text
    await pc.setRemoteDescription(RTCSessionDescription(**res.json()))
    return pc


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def port() -> int:
    return _free_port()


async def test_client_peer_streams_frames_events_and_hangup(redis_server: RedisServer, bus: Bus, port: int) -> None:
    settings = ingest_settings(redis_server.url, port)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
        s = await create_and_join(http)
        sid, key = s["sid"], s["key"]
        pc = await connect_client(http, sid, key, PatternTrack())
        seen: list[Frame] = []

        async def enough_frames() -> bool:
            seen[:] = [d.message for d in await bus.range(FRAMES, sid)]
            return len(seen) >= 10

        await wait_for(enough_frames, 15, "10 frames in Redis")
        # only loopback candidates were used
        pair = pc.getTransceivers()[0].sender.transport.transport._connection._nominated
        addrs = {c.local_candidate.host for c in pair.values()} | {c.remote_candidate.host for c in pair.values()}
        assert addrs == {"127.0.0.1"}

        r1 = await http.post(
            f"/api/sessions/{sid}/events",
            json={"type": "task_start", "task": "smile", "rep": 1},
            headers={"X-Session-Key": key},
        )
        await asyncio.sleep(0.3)
        r2 = await http.post(
            f"/api/sessions/{sid}/events",
            json={"type": "task_end", "task": "smile", "rep": 1},
            headers={"X-Session-Key": key},
        )
        assert r1.status_code == r2.status_code == 200
        assert r2.json()["seq"] > r1.json()["seq"] >= 0

        seqs = [f.seq for f in seen]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert all(b.capture_ts > a.capture_ts for a, b in itertools.pairwise(seen))
        frame = seen[-1]
        assert (frame.width, frame.height, frame.encoding) == (640, 480, "i420")
        rgb = decode_frame(frame.data, frame.width, frame.height, frame.encoding)
        assert rgb.shape == (480, 640, 3) and rgb.std() > 20  # a real gradient came through

        info = await session_of(bus, sid)
        assert (info.state, info.width, info.protocol) == ("live", 640, "pfed5")

        await pc.close()

        async def ended() -> bool:  # the end is announced on the session's events after the hash says ended
            return any(d.message.type == "session_end" for d in await bus.range(EVENTS, sid))

        await wait_for(ended, 10, "session end after hangup")
        info = await session_of(bus, sid)
        assert info.end_reason == "hangup"  # the connection closed: no resume came within the grace time
        events: list[Event] = [d.message for d in await bus.range(EVENTS, sid)]
        assert [e.type for e in events] == ["task_start", "task_end", "session_end"]
        announces = [d.message for d in await bus.latest(SESSIONS, None, 200) if d.message.sid == sid]
        assert [a.state for a in announces] == ["started", "ended"]
        assert await bus.length(FRAMES, sid) == 0

        async def freed() -> bool:  # the end is recorded first, then the connection is torn down
            return bool((await http.get("/healthz")).json()["sessions"] == 0)

        await wait_for(freed, 10, "the peer to be freed")


async def test_downscale_and_fps_cap(redis_server: RedisServer, bus: Bus, port: int) -> None:
    settings = ingest_settings(redis_server.url, port, max_fps=10.0, max_width=320, encoding="rgb24")
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
        s = await create_and_join(http)
        pc = await connect_client(http, s["sid"], s["key"], PatternTrack(fps=25))

        async def frames() -> list[Frame]:
            return [d.message for d in await bus.range(FRAMES, s["sid"])]

        async def have_some() -> bool:
            return len(await frames()) >= 3

        await wait_for(have_some, 15, "frames")
        t0 = time.monotonic()
        n0 = len(await frames())
        await asyncio.sleep(2.0)
        rate = (len(await frames()) - n0) / (time.monotonic() - t0)
        got = await frames()
        await pc.close()
    assert (got[-1].width, got[-1].height, got[-1].encoding) == (320, 240, "rgb24")
    assert 5 <= rate <= 11.5, rate


async def test_coaching_pushed_to_page_socket(redis_server: RedisServer, bus: Bus, port: int) -> None:
    settings = ingest_settings(redis_server.url, port)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
        s = await create_and_join(http)
        sid, key = s["sid"], s["key"]
        pc = await connect_client(http, sid, key, PatternTrack(fps=10))  # coaching flows while the session is live
        ws_url = url.replace("http", "ws") + f"/api/sessions/{sid}/coach?key={key}"
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(ws_url.replace(key, "wrong")) as ws:
                await ws.recv()
        async with websockets.connect(ws_url) as ws:
            await asyncio.sleep(0.2)
            await bus.publish(COACH, Event(sid=sid, type="coach", ts=time.time(), text="too dark: add more light"))
            await bus.publish(COACH, Event(sid=sid, type="coach", ts=time.time(), text="face the camera"))
            got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        await pc.close()
    assert [g["text"] for g in got] == ["too dark: add more light", "face the camera"]


async def test_client_vanishing_ends_session_idle(redis_server: RedisServer, bus: Bus, port: int) -> None:
    settings = ingest_settings(redis_server.url, port, idle_timeout_s=1.0)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
        s = await create_and_join(http)
        sid = s["sid"]
        track = PatternTrack()
        pc = await connect_client(http, sid, s["key"], track)

        async def streaming() -> bool:
            return await bus.length(FRAMES, sid) >= 5

        await wait_for(streaming, 15, "frames")
        # the client vanishes without a goodbye: its media stops, no RTCP BYE, no HTTP call
        track.vanish()

        async def ended() -> bool:
            return (await session_of(bus, sid)).ended

        await wait_for(ended, 10, "idle end")
        info = await session_of(bus, sid)
        assert info.end_reason == "idle_timeout"
        assert info.stats["published"] >= 5

        async def freed() -> bool:  # the end is recorded first, then the connection is torn down
            return bool((await http.get("/healthz")).json()["sessions"] == 0)

        await wait_for(freed, 10, "the peer to be freed")
        await pc.close()


async def test_shutdown_closes_every_peer(redis_server: RedisServer, bus: Bus, port: int) -> None:
    settings = ingest_settings(redis_server.url, port, idle_timeout_s=30.0)
    pcs: list[RTCPeerConnection] = []
    sids: list[str] = []
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
        for _ in range(2):
            s = await create_and_join(http)
            sids.append(s["sid"])
            pcs.append(await connect_client(http, s["sid"], s["key"], PatternTrack(fps=10)))
        for sid in sids:

            async def live(sid: str = sid) -> bool:
                return await bus.length(FRAMES, sid) >= 2

            await wait_for(live, 15, "frames")
    for sid in sids:
        info = await session_of(bus, sid)
        assert (info.state, info.end_reason) == ("ended", "shutdown")
    for pc in pcs:
        await pc.close()


async def test_a_reload_resumes_the_session_on_a_new_connection(redis_server: RedisServer, bus: Bus, port: int) -> None:
    """The page reloads mid-session: its connection closes, the link is opened again within the grace time, and
    the new connection carries the same session on (frame numbers keep rising, nothing ends in between)."""
    settings = ingest_settings(redis_server.url, port, resume_grace_s=5.0)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
        s = await create_and_join(http)
        sid, old_key, token = s["sid"], s["key"], s["token"]
        pc = await connect_client(http, sid, old_key, PatternTrack(fps=15))

        async def frames_past(n: int) -> bool:
            got = await bus.latest(FRAMES, sid, 1)
            return bool(got) and got[-1].message.seq >= n

        await wait_for(lambda: frames_past(5), 15, "frames on the first connection")
        h = {"X-Session-Key": old_key}
        for kind in ("task_start", "task_end"):
            r = await http.post(f"/api/sessions/{sid}/events", json={"type": kind, "task": "rest", "rep": 1}, headers=h)
            assert r.status_code == 200
        await pc.close()  # the reload: the old page's connection goes away
        await asyncio.sleep(0.5)
        assert not (await session_of(bus, sid)).ended
        before = (await bus.latest(FRAMES, sid, 1))[-1].message.seq

        again = await http.post(f"/api/join/{token}", json={"consent": True})
        assert again.status_code == 200, again.text
        resumed = again.json()
        assert resumed["sid"] == sid and resumed["resumed"] is True and resumed["key"] != old_key
        assert resumed["done"] == [["rest", 1]]  # the page skips what was done
        pc2 = await connect_client(http, sid, resumed["key"], PatternTrack(fps=15))
        await wait_for(lambda: frames_past(before + 5), 15, "frames on the resumed connection")
        seqs = [d.message.seq for d in await bus.range(FRAMES, sid)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        stale = await http.post(f"/api/sessions/{sid}/end", json={"reason": "completed"}, headers=h)
        assert stale.status_code == 403  # the old page's key no longer drives the session
        info = await session_of(bus, sid)
        assert info.state == "live" and info.end_reason == ""
        done = await http.post(f"/api/sessions/{sid}/end", json={"reason": "completed"},
                               headers={"X-Session-Key": resumed["key"]})  # fmt: skip
        assert done.json() == {"state": "ended", "reason": "completed"}
        await pc2.close()
    info = await session_of(bus, sid)
    assert info.end_reason == "completed" and info.stats["published"] > before
    events = [d.message.type for d in await bus.range(EVENTS, sid)]
    assert events == ["task_start", "task_end", "session_end"]
    announces = [d.message.state for d in await bus.latest(SESSIONS, None, 500) if d.message.sid == sid]
    assert announces == ["started", "ended"]
