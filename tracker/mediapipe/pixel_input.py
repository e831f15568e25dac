"""Pixel input: a converted model made to take uint8 pixels, its input normalisation moved into the graph.

The MediaPipe models expect floats (Face Mesh and iris 0..1, BlazeFace -1..1). Scaling a crop in numpy costs a
pass over the image and a float buffer four times its size; here the graph does it instead, at load time and in
memory (the files on disk, and their recorded sha256, stay as fetched):

* the graph input becomes uint8; the layout Transpose that the converter puts first (NHWC -> NCHW) runs on the bytes,
  then one Cast to float;
* a range starting at 0 (``x / 255 * hi``) is folded into the weights of the convolutions that read the cast input,
  which is exact: their zero padding is the same before and after scaling. Any other range (BlazeFace's, which
  pads with what would be pixel value 127.5) gets an explicit Mul and Add after the Cast.

On a GPU provider the same change sends a quarter of the bytes to the device.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.errors import ModelError

PIXEL_MAX = 255.0


def with_pixel_input(model: onnx.ModelProto, input_range: tuple[float, float]) -> onnx.ModelProto:
    """A copy of ``model`` whose first input takes uint8 pixels 0..255 mapped linearly onto ``input_range``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    lo, hi = input_range
    scale = (hi - lo) / PIXEL_MAX
    name = g.input[0].name
    g.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    readers = [n for n in g.node if name in n.input]
    start, at = name, 0
    if len(readers) == 1 and readers[0].op_type == "Transpose":  # transpose the bytes, not the floats
        start = readers[0].output[0]
        at = list(g.node).index(readers[0]) + 1
        for vi in g.value_info:
            if vi.name == start:
                vi.type.tensor_type.elem_type = TensorProto.UINT8
    users = [n for n in g.node if start in n.input and n.output[0] != start]
    if not users:
        raise ModelError(f"{g.name}: nothing reads the input {name!r}")
    floats = f"{start}_float"
    nodes = [helper.make_node("Cast", [start], [floats], to=TensorProto.FLOAT, name=f"{start}_cast")]
    inits = {i.name: i for i in g.initializer}
    weights = [n.input[1] if n.op_type == "Conv" and len(n.input) > 1 else "" for n in users]
    shared = any(sum(w in n.input for n in g.node) > 1 for w in weights if w)
    if lo == 0.0 and all(w in inits for w in weights) and not shared:
        for w in set(weights):
            scaled = numpy_helper.from_array(numpy_helper.to_array(inits[w]) * scale, w)
            inits[w].CopyFrom(scaled)
        normalised = floats
    else:
        normalised = f"{start}_normalised"
        g.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), f"{start}_scale"),
                              numpy_helper.from_array(np.array(lo, np.float32), f"{start}_offset")])  # fmt: skip
        nodes += [helper.make_node("Mul", [floats, f"{start}_scale"], [f"{start}_scaled"]),
                  helper.make_node("Add", [f"{start}_scaled", f"{start}_offset"], [normalised])]  # fmt: skip
    for n in users:
        for k, v in enumerate(n.input):
            if v == start:
                n.input[k] = normalised
    for k, node in enumerate(nodes):
        g.node.insert(at + k, node)
    try:
        onnx.checker.check_model(out)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{g.name}: the pixel-input graph does not validate: {exc}") from exc
    return out
