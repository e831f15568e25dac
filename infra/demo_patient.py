"""A phantom patient on the ingest's public path: it joins with its link's token (giving consent), calls over
WebRTC with an aiortc sender playing the phantom's whole protocol in real time, marks each task repetition with the
page's task events, and hangs up when the protocol is done.

A task repetition is one window of the demo models' clip length (``CLIP_FRAMES``, 4.8 s), ``task_start`` on its
first frame and ``task_end`` on its last: the clips the models were trained on (:mod:`infra.demo_models`), cut from
a subject's continuous performance of one task at any phase. The windows of one task follow each other inside that
task's own performance, each starting a few frames before its repetition's movement onset where the previous window
leaves room; the phantom performs as many repetitions as it takes for them to fit (:func:`performance`), more than
it marks when its repetitions are short. No window reaches into another task's movement.

Media stays on loopback when the ingest does: the sender offers exactly the addresses it is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from common.logs import session_logger
from infra.demo_models import CLIP_FRAMES, FPS, HEIGHT, LIVE_LEAD, WIDTH, onsets
from ingest.ice import offered_host_addresses, rtc_configuration
from phantom.face import Phantom
from phantom.script import Segment, build_script
from phantom.spec import PatientSpec
from phantom.track import CLOCK_RATE, PhantomTrack

log = logging.getLogger(__name__)


class PatientError(RuntimeError):
    """The ingest refused the phantom patient (the message says which step and why)."""


@dataclasses.dataclass(frozen=True)
class Mark:
    frame: int  # phantom frame at which the event is sent
    type: str  # task_start | task_end
    task: str
    rep: int


def _blocks(segments: tuple[Segment, ...] | list[Segment]) -> dict[str, list[Segment]]:
    """Each task's repetitions, in protocol order (a task's repetitions follow each other)."""
    out: dict[str, list[Segment]] = {}
    for seg in segments:
        out.setdefault(seg.task, []).append(seg)
    return out


MAX_EXTRA_REPS = 8


def performance(spec: PatientSpec) -> PatientSpec:
    """The phantom a demo patient performs for ``spec``: the same person and severity with the fewest repetitions
    of each task (``spec.reps`` or more) in which ``spec.reps`` windows of ``CLIP_FRAMES`` fit one after another
    inside every task's own performance."""
    for reps in range(spec.reps, spec.reps + MAX_EXTRA_REPS + 1):
        performed = dataclasses.replace(spec, reps=reps)
        blocks = _blocks(build_script(performed, FPS).segments)
        if all(segs[-1].end - segs[0].start >= spec.reps * CLIP_FRAMES for segs in blocks.values()):
            return performed
    raise ValueError(f"phantom {spec.seed}: {spec.reps} task windows of {CLIP_FRAMES} frames do not fit in "
                     f"{spec.reps + MAX_EXTRA_REPS} repetitions")  # fmt: skip


def task_marks(phantom: Phantom, reps: int = 0) -> list[Mark]:
    """The task events of the phantom's whole script, in frame order: ``reps`` windows per task (0: one per
    repetition the phantom performs), numbered 0.. within each task."""
    first_moving = {(task, rep): onset for task, rep, onset in onsets(phantom)}
    n = CLIP_FRAMES
    out = []
    for task, segs in _blocks(phantom.schedule).items():
        want = reps or len(segs)
        begin, end = segs[0].start, segs[-1].end
        if end - begin < want * n or want > len(segs):
            raise ValueError(f"{task}: {want} windows of {n} frames do not fit its {len(segs)} repetitions "
                             f"({end - begin} frames)")  # fmt: skip
        free = begin  # the first frame after the previous window
        for k in range(want):
            start = min(max(first_moving[(task, segs[k].rep)] - LIVE_LEAD, free), end - (want - k) * n)
            out.append(Mark(start, "task_start", task, k))
            out.append(Mark(start + n - 1, "task_end", task, k))
            free = start + n
    return out


