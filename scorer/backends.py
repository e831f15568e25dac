"""Model backends behind one small Protocol: load a graph, run named inputs to named outputs. Mechanics only; what
the inputs mean (pre- and post-processing) lives in :mod:`common.model_input` and :mod:`scorer.families`.

- ``onnxruntime`` on ``cpu``: the default, everywhere.
- ``onnxruntime`` on ``cuda``: the CUDA execution provider (package ``onnxruntime-gpu``, extra ``gpu``). Asking for
  CUDA where it is missing, or a session that comes up without it, is an error: never a silent CPU fallback.
- ``tensorrt``: a TensorRT engine built from the ONNX graph once and cached under ``engine_cache_dir`` by the ONNX
  file's sha256, the TensorRT version and the GPU's name (a new GPU, driver stack or graph builds a new engine).
  Available only where ``import tensorrt`` works; its tests skip elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from common.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]
BackendName = Literal["onnxruntime", "tensorrt"]
Device = Literal["cpu", "cuda"]


@dataclasses.dataclass(frozen=True)
class IOSpec:
    """A graph input or output as the runtime reports it (dims: int, or a name / -1 for dynamic axes)."""

    name: str
    shape: tuple[int | str, ...]


class Backend(Protocol):
    """One loaded graph. ``run`` is thread-safe and takes a batch on the first axis of every input."""

    @property
    def description(self) -> str: ...

    @property
    def inputs(self) -> tuple[IOSpec, ...]: ...

    @property
    def outputs(self) -> tuple[IOSpec, ...]: ...

    def run(self, feeds: dict[str, Array]) -> dict[str, Array]: ...


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """Which backend and device to load graphs on (from the scorer settings)."""

    backend: BackendName = "onnxruntime"
    device: Device = "cpu"
    device_id: int = 0
    intra_op_threads: int = 1
    engine_cache_dir: Path = Path(".feqa/engines")
    max_batch: int = 32

    def open(self, path: Path) -> Backend:
        if self.backend == "tensorrt":
            if self.device != "cuda":
                raise ConfigError("the tensorrt backend runs on a GPU: set FEQA_SCORER_DEVICE=cuda")
            return TensorRTBackend(path, self.engine_cache_dir, self.device_id, self.max_batch)
        return OrtBackend(path, self.device, self.device_id, self.intra_op_threads)


def _shape(dims: Any) -> tuple[int | str, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else str(d) for d in dims)


class OrtBackend:
    """ONNX Runtime on the CPU or the CUDA execution provider."""

    def __init__(self, path: Path, device: Device = "cpu", device_id: int = 0, intra_op_threads: int = 0) -> None:
        if device == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise ConfigError(
                    f"FEQA_SCORER_DEVICE=cuda but this onnxruntime offers only {available}; install onnxruntime-gpu "
                    "(pip extra 'gpu') or set FEQA_SCORER_DEVICE=cpu"
                )
            providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device_id})]
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
        # idle worker threads sleep instead of spinning: a scorer shares its cores with the tracker and others
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt or unsupported graphs
            raise ModelError(f"cannot load ONNX graph {path}: {exc}") from exc
        active = self._session.get_providers()
        if device == "cuda" and (not active or active[0] != "CUDAExecutionProvider"):
            raise ConfigError(
                f"{path.name}: CUDA was asked for but the session runs on {active}; check the CUDA and cuDNN "
                "libraries instead of scoring silently on the CPU"
            )
        self._active = active
        self._path = path
        self._inputs = tuple(IOSpec(i.name, _shape(i.shape)) for i in self._session.get_inputs())
        self._outputs = tuple(IOSpec(o.name, _shape(o.shape)) for o in self._session.get_outputs())

    @property
    def description(self) -> str:
        return f"onnxruntime {ort.__version__} on {self._active[0]}"

    @property
    def inputs(self) -> tuple[IOSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[IOSpec, ...]:
        return self._outputs

    def run(self, feeds: dict[str, Array]) -> dict[str, Array]:
        names = [o.name for o in self._outputs]
        try:
            values = self._session.run(names, feeds)
        except Exception as exc:  # onnxruntime's own error types: bad shapes or a failing kernel
            raise ModelError(f"{self._path.name}: inference failed: {exc}") from exc
        return dict(zip(names, values, strict=True))


def engine_key(onnx_path: Path, trt_version: str, gpu_name: str) -> str:
    """The cache name of a TensorRT engine: ONNX content hash, TensorRT version and GPU name."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    gpu = "".join(c if c.isalnum() else "-" for c in gpu_name).strip("-").lower()
    return f"{onnx_path.stem}-{digest}-trt{trt_version}-{gpu}.engine"


