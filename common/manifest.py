"""The model manifest: what a scorer needs to know to run ``models/<protocol>/<task>/<version>/`` (design.md §5).

Written by the trainer's export next to the ONNX graphs, read by the scorer. A scorer refuses a manifest whose
schema, feature or heatmap version or family it does not know (:meth:`Manifest.check_compatible`). ``time_index``
names the rule for the trajectory encoder's time input (:data:`common.features.TIME_INDEX_RULES`): ``window`` for every
model trained here; ``reference`` only for official weights trained on source frame numbers (it leaks clip length).

Graph contract per family
-------------------------
Every artifact has three ONNX graphs (``graphs`` keys; float32, batch axis 0 dynamic), all outputs named as here:

* ``frame`` (``frame_encoder.onnx``): ``frames`` [N, 3, S, S] -> ``features`` [N, D]. The per-frame RGB encoder:
  run it once per (session, frame) and cache the row; every window containing the frame reuses it.
* ``window`` (``window.onnx``): ``frame_features`` [B, T_f, D] + the family's other inputs -> ``score`` [B],
  ``raw`` [B]. What a live scorer runs per window, on cached features.
* ``clip`` (``model.onnx``): ``frames`` [B, T_f, 3, S, S] + the family's other inputs -> ``score``, ``raw``. The
  same function without the cache (for checks and offline scoring).

``score`` is ``raw`` through :class:`Calibration` (inside the graph); ``raw`` is the regressor's own output.
S = ``rgb_size``; T_f = ``rgb_frames``; D = the ``frame`` graph's output width. The scorer builds, from a window's
observations (106 landmarks in 256-crop pixels, colours) and crops (256 x 256 RGB uint8):

* ``frames``: the T_f crops picked by :func:`common.features.rgb_frame_indices` (uniform over the window or task
  clip), resized to S x S, ``(x / 255 - rgb_mean) / rgb_std`` per channel, as [3, S, S]. ``rgb_mean``/``rgb_std``
  differ per model (ImageNet's for the DFEW-224 weights; 0 and 1 for the upstream 112-px release).

``family = "tramp_former"`` (TraMP-Former), window and clip inputs after the frames:

* ``trajectory`` [B, T_p, 63, 5] and ``index_t`` [B, T_p], T_p = ``t_p``: :func:`common.features.model_input` on
  :func:`common.features.trajectory_features` of the window's observations.

A TraMP-Former trained without its RGB stream (``model.rgb = false``; ``model_config["use_rgb"]`` is false) has no
``frame`` graph: its ``window`` and ``clip`` graphs take ``trajectory`` and ``index_t`` only, the same function
twice, and need no crops (:attr:`Manifest.reads_frames` is False; ``rgb_*`` then describe nothing the model reads).

``family = "qafe_net"`` (QAFE-Net), window and clip inputs after the frames (``t_p`` is 0: no trajectory):

* ``heatmaps`` [B, T_f, 3, H, H], H = ``heatmap.crop``: at the *same* T_f frame indices as the frames,
  :func:`common.heatmaps.model_heatmaps` of :func:`common.heatmaps.heatmap_frames` (landmarks [T, 106, 2] and
  crops [T, 256, 256, 3]) with the manifest's ``heatmap`` spec. Drawing is per frame (about 2 ms in numpy), so a
  scorer caches the [size, size, 3] uint8 image per frame like the frame features.

:class:`Calibration` is the affine map (fitted on validation clips, then clamped to the label scale) that turns the
regressor's raw output into the score a clinician sees. The exported graphs already apply it (their ``score``
output); the manifest carries it so a scorer can report it and apply it to ``raw`` itself. Manifests written before
it existed parse to the identity over the label scale (``fitted_on == "none"``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common.errors import ModelError
from common.features import FEATURE_VERSION, TIME_INDEX_RULES, FeatureError
from common.heatmaps import HEATMAP_VERSION, HeatmapSpec

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
CALIBRATION_SOURCES = ("validation", "cross_fit", "none")
FAMILIES = ("tramp_former", "qafe_net")
"""The model families whose graph contract is documented above."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """``score = clip(scale * raw + offset, clamp_min, clamp_max)``; ``n`` clips it was fitted on.

    ``fitted_on`` is ``"validation"`` for a map fitted on validation clips, ``"cross_fit"`` for one fitted on
    out-of-fold predictions of the training and validation subjects (``trainer.crossfit``), and ``"none"`` for the
    identity (nothing to fit on, or a fit that was refused); the clamp to the label scale applies either way. The
    scale must be positive: a calibration may stretch and shift scores but never reverse their order.
    """

    scale: float
    offset: float
    clamp_min: float
    clamp_max: float
    fitted_on: str = "none"
    n: int = 0

    def __post_init__(self) -> None:
        values = (self.scale, self.offset, self.clamp_min, self.clamp_max)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ModelError(f"calibration values must be finite numbers, got {values}")
        if not self.scale > 0:
            raise ModelError(f"calibration scale must be positive (order-preserving), got {self.scale}")
        if not self.clamp_min < self.clamp_max:
            raise ModelError(f"calibration clamp [{self.clamp_min}, {self.clamp_max}] is empty")
        if self.fitted_on not in CALIBRATION_SOURCES:
            raise ModelError(f"calibration fitted_on must be one of {CALIBRATION_SOURCES}, got {self.fitted_on!r}")
        if not isinstance(self.n, int) or self.n < 0:
            raise ModelError(f"calibration n must be a non-negative integer, got {self.n!r}")

    @classmethod
    def identity(cls, lo: float, hi: float) -> Calibration:
        """No stretch or shift, only the clamp to the label scale ``[lo, hi]``."""
        return cls(scale=1.0, offset=0.0, clamp_min=float(lo), clamp_max=float(hi), fitted_on="none", n=0)

    def apply(self, raw: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated, clamped scores for raw regressor outputs (any shape)."""
        x = np.asarray(raw, dtype=np.float64)
        return np.clip(self.scale * x + self.offset, self.clamp_min, self.clamp_max)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """Read the six fields; other keys (a checkpoint's validation figures) are ignored."""
        try:
            return cls(
                scale=float(d["scale"]),
                offset=float(d["offset"]),
                clamp_min=float(d["clamp_min"]),
                clamp_max=float(d["clamp_max"]),
                fitted_on=str(d["fitted_on"]),
                n=int(d["n"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"calibration is malformed: {exc!r}") from exc


# Stands for "the identity over this manifest's label scale" until __post_init__ replaces it (compared by identity).
_LABEL_SCALE_IDENTITY = Calibration.identity(0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: a name, a shape (``-1`` or a name for dynamic axes) and a dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """One exported graph file with its inputs and outputs, relative to the manifest's folder."""

    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str = ""


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Everything about one model artifact except its weights."""

    name: str
    version: str
    family: str  # "tramp_former" | "qafe_net" (the graph contract above)
    task: str  # e.g. "smile"
    protocol: str  # e.g. "pfed5"
    graphs: dict[str, GraphSpec]  # "clip", "frame", "window"
    fps: float
    t_p: int
    rgb_frames: int
    rgb_size: int
    rgb_mean: tuple[float, float, float]
    rgb_std: tuple[float, float, float]
    label_min: float
    label_max: float
    landmark_layout: str = "insightface106"
    landmarker: str = ""  # identity of the landmarker the training observations came from ("" = not recorded)
    time_index: str = "window"  # common.features.TIME_INDEX_RULES: the index_t rule the model was trained with
    feature_version: int = FEATURE_VERSION
    schema_version: int = MANIFEST_SCHEMA_VERSION
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    data_hash: str = ""
    code_version: str = ""
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    created: str = ""
    calibration: Calibration = _LABEL_SCALE_IDENTITY
    heatmap: HeatmapSpec | None = None  # qafe_net: how the heatmap inputs are drawn (common.heatmaps)

    def __post_init__(self) -> None:
        if self.calibration is _LABEL_SCALE_IDENTITY:
            object.__setattr__(self, "calibration", Calibration.identity(self.label_min, self.label_max))

    @property
    def reads_frames(self) -> bool:
        """Whether the model has an RGB stream: a ``frame`` graph whose cached features its window graph takes."""
        return "frame" in self.graphs

    def check_compatible(self) -> None:
        """Raise :class:`ModelError` when this code cannot interpret the artifact."""
        if self.schema_version != MANIFEST_SCHEMA_VERSION:
            raise ModelError(
                f"manifest schema {self.schema_version} unknown (this code reads {MANIFEST_SCHEMA_VERSION})"
            )
        if self.feature_version != FEATURE_VERSION:
            raise ModelError(f"model built on feature version {self.feature_version}; this code has {FEATURE_VERSION}")
        if self.family not in FAMILIES:
            raise ModelError(f"model family {self.family!r} unknown (this code serves {', '.join(FAMILIES)})")
        if self.family == "qafe_net":
            if self.heatmap is None:
                raise ModelError("a qafe_net manifest must say how its heatmaps are drawn (heatmap spec missing)")
            if self.heatmap.version != HEATMAP_VERSION:
                raise ModelError(
                    f"model built on heatmap rules version {self.heatmap.version}; this code draws {HEATMAP_VERSION}"
                )
        if self.time_index not in TIME_INDEX_RULES:
            raise ModelError(f"manifest time_index {self.time_index!r} unknown; expected one of {TIME_INDEX_RULES}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            raw = json.loads(text)
            graphs = {
                key: GraphSpec(
                    file=g["file"],
                    inputs=tuple(TensorSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in g["inputs"]),
                    outputs=tuple(TensorSpec(o["name"], tuple(o["shape"]), o["dtype"]) for o in g["outputs"]),
                    sha256=g.get("sha256", ""),
                )
                for key, g in raw.pop("graphs").items()
            }
            for key in ("rgb_mean", "rgb_std"):
                raw[key] = tuple(raw[key])
            if "calibration" in raw:  # absent in manifests written before it existed: identity over the label scale
                raw["calibration"] = Calibration.from_dict(raw["calibration"])
            if raw.get("heatmap") is not None:
                raw["heatmap"] = _heatmap(raw["heatmap"])
            return cls(graphs=graphs, **raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"manifest is malformed: {exc}") from exc

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise ModelError(f"no {MANIFEST_FILE} in {folder}")
        return cls.from_json(path.read_text())


def _heatmap(raw: dict[str, Any]) -> HeatmapSpec:
    """A heatmap spec read without validating its version (check_compatible reports a mismatch clearly)."""
    try:
        fields = {f.name for f in dataclasses.fields(HeatmapSpec)}
        unknown = set(raw) - fields
        if unknown:
            raise FeatureError(f"unknown heatmap spec fields {sorted(unknown)}")
        return HeatmapSpec(**raw)
    except (FeatureError, TypeError) as exc:
        raise ModelError(f"manifest heatmap spec is malformed: {exc}") from exc
