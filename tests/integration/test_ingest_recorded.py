"""Recorded video into the same streams: the CLI, native and fast pace, bad and truncated files, and how the
observations decide the ending (uploads over HTTP: test_ingest_upload)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from common.bus import Bus
from common.messages import Consent, Event
from common.settings import CommonSettings
from common.streams import EVENTS, FRAMES
from infra.redis_server import RedisServer
from ingest.cli import cli
from ingest.outcome import NO_FACE
from ingest.recorded import VideoFileError, ingest_file, probe
from ingest.sessions import SessionSpec
from ingest.settings import IngestSettings
from tests.conftest import SERVICE_KEY, FrameTap, ingest_sessions, session_of

pytestmark = pytest.mark.integration


def write_clip(path: Path, n: int, fmt: str, codec: str, size: tuple[int, int] = (800, 600), fps: int = 25) -> Path:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n):
            img = np.full((size[1], size[0], 3), (i * 9) % 256, np.uint8)
            img[:, : size[0] // 2, 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def settings_for(url: str, **kw: object) -> IngestSettings:
    base: dict[str, object] = {"api_key": SERVICE_KEY, "tracker_wait_s": 2.0}
    return IngestSettings(common=CommonSettings(redis_url=url), **{**base, **kw})  # type: ignore[arg-type]


async def test_fast_file_ingest_waits_for_the_tracker(redis_server: RedisServer, bus: Bus, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.webm", 90, "webm", "libvpx")
    settings = settings_for(redis_server.url, fast_backlog=8)
    sessions = ingest_sessions(bus)
    sid = "tfast" + tmp_path.name[-6:].replace("_", "x")
    async with FrameTap(bus, sid, delay_s=0.02, observe=True) as slow_tracker:
        await sessions.create(SessionSpec("p", "pfed5", Consent(), 25.0, source="file"), sid=sid)
        result = await ingest_file(bus, sessions, settings, clip, protocol="pfed5", task="smile", pace="fast", sid=sid)
    got = slow_tracker.frames
    assert (result.frames, result.reason) == (90, "completed")
    # 90 frames through a 60-frame stream bound, and the slow reader lost none of them
    assert [f.seq for f in got] == list(range(90))
    assert all(b.capture_ts - a.capture_ts == pytest.approx(0.04, abs=1e-3) for a, b in itertools.pairwise(got))
    assert (got[0].width, got[0].height) == (640, 480)
    events: list[Event] = [d.message for d in await bus.range(EVENTS, sid)]
    assert [(e.type, e.task, e.seq) for e in events] == [
        ("task_start", "smile", 0),
        ("task_end", "smile", 89),
        ("session_end", "", -1),
    ]
    info = await session_of(bus, sid)
    assert (info.state, info.end_reason, info.stats["frames"]) == ("ended", "completed", 90)
    assert (info.stats["observed"], info.stats["faces"]) == (90, 90)
    assert await bus.length(FRAMES, sid) == 0  # the session ended: its frames are gone


async def test_native_pace_takes_clip_time(redis_server: RedisServer, bus: Bus, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "n.y4m", 20, "yuv4mpegpipe", "rawvideo", size=(320, 240), fps=20)
    settings = settings_for(redis_server.url)
    loop = asyncio.get_running_loop()
    sessions = ingest_sessions(bus)
    sid = await sessions.create(SessionSpec("p", "palsy", Consent(), 20.0, source="file"))
    t0 = loop.time()
    async with FrameTap(bus, sid, observe=False) as tap:
        result = await ingest_file(bus, sessions, settings, clip, protocol="palsy", pace="native", sid=sid)
        assert loop.time() - t0 >= 0.9
        await asyncio.sleep(0.2)
    frames = tap.frames
    assert result.frames == 20
    assert len(frames) == 20 and (frames[0].width, frames[0].height) == (320, 240)
    # every frame observed, none with a face: the session says so instead of "completed"
    assert (result.reason, result.error) == ("no_face", NO_FACE)
    info = await session_of(bus, sid)
    assert (info.end_reason, info.stats["observed"], info.stats["faces"]) == ("no_face", 20, 0)


@pytest.mark.parametrize(
    ("name", "fmt", "codec"), [("t.webm", "webm", "libvpx"), ("t.y4m", "yuv4mpegpipe", "rawvideo")]
)
async def test_truncated_file_ends_with_reason(
    redis_server: RedisServer, bus: Bus, tmp_path: Path, name: str, fmt: str, codec: str
) -> None:
    cut = truncate(write_clip(tmp_path / name, 30, fmt, codec, size=(320, 240)), 0.55)
    sessions = ingest_sessions(bus)
    sid = await sessions.create(SessionSpec("p", "pfed5", Consent(), 25.0, source="file"))
    async with FrameTap(bus, sid, observe=True):
        result = await ingest_file(bus, sessions, settings_for(redis_server.url), cut, protocol="pfed5",
                                   task="smile", pace="fast", sid=sid)  # fmt: skip
    assert result.reason == "file_truncated" and "truncated" in result.error
    assert 0 < result.frames < 30
    info = await session_of(bus, result.sid)
    assert (info.state, info.end_reason, info.stats["frames"]) == ("ended", "file_truncated", result.frames)
    assert await bus.length(FRAMES, result.sid) == 0


def test_probe_refuses_what_is_not_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"this is a text file, not a video\n" * 50)
    with pytest.raises(VideoFileError, match="not a readable video"):
        probe(text)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoFileError, match="empty"):
        probe(empty)
    with pytest.raises(VideoFileError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    mp4 = truncate(write_clip(tmp_path / "m.mp4", 10, "mp4", "libx264", size=(320, 240)), 0.5)
    with pytest.raises(VideoFileError, match="not a readable video"):
        probe(mp4)


def test_cli_ingests_a_file(
    redis_server: RedisServer, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_clip(tmp_path / "home.webm", 20, "webm", "libvpx", size=(320, 240))
    monkeypatch.setenv("FEQA_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FEQA_INGEST_TRACKER_WAIT_S", "0.5")
    runner = CliRunner()
    res = runner.invoke(cli, [str(clip), "--protocol", "pfed5", "--task", "smile", "--pace", "native"])
    # no tracker runs here: every frame went out, and the command says nobody observed them
    assert res.exit_code == 1, res.output
    assert "20 frames" in res.output and "not_tracked" in res.output and "is the tracker running" in res.output
    short = write_clip(tmp_path / "short.webm", 3, "webm", "libvpx", size=(320, 240))
    res = runner.invoke(cli, [str(short), "--protocol", "pfed5"])
    assert res.exit_code == 1 and "has 3 video frames; at least 16" in res.output
    bad_task = runner.invoke(cli, [str(clip), "--protocol", "pfed5", "--task", "moonwalk"])
    assert bad_task.exit_code == 1 and "no task 'moonwalk'" in bad_task.output
    not_video = tmp_path / "x.webm"
    not_video.write_bytes(b"\x00garbage" * 100)
    res = runner.invoke(cli, [str(not_video), "--protocol", "pfed5"])
    assert res.exit_code == 1 and "not a readable video" in res.output
    listing = runner.invoke(cli, ["protocols"])
    assert listing.exit_code == 0 and "clench_teeth" in listing.output and "bigsmile" in listing.output
