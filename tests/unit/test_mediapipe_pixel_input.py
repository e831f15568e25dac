"""The models on uint8 pixels: the graph with its normalisation inside computes what the fetched graph computes on
the scaled floats, for every model (the range folded into the first convolutions, or as Mul and Add)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from tracker.mediapipe.convert.parity import TOLERANCE
from tracker.mediapipe.models import SPECS, ModelSpec, verified_path
from tracker.mediapipe.pixel_input import PIXEL_MAX, with_pixel_input
from tracker.mediapipe.runners import OrtRunner
from tracker.ort import open_session

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_pixels_in_the_graph_equal_scaled_floats_into_the_fetched_graph(spec: ModelSpec, mediapipe_dir: Path) -> None:
    path = verified_path(mediapipe_dir, spec)
    floats = open_session(path, ("CPUExecutionProvider",), 1)
    pixels = OrtRunner(path, spec, ("CPUExecutionProvider",), 1)
    h, w = pixels.input_hw
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    batch[0, : h // 3] = 0  # a dark band and a white one: the ends of the range and the padding next to them
    batch[1, :, -w // 4 :] = 255
    lo, hi = spec.input_range
    want = floats.run(list(spec.outputs), {floats.get_inputs()[0].name: batch * np.float32((hi - lo) / PIXEL_MAX) + lo})
    got = pixels.run(batch)
    for name, g, ref in zip(spec.outputs, got, want, strict=True):
        assert g.shape == ref.shape, name
        assert float(np.abs(g - ref).max()) < TOLERANCE / 10, (name, float(np.abs(g - ref).max()))
    assert not np.allclose(got[0][0], got[0][1], atol=1e-2)  # the items really differ


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_the_pixel_graph_takes_bytes_and_folds_a_zero_based_range(spec: ModelSpec, mediapipe_dir: Path) -> None:
    model = onnx.load(str(verified_path(mediapipe_dir, spec)))
    pixel = with_pixel_input(model, spec.input_range)
    assert pixel.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # the loaded model is left alone
    added = [n.op_type for n in pixel.graph.node if n.name not in {m.name for m in model.graph.node}]
    folded = spec.input_range[0] == 0.0
    assert added.count("Cast") == 1 and ("Mul" in added) is not folded
    assert pixel.graph.node[0].op_type == "Transpose"  # the layout change still comes first, on the bytes
