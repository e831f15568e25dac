"""QAFE-Net's movement-only inputs (``delta``: each frame minus a reference frame) and the heatmap-only ablation
(``rgb_stream = off``): what they remove, that the builder passes them on, and that the exported graphs compute what
the model does with them on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from common.errors import ConfigError
from common.manifest import Manifest
from trainer.builders import model_config
from trainer.checkpoint import Checkpoint
from trainer.config import resolve
from trainer.export import PARITY_TOLERANCE, example_inputs, export
from trainer.models import qafenet
from trainer.models.qafenet import QafeNet, QafeNetConfig

pytestmark = pytest.mark.unit


def _pair(seed: int, **changes: Any) -> tuple[QafeNet, QafeNet]:
    """A micro model with ``changes`` and the paper's micro model with the same weights."""
    torch.manual_seed(seed)
    cfg = dataclasses.replace(qafenet.micro(), **changes)
    model, plain = QafeNet(cfg).eval(), QafeNet(qafenet.micro()).eval()
    plain.load_state_dict(model.state_dict())
    return model, plain


def _inputs(cfg: QafeNetConfig, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s, h = cfg.rgb.image_size, cfg.heat.size
    frames = torch.randn(batch, cfg.rgb_frames, 3, s, s, generator=g)
    return frames, torch.rand(batch, cfg.rgb_frames, 3, h, h, generator=g)


def _still(cfg: QafeNetConfig, per_subclip: bool, seed: int) -> torch.Tensor:
    """[2, T_f, 3, H, H]: one image for the whole window, or one per subclip, repeated over its frames."""
    g = torch.Generator().manual_seed(seed)
    n = cfg.subclips if per_subclip else 1
    images = torch.rand(2, n, 1, 3, cfg.heat.size, cfg.heat.size, generator=g)
    return images.expand(-1, -1, cfg.rgb_frames // n, -1, -1, -1).reshape(2, cfg.rgb_frames, 3, cfg.heat.size, -1)


def _only_a_subclip_reference_ignores(moved: torch.Tensor, base: torch.Tensor, delta_from: str) -> None:
    """A still image per subclip (not across the window) leaves the score alone only when subclips are the reference."""
    if delta_from == "subclip":
        torch.testing.assert_close(moved, base)
    else:
        assert not torch.allclose(moved, base)


def _bump(x: torch.Tensor, frame: int) -> torch.Tensor:
    """``x`` with one frame (not a reference frame) changed."""
    out = x.clone()
    out[:, frame] += 0.5
    return out


@pytest.mark.parametrize("delta_from", ["subclip", "window"])
def test_heatmap_differences_remove_what_stays_still(delta_from: str) -> None:
    model, plain = _pair(5, delta="heatmaps", delta_from=delta_from)
    cfg = model.cfg
    frames, heat = _inputs(cfg, 2, seed=1)
    with torch.no_grad():
        base = model(frames, heat)
        # the same image added to every frame of the window changes nothing, as it does change the paper's model
        window_still = _still(cfg, per_subclip=False, seed=2)
        torch.testing.assert_close(model(frames, heat + window_still), base)
        assert not torch.allclose(plain(frames, heat + window_still), plain(frames, heat))
        # one image per subclip is still within each subclip, not across the window
        _only_a_subclip_reference_ignores(model(frames, heat + _still(cfg, per_subclip=True, seed=3)), base, delta_from)
        # what moves still counts: changing one frame after the first changes the score
        assert not torch.allclose(model(frames, _bump(heat, 1)), base)
        # only the heatmaps are differenced: the frames still reach the score
        assert not torch.allclose(model(frames + 0.5, heat), base)


def test_heatmap_differences_are_relative_to_the_reference_frame() -> None:
    """The volume SlowOnly reads is each frame minus its subclip's first (or the window's first) frame."""
    for delta_from in ("subclip", "window"):
        model, plain = _pair(6, delta="heatmaps", delta_from=delta_from)
        cfg = model.cfg
        _, heat = _inputs(cfg, 2, seed=4)
        length = cfg.rgb.subclip_len
        first = heat[:, ::length] if delta_from == "subclip" else heat[:, :1].expand(-1, cfg.subclips, -1, -1, -1)
        want = heat - first.repeat_interleave(length, dim=1)
        with torch.no_grad():
            torch.testing.assert_close(model.encode_heatmaps(heat), plain.encode_heatmaps(want))


def test_without_the_rgb_stream_the_frames_do_not_reach_the_score() -> None:
    model, plain = _pair(7, rgb_stream="off")
    frames, heat = _inputs(model.cfg, 2, seed=5)
    other_frames, _ = _inputs(model.cfg, 2, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(model(other_frames, heat), model(frames, heat))
        assert not torch.allclose(plain(other_frames, heat), plain(frames, heat))
        assert not torch.allclose(model(frames, heat + 0.3 * torch.rand_like(heat)), model(frames, heat))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"delta": "frames"}, "delta"),
        ({"delta_from": "clip"}, "delta_from"),
        ({"rgb_stream": "none"}, "rgb_stream"),
        ({"delta": "heatmaps", "centre": "heatmaps"}, "choose one"),
    ],
)
def test_unknown_or_conflicting_options_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QafeNet(dataclasses.replace(qafenet.micro(), **change))