class _CountingTrack(PhantomTrack):
    """The phantom track that remembers the phantom frame it sent last (for the task events)."""

    def __init__(self, phantom: Phantom) -> None:
        super().__init__(phantom, loop=False)
        self.last_frame = -1
        self.finished = asyncio.Event()

    async def recv(self) -> VideoFrame:
        try:
            frame = await super().recv()
        except MediaStreamError:
            self.finished.set()
            raise
        if frame.pts is not None:
            self.last_frame = round(frame.pts * self.phantom.fps / CLOCK_RATE)
        return frame


@dataclasses.dataclass
class PatientRun:
    """What one phantom patient did."""

    sid: str
    spec: PatientSpec
    frames_sent: int = 0
    frames_dropped: int = 0
    events: list[Mark] = dataclasses.field(default_factory=list)
    end_state: dict[str, Any] = dataclasses.field(default_factory=dict)


# The ingest (uvicorn) closes a connection idle for 5 s, and httpx reuses one idle for up to 5 s: a task's two events
# are one window (4.8 s) apart, so the task_end went out on a connection the ingest was closing just then (an
# httpx.ReadError that ended the patient; seen in the soak on a loaded machine). Idle connections are dropped well
# before the ingest's limit instead (a new one on loopback costs a millisecond).
KEEPALIVE = httpx.Limits(keepalive_expiry=2.0)


def _check(res: httpx.Response, step: str) -> dict[str, Any]:
    if res.status_code >= 400:
        raise PatientError(f"{step}: the ingest answered {res.status_code}: {res.text[:300]}")
    body: dict[str, Any] = res.json()
    return body


async def run_patient(
    ingest_url: str,
    token: str,
    spec: PatientSpec,
    *,
    host_addresses: tuple[str, ...] = ("127.0.0.1",),
    stop: asyncio.Event | None = None,
) -> PatientRun:
    """Join with ``token``, stream the phantom's protocol (:func:`performance`), mark ``spec.reps`` windows of each
    task, hang up; return what was sent."""
    phantom = Phantom(performance(spec), WIDTH, HEIGHT, FPS)
    marks = task_marks(phantom, spec.reps)
    async with httpx.AsyncClient(base_url=ingest_url, timeout=15, limits=KEEPALIVE) as http:
        joined = _check(await http.post(f"/api/join/{token}", json={"consent": True}), "join")
        sid, key = str(joined["sid"]), str(joined["key"])
        slog = session_logger(log, sid)
        run = PatientRun(sid, spec)
        headers = {"X-Session-Key": key}
        with offered_host_addresses(list(host_addresses)):
            pc = RTCPeerConnection(rtc_configuration([]))
        track = _CountingTrack(phantom)
        try:
            pc.addTransceiver(track, direction="sendonly")
            with offered_host_addresses(list(host_addresses)):
                await pc.setLocalDescription(await pc.createOffer())
            local = pc.localDescription
            answer = _check(await http.post(f"/api/sessions/{sid}/offer", json={"sdp": local.sdp, "type": local.type},
                                            headers=headers), "offer")  # fmt: skip
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            slog.info("phantom patient (severity %g) streaming %d frames", spec.severity, phantom.n_frames)
            pending = list(marks)
            t0 = time.monotonic()
            while not track.finished.is_set() and not (stop is not None and stop.is_set()):
                while pending and track.last_frame >= pending[0].frame:
                    mark = pending.pop(0)
                    body = {"type": mark.type, "task": mark.task, "rep": mark.rep}
                    _check(await http.post(f"/api/sessions/{sid}/events", json=body, headers=headers), mark.type)
                    run.events.append(mark)
                if pc.connectionState in ("failed", "closed"):
                    took = time.monotonic() - t0
                    raise PatientError(f"the WebRTC connection {pc.connectionState} after {took:.1f} s")
                await asyncio.sleep(0.5 / FPS)
            run.frames_sent, run.frames_dropped = track.sent, track.dropped
            reason = "completed" if track.finished.is_set() else "hangup"
            run.end_state = _check(await http.post(f"/api/sessions/{sid}/end", json={"reason": reason},
                                                   headers=headers), "end")  # fmt: skip
            slog.info("phantom patient done: %d frames sent, %d dropped, %s", track.sent, track.dropped, run.end_state)
        finally:
            await pc.close()
    return run
