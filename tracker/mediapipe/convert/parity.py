"""Check a converted ONNX model against the TFLite original run by LiteRT, on fixed inputs.

LiteRT (``ai-edge-litert``) is a dev/test dependency only; :func:`litert_available` says whether it is installed.
The inputs are deterministic: uniform noise over the model's input range and a smooth pattern (gradients and
blobs, closer to an image than noise), run through ONNX Runtime as one batch (so the free batch axis is exercised)
and through LiteRT one at a time. The result is the largest absolute difference per output.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from common.errors import ConfigError, ModelError

F32 = npt.NDArray[np.float32]
TOLERANCE = 2e-3
"""Largest absolute difference accepted (outputs are crop-pixel coordinates and logits of magnitude up to ~200)."""


@dataclasses.dataclass(frozen=True)
class Parity:
    """Largest |ONNX - LiteRT| per output name, over every fixed input."""

    max_abs: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.max_abs.values()) if self.max_abs else float("inf")

    @property
    def ok(self) -> bool:
        return self.worst <= TOLERANCE


def litert_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def fixed_inputs(shape: tuple[int, int, int], lo: float, hi: float, seed: int = 17) -> F32:
    """[3, H, W, C] deterministic inputs in [lo, hi]: noise, a smooth pattern, and its mirror image."""
    h, w, c = shape
    rng = np.random.default_rng(seed)
    noise = rng.uniform(lo, hi, (h, w, c))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    smooth = np.zeros((h, w, c))
    for k in range(c):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
        smooth[..., k] = 0.5 * (xx + yy) / 2 + 0.5 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    smooth = lo + (hi - lo) * smooth
    return np.stack([noise, smooth, smooth[:, ::-1]]).astype(np.float32)


def compare(tflite_path: Path, onnx_path: Path, input_range: tuple[float, float]) -> Parity:
    """Run both models on :func:`fixed_inputs`; raise :class:`ConfigError` when LiteRT is not installed."""
    if not litert_available():
        raise ConfigError("the parity check needs LiteRT: install the dev extra (pip install -e '.[dev]')")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=str(tflite_path), num_threads=1)
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"LiteRT cannot load {tflite_path}: {exc}") from exc
    in_detail = interp.get_input_details()[0]
    shape = tuple(int(v) for v in in_detail["shape"][1:])
    batch = fixed_inputs((shape[0], shape[1], shape[2]), *input_range)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ours = dict(zip(names, session.run(None, {session.get_inputs()[0].name: batch}), strict=True))
    worst: dict[str, float] = {}
    for i in range(batch.shape[0]):
        interp.set_tensor(in_detail["index"], batch[i : i + 1])
        interp.invoke()
        for detail in interp.get_output_details():
            name = str(detail["name"])
            if name not in ours:
                raise ModelError(f"{onnx_path.name} has no output {name!r} (outputs: {names})")
            ref = np.asarray(interp.get_tensor(detail["index"]), dtype=np.float32)
            got = np.asarray(ours[name][i : i + 1], dtype=np.float32)
            if got.shape != ref.shape:
                raise ModelError(f"{onnx_path.name} output {name}: shape {got.shape} vs LiteRT {ref.shape}")
            worst[name] = max(worst.get(name, 0.0), float(np.abs(got - ref).max()))
    return Parity(worst)
