"""Phantom clips as mp4 with a truth sidecar, and as y4m."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from phantom.face import Phantom
from phantom.index_code import read_index
from phantom.sheet import contact_sheet, spread_indices
from phantom.spec import PatientSpec
from phantom.video import load_truth, sidecar_path, write_video, write_y4m

pytestmark = pytest.mark.unit


@pytest.fixture
def phantom() -> Phantom:
    return Phantom(PatientSpec(seed=6, protocol="neuroface", severity=4, reps=1), 320, 240, 25)


def test_mp4_plays_and_its_sidecar_matches_the_truth(tmp_path: Path, phantom: Phantom) -> None:
    out = tmp_path / "clip.mp4"
    side = write_video(phantom, out, start=10, stop=40)
    assert side == sidecar_path(out)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == pytest.approx(25)
        indices = [read_index(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    assert indices == list(range(10, 40))
    table = load_truth(side)
    assert list(table.index) == list(range(10, 40)) and table.landmarks.shape == (30, 106, 2)
    assert np.array_equal(table.landmarks[5], phantom.truth(15).landmarks)
    assert table.task[0] == phantom.truth(10).task and set(table.severity) == {4.0}
    assert PatientSpec.from_json(table.spec_json) == phantom.spec


def test_y4m_plays_in_pyav(tmp_path: Path, phantom: Phantom) -> None:
    out = tmp_path / "cam.y4m"
    write_y4m(phantom, out, stop=6)
    assert out.read_bytes().startswith(b"YUV4MPEG2 W320 H240 F25:1")
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert [read_index(f) for f in frames] == list(range(6))
    assert np.abs(frames[3].astype(int) - phantom.render(3).astype(int)).mean() < 3


def test_bad_ranges_and_sizes_are_refused(tmp_path: Path, phantom: Phantom) -> None:
    with pytest.raises(ValueError, match="empty frame range"):
        write_video(phantom, tmp_path / "a.mp4", start=5, stop=5)
    odd = Phantom(phantom.spec, 321, 240, 25)
    with pytest.raises(ValueError, match="even"):
        write_y4m(odd, tmp_path / "b.y4m", stop=2)
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.y4m").exists()
    bogus = tmp_path / "x.npz"
    np.savez(bogus, a=np.zeros(2))
    with pytest.raises(ValueError, match="not a phantom truth sidecar"):
        load_truth(bogus)


def test_contact_sheet_shows_landmarks(phantom: Phantom) -> None:
    idx = spread_indices(phantom, 6)
    assert len(idx) == 6 and idx == sorted(idx)
    sheet = contact_sheet(phantom, idx, columns=3, tile_width=160)
    assert sheet.shape == (2 * 120, 3 * 160, 3)
    plain = contact_sheet(phantom, idx[:1], columns=1, tile_width=320)
    raw = phantom.render(idx[0])
    changed = np.abs(plain.astype(int) - raw.astype(int)).sum(axis=2) > 60
    assert changed[:30].sum() > 0  # caption
    assert changed[30:].sum() > 106  # the landmark dots
