"""What the fuzz tests share: how many inputs a target gets (``--long``: at least 10,000), strategies for wire
messages (valid ones from their type hints, damaged ones, and junk), and a type check of decoded messages that does
not trust the decoder's own.

A run is short by default (seconds per target, in the normal suite); ``pytest --long -m fuzz`` runs each target on
``LONG_EXAMPLES`` inputs (README, "Fuzzing")."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import common.messages as messages_module
from common.arrays import encode_array
from common.messages import Message

SHORT_EXAMPLES = 40
LONG_EXAMPLES = 10_000


def examples(long_run: bool) -> int:
    """Inputs each target gets in this run (the loaded hypothesis profile's max_examples)."""
    return LONG_EXAMPLES if long_run else SHORT_EXAMPLES


T = TypeVar("T")
STEP_S = 15.0  # one input's handling, end to end; longer counts as hung


async def run_property(strategy: st.SearchStrategy[T], body: Callable[[T], Awaitable[None]],
                       step_s: float = STEP_S) -> int:  # fmt: skip
    """Run the async ``body`` on inputs drawn from ``strategy`` (as many as the hypothesis profile says) in this
    event loop, where the test's bus and servers live: hypothesis drives from a worker thread and each input is one
    coroutine here, which must finish within ``step_s`` (else the target hung). Returns how many inputs ran."""
    loop = asyncio.get_running_loop()
    ran = [0]

    @given(strategy)
    def prop(value: T) -> None:
        asyncio.run_coroutine_threadsafe(_counted(body, value, ran), loop).result(timeout=step_s)

    await asyncio.to_thread(prop)
    return ran[0]


async def _counted(body: Callable[[T], Awaitable[None]], value: T, ran: list[int]) -> None:
    await body(value)
    ran[0] += 1


def hints(cls: type) -> dict[str, Any]:
    return {f.name: typing.get_type_hints(cls, globalns=vars(messages_module))[f.name] for f in dataclasses.fields(cls)}


# ------------------------------------------------------------------------------------------ valid messages

_text = st.text(st.characters(codec="utf-8"), max_size=24)
_floats = st.floats(allow_nan=False, width=64)
_ints = st.integers(-(2**63), 2**63 - 1)


def _array_strategy(dtype: Any, shape: tuple[int | None, ...] | None) -> st.SearchStrategy[Any]:
    dims = shape or (None,)
    concrete = st.tuples(*(st.just(d) if d is not None else st.integers(1, 6) for d in dims))
    if np.dtype(dtype) == np.uint8:
        return concrete.flatmap(
            lambda s: st.builds(
                lambda seed: np.random.default_rng(seed).integers(0, 256, s, dtype=np.uint8), st.integers(0, 2**32)
            )
        )
    return concrete.flatmap(
        lambda s: st.builds(
            lambda seed: np.random.default_rng(seed).random(s, dtype=np.float32) * 500, st.integers(0, 2**32)
        )
    )


def value_strategy(hint: Any, shape: tuple[int | None, ...] | None = None) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return _text
    if hint is bool:
        return st.booleans()
    if hint is int:
        return _ints
    if hint is float:
        return _floats
    if hint is bytes:
        return st.binary(max_size=64)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return st.none() | value_strategy(inner[0], shape)
    if origin is dict:
        return st.dictionaries(_text, value_strategy(args[1]), max_size=4)
    if origin is tuple:
        return st.lists(value_strategy(args[0]), max_size=3).map(tuple)
    if origin is np.ndarray:
        dtype = typing.get_args(args[1])[0]
        return _array_strategy(dtype, shape)
    raise TypeError(f"no strategy for {hint!r}")


def message_strategy(cls: type[Message]) -> st.SearchStrategy[Message]:
    shapes = getattr(cls, "ARRAY_SHAPES", {})
    fields = {name: value_strategy(h, shapes.get(name)) for name, h in hints(cls).items()}
    fixed = {"Window": {"reason": st.sampled_from(["hop", "task_end"])},
             "Score": {"kind": st.sampled_from(["window", "task"])}}  # fmt: skip
    fields.update(fixed.get(cls.__name__, {}))
    strategy = st.fixed_dictionaries(fields)
    if cls.__name__ == "Score":
        strategy = strategy.map(
            lambda d: {**d, "withheld": "" if d["score"] is not None else (d["withheld"] or "no_model")}
        )
    return strategy.map(lambda d: cls(**d))


# ------------------------------------------------------------------------------------------ damaged and junk

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
junk_fields = st.dictionaries(st.binary(max_size=12), st.binary(max_size=64), max_size=6)
BOMBS = [b"[" * 20_000, b'{"a":' * 10_000, b"1e999999", b'"\\ud800"', b"NaN", b"-Infinity", b"[" * 1000 + b"]" * 1000]


def huge_array_headers() -> list[bytes]:
    """Array headers whose element count overflows 64 bits or is enormous, with payloads that would fit a wrapped
    count: a decoder must refuse them without allocating."""
    out = []
    for dims in ((2**31, 2**31, 4), (2**32 - 1,) * 8, (2**16, 2**16, 2**16, 2**16), (2**32 - 1, 2**32 - 1)):
        out.append(b"NA1" + bytes([8, len(dims)]) + b"".join(int(d).to_bytes(4, "little") for d in dims))
    return out


@st.composite
def damaged(draw: st.DrawFn, valid: st.SearchStrategy[Message]) -> dict[bytes, bytes]:
    """A valid encoding with one to three things broken."""
    fields = dict(draw(valid).encode())
    for _ in range(draw(st.integers(1, 3))):
        keys = sorted(fields)
        how = draw(st.sampled_from(["drop", "meta_value", "meta_junk", "meta_bomb", "array", "array_header", "junk",
                                    "version", "kind"]))  # fmt: skip
        if how == "drop" and keys:
            del fields[draw(st.sampled_from(keys))]
        elif how == "meta_value" and b"m" in fields:
            try:
                meta = json.loads(fields[b"m"])
            except (ValueError, RecursionError):
                meta = {}
            if isinstance(meta, dict) and meta:
                meta[draw(st.sampled_from(sorted(meta)))] = draw(json_values)
                fields[b"m"] = json.dumps(meta).encode()
        elif how == "meta_junk":
            fields[b"m"] = draw(st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()))
        elif how == "meta_bomb":
            fields[b"m"] = draw(st.sampled_from(BOMBS))
        elif how == "array":
            arrays = [k for k in keys if k.startswith(b"a:")]
            if arrays:
                key = draw(st.sampled_from(arrays))
                cut = draw(st.integers(0, len(fields[key])))
                fields[key] = fields[key][:cut] + draw(st.binary(max_size=8))
            else:
                fields[b"a:" + draw(st.sampled_from([b"box", b"image", b"landmarks", b"pose"]))] = encode_array(
                    draw(st.sampled_from([np.zeros(3, np.float64), np.zeros((2, 2), np.int32), np.zeros(0, np.uint8)]))
                )
        elif how == "array_header":
            key = b"a:" + draw(st.sampled_from([b"box", b"image", b"landmarks", b"colours", b"pose"]))
            fields[key] = draw(st.sampled_from(huge_array_headers())) + draw(st.binary(max_size=16))
        elif how == "junk":
            fields[draw(st.binary(max_size=8))] = draw(st.binary(max_size=32))
        elif how == "version":
            fields[b"v"] = draw(st.sampled_from([b"0", b"99", b"", b"\xff", b"1.0", b"-1"]))
        elif how == "kind":
            fields[b"k"] = draw(st.sampled_from([b"", b"obs", b"frame", b"\xff\xfe", b"score "]))
    return fields


