"""BlazeFace (short range) face detection: letterbox to 128x128, run, decode 896 anchors, weighted NMS.

Decoding follows the model's training setup (MediaPipe's TensorsToDetections options for this model): per anchor
16 values, box centre x, y and size w, h, then 6 keypoints (x, y), all in input pixels relative to the anchor
centre (scale 128); scores are sigmoid(logit clipped to +-100); detections above ``min_score`` are merged by
weighted non-maximum suppression (IoU 0.3: each cluster's box and keypoints are the score-weighted mean, its score
the top one). Keypoints: 0 image-left eye (the subject's right), 1 image-right eye, 2 nose tip, 3 mouth centre,
4 image-left ear tragion, 5 image-right ear tragion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from tracker.mediapipe.anchors import generate
from tracker.mediapipe.runners import Runner

F32 = npt.NDArray[np.float32]
RGB = npt.NDArray[np.uint8]
N_KEYPOINTS = 6
LEFT_EYE, RIGHT_EYE = 0, 1


@dataclasses.dataclass(frozen=True, eq=False)
class FaceDetection:
    box: F32  # x1, y1, x2, y2 frame px
    score: float
    keypoints: F32  # [6, 2] frame px


def _iou(box: F32, boxes: F32) -> F32:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-12), dtype=np.float32)


def weighted_nms(boxes: F32, keypoints: F32, scores: F32, iou: float) -> list[tuple[F32, F32, float]]:
    """Clusters of overlapping candidates merged by score-weighted means; best score first."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    out: list[tuple[F32, F32, float]] = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (_iou(boxes[i], boxes) > iou)
        members[i] = True
        w = scores[members][:, None]
        total = float(w.sum())
        box = (boxes[members] * w).sum(axis=0) / total
        kps = (keypoints[members].reshape(-1, N_KEYPOINTS * 2) * w).sum(axis=0) / total
        out.append((box.astype(np.float32), kps.reshape(N_KEYPOINTS, 2).astype(np.float32), float(scores[i])))
        alive &= ~members
    return out


class BlazeFace:
    """The short-range face detector on any :class:`Runner`."""

    def __init__(self, runner: Runner, min_score: float = 0.5, nms_iou: float = 0.3) -> None:
        self.runner = runner
        self.size = runner.input_hw[0]
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.anchors = generate()

    def letterbox(self, image: RGB) -> tuple[RGB, float, float, float]:
        """The letterboxed pixels (the model maps them to [-1, 1] itself) and (scale, pad_x, pad_y) mapping input px
        back to frame px."""
        h, w = image.shape[:2]
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        canvas[py : py + nh, px : px + nw] = resized
        return canvas, scale, float(px), float(py)

    def decode(self, raw: F32, logits: F32) -> list[tuple[F32, F32, float]]:
        """(box [4] input px, keypoints [6, 2] input px, score) of one image's candidates after NMS."""
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        r = raw[keep].astype(np.float32)
        a = self.anchors[keep]
        centre = r[:, 0:2] + a[:, 0:2] * self.size
        half = r[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = r[:, 4:].reshape(-1, N_KEYPOINTS, 2) + a[:, None, 0:2] * self.size
        return weighted_nms(boxes, kps, scores[keep].astype(np.float32), self.nms_iou)

    def detect(self, images: Sequence[RGB]) -> list[list[FaceDetection]]:
        """Faces in each image, best score first, in frame px."""
        if not images:
            return []
        prepared = [self.letterbox(im) for im in images]
        raw, logits = self.runner.run(np.stack([p[0] for p in prepared]))
        out: list[list[FaceDetection]] = []
        for (_, scale, px, py), r, lg in zip(prepared, raw, logits, strict=True):
            faces = []
            for box, kps, score in self.decode(r, lg):
                frame_box = (box - np.array([px, py, px, py], np.float32)) / scale
                frame_kps = (kps - np.array([px, py], np.float32)) / scale
                faces.append(FaceDetection(frame_box.astype(np.float32), score, frame_kps.astype(np.float32)))
            out.append(faces)
        return out
