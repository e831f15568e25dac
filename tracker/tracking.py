"""Per-session face track: the detector runs every N frames; in between, the box follows the landmarks.

After a detection the track remembers where the detector's box sits relative to the landmarks' own box. On a
tracked frame the landmark model is run in the previous frame's box, and the new detector-equivalent box is the
new landmark box with those offsets, so the reference crop keeps the detector's framing. When the landmark box
moves too far between frames (IoU below ``drift_iou``), the frame is detected again at once; a face that jumps
out of the box entirely is found again at the next scheduled detection at the latest (within N frames).
"""

from __future__ import annotations

import dataclasses

from tracker.geometry import apply_offsets, box_iou, landmark_box, relative_offsets
from tracker.landmarker import Points


@dataclasses.dataclass
class FaceTrack:
    """The state kept between frames of one session."""

    box: Points | None = None  # detector-style box of the last frame
    lmk_box: Points | None = None  # landmark box of the last frame
    offsets: Points | None = None  # detector box relative to the landmark box at the last detection
    since_detect: int = 0
    detections: int = 0
    frames: int = 0
    frame_size: tuple[int, int] = (0, 0)  # a box of another frame size means nothing: such a frame is detected

    def sized(self, width: int, height: int) -> None:
        """Note the frame size; a change (the sender switched resolution) loses the track."""
        if (width, height) != self.frame_size:
            self.lose()
            self.frame_size = (width, height)

    @property
    def active(self) -> bool:
        return self.box is not None and self.offsets is not None

    def needs_detection(self, detect_every: int) -> bool:
        return not self.active or self.since_detect + 1 >= detect_every

    def detected(self, det_box: Points, landmarks: Points) -> Points:
        """Start (or restart) the track from a detection; returns the box to crop with."""
        self.lmk_box = landmark_box(landmarks)
        self.offsets = relative_offsets(det_box, self.lmk_box)
        self.box = det_box
        self.since_detect = 0
        self.detections += 1
        self.frames += 1
        return det_box

    def drifted(self, landmarks: Points, drift_iou: float) -> bool:
        """Whether landmarks found in the predicted box moved too far from the last frame's."""
        return self.lmk_box is None or box_iou(landmark_box(landmarks), self.lmk_box) < drift_iou

    def tracked(self, landmarks: Points) -> Points:
        """Advance on a tracked frame; returns the detector-equivalent box for this frame."""
        if self.offsets is None:
            raise RuntimeError("tracked() called on a track that never saw a detection")
        self.lmk_box = landmark_box(landmarks)
        self.box = apply_offsets(self.lmk_box, self.offsets)
        self.since_detect += 1
        self.frames += 1
        return self.box

    def lose(self) -> None:
        """No face: the next frame is detected."""
        self.box = self.lmk_box = self.offsets = None
        self.since_detect = 0
