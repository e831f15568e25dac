"""Iris landmarks: the pupil (iris centre) of each eye, from the Face Mesh eye corners.

Per face, two 64x64 eye crops (:func:`tracker.mediapipe.roi.eye`: centre between the corners, side 2.3 x their
distance, rotated along them) go through the model in one batch with every other face of the tick. The model was
trained on one eye side: the image-left eye (the subject's right) is mirrored before it goes in, and its outputs
are mirrored back. Output 2 holds 5 iris points (centre first, then 4 on the iris edge) in continuous crop
coordinates; output 1 holds 71 eye-contour and brow points (unused: the mesh's own lids are kept, so every eye
point moves with the same model).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tracker.mediapipe import roi as roi_mod
from tracker.mediapipe.runners import Runner

F32 = npt.NDArray[np.float32]
RGB = npt.NDArray[np.uint8]
# mesh vertices of the eye corners: (image-left corner, image-right corner) of each eye
LEFT_EYE_CORNERS = (33, 133)  # the image-left eye (subject's right): outer, inner
RIGHT_EYE_CORNERS = (362, 263)  # the image-right eye (subject's left): inner, outer
N_IRIS = 5


class Iris:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.side = runner.input_hw[0]

    def run(self, images: Sequence[RGB], meshes: F32) -> F32:
        """[N, 2, 5, 2] iris points in frame px: (image-left eye, image-right eye) x (centre, 4 edge points)."""
        n = len(images)
        if n == 0:
            return np.zeros((0, 2, N_IRIS, 2), np.float32)
        crops, maps = [], []
        for image, mesh in zip(images, meshes, strict=True):
            for (a, b), flip in ((LEFT_EYE_CORNERS, True), (RIGHT_EYE_CORNERS, False)):
                c, m = roi_mod.crop(image, roi_mod.eye(mesh[a], mesh[b]), self.side, flip=flip)
                crops.append(c)
                maps.append(m)
        batch = np.stack(crops).astype(np.float32) * (1.0 / 255.0)
        _, iris = self.runner.run(batch)
        pts = iris.reshape(len(crops), N_IRIS, 3)[:, :, :2] - 0.5  # continuous -> pixel-centre crop coordinates
        out = np.stack([roi_mod.apply(m, p) for m, p in zip(maps, pts, strict=True)])
        return out.reshape(n, 2, N_IRIS, 2).astype(np.float32)
