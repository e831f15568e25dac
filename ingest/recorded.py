"""Recorded video (home recordings sent later): probe a file, then feed its frames to the same streams as a live
session, at native pace or as fast as the tracker takes them.

A file is refused before any session exists when it is not video, has no video stream, no decodable frame, or
fewer frames than the minimum (counted from its packets, without decoding). Truncation found later (a decode error,
a clip shorter than its container declares, a raw stream with a partial last frame) ends the session with reason
``file_truncated``; the frames before it stay published. Otherwise the tracker's observations decide the ending
(ingest.outcome): ``completed``, ``no_face`` or ``not_tracked``, with the counts in the session's stats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import av

from common.backlog import group_backlog
from common.bus import Bus
from common.errors import PermanentError
from common.logs import session_logger
from common.messages import Consent
from common.streams import FRAMES
from ingest.framing import FrameShaper
from ingest.outcome import NOT_TRACKED, ObsTally
from ingest.pump import FramePump, IngestCounters
from ingest.sessions import IngestSessions, SessionSpec
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Pace = Literal["native", "fast"]


class VideoFileError(PermanentError):
    """The file is not a usable video; the message says what is wrong with it."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    duration_s: float | None
    codec: str


@dataclasses.dataclass(frozen=True)
class FileResult:
    sid: str
    frames: int
    reason: str  # "completed" | "no_face" | "not_tracked" | "file_truncated" | "cancelled" | "ended_elsewhere"
    error: str = ""


