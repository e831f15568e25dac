"""Our TFLite -> ONNX converter: each MediaPipe model against LiteRT, every PRelu form, the free batch axis,
TensorFlow's SAME padding, and clear refusals of what it does not map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from common.errors import ModelError
from tracker.mediapipe.convert.builder import ConversionError
from tracker.mediapipe.convert.ops import same_pads
from tracker.mediapipe.convert.parity import TOLERANCE, compare, fixed_inputs
from tracker.mediapipe.convert.tflite_graph import Graph, Operator, Tensor, read_file, read_graph
from tracker.mediapipe.convert.to_onnx import convert
from tracker.mediapipe.models import MESH, SPECS, TFLITE_DIR, ModelSpec

pytestmark = pytest.mark.unit


def _convert_to(tmp_path: Path, mediapipe_dir: Path, spec: ModelSpec, **kw: str) -> tuple[Path, Path]:
    tflite = mediapipe_dir / TFLITE_DIR / spec.tflite_name
    out = tmp_path / f"{spec.stem}-{'-'.join(kw.values()) or 'default'}.onnx"
    onnx.save(convert(read_file(tflite), spec.stem, channel_pad=spec.channel_pad, **kw), str(out))
    return tflite, out


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_each_model_matches_litert(spec: ModelSpec, mediapipe_dir: Path, tmp_path: Path) -> None:
    tflite, path = _convert_to(tmp_path, mediapipe_dir, spec)
    parity = compare(tflite, path, spec.input_range)
    assert set(parity.max_abs) == set(spec.outputs)
    assert parity.ok and parity.worst < TOLERANCE, parity.max_abs
    # the shipped file is the same conversion
    shipped = compare(tflite, mediapipe_dir / spec.onnx_name, spec.input_range)
    assert shipped.worst == pytest.approx(parity.worst, abs=1e-6)


@pytest.mark.parametrize("form", ["native", "relu", "conv"])
def test_every_prelu_form_is_the_same_function(form: str, mediapipe_dir: Path, tmp_path: Path) -> None:
    tflite, path = _convert_to(tmp_path, mediapipe_dir, MESH, prelu=form)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ("PRelu" in ops) == (form == "native")
    assert compare(tflite, path, MESH.input_range).ok


def test_batch_axis_is_free_and_items_are_independent(mediapipe_dir: Path) -> None:
    session = ort.InferenceSession(str(mediapipe_dir / MESH.onnx_name), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [192, 192, 3]
    batch = fixed_inputs((192, 192, 3), 0.0, 1.0)
    together = session.run(None, {inp.name: batch})
    for i in range(len(batch)):
        alone = session.run(None, {inp.name: batch[i : i + 1]})
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_allclose(a[0], b[i], atol=1e-4)


def test_same_padding_is_tensorflows() -> None:
    assert same_pads((5, 5), (3, 3), (2, 2), (1, 1)) == [1, 1, 1, 1]  # out 3: total 2, split evenly
    assert same_pads((6, 6), (3, 3), (2, 2), (1, 1)) == [0, 0, 1, 1]  # out 3: total 1, the extra one at the end
    assert same_pads((128, 128), (5, 5), (2, 2), (1, 1)) == [1, 1, 2, 2]
    assert same_pads((8, 8), (2, 2), (2, 2), (1, 1)) == [0, 0, 0, 0]
    assert same_pads((7, 9), (3, 3), (1, 1), (2, 2)) == [2, 2, 2, 2]  # dilated


def _tensor(index: int, shape: tuple[int, ...], data: np.ndarray | None = None) -> Tensor:
    return Tensor(index, f"t{index}", shape, np.float32, data, False)


def test_an_unmapped_operator_is_refused_by_name() -> None:
    graph = Graph((_tensor(0, (1, 4)), _tensor(1, (1, 4))), (Operator("SOFTMAX", (0,), (1,), {}),), (0,), (1,), "")
    with pytest.raises(ConversionError, match="SOFTMAX"):
        convert(graph, "tiny")


def test_an_unmapped_fused_activation_is_refused() -> None:
    w = np.ones((2, 1, 1, 3), np.float32)
    tensors = (_tensor(0, (1, 4, 4, 3)), _tensor(1, w.shape, w), _tensor(2, (1, 4, 4, 2)))
    conv = Operator("CONV_2D", (0, 1, -1), (2,), {"padding": 1, "stride": (1, 1), "dilation": (1, 1), "activation": 4})
    with pytest.raises(ConversionError, match="fused activation 4"):
        convert(Graph(tensors, (conv,), (0,), (2,), ""), "tanh")


def test_a_small_graph_computes_what_tflite_defines() -> None:
    """CONV_2D (SAME, stride 2, RELU6) + PAD of channels + PRELU, checked against numpy written from the TFLite
    definitions (NHWC, [O, kh, kw, I] filters)."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=(2,)).astype(np.float32)
    pads = np.array([[0, 0], [0, 0], [0, 0], [0, 2]], np.int32)
    alpha = np.array([[[0.1, -0.5, 1.5, 0.0]]], np.float32)
    tensors = (
        _tensor(0, (1, 5, 5, 3)), _tensor(1, w.shape, w), _tensor(2, b.shape, b), _tensor(3, (1, 3, 3, 2)),
        Tensor(4, "pads", (4, 2), np.int32, pads, False), _tensor(5, (1, 3, 3, 4)), _tensor(6, alpha.shape, alpha),
        _tensor(7, (1, 3, 3, 4)),
    )  # fmt: skip
    ops = (
        Operator("CONV_2D", (0, 1, 2), (3,), {"padding": 0, "stride": (2, 2), "dilation": (1, 1), "activation": 3}),
        Operator("PAD", (3, 4), (5,), {}),
        Operator("PRELU", (5, 6), (7,), {}),
    )
    x = rng.normal(scale=3.0, size=(2, 5, 5, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # SAME, in 5, k 3, s 2: one pixel each side
    conv = np.zeros((2, 3, 3, 2), np.float32)
    for i in range(3):
        for j in range(3):
            patch = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
            conv[:, i, j, :] = np.einsum("nhwc,ohwc->no", patch, w) + b
    expected = np.concatenate([np.clip(conv, 0, 6), np.zeros((2, 3, 3, 2), np.float32)], axis=3)
    expected = np.where(expected >= 0, expected, alpha * expected)
    for form in ("native", "relu", "conv"):
        for channel_pad in ("pad", "conv"):
            model = convert(Graph(tensors, ops, (0,), (7,), ""), "small", prelu=form, channel_pad=channel_pad)
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            (got,) = session.run(None, {session.get_inputs()[0].name: x})
            np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{form}/{channel_pad}")


def test_not_a_tflite_file_is_a_model_error(tmp_path: Path, mediapipe_dir: Path) -> None:
    with pytest.raises(ModelError, match="not a TensorFlow Lite"):
        read_graph(b"\x00" * 64, "junk.tflite")
    with pytest.raises(ModelError, match="cannot read"):
        read_file(tmp_path / "missing.tflite")
    data = (mediapipe_dir / TFLITE_DIR / SPECS[0].tflite_name).read_bytes()
    with pytest.raises(ModelError, match=r"cut\.tflite"):
        read_graph(data[:4096], "cut.tflite")
