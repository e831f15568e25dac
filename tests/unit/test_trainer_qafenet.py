"""QAFE-Net: SlowOnly against the paper's configuration, the cross-fusion decoder's rules, the cached path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer.models import qafenet, slowonly
from trainer.models.qafenet import QafeNet

pytestmark = pytest.mark.unit


def test_slowonly_paper_config_shapes_and_size() -> None:
    """3 stages, base 32, blocks 4/6/3, 16x56x56 in: 128 @ 28, 256 @ 14, 512 @ 7, time kept; 1.97 M parameters."""
    enc = slowonly.SlowOnly(slowonly.paper()).eval()
    assert [len(getattr(enc, n)) for n in enc.stage_names] == [4, 6, 3]
    n_params = sum(p.numel() for p in enc.parameters())
    assert 1.95e6 < n_params < 1.99e6  # models.md §2.3: 1.97 M
    x = torch.randn(2, 3, 16, 56, 56)
    shapes = []
    with torch.no_grad():
        h = enc.maxpool(enc.conv1(x))
        assert h.shape == (2, 32, 16, 56, 56)  # no early down-sampling
        for name in enc.stage_names:
            h = getattr(enc, name)(h)
            shapes.append(tuple(h.shape))
        assert enc(x).shape == (2, 512)
    assert shapes == [(2, 128, 16, 28, 28), (2, 256, 16, 14, 14), (2, 512, 16, 7, 7)]
    assert enc.layer1[0].conv1.conv.kernel_size == (1, 1, 1)  # stage 1 not inflated
    assert enc.layer2[0].conv1.conv.kernel_size == (3, 1, 1)  # stages 2-3: 3x1x1
    assert enc.conv1.conv.kernel_size == (1, 7, 7) and enc.conv1.conv.stride == (1, 1, 1)


def test_slowonly_stage_one_is_per_frame_and_stage_two_mixes_time() -> None:
    torch.manual_seed(0)
    enc = slowonly.SlowOnly(slowonly.micro()).eval()
    for m in enc.modules():  # non-zero residual branches so every block contributes
        if isinstance(m, torch.nn.BatchNorm3d):
            torch.nn.init.normal_(m.weight, 1.0, 0.2)
    x = torch.randn(1, 3, 4, 16, 16)
    y = x.clone()
    y[:, :, 2] += 1.0  # change frame 2 only
    with torch.no_grad():
        s1 = [enc.layer1(enc.maxpool(enc.conv1(v))) for v in (x, y)]
        s2 = [enc.layer2(s) for s in s1]
    changed1 = (s1[0] - s1[1]).abs().amax(dim=(0, 1, 3, 4)) > 0
    changed2 = (s2[0] - s2[1]).abs().amax(dim=(0, 1, 3, 4)) > 0
    assert changed1.tolist() == [False, False, True, False]
    assert changed2.tolist() == [False, True, True, True]  # the 3x1x1 conv reaches the neighbours


def test_qafe_net_paper_size() -> None:
    model = QafeNet(qafenet.paper())
    n_params = sum(p.numel() for p in model.parameters())
    assert 29.4e6 < n_params < 30.0e6  # models.md §2.5: about 29.7 M
    assert model.fusion.token_mix.in_channels == 10 and model.fusion.pos_embed.shape == (1, 5, 512)


def _inputs(cfg: qafenet.QafeNetConfig, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    s, h = cfg.rgb.image_size, cfg.heat.size
    return torch.randn(batch, cfg.rgb_frames, 3, s, s), torch.rand(batch, cfg.rgb_frames, 3, h, h)


def test_cached_path_equals_the_whole_model_and_samples_stay_apart() -> None:
    torch.manual_seed(0)
    cfg = qafenet.micro()
    model = QafeNet(cfg).eval()
    frames, heat = _inputs(cfg, 3)
    with torch.no_grad():
        score = model(frames, heat)
        feats = model.encode_frames(frames.flatten(0, 1)).reshape(3, cfg.rgb_frames, -1)
        cached = model.forward_features(feats, heat)
        alone = torch.cat([model(frames[i : i + 1], heat[i : i + 1]) for i in range(3)])
    assert score.shape == (3,)
    torch.testing.assert_close(score, cached)
    torch.testing.assert_close(score, alone, atol=1e-5, rtol=1e-5)


def test_cross_fusion_updates_both_halves_from_the_other_as_it_was() -> None:
    torch.manual_seed(2)
    cfg = qafenet.micro()
    block = qafenet.CrossFusionBlock(cfg.dim, cfg.fusion_heads, cfg.mlp_ratio).eval()
    first, second = torch.randn(2, 2, cfg.dim), torch.randn(2, 2, cfg.dim)
    with torch.no_grad():
        a, b = block(first, second)
        x = first + block.attn(block.norm_q(first), block.norm_kv(second))
        want_a = x + block.mlp(block.norm_2(x))
        y = second + block.attn(block.norm_q(second), block.norm_kv(first))  # the pre-update first half
        want_b = y + block.mlp(block.norm_2(y))
    torch.testing.assert_close(a, want_a)
    torch.testing.assert_close(b, want_b)


def test_position_embedding_goes_to_the_chosen_stream() -> None:
    torch.manual_seed(3)
    cfg = qafenet.micro()
    frames, heat = _inputs(cfg, 2)
    code = QafeNet(cfg).eval()
    paper = QafeNet(dataclasses.replace(cfg, position_on="rgb")).eval()
    paper.load_state_dict(code.state_dict())
    with torch.no_grad():
        assert not torch.allclose(code(frames, heat), paper(frames, heat))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"heat": dataclasses.replace(slowonly.micro(), base_channels=4)}, "differ"),
        ({"heat": dataclasses.replace(slowonly.micro(), frames=8)}, "subclip_len"),
        ({"heat": dataclasses.replace(slowonly.micro(), size=12)}, "crop"),
        ({"rgb_frames": 6}, "multiple"),
        ({"position_on": "both"}, "position_on"),
    ],
)
def test_inconsistent_configs_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QafeNet(dataclasses.replace(qafenet.micro(), **change))  # type: ignore[arg-type]


def test_config_round_trips_with_its_heatmap_spec() -> None:
    cfg = dataclasses.replace(qafenet.small(), heatmap=dataclasses.replace(qafenet.small().heatmap, variant="jet"))
    assert qafenet.QafeNetConfig.from_dict(cfg.to_dict()) == cfg
