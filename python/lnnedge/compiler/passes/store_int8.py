"""Store the weights of quantized layers as int8 with one float32 scale per output column.

The compiler is given the fake-quantized model (every quantized layer's weight is already q * scale,
lnnedge/quantize.py) and the per-row scales of those layers. The float passes before this one only slice
(split_linear), stack (fuse_products) and transpose (select_kernels) those weights, so each output column
of a final product still holds q * scale of its layer's row: this pass recovers q exactly (and checks it
bit for bit) and emits the _Q8 product, whose arithmetic is the fake-quantized weight's up to the
rounding of one multiplication per output.

The products of the same layers share one scale constant: a layer split by its inputs (split_linear: the
hoisted input projection and the recurrent part of an LTC layer) is still one weight with one scale per
output row. The layers' products are stored as int8 when that makes the file smaller: int8 weights for
all their K columns plus one 4-byte scale per output, M*K + 4*M bytes against 4*M*K in float32 — for
every layer with K >= 2 (a single K = 1 layer stays float, its fake-quantized values computing the same
numbers).

Requires: products tagged with their layers (modules / parts attrs). Ensures: the weight of every product
of quantized layers whose K (over all their products) is at least 2 is int8.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import CompileError, Graph, Node
from .base import Pass, PassResult, run_scoped

Q8_OP = {op: optable.get(op).quantized for op in optable.names(lambda op: bool(op.quantized))}
TRANSPOSED = optable.names(lambda op: op.weight == "Wt")


def layers_of(node: Node) -> tuple[str, ...]:
    """The layer behind each output split of a product ('' where unknown)."""
    if node.op in TRANSPOSED:
        parts = node.attr("parts") or ()
        modules = node.attr("modules") or ()
        return tuple((p[0] if p else m) or "" for p, m in zip(parts or (None,) * len(modules), modules))
    return (node.attr("part_of") or node.attr("module") or "",)


def _column_scales(node: Node, m: int, scales: Mapping[str, np.ndarray]) -> np.ndarray | None:
    layers = layers_of(node)
    if not layers or any(name not in scales for name in layers):
        return None
    scale = np.concatenate([scales[name] for name in layers]).astype(np.float32)
    if scale.shape != (m,):
        raise CompileError(f"store_int8: layers {layers} have {scale.size} scales for {m} outputs", node)
    return scale


def _recover(w: np.ndarray, scale: np.ndarray, node: Node) -> np.ndarray:
    """q with q * scale == w exactly (scale along w's output axis, the last one here)."""
    q = np.rint(w / scale)
    if np.any(np.abs(q) > 127) or not np.array_equal((q.astype(np.float32) * scale).astype(np.float32), w):
        raise CompileError("store_int8: a weight of a quantized layer is not its fake-quantized value "
                           "(compile the model returned by quantize.fake_quantize)", node)
    return q.astype(np.int8)


def _products(graph: Graph, known: dict[str, np.ndarray]) -> Iterator[tuple[Node, np.ndarray]]:
    """Every float32 product of the graph (loop bodies too) with its weight as Wt (K, M)."""
    known = {**known, **graph.constants}
    for node in graph.nodes:
        if node.op == "loop":
            yield from _products(node.attr("body"), known)
        w = known.get(node.inputs[1]) if node.op in Q8_OP else None
        if w is not None and w.ndim == 2 and w.dtype == np.float32:
            yield node, (w if node.op in TRANSPOSED else w.T)


def _shared_scales(graph: Graph, scales: Mapping[str, np.ndarray]) -> dict[tuple[str, ...], str]:
    """Layers -> the name of their shared scale constant, for the layers whose int8 form is smaller."""
    columns: dict[tuple[str, ...], tuple[int, int]] = {}  # layers -> (M, K over all their products)
    for node, wt in _products(graph, {}):
        k, m = wt.shape
        if _column_scales(node, m, scales) is not None:
            _, total = columns.get(layers_of(node), (m, 0))
            columns[layers_of(node)] = (m, total + k)
    return {layers: "scale/" + "+".join(layers) for layers, (m, k) in columns.items() if m * k + 4 * m < 4 * m * k}


def _store_scope(graph: Graph, known: dict[str, np.ndarray], scales: Mapping[str, np.ndarray],
                 shared: Mapping[tuple[str, ...], str], new_constants: dict[str, np.ndarray]) -> tuple[Graph, bool]:
    known = {**known, **graph.constants}
    modified = False
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op == "loop":
            body, changed = _store_scope(node.attr("body"), known, scales, shared, new_constants)
            if changed:
                node, modified = node.with_attrs(body=body), True
        w = known.get(node.inputs[1]) if node.op in Q8_OP else None
        scale_name = shared.get(layers_of(node)) if w is not None and w.dtype == np.float32 else None
        if scale_name is not None:
            wt = w if node.op in TRANSPOSED else w.T  # (K, M)
            scale = _column_scales(node, wt.shape[1], scales)
            q = _recover(wt, scale, node)
            name = node.inputs[1]
            new_constants[f"{name}/q8"] = q if node.op in TRANSPOSED else np.ascontiguousarray(q.T)
            new_constants[scale_name] = scale
            node = replace(node, op=Q8_OP[node.op],
                           inputs=(node.inputs[0], f"{name}/q8", scale_name, *node.inputs[2:]))
            modified = True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)), modified


def make(scales: Mapping[str, np.ndarray]) -> Pass:
    """The pass for layers `scales` names (layer -> float32 scale per output row)."""

    def run(graph: Graph) -> PassResult:
        shared = _shared_scales(graph, scales)

        def scope(g: Graph, known: dict[str, np.ndarray], new_constants: dict[str, np.ndarray]
                  ) -> tuple[Graph, bool]:
            return _store_scope(g, known, scales, shared, new_constants)

        return run_scoped(scope, graph)

    return Pass("store_int8", requires="products tagged with their layers",
                ensures=f"int8 weights for {', '.join(sorted(scales)) or 'no layer'} where smaller", run=run)
