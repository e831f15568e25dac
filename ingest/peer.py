"""One patient's WebRTC connection: answer the offer, receive video into the frame pump (each frame with its
capture time from the sender's RTP clock, ingest.clock, and its arrival time), end on hangup, ICE failure, connect
or idle timeout (reason recorded once).

A connection that closes or fails does not end the session at once: the patient may come back (a reload, a network
change) within ``resume_grace_s`` and the new connection takes the session over (:meth:`IngestPeer.detach` frees
the old one without ending anything; the new peer continues the same frame pump, so frame numbers and capture
times keep rising; the new connection has its own sender clock). Only when nobody came back does the session end,
with the reason the connection gave (``hangup``, ``ice_failed``).

Each video receiver gets :class:`ingest.jitter.MarkerJitterBuffer` before media flows: a frame goes to the decoder
when its last packet arrives, not one frame period later when the next frame starts (aiortc's own rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError

from common.bus import Bus
from common.logs import session_logger
from common.tasks import stop_tasks
from ingest import jitter
from ingest.clock import SenderClock, watch_sender_reports
from ingest.framing import FrameShaper
from ingest.ice import offered_host_addresses, rtc_configuration
from ingest.pump import FramePump, IngestCounters
from ingest.sdp import OfferError
from ingest.sessions import IngestSessions
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)
_CLOSE_WAIT_S = 5.0  # how long closing waits for this peer's tasks, and then for aiortc


class IngestPeer:
    """Owns an ``RTCPeerConnection`` and every task it starts; :meth:`close` frees all of it."""

    def __init__(
        self,
        sid: str,
        protocol: str,
        settings: IngestSettings,
        bus: Bus,
        sessions: IngestSessions,
        on_closed: Callable[[IngestPeer], Awaitable[None]],
        counters: IngestCounters | None = None,
        pump: FramePump | None = None,
    ) -> None:
        self.sid = sid
        self.protocol = protocol
        self._settings = settings
        self._sessions = sessions
        self._on_closed = on_closed
        self._log = session_logger(log, sid)
        credential = settings.turn_credential.get_secret_value() if settings.turn_credential else None
        self.pc = RTCPeerConnection(rtc_configuration(settings.ice_servers, settings.turn_username, credential))
        shaper = FrameShaper(settings.max_width, settings.encoding, settings.jpeg_quality, settings.max_height)
        self.pump = pump or FramePump(bus, sid, shaper, settings.max_fps, on_first_frame=self._record_size,
                                      on_refused=self._refused, counters=counters)  # fmt: skip
        self.clock = SenderClock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self._last_frame: float | None = None
        self._lost: tuple[str, float] | None = None  # why and when the connection went away (resumable meanwhile)
        self.end_reason: str | None = None
        self.current: IngestPeer = self  # the peer that took over this one's pump (a resume), for its callbacks
        self.closed = asyncio.Event()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str) -> str:
        """Apply the browser's offer and return our answer (host candidates per the settings); :meth:`start` then
        runs the peer. Any way aiortc refuses the offer is an :class:`OfferError`."""
        try:  # aiortc's parser fails on bad input in many ways (StopIteration, ValueError, IndexError ...)
            aiortc_sdp.SessionDescription.parse(offer_sdp)
        except Exception as exc:
            raise OfferError(f"malformed SDP offer ({type(exc).__name__}: {str(exc)[:60]})") from exc
        try:
            with offered_host_addresses(self._settings.ice_host_addresses):
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                kinds = {t.kind for t in self.pc.getTransceivers()}
                if "video" not in kinds:
                    raise OfferError("the offer has no video: share the camera and try again")
                for t in self.pc.getTransceivers():  # before any packet: frames decode at their last packet
                    if t.kind == "video":
                        jitter.install(t.receiver)
                answer = await self.pc.createAnswer()
                await self.pc.setLocalDescription(answer)
        except OfferError:
            raise
        except (ValueError, KeyError, IndexError, TypeError, AssertionError, AttributeError) as exc:
            raise OfferError(f"malformed SDP offer: {str(exc)[:80] or type(exc).__name__}") from exc
        except Exception as exc:  # aiortc's InvalidStateError, InternalError, OperationError (e.g. no common codec)
            if type(exc).__module__.split(".")[0] not in ("aiortc", "aioice", "pylibsrtp"):
                raise
            raise OfferError(f"the offer cannot be used: {str(exc)[:80] or type(exc).__name__}") from exc
        if self.pc.localDescription is None:
            raise OfferError("the offer cannot be answered")
        return str(self.pc.localDescription.sdp)

    def start(self) -> None:
        """Run the watchdog and the frame pump (after a successful :meth:`answer`)."""
        self._spawn(self._watchdog(), "watchdog")
        self._spawn(self.pump.run(), "pump")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._log.info("video track received")
            receiver = next((t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track), None)
            if receiver is not None:
                watch_sender_reports(receiver, self.clock, time.time)
            self._spawn(self._receive(track), "receive")
        else:
            self._log.info("ignoring %s track", track.kind)
            self._spawn(self._discard(track), "discard")

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        self._log.info("connection state %s", state)
        if state in ("failed", "closed") and self._lost is None:  # the watchdog ends it unless a resume comes
            self._lost = ("ice_failed" if state == "failed" else "hangup", time.monotonic())

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                if self._lost is None:
                    self._lost = ("hangup", time.monotonic())
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            self._last_frame = time.monotonic()
            arrival = time.time()
            self.pump.offer(frame, self.clock.capture_time(frame.pts, arrival), arrival)

    async def _discard(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def _watchdog(self) -> None:
        tick = min(0.25, self._settings.idle_timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._lost is not None:
                if now - self._lost[1] > self._settings.resume_grace_s:
                    self.request_close(self._lost[0])
                    return
                continue
            if self._last_frame is None:
                if now - self._started > self._settings.connect_timeout_s:
                    self.request_close("connect_timeout")
                    return
            elif now - self._last_frame > self._settings.idle_timeout_s:
                self.request_close("idle_timeout")
                return

    async def _record_size(self, width: int, height: int) -> None:
        await self._sessions.update(self.sid, width=width, height=height)

    def _refused(self) -> None:
        self.current.request_close("ended_elsewhere")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"ingest-{name}-{self.sid}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("%s failed: %r", task.get_name(), task.exception())
            self.request_close("internal_error")

    async def discard(self) -> None:
        """Free a peer whose offer was refused: the session stays open for a good offer."""
        self.pc.remove_all_listeners()
        self.closed.set()
        await stop_tasks(list(self._tasks), what=f"session {self.sid} task")
        await self.pc.close()

    async def detach(self, successor: IngestPeer) -> None:
        """Hand the session to ``successor`` (a resume): free this connection and its tasks, end nothing."""
        self.current = successor
        await self.discard()
        self._log.info("connection replaced by a resumed one")

    def request_close(self, reason: str) -> None:
        """Close from a callback or a task of this peer (without cancelling the caller mid-way)."""
        if self.end_reason is None:
            self.end_reason = reason
            closer = asyncio.ensure_future(self.close(reason))
            closer.set_name(f"ingest-close-{self.sid}")

    async def close(self, reason: str) -> None:
        """End the session with ``reason`` (the first reason wins) and free the connection and its tasks."""
        if self.end_reason is None:
            self.end_reason = reason
        if self.closed.is_set():
            return
        self.closed.set()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        # The session's end is recorded before the connection is torn down, and neither waits without bound: a
        # peer whose transport hangs while closing must not leave the session looking live (stuck ones are logged).
        await stop_tasks(tasks, timeout_s=_CLOSE_WAIT_S, what=f"session {self.sid} task")
        stats = self.pump.stats.as_dict()
        try:
            await self._sessions.end(self.sid, self.end_reason, stats)
        finally:
            try:
                await asyncio.wait_for(self.pc.close(), timeout=_CLOSE_WAIT_S)
            except TimeoutError:
                self._log.warning("peer connection did not close within %.0f s", _CLOSE_WAIT_S)
            self._log.info("peer closed (%s): %s", self.end_reason, stats)
            await self._on_closed(self)
