"""Checks that a decoded field is what its message's type hint promises, so a consumer never gets a message whose
``seq`` is a string, whose ``quality`` is a list or whose landmarks are the wrong shape (fuzzing found each of these
passing ``Message.decode`` unchecked).

:func:`scalar_check` and :func:`array_check` turn a type hint into a function that returns the value (numbers in
float fields as ``float``, JSON lists in tuple fields as tuples) or raises ``ValueError`` saying what is wrong.
Rules: ``str`` is text that encodes as UTF-8 (no lone surrogates); ``int`` is a 64-bit integer, never a bool;
``float`` takes any JSON number (NaN and infinities included), never a bool; ``dict[str, float]`` maps text to
numbers; ``tuple[str, ...]`` is a list of text; ``X | None`` also takes null. An array field must have the hinted
kind (any float width for float arrays, exactly uint8 for byte arrays) and, where the message declares one in
``ARRAY_SHAPES``, that shape (``None`` for any length of an axis).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Check = Callable[[Any], Any]
INT64 = (-(2**63), 2**63)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text is not valid Unicode (a lone surrogate)") from None
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    if not INT64[0] <= value < INT64[1]:
        raise ValueError("integer out of the 64-bit range")
    return value


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value) if INT64[0] <= value < INT64[1] else _int(value)
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"expected true or false, got {type(value).__name__}")
    return value


_SIMPLE: dict[Any, Check] = {str: _text, int: _int, float: _float, bool: _bool}


def scalar_check(hint: Any) -> Check:
    """The check of a JSON-carried field with type ``hint``."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"cannot check {hint!r}")
        check = scalar_check(inner[0])
        return lambda v: None if v is None else check(v)
    if origin is dict:
        key, val = scalar_check(args[0]), scalar_check(args[1])

        def mapping(v: Any) -> dict[Any, Any]:
            if not isinstance(v, dict):
                raise ValueError(f"expected an object, got {type(v).__name__}")
            return {key(k): val(x) for k, x in v.items()}

        return mapping
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = scalar_check(args[0])

        def sequence(v: Any) -> tuple[Any, ...]:
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"expected a list, got {type(v).__name__}")
            return tuple(item(x) for x in v)

        return sequence
    raise TypeError(f"cannot check fields of type {hint!r}")


def array_check(hint: Any, shape: tuple[int | None, ...] | None) -> Callable[[npt.NDArray[Any]], npt.NDArray[Any]]:
    """The check of an array field with type ``hint`` (``NDArray[np.float32]`` ...) and an optional shape."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    want = np.dtype(typing.get_args(args[1])[0])

    def check(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if want == np.uint8 and arr.dtype != np.uint8:
            raise ValueError(f"expected uint8 values, got {arr.dtype}")
        if arr.dtype.kind != want.kind:
            raise ValueError(f"expected {want.kind!r}-kind values ({want}), got {arr.dtype}")
        if shape is not None and (
            arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape, strict=True))
        ):
            expected = "x".join("N" if s is None else str(s) for s in shape)
            raise ValueError(f"expected shape {expected}, got {'x'.join(map(str, arr.shape)) or 'scalar'}")
        return arr

    return check
