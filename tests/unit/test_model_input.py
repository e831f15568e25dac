"""common/model_input.py: the one path from observations and crops to model tensors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common import features
from common.features import FeatureError
from common.model_input import (
    InputSpec,
    ObservedClip,
    model_input,
    normalise_rgb,
    prepare_clip,
    resize_rgb,
    rgb_input,
    sample,
)
from tracker.refcrop import RefCrop, rgb_crop

pytestmark = pytest.mark.unit
SPEC = InputSpec(t_p=16, rgb_frames=8, rgb_size=32, rgb_mean=(0.485, 0.456, 0.406), rgb_std=(0.229, 0.224, 0.225),
                 fps=25.0)  # fmt: skip


def _clip(n: int, fps: float = 25.0, t0: float = 1_700_000_000.0, seed: int = 0) -> ObservedClip:
    rng = np.random.default_rng(seed)
    lm = rng.integers(20, 230, size=(n, 106, 2)).astype(np.float32)
    col = rng.integers(0, 255, size=(n, 106, 3)).astype(np.float32)
    return ObservedClip.build(t0 + np.arange(n) / fps, lm, col, np.ones(n, bool))


def test_resize_rule_is_area_interpolation_and_the_tracker_uses_it() -> None:
    img = np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    want = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(resize_rgb(img, 64), want)
    assert not np.array_equal(want, cv2.resize(img, (64, 64)))  # bilinear would differ: the rule is the point
    ref = RefCrop(np.array([0, 0, 256, 256], np.int32), img, np.zeros((106, 2), np.int32))
    np.testing.assert_array_equal(rgb_crop(ref, 64), want)
    np.testing.assert_array_equal(resize_rgb(img, 256), img)
    with pytest.raises(FeatureError, match="uint8"):
        resize_rgb(img.astype(np.float32), 64)


def test_normalise_matches_the_formula_channels_first() -> None:
    img = np.random.default_rng(2).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    out = normalise_rgb(img, SPEC.rgb_mean, SPEC.rgb_std)
    assert out.shape == (2, 3, 8, 8) and out.dtype == np.float32
    want = (img[1, 3, 5, 2] / 255.0 - SPEC.rgb_mean[2]) / SPEC.rgb_std[2]
    assert out[1, 2, 3, 5] == pytest.approx(want, abs=1e-6)


def test_prepare_resamples_by_capture_time_and_keeps_epoch_last_frame() -> None:
    clip = _clip(31, fps=30.0)  # 1 s at 30 fps
    prep = prepare_clip(clip, 25.0)
    assert prep.n_frames == 26  # 0 .. 1 s at 25 fps, both ends
    assert prep.rows[0] == 0 and prep.rows[-1] == 30
    same = prepare_clip(_clip(40), 25.0)  # already at the model's rate, epoch times: every frame kept
    np.testing.assert_array_equal(same.rows, np.arange(40))


def test_gaps_hold_the_last_face_and_nan_points_count_as_gaps() -> None:
    clip = _clip(10)
    face = clip.face.copy()
    face[3] = False
    lm = clip.landmarks.copy()
    lm[6, 40] = np.nan  # a face with a broken point: not usable
    bad = ObservedClip.build(clip.capture_ts, lm, clip.colours, face)
    prep = prepare_clip(bad, None)
    np.testing.assert_array_equal(prep.rows, [0, 1, 2, 2, 4, 5, 5, 7, 8, 9])
    assert prep.filled == 2 and not prep.own[3] and not prep.own[6]
    assert np.isfinite(prep.trajectory).all()
    none = ObservedClip.build(clip.capture_ts, clip.landmarks, clip.colours, np.zeros(10, bool))
    with pytest.raises(FeatureError, match="no frame has a face"):
        prepare_clip(none, None)


def test_sample_is_the_feature_rules() -> None:
    for n in (5, 16, 40):
        s = sample(n, SPEC)
        std = features.standardise_length(n, SPEC.t_p)
        np.testing.assert_array_equal(s.traj_idx, std.indices)
        np.testing.assert_array_equal(s.index_t, std.index_t)
        np.testing.assert_array_equal(s.rgb_idx, features.rgb_frame_indices(n, SPEC.rgb_frames))


def test_model_input_shapes_and_rows_map_to_crops() -> None:
    clip = _clip(40)
    crops = {i: np.full((256, 256, 3), i, np.uint8) for i in range(40)}
    mi = model_input(clip, SPEC, lambda rows: [crops[int(r)] for r in rows])
    assert mi.trajectory.shape == (16, 63, 5) and mi.index_t.shape == (16,)
    assert mi.frames is not None and mi.frames.shape == (8, 3, 32, 32)
    np.testing.assert_array_equal(mi.rgb_rows, features.rgb_frame_indices(40, 8))
    first = (mi.rgb_rows[0] / 255.0 - SPEC.rgb_mean[0]) / SPEC.rgb_std[0]
    assert mi.frames[0, 0, 0, 0] == pytest.approx(first, abs=1e-6)
    want = features.trajectory_features(clip.landmarks, clip.colours)[24:]
    np.testing.assert_array_equal(mi.trajectory, want)  # latter T_p frames, anchored at the clip's first frame
    assert model_input(clip, SPEC).frames is None


def test_bad_clips_are_refused_with_what_was_expected() -> None:
    with pytest.raises(FeatureError, match="landmarks has shape"):
        ObservedClip.build(np.zeros(3), np.zeros((3, 68, 2)), np.zeros((3, 106, 3)), np.ones(3, bool))
    with pytest.raises(FeatureError, match="no frames"):
        ObservedClip.build(np.zeros(0), np.zeros((0, 106, 2)), np.zeros((0, 106, 3)), np.ones(0, bool))
    with pytest.raises(FeatureError, match="positive"):
        InputSpec(t_p=0, rgb_frames=8, rgb_size=32, rgb_mean=(0, 0, 0), rgb_std=(1, 1, 1), fps=25)
    with pytest.raises(FeatureError, match=r"uint8 \[H, W, 3\]"):
        rgb_input([np.zeros((8, 8), np.uint8)], SPEC)


@pytest.mark.parametrize(("n", "rgb"), [(7, "latest"), (40, "uniform"), (95, "latest"), (95, "uniform")])
def test_model_input_equals_the_whole_prepared_clip_taken_at_its_rows(n: int, rgb: str) -> None:
    """model_input computes the trajectory of the rows it keeps only: bit for bit what the prepared clip has."""
    base = _clip(n, fps=30.0, seed=n)  # resampled to 25 fps: rows are not the identity
    face = base.face.copy()
    face[[0, 1, n // 2]] = False  # a leading gap (the anchor is the first face frame) and one inside
    clip = ObservedClip.build(base.capture_ts, base.landmarks, base.colours, face)
    prepared = prepare_clip(clip, SPEC.fps)
    s = sample(prepared.n_frames, SPEC, rgb=rgb)
    mi = model_input(clip, SPEC, rgb=rgb)
    np.testing.assert_array_equal(mi.traj_rows, prepared.rows[s.traj_idx])
    np.testing.assert_array_equal(mi.rgb_rows, prepared.rows[s.rgb_idx])
    assert mi.trajectory.dtype == np.float32
    np.testing.assert_array_equal(mi.trajectory, prepared.trajectory[s.traj_idx])
    assert mi.filled == prepared.filled > 0
