"""The ONNX graph under construction while a TFLite graph is converted, and its layout bookkeeping.

TFLite activations are NHWC; ONNX convolutions want NCHW. Every 4-D activation is therefore held channels-first
in the ONNX graph, and an operator that depends on the memory order (RESHAPE, a graph output) gets the NHWC view
through one Transpose, made once per tensor. Activations of other ranks are held as they are. Constants are kept as
numpy arrays (DEQUANTIZE of a float16 constant is folded into a float32 constant) and become initializers only in
the layout their consumer needs. The batch axis is symbolic (``batch``) everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.errors import ModelError
from tracker.mediapipe.convert.tflite_graph import Graph, Tensor

OPSET = 17
BATCH = "batch"
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
PRELU_FORMS = ("native", "relu", "conv")
CHANNEL_PAD_FORMS = ("pad", "conv")


class ConversionError(ModelError):
    """The TFLite graph uses something this converter does not map; the message names it."""


class Builder:
    """Collects nodes and initializers; maps TFLite tensor indices to ONNX value names."""

    def __init__(self, graph: Graph, prelu: str = "conv", channel_pad: str = "pad") -> None:
        if prelu not in PRELU_FORMS or channel_pad not in CHANNEL_PAD_FORMS:
            raise ConversionError(f"unknown converter option prelu={prelu!r} channel_pad={channel_pad!r}")
        self.graph = graph
        self.prelu = prelu
        self.channel_pad = channel_pad
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._values: dict[int, str] = {}  # tensor index -> ONNX name (4-D: NCHW, else as in TFLite)
        self._nhwc: dict[int, str] = {}  # tensor index -> ONNX name of its NHWC view (4-D only)
        self._consts: dict[int, npt.NDArray[Any]] = {t.index: t.data for t in graph.tensors if t.data is not None}
        # graph outputs keep their TFLite names; nothing else may take them
        self._names: set[str] = {graph.tensors[i].name for i in graph.outputs}

    # ----------------------------------------------------------------------------------------- naming

    def fresh(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "_./:" else "_" for c in hint) or "v"
        name, n = base, 1
        while name in self._names:
            n += 1
            name = f"{base}_{n}"
        self._names.add(name)
        return name

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    # ----------------------------------------------------------------------------------------- constants

    def const(self, index: int) -> npt.NDArray[Any] | None:
        """The constant value of a tensor (folded DEQUANTIZE outputs included), or None for an activation."""
        return self._consts.get(index)

    def need_const(self, index: int, what: str) -> npt.NDArray[Any]:
        value = self.const(index)
        if value is None:
            raise ConversionError(f"{what} ({self.tensor(index).name!r}) must be a constant in this converter")
        return value

    def set_const(self, index: int, value: npt.NDArray[Any]) -> None:
        self._consts[index] = value

    def initializer(self, value: npt.NDArray[Any], hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    # ----------------------------------------------------------------------------------------- activations

    def node(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.fresh(f"{op_type}_{hint}"), **attrs))
        return out

    def rank(self, index: int) -> int:
        return len(self.tensor(index).shape)

    def value(self, index: int) -> str:
        """The ONNX name of a tensor in its held layout (NCHW for 4-D activations); constants become initializers
        in that same layout."""
        if index in self._values:
            return self._values[index]
        const = self.const(index)
        if const is None:
            raise ConversionError(f"tensor {self.tensor(index).name!r} is used before any operator produced it")
        arr = np.asarray(const)
        if arr.ndim == 4:
            arr = arr.transpose(NHWC_TO_NCHW)
        name = self.initializer(arr.astype(np.float32) if arr.dtype == np.float16 else arr, self.tensor(index).name)
        self._values[index] = name
        return name

    def nhwc(self, index: int) -> str:
        """The tensor in TFLite's own memory order (a Transpose of a 4-D activation, made once)."""
        if self.rank(index) != 4:
            return self.value(index)
        if index not in self._nhwc:
            self._nhwc[index] = self.node("Transpose", [self.value(index)], f"{self.tensor(index).name}_nhwc",
                                          perm=list(NCHW_TO_NHWC))  # fmt: skip
        return self._nhwc[index]

    def bind(self, index: int, name: str) -> None:
        """Record that ``name`` (in the held layout) is the value of tensor ``index``."""
        if index in self._values:
            raise ConversionError(f"tensor {self.tensor(index).name!r} is produced twice")
        self._values[index] = name

    def bind_nhwc(self, index: int, name: str) -> None:
        """Record a value given in TFLite order; a 4-D one is transposed to the held NCHW layout."""
        if self.rank(index) == 4:
            self._nhwc[index] = name
            name = self.node("Transpose", [name], f"{self.tensor(index).name}_nchw", perm=list(NHWC_TO_NCHW))
        self.bind(index, name)

    # ----------------------------------------------------------------------------------------- the model

    def graph_input(self, index: int) -> onnx.ValueInfoProto:
        """Declare a graph input (NHWC float32 with a symbolic batch) and hold it as NCHW."""
        t = self.tensor(index)
        if t.dtype is not np.float32:
            raise ConversionError(f"input {t.name!r} is {t.dtype.__name__}; only float32 inputs are converted")
        name = self.fresh(t.name)
        dims: list[int | str] = [BATCH, *t.shape[1:]]
        self.bind_nhwc(index, name)
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    def graph_output(self, index: int) -> onnx.ValueInfoProto:
        """A graph output named as in TFLite, in TFLite's layout and shape (batch symbolic)."""
        t = self.tensor(index)
        name = t.name
        self.nodes.append(helper.make_node("Identity", [self.nhwc(index)], [name], name=self.fresh(f"out_{t.name}")))
        dims: list[int | str] = [BATCH, *t.shape[1:]]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)
