"""The tracker click group: test models, model check, and the loud error without a model pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker.cli import cli

pytestmark = pytest.mark.unit


def test_make_and_check_models(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["make-test-models", str(tmp_path / "pack")])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "pack" / "det_10g.onnx").is_file() and (tmp_path / "pack" / "2d106det.onnx").is_file()
    checked = runner.invoke(cli, ["check-models", "--model-dir", str(tmp_path / "pack")])
    assert checked.exit_code == 0, checked.output
    info = json.loads(checked.output)
    assert info["detector_strides"] == [8, 16, 32] and info["landmark_input"] == 192
    assert info["landmark_norm"] == [0.0, 1.0]


def test_missing_pack_exits_with_instructions(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check-models", "--model-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "det_10g.onnx" in result.output and "never downloads" in result.output
