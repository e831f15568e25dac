"""Model runners: one batched call per model on uint8 pixels, outputs in the order
:class:`~tracker.mediapipe.models.ModelSpec` names them. Each runner maps the pixels onto the model's input range
itself. ``OrtRunner`` is the tracker's backend (ONNX Runtime with the configured providers, through
:func:`tracker.ort.open_session`, which refuses a silent CPU fallback), on the graph with its normalisation moved
inside (:mod:`tracker.mediapipe.pixel_input`). ``LiteRtRunner`` runs the original ``.tflite`` files on LiteRT (a dev
dependency) for parity tests and the speed comparison in the benchmark, scaling the pixels in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnx

from common.errors import ConfigError, ModelError
from tracker.mediapipe.models import ModelSpec
from tracker.mediapipe.pixel_input import PIXEL_MAX, with_pixel_input
from tracker.ort import batch_is_dynamic, open_session

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


class Runner(Protocol):
    """Runs one model on a batch [N, H, W, C] of uint8 pixels (NHWC); returns its outputs (float32), batch first."""

    input_hw: tuple[int, int]

    def run(self, batch: U8) -> list[F32]: ...


def _check_outputs(names: Sequence[str], spec: ModelSpec, source: str) -> None:
    missing = [n for n in spec.outputs if n not in names]
    if missing:
        raise ModelError(f"{source} lacks outputs {missing} (has {list(names)}); it is not the {spec.key} model")


class OrtRunner:
    """An ONNX Runtime session with a free batch axis."""

    def __init__(self, path: Path, spec: ModelSpec, providers: Sequence[str], threads: int = 0) -> None:
        try:
            graph = onnx.load(str(path))
        except Exception as exc:  # a file onnx cannot parse raises protobuf's own errors
            raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc
        pixels = with_pixel_input(graph, spec.input_range).SerializeToString()
        self.session = open_session(path, providers, threads, model=pixels)
        inp = self.session.get_inputs()[0]
        shape = inp.shape
        if len(shape) != 4 or not isinstance(shape[1], int) or not isinstance(shape[2], int):
            raise ModelError(f"{path.name}: input shape {shape} is not [N, H, W, C]")
        if not batch_is_dynamic(self.session):
            raise ModelError(f"{path.name} has a fixed batch axis; convert it again with `feqa tracker fetch-models`")
        self.input_hw = (int(shape[1]), int(shape[2]))
        self._input = inp.name
        names = [o.name for o in self.session.get_outputs()]
        _check_outputs(names, spec, path.name)
        self._outputs = list(spec.outputs)

    def run(self, batch: U8) -> list[F32]:
        out = self.session.run(self._outputs, {self._input: np.ascontiguousarray(batch, dtype=np.uint8)})
        return [np.asarray(o, dtype=np.float32) for o in out]


class LiteRtRunner:
    """The original TFLite model on LiteRT (batch 1 models: the batch is run one item at a time)."""

    def __init__(self, path: Path, spec: ModelSpec, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ConfigError("LiteRT is not installed: install the dev extra (pip install -e '.[dev]')") from exc
        self._interp: Any = Interpreter(model_path=str(path), num_threads=threads)
        self._interp.allocate_tensors()
        detail = self._interp.get_input_details()[0]
        self._input = detail["index"]
        self.input_hw = (int(detail["shape"][1]), int(detail["shape"][2]))
        by_name = {str(d["name"]): d["index"] for d in self._interp.get_output_details()}
        _check_outputs(list(by_name), spec, path.name)
        self._outputs = [by_name[n] for n in spec.outputs]
        lo, hi = spec.input_range
        self._scale, self._offset = np.float32((hi - lo) / PIXEL_MAX), np.float32(lo)

    def run(self, batch: U8) -> list[F32]:
        per_output: list[list[F32]] = [[] for _ in self._outputs]
        for item in np.asarray(batch, dtype=np.uint8) * self._scale + self._offset:
            self._interp.set_tensor(self._input, item[None])
            self._interp.invoke()
            for k, index in enumerate(self._outputs):
                per_output[k].append(np.array(self._interp.get_tensor(index), dtype=np.float32))
        return [np.concatenate(o) for o in per_output]
