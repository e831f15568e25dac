"""Export a trained model (any family) to ONNX for the scorer, check parity against torch, write ``manifest.json``.

Everything comes from ``best.pt`` (:class:`trainer.checkpoint.Checkpoint`): the model, its protocol and task (the
artifact goes to ``models/<protocol>/<task>/<version>/``, :func:`common.protocols.model_key`), label range, fps,
landmarker, data hash and the validation-fitted calibration. Three graphs per model, all with a dynamic batch axis
(exported with batch 2: a batch of 1 would freeze the axis); their inputs per family are the contract documented in
:mod:`common.manifest`:

* ``frame_encoder.onnx``: frames [N, 3, S, S] -> features [N, D]; run once per arriving frame and cached. A model
  without an RGB stream (TraMP-Former trained with ``model.rgb = false``) has none, and its other two graphs take no
  frames or frame features.
* ``window.onnx``: cached frame features [B, T_f, D] + the family's other inputs -> score [B], raw [B].
* ``model.onnx``: the whole clip, frames [B, T_f, 3, S, S] + the family's other inputs -> score [B], raw [B].

``raw`` is the regressor's own output (for research); ``score`` is what a scorer shows:
``clip(scale * raw + offset, label_min, label_max)``, computed inside the graph, with the same calibration written
into ``manifest.json``.

The export fails (and leaves no manifest) when any output of any graph differs from torch by more than
``tolerance`` at batch 1 and batch 3. A TensorRT fp16 engine is built from ``model.onnx`` only when
``import tensorrt`` works.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from common.errors import ModelError
from common.manifest import Calibration, GraphSpec, Manifest, TensorSpec
from common.protocols import UnknownProtocol, model_key
from trainer.builders import heatmap_spec
from trainer.checkpoint import Checkpoint
from trainer.onnx_shapes import fold_static_shapes

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
OPSET = 18  # the opset the dynamo exporter wrote before (its default), so the artifacts keep their operator set


class FrameGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model.encode_frames(frames)  # type: ignore[operator]
        return out


class CalibratedScore(nn.Module):
    """``raw -> (score, raw)`` with ``score = clamp(scale * raw + offset, clamp_min, clamp_max)`` (graph constants)."""

    def __init__(self, calibration: Calibration) -> None:
        super().__init__()
        self.calibration = calibration

    def forward(self, regressor_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.calibration
        score = torch.clamp(regressor_output * c.scale + c.offset, min=c.clamp_min, max=c.clamp_max)
        return score, regressor_output


class WindowGraph(nn.Module):
    """Cached frame features + the family's other window inputs -> (score, raw)."""

    def __init__(self, model: nn.Module, calibration: Calibration) -> None:
        super().__init__()
        self.model = model
        self.score = CalibratedScore(calibration)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out: tuple[torch.Tensor, torch.Tensor] = self.score(self.model.forward_features(*inputs))  # type: ignore[operator]
        return out


class ClipGraph(nn.Module):
    """The whole model on a clip -> (score, raw)."""

    def __init__(self, model: nn.Module, calibration: Calibration) -> None:
        super().__init__()
        self.model = model
        self.score = CalibratedScore(calibration)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out: tuple[torch.Tensor, torch.Tensor] = self.score(self.model(*inputs))
        return out


@dataclasses.dataclass(frozen=True)
class ExportResult:
    folder: Path
    manifest: Manifest
    max_abs_diff: dict[str, float]
    tensorrt_engine: Path | None


def _input(name: str, cfg: Any, batch: int, feature_dim: int, g: torch.Generator) -> torch.Tensor:
    """A random tensor of the shape the family's input ``name`` has."""
    tf, s = cfg.rgb_frames, cfg.rgb.image_size
    if name == "frames":
        return torch.randn(batch, tf, 3, s, s, generator=g)
    if name == "frame_features":
        return torch.randn(batch, tf, feature_dim, generator=g)
    if name == "trajectory":
        return torch.randn(batch, cfg.skate.t_p, 63, 5, generator=g) * 20
    if name == "index_t":
        return torch.linspace(-1, 1, cfg.skate.t_p).expand(batch, cfg.skate.t_p).contiguous()
    if name == "heatmaps":
        h = cfg.heatmap.crop
        return torch.rand(batch, tf, 3, h, h, generator=g)
    raise ModelError(f"no example for model input {name!r}")


