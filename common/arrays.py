"""Compact binary encoding of numpy arrays for Redis fields.

Layout: magic ``b"NA1"``, one byte dtype code, one byte ndim, ``ndim`` little-endian uint32 dims, raw C-order
little-endian data. Decoding checks the length exactly, so a truncated array is a :class:`DecodeError`.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import numpy.typing as npt

from common.errors import DecodeError

MAGIC = b"NA1"

_CODES: dict[str, int] = {
    "uint8": 1,
    "int8": 2,
    "uint16": 3,
    "int16": 4,
    "int32": 5,
    "int64": 6,
    "float16": 7,
    "float32": 8,
    "float64": 9,
    "bool": 10,
    "uint32": 11,
}
_DTYPES: dict[int, np.dtype[np.generic]] = {code: np.dtype(name) for name, code in _CODES.items()}


def encode_array(arr: npt.NDArray[np.generic]) -> bytes:
    """Encode ``arr`` (any shape, a supported dtype) as header + raw little-endian bytes."""
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    code = _CODES.get(dtype.name)
    if code is None:
        raise ValueError(f"dtype {arr.dtype} cannot be encoded; use one of {sorted(_CODES)}")
    if arr.ndim > 8:
        raise ValueError(f"arrays of more than 8 dims cannot be encoded (got {arr.ndim})")
    header = MAGIC + struct.pack(f"<BB{arr.ndim}I", code, arr.ndim, *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<")).tobytes()


def decode_array(buf: bytes) -> npt.NDArray[np.generic]:
    """Decode what :func:`encode_array` wrote; raise :class:`DecodeError` on any mismatch."""
    if len(buf) < 5 or buf[:3] != MAGIC:
        raise DecodeError("not an encoded array (bad magic)")
    code, ndim = buf[3], buf[4]
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise DecodeError(f"unknown array dtype code {code}")
    head = 5 + 4 * ndim
    if len(buf) < head:
        raise DecodeError("truncated array header")
    shape = struct.unpack(f"<{ndim}I", buf[5:head])
    expected = math.prod(shape) * dtype.itemsize  # exact: a 64-bit product could wrap around to the payload's size
    if len(buf) - head != expected:
        raise DecodeError(f"array payload is {len(buf) - head} bytes, shape {shape} {dtype} needs {expected}")
    arr: npt.NDArray[np.generic] = np.frombuffer(buf, dtype=dtype.newbyteorder("<"), offset=head).reshape(shape)
    return arr