class TensorRTBackend:
    """A TensorRT engine for one ONNX graph, built once per (graph, TensorRT version, GPU) and cached on disk.

    Device memory goes through the CUDA runtime bindings (``cuda-python``), which TensorRT's Python packages use;
    buffers are allocated per call for the batch at hand (the engine's profile allows 1 .. ``max_batch``)."""

    def __init__(self, onnx_path: Path, cache_dir: Path, device_id: int = 0, max_batch: int = 32) -> None:
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise ConfigError(
                "FEQA_SCORER_BACKEND=tensorrt but the tensorrt package does not import; install TensorRT for this "
                "GPU or use FEQA_SCORER_BACKEND=onnxruntime"
            ) from exc
        self._trt = trt
        self._cudart = _cuda_runtime()
        _check_cuda(self._cudart.cudaSetDevice(device_id), "cudaSetDevice")
        gpu = _gpu_name(self._cudart, device_id)
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / engine_key(onnx_path, trt.__version__, gpu)
        logger = trt.Logger(trt.Logger.WARNING)
        if not path.is_file():
            log.info("building TensorRT engine for %s on %s (once; cached as %s)", onnx_path.name, gpu, path.name)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(_build_engine(trt, logger, onnx_path, max_batch))
            tmp.replace(path)
        self._engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ModelError(f"TensorRT could not load the cached engine {path}; delete it to rebuild")
        self._context = self._engine.create_execution_context()
        self._lock = threading.Lock()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = tuple(IOSpec(n, _shape(self._engine.get_tensor_shape(n))) for n in names if is_input[n])
        self._outputs = tuple(IOSpec(n, _shape(self._engine.get_tensor_shape(n))) for n in names if not is_input[n])
        self._gpu = gpu
        self._path = onnx_path

    @property
    def description(self) -> str:
        return f"tensorrt {self._trt.__version__} on {self._gpu}"

    @property
    def inputs(self) -> tuple[IOSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[IOSpec, ...]:
        return self._outputs

    def run(self, feeds: dict[str, Array]) -> dict[str, Array]:
        cudart = self._cudart
        with self._lock:  # one execution context: calls take turns
            buffers: list[int] = []
            try:
                for spec in self._inputs:
                    host = np.ascontiguousarray(feeds[spec.name], dtype=np.float32)
                    self._context.set_input_shape(spec.name, host.shape)
                    ptr = _alloc(cudart, host.nbytes)
                    buffers.append(ptr)
                    copy = cudart.cudaMemcpy(ptr, host.ctypes.data, host.nbytes, _host_to_device(cudart))
                    _check_cuda(copy, "copy in")
                    self._context.set_tensor_address(spec.name, ptr)
                outs: dict[str, Array] = {}
                for spec in self._outputs:
                    shape = tuple(self._context.get_tensor_shape(spec.name))
                    outs[spec.name] = np.empty(shape, dtype=np.float32)
                    ptr = _alloc(cudart, outs[spec.name].nbytes)
                    buffers.append(ptr)
                    self._context.set_tensor_address(spec.name, ptr)
                if not self._context.execute_async_v3(0):
                    raise ModelError(f"{self._path.name}: TensorRT execution failed")
                _check_cuda(cudart.cudaDeviceSynchronize(), "synchronize")
                for spec, ptr in zip(self._outputs, buffers[len(self._inputs) :], strict=True):
                    host_out = outs[spec.name]
                    copy = cudart.cudaMemcpy(host_out.ctypes.data, ptr, host_out.nbytes, _device_to_host(cudart))
                    _check_cuda(copy, "copy out")
                return outs
            finally:
                for ptr in buffers:
                    cudart.cudaFree(ptr)


def _build_engine(trt: Any, logger: Any, onnx_path: Path, max_batch: int) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    if builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(inp.shape)[1:]
        profile.set_shape(inp.name, (1, *rest), (max(1, max_batch // 2), *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ModelError(f"TensorRT could not build an engine for {onnx_path.name}")
    return bytes(engine)


def _cuda_runtime() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError as exc:
            raise ConfigError("the tensorrt backend needs the CUDA runtime bindings: pip install cuda-python") from exc
    return runtime


def _check_cuda(result: Any, what: str) -> Any:
    err = result[0] if isinstance(result, tuple) else result
    if int(err) != 0:
        raise ModelError(f"CUDA {what} failed with error {int(err)}")
    return result[1] if isinstance(result, tuple) and len(result) > 1 else None


def _alloc(cudart: Any, nbytes: int) -> int:
    return int(_check_cuda(cudart.cudaMalloc(max(1, nbytes)), "malloc"))


def _gpu_name(cudart: Any, device_id: int) -> str:
    props = _check_cuda(cudart.cudaGetDeviceProperties(device_id), "device properties")
    name = props.name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00")


def _host_to_device(cudart: Any) -> Any:
    return cudart.cudaMemcpyKind.cudaMemcpyHostToDevice


def _device_to_host(cudart: Any) -> Any:
    return cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
