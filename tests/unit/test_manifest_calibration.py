"""The manifest's score calibration: apply by hand, dict and JSON round trips, older manifests without one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import ModelError
from common.manifest import Calibration, GraphSpec, Manifest, TensorSpec

pytestmark = pytest.mark.unit


def _manifest(**kw: object) -> Manifest:
    graph = GraphSpec(
        file="window.onnx",
        inputs=(TensorSpec("trajectory", ("batch", 16, 63, 5)),),
        outputs=(TensorSpec("score", ("batch",)), TensorSpec("raw", ("batch",))),
    )
    fields: dict[str, object] = dict(
        name="tramp_smile",
        version="1",
        family="tramp_former",
        task="smile",
        protocol="pfed5",
        graphs={"window": graph},
        fps=25.0,
        t_p=16,
        rgb_frames=8,
        rgb_size=32,
        rgb_mean=(0.485, 0.456, 0.406),
        rgb_std=(0.229, 0.224, 0.225),
        label_min=0.0,
        label_max=4.0,
    )
    fields.update(kw)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_apply_scales_shifts_and_clamps_to_the_label_scale() -> None:
    cal = Calibration(scale=0.5, offset=1.0, clamp_min=0.0, clamp_max=4.0, fitted_on="validation", n=12)
    raw = np.array([-10.0, -2.0, 0.0, 2.0, 5.0, 6.0, 7.0, 30.0])
    # 0.5 * raw + 1 = [-4, 0, 1, 2, 3.5, 4, 4.5, 16] -> clamped into [0, 4]
    assert cal.apply(raw).tolist() == [0.0, 0.0, 1.0, 2.0, 3.5, 4.0, 4.0, 4.0]
    assert cal.apply(np.float32(3.0)).shape == ()
    assert cal.apply([[2.0, 100.0]]).tolist() == [[2.0, 4.0]]


def test_identity_only_clamps() -> None:
    ident = Calibration.identity(0.0, 4.0)
    assert ident.fitted_on == "none" and ident.n == 0 and (ident.scale, ident.offset) == (1.0, 0.0)
    assert ident.apply(np.array([-0.5, 0.0, 2.25, 4.0, 4.5])).tolist() == [0.0, 0.0, 2.25, 4.0, 4.0]


def test_dict_round_trip_and_extra_keys_ignored() -> None:
    cal = Calibration(scale=0.37, offset=1.25, clamp_min=0.0, clamp_max=4.0, fitted_on="validation", n=9)
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert Calibration.from_dict({**cal.to_dict(), "val_mae_raw": 1.8, "note": ""}) == cal


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale": -0.4}, "positive"),
        ({"scale": 0.0}, "positive"),
        ({"offset": float("nan")}, "finite"),
        ({"clamp_min": 4.0}, "empty"),
        ({"fitted_on": "test"}, "fitted_on"),
        ({"n": -1}, "non-negative"),
    ],
)
def test_bad_calibration_is_a_clear_error(change: dict[str, object], message: str) -> None:
    good = Calibration(scale=0.5, offset=1.0, clamp_min=0.0, clamp_max=4.0, fitted_on="validation", n=5).to_dict()
    with pytest.raises(ModelError, match=message):
        Calibration.from_dict({**good, **change})
    with pytest.raises(ModelError, match="malformed"):
        Calibration.from_dict({k: v for k, v in good.items() if k != "scale"})


def test_manifest_json_round_trip_with_a_calibration(tmp_path: Path) -> None:
    cal = Calibration(scale=0.41, offset=1.3, clamp_min=0.0, clamp_max=4.0, fitted_on="validation", n=12)
    manifest = _manifest(calibration=cal)
    manifest.write(tmp_path)
    back = Manifest.read(tmp_path)
    assert back == manifest and back.calibration == cal
    assert json.loads((tmp_path / "manifest.json").read_text())["calibration"]["scale"] == 0.41
    assert [o.name for o in back.graphs["window"].outputs] == ["score", "raw"]


def test_manifest_without_calibration_defaults_to_identity_over_its_label_scale() -> None:
    built = _manifest(label_min=1.0, label_max=5.0)
    assert built.calibration == Calibration.identity(1.0, 5.0)
    # a manifest written before calibrations existed has no "calibration" key at all
    old = json.loads(_manifest().to_json())
    del old["calibration"]
    parsed = Manifest.from_json(json.dumps(old))
    assert parsed.calibration == Calibration.identity(0.0, 4.0)
    assert parsed.calibration.apply(np.array([-1.0, 5.0])).tolist() == [0.0, 4.0]


def test_manifest_with_a_broken_calibration_is_refused() -> None:
    text = json.loads(_manifest().to_json())
    text["calibration"] = {**text["calibration"], "scale": -1.0}
    with pytest.raises(ModelError, match="positive"):
        Manifest.from_json(json.dumps(text))
    text["calibration"] = [0.5, 1.0]
    with pytest.raises(ModelError, match="malformed"):
        Manifest.from_json(json.dumps(text))


def test_manifest_names_its_time_rule_and_refuses_unknown_ones(tmp_path: Path) -> None:
    m = _manifest()
    assert m.time_index == "window" and m.feature_version == 2
    m.check_compatible()
    ref = _manifest(time_index="reference")
    ref.write(tmp_path)
    assert Manifest.read(tmp_path).time_index == "reference"
    with pytest.raises(ModelError, match="time_index"):
        _manifest(time_index="frames").check_compatible()
    with pytest.raises(ModelError, match="feature version"):
        _manifest(feature_version=1).check_compatible()  # built on the old, length-leaking index_t
