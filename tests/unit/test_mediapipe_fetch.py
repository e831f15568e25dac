"""`feqa tracker fetch-models`: the wheel's checks, the models directory it writes (licence, notice, record),
the fast skip of a complete directory, and clear errors for a wrong wheel or a damaged model file.

The download itself runs in ``infra/setup.sh`` (so CI exercises it); here the same code reads a wheel-shaped zip
built from the fetched ``.tflite`` files, with the pinned wheel hash patched to that zip's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.errors import ModelError
from tracker.cli import cli
from tracker.mediapipe import fetch, models
from tracker.mediapipe.convert import CONVERTER_VERSION
from tracker.mediapipe.models import LICENSE_MEMBER, MESH, RECORD, SPECS, TFLITE_DIR, is_complete, verified_path
from tracker.settings import TrackerSettings

pytestmark = pytest.mark.unit


def _wheel(mediapipe_dir: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for spec in SPECS:
            z.write(mediapipe_dir / TFLITE_DIR / spec.tflite_name, spec.member)
        z.write(mediapipe_dir / "LICENSE", LICENSE_MEMBER)
        z.writestr("mediapipe/__init__.py", "")
    return path


@pytest.fixture
def local_wheel(mediapipe_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheel = _wheel(mediapipe_dir, tmp_path / models.WHEEL_NAME)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setattr(fetch, "WHEEL_SHA256", digest)
    monkeypatch.setattr(models, "WHEEL_SHA256", digest)
    return wheel


def test_the_installed_models_directory_is_complete_and_licensed(mediapipe_dir: Path) -> None:
    record = json.loads((mediapipe_dir / RECORD).read_text())
    assert record["converter_version"] == CONVERTER_VERSION and record["wheel_sha256"] == models.WHEEL_SHA256
    for spec in SPECS:
        assert record["models"][spec.key]["tflite_sha256"] == spec.sha256
        verified_path(mediapipe_dir, spec)
        verified_path(mediapipe_dir, spec, "tflite")
    assert "Apache License" in (mediapipe_dir / "LICENSE").read_text()[:400]
    notice = (mediapipe_dir / "NOTICE").read_text()
    assert "converted" in notice and "Modifications" in notice and "Apache License, Version 2.0" in notice


def test_fetch_converts_checks_and_then_skips(local_wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "models" / "mediapipe"
    said: list[str] = []
    report = fetch.fetch_models(target, wheel=local_wheel, parity="require", say=said.append)
    assert not report.skipped and is_complete(target, CONVERTER_VERSION)
    assert all(v is not None and v < 2e-3 for v in report.parity.values()), report.parity
    assert any("max |ONNX - LiteRT|" in line for line in said)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [RECORD, "LICENSE", "NOTICE", TFLITE_DIR, *(s.onnx_name for s in SPECS)]
    )
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".fetch-")]  # staging cleaned up
    t0 = time.monotonic()
    again = fetch.fetch_models(target, wheel=local_wheel, say=said.append)
    assert again.skipped and time.monotonic() - t0 < 1.0
    # a damaged file is found and the next fetch repairs it
    onnx_file = target / MESH.onnx_name
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    assert not is_complete(target, CONVERTER_VERSION)
    with pytest.raises(ModelError, match=r"corrupt or was changed.*feqa tracker fetch-models"):
        verified_path(target, MESH)
    assert not fetch.fetch_models(target, wheel=local_wheel, say=said.append).skipped
    verified_path(target, MESH)


def test_a_wheel_that_is_not_the_pinned_one_is_refused(mediapipe_dir: Path, tmp_path: Path) -> None:
    wheel = _wheel(mediapipe_dir, tmp_path / models.WHEEL_NAME)  # right contents, but not the pinned file
    target = tmp_path / "out"
    with pytest.raises(ModelError, match="not the pinned"):
        fetch.fetch_models(target, wheel=wheel)
    assert not target.exists()
    result = CliRunner().invoke(cli, ["fetch-models", "--dir", str(target), "--wheel", str(wheel)])
    assert result.exit_code == 2 and "not the pinned" in result.output


def test_a_member_that_differs_from_its_pin_is_refused(
    local_wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = models.ModelSpec("mesh", MESH.member, "0" * 64, MESH.input_range, MESH.outputs, MESH.channel_pad)
    monkeypatch.setattr(fetch, "SPECS", (SPECS[0], wrong, SPECS[2]))
    with pytest.raises(ModelError, match=r"face_landmark\.tflite .* pinned 0000"):
        fetch.fetch_models(tmp_path / "out", wheel=local_wheel)


def test_missing_or_damaged_models_name_the_fetch_command(mediapipe_dir: Path, tmp_path: Path) -> None:
    from tracker.mediapipe.landmarker import MediapipeLandmarker

    with pytest.raises(ModelError, match="feqa tracker fetch-models"):
        MediapipeLandmarker.from_settings(TrackerSettings(mediapipe_dir=tmp_path / "nothing"))
    copy = tmp_path / "copy"
    shutil.copytree(mediapipe_dir, copy)
    (copy / SPECS[0].onnx_name).unlink()
    with pytest.raises(ModelError, match=r"missing: .*face_detection_short_range\.onnx.*feqa tracker fetch-models"):
        MediapipeLandmarker.from_settings(TrackerSettings(mediapipe_dir=copy))
    shutil.copy(mediapipe_dir / SPECS[0].onnx_name, copy / SPECS[0].onnx_name)
    (copy / SPECS[2].onnx_name).write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"iris_landmark\.onnx is corrupt.*feqa tracker fetch-models"):
        MediapipeLandmarker.from_settings(TrackerSettings(mediapipe_dir=copy))
    (copy / RECORD).write_text("{not json")
    with pytest.raises(ModelError, match=r"unreadable.*feqa tracker fetch-models"):
        MediapipeLandmarker.from_settings(TrackerSettings(mediapipe_dir=copy))
