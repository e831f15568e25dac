"""Model families: how a manifest's graphs are checked and fed. One class per family, registered in
:data:`FAMILIES`; the scorer's window pipeline only talks to the :class:`ScoringModel` Protocol.

``tramp_former`` (trainer/export.py) has three graphs:

* ``frame``: ``frames`` [B, 3, S, S] -> ``features`` [B, D], the RGB encoder's spatial part, run once per frame and
  cached (:mod:`scorer.frame_cache`);
* ``window``: ``frame_features`` [B, T_f, D] + ``trajectory`` [B, T_p, 63, 5] + ``index_t`` [B, T_p] ->
  ``score`` [B] (calibrated, clamped to the label scale) and ``raw`` [B];
* ``clip`` (optional): ``frames`` [B, T_f, 3, S, S] + trajectory + index_t -> score, raw: the whole model in one graph,
  the uncached reference path (benchmarks and the cache-equivalence test use it).

A TraMP-Former trained without its RGB stream (``model.rgb = false``) has no ``frame`` graph
(:attr:`common.manifest.Manifest.reads_frames`); its window and clip graphs take ``trajectory`` and ``index_t``
only, and the scorer neither caches frame features nor needs crops for it.

Adding a family (QAFE-Net's heatmap graphs) means one more class with the same four members and an entry in
:data:`FAMILIES`; registry, batching, caching and scoring stay as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from common.errors import ModelError
from common.manifest import GraphSpec, Manifest
from common.model_input import InputSpec
from scorer.backends import Backend, BackendChoice

Array = npt.NDArray[Any]


class ScoringModel(Protocol):
    """What the scorer needs from a loaded artifact of any family."""

    manifest: Manifest
    spec: InputSpec
    frame: Backend | None  # the per-frame graph whose output is cached, or None
    window: Backend

    def window_feeds(self, trajectory: Array, index_t: Array, frame_features: Array | None) -> dict[str, Array]:
        """Feeds of the window graph for one window (batch axis of 1)."""
        ...

    def clip_backend(self) -> Backend | None:
        """The whole-clip graph (uncached path), loaded on first use; None when the artifact has none."""
        ...


def _dims(spec: GraphSpec, name: str, io: str) -> tuple[int | str, ...]:
    items = spec.inputs if io == "input" else spec.outputs
    for t in items:
        if t.name == name:
            return tuple(t.shape)
    raise ModelError(f"{spec.file}: the manifest names no {io} {name!r}")


def check_graph(
    backend: Backend, spec: GraphSpec, inputs: dict[str, tuple[int, ...]], outputs: tuple[str, ...]
) -> None:
    """The loaded graph has exactly the manifest's inputs and outputs, and the non-batch sizes this family needs."""
    got_in = {i.name: i.shape for i in backend.inputs}
    got_out = [o.name for o in backend.outputs]
    if set(got_in) != set(inputs):
        raise ModelError(f"{spec.file}: graph inputs {sorted(got_in)}, expected {sorted(inputs)}")
    if set(got_out) != set(outputs):
        raise ModelError(f"{spec.file}: graph outputs {sorted(got_out)}, expected {sorted(outputs)}")
    for name, want in inputs.items():
        declared = _dims(spec, name, "input")
        if tuple(declared[1:]) != want:
            raise ModelError(f"{spec.file}: manifest says {name} is {list(declared)}, expected [batch, {list(want)}]")
        graph = tuple(got_in[name][1:])
        if graph != want:
            raise ModelError(f"{spec.file}: graph input {name} is {list(got_in[name])}, manifest says {list(declared)}")
        if isinstance(got_in[name][0], int):
            raise ModelError(f"{spec.file}: graph input {name} has a fixed batch of {got_in[name][0]}; re-export")
    for name in outputs:
        _dims(spec, name, "output")


