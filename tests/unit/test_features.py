"""common.features: exact point selection, anchoring, padding/truncation, index_t, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from common import features as F

pytestmark = pytest.mark.unit


def test_63_points_are_the_documented_106_indices() -> None:
    assert len(F.TRAMP_POINTS_106) == 63
    assert F.TRAMP_POINTS_106[:9] == (33, 35, 36, 37, 38, 39, 40, 41, 42)
    assert F.TRAMP_POINTS_106[36:45] == (72, 74, 75, 76, 78, 80, 84, 82, 81)
    assert F.TRAMP_POINTS_106[54:] == (52, 63, 67, 61, 69, 70, 62, 66, 65)
    assert len(set(F.TRAMP_POINTS_106)) == 61  # mouth corners 52 and 61 appear in both lip groups
    # the 71-list table and the 106 table name the same points
    assert tuple(F.POINTS_71_106[i] for i in F.TRAMP_POINTS_71) == F.TRAMP_POINTS_106
    assert F.POINTS_71_106[52] == F.NOSE_TIP_106


def test_trajectory_is_anchored_at_first_frame_nose() -> None:
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 255, (5, 106, 2)).astype(np.float32)
    col = rng.uniform(0, 255, (5, 106, 3)).astype(np.float32)
    out = F.trajectory_features(lm, col)
    assert out.shape == (5, 63, 5)
    np.testing.assert_allclose(out[3, 10, :2], lm[3, 44] - lm[0, 86])
    np.testing.assert_allclose(out[3, 10, 2:], col[3, 44])


def test_file_path_equals_live_path() -> None:
    rng = np.random.default_rng(1)
    lm = rng.integers(0, 256, (4, 106, 2)).astype(np.float32)
    col = rng.integers(0, 256, (4, 106, 3)).astype(np.float32)
    from_files = F.trajectory_from_files(lm[:, 33:], col[:, list(F.POINTS_71_106)])
    np.testing.assert_array_equal(from_files, F.trajectory_features(lm, col))
    variant74 = np.concatenate([np.zeros((4, 1, 3)), np.concatenate([lm[:, 33:], np.zeros((4, 73, 1))], 2)], 1)
    np.testing.assert_array_equal(F.trajectory_from_files(variant74, col[:, list(F.POINTS_71_106)]), from_files)


def test_bad_shapes_are_refused_with_a_clear_error() -> None:
    with pytest.raises(F.FeatureError, match=r"\[T, 73, 2\]"):
        F.landmarks_106_from_73(np.zeros((3, 68, 2)))
    with pytest.raises(F.FeatureError, match="frames"):
        F.trajectory_from_files(np.zeros((3, 73, 2)), np.zeros((4, 71, 3)))
    with pytest.raises(F.FeatureError, match="empty"):
        F.trajectory_features(np.zeros((0, 106, 2)), np.zeros((0, 106, 3)))
    lm = np.zeros((2, 106, 2), np.float32)
    lm[1, 40] = np.nan
    with pytest.raises(F.FeatureError, match="non-finite"):
        F.trajectory_features(lm, np.zeros((2, 106, 3)))


def test_loop_padding_and_window_index_t() -> None:
    std = F.standardise_length(5, 8)
    assert std.indices.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    np.testing.assert_allclose(std.index_t, np.linspace(-1, 1, 8), atol=1e-7)
    ref = F.standardise_length(5, 8, time_index="reference")
    np.testing.assert_allclose(ref.index_t, 2 * np.array([0, 1, 2, 3, 4, 0, 1, 2]) / 8 - 1)


def test_latter_truncation_and_the_reference_rule_beyond_one() -> None:
    std = F.standardise_length(260, 128)
    assert std.indices[0] == 132 and std.indices[-1] == 259 and std.indices.size == 128
    assert std.index_t[0] == -1.0 and std.index_t[-1] == 1.0
    ref = F.standardise_length(260, 128, time_index="reference")
    assert ref.index_t[0] == pytest.approx(2 * 132 / 128 - 1) and ref.index_t[-1] > 3.0
    assert F.standardise_length(128, 128).indices.tolist() == list(range(128))
    with pytest.raises(F.FeatureError):
        F.standardise_length(0, 64)
    with pytest.raises(F.FeatureError, match="time_index"):
        F.standardise_length(10, 8, time_index="frames")


def test_time_input_does_not_follow_clip_length_or_start_offset() -> None:
    """index_t is the same for every clip; a long clip that only gained frames at its start gives the same model
    input; under the reference rule both change with the clip's length."""
    rng = np.random.default_rng(0)
    clip = rng.normal(size=(90, 63, 5)).astype(np.float32)
    windows = {n: F.standardise_length(n, 64).index_t for n in (10, 63, 64, 90, 300)}
    assert all(np.array_equal(v, windows[64]) for v in windows.values())
    base_traj, base_t = F.model_input(clip, 64)
    for lead in (1, 17, 140):
        longer = np.concatenate([rng.normal(size=(lead, 63, 5)).astype(np.float32), clip])
        traj, index_t = F.model_input(longer, 64)
        assert np.array_equal(traj, base_traj) and np.array_equal(index_t, base_t)
        _, ref_t = F.model_input(longer, 64, time_index="reference")
        assert not np.allclose(ref_t, F.model_input(clip, 64, time_index="reference")[1])


def test_rgb_frame_indices() -> None:
    assert F.rgb_frame_indices(3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    uniform = F.rgb_frame_indices(160, 80)
    assert uniform[0] == 0 and uniform[-1] == 159 and np.all(np.diff(uniform) >= 1)
    rand = F.rgb_frame_indices(100, 80, train=True, rng=np.random.default_rng(3))
    assert np.all(np.diff(rand) == 1) and 0 <= rand[0] <= 20


def test_resample_by_capture_time() -> None:
    ts = np.arange(0, 61) / 30.0  # 2 s at 30 fps
    idx = F.resample_indices(ts, 25.0)
    assert idx.size == 51
    np.testing.assert_allclose(ts[idx], np.arange(51) / 25.0, atol=1 / 60 + 1e-9)
    jittery = np.array([0.0, 0.05, 0.07, 0.2, 0.21])
    assert F.resample_indices(jittery, 10.0).tolist() == [0, 2, 3]  # 0.07 is nearer 0.1 than 0.05
    with pytest.raises(F.FeatureError, match="non-decreasing"):
        F.resample_indices([0.0, 0.2, 0.1], 10.0)


def test_common_does_not_import_torch() -> None:
    import ast
    from pathlib import Path

    for mod in ("features.py", "manifest.py"):
        tree = ast.parse((Path(F.__file__).parent / mod).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(n.split(".")[0] in ("torch", "trainer", "scorer", "tracker") for n in names)


def test_faceless_frames_hold_the_last_face_frame() -> None:
    np.testing.assert_array_equal(F.fill_missing_frames([False, False, True, False, True, True, False]),
                                  [2, 2, 2, 2, 4, 5, 5])  # fmt: skip
    np.testing.assert_array_equal(F.fill_missing_frames(np.ones(4, bool)), [0, 1, 2, 3])
    with pytest.raises(F.FeatureError, match="no frame has a face"):
        F.fill_missing_frames([False, False])
    with pytest.raises(F.FeatureError, match="non-empty 1-D"):
        F.fill_missing_frames([])
