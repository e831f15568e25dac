"""The MediaPipe landmarker: BlazeFace + Face Mesh + iris on ONNX Runtime, behind the tracker's ``Landmarker``.

How it meets the tracker's two calls (both batched across every session of a tick):

* ``detect``: BlazeFace finds the faces; each one then goes through Face Mesh at once, in the tracking ROI of the
  session's previous mesh when the detection overlaps it (MediaPipe keeps tracking a face it already holds and
  uses detections only to acquire) and in the detection's ROI otherwise. A detection the mesh rejects (presence
  below ``mesh_min_presence`` in both ROIs) is dropped. Each detection's box is the framing rule of
  :func:`phantom.crop.detector_box` applied to that mesh's 106 points, so the reference crop of a detected frame
  and of a tracked frame (landmark box plus the offsets taken at detection) follow the same rule, and the crop does
  not jump with the detector's own box noise.
* ``landmarks``: a face found by ``detect`` in this frame keeps the mesh computed there; any other frame runs the
  mesh in the tracking ROI of the previous mesh; when its presence falls below ``mesh_min_presence`` the frame is
  detected again at once (the face nearest the previous box, :func:`tracker.geometry.choose_face`) and, failing
  that, has no face (NaN points: the tracker reports it). Then the iris model adds the pupils (every
  ``iris_every`` frames of a track, at once on a new track or when an eye opens or closes by more than
  ``iris_reopen``; between, the pupils keep their place in the eye's own frame, :mod:`tracker.mediapipe.iris`),
  the table maps the
  mesh to the 106 layout, and a One Euro filter per session smooths idle jitter (reset when the face is
  re-acquired elsewhere, on a gap, or lost). Times come from the frames' capture times (``seq / fps`` without).

The landmarker's ``name`` is its identity, ``mediapipe-facemesh/<table version>``: windows carry it and the scorer
only applies models trained on the same identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from common.messages import SessionInfo
from phantom.crop import detector_box
from phantom.layout import LEFT_EYE_CENTRE, RIGHT_EYE_CENTRE
from tracker.geometry import box_iou, choose_face, landmark_box
from tracker.landmarker import Detection, FrameInput, Points
from tracker.mediapipe import roi as roi_mod
from tracker.mediapipe.blazeface import LEFT_EYE, RIGHT_EYE, BlazeFace, FaceDetection
from tracker.mediapipe.facemesh import FaceMesh
from tracker.mediapipe.filter import OneEuro
from tracker.mediapipe.iris import EYE_RINGS, Iris, eye_opening
from tracker.mediapipe.models import DETECTOR, IRIS, MESH, verified_path
from tracker.mediapipe.runners import OrtRunner
from tracker.mediapipe.table import Table, default_table
from tracker.settings import TrackerSettings

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
REACQUIRE_IOU = 0.3  # a re-acquired face whose box overlaps the last output less than this restarts the filter


@dataclasses.dataclass
class _Found:
    """A face ``detect`` meshed in one frame, kept for the ``landmarks`` call that follows."""

    box: F32
    vertices: F32
    tracked: bool  # meshed in the previous mesh's ROI (not the detection's)


@dataclasses.dataclass
class _Session:
    fps: float
    filt: OneEuro
    vertices: F32 | None = None  # the last accepted raw mesh [468, 3]
    out_box: Points | None = None  # landmark box of the last output
    found_seq: int = -1
    found: list[_Found] = dataclasses.field(default_factory=list)
    filt_seq: int = -1
    filt_before: tuple[F64 | None, F64 | None, float] | None = None  # filter state before frame ``filt_seq``
    iris_local: F32 | None = None  # [2, 2] pupils of the last iris run, in that frame's eye-crop coordinates
    iris_seq: int = -1
    iris_open: F64 | None = None  # eye openings at the last iris run

    def lose(self) -> None:
        self.vertices = self.out_box = self.iris_local = None
        self.filt.reset()

    def iris_due(self, seq: int, vertices: F32, reacquired: bool, every: int, reopen: float) -> bool:
        """Whether this frame runs the iris model (else the last run's pupils are carried by the eye corners)."""
        if self.iris_local is None or self.iris_open is None or reacquired or not 0 < seq - self.iris_seq < every:
            return True
        return bool(np.abs(eye_opening(vertices) - self.iris_open).max() > reopen)


def eye_centres(vertices: F32) -> F32:
    """[2, 2] centres of the two eye outlines (image-left eye first), the pupils' stand-in without the iris model."""
    return np.stack([vertices[ring, :2].mean(axis=0) for ring in EYE_RINGS]).astype(np.float32)


def _box_roi(box: Points) -> roi_mod.Roi:
    """A mesh ROI from a framing box when there is no mesh to track from (the inverse of the framing rule)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    top = (y1 + 0.25 * y2) / 1.25  # undo detector_box's forehead raise
    w, h = x2 - x1, y2 - top
    return roi_mod.Roi((x1 + x2) / 2, (top + y2) / 2, max(w, h) * roi_mod.FACE_SCALE, 0.0)


class MediapipeLandmarker:
    """Serves every session (real or phantom) with the real models."""

    def __init__(self, detector: BlazeFace, mesh: FaceMesh, iris: Iris | None, settings: TrackerSettings,
                 table: Table | None = None) -> None:  # fmt: skip
        self.detector = detector
        self.mesh = mesh
        self.iris = iris
        self.s = settings
        self.table = table or default_table()
        self.name = self.table.identity
        self._sessions: dict[str, _Session] = {}

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> MediapipeLandmarker:
        """Load the verified models from ``settings.mediapipe_dir`` on ``settings.providers``; a missing or corrupt
        file is a :class:`~common.errors.ModelError` that says to run ``feqa tracker fetch-models``."""
        d, providers, threads = settings.mediapipe_dir, settings.providers, settings.intra_op_threads
        detector = BlazeFace(OrtRunner(verified_path(d, DETECTOR), DETECTOR, providers, threads),
                             settings.face_min_score, settings.face_nms_iou)  # fmt: skip
        mesh = FaceMesh(OrtRunner(verified_path(d, MESH), MESH, providers, threads))
        iris = Iris(OrtRunner(verified_path(d, IRIS), IRIS, providers, threads)) if settings.iris else None
        return cls(detector, mesh, iris, settings)

    # ------------------------------------------------------------------------------------------ sessions

    def open_session(self, sid: str, info: SessionInfo | None) -> str:
        """Start a session's track (``info`` gives its fps, the filter's clock when frames carry no capture time)."""
        fps = info.fps if info is not None and info.fps > 0 else 30.0
        self._sessions[sid] = _Session(fps, OneEuro(self.s.smooth_min_cutoff_hz, self.s.smooth_beta))
        return ""

    def close_session(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def _session(self, sid: str) -> _Session:
        if sid not in self._sessions:
            self.open_session(sid, None)
        return self._sessions[sid]

    # ------------------------------------------------------------------------------------------ detect

    def detect(self, frames: Sequence[FrameInput]) -> list[list[Detection]]:
        found = self.detector.detect([f.rgb for f in frames])
        jobs: list[tuple[int, FaceDetection, bool]] = []  # (frame position, detection, tracked ROI?)
        rois: list[roi_mod.Roi] = []
        for i, (f, dets) in enumerate(zip(frames, found, strict=True)):
            sess = self._session(f.sid)
            track_roi, match = None, -1
            if sess.vertices is not None:
                track_roi = self.mesh.tracking_roi(sess.vertices)
                overlaps = [box_iou(d.box, landmark_box(sess.vertices[:, :2])) for d in dets]
                if overlaps and max(overlaps) > REACQUIRE_IOU:
                    match = int(np.argmax(overlaps))
            for k, d in enumerate(dets):
                tracked = k == match and track_roi is not None
                jobs.append((i, d, tracked))
                rois.append(track_roi if tracked and track_roi is not None else self._detection_roi(d))
        verts, presence = self.mesh.run([frames[i].rgb for i, _, _ in jobs], rois)
        retry = [j for j, (_, _, tracked) in enumerate(jobs) if tracked and presence[j] < self.s.mesh_min_presence]
        if retry:  # the tracked ROI lost the face: try the detection's own ROI
            images = [frames[jobs[j][0]].rgb for j in retry]
            v2, p2 = self.mesh.run(images, [self._detection_roi(jobs[j][1]) for j in retry])
            for k, j in enumerate(retry):
                verts[j], presence[j] = v2[k], p2[k]
                jobs[j] = (jobs[j][0], jobs[j][1], False)
        out: list[list[Detection]] = [[] for _ in frames]
        for f in frames:
            sess = self._session(f.sid)
            sess.found_seq, sess.found = f.seq, []
        for j, (i, d, tracked) in enumerate(jobs):
            if presence[j] < self.s.mesh_min_presence:
                continue
            box = detector_box(self._points(verts[j], None))
            self._session(frames[i].sid).found.append(_Found(box, verts[j], tracked))
            out[i].append(Detection(box, d.score))
        return out

    @staticmethod
    def _detection_roi(d: FaceDetection) -> roi_mod.Roi:
        return roi_mod.from_detection(d.box, d.keypoints[LEFT_EYE], d.keypoints[RIGHT_EYE])

    # ------------------------------------------------------------------------------------------ landmarks

    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        n = len(frames)
        verts: list[F32 | None] = [None] * n
        reacquired = [False] * n
        need: list[int] = []
        for i, (f, box) in enumerate(zip(frames, boxes, strict=True)):
            hit = self._found(f, box)
            if hit is not None:
                verts[i], reacquired[i] = hit.vertices, not hit.tracked
            else:
                need.append(i)
        if need:
            rois = [self._tracking_roi(frames[i].sid, boxes[i]) for i in need]
            mesh, presence = self.mesh.run([frames[i].rgb for i in need], rois)
            lost = [i for k, i in enumerate(need) if presence[k] < self.s.mesh_min_presence]
            for k, i in enumerate(need):
                if presence[k] >= self.s.mesh_min_presence:
                    verts[i] = mesh[k]
            for i, vv in zip(lost, self._redetect([frames[i] for i in lost], [boxes[i] for i in lost]), strict=True):
                verts[i], reacquired[i] = vv, vv is not None
        pupils = self._pupils(frames, verts, reacquired)
        out: list[Points] = []
        for i, f in enumerate(frames):
            sess = self._session(f.sid)
            found = verts[i]
            if found is None:
                sess.lose()
                out.append(np.full((106, 2), np.nan, dtype=np.float32))
                continue
            out.append(self._finish(sess, f, found, pupils.get(i), reacquired[i]))
        return out

    def _pupils(self, frames: Sequence[FrameInput], verts: Sequence[F32 | None],
                reacquired: Sequence[bool]) -> dict[int, F32]:  # fmt: skip
        """[2, 2] pupils of each frame with a face: the iris model on the frames due for it (one batch), carried by
        the eye corners on the others; none without the iris model."""
        if self.iris is None:
            return {}
        every, reopen = self.s.iris_every, self.s.iris_reopen
        ok = [(i, vv) for i, vv in enumerate(verts) if vv is not None]
        due = [(i, vv) for i, vv in ok if self._session(frames[i].sid).iris_due(frames[i].seq, vv, reacquired[i],
                                                                                 every, reopen)]  # fmt: skip
        out: dict[int, F32] = {}
        if due:
            found = self.iris.run([frames[i].rgb for i, _ in due], [vv for _, vv in due])
            for k, (i, vv) in enumerate(due):
                sess, centres = self._session(frames[i].sid), found[k, :, 0]
                sess.iris_local, sess.iris_seq = self.iris.to_eye(vv, centres), frames[i].seq
                sess.iris_open = eye_opening(vv)
                out[i] = centres
        for i, vv in ok:
            local = self._session(frames[i].sid).iris_local
            if i not in out and local is not None:
                out[i] = self.iris.from_eye(vv, local)
        return out

    def _found(self, f: FrameInput, box: Points) -> _Found | None:
        sess = self._session(f.sid)
        if sess.found_seq != f.seq:
            return None
        for hit in sess.found:
            if np.allclose(hit.box, box, atol=1e-3):
                return hit
        return None

    def _tracking_roi(self, sid: str, box: Points) -> roi_mod.Roi:
        vertices = self._session(sid).vertices
        return self.mesh.tracking_roi(vertices) if vertices is not None else _box_roi(box)

    def _redetect(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[F32 | None]:
        if not frames:
            return []
        found = self.detector.detect([f.rgb for f in frames])
        picks: list[tuple[int, FaceDetection]] = []
        for i, (f, dets, box) in enumerate(zip(frames, found, boxes, strict=True)):
            h, w = f.rgb.shape[:2]
            k = choose_face([Detection(d.box, d.score) for d in dets], w, h, box, self.s.keep_iou)
            if k >= 0:
                picks.append((i, dets[k]))
        out: list[F32 | None] = [None] * len(frames)
        if picks:
            v, p = self.mesh.run([frames[i].rgb for i, _ in picks], [self._detection_roi(d) for _, d in picks])
            for k, (i, _) in enumerate(picks):
                if p[k] >= self.s.mesh_min_presence:
                    out[i] = v[k]
        return out

    def _points(self, vertices: F32, pupils: F32 | None) -> F32:
        centres = pupils if pupils is not None else eye_centres(vertices)
        return self.table.from_mesh(vertices, centres)

    def _finish(self, sess: _Session, f: FrameInput, vertices: F32, pupils: F32 | None, reacquired: bool) -> F32:
        sess.vertices = vertices
        pts = self._points(vertices, pupils)
        box = landmark_box(pts)
        if reacquired and sess.out_box is not None and box_iou(box, sess.out_box) < REACQUIRE_IOU:
            sess.filt.reset()  # a different place: do not drag the old position along
        sess.out_box = box
        if not self.s.smooth:
            return pts
        if f.seq == sess.filt_seq and sess.filt_before is not None:
            sess.filt.restore(sess.filt_before)  # the same frame again (the tracker's redo): start over
        else:
            sess.filt_seq, sess.filt_before = f.seq, sess.filt.state()
        t = f.capture_ts if f.capture_ts > 0 else f.seq / sess.fps
        iod = float(np.linalg.norm(pts[RIGHT_EYE_CENTRE] - pts[LEFT_EYE_CENTRE]))
        return sess.filt(pts, t, iod)
