"""TFLite operator -> ONNX nodes, one function per operator kind found in the three MediaPipe face models.

Kinds: DEQUANTIZE (float16 constants, folded), CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, ADD, PAD, RELU, PRELU,
RESHAPE, CONCATENATION. TFLite's ``SAME`` padding is TensorFlow's (the extra pixel of an odd total goes at the end);
the spatial sizes are static, so explicit ONNX pads reproduce it exactly. Fused activations NONE, RELU and RELU6
are mapped; any other is refused by name.

PRELU has three exact forms (``Builder.prelu``), measured on ONNX Runtime's CPU provider (one thread, Face Mesh):

* ``native``: the ONNX PRelu op. Its CPU kernel is slow (over half of the mesh time in a profile).
* ``relu``: ``Relu(x) - a * Relu(-x)`` (for x < 0 the second term is a * x, for x >= 0 both terms are the plain
  value), four elementwise ops. Faster, but the per-channel Mul/Sub/Neg cannot stay in ONNX Runtime's blocked
  (NCHWc) layout, so every PRELU costs two layout reorders.
* ``conv`` (default): ``x + (1 - a) * Relu(-x)``, the same function, written as two 1x1 depthwise convolutions
  (weights -1 with a fused Relu, then weights 1 - a with the residual sum fused), so the whole network stays in the
  blocked layout. For x >= 0 the result is x exactly; for x < 0 it differs from a * x by float rounding only.

A PAD that only appends zero channels (the residual shortcuts of these nets) can likewise be written as a 1x1
convolution with identity weights (``Builder.channel_pad = "conv"``), which keeps the blocked layout; it costs a
dense 1x1 convolution, so it pays off only in networks that otherwise stay blocked (Face Mesh, iris).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tracker.mediapipe.convert.builder import NHWC_TO_NCHW, Builder, ConversionError
from tracker.mediapipe.convert.tflite_graph import Operator

OpFn = Callable[[Builder, Operator], None]
_SAME, _VALID = 0, 1
_ACT_NONE, _ACT_RELU, _ACT_RELU6 = 0, 1, 3


def same_pads(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int]) -> list[int]:  # fmt: skip
    """ONNX ``pads`` [top, left, bottom, right] equal to TensorFlow's SAME padding for a static input size."""
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        out = math.ceil(n / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return [*begin, *end]


def _pads(b: Builder, op: Operator, kernel: tuple[int, int]) -> list[int]:
    padding = op.options.get("padding", _VALID)
    if padding == _VALID:
        return [0, 0, 0, 0]
    if padding != _SAME:
        raise ConversionError(f"{op.kind}: padding mode {padding} is not SAME or VALID")
    shape = b.tensor(op.inputs[0]).shape
    dilation = op.options.get("dilation", (1, 1))
    return same_pads((shape[1], shape[2]), kernel, op.options["stride"], dilation)


def _activation(b: Builder, op: Operator, name: str) -> str:
    act = op.options.get("activation", _ACT_NONE)
    if act == _ACT_NONE:
        return name
    if act == _ACT_RELU:
        return b.node("Relu", [name], f"{name}_relu")
    if act == _ACT_RELU6:
        lo = b.initializer(np.array(0.0, np.float32), "relu6_lo")
        hi = b.initializer(np.array(6.0, np.float32), "relu6_hi")
        return b.node("Clip", [name, lo, hi], f"{name}_relu6")
    raise ConversionError(f"{op.kind}: fused activation {act} is not mapped (only NONE, RELU, RELU6)")


def _out_hint(b: Builder, op: Operator) -> str:
    return b.tensor(op.outputs[0]).name


def dequantize(b: Builder, op: Operator) -> None:
    value = b.const(op.inputs[0])
    if value is None:
        raise ConversionError("DEQUANTIZE of an activation (not a constant) is not mapped")
    if b.tensor(op.inputs[0]).quantized:
        raise ConversionError("DEQUANTIZE of an integer-quantized tensor is not mapped (only float16 constants)")
    b.set_const(op.outputs[0], np.asarray(value, dtype=np.float32))


def conv2d(b: Builder, op: Operator) -> None:
    w = b.need_const(op.inputs[1], "CONV_2D filter").astype(np.float32)  # [O, kh, kw, I]
    kernel = (int(w.shape[1]), int(w.shape[2]))
    inputs = [b.value(op.inputs[0]), b.initializer(w.transpose(NHWC_TO_NCHW), f"{_out_hint(b, op)}_w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = b.need_const(op.inputs[2], "CONV_2D bias").astype(np.float32)
        inputs.append(b.initializer(bias, f"{_out_hint(b, op)}_b"))
    out = b.node("Conv", inputs, _out_hint(b, op), kernel_shape=list(kernel), strides=list(op.options["stride"]),
                 dilations=list(op.options["dilation"]), pads=_pads(b, op, kernel), group=1)  # fmt: skip
    b.bind(op.outputs[0], _activation(b, op, out))


def depthwise_conv2d(b: Builder, op: Operator) -> None:
    w = b.need_const(op.inputs[1], "DEPTHWISE_CONV_2D filter").astype(np.float32)  # [1, kh, kw, C * m]
    channels = b.tensor(op.inputs[0]).shape[3]
    multiplier = int(op.options.get("depth_multiplier", 1)) or 1
    if w.shape[0] != 1 or w.shape[3] != channels * multiplier:
        raise ConversionError(f"DEPTHWISE_CONV_2D filter {w.shape} does not fit {channels} channels x {multiplier}")
    kernel = (int(w.shape[1]), int(w.shape[2]))
    onnx_w = w.transpose(3, 0, 1, 2)  # [C * m, 1, kh, kw]: output channel c*m+j reads input channel c
    inputs = [b.value(op.inputs[0]), b.initializer(onnx_w, f"{_out_hint(b, op)}_w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        bias = b.need_const(op.inputs[2], "DEPTHWISE_CONV_2D bias").astype(np.float32)
        inputs.append(b.initializer(bias, f"{_out_hint(b, op)}_b"))
    out = b.node("Conv", inputs, _out_hint(b, op), kernel_shape=list(kernel), strides=list(op.options["stride"]),
                 dilations=list(op.options["dilation"]), pads=_pads(b, op, kernel), group=channels)  # fmt: skip
    b.bind(op.outputs[0], _activation(b, op, out))


def max_pool2d(b: Builder, op: Operator) -> None:
    kernel = tuple(int(v) for v in op.options["filter"])
    k2 = (kernel[0], kernel[1])
    out = b.node("MaxPool", [b.value(op.inputs[0])], _out_hint(b, op), kernel_shape=list(k2),
                 strides=list(op.options["stride"]), pads=_pads(b, op, k2))  # fmt: skip
    b.bind(op.outputs[0], _activation(b, op, out))


def _broadcast_operand(b: Builder, index: int, other: int) -> str:
    """An ADD operand; a constant beside a 4-D activation is laid out to broadcast over NCHW."""
    const = b.const(index)
    if const is None or b.rank(other) != 4 or const.ndim == 4:
        return b.value(index)
    arr = np.asarray(const, dtype=np.float32)
    if arr.size == 1:
        return b.initializer(arr.reshape(()), f"{b.tensor(index).name}_scalar")
    channels = b.tensor(other).shape[3]
    if arr.shape[-1] != channels or arr.size != channels:
        raise ConversionError(f"ADD constant of shape {arr.shape} beside a 4-D activation is not per-channel")
    return b.initializer(arr.reshape(1, channels, 1, 1), f"{b.tensor(index).name}_nchw")


def add(b: Builder, op: Operator) -> None:
    x, y = op.inputs[0], op.inputs[1]
    if b.rank(x) != b.rank(y) and b.const(x) is None and b.const(y) is None:
        raise ConversionError("ADD of two activations of different rank is not mapped")
    out = b.node("Add", [_broadcast_operand(b, x, y), _broadcast_operand(b, y, x)], _out_hint(b, op))
    b.bind(op.outputs[0], _activation(b, op, out))


def pad(b: Builder, op: Operator) -> None:
    pads = b.need_const(op.inputs[1], "PAD paddings").astype(np.int64).reshape(-1, 2)  # [rank, (before, after)]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        raise ConversionError("PAD with a constant value input (PADV2) is not mapped")
    if pads.shape[0] == 4 and b.channel_pad == "conv" and not pads[:3].any() and not pads[3, 0]:
        _pad_channels_conv(b, op)
        return
    if pads.shape[0] == 4:
        pads = pads[list(NHWC_TO_NCHW)]
    if pads[0].any():
        raise ConversionError("PAD along the batch axis is not mapped")
    onnx_pads = b.initializer(np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64), f"{_out_hint(b, op)}_p")
    b.bind(op.outputs[0], b.node("Pad", [b.value(op.inputs[0]), onnx_pads], _out_hint(b, op), mode="constant"))


def _pad_channels_conv(b: Builder, op: Operator) -> None:
    c_in, c_out = b.tensor(op.inputs[0]).shape[3], b.tensor(op.outputs[0]).shape[3]
    w = np.zeros((c_out, c_in, 1, 1), np.float32)
    w[np.arange(c_in), np.arange(c_in), 0, 0] = 1.0
    hint = _out_hint(b, op)
    b.bind(op.outputs[0], b.node("Conv", [b.value(op.inputs[0]), b.initializer(w, f"{hint}_w")], hint,
                                 kernel_shape=[1, 1]))  # fmt: skip


def relu(b: Builder, op: Operator) -> None:
    b.bind(op.outputs[0], b.node("Relu", [b.value(op.inputs[0])], _out_hint(b, op)))


def prelu(b: Builder, op: Operator) -> None:
    x = b.value(op.inputs[0])
    alpha = b.need_const(op.inputs[1], "PRELU alpha").astype(np.float32)
    if b.rank(op.inputs[0]) == 4:
        channels = b.tensor(op.inputs[0]).shape[3]
        if alpha.size == channels:
            alpha = alpha.reshape(channels, 1, 1)
        elif alpha.size != 1:
            raise ConversionError(f"PRELU alpha of shape {alpha.shape} is not per-channel for {channels} channels")
    hint = _out_hint(b, op)
    if b.prelu == "native":
        b.bind(op.outputs[0], b.node("PRelu", [x, b.initializer(alpha, f"{hint}_alpha")], hint))
    elif b.prelu == "relu":
        positive = b.node("Relu", [x], f"{hint}_pos")
        negative = b.node("Relu", [b.node("Neg", [x], f"{hint}_negx")], f"{hint}_neg")
        scaled = b.node("Mul", [negative, b.initializer(alpha, f"{hint}_alpha")], f"{hint}_scaled")
        b.bind(op.outputs[0], b.node("Sub", [positive, scaled], hint))
    elif b.prelu == "conv" and b.rank(op.inputs[0]) == 4:
        channels = b.tensor(op.inputs[0]).shape[3]
        per_channel = np.broadcast_to(alpha.reshape(-1), (channels,)).astype(np.float32)
        minus = b.initializer(np.full((channels, 1, 1, 1), -1.0, np.float32), f"{hint}_minus")
        negative = b.node("Relu", [b.node("Conv", [x, minus], f"{hint}_negx", kernel_shape=[1, 1], group=channels)],
                          f"{hint}_neg")  # fmt: skip
        gain = b.initializer((1.0 - per_channel).reshape(channels, 1, 1, 1), f"{hint}_gain")
        scaled = b.node("Conv", [negative, gain], f"{hint}_scaled", kernel_shape=[1, 1], group=channels)
        b.bind(op.outputs[0], b.node("Add", [scaled, x], hint))
    else:
        raise ConversionError(f"PRELU form {b.prelu!r} is not one of native, relu, conv (conv needs a 4-D input)")


def reshape(b: Builder, op: Operator) -> None:
    out_shape = b.tensor(op.outputs[0]).shape
    if not out_shape:
        raise ConversionError("RESHAPE without a static output shape is not mapped")
    target = np.array([-1, *out_shape[1:]], dtype=np.int64)  # batch stays free
    shape = b.initializer(target, f"{_out_hint(b, op)}_shape")
    b.bind_nhwc(op.outputs[0], b.node("Reshape", [b.nhwc(op.inputs[0]), shape], _out_hint(b, op)))


def concatenation(b: Builder, op: Operator) -> None:
    rank = b.rank(op.outputs[0])
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ConversionError("CONCATENATION along the batch axis is not mapped")
    if rank == 4:
        axis = NHWC_TO_NCHW.index(axis)
    out = b.node("Concat", [b.value(i) for i in op.inputs], _out_hint(b, op), axis=axis)
    b.bind(op.outputs[0], _activation(b, op, out))


OPS: dict[str, OpFn] = {
    "DEQUANTIZE": dequantize,
    "CONV_2D": conv2d,
    "DEPTHWISE_CONV_2D": depthwise_conv2d,
    "MAX_POOL_2D": max_pool2d,
    "ADD": add,
    "PAD": pad,
    "RELU": relu,
    "PRELU": prelu,
    "RESHAPE": reshape,
    "CONCATENATION": concatenation,
}
