"""Folding an exported graph's shape arithmetic: the shape kernels go, the function stays at every batch size (also
sizes the fold never ran), and a value that really depends on the batch is still computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from common.manifest import Calibration
from tests.model_artifacts import random_model
from trainer.export import PARITY_TOLERANCE, WindowGraph, example_inputs, export_graph
from trainer.onnx_shapes import fold_static_shapes

pytestmark = pytest.mark.unit


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(sess.run(None, feeds))


def test_window_graph_loses_its_shape_kernels_and_keeps_its_function(tmp_path: Path) -> None:
    model = random_model("micro", seed=3)
    window = WindowGraph(model, Calibration.identity(0.0, 4.0)).eval()
    trace = example_inputs(model, 2)["window"]
    traced, folded = tmp_path / "traced.onnx", tmp_path / "folded.onnx"
    export_graph(window, trace, ["score", "raw"], traced, fold_shapes=False)
    export_graph(window, trace, ["score", "raw"], folded)
    assert _ops(traced).count("Shape") > 50
    # what is left reads the batch for real: the temporal transformer's class token expanded to the batch
    assert _ops(folded).count("Shape") <= 2
    assert len(_ops(folded)) < len(_ops(traced)) / 2
    for batch in (1, 4, 7):  # the fold ran the graph at 2 and 3 only
        inputs = example_inputs(model, batch, seed=20 + batch)["window"]
        with torch.no_grad():
            ref = [t.numpy() for t in window(*inputs.values())]
        got = _run(folded, {k: v.numpy() for k, v in inputs.items()})
        assert [g.shape for g in got] == [r.shape for r in ref]
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, atol=PARITY_TOLERANCE, rtol=0)


class _BatchCounter(nn.Module):
    """Reshapes by its input's sizes and adds a ramp as long as the batch: the ramp's length depends on the batch
    and is read by Range, not Reshape, so it must stay computed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        y = x.reshape(b * t, c).sum(dim=1).reshape(b, t)
        ramp = torch.arange(b, dtype=x.dtype).unsqueeze(1)
        return y + ramp


def test_a_batch_dependent_value_stays_computed(tmp_path: Path) -> None:
    module = _BatchCounter().eval()
    path = tmp_path / "counter.onnx"
    export_graph(module, {"x": torch.randn(2, 5, 3)}, ["y"], path, fold_shapes=False)
    assert fold_static_shapes(path) > 0
    ops = _ops(path)
    assert "Range" in ops and "Shape" in ops  # the ramp still reads the batch
    for batch in (1, 6):
        x = np.random.default_rng(batch).standard_normal((batch, 5, 3)).astype(np.float32)
        (got,) = _run(path, {"x": x})
        want = x.sum(axis=2) + np.arange(batch, dtype=np.float32)[:, None]
        np.testing.assert_allclose(got, want, atol=1e-5)
