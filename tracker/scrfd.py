"""SCRFD face detection (insightface's det_10g and relatives): letterbox, normalise, decode, NMS.

Pre- and post-processing follow insightface's ``SCRFD`` exactly (aspect-kept resize pasted top-left on a zero
canvas, (x - 127.5) / 128 in RGB order, 2 anchors per location on strides 8/16/32, distance decoding, score-sorted
greedy NMS with +1 areas), vectorised, with the anchor grids cached per canvas size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from common.errors import ModelError
from tracker.landmarker import RGB, Detection
from tracker.ort import batch_is_dynamic

F32 = npt.NDArray[np.float32]

_LAYOUTS = {6: ((8, 16, 32), 2, False), 9: ((8, 16, 32), 2, True), 10: ((8, 16, 32, 64, 128), 1, False)}
_LAYOUTS[15] = ((8, 16, 32, 64, 128), 1, True)


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted on the detector canvas."""

    canvas: RGB
    scale: float  # canvas px per frame px


def letterbox(rgb: RGB, size_w: int, size_h: int) -> Letterbox:
    """Resize with the aspect ratio kept to fit ``size_w`` x ``size_h`` and paste it top-left on zeros."""
    h, w = rgb.shape[:2]
    if float(h) / w > float(size_h) / size_w:
        new_h = size_h
        new_w = int(new_h / (float(h) / w))
    else:
        new_w = size_w
        new_h = int(new_w * (float(h) / w))
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    canvas = np.zeros((size_h, size_w, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(rgb, (new_w, new_h))
    return Letterbox(canvas, float(new_h) / h)


def nms(boxes: F32, scores: F32, thresh: float) -> list[int]:
    """Greedy NMS in score order (stable), with insightface's +1 pixel areas."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[overlap <= thresh]
    return keep


class ScrfdDetector:
    """One SCRFD ONNX session; :meth:`detect` takes RGB frames, batching when the model's batch axis is free."""

    def __init__(self, session: ort.InferenceSession, det_size: int, det_thresh: float, nms_thresh: float) -> None:
        outputs = session.get_outputs()
        layout = _LAYOUTS.get(len(outputs))
        if layout is None:
            raise ModelError(f"not an SCRFD detector: {len(outputs)} outputs (expected 6, 9, 10 or 15)")
        self.strides, self.anchors, self.has_kps = layout
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in outputs]
        self._batched_out = len(outputs[0].shape) == 3
        self._batch_dynamic = batch_is_dynamic(session)
        shape = session.get_inputs()[0].shape
        fixed = isinstance(shape[2], int) and isinstance(shape[3], int) and shape[2] > 0 and shape[3] > 0
        self.size_w, self.size_h = (int(shape[3]), int(shape[2])) if fixed else (det_size, det_size)
        self.det_thresh = det_thresh
        self.nms_thresh = nms_thresh
        self._centres: dict[tuple[int, int, int], F32] = {}

    def detect(self, frames: Sequence[RGB]) -> list[list[Detection]]:
        """Faces in each frame, highest score first, boxes in frame px."""
        boxes = [letterbox(f, self.size_w, self.size_h) for f in frames]
        blobs = [self._blob(b.canvas) for b in boxes]
        if self._batch_dynamic and self._batched_out and len(blobs) > 1:
            outs = self._session.run(self._outputs, {self._input: np.concatenate(blobs)})
            per_frame = [[o[i] for o in outs] for i in range(len(blobs))]
        else:
            per_frame = []
            for blob in blobs:
                outs = self._session.run(self._outputs, {self._input: blob})
                per_frame.append([o[0] if self._batched_out else o for o in outs])
        return [self._decode(outs, lb.scale) for outs, lb in zip(per_frame, boxes, strict=True)]

    @staticmethod
    def _blob(canvas: RGB) -> F32:
        return ((canvas.astype(np.float32) - 127.5) * (1.0 / 128.0)).transpose(2, 0, 1)[None].copy()

    def _anchor_centres(self, height: int, width: int, stride: int) -> F32:
        key = (height, width, stride)
        centres = self._centres.get(key)
        if centres is None:
            ys, xs = np.mgrid[:height, :width]
            grid = np.stack([xs, ys], axis=-1).astype(np.float32)
            centres = (grid * stride).reshape(-1, 2)
            if self.anchors > 1:
                centres = np.repeat(centres, self.anchors, axis=0)
            self._centres[key] = centres
        return centres

    def _decode(self, outs: Sequence[F32], scale: float) -> list[Detection]:
        n = len(self.strides)
        scores_l: list[F32] = []
        boxes_l: list[F32] = []
        kps_l: list[F32] = []
        for level, stride in enumerate(self.strides):
            scores = np.asarray(outs[level], dtype=np.float32).reshape(-1)
            centres = self._anchor_centres(self.size_h // stride, self.size_w // stride, stride)
            if scores.shape[0] != centres.shape[0]:
                raise ModelError(f"SCRFD stride {stride}: {scores.shape[0]} scores for {centres.shape[0]} anchors")
            pos = np.flatnonzero(scores >= self.det_thresh)
            if pos.size == 0:
                continue
            dist = np.asarray(outs[level + n], dtype=np.float32).reshape(-1, 4)[pos] * stride
            c = centres[pos]
            boxes_l.append(np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1))
            scores_l.append(scores[pos])
            if self.has_kps:
                kd = np.asarray(outs[level + 2 * n], dtype=np.float32).reshape(-1, 10)[pos] * stride
                kps_l.append((np.tile(c, 5) + kd).reshape(-1, 5, 2))
        if not scores_l:
            return []
        scores = np.concatenate(scores_l)
        order = np.argsort(-scores, kind="stable")
        scores = scores[order]
        boxes = (np.concatenate(boxes_l) / scale)[order].astype(np.float32)
        kps = (np.concatenate(kps_l) / scale)[order].astype(np.float32) if kps_l else None
        keep = nms(boxes, scores, self.nms_thresh)
        return [Detection(boxes[i], float(scores[i]), None if kps is None else kps[i]) for i in keep]
