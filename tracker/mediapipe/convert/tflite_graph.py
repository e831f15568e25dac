"""Read a TensorFlow Lite flatbuffer into plain Python: tensors (shape, dtype, constant data) and operators.

Only what the converter needs is read: the first subgraph, every tensor's static shape and type, constant buffers
as numpy arrays, and each operator's kind with its builtin options as a small dict of ints. Options are read for
the operator kinds :mod:`tracker.mediapipe.convert.ops` maps; any other kind is kept (with empty options) so the
converter can refuse it by name. The flatbuffer schema comes from the ``tflite`` package.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tflite

from common.errors import ModelError

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_DTYPES: dict[int, type[np.generic]] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
}


@dataclasses.dataclass(frozen=True, eq=False)
class Tensor:
    """One tensor: static shape (the batch is 1 in these files), numpy dtype, constant data or None."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type[np.generic]
    data: npt.NDArray[Any] | None
    quantized: bool


@dataclasses.dataclass(frozen=True, eq=False)
class Operator:
    """One operator: its builtin kind (e.g. ``CONV_2D``), tensor indices in and out (-1 = absent), options."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclasses.dataclass(frozen=True, eq=False)
class Graph:
    """The first subgraph of a model, operators in execution order."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str


def _options(kind: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if kind == "CONV_2D":
        c = tflite.Conv2DOptions()
        c.Init(table.Bytes, table.Pos)
        return {"padding": c.Padding(), "stride": (c.StrideH(), c.StrideW()),
                "dilation": (c.DilationHFactor(), c.DilationWFactor()),
                "activation": c.FusedActivationFunction()}  # fmt: skip
    if kind == "DEPTHWISE_CONV_2D":
        d = tflite.DepthwiseConv2DOptions()
        d.Init(table.Bytes, table.Pos)
        return {"padding": d.Padding(), "stride": (d.StrideH(), d.StrideW()),
                "dilation": (d.DilationHFactor(), d.DilationWFactor()), "activation": d.FusedActivationFunction(),
                "depth_multiplier": d.DepthMultiplier()}  # fmt: skip
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        p = tflite.Pool2DOptions()
        p.Init(table.Bytes, table.Pos)
        return {"padding": p.Padding(), "stride": (p.StrideH(), p.StrideW()),
                "filter": (p.FilterHeight(), p.FilterWidth()), "activation": p.FusedActivationFunction()}  # fmt: skip
    if kind == "ADD":
        a = tflite.AddOptions()
        a.Init(table.Bytes, table.Pos)
        return {"activation": a.FusedActivationFunction()}
    if kind == "CONCATENATION":
        c2 = tflite.ConcatenationOptions()
        c2.Init(table.Bytes, table.Pos)
        return {"axis": c2.Axis(), "activation": c2.FusedActivationFunction()}
    if kind == "RESHAPE":
        r = tflite.ReshapeOptions()
        r.Init(table.Bytes, table.Pos)
        return {"new_shape": tuple(int(v) for v in r.NewShapeAsNumpy())} if r.NewShapeLength() else {}
    return {}


def read_graph(data: bytes, source: str = "model") -> Graph:
    """Parse a ``.tflite`` flatbuffer; raise :class:`ModelError` when it is not one or has no subgraph."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{source} is not a TensorFlow Lite flatbuffer (no TFL3 identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{source} has no subgraph")
        g = model.Subgraphs(0)
        tensors = []
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            dtype = _DTYPES.get(t.Type())
            shape = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            buf = model.Buffers(t.Buffer())
            const = None
            if buf is not None and buf.DataLength() > 0:
                if dtype is None:
                    raise ModelError(f"{source}: constant tensor {t.Name()!r} has unsupported type {t.Type()}")
                const = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape).copy()
            q = t.Quantization()
            quantized = q is not None and q.ScaleLength() > 0
            tensors.append(Tensor(i, t.Name().decode(), shape, dtype or np.void, const, quantized))
        ops = []
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if kind == "CUSTOM":
                kind = f"CUSTOM:{code.CustomCode().decode()}"
            ops.append(Operator(kind, tuple(int(v) for v in op.InputsAsNumpy()),
                                tuple(int(v) for v in op.OutputsAsNumpy()), _options(kind, op)))  # fmt: skip
        description = model.Description().decode() if model.Description() else ""
        return Graph(tuple(tensors), tuple(ops), tuple(int(v) for v in g.InputsAsNumpy()),
                     tuple(int(v) for v in g.OutputsAsNumpy()), description)  # fmt: skip
    except ModelError:
        raise
    except Exception as exc:  # the flatbuffer reader raises struct/index errors on truncated data
        raise ModelError(f"{source} is not a readable TensorFlow Lite model: {exc}") from exc


def read_file(path: Path) -> Graph:
    """:func:`read_graph` of a file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return read_graph(data, str(path))