def probe(path: Path, min_frames: int = 1) -> VideoInfo:
    """Open ``path``, decode its first frame and count its packets up to ``min_frames``; raise
    :class:`VideoFileError` when that is impossible or the file is shorter."""
    if not path.is_file():
        raise VideoFileError(f"{path.name}: no such file")
    if path.stat().st_size == 0:
        raise VideoFileError(f"{path.name} is empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoFileError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            for _frame in container.decode(stream):
                break
            else:
                raise VideoFileError(f"{path.name} has no decodable video frame")
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 25.0
            duration = container.duration / 1_000_000 if container.duration else None
            info = VideoInfo(stream.width, stream.height, fps, duration, stream.codec_context.name)
        if min_frames > 1:
            count = count_frames(path, min_frames)
            if count < min_frames:
                raise VideoFileError(
                    f"{path.name} has {count} video frame{'s' * (count != 1)}; at least {min_frames} are needed "
                    "to track a face (send a longer recording)"
                )
        return info
    except av.error.FFmpegError as exc:
        raise VideoFileError(f"{path.name} is not a readable video: {exc.strerror or exc}") from None


def count_frames(path: Path, up_to: int) -> int:
    """Video packets in ``path``, counted (without decoding) until ``up_to``."""
    n = 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                n += 1
                if n >= up_to:
                    break
    return n


class _Reader:
    """Decodes one file frame by frame (each call runs in a worker thread) and judges completeness at the end."""

    def __init__(self, path: Path, shaper: FrameShaper) -> None:
        self._path = path
        self._shaper = shaper
        self._container = av.open(str(path))
        self._stream = self._container.streams.video[0]
        self._frames: Iterator[av.VideoFrame] = self._decode()
        self._packet_end = 0
        self.last_time = 0.0
        self.count = 0

    def _decode(self) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(self._stream):
            if packet.pos is not None and packet.pos >= 0 and packet.size:
                self._packet_end = max(self._packet_end, packet.pos + packet.size)
            yield from packet.decode()

    def next_frame(self) -> av.VideoFrame | None:
        try:
            frame = next(self._frames, None)
        except av.error.FFmpegError as exc:
            raise VideoFileError(
                f"{self._path.name} is corrupt or truncated after {self.count} frames: {exc}"
            ) from None
        if frame is not None:
            self.count += 1
            self.last_time = float(frame.time) if frame.time is not None else self.count / 25.0
        return frame

    def check_complete(self, fps: float) -> None:
        declared = self._container.duration / 1_000_000 if self._container.duration else None
        if declared and self.last_time + 2.0 / fps < declared * 0.95:
            raise VideoFileError(
                f"{self._path.name} is truncated: decoded {self.last_time + 1 / fps:.2f} s of {declared:.2f} s"
            )
        raw = self._stream.codec_context.name == "rawvideo"
        if raw and self._packet_end and os.path.getsize(self._path) > self._packet_end:
            raise VideoFileError(f"{self._path.name} is truncated: its last raw frame is incomplete")

    def close(self) -> None:
        self._container.close()


async def ingest_file(
    bus: Bus,
    sessions: IngestSessions,
    settings: IngestSettings,
    path: Path,
    *,
    protocol: str,
    task: str = "",
    patient_id: str = "",
    pace: Pace = "native",
    sid: str | None = None,
    info: VideoInfo | None = None,
    consent: Consent | None = None,
    counters: IngestCounters | None = None,
) -> FileResult:
    """Publish every frame of ``path`` as a session of its own; return how it ended."""
    if info is None:
        info = await asyncio.to_thread(probe, path)
    if sid is None:
        spec = SessionSpec(patient_id=patient_id or path.stem, protocol=protocol,
                           consent=consent or Consent(live_scoring=True), fps=info.fps, source="file")  # fmt: skip
        sid = await sessions.create(spec)
    slog = session_logger(log, sid)
    await sessions.start(sid, protocol)
    shaper = FrameShaper(settings.max_width, settings.encoding, settings.jpeg_quality, settings.max_height)
    pump = FramePump(bus, sid, shaper, max_fps=max(settings.max_fps, info.fps * 1.01), counters=counters)
    reader = await asyncio.to_thread(_Reader, path, shaper)
    tally = ObsTally(bus, sid)
    tally.start()
    reason, error = "completed", ""
    try:
        if task:
            await sessions.event(sid, protocol, "task_start", task=task, rep=1, seq=0)
        t0 = time.time()
        wall0 = time.monotonic()
        while True:
            frame = await asyncio.to_thread(reader.next_frame)
            if frame is None:
                break
            offset = reader.last_time
            second = pump.next_seq == 1  # the first frame is out: wait until a tracker takes it
            if pace == "native":
                delay = wall0 + offset - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif not await _wait_for_tracker(bus, sid, settings.fast_backlog, settings.tracker_wait_s, second):
                reason, error = "not_tracked", NOT_TRACKED
                break
            if await pump.publish(frame, t0 + offset) is None:
                reason = "ended_elsewhere"
                break
        if reason == "completed":
            await asyncio.to_thread(reader.check_complete, info.fps)
    except VideoFileError as exc:
        reason, error = "file_truncated", str(exc)
        slog.warning("%s", exc)
    except asyncio.CancelledError:
        reason = "cancelled"
        raise
    finally:
        await asyncio.to_thread(reader.close)
        if task:
            await sessions.event(sid, protocol, "task_end", task=task, rep=1, seq=pump.last_seq)
        if reason == "completed":  # every frame went out: the observations say how it ended
            reason, error = await tally.finish(pump.last_seq, settings.tracker_wait_s)
        await tally.stop()
        await sessions.end(sid, reason, {"frames": pump.next_seq, **tally.stats()})
    slog.info("file %s: %d frames published, %d observed, %d with a face (%s)", path.name, pump.next_seq,
              tally.observed, tally.faces, reason)  # fmt: skip
    return FileResult(sid, pump.next_seq, reason, error)


async def _wait_for_tracker(bus: Bus, sid: str, max_backlog: int, wait_s: float, need_reader: bool) -> bool:
    """Fast mode: wait while the tracker group has ``max_backlog`` frames unread; with ``need_reader`` (after the
    first frame) also until a tracker has read the session at all. False when no reader came, or the backlog did
    not move, for ``wait_s``."""
    deadline = time.monotonic() + wait_s
    last: int | None = None
    while True:
        backlog = await group_backlog(bus, FRAMES, sid, limit=max_backlog + 1)
        if backlog is None and not need_reader:  # the reader left: nobody to wait for
            return True
        if backlog is not None and backlog < max_backlog:
            return True
        if backlog != last:
            last, deadline = backlog, time.monotonic() + wait_s
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
