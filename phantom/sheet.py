"""A contact sheet: a grid of frames of a clip with their true landmarks drawn, for a person to look at."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from phantom.face import Phantom

GROUP_COLOURS = [  # (first index, colour) for contour, eyes, brows, mouth, nose, right eye, right brow
    (0, (255, 255, 0)),
    (33, (0, 255, 0)),
    (43, (255, 128, 0)),
    (52, (255, 0, 255)),
    (72, (0, 200, 255)),
    (87, (0, 255, 0)),
    (97, (255, 128, 0)),
]


def _colour(i: int) -> tuple[int, int, int]:
    out = GROUP_COLOURS[0][1]
    for start, colour in GROUP_COLOURS:
        if i >= start:
            out = colour
    return out


def draw_landmarks(rgb: npt.NDArray[np.uint8], landmarks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """A copy of ``rgb`` with each landmark drawn as a dot coloured by its group."""
    out = rgb.copy()
    r = max(1, round(min(rgb.shape[:2]) / 240))
    for i, (x, y) in enumerate(landmarks):
        cv2.circle(out, (round(x * 16), round(y * 16)), r * 16, _colour(i), -1, cv2.LINE_AA, 4)
    return out


def contact_sheet(
    phantom: Phantom,
    indices: Sequence[int],
    columns: int = 4,
    tile_width: int = 320,
    progress: Callable[[int], None] | None = None,
) -> npt.NDArray[np.uint8]:
    """RGB grid of the frames ``indices`` with landmarks and a caption (index, task, rep, phase)."""
    if not indices:
        raise ValueError("a contact sheet needs at least one frame")
    tile_height = round(tile_width * phantom.height / phantom.width)
    tiles = []
    for i in indices:
        truth = phantom.truth(i)
        img = cv2.resize(
            draw_landmarks(phantom.render(i), truth.landmarks), (tile_width, tile_height), interpolation=cv2.INTER_AREA
        )
        caption = f"{i} {truth.task} r{truth.rep} {truth.phase}"
        cv2.putText(img, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(img)
        if progress is not None:
            progress(1)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[k : k + columns], axis=1) for k in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def spread_indices(phantom: Phantom, n: int) -> list[int]:
    """``n`` frames spread over the clip, one per schedule segment's hold when there are enough segments."""
    holds = [(seg.start + seg.end) // 2 for seg in phantom.schedule]
    if len(holds) >= n:
        pick = np.linspace(0, len(holds) - 1, n).round().astype(int)
        return [holds[k] for k in pick]
    return [int(v) for v in np.linspace(0, phantom.n_frames - 1, n).round().astype(int)]
