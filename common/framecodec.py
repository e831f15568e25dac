"""Frame and crop pixel encodings carried in :class:`common.messages.Frame`.

``rgb24`` and ``bgr24`` are raw interleaved bytes, ``i420`` is planar YUV 4:2:0 (even sizes), ``jpeg`` is a
baseline JPEG (smaller on the wire, ~2-4 ms per 640x480 frame each way). Decoding always returns RGB uint8.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from common.errors import DecodeError

ENCODINGS = ("rgb24", "bgr24", "i420", "jpeg")
RGB = npt.NDArray[np.uint8]


def encode_frame(rgb: RGB, encoding: str, jpeg_quality: int = 90) -> bytes:
    """Encode an RGB uint8 image [H, W, 3]."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if encoding == "rgb24":
        return np.ascontiguousarray(rgb).tobytes()
    if encoding == "bgr24":
        return np.ascontiguousarray(rgb[:, :, ::-1]).tobytes()
    if encoding == "i420":
        if rgb.shape[0] % 2 or rgb.shape[1] % 2:
            raise ValueError("i420 needs even width and height")
        return bytes(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    if encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return bytes(buf.tobytes())
    raise ValueError(f"unknown frame encoding {encoding!r}; use one of {ENCODINGS}")


def decode_frame(data: bytes, width: int, height: int, encoding: str) -> RGB:
    """Decode to RGB uint8 [height, width, 3]; raise :class:`DecodeError` on corrupt or mis-sized data."""
    if width <= 0 or height <= 0:
        raise DecodeError(f"bad frame size {width}x{height}")
    if encoding in ("rgb24", "bgr24"):
        if len(data) != width * height * 3:
            raise DecodeError(f"{encoding} frame has {len(data)} bytes, {width}x{height} needs {width * height * 3}")
        img = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        return img.copy() if encoding == "rgb24" else np.ascontiguousarray(img[:, :, ::-1])
    if encoding == "i420":
        need = width * height * 3 // 2
        if len(data) != need or width % 2 or height % 2:
            raise DecodeError(f"i420 frame has {len(data)} bytes, {width}x{height} needs {need}")
        yuv = np.frombuffer(data, np.uint8).reshape(height * 3 // 2, width)
        return np.asarray(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420), dtype=np.uint8)
    if encoding == "jpeg":
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise DecodeError("corrupt JPEG frame")
        img = np.asarray(decoded, dtype=np.uint8)
        if img.shape[:2] != (height, width):
            raise DecodeError(f"JPEG is {img.shape[1]}x{img.shape[0]}, message says {width}x{height}")
        return np.ascontiguousarray(img[:, :, ::-1])
    raise DecodeError(f"unknown frame encoding {encoding!r}")
