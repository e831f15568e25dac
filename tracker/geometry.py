"""Boxes: IoU, landmark boxes, and the choice of the patient's face among several detections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tracker.landmarker import Detection, Points


def box_iou(a: Points, b: Points) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0 when either is empty)."""
    ix = max(0.0, min(float(a[2]), float(b[2])) - max(float(a[0]), float(b[0])))
    iy = max(0.0, min(float(a[3]), float(b[3])) - max(float(a[1]), float(b[1])))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def box_area(box: Points) -> float:
    return max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))


def landmark_box(points: Points) -> Points:
    """The tight box around landmarks."""
    lo = points.min(axis=0)
    hi = points.max(axis=0)
    return np.array([lo[0], lo[1], hi[0], hi[1]], dtype=np.float32)


def relative_offsets(outer: Points, inner: Points) -> Points:
    """``outer``'s edges relative to ``inner``, in units of ``inner``'s width and height."""
    w = max(float(inner[2] - inner[0]), 1e-6)
    h = max(float(inner[3] - inner[1]), 1e-6)
    return np.array(
        [(outer[0] - inner[0]) / w, (outer[1] - inner[1]) / h, (outer[2] - inner[2]) / w, (outer[3] - inner[3]) / h],
        dtype=np.float32,
    )


def apply_offsets(inner: Points, offsets: Points) -> Points:
    """Inverse of :func:`relative_offsets`: the outer box for a new inner box."""
    w = float(inner[2] - inner[0])
    h = float(inner[3] - inner[1])
    return np.array(
        [inner[0] + offsets[0] * w, inner[1] + offsets[1] * h, inner[2] + offsets[2] * w, inner[3] + offsets[3] * h],
        dtype=np.float32,
    )


def choose_face(
    detections: Sequence[Detection], frame_w: int, frame_h: int, previous: Points | None, keep_iou: float
) -> int:
    """Index of the patient's face: the one overlapping the previous box most (IoU >= ``keep_iou``), else the
    largest and most central (area minus twice the squared centre offset, insightface's ranking). -1 if none."""
    if not detections:
        return -1
    if previous is not None:
        overlaps = [box_iou(d.box, previous) for d in detections]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= keep_iou:
            return best
    cx, cy = frame_w / 2.0, frame_h / 2.0
    values = []
    for d in detections:
        offset2 = ((d.box[0] + d.box[2]) / 2 - cx) ** 2 + ((d.box[1] + d.box[3]) / 2 - cy) ** 2
        values.append(box_area(d.box) - 2.0 * float(offset2))
    return int(np.argmax(values))
