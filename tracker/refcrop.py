"""The tracker's side of the reference crop (the rule itself is common.crop, shared with the phantom's datasets):
the RGB crop published for the scorer, and exact crop <-> frame coordinate maps.

The RGB crop for the scorer is the 256 reference crop resized to ``crop_size`` by the one resize rule the trainer and
the scorer also use (:func:`common.model_input.resize_rgb`, as the reference test transform resizes), so both crops
map to frame px with the same box: x = x1 + u * w / size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from common.crop import I32, RefCrop
from common.crop import colours_at as colours_at
from common.crop import reference_crop as reference_crop
from common.model_input import resize_rgb
from tracker.landmarker import RGB


def rgb_crop(ref: RefCrop, size: int) -> RGB:
    """The scorer's RGB crop: the 256 reference crop resized to ``size`` by the shared rule (itself when 256)."""
    return resize_rgb(ref.image, size)


def crop_to_frame(points: npt.ArrayLike, box: I32, size: int) -> npt.NDArray[np.float64]:
    """Map points in a ``size`` x ``size`` crop of ``box`` back to frame px."""
    scale = np.array([(box[2] - box[0]) / size, (box[3] - box[1]) / size], dtype=np.float64)
    return np.asarray(points, dtype=np.float64) * scale + box[:2]


def frame_to_crop(points: npt.ArrayLike, box: I32, size: int) -> npt.NDArray[np.float64]:
    """Map frame px into a ``size`` x ``size`` crop of ``box`` (the inverse of :func:`crop_to_frame`)."""
    scale = np.array([size / (box[2] - box[0]), size / (box[3] - box[1])], dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - box[:2]) * scale
