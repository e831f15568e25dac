"""Iris landmarks: the pupil (iris centre) of each eye, from the Face Mesh eye corners.

Per face, two 64x64 eye crops (:func:`tracker.mediapipe.roi.eye`: centre between the corners, side 2.3 x their
distance, rotated along them) go through the model in one batch with every other face of the tick (the converted
model has a free batch axis; ``tests/unit/test_mediapipe_iris.py`` checks a batch equals its items run alone). The
model was trained on one eye side: the image-left eye (the subject's right) is mirrored before it goes in, and its
outputs are mirrored back. Output 2 holds 5 iris points (centre first, then 4 on the iris edge) in continuous crop
coordinates; output 1 holds 71 eye-contour and brow points (unused: the mesh's own lids are kept, so every eye
point moves with the same model).

The model costs more than Face Mesh itself (two eyes ~3.4 ms against ~1.5-2 ms for the mesh on one core), so the
landmarker runs it at a cadence (:mod:`tracker.mediapipe.landmarker`): between runs a pupil is carried by the mesh's
eye outline, i.e. kept at the same place in the eye's own frame (:meth:`Iris.to_eye` / :meth:`Iris.from_eye`:
origin the outline's mean, axis and unit the corner-to-corner vector), which follows head motion, scale and roll.
What carrying cannot follow is a gaze shift between two runs (at most ``iris_every - 1`` frames late); the eye
opening (lid distance over corner distance, :func:`eye_opening`) is watched and a blink or squeeze runs the model at
once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tracker.mediapipe import roi as roi_mod
from tracker.mediapipe.batch import CropBatch
from tracker.mediapipe.runners import Runner

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
RGB = npt.NDArray[np.uint8]
# mesh vertices of the eye corners: (image-left corner, image-right corner) of each eye
LEFT_EYE_CORNERS = (33, 133)  # the image-left eye (subject's right): outer, inner
RIGHT_EYE_CORNERS = (362, 263)  # the image-right eye (subject's left): inner, outer
EYE_CORNERS = (LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS)
EYE_RINGS = (  # the mesh's eye outlines (MediaPipe's named contours), image-left eye first
    [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7],
    [362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382],
)
EYE_LIDS = ((159, 145), (386, 374))  # (upper, lower) lid mid vertices of each eye
_CORNER_A, _CORNER_B = [a for a, _ in EYE_CORNERS], [b for _, b in EYE_CORNERS]
_LID_UP, _LID_LO = [u for u, _ in EYE_LIDS], [lo for _, lo in EYE_LIDS]
_STARTS, _ENDS = np.array(_CORNER_A + _LID_UP), np.array(_CORNER_B + _LID_LO)


def _ring_mean() -> F64:
    """[2, 468]: the mean of each eye's outline as one product with the mesh."""
    out = np.zeros((len(EYE_RINGS), 468))
    for k, ring in enumerate(EYE_RINGS):
        out[k, ring] = 1.0 / len(ring)
    return out


_RING_MEAN = _ring_mean()
FLIPS = (True, False)  # the model sees every eye as an image-right eye
N_IRIS = 5


def eye_rois(mesh: F32) -> tuple[roi_mod.Roi, roi_mod.Roi]:
    """The two eye ROIs of one face (image-left eye first)."""
    (a, b), (c, d) = EYE_CORNERS
    return roi_mod.eye(mesh[a], mesh[b]), roi_mod.eye(mesh[c], mesh[d])


def eye_opening(mesh: F32) -> F64:
    """[2] lid distance / corner distance of each eye (image-left first)."""
    d = np.asarray(mesh[_ENDS, :2] - mesh[_STARTS, :2], dtype=np.float64)  # [4, 2]: both widths, both lid gaps
    length = np.hypot(d[:, 0], d[:, 1])
    return np.asarray(length[2:] / np.maximum(length[:2], 1e-6), dtype=np.float64)


def _eye_frames(mesh: F32) -> tuple[F64, F64, F64]:
    """Both eyes' own frames: origin [2, 2] at the mean of the 16 outline vertices (steadier than the two corners
    alone), x axis [2, 2] the corner-to-corner vector (unit = the corner distance), y axis [2, 2] that turned by
    +90 degrees."""
    ex = np.asarray(mesh[_CORNER_B, :2] - mesh[_CORNER_A, :2], np.float64)
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)
    origin = _RING_MEAN @ np.asarray(mesh[:, :2], np.float64)
    return origin, ex, ey


class Iris:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.side = runner.input_hw[0]
        self._batch = CropBatch(self.side)

    def run(self, images: Sequence[RGB], meshes: F32 | Sequence[F32]) -> F32:
        """[N, 2, 5, 2] iris points in frame px: (image-left eye, image-right eye) x (centre, 4 edge points)."""
        n = len(images)
        if n == 0:
            return np.zeros((0, 2, N_IRIS, 2), np.float32)
        rois = [r for mesh in meshes for r in eye_rois(mesh)]
        batch, maps = self._batch.fill([im for im in images for _ in (0, 1)], rois, FLIPS * n)
        _, iris = self.runner.run(batch)
        pts = iris.reshape(len(rois), N_IRIS, 3)[:, :, :2] - 0.5  # continuous -> pixel-centre crop coordinates
        m = np.stack(maps)
        out = pts.astype(np.float64) @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]
        return out.reshape(n, 2, N_IRIS, 2).astype(np.float32)

    @staticmethod
    def to_eye(mesh: F32, pupils: F32) -> F32:
        """[2, 2] pupils (frame px) in the eyes' own frames of ``mesh`` (:func:`_eye_frames`)."""
        origin, ex, ey = _eye_frames(mesh)
        d = np.asarray(pupils, np.float64) - origin
        norm2 = np.maximum((ex * ex).sum(axis=1), 1e-12)
        return np.stack([(d * ex).sum(axis=1) / norm2, (d * ey).sum(axis=1) / norm2], axis=1).astype(np.float32)

    @staticmethod
    def from_eye(mesh: F32, local: F32) -> F32:
        """[2, 2] frame px of pupils given in the eyes' own frames of ``mesh`` (inverse of :meth:`to_eye`)."""
        origin, ex, ey = _eye_frames(mesh)
        loc = np.asarray(local, np.float64)
        return np.asarray(origin + loc[:, :1] * ex + loc[:, 1:] * ey, dtype=np.float32)
