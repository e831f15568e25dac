"""A model's score does not follow a clip's length or start offset (only its content), through the real sampling
and model code; under the reference's time rule it does, which is the leak the default rule closes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.builders import model_config
from trainer.config import resolve
from trainer.data.cache import CachedClip
from trainer.data.records import ClipRecord
from trainer.models.trampformer import TrampFormer
from trainer.predict import predict

pytestmark = pytest.mark.unit


def _clip(tmp: Path, name: str, trajectory: np.ndarray) -> CachedClip:
    frames = np.full((trajectory.shape[0], 36, 36, 3), 120, np.uint8)  # a still picture: only the trajectory differs
    path = tmp / f"{name}.npz"
    np.savez(path, trajectory=trajectory, frames=frames)
    record = ClipRecord(name, "s1", "smile", 2.0, trajectory.shape[0], None, None, None, "test")
    return CachedClip(record, path)


@pytest.mark.parametrize("rule", ["window", "reference"])
def test_score_ignores_extra_lead_in_frames_only_under_the_window_rule(tmp_path: Path, rule: str) -> None:
    cfg = resolve(["micro"], [f'model.time_index="{rule}"'])
    torch.manual_seed(0)
    model = TrampFormer(model_config(cfg, "smile")).eval()
    rng = np.random.default_rng(1)
    t_p = model.cfg.skate.t_p
    movement = rng.normal(0.0, 3.0, (t_p + 8, 63, 5)).astype(np.float32)
    clips = [_clip(tmp_path, "base", movement)]
    for lead in (5, 20, 60):  # the same movement, started later in a longer recording
        idle = np.repeat(movement[:1], lead, axis=0) + rng.normal(0.0, 0.2, (lead, 63, 5)).astype(np.float32)
        clips.append(_clip(tmp_path, f"lead{lead}", np.concatenate([idle, movement])))
    scores = predict(model, clips, torch.device("cpu"))
    spread = float(np.ptp(scores))
    if rule == "window":
        assert spread <= 1e-7, scores  # identical model inputs
    else:
        # an untrained model leans on index_t only a little, but the score already moves with the lead-in, a hundred
        # times more than float noise: the reference rule tells the model how long the clip was
        assert spread > 1e-5, scores
