"""Model families: how a manifest's graphs are checked and fed. One class per family, registered in
:data:`FAMILIES`; the scorer's window pipeline only talks to the :class:`ScoringModel` Protocol.

``tramp_former`` (trainer/export.py) has three graphs:

* ``frame``: ``frames`` [B, 3, S, S] -> ``features`` [B, D], the RGB encoder's spatial part, run once per frame and
  cached (:mod:`scorer.frame_cache`);
* ``window``: ``frame_features`` [B, T_f, D] + ``trajectory`` [B, T_p, 63, 5] + ``index_t`` [B, T_p] ->
  ``score`` [B] (calibrated, clamped to the label scale) and ``raw`` [B];
* ``clip`` (optional): ``frames`` [B, T_f, 3, S, S] + trajectory + index_t -> score, raw: the whole model in one graph,
  the uncached reference path (benchmarks and the cache-equivalence test use it).

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
    """A TraMP-Former artifact: frame + window graphs (and the clip graph on demand)."""

    FAMILY: ClassVar[str] = "tramp_former"
    REQUIRED: ClassVar[tuple[str, ...]] = ("frame", "window")

    def __init__(self, manifest: Manifest, folder: Path, choice: BackendChoice) -> None:
        self.manifest = manifest
        self.folder = folder
        self.choice = choice
        self.spec = InputSpec.from_manifest(manifest)
        missing = [g for g in self.REQUIRED if g not in manifest.graphs]
        if missing:
            raise ModelError(f"{folder}: tramp_former needs graphs {list(self.REQUIRED)}; the manifest lacks {missing}")
        frame_spec, window_spec = manifest.graphs["frame"], manifest.graphs["window"]
        feature = _dims(frame_spec, "features", "output")
        if len(feature) != 2 or not isinstance(feature[1], int):
            raise ModelError(f"{frame_spec.file}: features must be [batch, D], the manifest says {list(feature)}")
        self.feature_dim = int(feature[1])
        s, tf, tp = self.spec.rgb_size, self.spec.rgb_frames, self.spec.t_p
        self.frame: Backend | None = choice.open(folder / frame_spec.file)
        check_graph(self.frame, frame_spec, {"frames": (3, s, s)}, ("features",))
        self.window = choice.open(folder / window_spec.file)
        window_inputs = {"frame_features": (tf, self.feature_dim), "trajectory": (tp, 63, 5), "index_t": (tp,)}
        check_graph(self.window, window_spec, window_inputs, ("score", "raw"))
        self._clip: Backend | None = None
        self._smoke_test()

    def _smoke_test(self) -> None:
        """Run both graphs once on a neutral batch of 2: a broken artifact is refused at load, not mid-session."""
        frame = self.frame
        if frame is None:  # tramp_former always opens its frame graph; this keeps the type checker honest
            raise ModelError("no frame graph")
        s, tf, tp = self.spec.rgb_size, self.spec.rgb_frames, self.spec.t_p
        feats = frame.run({"frames": np.zeros((2, 3, s, s), np.float32)})["features"]
        if feats.shape != (2, self.feature_dim) or not np.isfinite(feats).all():
            raise ModelError(f"{self.folder}: frame graph gave {feats.shape} / non-finite features on a blank frame")
        feeds = self.window_feeds(
            np.zeros((tp, 63, 5), np.float32),
            np.linspace(-1, 1, tp, dtype=np.float32),
            np.repeat(feats[:1], tf, axis=0),
        )
        out = self.window.run({k: np.concatenate([v, v]) for k, v in feeds.items()})
        for key in ("score", "raw"):
            if out[key].shape != (2,) or not np.isfinite(out[key]).all():
                raise ModelError(f"{self.folder}: window graph gave {key} {out[key]!r} on a neutral window")

    def window_feeds(self, trajectory: Array, index_t: Array, frame_features: Array | None) -> dict[str, Array]:
        if frame_features is None:
            raise ModelError("tramp_former windows need frame features")
        return {
            "frame_features": np.asarray(frame_features, np.float32)[None],
            "trajectory": np.asarray(trajectory, np.float32)[None],
            "index_t": np.asarray(index_t, np.float32)[None],
        }

    def clip_backend(self) -> Backend | None:
        spec = self.manifest.graphs.get("clip")
        if spec is None:
            return None
        if self._clip is None:
            backend = self.choice.open(self.folder / spec.file)
            s, tf, tp = self.spec.rgb_size, self.spec.rgb_frames, self.spec.t_p
            check_graph(backend, spec, {"frames": (tf, 3, s, s), "trajectory": (tp, 63, 5), "index_t": (tp,)},
                        ("score", "raw"))  # fmt: skip
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
