"""The tracker's ONNX Runtime sessions (tracker.ort): the configured thread count, pool threads that never spin
(they share the cores with every other service), and no provider the build lacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from common.errors import ConfigError
from tracker.ort import open_session
from tracker.settings import TrackerSettings

pytestmark = pytest.mark.unit


def _identity(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_sessions_take_the_thread_count_and_never_spin(tmp_path: Path, threads: int) -> None:
    session = open_session(_identity(tmp_path / "id.onnx"), ["CPUExecutionProvider"], threads)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    if threads:
        assert options.intra_op_num_threads == threads
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(session.run(None, {"x": x})[0], x)


def test_the_default_is_one_thread_per_model() -> None:
    assert TrackerSettings().intra_op_threads == 1


def test_a_provider_the_build_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        open_session(_identity(tmp_path / "id.onnx"), ["NoSuchExecutionProvider"], 1)