# ------------------------------------------------------------------------------------------ type check


def conforms(value: Any, hint: Any, shape: tuple[int | None, ...] | None = None) -> bool:
    """Whether ``value`` is what ``hint`` promises, strictly (no bool for a number, no lone surrogates)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return isinstance(value, str) and _utf8(value)
    if hint is bool:
        return type(value) is bool
    if hint is int:
        return type(value) is int and -(2**63) <= value < 2**63
    if hint is float:
        return type(value) is float
    if hint is bytes:
        return type(value) is bytes
    if origin in (typing.Union, types.UnionType):
        return value is None or conforms(value, next(a for a in args if a is not type(None)), shape)
    if origin is dict:
        return isinstance(value, dict) and all(conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if origin is tuple:
        return isinstance(value, tuple) and all(conforms(v, args[0]) for v in value)
    if origin is np.ndarray:
        want = np.dtype(typing.get_args(args[1])[0])
        if not isinstance(value, np.ndarray) or value.dtype.kind != want.kind:
            return False
        if want == np.uint8 and value.dtype != np.uint8:
            return False
        return shape is None or (len(value.shape) == len(shape) and all(
            s is None or s == d for s, d in zip(shape, value.shape, strict=True)))  # fmt: skip
    raise TypeError(f"cannot check {hint!r}")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def well_typed(message: Message) -> list[str]:
    """The fields of a decoded message that are not what their type says (empty: all are)."""
    shapes = getattr(type(message), "ARRAY_SHAPES", {})
    return [
        name for name, h in hints(type(message)).items() if not conforms(getattr(message, name), h, shapes.get(name))
    ]


def finite_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value))
