"""One labelled clip of a dataset and where its files are: what every layout reader produces."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One labelled expression trial and where its files are."""

    clip_id: str
    subject: str
    expression: str
    label: float
    n_frames: int
    frames_dir: Path | None
    trajectory: Path | None
    colour: Path | None
    split: str  # "train" / "test" as the label file says, or "" when the layout has none
    video: Path | None = None  # full-frame source recording, when the copy has one
    video_start: int = 0  # first frame of the clip in ``video`` (0-based)
    video_end: int = -1  # one past its last frame; -1 = the end of the video
    files_landmarker: str = "insightface"  # who made the distributed trajectory files ("phantom": its ground truth)

    @property
    def has_files(self) -> bool:
        """Whether the distributed frames, trajectory and colour files are all there."""
        return self.frames_dir is not None and self.has_trajectory

    @property
    def has_trajectory(self) -> bool:
        """Whether the distributed trajectory and colour files are there (all a model without frames reads; a
        phantom set written with ``--contents trajectories`` has these and no frames)."""
        return self.trajectory is not None and self.colour is not None
