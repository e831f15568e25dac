"""PatientSpec and the 106-point layout."""

from __future__ import annotations

import dataclasses

import pytest

from phantom import layout
from phantom.spec import PatientSpec

pytestmark = pytest.mark.unit


def test_json_round_trip_keeps_every_field_and_the_identity() -> None:
    spec = PatientSpec(
        seed=3,
        protocol="palsy",
        severity=2.5,
        palsy_side="right",
        reps=2,
        tasks=("smile",),
        identity_seed=9,
        head_motion=0.5,
        population="timing",
        appearance="photo",
        nuisance=False,
    )
    back = PatientSpec.from_json(spec.to_json())
    assert back.traits == spec.traits and back.traits != dataclasses.replace(spec, population="standard").traits
    assert back == spec
    assert back.identity == spec.identity == PatientSpec(seed=1, protocol="pfed5", severity=0, identity_seed=9).identity
    assert spec.identity != PatientSpec(seed=4, protocol="palsy", severity=1).identity


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "updrs"}, "unknown protocol"),
        ({"protocol": "pfed5", "severity": 4.5}, "severity"),
        ({"protocol": "neuroface", "severity": 0.0}, "severity"),
        ({"protocol": "palsy", "severity": 4.0}, "severity"),
        ({"palsy_side": "up"}, "palsy_side"),
        ({"reps": 0}, "reps"),
        ({"tasks": ("blow",)}, "not in protocol"),
        ({"population": "wide"}, "population"),
        ({"appearance": "oil"}, "appearance"),
    ],
)
def test_invalid_specs_are_refused_with_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"seed": 0, "protocol": "pfed5", "severity": 1.0}
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PatientSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"seed": 1}',
        '{"seed": 1, "protocol": "pfed5", "severity": 9}',
        '{"seed": 1, "protocol": "pfed5", "severity": 1, "nuisance": "no"}',
    ],
)
def test_malformed_json_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        PatientSpec.from_json(text)


def test_layout_matches_the_insightface_groups() -> None:
    assert len(layout.NAMES) == layout.N_POINTS == 106
    assert layout.NAMES[34] == "left_eye_center" and layout.NAMES[88] == "right_eye_center"
    assert layout.NAMES[38] == "left_eye_pupil" and layout.NAMES[92] == "right_eye_pupil"
    assert (layout.NAMES[52], layout.NAMES[61]) == ("mouth_left_corner", "mouth_right_corner")
    assert layout.NAMES[86] == "nose_tip"
    groups = [("contour", 0, 33), ("left_eye_", 33, 43), ("left_eyebrow_", 43, 52), ("mouth_", 52, 72)]
    groups += [("nose_", 72, 87), ("right_eye_", 87, 97), ("right_eyebrow_", 97, 106)]
    for prefix, lo, hi in groups:
        assert all(n.startswith(prefix) for n in layout.NAMES[lo:hi]), prefix
    assert sorted(layout.contour_path()) == list(range(33))
