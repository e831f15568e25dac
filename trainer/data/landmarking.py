"""Dataset videos -> observations with the live tracker's own code -> the arrays the feature cache is built from.

A clip that comes as a full-frame source recording (no distributed trajectory files) is decoded with PyAV and fed,
frame by frame, through :class:`tracker.pipeline.FramePipeline`, the code the tracker service runs on live
sessions: the same landmarker choice (``FEQA_TRACKER_*`` settings: MediaPipe Face Mesh by default, insightface
SCRFD + 2d106det, or the phantom's truth for phantom videos when asked for), face choice and tracking, the reference crop-to-256 rule, integer crop landmarks and
colours at the landmarks. Several clips run at once as separate "sessions", so a batched landmarker sees one batch
per tick, as in the service.

Frames where the tracker finds no face are filled from the nearest frame that has one
(:func:`common.features.fill_missing_frames`, the rule the scorer applies to live windows); a clip whose face
fraction is below the tracker's ``min_face_fraction`` (the live window rule) is refused, with the reasons counted.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from common import features
from common.crop import REF_SIZE
from common.errors import ConfigError
from common.messages import Consent, Frame, SessionInfo
from phantom.video import load_truth, sidecar_path
from tracker.landmarker import Landmarker
from tracker.landmarkers import LandmarkerChoice
from tracker.pipeline import FrameJob, FramePipeline
from tracker.mediapipe.models import RECORD
from tracker.settings import TrackerSettings
from trainer.data.records import ClipRecord

log = logging.getLogger(__name__)

LANDMARKING_VERSION = 2
"""Bumped whenever this module changes what it produces; part of every cache key built from videos."""

Progress = Callable[[int], None]
_IDENTITY_FIELDS = ("landmarker", "detect_every", "keep_iou", "drift_iou", "min_face_px", "min_face_fraction")
_MODE_FIELDS = {
    "insightface": ("det_size", "det_thresh", "nms_thresh"),
    "mediapipe": ("face_min_score", "face_nms_iou", "mesh_min_presence", "iris", "smooth", "smooth_min_cutoff_hz",
                  "smooth_beta"),
    "phantom": (),
}  # fmt: skip


@dataclasses.dataclass(frozen=True, eq=False)
class LandmarkedClip:
    """One clip observed by the tracker: per frame 106 integer landmarks in the 256 crop, colours, the crop."""

    landmarks: npt.NDArray[np.float32]  # [T, 106, 2], NaN where no face
    colours: npt.NDArray[np.uint8]  # [T, 106, 3]
    crops: npt.NDArray[np.uint8]  # [T, 256, 256, 3] RGB, zeros where no face
    face: npt.NDArray[np.bool_]  # [T]
    reasons: dict[str, int]  # why frames had no face, counted
    landmarker: str = ""  # name of the landmarker that observed it (the scorer matches models on it)
    times: npt.NDArray[np.float64] | None = None  # [T] presentation time of each frame in the video, seconds

    @property
    def face_fraction(self) -> float:
        return float(self.face.mean()) if self.face.size else 0.0

    def filled(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """(landmarks, colours, crops) with faceless frames taken from the nearest frame with a face."""
        idx = features.fill_missing_frames(self.face)
        return self.landmarks[idx], self.colours[idx], self.crops[idx]


@dataclasses.dataclass(frozen=True, eq=False)
class Outcome:
    """What landmarking made of one clip: the observations, or the reason it was refused."""

    record: ClipRecord
    clip: LandmarkedClip | None
    error: str = ""
    config_problem: bool = False  # the setup, not this clip, is at fault (no landmarker): stop, don't skip


def session_info(sid: str, video: Path) -> SessionInfo:
    """What the tracker's session hash would say about this recording: a phantom's spec when the video carries a
    phantom truth sidecar (so the phantom landmarker can serve it), nothing more otherwise."""
    base = SessionInfo(sid=sid, patient_id=video.stem, protocol="", consent=Consent(), state="live", source="file",
                       fps=0.0, created_ts=0.0)  # fmt: skip
    side = sidecar_path(video)
    if not side.is_file():
        return base
    try:
        truth = load_truth(side)
    except (ValueError, OSError) as exc:
        log.warning("%s: unreadable phantom sidecar, landmarking it as a real recording: %s", video.name, exc)
        return base
    return dataclasses.replace(base, phantom=truth.spec_json, fps=float(truth.fps), width=int(truth.width),
                               height=int(truth.height))  # fmt: skip


FOLDER_FPS = 30.0
"""Capture rate assumed for a clip given as a folder of frame images (UNBC-McMaster): only spaces timestamps."""
FOLDER_SUFFIXES = (".png", ".jpg", ".jpeg")


def _folder_frames(record: ClipRecord, folder: Path) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FOLDER_SUFFIXES)
    stop = record.video_end if record.video_end >= 0 else len(files)
    for i in range(record.video_start, min(stop, len(files))):
        bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConfigError(f"cannot decode frame {files[i]}")
        yield i / FOLDER_FPS, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _frames(record: ClipRecord) -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
    """(time s, RGB frame) of the clip's frames ``[video_start, video_end)``, from a video file or a folder of frame
    images; raises ``av.FFmpegError`` (or :class:`ConfigError` for a frame image) on bad data."""
    if record.video is None:
        raise ConfigError(f"clip {record.clip_id} has no source video")
    if record.video.is_dir():
        yield from _folder_frames(record, record.video)
        return
    with av.open(str(record.video)) as container:
        if not container.streams.video:
            raise ConfigError(f"{record.video.name} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stop = record.video_end if record.video_end >= 0 else None
        rate = float(stream.average_rate or stream.guessed_rate or 25.0)
        for i, frame in enumerate(container.decode(stream)):
            if stop is not None and i >= stop:
                return
            if i >= record.video_start:
                rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                yield (float(frame.time) if frame.time is not None else i / rate), rgb


class _Running:
    """One clip being landmarked: its decoder and what the tracker said so far."""

    def __init__(self, record: ClipRecord, sid: str, landmarker: Landmarker) -> None:
        self.record = record
        self.sid = sid
        self.landmarker = landmarker
        self.frames = _frames(record)
        self.seq = 0
        self.landmarks: list[npt.NDArray[np.float32]] = []
        self.colours: list[npt.NDArray[np.uint8]] = []
        self.crops: list[npt.NDArray[np.uint8]] = []
        self.face: list[bool] = []
        self.times: list[float] = []
        self.reasons: collections.Counter[str] = collections.Counter()

    def result(self) -> LandmarkedClip:
        return LandmarkedClip(
            landmarks=np.stack(self.landmarks).astype(np.float32),
            colours=np.stack(self.colours),
            crops=np.stack(self.crops),
            face=np.array(self.face, dtype=bool),
            reasons=dict(self.reasons),
            landmarker=self.landmarker.name,
            times=np.array(self.times, dtype=np.float64),
        )


class VideoLandmarking:
    """Landmarks dataset videos with the tracker's pipeline; built from (and identified by) tracker settings."""

    def __init__(self, settings: TrackerSettings, clips_at_once: int = 8) -> None:
        self.settings = settings.model_copy(update={"crop_size": REF_SIZE})
        self.clips_at_once = max(1, clips_at_once)
        self._choice: LandmarkerChoice | None = None
        self._ids = itertools.count()

    @classmethod
    def from_environment(cls) -> VideoLandmarking:
        """The landmarking the tracker service would do, from the ``FEQA_TRACKER_*`` settings."""
        return cls(TrackerSettings())

    @property
    def landmarker_name(self) -> str:
        """The identity the observations carry (the landmarker's ``name``: ``mediapipe-facemesh/<table version>``,
        ``insightface`` or ``phantom``), recorded with the features and in the exported model's manifest."""
        if self.settings.landmarker == "mediapipe":
            from tracker.mediapipe.table import default_table

            return default_table().identity
        return self.settings.landmarker

    def identity(self) -> str:
        """A string that changes whenever the landmarks this object produces could change."""
        s = self.settings
        parts = [f"v{LANDMARKING_VERSION}", self.landmarker_name, *(f"{k}={getattr(s, k)}" for k in _IDENTITY_FIELDS)]
        parts += [f"{k}={getattr(s, k)}" for k in _MODE_FIELDS[s.landmarker]]
        if s.landmarker == "insightface":
            for name in (s.det_model, s.landmark_model):
                path = Path(s.model_dir) / name
                parts.append(f"{name}:{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else name)
        elif s.landmarker == "mediapipe":
            record = Path(s.mediapipe_dir) / RECORD  # the verified models' sha256s
            parts.append(hashlib.sha256(record.read_bytes()).hexdigest() if record.is_file() else "no-models")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    @property
    def choice(self) -> LandmarkerChoice:
        if self._choice is None:
            self._choice = LandmarkerChoice.from_settings(self.settings)
        return self._choice

    def _open(self, record: ClipRecord) -> _Running | Outcome:
        if record.video is None:
            return Outcome(record, None, "no source video")
        sid = f"dataset-{next(self._ids)}"
        landmarker, reason = self.choice.for_session(sid, session_info(sid, record.video))
        if landmarker is None:
            hint = (
                "FEQA_TRACKER_LANDMARKER=phantom serves phantom videos only (their truth sidecar names the patient); "
                "use the default mediapipe landmarker for other recordings"
                if self.settings.landmarker == "phantom"
                else f"the {self.settings.landmarker} landmarker refused the session"
            )
            return Outcome(record, None, f"no landmarker can serve {record.video.name} ({reason}): {hint}", True)
        return _Running(record, sid, landmarker)

    def _close(self, run: _Running, pipeline: FramePipeline, error: str = "") -> Outcome:
        pipeline.forget(run.sid)
        self.choice.close(run.sid)
        if error:
            return Outcome(run.record, None, error)
        if not run.face:
            return Outcome(run.record, None, f"{run.record.video}: no frames in the clip's range")
        clip = run.result()
        if not clip.face.any() or clip.face_fraction < self.settings.min_face_fraction:
            why = ", ".join(f"{k} {v}" for k, v in sorted(clip.reasons.items()))
            return Outcome(
                run.record,
                None,
                f"a face in only {clip.face_fraction:.0%} of {clip.face.size} frames "
                f"(need {self.settings.min_face_fraction:.0%}; {why})",
            )
        return Outcome(run.record, clip)

    def run(self, records: Sequence[ClipRecord], progress: Progress | None = None) -> Iterator[Outcome]:
        """Landmark ``records`` (``clips_at_once`` at a time); yields one outcome per record as each finishes."""
        pipeline = FramePipeline(self.settings)
        queue = collections.deque(records)
        active: list[_Running] = []
        while queue or active:
            while queue and len(active) < self.clips_at_once:
                opened = self._open(queue.popleft())
                if isinstance(opened, Outcome):
                    yield opened
                else:
                    active.append(opened)
            jobs: list[FrameJob] = []
            ticking: list[_Running] = []
            for run in list(active):
                try:
                    item = next(run.frames, None)
                except (av.FFmpegError, OSError, ConfigError) as exc:
                    active.remove(run)
                    yield self._close(run, pipeline, f"{run.record.video}: cannot decode: {exc}")
                    continue
                if item is None:
                    active.remove(run)
                    yield self._close(run, pipeline)
                    continue
                ts, rgb = item
                h, w = rgb.shape[:2]
                frame = Frame(sid=run.sid, seq=run.seq, capture_ts=ts, width=w, height=h, encoding="rgb24",
                              data=rgb.tobytes())  # fmt: skip
                run.seq += 1
                jobs.append(FrameJob(frame, run.landmarker))
                run.times.append(ts)
                ticking.append(run)
            for run, res in zip(ticking, pipeline.process(jobs), strict=True):
                obs = res.obs
                if obs.face and obs.landmarks_crop is not None and obs.colours is not None and res.crop is not None:
                    run.landmarks.append(obs.landmarks_crop)
                    run.colours.append(obs.colours)
                    run.crops.append(res.crop.image)
                    run.face.append(True)
                else:
                    run.landmarks.append(np.full((features.NUM_POINTS_106, 2), np.nan, np.float32))
                    run.colours.append(np.zeros((features.NUM_POINTS_106, 3), np.uint8))
                    run.crops.append(np.zeros((REF_SIZE, REF_SIZE, 3), np.uint8))
                    run.face.append(False)
                    run.reasons[obs.reason or "no_face"] += 1
            if progress is not None and jobs:
                progress(len(jobs))
