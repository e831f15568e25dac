"""SSD anchors for BlazeFace (short range), generated from the anchor options the model was trained with.

Options (MediaPipe's face_detection_short_range graph): 4 layers with strides 8, 16, 16, 16 on a 128x128 input,
scales from 0.1484375 to 0.75, one aspect ratio (1.0) plus the interpolated-scale anchor, offset 0.5, and fixed
anchor size (every anchor is 1 x 1 in normalised units, so only the centres matter). Layers that share a stride
share one feature map: 16x16 cells x 2 anchors + 8x8 cells x 6 anchors = 896 anchors, in the order of the model's
896 outputs (layer, then row, then column, then anchor within the cell).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class AnchorOptions:
    input_size: tuple[int, int] = (128, 128)  # height, width
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    strides: tuple[int, ...] = (8, 16, 16, 16)
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    offset: tuple[float, float] = (0.5, 0.5)  # x, y within a cell
    fixed_anchor_size: bool = True


def _scale(options: AnchorOptions, layer: int) -> float:
    n = len(options.strides)
    if n == 1:
        return (options.min_scale + options.max_scale) / 2
    return options.min_scale + (options.max_scale - options.min_scale) * layer / (n - 1)


def generate(options: AnchorOptions = AnchorOptions()) -> F32:
    """[N, 4] anchors (x_centre, y_centre, width, height), normalised to the input size."""
    rows: list[tuple[float, float, float, float]] = []
    n_layers = len(options.strides)
    layer = 0
    while layer < n_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) of each anchor in a cell
        last = layer
        while last < n_layers and options.strides[last] == options.strides[layer]:
            scale = _scale(options, last)
            for ratio in options.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if options.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == n_layers - 1 else _scale(options, last + 1)
                mid = math.sqrt(scale * nxt)
                ratio = options.interpolated_scale_aspect_ratio
                sizes.append((mid * math.sqrt(ratio), mid / math.sqrt(ratio)))
            last += 1
        stride = options.strides[layer]
        fm_h = math.ceil(options.input_size[0] / stride)
        fm_w = math.ceil(options.input_size[1] / stride)
        for y in range(fm_h):
            for x in range(fm_w):
                cx = (x + options.offset[0]) / fm_w
                cy = (y + options.offset[1]) / fm_h
                for w, h in sizes:
                    rows.append((cx, cy, 1.0, 1.0) if options.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(rows, dtype=np.float32)
