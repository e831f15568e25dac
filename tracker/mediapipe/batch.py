"""Reused input buffers for the models' batches: crops are warped straight into them, so a steady tick allocates
no image arrays (the buffer grows to the largest batch seen and is then kept).

:meth:`CropBatch.fill` warps each ROI into a uint8 slot with ``cv2.warpAffine(dst=...)``: the models take the pixels
as they are (their normalisation is inside the graph, :mod:`tracker.mediapipe.pixel_input`); the view it returns is
valid until the next ``fill``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from tracker.mediapipe import roi as roi_mod

F64 = npt.NDArray[np.float64]
RGB = npt.NDArray[np.uint8]
_MIRROR = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


class CropBatch:
    def __init__(self, side: int) -> None:
        self.side = side
        self._u8 = np.zeros((0, side, side, 3), np.uint8)

    def _reserve(self, n: int) -> None:
        if n > len(self._u8):
            self._u8 = np.zeros((max(n, 2 * len(self._u8)), self.side, self.side, 3), np.uint8)

    def fill(self, images: Sequence[RGB], rois: Sequence[roi_mod.Roi],
             flips: Sequence[bool] | None = None) -> tuple[RGB, list[F64]]:  # fmt: skip
        """The [N, side, side, 3] uint8 batch of the crops (zeros outside the frame) and each crop's 2x3 map from
        crop px to frame px (a flipped crop is mirrored left-right; its map accounts for it)."""
        n = len(rois)
        self._reserve(n)
        maps: list[F64] = []
        side = self.side
        for k, (image, r) in enumerate(zip(images, rois, strict=True)):
            to_frame = r.to_frame(side)
            if flips is not None and flips[k]:
                mirror = _MIRROR.copy()
                mirror[0, 2] = side - 1.0
                to_frame = to_frame @ mirror
            cv2.warpAffine(image, cv2.invertAffineTransform(to_frame), (side, side), dst=self._u8[k],
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip
            maps.append(to_frame)
        return self._u8[:n], maps
