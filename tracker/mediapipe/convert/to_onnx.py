"""Convert a TFLite graph to an ONNX model: same inputs and outputs (names, NHWC layout), a free batch axis.

Operators are mapped in execution order by :data:`tracker.mediapipe.convert.ops.OPS`; an operator kind without a
mapping stops the conversion with its name. The result passes ``onnx.checker`` and full shape inference before it
is returned.
"""

from __future__ import annotations

import onnx
from onnx import helper

from tracker.mediapipe.convert import CONVERTER_VERSION
from tracker.mediapipe.convert.builder import OPSET, Builder, ConversionError
from tracker.mediapipe.convert.ops import OPS
from tracker.mediapipe.convert.tflite_graph import Graph

PRODUCER = "feqa-tflite-converter"


def convert(
    graph: Graph, name: str, *, prelu: str = "conv", channel_pad: str = "pad", doc: str = ""
) -> onnx.ModelProto:
    """The ONNX model for ``graph``; raises :class:`ConversionError` naming an unmapped operator. ``prelu`` and
    ``channel_pad`` pick the exact forms described in :mod:`tracker.mediapipe.convert.ops`."""
    b = Builder(graph, prelu=prelu, channel_pad=channel_pad)
    unmapped = sorted({op.kind for op in graph.operators if op.kind not in OPS})
    if unmapped:
        raise ConversionError(f"{name}: operators without an ONNX mapping: {', '.join(unmapped)}")
    inputs = [b.graph_input(i) for i in graph.inputs]
    for op in graph.operators:
        OPS[op.kind](b, op)
    outputs = [b.graph_output(i) for i in graph.outputs]
    onnx_graph = helper.make_graph(b.nodes, name, inputs, outputs, initializer=b.initializers)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version=str(CONVERTER_VERSION))  # fmt: skip
    model.ir_version = 8
    model.doc_string = doc
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"{name}: the converted graph does not validate: {exc}") from exc
    return model
