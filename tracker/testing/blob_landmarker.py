"""A landmarker over bright blobs, for tracking tests: every bright blob on a dark frame is a "face".

It behaves like the real pair where tracking matters: ``detect`` sees the whole frame; ``landmarks`` sees only the
1.5x square around the given box (as 2d106det does), places the 106 points of a fixed face shape over the bright
pixels it sees there, and, seeing none, returns the shape over the box itself (a real model's answer on a crop
without a face). Calls are counted so tests can check how often the detector ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from tracker.landmarker import Detection, FrameInput, Points
from tracker.testing.onnx_models import mean_shape_106

_SHAPE = mean_shape_106()
_UNIT = (_SHAPE - _SHAPE.min(axis=0)) / (_SHAPE.max(axis=0) - _SHAPE.min(axis=0))  # in [0, 1]^2


class BlobLandmarker:
    name = "blob"

    def __init__(self, threshold: int = 128) -> None:
        self.threshold = threshold
        self.detect_calls = 0
        self.detected_frames = 0
        self.landmark_frames = 0

    def open_session(self, sid: str, info: Mapping[str, str]) -> str:
        return ""

    def close_session(self, sid: str) -> None:
        return None

    def _mask(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) > self.threshold, dtype=np.uint8)

    def detect(self, frames: Sequence[FrameInput]) -> list[list[Detection]]:
        self.detect_calls += 1
        self.detected_frames += len(frames)
        out: list[list[Detection]] = []
        for f in frames:
            n, _labels, stats, _c = cv2.connectedComponentsWithStats(self._mask(f.rgb))
            dets = [
                Detection(np.array([x, y, x + w, y + h], dtype=np.float32), 0.9)
                for x, y, w, h, _area in stats[1:n].tolist()
            ]
            dets.sort(key=lambda d: -float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))
            out.append(dets)
        return out

    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        self.landmark_frames += len(frames)
        out: list[Points] = []
        for f, box in zip(frames, boxes, strict=True):
            h, w = f.rgb.shape[:2]
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            half = 0.75 * max(box[2] - box[0], box[3] - box[1])
            x1, y1 = max(int(cx - half), 0), max(int(cy - half), 0)
            x2, y2 = min(int(cx + half), w), min(int(cy + half), h)
            mask = self._mask(f.rgb[y1:y2, x1:x2]) if x2 > x1 and y2 > y1 else np.zeros((0, 0), np.uint8)
            ys, xs = np.nonzero(mask)
            if xs.size:
                region = np.array([x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1], np.float32)
            else:
                region = np.asarray(box, dtype=np.float32)
            size = region[2:] - region[:2]
            out.append((region[:2] + _UNIT * size).astype(np.float32))
        return out
