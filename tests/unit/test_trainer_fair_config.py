"""The bundled `fair` layer is the README's acceptance recipe: `-c fair` alone must mean those settings."""

from __future__ import annotations

import pytest

from trainer.builders import model_config
from trainer.config import resolve

pytestmark = pytest.mark.unit


def test_fair_layer_is_the_acceptance_recipe() -> None:
    cfg = resolve(["fair"], ["data.root=/nowhere"])
    assert (cfg.model.family, cfg.model.size) == ("tramp_former", "micro")
    assert (cfg.data.fps, cfg.data.val_fraction, cfg.optim.epochs, cfg.optim.loss) == (12.5, 0.2, 15, "bmc")
    # every task, rest included, sees the same 64-frame window (5.1 s at 12.5 fps)
    assert {model_config(cfg, task).skate.t_p for task in ("rest", "smile", "frown")} == {64}
    assert cfg.model.time_index == "window"
