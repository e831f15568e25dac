"""The MediaPipe landmarker on ONNX Runtime's CUDA provider: it really runs there (no silent CPU fallback) and
finds the same points as on the CPU. Skipped where onnxruntime has no CUDA provider (install the `gpu` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import skimage.data

from tracker.landmarker import FrameInput
from tracker.mediapipe.landmarker import MediapipeLandmarker
from tracker.mediapipe.runners import OrtRunner
from tracker.settings import TrackerSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA provider"),
]


def _points(lm: MediapipeLandmarker, sid: str) -> np.ndarray:
    rgb = np.ascontiguousarray(skimage.data.astronaut())
    frames = [FrameInput(f"{sid}{i}", 0, rgb) for i in range(4)]  # a batch of four sessions
    for f in frames:
        lm.open_session(f.sid, {})
    dets = lm.detect(frames)
    return np.stack(lm.landmarks(frames, [d[0].box for d in dets]))


def test_cuda_runs_on_the_gpu_and_matches_the_cpu(mediapipe_dir: Path) -> None:
    cpu = MediapipeLandmarker.from_settings(TrackerSettings(mediapipe_dir=mediapipe_dir))
    gpu = MediapipeLandmarker.from_settings(
        TrackerSettings(mediapipe_dir=mediapipe_dir, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    )
    assert gpu.iris is not None
    for runner in (gpu.detector.runner, gpu.mesh.runner, gpu.iris.runner):
        assert isinstance(runner, OrtRunner)
        assert runner.session.get_providers()[0] == "CUDAExecutionProvider"
    np.testing.assert_allclose(_points(gpu, "g"), _points(cpu, "c"), atol=0.05)
