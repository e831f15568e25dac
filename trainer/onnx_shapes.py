"""Fold an exported graph's shape arithmetic into constants, keeping its dynamic batch axis.

The TorchScript exporter records every ``x.shape[i]`` the model code reads as ``Shape -> Gather -> Unsqueeze ->
Concat`` (and ``Mul``/``Div`` for ``b * t * v`` or ``c // 3``) in front of each Reshape and Slice, also for the axes
that never change. ONNX Runtime cannot fold them while one axis of the input is symbolic, so it runs them on every
call: in the small TraMP-Former window graph, 3118 nodes of which ~850 tiny shape kernels ran per call (the same graph
exported with a fixed batch keeps 497 after ONNX Runtime's optimisation).

:func:`fold_static_shapes` runs the graph at two batch sizes with every value that leaves that shape arithmetic
exposed (the frontier: a tensor computed only from ``Shape`` outputs and constants and read by some other node), and
the output of every Reshape whose target is computed, then:

* such a Reshape gets a constant target: the output shape seen, with ``-1`` at the one axis that changed with the
  batch (the element count fixes it, so the Reshape computes the same at every batch size); when more than one
  axis changed it keeps its computed target;
* any other frontier value that is small and the same at both batch sizes becomes a constant (the ``d // heads``
  behind an attention scale, a Slice's bounds);
* anything else (a value that depends on the batch and is not a Reshape target: an Expand to the batch, a Range
  as long as the batch) stays computed.

The arithmetic left without readers is removed. The function is unchanged by construction; :func:`parity` in
:mod:`trainer.export` checks the result against torch at batch 1 (not probed here) and 3 after every export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from common.errors import ModelError

PROBE_BATCHES = (2, 3)
_MAX_SHAPE_VALUES = 64  # a shape value is a short int64 vector; anything larger is data, not shape arithmetic


def _shape_region(graph: onnx.GraphProto) -> set[str]:
    """Tensors computed only from ``Shape`` outputs and constants (the graph's nodes are in topological order)."""
    constants = {t.name for t in graph.initializer}
    constants.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    region: set[str] = set()
    for node in graph.node:
        inputs = [i for i in node.input if i]
        derived = any(i in region for i in inputs) and all(i in region or i in constants for i in inputs)
        if node.op_type == "Shape" or (node.op_type != "Constant" and derived):
            region.update(node.output)
    return region


def _frontier(graph: onnx.GraphProto, region: set[str]) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """Region tensors read by nodes outside the region: name -> (reading node, input position)."""
    reads: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        if node.output and all(o in region for o in node.output):
            continue
        for k, name in enumerate(node.input):
            if name in region:
                reads.setdefault(name, []).append((node, k))
    return reads


def _probe(model: onnx.ModelProto, names: dict[str, int], batches: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """The values of ``names`` (name -> ONNX element type) when the graph runs on random inputs at each batch size."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name, elem_type in names.items():
        probe.graph.output.append(helper.make_tensor_value_info(name, elem_type, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    seen = []
    for batch in batches:
        feeds = {}
        for spec in model.graph.input:
            tensor = spec.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else batch for d in tensor.shape.dim]
            dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type)
            feeds[spec.name] = rng.standard_normal(dims).astype(dtype)
        seen.append(dict(zip(names, sess.run(list(names), feeds), strict=True)))
    return seen


def _same(values: list[np.ndarray]) -> np.ndarray | None:
    """The value, when it is small (shape arithmetic, not data) and the same at every batch size probed."""
    first = values[0]
    if first.size > _MAX_SHAPE_VALUES or any(v.shape != first.shape for v in values):
        return None
    return first if all(np.array_equal(v, first) for v in values) else None


def _reshape_target(outputs: list[np.ndarray]) -> np.ndarray | None:
    """A constant Reshape target for the output shapes seen: those dims, ``-1`` for the one that changes."""
    shapes = np.array([o.shape for o in outputs], dtype=np.int64)
    if shapes.ndim != 2 or np.any(shapes == 0):
        return None
    changed = np.flatnonzero(np.any(shapes != shapes[0], axis=0))
    if len(changed) > 1:
        return None
    target: np.ndarray = shapes[0].copy()
    target[changed] = -1
    return target


def _prune(graph: onnx.GraphProto) -> None:
    """Remove nodes whose outputs nobody reads, then initializers nobody reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {i for n in graph.node for i in n.input} | outputs
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def fold_static_shapes(path: Path, batches: Sequence[int] = PROBE_BATCHES) -> int:
    """Rewrite the ONNX file at ``path`` in place (see the module docstring); returns how many nodes it lost."""
    model = onnx.load(str(path))
    graph = model.graph
    before = len(graph.node)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    region = _shape_region(graph)
    reads = _frontier(graph, region)
    # every Reshape whose target is computed, also one inside the region (a weight reshaped by a computed shape:
    # with its target constant, ONNX Runtime folds what follows from the weight, a bias lookup for instance)
    reshapes = [(n, 1) for n in graph.node if n.op_type == "Reshape" and n.input[1] in region]
    probed = {name: types[name] for name in reads if types.get(name, 0) != 0}
    probed.update({n.output[0]: types[n.output[0]] for n, _ in reshapes if types.get(n.output[0], 0) != 0})
    if not probed:
        return 0
    try:
        seen = _probe(model, probed, batches)
    except Exception as exc:  # onnxruntime's own error types
        raise ModelError(f"{path.name}: cannot run the graph to fold its shapes: {exc}") from exc
    folded: list[onnx.TensorProto] = []
    for node, k in reshapes:
        out = node.output[0]
        target = _reshape_target([s[out] for s in seen]) if out in probed else None
        if target is not None:
            folded.append(numpy_helper.from_array(target, f"{out}_target"))
            node.input[k] = folded[-1].name
    for name, uses in reads.items():
        value = _same([s[name] for s in seen]) if name in probed else None
        left = [(n, k) for n, k in uses if n.input[k] == name]  # reads not rewritten as a Reshape target above
        if value is None or not left:
            continue
        folded.append(numpy_helper.from_array(value, f"{name}_static"))
        for node, k in left:
            node.input[k] = folded[-1].name
    graph.initializer.extend(folded)
    _prune(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return before - len(graph.node)
