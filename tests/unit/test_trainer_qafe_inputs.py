"""QAFE-Net's input options: the heatmap sigma with its window, the per-clip colour change in training only, and
the model's optional centring over time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from common.heatmaps import HeatmapSpec, heatmap_frame, with_sigma
from trainer.data.samples import ClipChange, Colour, Geometry, sample_spec
from trainer.models import qafenet
from trainer.models.qafenet import QafeNet

pytestmark = pytest.mark.unit


def test_with_sigma_keeps_the_papers_window_proportion() -> None:
    assert with_sigma(HeatmapSpec(), 1.0) == HeatmapSpec()  # sigma 1 -> the paper's 11 x 11 window
    wide = with_sigma(HeatmapSpec(size=16, crop=16), 4.0)
    assert (wide.sigma, wide.kernel, wide.size) == (4.0, 41, 16)
    # a wider Gaussian keeps more of one landmark's weight through the 16-fold area average
    lm = np.full((106, 2), 128.0)
    crop = np.full((256, 256, 3), 200, dtype=np.uint8)
    assert heatmap_frame(lm, crop, wide).sum() > 4 * heatmap_frame(lm, crop, HeatmapSpec(size=16, crop=16)).sum()


def test_colour_change_is_one_per_clip_and_acts_on_heatmaps_as_on_their_frame() -> None:
    rng = np.random.default_rng(0)
    colour = Colour.draw(rng, 0.3)
    assert sorted(colour.order) == [0, 1, 2] and all(np.exp(-0.45) <= g <= np.exp(0.45) for g in colour.gain)
    frames = torch.rand(5, 3, 8, 8) * 0.6
    out = colour.frames(frames)
    # every frame gets the same change: a frame repeated in time stays repeated
    same = colour.frames(frames[:1].expand(5, -1, -1, -1))
    torch.testing.assert_close(same, same[:1].expand(5, -1, -1, -1))
    assert out.shape == frames.shape and not torch.allclose(out, frames) and float(out.min()) >= 0.0
    # heatmap images are weights x RGB: changing them equals drawing them from the changed frame (order and gains)
    weights = torch.rand(5, 1, 8, 8)
    plain = Colour(colour.order, colour.gain, 1.0)
    torch.testing.assert_close(colour.heatmaps(weights * frames), weights * plain.frames(frames))


def test_zoom_and_shift_move_a_frame_and_its_heatmap_alike() -> None:
    geometry = Geometry(1.25, (0.125, -0.0625))
    frame, heat = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 16, 16)
    frame[..., 16:18, 8:10] = 1.0  # the same square of the face, at 32 and at 16 px
    heat[..., 8, 4] = 1.0

    def centre(x: torch.Tensor) -> tuple[float, float]:
        w = x[0, 0] / x.sum()
        grid = (torch.arange(x.shape[-1], dtype=torch.float32) + 0.5) / x.shape[-1]
        return float((w.sum(1) * grid).sum()), float((w.sum(0) * grid).sum())  # (y, x) in fractions of the side

    # about the centre: x 0.28125 -> 0.5 + 1.25 (0.28125 - 0.5) + 0.125 = 0.3516; y 0.53125 -> 0.5391 - 0.0625
    for moved in (geometry.apply(frame), geometry.apply(heat)):
        assert centre(moved) == pytest.approx((0.4766, 0.3516), abs=2e-3)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(Geometry(1.0, (0.0, 0.0)).apply(x), x, atol=1e-5, rtol=0)


def test_evaluation_samples_never_change_appearance() -> None:
    mcfg = qafenet.micro()
    train = sample_spec(mcfg, train=True, colour_jitter=0.3, scale_jitter=0.1)
    assert (train.colour_jitter, train.scale_jitter) == (0.3, 0.1)
    assert ClipChange.draw(np.random.default_rng(0), train) is not None
    scoring = sample_spec(mcfg, train=False, colour_jitter=0.3, scale_jitter=0.1)
    assert (scoring.colour_jitter, scoring.scale_jitter) == (0.0, 0.0)
    assert ClipChange.draw(np.random.default_rng(0), scoring) is None


@pytest.mark.parametrize("centre", ["heatmaps", "both"])
def test_centring_removes_what_stays_still_in_the_window(centre: str) -> None:
    torch.manual_seed(4)
    cfg = dataclasses.replace(qafenet.micro(), centre=centre)
    model, plain = QafeNet(cfg).eval(), QafeNet(qafenet.micro()).eval()
    plain.load_state_dict(model.state_dict())
    s, h = cfg.rgb.image_size, cfg.heat.size
    frames, heat = torch.randn(2, cfg.rgb_frames, 3, s, s), torch.rand(2, cfg.rgb_frames, 3, h, h)
    still_heat = heat + torch.rand(2, 1, 3, h, h)  # the same image added to every frame of the window
    feats = model.encode_frames(frames.flatten(0, 1)).reshape(2, cfg.rgb_frames, -1)
    still_feats = feats + torch.randn(2, 1, feats.shape[-1])
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(feats, still_heat), model.forward_features(feats, heat))
        assert not torch.allclose(plain.forward_features(feats, still_heat), plain.forward_features(feats, heat))
        moved = model.forward_features(still_feats, heat)
        if centre == "both":
            torch.testing.assert_close(moved, model.forward_features(feats, heat))
        else:
            assert not torch.allclose(moved, model.forward_features(feats, heat))


def test_an_unknown_centring_is_refused() -> None:
    with pytest.raises(ValueError, match="centre"):
        QafeNet(dataclasses.replace(qafenet.micro(), centre="time"))
