"""The per-tick frame pipeline: decode, detect or track, landmarks, reference crop, pose, colours, quality.

:meth:`FramePipeline.process` is synchronous and CPU/GPU heavy; the worker runs it in a thread. Frames of all
sessions in a tick share one detector call and one landmark call per landmarker and round (round r holds the r-th
frame of each session, because a session's frames depend on each other through its track). Nothing a frame can
contain raises out of here: every frame yields an :class:`~common.messages.Obs`, with ``reason`` saying what went
wrong when there is no face.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from common.crop import colours_at, reference_crop
from common.errors import DecodeError
from common.framecodec import decode_frame
from common.logs import session_logger
from common.messages import Crop, Frame, Obs
from tracker.geometry import choose_face
from tracker.landmarker import Detection, FrameInput, Landmarker, Points
from tracker.pose import head_pose
from tracker.quality import FrameSample, image_quality
from tracker.refcrop import rgb_crop
from tracker.settings import TrackerSettings
from tracker.tracking import FaceTrack

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FrameJob:
    """One frame to observe, with the landmarker that serves its session ("" reason) or why none can."""

    frame: Frame
    landmarker: Landmarker | None
    reason: str = ""


@dataclasses.dataclass
class FrameResult:
    obs: Obs
    crop: Crop | None
    sample: FrameSample


@dataclasses.dataclass
class _Pending:
    job: FrameJob
    inp: FrameInput
    track: FaceTrack
    det: Detection | None = None
    faces: int = -1
    box: Points | None = None
    landmarks: Points | None = None
    result: FrameResult | None = None


class FramePipeline:
    """Holds the per-session tracks; not thread-safe (one tick at a time)."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.s = settings
        self.tracks: dict[str, FaceTrack] = {}
        self.last_scores: dict[str, float] = {}  # the detector score carried through tracked frames

    def forget(self, sid: str) -> None:
        self.tracks.pop(sid, None)
        self.last_scores.pop(sid, None)

    def process(self, jobs: Sequence[FrameJob]) -> list[FrameResult]:
        """Observe ``jobs`` (any sessions, each session's frames in seq order); results in the same order."""
        pending: list[_Pending | FrameResult] = [self._prepare(j) for j in jobs]
        live = [p for p in pending if isinstance(p, _Pending)]
        rounds: list[list[_Pending]] = []
        seen: dict[str, int] = {}
        for p in live:
            r = seen.get(p.inp.sid, 0)
            seen[p.inp.sid] = r + 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(p)
        for batch in rounds:
            groups: dict[int, list[_Pending]] = {}
            for p in batch:
                groups.setdefault(id(p.job.landmarker), []).append(p)
            for group in groups.values():
                self._run_group(group)
        out: list[FrameResult] = []
        for item in pending:
            if isinstance(item, FrameResult):
                out.append(item)
            else:  # a frame no round finished would be a bug; it still gets an observation
                out.append(item.result or self._no_face(item.job.frame, "internal_error"))
        return out

    # ------------------------------------------------------------------------------------------ stages

    def _prepare(self, job: FrameJob) -> _Pending | FrameResult:
        f = job.frame
        if job.landmarker is None:
            return self._no_face(f, job.reason or "no_landmarker")
        if f.width * f.height > self.s.max_frame_pixels:
            return self._no_face(f, "frame_too_large")
        try:
            rgb = decode_frame(f.data, f.width, f.height, f.encoding)
        except DecodeError as exc:
            session_logger(log, f.sid).warning("frame %d: %s", f.seq, exc)
            return self._no_face(f, "corrupt_frame")
        track = self.tracks.setdefault(f.sid, FaceTrack())
        track.sized(f.width, f.height)
        return _Pending(job, FrameInput(f.sid, f.seq, rgb, f.source_index, f.capture_ts), track)

    def _run_group(self, group: list[_Pending]) -> None:
        lm = group[0].job.landmarker
        if lm is None:
            return
        try:
            to_detect = [p for p in group if p.track.needs_detection(self.s.detect_every)]
            self._detect(lm, to_detect)
            tracked = [p for p in group if p.box is None and p.result is None]
            for p in tracked:
                p.box = p.track.box
            self._landmarks(lm, [p for p in group if p.box is not None and p.result is None])
            redo = [p for p in tracked if p.landmarks is not None and p.track.drifted(p.landmarks, self.s.drift_iou)]
            if redo:
                for p in redo:
                    p.box = p.landmarks = None
                self._detect(lm, redo)
                self._landmarks(lm, [p for p in redo if p.box is not None and p.result is None])
            for p in group:
                if p.result is None:
                    p.result = self._finish(p)
        except Exception:  # a landmarker failure must not kill the worker: the frames get a reason instead
            log.exception("landmarker %s failed on %d frames", lm.name, len(group))
            for p in group:
                p.track.lose()
                if p.result is None:
                    p.result = self._no_face(p.job.frame, "landmarker_error")

    def _detect(self, lm: Landmarker, items: list[_Pending]) -> None:
        if not items:
            return
        found = lm.detect([p.inp for p in items])
        for p, dets in zip(items, found, strict=True):
            f = p.job.frame
            p.faces = len(dets)
            idx = choose_face(dets, f.width, f.height, p.track.box, self.s.keep_iou)
            if idx < 0:
                p.track.lose()
                p.result = self._no_face(f, "no_face", faces=0)
                continue
            det = dets[idx]
            if min(det.box[2] - det.box[0], det.box[3] - det.box[1]) < self.s.min_face_px:
                p.track.lose()
                p.result = self._no_face(f, "tiny_face", det=det, faces=len(dets))
                continue
            p.det = det
            p.box = det.box

    def _landmarks(self, lm: Landmarker, items: list[_Pending]) -> None:
        if not items:
            return
        boxes = [p.box for p in items if p.box is not None]
        for p, pts in zip(items, lm.landmarks([p.inp for p in items], boxes), strict=True):
            if pts.shape != (106, 2) or not np.isfinite(pts).all():
                p.track.lose()
                p.result = self._no_face(p.job.frame, "landmark_failure", det=p.det)
                continue
            p.landmarks = pts.astype(np.float32)

    def _finish(self, p: _Pending) -> FrameResult:
        f = p.job.frame
        if p.landmarks is None or p.box is None:
            p.track.lose()
            return self._no_face(f, "no_face", det=p.det)
        box = p.track.detected(p.box, p.landmarks) if p.det is not None else p.track.tracked(p.landmarks)
        ref = reference_crop(p.inp.rgb, box, p.landmarks)
        if ref is None:
            p.track.lose()
            return self._no_face(f, "face_out_of_frame", det=p.det)
        if p.det is not None:
            score = self.last_scores[f.sid] = p.det.score
        else:
            score = self.last_scores.get(f.sid, 0.0)
        pose = head_pose(p.landmarks, f.width, f.height)
        brightness, sharpness = image_quality(ref.image)
        face_px = float(min(box[2] - box[0], box[3] - box[1]))
        quality = {
            "det_score": score,
            "face_px": face_px,
            "face_frac": float(box[3] - box[1]) / f.height,
            "brightness": brightness,
            "sharpness": sharpness,
            "tracked": 0.0 if p.det is not None else 1.0,
        }
        if p.faces >= 0:
            quality["faces"] = float(p.faces)
        obs = Obs(
            sid=f.sid, seq=f.seq, capture_ts=f.capture_ts, frame_w=f.width, frame_h=f.height, face=True,
            reason="several_faces" if p.faces > 1 else "", det_score=score, box=np.asarray(box, dtype=np.float32),
            landmarks=p.landmarks, landmarks_crop=ref.landmarks.astype(np.float32), pose=pose,
            colours=colours_at(ref), quality=quality,
        )  # fmt: skip
        crop = Crop(sid=f.sid, seq=f.seq, capture_ts=f.capture_ts, image=rgb_crop(ref, self.s.crop_size),
                    box=ref.box.astype(np.float32))  # fmt: skip
        sample = FrameSample(f.seq, True, score, float(pose[0]), float(pose[1]), brightness, sharpness, face_px)
        return FrameResult(obs, crop, sample)

    @staticmethod
    def _no_face(f: Frame, reason: str, det: Detection | None = None, faces: int = -1) -> FrameResult:
        quality = {"faces": float(faces)} if faces >= 0 else {}
        obs = Obs(
            sid=f.sid, seq=f.seq, capture_ts=f.capture_ts, frame_w=f.width, frame_h=f.height, face=False,
            reason=reason, det_score=det.score if det is not None else 0.0,
            box=None if det is None else np.asarray(det.box, dtype=np.float32), quality=quality,
        )  # fmt: skip
        return FrameResult(obs, None, FrameSample(f.seq, False))
