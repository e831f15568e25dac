"""scorer/frame_rows.py: per-frame rows give the plain per-observation model input and kinematics, each frame
converted once."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.messages import Obs
from phantom.spec import PatientSpec
from scorer.frame_rows import FrameRows
from scorer.scoring import observed_clip, rows_clip, rows_kinematics, window_kinematics
from tests.phantom_obs import observe

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def span() -> list[Obs]:
    seen = observe(PatientSpec(seed=5, protocol="pfed5", severity=1.0, reps=1, tasks=("smile",)), range(48), fps=25.0)
    obs = list(seen.obs)
    lm = obs[9].landmarks
    assert lm is not None
    broken = lm.copy()
    broken[3] = np.nan
    obs[9] = dataclasses.replace(obs[9], landmarks=broken)  # finite crop points but not frame points: unusable
    obs[20] = dataclasses.replace(obs[20], face=False, reason="no_face")
    obs[21] = dataclasses.replace(obs[21], colours=None)
    return obs


def test_rows_give_the_plain_model_input_clip_and_kinematics(span: list[Obs]) -> None:
    rows = FrameRows(keep=512).span(span)
    plain = observed_clip(span)
    got = rows_clip(rows)
    np.testing.assert_array_equal(got.capture_ts, plain.capture_ts)
    np.testing.assert_array_equal(got.face, plain.face)
    np.testing.assert_array_equal(got.landmarks, plain.landmarks)
    np.testing.assert_array_equal(got.colours, plain.colours)
    assert got.landmarks.dtype == plain.landmarks.dtype == np.float32
    assert not got.face[[9, 20, 21]].any() and got.face.sum() == len(span) - 3
    want = window_kinematics(span)
    kin = rows_kinematics(rows)
    assert kin.keys() == want.keys() and kin["frames"] == len(span) - 3
    for key, value in want.items():
        assert kin[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_each_frame_is_converted_once_across_windows_and_again_when_its_observation_changes(span: list[Obs]) -> None:
    cache = FrameRows(keep=30)
    for last in range(8, len(span), 8):  # hop windows over the newest 24 frames
        window = span[max(0, last - 24) : last]
        rows = cache.span(window)
        assert rows_kinematics(rows) == pytest.approx(window_kinematics(window))
    assert cache.converted == 40  # frames 0..39, each once
    assert len(cache) <= 30
    moved = dataclasses.replace(span[39], capture_ts=span[39].capture_ts + 0.001)  # the frame published again
    again = cache.span([*span[30:39], moved])
    assert cache.converted == 41 and again.capture_ts[-1] == moved.capture_ts
    cache.forget_before(35)
    assert len(cache) == 5
    assert cache.span([]).n_frames == 0 and rows_kinematics(cache.span([])) == {"frames": 0.0, "duration_s": 0.0}