def test_the_settings_reach_the_model_config_and_default_to_the_paper() -> None:
    sets = ["model.family=qafe_net", "model.delta=heatmaps", "model.delta_from=window", "model.rgb_stream=off"]
    cfg = model_config(resolve(["micro"], sets), "smile")
    assert (cfg.delta, cfg.delta_from, cfg.rgb_stream) == ("heatmaps", "window", "off")
    paper = model_config(resolve(["micro"], ["model.family=qafe_net"]), "smile")
    assert (paper.delta, paper.rgb_stream) == ("none", "on")
    with pytest.raises(ConfigError, match="QAFE-Net's"):
        model_config(resolve(["micro"], ["model.rgb_stream=off"]), "smile")  # TraMP-Former has its own switches
    # a checkpoint written before the options existed reads back as the paper's model
    old = {k: v for k, v in paper.to_dict().items() if k not in ("delta", "delta_from", "rgb_stream")}
    assert QafeNetConfig.from_dict(old) == paper


@pytest.mark.parametrize("delta_from", ["subclip", "window"])
def test_frame_differences_remove_what_stays_still_and_the_cached_path_agrees(delta_from: str) -> None:
    model, plain = _pair(9, delta="both", delta_from=delta_from)
    cfg = model.cfg
    frames, heat = _inputs(cfg, 2, seed=7)
    s = cfg.rgb.image_size
    g = torch.Generator().manual_seed(8)
    window_still = torch.randn(2, 1, 3, s, s, generator=g)  # one image added to every frame of the window
    subclip_still = torch.randn(2, cfg.subclips, 1, 3, s, s, generator=g).expand(
        -1, -1, cfg.rgb.subclip_len, -1, -1, -1
    )
    with torch.no_grad():
        base = model(frames, heat)
        # what a scorer caches per frame is the frame itself, and the window path gives the whole model's score
        rows = model.encode_frames(frames.flatten(0, 1))
        assert rows.shape == (2 * cfg.rgb_frames, model.frame_feature_dim) == (2 * cfg.rgb_frames, 3 * s * s)
        torch.testing.assert_close(model.forward_features(rows.reshape(2, cfg.rgb_frames, -1), heat), base)
        torch.testing.assert_close(model(frames + window_still, heat), base)
        assert not torch.allclose(plain(frames + window_still, heat), plain(frames, heat))
        _only_a_subclip_reference_ignores(model(frames + subclip_still.reshape(frames.shape), heat), base, delta_from)
        assert not torch.allclose(model(_bump(frames, 2), heat), base)
        # the heatmaps are differenced as well
        torch.testing.assert_close(model(frames, heat + _still(cfg, per_subclip=False, seed=10)), base)


@pytest.mark.parametrize(
    "options", [{"delta": "heatmaps", "rgb_stream": "off"}, {"delta": "both", "delta_from": "window"}]
)
def test_export_with_the_options_on_keeps_parity(options: dict[str, str], tmp_path: Path) -> None:
    model, _ = _pair(8, **options)
    ckpt = Checkpoint(family="qafe_net", model_config=model.cfg.to_dict(), state=model.state_dict(), protocol="pfed5",
                      task="smile", label_min=0.0, label_max=4.0, fps=8.0, landmarker="phantom", epoch=1,
                      val_spearman=0.5, data_hash="test")  # fmt: skip
    result = export(ckpt, tmp_path, version="1", require_calibration=False)
    assert max(result.max_abs_diff.values()) <= PARITY_TOLERANCE
    manifest = Manifest.read(result.folder)
    assert all(manifest.model_config[k] == v for k, v in options.items())
    assert manifest.graphs["frame"].outputs[0].shape[1] == model.frame_feature_dim
    # the window graph, fed other inputs than export checked it with, gives the model's score, and ignores a still
    # image added to the heatmaps (delta) and, with the RGB stream off, the cached frame rows
    inputs = example_inputs(model, 3, seed=21)["window"]
    sess = ort.InferenceSession(str(result.folder / manifest.graphs["window"].file), providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in inputs.items()}
    raw = sess.run(None, feeds)[1]
    with torch.no_grad():
        want = model.forward_features(*inputs.values()).numpy()
    np.testing.assert_allclose(raw, want, atol=PARITY_TOLERANCE, rtol=0)
    still = (feeds["heatmaps"] + _still(model.cfg, per_subclip=False, seed=9)[:1].numpy()).astype(np.float32)
    shift = 1.0 if options.get("rgb_stream") == "off" else 0.0
    other = {"frame_features": feeds["frame_features"] + shift, "heatmaps": still}
    np.testing.assert_allclose(sess.run(None, other)[1], raw, atol=PARITY_TOLERANCE, rtol=0)
