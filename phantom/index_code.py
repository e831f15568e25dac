"""A frame-index code that survives lossy video coding and rescaling.

The code is a strip of 32 black/white cells across the full width of the bottom 7% of the frame, below the face:

``[white, black, 20 index bits (MSB first), 8 CRC-8 bits, black, white]``

Cells are about 1/32 of the width (20 px at 640, 15 px at 480), pure black or white in all three channels, so
VP8/H264 at WebRTC bitrates and a downscale to 480x360 keep them readable. The reader samples the middle half of
each cell, thresholds halfway between the white and black reference cells, and returns ``None`` unless the
references have contrast and the checksum matches: a damaged code loses the frame, it never mislabels it.
"""

from __future__ import annotations

import operator

import numpy as np
import numpy.typing as npt

N_CELLS = 32
INDEX_BITS = 20
CRC_BITS = 8
MAX_INDEX = (1 << INDEX_BITS) - 1
STRIP_TOP = 0.93
STRIP_BOTTOM = 0.995
MIN_CONTRAST = 60.0


def _crc8(value: int) -> int:
    crc = 0
    for byte in value.to_bytes(3, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(index: int) -> list[int]:
    payload = [(index >> (INDEX_BITS - 1 - i)) & 1 for i in range(INDEX_BITS)]
    crc = _crc8(index)
    check = [(crc >> (CRC_BITS - 1 - i)) & 1 for i in range(CRC_BITS)]
    return [1, 0, *payload, *check, 0, 1]


def _cell_edges(width: int) -> npt.NDArray[np.int64]:
    return np.round(np.linspace(0, width, N_CELLS + 1)).astype(np.int64)


def _rows(height: int) -> tuple[int, int]:
    return round(height * STRIP_TOP), round(height * STRIP_BOTTOM)


def _check(rgb: npt.NDArray[np.uint8]) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if rgb.shape[1] < 2 * N_CELLS or rgb.shape[0] < 48:
        raise ValueError(f"frame {rgb.shape[1]}x{rgb.shape[0]} is too small for the index code (min 64x48)")


def embed_index(rgb: npt.NDArray[np.uint8], index: int) -> None:
    """Write ``index`` (0 .. 2**20-1) into the bottom strip of ``rgb`` in place."""
    _check(rgb)
    index = operator.index(index)
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"frame index {index} outside 0..{MAX_INDEX}")
    y0, y1 = _rows(rgb.shape[0])
    edges = _cell_edges(rgb.shape[1])
    for i, bit in enumerate(_bits(index)):
        rgb[y0:y1, edges[i] : edges[i + 1]] = 255 if bit else 0


def read_index(rgb: npt.NDArray[np.uint8]) -> int | None:
    """The index embedded in ``rgb``, or ``None`` when there is no readable, checksum-valid code."""
    _check(rgb)
    y0, y1 = _rows(rgb.shape[0])
    q = (y1 - y0) // 4
    band = rgb[y0 + q : y1 - q].astype(np.float32).mean(axis=(0, 2))
    edges = _cell_edges(rgb.shape[1])
    levels = np.empty(N_CELLS, np.float32)
    for i in range(N_CELLS):
        a, b = int(edges[i]), int(edges[i + 1])
        m = (b - a) // 4
        levels[i] = band[a + m : b - m].mean()
    white = (levels[0] + levels[-1]) / 2
    black = (levels[1] + levels[-2]) / 2
    if white - black < MIN_CONTRAST:
        return None
    bits = (levels > (white + black) / 2).astype(int).tolist()
    if bits[0] != 1 or bits[1] != 0 or bits[-2] != 0 or bits[-1] != 1:
        return None
    index = 0
    for b in bits[2 : 2 + INDEX_BITS]:
        index = (index << 1) | b
    crc = 0
    for b in bits[2 + INDEX_BITS : 2 + INDEX_BITS + CRC_BITS]:
        crc = (crc << 1) | b
    return index if crc == _crc8(index) else None
