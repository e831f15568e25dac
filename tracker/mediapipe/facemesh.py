"""Face Mesh: 468 landmarks and a face-presence score for each face ROI, in frame pixels.

Each ROI is cut as a 192x192 upright crop (warped straight into a reused buffer, :mod:`tracker.mediapipe.batch`),
scaled to [0, 1] and run in one batch. The model's 1404 outputs are (x, y, z) per vertex in continuous crop
coordinates (0..192 across the crop, so a pixel centre sits at i + 0.5); x, y are mapped back to frame pixels
(centres at integers) through the crop's affine, z is scaled by the same factor (frame px, relative depth).
Presence is the sigmoid of the second output (MediaPipe re-detects below 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tracker.mediapipe import roi as roi_mod
from tracker.mediapipe.batch import CropBatch
from tracker.mediapipe.roi import Roi
from tracker.mediapipe.runners import Runner

F32 = npt.NDArray[np.float32]
RGB = npt.NDArray[np.uint8]
N_VERTICES = 468
# vertices that set the tracking ROI's angle: the outer eye corners (image-left, image-right)
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 33, 263


class FaceMesh:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.side = runner.input_hw[0]
        self._batch = CropBatch(self.side)

    def run(self, images: Sequence[RGB], rois: Sequence[Roi]) -> tuple[F32, F32]:
        """(vertices [N, 468, 3] frame px, presence [N]) for each (image, roi)."""
        if not images:
            return np.zeros((0, N_VERTICES, 3), np.float32), np.zeros((0,), np.float32)
        batch, maps = self._batch.fill(images, rois)
        coords, logits = self.runner.run(batch)
        verts = coords.reshape(len(maps), N_VERTICES, 3)
        m = np.array(maps, dtype=np.float32)  # [N, 2, 3] crop px -> frame px (float32: 1e-4 px at 2000 px)
        out = np.empty(verts.shape, np.float32)
        xy = verts[:, :, :2] - np.float32(0.5)  # outputs are continuous crop coordinates
        out[:, :, :2] = np.matmul(xy, m[:, :, :2].transpose(0, 2, 1)) + m[:, None, :, 2]
        out[:, :, 2] = verts[:, :, 2] * np.hypot(m[:, 0, 0], m[:, 1, 0])[:, None]
        presence = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)))
        return out, presence.astype(np.float32)

    @staticmethod
    def tracking_roi(vertices: F32) -> Roi:
        """The next frame's ROI from this frame's vertices."""
        return roi_mod.from_points(vertices, LEFT_EYE_OUTER, RIGHT_EYE_OUTER)
