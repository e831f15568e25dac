"""The trainer's ONNX export: every graph of a micro TraMP-Former computes what torch does at batch sizes it was not
traced or checked with, and the parity check it relies on sees a graph that computes something else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from common.manifest import Manifest
from tests.model_artifacts import export_artifact, random_model
from trainer.export import PARITY_TOLERANCE, ClipGraph, WindowGraph, example_inputs, parity
from trainer.models.trampformer import TrampFormer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrampFormer, Path]:
    """A random micro TraMP-Former and its exported folder (one export for this module's tests)."""
    model = random_model("micro", seed=4)
    return model, export_artifact(tmp_path_factory.mktemp("models"), model)


def test_every_exported_graph_matches_torch_at_any_batch(exported: tuple[TrampFormer, Path]) -> None:
    model, folder = exported
    manifest = Manifest.read(folder)
    calibration = manifest.calibration
    assert calibration is not None
    modules = {
        "frame": None,
        "window": WindowGraph(model, calibration).eval(),
        "clip": ClipGraph(model, calibration).eval(),
    }
    sessions = {
        key: ort.InferenceSession(str(folder / spec.file), providers=["CPUExecutionProvider"])
        for key, spec in manifest.graphs.items()
    }
    for batch in (1, 5):
        inputs = example_inputs(model, batch, seed=10 + batch)
        for key, spec in manifest.graphs.items():
            sess = sessions[key]
            assert [i.name for i in sess.get_inputs()] == [t.name for t in spec.inputs]
            got = sess.run(None, {k: v.numpy() for k, v in inputs[key].items()})
            with torch.no_grad():
                module = modules[key]
                ref = (
                    [model.encode_frames(inputs[key]["frames"])]
                    if module is None
                    else list(module(*inputs[key].values()))
                )
            assert [g.shape for g in got] == [tuple(r.shape) for r in ref]
            assert got[0].shape[0] == batch
            for g, r in zip(got, ref, strict=True):
                np.testing.assert_allclose(g, r.numpy(), atol=PARITY_TOLERANCE, rtol=0)


def test_parity_sees_a_graph_of_other_weights(exported: tuple[TrampFormer, Path]) -> None:
    model, folder = exported
    other = random_model("micro", seed=5)
    calibration = Manifest.read(folder).calibration
    assert calibration is not None
    inputs = example_inputs(other, 3, seed=1)["clip"]
    assert parity(ClipGraph(model, calibration).eval(), folder / "model.onnx", inputs) <= PARITY_TOLERANCE
    assert parity(ClipGraph(other, calibration).eval(), folder / "model.onnx", inputs) > 100 * PARITY_TOLERANCE
