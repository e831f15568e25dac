"""QAFE-Net's training-only movement target (``train.motion_aux``): the targets on a hand-computed face, their
indifference to what augmentation changes, the per-frame features the heads read, that the second loss trains both
encoders, and that nothing of it reaches evaluation items, other families or the model's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from trainer.config import resolve
from trainer.data.cache import CachedClip
from trainer.data.records import ClipRecord
from trainer.data.samples import ClipSamples, sample_spec, spread_frames
from trainer.loop import add_motion_head, make_optimizer
from trainer.models import qafenet, trampformer
from trainer.models.qafe_motion import (
    LEFT_BROW,
    LEFT_EYE,
    RIGHT_BROW,
    RIGHT_EYE,
    TARGETS,
    MotionHead,
    motion_head,
    movement_targets,
)
from trainer.models.qafenet import QafeNet

pytestmark = pytest.mark.unit


def _face(frames: int = 3) -> np.ndarray:
    """[frames, 63, 5]: fixed random points, pupils (slots 4 and 22) 100 px apart, mouth corners at x = 30 and 70
    (slots 45 and 49 of the lower lip, 54 and 57 of the upper: one landmark each); every frame the same face."""
    pts = np.random.default_rng(0).uniform(0, 100, size=(63, 2))
    pts[4], pts[22] = (0, 0), (100, 0)
    pts[45], pts[49] = (30, 80), (70, 80)
    pts[54], pts[57] = pts[45], pts[49]
    traj = np.zeros((frames, 63, 5), np.float32)
    traj[:, :, :2] = pts
    traj[:, :, 2:] = 128.0
    return traj


CORNERS = [45, 54, 49, 57]  # left corner twice, right corner twice


def test_targets_of_a_hand_computed_smile_and_a_head_shift() -> None:
    traj = _face(4)
    traj[1, CORNERS[:2], 0] -= 5.0  # frame 1: both mouth corners 5 px outwards
    traj[1, CORNERS[2:], 0] += 5.0
    traj[2, :, :2] += (7.0, 3.0)  # frame 2: the whole face shifted
    traj[3, CORNERS, 1] -= 3.0  # frame 3: both corners 3 px up
    out = movement_targets(traj)
    assert out.shape == (4, len(TARGETS)) and out.dtype == np.float32
    want = np.zeros((4, len(TARGETS)), np.float32)
    want[1, TARGETS.index("mouth_width")] = 10.0 / 100  # in pupil distances
    # 4 of the mouth's 18 slots rose 3 px: the mouth's mean rose 2/3 px, so the corners rose 7/3 px above it; 2 of
    # each lip's 9 slots rose alike, so the opening stays
    want[3, TARGETS.index("corner_lift")] = (3.0 - 12.0 / 18) / 100
    want[3, TARGETS.index("mouth_drop")] = -12.0 / 18 / 100
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_targets_ignore_zoom_of_a_still_face_and_a_mirror_image() -> None:
    traj = _face(4)
    traj[1:, CORNERS[:2], 0] -= np.array([2.0, 4.0, 6.0])[:, None]  # a widening mouth, a raised brow, a blink
    traj[1:, 10, 1] -= np.array([1.0, 3.0, 3.0])
    traj[2, 20, 1] += 4.0
    out = movement_targets(traj)
    zoomed = traj.copy()
    zoomed[:, :, :2] = zoomed[:, :, :2] * 1.3 + 11.0
    np.testing.assert_allclose(movement_targets(zoomed), out, atol=1e-6)
    # a horizontal flip mirrors x and turns the left regions into the right ones: pooled, the targets do not change
    mirror = traj.copy()
    mirror[:, :, 0] = 256.0 - mirror[:, :, 0]
    left_right = np.arange(63)
    for left, right in ((LEFT_EYE, RIGHT_EYE), (LEFT_BROW, RIGHT_BROW)):
        left_right[list(left)], left_right[list(right)] = list(right), list(left)
    np.testing.assert_allclose(movement_targets(mirror[:, left_right]), out, atol=1e-6)
    assert out[3, TARGETS.index("mouth_width")] == pytest.approx(6.0 / 100, abs=1e-6)
    assert np.all(np.abs(out[1:, TARGETS.index("brow_raise")]) > 1e-4)
    assert abs(out[2, TARGETS.index("eye_opening")]) > 1e-4


def test_per_frame_features_belong_to_the_models_own_pass() -> None:
    torch.manual_seed(0)
    model = QafeNet(qafenet.micro()).eval()
    frames, heat = torch.randn(2, 8, 3, 32, 32), torch.rand(2, 8, 3, 16, 16)
    with torch.no_grad():
        score, rgb, per_frame = model.forward_per_frame(frames, heat)
        torch.testing.assert_close(score, model(frames, heat), rtol=0, atol=1e-6)
        torch.testing.assert_close(rgb, model.encode_frames(frames.reshape(16, 3, 32, 32)).reshape(2, 8, -1))
        # each subclip's token is its frames' features averaged: the heads read the features the score is made of
        tokens = model.encode_heatmaps(heat)
    assert per_frame.shape == (2, 8, model.cfg.dim)
    torch.testing.assert_close(per_frame.reshape(2, 2, 4, -1).mean(dim=2), tokens, rtol=0, atol=1e-6)


def test_the_second_loss_starts_at_the_targets_scale_and_trains_both_encoders() -> None:
    torch.manual_seed(0)
    model = QafeNet(qafenet.micro())
    head = MotionHead(model.cfg.dim)
    frames, heat = torch.randn(2, 8, 3, 32, 32), torch.rand(2, 8, 3, 16, 16)
    # a target each frame's inputs carry: how far its frame and heatmap moved from the first, in one number
    target = (frames - frames[:, :1]).abs().mean(dim=(2, 3, 4)) + (heat - heat[:, :1]).abs().mean(dim=(2, 3, 4))
    target = target[..., None].expand(-1, -1, len(TARGETS)).contiguous()
    optim = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)
    losses = []
    for step in range(12):
        optim.zero_grad()
        _, rgb, per_frame = model.forward_per_frame(frames, heat)
        loss = head.loss(rgb, per_frame, target)
        loss.backward()  # type: ignore[no-untyped-call]
        losses.append(float(loss.detach()))
        if step == 0:
            # the heads start at zero: the loss is (mean^2 + variance) / variance of the targets over frames 1..7,
            # and only the heads get a gradient
            t = target[:, 1:].reshape(-1, len(TARGETS))
            assert losses[0] == pytest.approx(float((t**2).mean(0).sum() / t.var(0, unbiased=False).sum()), rel=1e-5)
            assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in model.parameters())
        optim.step()
    # from the second step on, the second loss alone trains both encoders, and it falls
    for part in (model.rgb_encoder, model.heatmap_encoder):
        assert sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None) > 0
    assert losses[-1] < 0.5 * losses[0]


def _qafe_clip(tmp_path: Path, traj: np.ndarray) -> CachedClip:
    n = traj.shape[0]
    path = tmp_path / "clip.npz"
    np.savez(path, trajectory=traj, frames=np.zeros((n, 36, 36, 3), np.uint8),
             heatmaps=np.zeros((n, 16, 16, 3), np.uint8))  # fmt: skip
    return CachedClip(ClipRecord("c", "s", "smile", 2.0, n, None, None, None, "train"), path)


def test_only_training_items_carry_the_target_of_the_frames_they_show(tmp_path: Path) -> None:
    traj = _face(21)
    traj[:, CORNERS[2:], 0] += np.arange(21, dtype=np.float32)[:, None]  # the mouth widens 1 px a frame
    clip = _qafe_clip(tmp_path, traj)
    mcfg = qafenet.micro()
    train = sample_spec(mcfg, train=True, motion_target=True)
    assert train.motion_target and not sample_spec(mcfg, train=False, motion_target=True).motion_target
    assert "motion" not in ClipSamples([clip], sample_spec(mcfg, train=False, motion_target=True))[0]
    assert "motion" not in ClipSamples([clip], sample_spec(mcfg, train=True))[0]
    windows = [movement_targets(traj[s : s + 8]) for s in range(21 - 8 + 1)]
    for seed in range(4):
        got = ClipSamples([clip], train, seed=seed)[0]["motion"].numpy()
        assert got.shape == (8, len(TARGETS)) and any(np.allclose(got, w, atol=1e-6) for w in windows)


def test_the_head_is_qafe_nets_and_lives_beside_the_model() -> None:
    assert motion_head(QafeNet(qafenet.micro()), 0.0) is None
    with pytest.raises(ConfigError, match=">= 0"):
        motion_head(QafeNet(qafenet.micro()), -1.0)
    with pytest.raises(ConfigError, match="QAFE-Net"):
        motion_head(trampformer.build(trampformer.micro(16)), 1.0)
    cfg = resolve(["micro"], ["model.family=qafe_net", "train.motion_aux=0.5"])
    model = QafeNet(qafenet.micro())
    keys = set(model.state_dict())
    optim = make_optimizer(cfg, model)
    head = add_motion_head(cfg, model, optim)
    assert isinstance(head, MotionHead) and len(optim.param_groups) == 2
    assert set(model.state_dict()) == keys  # checkpoints and exports save the model alone: the paper's weights
    assert {id(p) for p in optim.param_groups[1]["params"]} == {id(p) for p in head.parameters()}


def test_spread_training_frames_cover_the_clip_as_scoring_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    draws = np.stack([spread_frames(21, 8, rng) for _ in range(200)])
    step = 20 / 7
    uniform = np.linspace(0, 20, 8)
    # each frame within half a step of the evaluation rule's, in order, and the draws differ
    assert np.all(np.abs(draws - uniform) <= step / 2 + 0.5) and np.all(np.diff(draws, axis=1) >= 0)
    assert len({tuple(d) for d in draws}) > 50 and draws.min() == 0 and draws.max() == 20
    np.testing.assert_array_equal(spread_frames(5, 8, rng), [0, 1, 2, 3, 4, 0, 1, 2])  # looped like evaluation
    # a training item shows frames from the whole clip (consecutive ones span 7 of its 21 frames)
    traj = _face(21)
    traj[:, CORNERS[2:], 0] += np.arange(21, dtype=np.float32)[:, None]
    clip = _qafe_clip(tmp_path, traj)
    spec = sample_spec(qafenet.micro(), train=True, motion_target=True, frame_rule="spread")
    width = [ClipSamples([clip], spec, seed=k)[0]["motion"].numpy()[-1, TARGETS.index("mouth_width")] for k in range(6)]
    assert min(width) >= 17 / 100 - 1e-6  # the last frame shown is at least 17 frames after the first
    assert sample_spec(qafenet.micro(), train=False, frame_rule="spread").frame_rule == "consecutive"
    with pytest.raises(ConfigError, match="frame_rule"):
        sample_spec(qafenet.micro(), train=True, frame_rule="random")
