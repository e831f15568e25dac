"""The information bound: readers of the phantom's hidden truth, fitted on training clips and scored on test clips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from common import features
from phantom.dataset import write_pfed5
from phantom.plan import Cohort, plan_pfed5
from trainer.baselines import BASELINES
from trainer.bound import (
    ORACLES,
    ClipTruth,
    against_latent,
    bound_of,
    phantom_clip_specs,
    read_truths,
    score_oracles,
    truth_of,
)
from trainer.config import DataSection, RunConfig
from trainer.data.cache import CachedClip
from trainer.data.layouts import read_layout
from trainer.data.splits import split_by_subject
from trainer.evaluate import beside_baselines
from trainer.metrics import expression_metrics


def _truths(population: str) -> tuple[list[ClipTruth], list[ClipTruth]]:
    clips = [c for c in plan_pfed5(120, 2, 7, Cohort(population=population)) if c.task == "smile"]
    parts: dict[str, list[ClipTruth]] = {"train": [], "test": []}
    for i, c in enumerate(clips):
        parts[c.split].append(truth_of(c.spec, 0, str(i), c.label))
    return parts["train"], parts["test"]


def test_truth_channels_follow_the_severity_model() -> None:
    train, _ = _truths("standard")
    s = np.array([t.latent / 4 for t in train])
    assert np.allclose([t.decay for t in train], 0.3 * s)  # the hold loses 0.3 s of its peak
    amp = np.array([t.amplitude for t in train])
    assert np.corrcoef(amp, s)[0, 1] < -0.5 and amp.min() > 0
    assert all(0.1 < t.ramp_s < 2.0 for t in train)


@pytest.mark.parametrize("population", ["standard", "amplitude"])
def test_amplitude_alone_is_capped_and_the_latent_reader_is_the_floor(population: str) -> None:
    train, test = _truths(population)
    scores = score_oracles(train, test, (0.0, 4.0))
    assert set(scores) == set(ORACLES)
    latent, amp, exact = scores["oracle_latent"], scores["oracle_amplitude"], scores["oracle_all_exact"]
    # every channel exact recovers the latent severity: the rater's noise is all that is left
    assert exact.mae == pytest.approx(latent.mae, abs=0.03) and latent.mae < 0.4
    # expressiveness masks amplitude: an exact amplitude reader stays far above the floor, more so when it varies more
    assert amp.mae > latent.mae + 0.15 and amp.spearman < latent.spearman - 0.05
    if population == "amplitude":
        assert amp.mae > 0.65


def test_too_few_clips_is_a_clear_error() -> None:
    train, test = _truths("standard")
    with pytest.raises(ValueError, match="at least 10 training clips"):
        score_oracles(train[:3], test, (0.0, 4.0))


def test_the_decay_readers_noise_sets_how_much_of_the_fade_it_sees() -> None:
    train, test = _truths("amplitude")
    exact = score_oracles(train, test, (0.0, 4.0), decay_noise_iod=0.0)
    # without reading noise the decay reader reads what the exact one does (the fade divided back by the amplitude)
    assert exact["oracle_decay_noisy"].mae == pytest.approx(exact["oracle_all_exact"].mae, abs=1e-6)
    # with noise far above the fade (at most 0.3 x 1.65 x 0.13 = 0.064 IOD) it is no better than amplitude and ramp
    drowned = score_oracles(train, test, (0.0, 4.0), decay_noise_iod=1.0)
    assert drowned["oracle_decay_noisy"].mae > exact["oracle_all_exact"].mae + 0.15
    assert drowned["oracle_decay_noisy"].mae > drowned["oracle_amplitude_ramp"].mae - 0.1


def test_against_latent_gives_the_slope_and_offset_of_a_scorer() -> None:
    latent = np.linspace(0.0, 4.0, 30)
    fit = against_latent(0.5 * latent + 1.0, latent)
    assert fit["slope"] == pytest.approx(0.5) and fit["offset"] == pytest.approx(1.0)
    assert fit["pearson"] == pytest.approx(1.0)
    assert np.isnan(against_latent([1.0, 2.0], [3.0, 3.0])["slope"])  # no spread in the latent: nothing to fit


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 16 subjects' smiles, trajectory files only, at a low frame rate: about 3 s to write
    root = tmp_path_factory.mktemp("bound") / "phantom"
    return write_pfed5(root, 16, 1, seed=5, width=160, height=120, fps=6.25, contents="trajectories", only=("smile",))


def test_the_baselines_benchmark_reports_every_oracle_beside_the_target(tiny_set: Path, tmp_path: Path) -> None:
    from benchmarks.baselines import main

    out = tmp_path / "figures.json"
    result = CliRunner().invoke(main, ["--root", str(tiny_set), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "test: the phantom's bound" in result.output
    figures = json.loads(out.read_text())
    maes = [figures[f"test_smile_{b}_mae"] for b in BASELINES]
    assert figures["test_smile_target_mae"] == pytest.approx(0.8 * min(maes), abs=1e-4)
    # the latent reader is the rater floor: its MAE is the label noise of the test clips, recomputed here
    test = split_by_subject(read_layout("pfed5", tiny_set), val_fraction=0.2, test_fraction=0.25, seed=0).test
    latent = {c: spec.severity for c, (spec, _) in phantom_clip_specs(tiny_set, "pfed5").items()}
    floor = np.mean([abs(np.clip(latent[r.clip_id], 0, 4) - r.label) for r in test])
    assert figures["test_smile_oracle_latent_mae"] == pytest.approx(floor, abs=1e-4)
    for name in ORACLES:
        assert {f"test_smile_{name}_spearman", f"test_smile_{name}_mae"} <= set(figures)


def test_bound_of_is_empty_off_the_phantom(tiny_set: Path, tmp_path: Path) -> None:
    records = read_layout("pfed5", tiny_set)
    assert bound_of(records, tiny_set, records, tiny_set, "pfed5", (0.0, 4.0))  # a phantom set has its bound
    (tmp_path / "PFED5").mkdir()  # a dataset without phantom_clips.csv (real data): no truth to read
    assert bound_of(records, tiny_set, records, tmp_path, "pfed5", (0.0, 4.0)) == {}


def test_evaluate_puts_the_bound_beside_the_baselines_on_a_phantom_set(tiny_set: Path, tmp_path: Path) -> None:
    records = read_layout("pfed5", tiny_set)
    clips = []
    for r in records:
        path = tmp_path / f"{r.clip_id}.npz"
        assert r.trajectory is not None and r.colour is not None
        np.savez(path, trajectory=features.trajectory_from_files(np.load(r.trajectory), np.load(r.colour)))
        clips.append(CachedClip(r, path))
    cfg = RunConfig(data=dataclasses.replace(DataSection(), root=str(tiny_set), fps=6.25))
    fit, test = clips[:12], clips[12:]
    label = np.array([c.record.label for c in test])
    res = expression_metrics("smile", label, label, [c.record.subject for c in test], reps=10)
    out = beside_baselines("smile", fit, test, res, 0.5, cfg, tiny_set)
    assert set(out["bound"]) == set(ORACLES)
    fit_truth, test_truth = (
        list(read_truths(tiny_set, {c.record.clip_id: c.record.label for c in part}, "pfed5").values())
        for part in (fit, test)
    )
    want = score_oracles(fit_truth, test_truth, (0.0, 4.0))
    assert out["bound"]["oracle_amplitude"]["mae"] == pytest.approx(want["oracle_amplitude"].mae)
    assert beside_baselines("smile", fit, test, res, 0.5, cfg)["bound"] == {}  # no test root named: no bound
