"""The tracker worker on a real Redis: phantom sessions end to end, windows, and every bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from common.backlog import pending_count
from common.bus import Bus
from common.framecodec import encode_frame
from common.health import latest_health
from common.leases import Leases
from common.messages import Consent, Crop, DeadLetter, Event, Frame, SessionAnnounce, Window
from common.session_store import SessionStore
from common.streams import COACH, CROPS, DEADLETTER, EVENTS, FRAMES, OBS, SESSIONS, WINDOWS
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tests.conftest import live_session
from tracker.insightface_landmarker import InsightfaceLandmarker
from tracker.landmarkers import LandmarkerChoice
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.settings import TrackerSettings
from tracker.testing.onnx_models import PlacedFace, fixed_scrfd, write_model_pack
from tracker.worker import TrackerWorker

pytestmark = pytest.mark.integration
SPEC = PatientSpec(seed=4, protocol="pfed5", severity=1.0)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_pack(tmp_path_factory.mktemp("buffalo_l"))


@pytest.fixture(scope="module")
def fixed_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack whose detector always reports one face at canvas box (32, 0, 96, 96) of its 160 canvas, so what the
    tracker makes of each frame is known exactly (the landmark model has random weights)."""
    directory = write_model_pack(tmp_path_factory.mktemp("fixed_pack"))
    fixed_scrfd(directory / "det_10g.onnx", 160, [PlacedFace(16, 3, 4, 1, 0.9, (2.0, 3.0, 2.0, 3.0))])
    return directory


def _worker(bus: Bus, pack: Path, **kw: object) -> TrackerWorker:
    kw.setdefault("stale_ms", 60_000)  # frames arrive in bursts here: only the staleness test wants them skipped
    settings = TrackerSettings(model_dir=pack, det_size=160, block_ms=10, lease_ttl_ms=1000, **kw)  # type: ignore[arg-type]
    choice = LandmarkerChoice("phantom", InsightfaceLandmarker.from_settings(settings), PhantomLandmarker())
    return TrackerWorker(settings, bus, choice)


async def _announce_unknown(bus: Bus, sid: str) -> None:
    """A session announced as started that has no session hash (a broken producer)."""
    await bus.publish(SESSIONS, SessionAnnounce(sid=sid, state="started", protocol="pfed5", ts=time.time()))


async def _end(bus: Bus, sid: str) -> None:
    await SessionStore(bus).end(sid, "completed")


def _frame(sid: str, seq: int, rgb: np.ndarray) -> Frame:
    return Frame(sid=sid, seq=seq, capture_ts=time.time(), width=rgb.shape[1], height=rgb.shape[0],
                 encoding="rgb24", data=encode_frame(rgb, "rgb24"))  # fmt: skip