class TrampFormerModel:
    """A TraMP-Former artifact: window graph, frame graph when it has an RGB stream (and the clip graph on demand)."""

    FAMILY: ClassVar[str] = "tramp_former"
    REQUIRED: ClassVar[tuple[str, ...]] = ("window",)

    def __init__(self, manifest: Manifest, folder: Path, choice: BackendChoice) -> None:
        self.manifest = manifest
        self.folder = folder
        self.choice = choice
        self.spec = InputSpec.from_manifest(manifest)
        missing = [g for g in self.REQUIRED if g not in manifest.graphs]
        if missing:
            raise ModelError(f"{folder}: tramp_former needs graphs {list(self.REQUIRED)}; the manifest lacks {missing}")
        self.frame: Backend | None = None
        self.feature_dim = 0
        if manifest.reads_frames:
            frame_spec = manifest.graphs["frame"]
            feature = _dims(frame_spec, "features", "output")
            if len(feature) != 2 or not isinstance(feature[1], int):
                raise ModelError(f"{frame_spec.file}: features must be [batch, D], the manifest says {list(feature)}")
            self.feature_dim = int(feature[1])
            s = self.spec.rgb_size
            self.frame = choice.open(folder / frame_spec.file)
            check_graph(self.frame, frame_spec, {"frames": (3, s, s)}, ("features",))
        window_spec = manifest.graphs["window"]
        self.window = choice.open(folder / window_spec.file)
        check_graph(self.window, window_spec, self._inputs("frame_features", (self.feature_dim,)), ("score", "raw"))
        self._clip: Backend | None = None
        self._smoke_test()

    def _inputs(self, rgb_name: str, rgb_dims: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """A graph's inputs and their non-batch sizes: the trajectory's, after the RGB input when the model has one
        (``frame_features`` [T_f, D] for the window graph, ``frames`` [T_f, 3, S, S] for the clip graph)."""
        tp = self.spec.t_p
        rgb = {rgb_name: (self.spec.rgb_frames, *rgb_dims)} if self.frame is not None else {}
        return {**rgb, "trajectory": (tp, 63, 5), "index_t": (tp,)}

    def _smoke_test(self) -> None:
        """Run the graphs once on a neutral batch of 2: a broken artifact is refused at load, not mid-session."""
        s, tf, tp = self.spec.rgb_size, self.spec.rgb_frames, self.spec.t_p
        feats: Array | None = None
        if self.frame is not None:
            feats = self.frame.run({"frames": np.zeros((2, 3, s, s), np.float32)})["features"]
            if feats.shape != (2, self.feature_dim) or not np.isfinite(feats).all():
                why = f"frame graph gave {feats.shape} / non-finite features on a blank frame"
                raise ModelError(f"{self.folder}: {why}")
            feats = np.repeat(feats[:1], tf, axis=0)
        feeds = self.window_feeds(np.zeros((tp, 63, 5), np.float32), np.linspace(-1, 1, tp, dtype=np.float32), feats)
        out = self.window.run({k: np.concatenate([v, v]) for k, v in feeds.items()})
        for key in ("score", "raw"):
            if out[key].shape != (2,) or not np.isfinite(out[key]).all():
                raise ModelError(f"{self.folder}: window graph gave {key} {out[key]!r} on a neutral window")

    def window_feeds(self, trajectory: Array, index_t: Array, frame_features: Array | None) -> dict[str, Array]:
        feeds = {
            "trajectory": np.asarray(trajectory, np.float32)[None],
            "index_t": np.asarray(index_t, np.float32)[None],
        }
        if self.frame is None:
            if frame_features is not None:
                raise ModelError(f"{self.folder}: this tramp_former has no RGB stream; windows carry no frame features")
            return feeds
        if frame_features is None:
            raise ModelError("tramp_former windows need frame features")
        return {"frame_features": np.asarray(frame_features, np.float32)[None], **feeds}

    def clip_backend(self) -> Backend | None:
        spec = self.manifest.graphs.get("clip")
        if spec is None:
            return None
        if self._clip is None:
            backend = self.choice.open(self.folder / spec.file)
            s = self.spec.rgb_size
            check_graph(backend, spec, self._inputs("frames", (3, s, s)), ("score", "raw"))
            self._clip = backend
        return self._clip


FAMILIES: dict[str, type[TrampFormerModel]] = {TrampFormerModel.FAMILY: TrampFormerModel}


def load_model(manifest: Manifest, folder: Path, choice: BackendChoice) -> ScoringModel:
    """The family class of ``manifest`` loaded from ``folder``; :class:`ModelError` for an unknown family."""
    cls = FAMILIES.get(manifest.family)
    if cls is None:
        known = ", ".join(sorted(FAMILIES))
        raise ModelError(f"{folder}: model family {manifest.family!r} is unknown to this scorer (it knows {known})")
    return cls(manifest, folder, choice)
