"""The fair phantom's smiles (tests/integration/conftest.py: ``fair_pfed5_smile``) and the trainings the trainer's
cross-fit and dead-head tests make on them, built beside the tests rather than between them (tests/prebuild.py):
the same files ``write_pfed5`` and ``equalise_lengths`` wrote in the test process before, and the same ``feqa train``
calls, made in-process through the CLI as the tests made them (the dead-head runs with the same stand-in for the
model builder), each run's log lines of the trainer's loggers kept beside it.

``python -m tests.fair_smile_runs FOLDER`` is the build: the set in ``FOLDER/data``; the cross-fit test's runs in
``FOLDER/cross`` (``train.calibration = cross_fit``) and ``FOLDER/plain`` (the validation calibration); the dead-head
test's in ``FOLDER/dead-no-restart``, ``FOLDER/dead-restart`` (the model's head dead at seed 0) and
``FOLDER/live``. Each run folder holds ``log.json``: the messages its training logged at :data:`LOG_LEVEL` or
above on the loggers named there; the cross-fit run also holds the out-of-fold predictions its calibration must
have been fitted on, recomputed after its training (:func:`recompute_out_of_fold`). Tests read the runs, they do
not change them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from torch import nn

from phantom.dataset import write_pfed5
from tests.integration.conftest import FAIR, FAIR_FPS
from tests.integration.fair_phantom import equalise_lengths, shortest_planned_clip
from tests.prebuild import finished
from trainer.builders import build_model
from trainer.config import RunConfig

DATA = "data"
LOG = "log.json"
LOG_LEVEL = {"trainer.crossfit": logging.INFO, "trainer.train": logging.WARNING}

# What the cross-fit test checks is where the calibration's clips come from and that the final model is unchanged,
# not how well either ranks, so three epochs do (micro's ten made this, with its three fold models trained twice,
# 135 s of CI).
CROSSFIT_EPOCHS = 3
CROSS, PLAIN = "cross", "plain"
OOF = "out_of_fold.npz"  # in the cross-fit run: recompute_out_of_fold
DEAD_NO_RESTART, DEAD_RESTART, LIVE = "dead-no-restart", "dead-restart", "live"


def write_data(root: Path) -> Path:
    """The fair set's smile clips alone, cut to the whole layout's one length (what ``fair_pfed5_smile`` is)."""
    write_pfed5(root, width=320, height=240, fps=FAIR_FPS, only=("smile",), **FAIR)  # type: ignore[arg-type]
    equalise_lengths(root, to=shortest_planned_clip(fps=FAIR_FPS, **FAIR))
    return root


def crossfit_sets(root: Path, calibration: str) -> list[str]:
    return [f'data.root="{root}"', 'data.expressions=["smile"]', f"data.fps={FAIR_FPS}", "model.rgb=false",
            f"train.calibration={calibration}", "train.calibration_folds=3",
            f"optim.epochs={CROSSFIT_EPOCHS}"]  # fmt: skip


def dead_head_sets(root: Path, restarts: int) -> list[str]:
    return [f'data.root="{root}"', 'data.expressions=["smile"]', f"data.fps={FAIR_FPS}", "model.rgb=false",
            "optim.epochs=4", "train.dead_epochs=2", f"train.dead_restarts={restarts}"]  # fmt: skip


def dead_at_seed_0(cfg: RunConfig, expression: str) -> nn.Module:
    """The real model; at seed 0 its head is the reference's ReLU head with its last hidden layer switched off."""
    model = build_model(cfg, expression)
    if cfg.train.seed == 0:
        head = model.head
        assert isinstance(head, nn.Sequential)
        head[1], head[3] = nn.ReLU(), nn.ReLU()
        last_hidden = head[2]
        assert isinstance(last_hidden, nn.Linear)
        with torch.no_grad():
            last_hidden.bias.fill_(-100.0)
    return model


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= LOG_LEVEL.get(record.name, logging.CRITICAL + 1):
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def _kept_logs(run: Path) -> Iterator[None]:
    kept = _Kept()
    loggers = [logging.getLogger(name) for name in LOG_LEVEL]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(kept)
        lg.setLevel(min(LOG_LEVEL.values()))
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.removeHandler(kept)
            lg.setLevel(level)
        (run / LOG).write_text(json.dumps(kept.messages, indent=1))


def train(run: Path, sets: list[str]) -> None:
    """``feqa train -c micro --run-dir RUN`` with ``sets``, in this process as the tests ran it; its log kept."""
    from trainer.cli import cli

    args = ["train", "-c", "micro", "--run-dir", str(run)]
    for item in sets:
        args += ["--set", item]
    run.mkdir(parents=True, exist_ok=True)
    with _kept_logs(run):
        result = CliRunner().invoke(cli, args)
    if result.exit_code != 0:
        raise SystemExit(f"feqa {' '.join(args)} failed (exit {result.exit_code}):\n{result.output[-4000:]}")


def logged(run: Path) -> list[str]:
    """The messages the run's training logged (see :data:`LOG_LEVEL`)."""
    messages: list[str] = json.loads((run / LOG).read_text())
    return messages


def summary(run: Path) -> dict[str, object]:
    """The run's ``train_summary.json`` entry for the smile."""
    found: dict[str, object] = json.loads((run / "train_summary.json").read_text())["smile"]
    return found


def recompute_out_of_fold(run: Path) -> None:
    """The out-of-fold predictions of every training and validation clip, by fold models trained again for the run's
    best epoch count (seeded), written to ``RUN/OOF``: in the process that trained the run, since training is
    bit-reproducible only under one string-hash seed (tests/ranking_model.py), and the test's process has another."""
    from trainer import checkpoint
    from trainer.config import load_resolved
    from trainer.crossfit import out_of_fold
    from trainer.data.dataset import load_dataset

    cfg = load_resolved(run / "config.toml")
    data = load_dataset(cfg, None).expressions["smile"]
    epochs = checkpoint.read(run / "smile" / "best.pt").epoch
    pred, label = out_of_fold(cfg, data, epochs, torch.device("cpu"))
    np.savez(run / OOF, pred=pred, label=label, epochs=epochs)


def out_of_fold_of(run: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """What :func:`recompute_out_of_fold` wrote: predictions, labels, and the epoch count the fold models trained."""
    with np.load(run / OOF) as found:
        return found["pred"], found["label"], int(found["epochs"])


def build(folder: Path) -> None:
    import trainer.train

    root = write_data(folder / DATA)
    train(folder / CROSS, crossfit_sets(root, "cross_fit"))
    train(folder / PLAIN, crossfit_sets(root, "validation"))
    recompute_out_of_fold(folder / CROSS)
    real = getattr(trainer.train, "build_model")  # noqa: B009  (the name the trainer calls, replaced as the test did)
    setattr(trainer.train, "build_model", dead_at_seed_0)  # noqa: B010
    try:
        train(folder / DEAD_NO_RESTART, dead_head_sets(root, restarts=0))
        train(folder / DEAD_RESTART, dead_head_sets(root, restarts=1))
    finally:
        setattr(trainer.train, "build_model", real)  # noqa: B010
    train(folder / LIVE, dead_head_sets(root, restarts=1))


if __name__ == "__main__":  # the build: python -m tests.fair_smile_runs FOLDER
    out = Path(sys.argv[1])
    build(out)
    finished(out)
