"""insightface's 2d106det landmark model: crop around a box, normalise, run, map back to frame px.

Matches insightface's ``Landmark.get`` exactly: a square crop centred on the box centre with side 1.5 x the box's
longer side, no rotation, warped to the model's input size; normalisation read from the graph (in-graph Sub/Mul
nodes mean the model normalises itself); outputs in [-1, 1] mapped by (p + 1) * (size // 2) and the inverse affine.
Frames of one tick go through the model in one batch when its batch axis is free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from common.errors import ModelError
from tracker.landmarker import RGB, Points
from tracker.ort import batch_is_dynamic

F64 = npt.NDArray[np.float64]


def graph_normalisation(path: Path) -> tuple[float, float]:
    """(mean, std) the model expects, by insightface's rule: in-graph Sub and Mul among the first 8 nodes (or a
    leading ``bn_data``) mean the graph normalises itself (0, 1); otherwise (127.5, 128)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    has_sub = has_mul = False
    for i, node in enumerate(graph.node[:8]):
        if node.name.startswith(("Sub", "_minus")):
            has_sub = True
        if node.name.startswith(("Mul", "_mul")):
            has_mul = True
        if i < 3 and node.name == "bn_data":
            has_sub = has_mul = True
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 128.0)


def crop_transform(box: Points, size: int) -> F64:
    """The 2x3 affine from frame px to the model's input crop for ``box``."""
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    cx, cy = float(box[2] + box[0]) / 2, float(box[3] + box[1]) / 2
    scale = size / (max(w, h) * 1.5)
    return np.array([[scale, 0.0, size / 2 - cx * scale], [0.0, scale, size / 2 - cy * scale]], dtype=np.float64)


class Landmark106:
    """One 2d106det-shaped ONNX session."""

    def __init__(self, session: ort.InferenceSession, path: Path) -> None:
        shape = session.get_inputs()[0].shape
        out = session.get_outputs()
        if len(out) != 1 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise ModelError(f"{path.name} is not a 2d106det-shaped model (input {shape}, {len(out)} outputs)")
        self.size = int(shape[2])
        self.mean, self.std = graph_normalisation(path)
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = out[0].name
        self._batch_dynamic = batch_is_dynamic(session)

    def landmarks(self, frames: Sequence[RGB], boxes: Sequence[Points]) -> list[Points]:
        """[106, 2] frame-px landmarks for each (frame, box)."""
        if not frames:
            return []
        transforms = [crop_transform(b, self.size) for b in boxes]
        crops = [
            cv2.warpAffine(f, m, (self.size, self.size), borderValue=0.0)
            for f, m in zip(frames, transforms, strict=True)
        ]
        blob = ((np.stack(crops).astype(np.float32) - self.mean) * (1.0 / self.std)).transpose(0, 3, 1, 2)
        blob = np.ascontiguousarray(blob)
        if self._batch_dynamic:
            preds = np.asarray(self._session.run([self._output], {self._input: blob})[0])
        else:
            preds = np.concatenate([self._session.run([self._output], {self._input: b[None]})[0] for b in blob])
        out: list[Points] = []
        half = self.size // 2
        for pred, m in zip(preds, transforms, strict=True):
            pts = (pred.reshape(-1, 2).astype(np.float32) + 1.0) * half
            inv = cv2.invertAffineTransform(m)
            frame_pts = pts.astype(np.float64) @ inv[:, :2].T + inv[:, 2]
            out.append(frame_pts.astype(np.float32))
        return out
