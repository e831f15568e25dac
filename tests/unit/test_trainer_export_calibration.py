"""The calibrated ``score`` head inside an exported graph: affine map and clamp, both ends, in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from common.manifest import Calibration
from trainer.export import CalibratedScore, export_graph, parity

pytestmark = pytest.mark.unit


def test_onnx_score_is_the_clamped_affine_map_and_raw_passes_through(tmp_path: Path) -> None:
    cal = Calibration(scale=0.5, offset=1.0, clamp_min=0.0, clamp_max=4.0, fitted_on="validation", n=10)
    head = CalibratedScore(cal).eval()
    path = tmp_path / "head.onnx"
    export_graph(head, {"regressor_output": torch.tensor([0.5, 2.0])}, ["score", "raw"], path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["score", "raw"]
    raw = np.array([-10.0, -2.0, 0.0, 2.0, 5.0, 6.0, 7.0, 30.0], np.float32)
    score, raw_out = sess.run(None, {"regressor_output": raw})
    # 0.5 * raw + 1 = [-4, 0, 1, 2, 3.5, 4, 4.5, 16], clamped into [0, 4]
    assert score.tolist() == [0.0, 0.0, 1.0, 2.0, 3.5, 4.0, 4.0, 4.0]
    assert raw_out.tolist() == raw.tolist()
    np.testing.assert_allclose(score, cal.apply(raw), atol=1e-6)
    assert parity(head, path, {"regressor_output": torch.from_numpy(raw)}) == 0.0