def example_inputs(model: nn.Module, batch: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random inputs of the right shapes for each graph of ``model``'s family."""
    cfg: Any = getattr(model, "cfg")  # noqa: B009 - every family keeps its config there
    g = torch.Generator().manual_seed(seed)
    dim = int(getattr(model, "frame_feature_dim", cfg.rgb.out_dim))  # QAFE-Net with delta = both caches frames
    clip = {n: _input(n, cfg, batch, dim, g) for n in getattr(model, "INPUTS")}  # noqa: B009
    window = {n: clip[n] if n in clip else _input(n, cfg, batch, dim, g) for n in getattr(model, "WINDOW_INPUTS")}  # noqa: B009
    if "frames" not in clip:  # no RGB stream (TraMP-Former with use_rgb = False): no per-frame graph
        return {"window": window, "clip": clip}
    return {"frame": {"frames": clip["frames"][:, 0]}, "window": window, "clip": clip}


_OUTPUTS: dict[str, tuple[str, ...]] = {"frame": ("features",), "window": ("score", "raw"), "clip": ("score", "raw")}
_FILES = {"frame": "frame_encoder.onnx", "window": "window.onnx", "clip": "model.onnx"}


def _outputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The module's outputs on these inputs (torch, no grad) as a list, whether it returns one tensor or a tuple."""
    with torch.no_grad():
        out = module(*inputs.values())
    return [out] if isinstance(out, torch.Tensor) else list(out)


def export_graph(
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    outputs: Sequence[str],
    path: Path,
    *,
    fold_shapes: bool = True,
) -> None:
    """ONNX export with a dynamic batch axis on every input and output; ``outputs`` names the module's outputs in
    order. The TorchScript exporter traces the module once (1-5 s for a micro model on 2 cores, where the dynamo
    exporter took 12-25 s per graph); its shape arithmetic on the axes that never change is then folded into
    constants (:func:`trainer.onnx_shapes.fold_static_shapes`; ``fold_shapes=False`` keeps the traced graph, for
    comparing). Whether the graph computes what torch does, at other batch sizes too, is checked by :func:`parity`
    after every export."""
    names = list(inputs)
    batch_axis = {name: {0: "batch"} for name in (*names, *outputs)}
    torch.onnx.export(
        module,
        tuple(inputs.values()),
        str(path),
        input_names=names,
        output_names=list(outputs),
        dynamic_axes=batch_axis,
        opset_version=OPSET,
        dynamo=False,
        verbose=False,
    )
    if fold_shapes:
        fold_static_shapes(path)


def parity(module: nn.Module, path: Path, inputs: dict[str, torch.Tensor]) -> float:
    """Max abs difference between torch and ONNX Runtime (CPU) on these inputs, over every output."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = [t.numpy() for t in _outputs(module, inputs)]
    got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
    if len(got) != len(ref):
        raise ModelError(f"{path.name}: ONNX has {len(got)} outputs, torch {len(ref)}")
    for g, r in zip(got, ref, strict=True):
        if g.shape != r.shape:
            raise ModelError(f"{path.name}: ONNX output shape {g.shape} != torch {r.shape}")
    return max(float(np.abs(g - r).max()) for g, r in zip(got, ref, strict=True))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spec(name: str, t: torch.Tensor) -> TensorSpec:
    return TensorSpec(name, ("batch", *t.shape[1:]))


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def build_tensorrt(onnx_path: Path) -> Path | None:
    """An fp16 engine next to the ONNX file, when TensorRT is importable; None otherwise."""
    try:
        import tensorrt as trt
    except ImportError:
        log.info("tensorrt not importable: no engine built")
        return None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        raise ModelError(f"TensorRT cannot parse {onnx_path.name}: {parser.get_error(0)}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(inp.shape)[1:]
        profile.set_shape(inp.name, (1, *rest), (1, *rest), (8, *rest))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ModelError("TensorRT engine build failed")
    out = onnx_path.with_name(f"model.{trt.__version__}.fp16.engine")
    out.write_bytes(bytes(engine))
    return out


def artifact_folder(models_dir: Path, ckpt: Checkpoint, version: str) -> Path:
    """``models_dir/<protocol>/<task>/<version>``; a dataset that is no clinical protocol (UNBC-McMaster) has none."""
    try:
        key = model_key(ckpt.protocol, ckpt.task)
    except UnknownProtocol as exc:
        raise ModelError(f"{ckpt.protocol}/{ckpt.task} is not a protocol task the scorer serves ({exc})") from exc
    if not version or "/" in version or version.startswith("."):
        raise ModelError(f"version must be a plain folder name, got {version!r}")
    return Path(models_dir) / key / version


def export(
    ckpt: Checkpoint,
    models_dir: Path,
    *,
    version: str,
    name: str = "",
    metrics: dict[str, float] | None = None,
    tolerance: float = PARITY_TOLERANCE,
    require_calibration: bool = True,
) -> ExportResult:
    """Write the three graphs and the manifest of ``ckpt`` under ``models_dir`` after checking parity.

    ``require_calibration=False`` exports the identity (clamp only) when the checkpoint has none (tests, benchmarks)."""
    if ckpt.calibration is None and require_calibration:
        raise ModelError(f"{ckpt.task}: the checkpoint has no score calibration (its run did not finish)")
    calibration = ckpt.calibration or Calibration.identity(ckpt.label_min, ckpt.label_max)
    if (calibration.clamp_min, calibration.clamp_max) != (ckpt.label_min, ckpt.label_max):
        raise ModelError(
            f"calibration clamps to [{calibration.clamp_min}, {calibration.clamp_max}] "
            f"but the label scale is [{ckpt.label_min}, {ckpt.label_max}]"
        )
    folder = artifact_folder(models_dir, ckpt, version)
    model = ckpt.model().cpu()
    cfg: Any = getattr(model, "cfg")  # noqa: B009
    folder.mkdir(parents=True, exist_ok=True)
    trace_inputs = example_inputs(model, 2)
    modules: dict[str, nn.Module] = {
        "frame": FrameGraph(model).eval(),
        "window": WindowGraph(model, calibration).eval(),
        "clip": ClipGraph(model, calibration).eval(),
    }
    modules = {key: module for key, module in modules.items() if key in trace_inputs}
    diffs: dict[str, float] = {}
    graphs: dict[str, GraphSpec] = {}
    for key, module in modules.items():
        path = folder / _FILES[key]
        t0 = time.monotonic()
        export_graph(module, trace_inputs[key], _OUTPUTS[key], path)
        diff = max(parity(module, path, example_inputs(model, b, seed=b)[key]) for b in (1, 3))
        diffs[key] = diff
        log.info("exported %s in %.1f s; max abs diff vs torch %.2e", path.name, time.monotonic() - t0, diff)
        if not diff <= tolerance:
            raise ModelError(f"{path.name}: ONNX differs from torch by {diff:.3e} > {tolerance:.0e}")
        outs = _outputs(module, trace_inputs[key])
        graphs[key] = GraphSpec(
            file=path.name,
            inputs=tuple(_spec(n, t) for n, t in trace_inputs[key].items()),
            outputs=tuple(_spec(n, t) for n, t in zip(_OUTPUTS[key], outs, strict=True)),
            sha256=_sha256(path),
        )
    skate = getattr(cfg, "skate", None)
    manifest = Manifest(
        name=name or f"{ckpt.family}_{ckpt.task}",
        version=version,
        family=ckpt.family,
        task=ckpt.task,
        protocol=ckpt.protocol,
        graphs=graphs,
        fps=ckpt.fps,
        t_p=int(skate.t_p) if skate is not None else 0,
        rgb_frames=int(cfg.rgb_frames),
        rgb_size=int(cfg.rgb.image_size),
        rgb_mean=tuple(cfg.rgb.mean),
        rgb_std=tuple(cfg.rgb.std),
        label_min=ckpt.label_min,
        label_max=ckpt.label_max,
        landmarker=ckpt.landmarker,
        metrics={
            **(metrics or {}),
            "val_spearman": ckpt.val_spearman,
            **{f"parity_max_abs_{k}": v for k, v in diffs.items()},
        },
        data_hash=ckpt.data_hash,
        code_version=_code_version(),
        model_config=ckpt.model_config,
        time_index=str(getattr(cfg, "time_index", "window")),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        calibration=calibration,
        heatmap=heatmap_spec(cfg),
    )
    manifest.write(folder)
    return ExportResult(folder, manifest, diffs, build_tensorrt(folder / _FILES["clip"]))
