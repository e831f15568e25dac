"""scorer/registry.py and scorer/backends.py on artifacts written by the trainer's own export: what is served, what is
refused (and why), newest valid version wins, and CUDA asked for where there is none is an error."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest

from common.errors import ConfigError
from common.manifest import Calibration, Manifest
from scorer.backends import BackendChoice, OrtBackend, engine_key
from scorer.registry import ModelRegistry, natural_key
from tests.model_artifacts import copy_artifact

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("random-artifact")]
CPU = BackendChoice(intra_op_threads=1)


@pytest.fixture(scope="module")
def artifact(random_artifact: Path) -> Path:
    return random_artifact


def _edit(folder: Path, **changes: object) -> None:
    dataclasses.replace(Manifest.read(folder), **changes).write(folder)  # type: ignore[arg-type]


def test_newest_valid_version_is_served_by_natural_order(artifact: Path, tmp_path: Path) -> None:
    for v in ("2", "10", "9"):
        copy_artifact(artifact, tmp_path, version=v)
    (tmp_path / "pfed5" / "smile" / "11").mkdir()  # being written: no manifest yet, not looked at
    reg = ModelRegistry(tmp_path, CPU)
    served = reg.scan()
    assert list(served) == ["pfed5/smile"] and served["pfed5/smile"].version == "10"
    assert served["pfed5/smile"].name == "tramp_former:pfed5/smile" and reg.refused == []
    assert sorted(["10", "9", "2b", "2"], key=natural_key) == ["2", "2b", "9", "10"]


REFUSALS: dict[str, tuple[Callable[[Path], None], str]] = {
    "feature version": (lambda f: _edit(f, feature_version=999), "feature version 999"),
    "schema version": (lambda f: _edit(f, schema_version=7), "schema 7 unknown"),
    "folder mismatch": (lambda f: _edit(f, task="frown"), "is for pfed5/frown but lies in pfed5/smile"),
    "version mismatch": (lambda f: _edit(f, version="99"), "differs from its folder name"),
    "no landmarker": (lambda f: _edit(f, landmarker=""), "does not record the landmarker"),
    "wrong scale": (lambda f: _edit(f, calibration=Calibration.identity(0, 3)), "pfed5's scale is 0-4"),
    "unknown family": (lambda f: _edit(f, family="no_such_family"), "model family 'no_such_family' unknown"),
    "missing graph": (lambda f: (f / "window.onnx").unlink(), "window.onnx is missing"),
    "corrupt graph": (lambda f: (f / "frame_encoder.onnx").write_bytes(b"\x08\x07garbage"), "sha256"),
    "unloadable graph": (lambda f: _corrupt_unhashed(f), "cannot load ONNX graph"),
    "input spec": (lambda f: _edit(f, t_p=32), "trajectory"),
    "malformed manifest": (lambda f: (f / "manifest.json").write_text("{not json"), "manifest is malformed"),
}


def _corrupt_unhashed(folder: Path) -> None:
    """Garbage bytes with a matching sha256: the hash passes, the runtime refuses the graph."""
    (folder / "window.onnx").write_bytes(b"not an onnx graph at all")
    m = Manifest.read(folder)
    graphs = {k: dataclasses.replace(g, sha256="") if k == "window" else g for k, g in m.graphs.items()}
    dataclasses.replace(m, graphs=graphs).write(folder)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_newer_version_is_refused_with_why_and_the_old_one_keeps_serving(
    case: str, artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy_artifact(artifact, tmp_path, version="1")
    reg = ModelRegistry(tmp_path, CPU)
    assert reg.scan()["pfed5/smile"].version == "1"
    bad = copy_artifact(artifact, tmp_path, version="2")
    breaks, why = REFUSALS[case]
    breaks(bad)
    with caplog.at_level(logging.ERROR, logger="scorer.registry"):
        served = reg.scan()
    assert served["pfed5/smile"].version == "1"
    (refusal,) = reg.refused
    assert refusal.folder == bad and why in refusal.reason, refusal.reason
    assert [r.message for r in caplog.records if "refusing model" in r.message] == [
        f"refusing model {bad}: {refusal.reason}"
    ]
    caplog.clear()
    reg.scan()  # unchanged: not re-checked, not logged again
    assert not caplog.records


def test_a_fixed_version_is_picked_up_and_a_removed_one_stops(artifact: Path, tmp_path: Path) -> None:
    copy_artifact(artifact, tmp_path, version="1")
    bad = copy_artifact(artifact, tmp_path, version="2")
    _edit(bad, landmarker="")
    reg = ModelRegistry(tmp_path, CPU)
    assert reg.scan()["pfed5/smile"].version == "1"
    _edit(bad, landmarker="phantom")  # fixed in place: its files changed, so it is checked again
    assert reg.scan()["pfed5/smile"].version == "2" and reg.refused == []
    for f in bad.iterdir():
        f.unlink()
    bad.rmdir()
    assert reg.scan()["pfed5/smile"].version == "1"
    for f in (tmp_path / "pfed5" / "smile" / "1").iterdir():
        f.unlink()
    assert reg.scan() == {} and reg.get("pfed5", "smile") is None


def test_an_empty_or_missing_models_directory_serves_nothing(tmp_path: Path) -> None:
    assert ModelRegistry(tmp_path / "nowhere", CPU).scan() == {}
    assert ModelRegistry(tmp_path, CPU).scan() == {}


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_cuda_asked_where_there_is_none_is_an_error_not_a_cpu_fallback(artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        OrtBackend(artifact / "window.onnx", device="cuda")
    copy_artifact(artifact, tmp_path, version="1")
    reg = ModelRegistry(tmp_path, BackendChoice(device="cuda"))
    assert reg.scan() == {}
    assert "FEQA_SCORER_DEVICE=cuda" in reg.refused[0].reason
    with pytest.raises(ConfigError, match="GPU"):
        BackendChoice(backend="tensorrt", device="cpu").open(artifact / "window.onnx")


def test_engine_cache_key_names_graph_content_version_and_gpu(artifact: Path, tmp_path: Path) -> None:
    graph = tmp_path / "window.onnx"
    graph.write_bytes((artifact / "window.onnx").read_bytes())
    key = engine_key(graph, "10.9", "NVIDIA H200")
    assert key.startswith("window-") and key.endswith("-trt10.9-nvidia-h200.engine")
    assert engine_key(graph, "10.10", "NVIDIA H200") != key and engine_key(graph, "10.9", "NVIDIA L4") != key
    graph.write_bytes(graph.read_bytes() + b"\x00")
    assert engine_key(graph, "10.9", "NVIDIA H200") != key
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["landmarker"] == "phantom"
