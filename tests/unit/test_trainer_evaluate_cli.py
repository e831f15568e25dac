"""`feqa evaluate` on a folder that is not a training run says so and writes nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from trainer.cli import cli


def test_a_folder_without_a_run_config_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "is not a training run (no config.toml)" in result.output and "--run-dir" in result.output
    assert list(tmp_path.iterdir()) == []