async def _drive(worker: TrackerWorker, done: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError("the worker did not get there in time")
        await worker.tick()


async def _windows(bus: Bus, sid: str) -> list[Window]:
    return [d.message for d in await bus.range(WINDOWS, sid)]


async def test_phantom_session_end_to_end(bus: Bus, sid: str, pack: Path) -> None:
    ph = Phantom(SPEC, 320, 240, 30.0)
    await live_session(bus, sid, phantom=SPEC.to_json())
    worker = _worker(bus, pack)
    await bus.publish(EVENTS, Event(sid=sid, type="task_start", ts=time.time(), task="smile", seq=0))
    for i in range(20):
        await bus.publish(FRAMES, _frame(sid, i, ph.render(i)))
    await bus.publish(EVENTS, Event(sid=sid, type="task_end", ts=time.time(), task="smile", seq=19))

    async def all_seen() -> bool:
        return any(w.reason == "task_end" for w in await _windows(bus, sid))

    await _drive(worker, all_seen)
    obs = [d.message for d in await bus.range(OBS, sid)]
    assert [o.seq for o in obs] == list(range(20))
    for o in obs:
        assert o.face and o.landmarks is not None
        np.testing.assert_array_equal(o.landmarks, ph.truth(o.seq).landmarks)
    crops: list[Crop] = [d.message for d in await bus.range(CROPS, sid)]
    assert len(crops) == 20 and crops[0].image.shape == (224, 224, 3)
    windows = await _windows(bus, sid)
    assert [(w.reason, w.last_seq, w.task) for w in windows] == [
        ("hop", 7, "smile"),
        ("hop", 15, "smile"),
        ("task_end", 19, "smile"),
    ]
    assert all(w.quality["face_fraction"] == 1.0 for w in windows)
    health = await worker.health.publish()
    assert (health.service, health.counters["frames"], health.counters["windows"]) == ("tracker", 20, 3)
    assert sid in worker.owned and health.gauges["sessions"] == len(worker.owned)  # other tests' sessions may be live
    assert 0 < health.gauges["lag_p50_ms"] <= health.gauges["lag_p99_ms"]
    assert (await latest_health(bus))[("tracker", worker.consumer)].counters["frames"] == 20
    await _end(bus, sid)
    await worker.tick()
    assert sid not in worker.owned


async def test_bad_inputs_become_reasons_or_dead_letters(bus: Bus, sid: str, fixed_pack: Path, redis_url: str) -> None:
    unknown = sid + "u"
    await live_session(bus, sid)  # a camera session: insightface, with a detector that always finds one face
    await _announce_unknown(bus, unknown)  # announced, but no session hash
    worker = _worker(bus, fixed_pack, stale_ms=30_000)
    rgb = np.full((97, 161, 3), 90, np.uint8)  # odd size
    raw = aioredis.Redis.from_url(redis_url)  # frame 0 entered the stream a minute ago (staleness is by entry id):
    old_id = f"{int(time.time() * 1000) - 60_000}-0"  # stale for certain, while the later frames have 30 s to be seen
    await raw.xadd(FRAMES.key(sid), _frame(sid, 0, rgb).encode(), id=old_id)  # type: ignore[arg-type]
    await worker.tick()  # adopts the sessions
    fresh = [
        _frame(sid, 1, rgb),
        Frame(sid=sid, seq=2, capture_ts=0, width=161, height=97, encoding="rgb24", data=b"\x01\x02"),
        Frame(sid=sid, seq=3, capture_ts=0, width=64, height=64, encoding="jpeg", data=b"\xff\xd8garbage"),
        _frame(sid, 4, np.zeros((8, 8, 3), np.uint8)),
    ]
    for f in fresh:
        await bus.publish(FRAMES, f)
    await bus.publish(FRAMES, _frame("someone_else", 5, rgb), sid=sid)  # wrong session on this stream
    # a producer that ignores the contract: not a frame at all,
    await raw.xadd(FRAMES.key(sid), Event(sid=sid, type="marker", ts=0).encode())  # type: ignore[arg-type]
    await raw.xadd(FRAMES.key(unknown), _frame(unknown, 0, rgb).encode())  # type: ignore[arg-type]  # no session
    await raw.aclose()
    assert await bus.publish(FRAMES, _frame(unknown, 1, rgb), sid=unknown + "x") is None  # never started: refused

    async def settled() -> bool:
        if len(await bus.range(OBS, sid)) < 5 or await pending_count(bus, FRAMES, sid):
            return False
        letters = await bus.range(DEADLETTER)
        return any(d.message.stream == FRAMES.key(unknown) for d in letters)

    await _drive(worker, settled)
    await worker.tick()
    reasons = {d.message.seq: d.message.reason for d in await bus.range(OBS, sid)}
    assert reasons[0] == "stale"
    obs = {d.message.seq: d.message for d in await bus.range(OBS, sid)}
    assert (reasons[1], obs[1].face) == ("", True)  # an odd-sized frame is tracked like any other: a 64 px face
    assert obs[1].landmarks is not None and obs[1].landmarks.shape == (106, 2)
    assert reasons[2] == reasons[3] == "corrupt_frame"
    # an 8 x 8 frame is not scaled up: the detector's face (32..96 px) lies outside it, and nothing is cropped
    assert (reasons[4], obs[4].face) == ("face_out_of_frame", False)
    letters: list[DeadLetter] = [d.message for d in await bus.range(DEADLETTER)]
    mine = [x for x in letters if x.stream == FRAMES.key(sid)]
    assert any("someone_else" in x.error for x in mine)
    assert any("frame" in x.error and "event" in x.error for x in mine)
    original = Frame.decode(DeadLetter.unpack_fields(next(x for x in mine if "someone_else" in x.error).original))
    assert original.seq == 5  # nothing lost: the entry is kept whole
    assert any("unknown session" in x.error for x in letters if x.stream == FRAMES.key(unknown))
    assert await pending_count(bus, FRAMES, unknown) == 0
    await _end(bus, sid)
    await _end(bus, unknown)
    await worker.tick()


async def test_leases_are_exclusive_renewable_and_released(bus: Bus, sid: str) -> None:
    leases = Leases(bus, "tracker")
    assert await leases.hold(sid, "a", 300)
    assert not await leases.hold(sid, "b", 300)
    assert await leases.hold(sid, "a", 300)  # renewal
    assert not await leases.release(sid, "b")
    assert await leases.release(sid, "a")
    assert await leases.hold(sid, "b", 100)
    await asyncio.sleep(0.25)
    assert not await leases.renew(sid, "b", 100)  # b stopped renewing: expired, and renew does not take it back
    assert await leases.hold(sid, "a", 100)


async def test_coaching_when_no_face_is_seen_for_a_while(bus: Bus, sid: str, pack: Path) -> None:
    await live_session(bus, sid, phantom=SPEC.to_json(), consent=Consent(live_scoring=False))
    worker = _worker(bus, pack)
    grey = np.full((240, 320, 3), 128, np.uint8)  # no index code: the phantom landmarker finds no face
    for i in range(24):
        await bus.publish(FRAMES, _frame(sid, i, grey))

    async def coached() -> bool:
        return bool(await bus.range(COACH, sid))

    await _drive(worker, coached)
    events = [d.message for d in await bus.range(COACH, sid)]
    assert [(e.type, e.seq) for e in events] == [("coach", 23)]
    assert "can't see your face" in events[0].text
    windows = await _windows(bus, sid)
    assert [w.quality["ok"] for w in windows] == [0.0, 0.0, 0.0]
    await _end(bus, sid)
    await worker.tick()


async def test_the_last_repetition_gets_its_task_end_window(bus: Bus, sid: str, pack: Path) -> None:
    """The patient page posts the last task_end and at once ends the session, so the tracker reads both in one
    control poll (seen in full Chromium runs: the end was handled first and the last window never came)."""
    ph = Phantom(SPEC, 320, 240, 30.0)
    await live_session(bus, sid, phantom=SPEC.to_json())
    worker = _worker(bus, pack)
    await bus.publish(EVENTS, Event(sid=sid, type="task_start", ts=time.time(), task="clench_teeth", rep=3, seq=0))
    for i in range(12):
        await bus.publish(FRAMES, _frame(sid, i, ph.render(i)))

    async def observed() -> bool:
        return len(await bus.range(OBS, sid)) == 12 and not await pending_count(bus, FRAMES, sid)

    await _drive(worker, observed)
    await bus.publish(EVENTS, Event(sid=sid, type="task_end", ts=time.time(), task="clench_teeth", rep=3, seq=11))
    await SessionStore(bus).end(sid, "completed")
    await worker.tick()
    assert sid not in worker.owned
    ends = [w for w in await _windows(bus, sid) if w.reason == "task_end"]
    assert [(w.task, w.rep, w.first_seq, w.last_seq, w.task_start_seq) for w in ends] == [("clench_teeth", 3, 0, 11, 0)]
    assert ends[0].quality["frames"] == 12 and ends[0].ok
