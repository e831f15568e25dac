"""The model manifest: what a scorer needs to know to run ``models/<name>/<version>/`` (design.md §5).

Written by the trainer's export next to the ONNX graphs, read by the scorer. A scorer refuses a manifest whose
schema or feature version it does not know (:meth:`Manifest.check_compatible`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from common.errors import ModelError
from common.features import FEATURE_VERSION

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


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
    family: str  # e.g. "tramp_former"
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
    feature_version: int = FEATURE_VERSION
    schema_version: int = MANIFEST_SCHEMA_VERSION
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    data_hash: str = ""
    code_version: str = ""
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    created: str = ""

    def check_compatible(self) -> None:
        """Raise :class:`ModelError` when this code cannot interpret the artifact."""
        if self.schema_version != MANIFEST_SCHEMA_VERSION:
            raise ModelError(
                f"manifest schema {self.schema_version} unknown (this code reads {MANIFEST_SCHEMA_VERSION})"
            )
        if self.feature_version != FEATURE_VERSION:
            raise ModelError(f"model built on feature version {self.feature_version}; this code has {FEATURE_VERSION}")

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
            return cls(graphs=graphs, **raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"manifest is malformed: {exc}") from exc

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = Path(folder) / MANIFEST_FILE
        if not path.is_file():
            raise ModelError(f"no {MANIFEST_FILE} in {folder}")
        return cls.from_json(path.read_text())
