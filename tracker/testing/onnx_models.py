"""Random-weight ONNX models with the real SCRFD (det_10g) and 2d106det interfaces, so the insightface path runs
without the licensed pretrained packs, plus an SCRFD whose outputs are set by hand to check the decoding.

- :func:`random_scrfd`: input ``1x3x?x?``, 9 outputs (scores, boxes, keypoints for strides 8/16/32, 2 anchors per
  location, rank-2 like det_10g); a small conv net, so outputs depend on the pixels; a few detections per image.
- :func:`random_landmark106`: input ``Nx3x192x192`` with in-graph normalisation like the real file, output
  ``Nx212``: a mean face shape plus a small random function of the pixels.
- :func:`fixed_scrfd`: a fixed canvas size and hand-placed detections, independent of the pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = npt.NDArray[np.float32]
STRIDES = (8, 16, 32)
_OPSET = [helper.make_opsetid("", 17)]


class _Graph:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, value: npt.NDArray[np.generic], prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], node_name: str | None = None, **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=node_name or out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, bias: float = 0.0, gain: float = 1.0) -> str:
        w = self.rng.normal(0, gain * np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32)
        b = np.full(cout, bias, dtype=np.float32)
        return self.op("Conv", [x, self.const(w, "w"), self.const(b, "b")], kernel_shape=[k, k],
                       strides=[stride, stride], pads=[k // 2] * 4)  # fmt: skip

    def save(self, path: Path, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]) -> Path:
        graph = helper.make_graph(self.nodes, path.stem, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=_OPSET, producer_name="feqa-tests")
        model.ir_version = 8
        onnx.checker.check_model(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path


def _level_outputs(g: _Graph, feat: str, ch: int, stride: int, sharpness: float) -> tuple[str, str, str]:
    heads = []
    for width, gain in ((2, 4.0), (8, 2.0), (20, 2.0)):
        y = g.conv(feat, ch, width, 1, 1, bias=2.0 if width == 8 else 0.0, gain=gain)
        if width == 2:  # sigmoid(sharpness * (logit - level max) + 1): the level's peak scores 0.73, the rest drop
            peak = g.op("ReduceMax", [y], keepdims=1)
            centred = g.op("Mul", [g.op("Sub", [y, peak]), g.const(np.array(sharpness, dtype=np.float32))])
            y = g.op("Sigmoid", [g.op("Add", [centred, g.const(np.array(1.0, dtype=np.float32))])])
        y = g.op("Transpose", [y], perm=[0, 2, 3, 1])
        per_anchor = width // 2
        heads.append(g.op("Reshape", [y, g.const(np.array([-1, per_anchor], dtype=np.int64))]))
    return heads[0], heads[1], heads[2]


def random_scrfd(path: Path, *, seed: int = 0, channels: Sequence[int] = (16, 32, 64, 64, 64),
                 sharpness: float = 20.0) -> Path:  # fmt: skip
    """A det_10g-shaped SCRFD with random weights. Scores peak at each level's strongest response, so an image
    yields one to a few detections (like a frame with one face) rather than hundreds of random ones."""
    g = _Graph(seed)
    x = "input.1"
    cin = 3
    feats: list[tuple[str, int]] = []
    for i, ch in enumerate(channels):
        x = g.op("Relu", [g.conv(x, cin, ch, 3, 2)])
        cin = ch
        if i >= 2:
            feats.append((x, ch))
    levels = [_level_outputs(g, f, ch, s, sharpness) for (f, ch), s in zip(feats, STRIDES, strict=True)]
    ordered = [lv[k] for k in range(3) for lv in levels]
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]
    for src, dst in zip(ordered, names, strict=True):
        g.nodes.append(helper.make_node("Identity", [src], [dst], name=f"out_{dst}"))
    widths = {"score": 1, "bbox": 4, "kps": 10}
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [f"n{n}", widths[n.split("_")[0]]]) for n in names]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?h", "?w"])]
    return g.save(path, inputs, outputs)


def mean_shape_106(seed: int = 7) -> F32:
    """A rough frontal 106-point face in [-1, 1] crop units (contour, brows, eyes, nose, mouth in 106 order)."""
    rng = np.random.default_rng(seed)
    pts = np.zeros((106, 2), dtype=np.float32)
    t = np.linspace(np.pi * 0.95, np.pi * 0.05, 33)
    pts[0:33] = np.stack([0.6 * np.cos(t), -0.05 + 0.65 * np.sin(t)], axis=1)  # contour, image left to right
    eye = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    pts[33:43] = np.stack([-0.28 + 0.1 * np.cos(eye), -0.2 + 0.04 * np.sin(eye)], axis=1)
    pts[87:97] = np.stack([0.28 + 0.1 * np.cos(eye), -0.2 + 0.04 * np.sin(eye)], axis=1)
    pts[43:52] = np.stack([np.linspace(-0.45, -0.12, 9), np.full(9, -0.35)], axis=1)
    pts[97:106] = np.stack([np.linspace(0.12, 0.45, 9), np.full(9, -0.35)], axis=1)
    mouth = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    pts[52:72] = np.stack([0.22 * np.cos(mouth), 0.33 + 0.07 * np.sin(mouth)], axis=1)
    pts[72:87] = np.stack([np.linspace(-0.08, 0.08, 15), np.linspace(-0.15, 0.12, 15)], axis=1)
    pts[86] = (0.0, 0.1)
    return (pts * 0.62 + rng.normal(0, 0.004, pts.shape)).astype(np.float32)


def random_landmark106(path: Path, *, seed: int = 1, channels: Sequence[int] = (16, 32, 64, 64),
                       jitter: float = 0.02, dynamic_batch: bool = True) -> Path:  # fmt: skip
    """A 2d106det-shaped model: in-graph (x - 127.5) / 128, a conv net, Gemm to 212 around a mean face shape."""
    g = _Graph(seed)
    x = g.op("Sub", ["data", g.const(np.array(127.5, dtype=np.float32))], node_name="_minus0")
    x = g.op("Mul", [x, g.const(np.array(1 / 128, dtype=np.float32))], node_name="_mul0")
    cin = 3
    for ch in channels:
        x = g.op("Relu", [g.conv(x, cin, ch, 3, 2)])
        cin = ch
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    w = g.rng.normal(0, jitter / np.sqrt(cin), (cin, 212)).astype(np.float32)
    b = mean_shape_106().reshape(-1)
    y = g.op("Gemm", [x, g.const(w, "w"), g.const(b, "b")])
    g.nodes.append(helper.make_node("Identity", [y], ["fc1"], name="out_fc1"))
    batch: str | int = "None" if dynamic_batch else 1
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 192, 192])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [batch, 212])]
    return g.save(path, inputs, outputs)


@dataclasses.dataclass(frozen=True)
class PlacedFace:
    """A hand-placed detection: anchor ``(stride, row, col, anchor)``, score, and distances in stride units."""

    stride: int
    row: int
    col: int
    anchor: int
    score: float
    ltrb: tuple[float, float, float, float]
    kps: tuple[float, ...] = (0.0,) * 10

    def box(self) -> tuple[float, float, float, float]:
        """The decoded box on the detector canvas."""
        cx, cy = self.col * self.stride, self.row * self.stride
        left, top, right, bottom = (v * self.stride for v in self.ltrb)
        return cx - left, cy - top, cx + right, cy + bottom


def fixed_scrfd(path: Path, size: int, faces: Sequence[PlacedFace]) -> Path:
    """An SCRFD-shaped model for a ``size`` x ``size`` canvas whose outputs are ``faces`` whatever the pixels."""
    g = _Graph(0)
    zero = g.op("Mul", [g.op("ReduceMean", ["input.1"], keepdims=0), g.const(np.array(0.0, dtype=np.float32))])
    names = []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for s in STRIDES:
            value = np.zeros(((size // s) * (size // s) * 2, width), dtype=np.float32)
            for f in faces:
                if f.stride == s:
                    row = (f.row * (size // s) + f.col) * 2 + f.anchor
                    value[row] = {"score": (f.score,), "bbox": f.ltrb, "kps": f.kps}[kind]
            name = f"{kind}_{s}"
            g.nodes.append(helper.make_node("Add", [g.const(value), zero], [name], name=f"out_{name}"))
            names.append((name, value.shape))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n, shape in names]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])]
    return g.save(path, inputs, outputs)


def write_model_pack(directory: Path, *, seed: int = 0, dynamic_batch: bool = True) -> Path:
    """A buffalo_l-like directory (det_10g.onnx, 2d106det.onnx) with random weights; returns ``directory``."""
    random_scrfd(directory / "det_10g.onnx", seed=seed)
    random_landmark106(directory / "2d106det.onnx", seed=seed + 1, dynamic_batch=dynamic_batch)
    return directory
