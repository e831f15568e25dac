"""The one protocol table (common.protocols) and everything that reads it: ingest, phantom, trainer layouts."""

from __future__ import annotations

import pytest

from common.protocols import PROTOCOL_TASKS, PROTOCOLS, UnknownProtocol, get_protocol, model_key
from phantom.spec import SEVERITY_RANGE, PatientSpec, impairment
from trainer.data.layouts import NEUROFACE_TASKS, PFED5_EXPRESSIONS

pytestmark = pytest.mark.unit


def test_protocols_match_design() -> None:
    assert set(PROTOCOLS) == {"pfed5", "neuroface", "palsy"}
    assert get_protocol("pfed5").task_names == ("rest", "smile", "frown", "squeeze_eyes", "clench_teeth")
    assert get_protocol("neuroface").task_names == ("blow", "kiss", "brow", "open", "spread", "bigsmile")
    assert get_protocol("palsy").task_names == (
        "raise_brows", "close_eyes_gently", "close_eyes_tightly", "scrunch", "smile", "pucker",
    )  # fmt: skip
    assert [t.name for t in get_protocol("pfed5").tasks if t.rest] == ["rest"]
    with pytest.raises(UnknownProtocol, match="use one of"):
        get_protocol("salsa")
    with pytest.raises(UnknownProtocol, match="no task 'wink'"):
        get_protocol("pfed5").task("wink")


def test_scales_and_their_meaning() -> None:
    ranges = {name: (p.scale.min, p.scale.max, p.scale.integer) for name, p in PROTOCOLS.items()}
    assert ranges == {"pfed5": (0, 4, True), "neuroface": (1, 5, False), "palsy": (0, 3, True)}
    palsy = get_protocol("palsy").scale
    assert palsy.anchor(0) == "normal (House-Brackmann I)" and palsy.anchor(3).startswith("high")
    assert palsy.anchor(2.4).startswith("medium") and palsy.clamp(7) == 3 and palsy.unit(1.5) == 0.5
    assert get_protocol("pfed5").scale.label == "0-4"


def test_every_reader_uses_the_one_table() -> None:
    assert {p: (lo, hi) for p, (lo, hi) in SEVERITY_RANGE.items()} == {
        name: (p.scale.min, p.scale.max) for name, p in PROTOCOLS.items()
    }  # the phantom's severities are labels on the protocol's scale: palsy 0-3, not House-Brackmann I-VI
    assert impairment("palsy", 3.0) == 1.0 and impairment("neuroface", 1.0) == 0.0
    with pytest.raises(ValueError, match="severity"):
        PatientSpec(seed=1, protocol="palsy", severity=4.0)
    # PFED5's label files give class indices 0..4 in this order (models.md §4.1): the protocol order must keep it
    assert PFED5_EXPRESSIONS == ("rest", "smile", "frown", "squeeze_eyes", "clench_teeth")
    assert set(NEUROFACE_TASKS) == set(PROTOCOL_TASKS["neuroface"])


def test_model_keys_name_protocol_and_task() -> None:
    assert model_key("pfed5", "smile") == "pfed5/smile" != model_key("palsy", "smile")
    with pytest.raises(UnknownProtocol):
        model_key("pfed5", "pucker")


def test_patient_page_gets_the_table_with_the_deployment_pacing() -> None:
    page = get_protocol("palsy").for_page(countdown_s=1, rest_s=0.5, hold_s=2.0, reps=1)
    assert {t["hold_s"] for t in page["tasks"]} == {2.0} and {t["reps"] for t in page["tasks"]} == {1}
    assert [t["eyes_closed"] for t in page["tasks"]] == [False, True, True, False, False, False]
