"""Export a trained TraMP-Former to ONNX for the scorer, check parity against torch, write ``manifest.json``.

Three graphs, all with a dynamic batch axis (exported with batch 2: a batch of 1 would freeze the axis):

* ``frame_encoder.onnx``: frames [N, 3, S, S] -> features [N, D]; run once per arriving frame and cached.
* ``window.onnx``: cached frame features [B, T_f, D] + trajectory [B, T_p, 63, 5] + index_t [B, T_p]
  -> score [B], raw [B].
* ``model.onnx``: the whole clip, frames [B, T_f, 3, S, S] + trajectory + index_t -> score [B], raw [B].

``raw`` is the regressor's own output (for research); ``score`` is what a scorer shows:
``clip(scale * raw + offset, label_min, label_max)`` with the :class:`~common.manifest.Calibration` passed to
:func:`export` (fitted on validation clips when training finished), computed inside the graph. The same calibration
is written into ``manifest.json``. Without one, the identity clamped to the label scale is used (``fitted_on ==
"none"``); ``feqa export`` warns loudly then (a checkpoint from before calibrations existed: run ``feqa evaluate``
on the run first, which fits and saves one).

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

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from common.errors import ModelError
from common.manifest import Calibration, GraphSpec, Manifest, TensorSpec
from trainer.data.samples import IMAGENET_MEAN, IMAGENET_STD
from trainer.models.trampformer import TrampFormer

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4


class FrameGraph(nn.Module):
    def __init__(self, model: TrampFormer) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(frames)


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
    def __init__(self, model: TrampFormer, calibration: Calibration) -> None:
        super().__init__()
        self.model = model
        self.score = CalibratedScore(calibration)

    def forward(
        self, frame_features: torch.Tensor, trajectory: torch.Tensor, index_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out: tuple[torch.Tensor, torch.Tensor] = self.score(
            self.model.forward_features(frame_features, trajectory, index_t)
        )
        return out


class ClipGraph(nn.Module):
    def __init__(self, model: TrampFormer, calibration: Calibration) -> None:
        super().__init__()
        self.model = model
        self.score = CalibratedScore(calibration)

    def forward(
        self, frames: torch.Tensor, trajectory: torch.Tensor, index_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out: tuple[torch.Tensor, torch.Tensor] = self.score(self.model(frames, trajectory, index_t))
        return out


@dataclasses.dataclass(frozen=True)
class ExportResult:
    folder: Path
    manifest: Manifest
    max_abs_diff: dict[str, float]
    tensorrt_engine: Path | None


def example_inputs(model: TrampFormer, batch: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Random inputs of the right shapes for each graph."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    s, tf, tp, d = cfg.rgb.image_size, cfg.rgb_frames, cfg.skate.t_p, model.rgb_encoder.out_dim
    frames = torch.randn(batch, tf, 3, s, s, generator=g)
    traj = torch.randn(batch, tp, 63, 5, generator=g) * 20
    index_t = torch.linspace(-1, 1, tp).expand(batch, tp).contiguous()
    return {
        "frame": {"frames": frames[:, 0]},
        "window": {"frame_features": torch.randn(batch, tf, d, generator=g), "trajectory": traj, "index_t": index_t},
        "clip": {"frames": frames, "trajectory": traj, "index_t": index_t},
    }


_OUTPUTS: dict[str, tuple[str, ...]] = {"frame": ("features",), "window": ("score", "raw"), "clip": ("score", "raw")}
_FILES = {"frame": "frame_encoder.onnx", "window": "window.onnx", "clip": "model.onnx"}


def _outputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The module's outputs on these inputs (torch, no grad) as a list, whether it returns one tensor or a tuple."""
    with torch.no_grad():
        out = module(*inputs.values())
    return [out] if isinstance(out, torch.Tensor) else list(out)


def export_graph(module: nn.Module, inputs: dict[str, torch.Tensor], outputs: Sequence[str], path: Path) -> None:
    """ONNX export with a dynamic batch axis on every input; ``outputs`` names the module's outputs in order."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = {name: {0: batch} for name in inputs}
    torch.onnx.export(
        module,
        tuple(inputs.values()),
        str(path),
        input_names=list(inputs),
        output_names=[outputs] if isinstance(outputs, str) else list(outputs),
        dynamic_shapes=dynamic,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


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


def export(
    model: TrampFormer,
    folder: Path,
    *,
    name: str,
    version: str,
    task: str,
    protocol: str,
    fps: float,
    label_range: tuple[float, float],
    metrics: dict[str, float] | None = None,
    data_hash: str = "",
    time_index: str = "window",
    tolerance: float = PARITY_TOLERANCE,
    calibration: Calibration | None = None,
    landmarker: str = "",
) -> ExportResult:
    """Write the three graphs and the manifest into ``folder`` after checking parity; see the module docstring.

    ``calibration`` (default: the identity over ``label_range``) must clamp to ``label_range``. ``landmarker`` is
    the identity of the landmarker the training observations came from (recorded in the checkpoint by training);
    the scorer applies the model only to windows of the same landmarker.
    """
    calibration = calibration or Calibration.identity(*label_range)
    if (calibration.clamp_min, calibration.clamp_max) != tuple(label_range):
        raise ModelError(
            f"calibration clamps to [{calibration.clamp_min}, {calibration.clamp_max}] "
            f"but the label scale is [{label_range[0]}, {label_range[1]}]"
        )
    model = model.eval().cpu()
    folder.mkdir(parents=True, exist_ok=True)
    modules: dict[str, nn.Module] = {
        "frame": FrameGraph(model).eval(),
        "window": WindowGraph(model, calibration).eval(),
        "clip": ClipGraph(model, calibration).eval(),
    }
    trace_inputs = example_inputs(model, 2)
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
    cfg = model.cfg
    manifest = Manifest(
        name=name,
        version=version,
        family="tramp_former",
        task=task,
        protocol=protocol,
        graphs=graphs,
        fps=fps,
        t_p=cfg.skate.t_p,
        rgb_frames=cfg.rgb_frames,
        rgb_size=cfg.rgb.image_size,
        rgb_mean=IMAGENET_MEAN,
        rgb_std=IMAGENET_STD,
        label_min=label_range[0],
        label_max=label_range[1],
        metrics={**(metrics or {}), **{f"parity_max_abs_{k}": v for k, v in diffs.items()}},
        data_hash=data_hash,
        code_version=_code_version(),
        model_config=cfg.to_dict(),
        time_index=time_index,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        calibration=calibration,
        landmarker=landmarker,
    )
    manifest.write(folder)
    return ExportResult(folder, manifest, diffs, build_tensorrt(folder / _FILES["clip"]))
