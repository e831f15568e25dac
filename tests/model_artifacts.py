"""Scorer test artifacts: a TraMP-Former (random weights, or one trained in the test) exported by the trainer's own
export into ``<models>/<protocol>/<task>/<version>/``, its manifest naming the landmarker it is for.

``python -m tests.model_artifacts FOLDER`` is the build ``random-artifact`` (tests/prebuild.py): the random-weight
micro pfed5/smile artifact at 25 fps (seed 0) the scorer tests share, exported beside the tests instead of by the
first test that needs it (:func:`prebuilt_random_artifact` is its folder), and the trajectory-only scorer test's
model (:func:`export_trajectory_only`, in ``FOLDER/trajectory-only``)."""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import onnx
import torch

from common.manifest import Calibration, Manifest
from common.protocols import get_protocol
from trainer.checkpoint import Checkpoint
from trainer.export import export
from trainer.models import trampformer
from trainer.models.trampformer import SIZES, TrampFormer

LANDMARKER = "phantom"  # the tracker's phantom ground-truth landmarker (tests only)


def random_model(size: str = "micro", t_p: int | None = None, seed: int = 0) -> TrampFormer:
    torch.manual_seed(seed)
    cfg = SIZES[size](t_p) if t_p is not None else SIZES[size]()
    return TrampFormer(cfg).eval()


def export_artifact(
    models: Path,
    model: TrampFormer,
    *,
    protocol: str = "pfed5",
    task: str = "smile",
    version: str = "1",
    fps: float = 25.0,
    landmarker: str = LANDMARKER,
    calibration: Calibration | None = None,
) -> Path:
    """Export ``model`` with parity checks into ``models/<protocol>/<task>/<version>/`` and return the folder
    (through the trainer's own typed checkpoint, as ``feqa export`` does)."""
    scale = get_protocol(protocol).scale
    ckpt = Checkpoint(family="tramp_former", model_config=model.cfg.to_dict(), state=model.state_dict(),
                      protocol=protocol, task=task, label_min=scale.min, label_max=scale.max, fps=fps,
                      landmarker=landmarker, epoch=0, val_spearman=float("nan"), data_hash="test",
                      calibration=calibration)  # fmt: skip
    return export(ckpt, models, version=version, name=f"tramp_{task}", require_calibration=False).folder


def copy_artifact(src: Path, models: Path, *, version: str, task: str = "smile") -> Path:
    """A copy of an exported pfed5 artifact as another version (of another task: same weights); the manifest, which
    says so, is written last."""
    dst = models / "pfed5" / task / version
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "manifest.json":
            shutil.copy2(f, dst / f.name)
    dataclasses.replace(Manifest.read(src), version=version, task=task).write(dst)
    return dst


_EXPORTED: dict[tuple[str, int, int | None, str], Path] = {}
_TMP: list[Path] = []


def shared_random_artifact(size: str = "micro", seed: int = 0, t_p: int | None = None, fps: float = 25.0) -> Path:
    """A random-weight pfed5/smile artifact exported once per test process (export takes ~30 s); copy it with
    :func:`copy_artifact` rather than changing it."""
    key = (size, seed, t_p, repr(fps))
    if key not in _EXPORTED:
        keep = os.environ.get("FEQA_TEST_ARTIFACT_CACHE")  # a developer's speed-up across runs; CI leaves it unset
        if keep:
            root = Path(keep) / f"{_code_hash()}-{size}-{seed}-{t_p}-{fps}"
            done = root / "pfed5" / "smile" / "1"
            if (done / "manifest.json").is_file():
                _EXPORTED[key] = done
                return done
        else:
            if not _TMP:
                _TMP.append(Path(tempfile.mkdtemp(prefix="feqa-artifacts-")))
                atexit.register(shutil.rmtree, _TMP[0], True)
            root = _TMP[0] / f"{size}-{seed}-{t_p}-{fps}"
        _EXPORTED[key] = export_artifact(root, random_model(size, t_p, seed), fps=fps)
    return _EXPORTED[key]


TRAJECTORY_ONLY = "trajectory-only"  # the build's models folder of :func:`export_trajectory_only`


def export_trajectory_only(models: Path) -> Path:
    """A random-weight micro TraMP-Former without its RGB stream (seed 8, pfed5/smile at 25 fps, version 1), exported
    into ``models`` (the trajectory-only scorer test's model); returns its folder."""
    torch.manual_seed(8)
    model = trampformer.build(dataclasses.replace(trampformer.micro(), use_rgb=False)).eval()
    cfg = model.cfg.to_dict()  # type: ignore[operator, union-attr]
    ckpt = Checkpoint(family="tramp_former", model_config=cfg, state=model.state_dict(), protocol="pfed5",
                      task="smile", label_min=0.0, label_max=4.0, fps=25.0, landmarker=LANDMARKER, epoch=1,
                      val_spearman=0.5, data_hash="test")  # fmt: skip
    return export(ckpt, models, version="1", require_calibration=False).folder


def prebuilt_random_artifact(folder: Path) -> Path:
    """The artifact the build ``random-artifact`` exported into ``folder`` (copy it rather than change it): what
    ``shared_random_artifact("micro", seed=0, fps=25.0)`` exports."""
    return folder / "pfed5" / "smile" / "1"


def _code_hash() -> str:
    """Changes whenever the model or export code does (so a kept artifact is never stale)."""
    h = hashlib.sha256()
    for path in sorted((Path(__file__).parents[1] / "trainer").rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def nan_window_graph(src: Path, models: Path, *, version: str, task: str = "smile") -> Path:
    """A copy of ``src`` whose window graph returns ``sqrt(-sum |trajectory|)``: finite (0) on the all-zero input the
    registry's load check uses, NaN on any real window."""
    dst = copy_artifact(src, models, version=version, task=task)
    manifest = Manifest.read(dst)
    spec = manifest.graphs["window"]
    shapes = {t.name: ["batch", *t.shape[1:]] for t in spec.inputs}
    inputs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in shapes.items()]
    outputs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, ["batch"]) for n in ("score", "raw")]
    axes = onnx.helper.make_tensor("axes", onnx.TensorProto.INT64, [3], [1, 2, 3])
    nodes = [
        onnx.helper.make_node("Abs", ["trajectory"], ["a"]),
        onnx.helper.make_node("ReduceSum", ["a", "axes"], ["s"], keepdims=0),
        onnx.helper.make_node("Neg", ["s"], ["n"]),
        onnx.helper.make_node("Sqrt", ["n"], ["score"]),
        onnx.helper.make_node("Identity", ["score"], ["raw"]),
    ]
    graph = onnx.helper.make_graph(nodes, "nan_window", inputs, outputs, initializer=[axes])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10)
    path = dst / spec.file
    onnx.save(model, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    graphs = {**manifest.graphs, "window": dataclasses.replace(spec, sha256=sha)}
    dataclasses.replace(manifest, graphs=graphs).write(dst)
    return dst


if __name__ == "__main__":  # the build: python -m tests.model_artifacts FOLDER
    from tests.prebuild import finished

    out = Path(sys.argv[1])
    export_artifact(out, random_model("micro", None, 0), fps=25.0)
    export_trajectory_only(out / TRAJECTORY_ONLY)
    finished(out)
