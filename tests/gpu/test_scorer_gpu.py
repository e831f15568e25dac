"""The scorer's GPU backends on a real exported model: ONNX Runtime's CUDA provider and TensorRT give the CPU's
scores, and a TensorRT engine is built once and then read from its cache. Skipped where there is no CUDA provider
or no ``tensorrt`` package (it cannot be installed from PyPI alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from scorer.backends import BackendChoice, OrtBackend, TensorRTBackend
from tests.model_artifacts import shared_random_artifact

pytestmark = pytest.mark.gpu


def _feeds(backend: OrtBackend, batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {i.name: [batch, *(int(d) for d in i.shape[1:])] for i in backend.inputs}
    return {
        k: (rng.standard_normal(s) * (20 if k == "trajectory" else 1)).astype(np.float32) for k, s in shapes.items()
    }


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA execution provider")
def test_cuda_provider_scores_like_the_cpu() -> None:
    folder = shared_random_artifact("micro")
    for graph in ("frame_encoder.onnx", "window.onnx"):
        cpu = OrtBackend(folder / graph)
        gpu = OrtBackend(folder / graph, device="cuda")
        assert "CUDAExecutionProvider" in gpu.description
        feeds = _feeds(cpu)
        want, got = cpu.run(feeds), gpu.run(feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-3)


def test_tensorrt_engine_is_built_once_and_scores_like_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    folder = shared_random_artifact("micro")
    cpu = OrtBackend(folder / "window.onnx")
    trt = BackendChoice(backend="tensorrt", device="cuda", engine_cache_dir=tmp_path, max_batch=8).open(
        folder / "window.onnx"
    )
    assert isinstance(trt, TensorRTBackend)
    (engine,) = list(tmp_path.glob("*.engine"))
    built = engine.stat().st_mtime_ns
    TensorRTBackend(folder / "window.onnx", tmp_path, max_batch=8)  # a second load reads the cached engine
    assert [p.stat().st_mtime_ns for p in tmp_path.glob("*.engine")] == [built]
    feeds = _feeds(cpu)
    want, got = cpu.run(feeds), trt.run(feeds)
    for name in want:  # fp16 where the GPU has it
        np.testing.assert_allclose(got[name], want[name], rtol=2e-2, atol=2e-2)
