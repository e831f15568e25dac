"""The three MediaPipe face models: where they come from (pinned), where they live, and their checked loading.

The files come from the ``mediapipe==0.10.21`` wheel (Apache-2.0) at install time only (``feqa tracker
fetch-models``, run by ``infra/setup.sh``); nothing is downloaded at run time. The models directory (default
``models/mediapipe``, git-ignored) holds the converted ONNX files, the original ``.tflite`` files (for the LiteRT
parity check and benchmark), the licence, a NOTICE and ``fetched.json``, the record of what was verified. Loading
checks every file against that record, so a missing, truncated or edited file is an error that says to run the
fetch again, never a silently wrong tracker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from common.errors import ModelError

REQUIREMENT = "mediapipe==0.10.21"
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
LICENSE_MEMBER = "mediapipe-0.10.21.dist-info/LICENSE"
RECORD = "fetched.json"
TFLITE_DIR = "tflite"
FETCH_HINT = "run `feqa tracker fetch-models` (infra/setup.sh does) to get and convert them"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model: its file in the wheel, pinned sha256, input value range and the converter's forms for it."""

    key: str
    member: str
    sha256: str
    input_range: tuple[float, float]
    outputs: tuple[str, ...]  # output tensor names in the order the code reads them
    channel_pad: str = "pad"

    @property
    def stem(self) -> str:
        return Path(self.member).stem

    @property
    def onnx_name(self) -> str:
        return f"{self.stem}.onnx"

    @property
    def tflite_name(self) -> str:
        return f"{self.stem}.tflite"


DETECTOR = ModelSpec(
    "detector",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    (-1.0, 1.0),
    ("regressors", "classificators"),
)
MESH = ModelSpec(
    "mesh",
    "mediapipe/modules/face_landmark/face_landmark.tflite",
    "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    (0.0, 1.0),
    ("conv2d_21", "conv2d_31"),
    channel_pad="conv",
)
IRIS = ModelSpec(
    "iris",
    "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    (0.0, 1.0),
    ("output_eyes_contours_and_brows", "output_iris"),
    channel_pad="conv",
)
SPECS: tuple[ModelSpec, ...] = (DETECTOR, MESH, IRIS)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_record(directory: Path) -> dict[str, Any]:
    """The fetch record, or a :class:`ModelError` saying how to make it."""
    path = directory / RECORD
    if not path.is_file():
        raise ModelError(f"MediaPipe face models not found in {directory} (no {RECORD}); {FETCH_HINT}")
    try:
        record: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}); {FETCH_HINT}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("models"), dict):
        raise ModelError(f"{path} is not a fetch record; {FETCH_HINT}")
    return record


def verified_path(directory: Path, spec: ModelSpec, kind: str = "onnx") -> Path:
    """The ``onnx`` (or ``tflite``) file of ``spec``, checked against the fetch record's sha256."""
    record = read_record(directory)
    entry = record["models"].get(spec.key)
    if not isinstance(entry, dict):
        raise ModelError(f"{directory / RECORD} has no entry for the {spec.key} model; {FETCH_HINT}")
    path = directory / spec.onnx_name if kind == "onnx" else directory / TFLITE_DIR / spec.tflite_name
    if not path.is_file():
        raise ModelError(f"MediaPipe model file missing: {path}; {FETCH_HINT}")
    expected = entry.get(f"{kind}_sha256")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"MediaPipe model file {path} is corrupt or was changed (sha256 {actual[:12]}..., "
                         f"recorded {str(expected)[:12]}...); {FETCH_HINT}")  # fmt: skip
    return path


def is_complete(directory: Path, converter_version: int) -> bool:
    """Whether ``directory`` already holds every verified file of this converter version (fetch can skip)."""
    try:
        record = read_record(directory)
        if record.get("converter_version") != converter_version or record.get("wheel_sha256") != WHEEL_SHA256:
            return False
        for spec in SPECS:
            verified_path(directory, spec, "onnx")
            verified_path(directory, spec, "tflite")
    except ModelError:
        return False
    return (directory / "LICENSE").is_file() and (directory / "NOTICE").is_file()
