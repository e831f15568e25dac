"""The ``phantom`` click group."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import pytest
from click.testing import CliRunner

from phantom.cli import phantom
from phantom.video import load_truth

pytestmark = pytest.mark.unit

SMALL = ["--size", "160", "120", "--fps", "10", "--reps", "1"]


def test_render_writes_mp4_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    result = CliRunner().invoke(
        phantom, ["render", "--out", str(out), "--frames", "12", "--protocol", "palsy", "--severity", "3", *SMALL]
    )
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    assert load_truth(out.with_name("a.mp4.truth.npz")).severity.tolist() == [3.0] * 12


def test_y4m_and_sheet(tmp_path: Path) -> None:
    runner = CliRunner()
    y4m = tmp_path / "cam.y4m"
    result = runner.invoke(phantom, ["y4m", "--out", str(y4m), "--frames", "3", "--task", "smile", *SMALL])
    assert result.exit_code == 0, result.output
    assert y4m.read_bytes().startswith(b"YUV4MPEG2 W160 H120")
    png = tmp_path / "sheet.png"
    result = runner.invoke(phantom, ["sheet", "--out", str(png), "--count", "4", "--columns", "2", *SMALL])
    assert result.exit_code == 0, result.output
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (2 * 240, 2 * 320, 3)


def test_dataset_pfed5(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["dataset", "--layout", "pfed5", "--out", str(out), "--subjects", "2", "--size", "160", "120", "--fps", "5"]
    result = CliRunner().invoke(phantom, args)
    assert result.exit_code == 0, result.output
    assert (out / "PFED5" / "PFED5_train.csv").exists() and (out / "data" / "test_41.csv").exists()


def test_acceptance_sets_record_their_cohort(tmp_path: Path) -> None:
    import csv

    from phantom.spec import PatientSpec

    seeds = {}
    for name, extra in (("train", []), ("held", ["--identities", "held-out"]), ("amp", ["--population", "amplitude"])):
        out = tmp_path / name
        args = ["dataset", "--layout", "pfed5", "--out", str(out), "--subjects", "2", "--size", "96", "72"]
        args += ["--fps", "4"]
        result = CliRunner().invoke(phantom, [*args, *extra])
        assert result.exit_code == 0, result.output
        with (out / "phantom_clips.csv").open() as fh:
            specs = [PatientSpec.from_json(r["spec"]) for r in csv.DictReader(fh)]
        seeds[name] = {s.identity_seed for s in specs}
        assert {s.population for s in specs} == {"amplitude" if name == "amp" else "standard"}
    assert seeds["train"] == seeds["amp"] and not seeds["train"] & seeds["held"]


@pytest.mark.parametrize(
    "args",
    [
        ["render", "--out", "{tmp}/x.mp4", "--protocol", "pfed5", "--severity", "7"],
        ["render", "--out", "{tmp}/x.mp4", "--protocol", "neuroface", "--task", "smile"],
        ["dataset", "--layout", "pfed5", "--out", "{tmp}/ds", "--subjects", "1"],
        ["dataset", "--layout", "dfew", "--out", "{tmp}/ds"],
        ["dataset", "--layout", "pfed5", "--out", "{tmp}/ds", "--population", "wide"],
        ["dataset", "--layout", "pfed5", "--out", "{tmp}/ds", "--identities", "new"],
    ],
)
def test_bad_arguments_fail_with_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(phantom, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert "Error" in result.output
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "ds").exists()


def test_dataset_trajectories_of_one_task(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["dataset", "--layout", "pfed5", "--out", str(out), "--subjects", "2", "--size", "96", "72", "--fps", "4"]
    result = CliRunner().invoke(phantom, [*args, "--contents", "trajectories", "--task", "smile"])
    assert result.exit_code == 0, result.output
    assert not list(out.rglob("*.jpg")) and len(list((out / "landmarks").rglob("*.npy"))) == 2
    with (out / "data" / "train_41.csv").open() as fh:
        assert [r.split(",")[4].strip() for r in fh.readlines()[1:]] == ["1"]  # the one smile clip, class 1


@pytest.mark.parametrize(
    "args",
    [
        ["--layout", "pfed5", "--task", "smiles"],
        ["--layout", "neuroface", "--task", "smile"],
        ["--layout", "pfed5", "--contents", "landmarks"],
    ],
)
def test_bad_dataset_tasks_and_contents_fail_with_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(phantom, ["dataset", "--out", str(tmp_path / "ds"), "--subjects", "2", *args])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "ds").exists()
