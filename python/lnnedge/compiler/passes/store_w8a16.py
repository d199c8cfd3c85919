"""Store the products of w8a16 layers as LINEAR_W8A16 / MATMUL_W8A16: the weight as the int8 panel, one float32
scale per output column, and each input row rounded to 16-bit block floating point by the device.

The compiler is given the fake-quantized model without its rounding hooks (quantize.capturable: every w8a16
layer's weight is q * scale) and the per-row scales of those layers. As for store_int8, the float passes before
this one only stack (fuse_products) and transpose (select_kernels) those weights, so each output column of a
final product holds q * scale of its layer's row: this pass recovers q exactly (checked bit for bit) and stores
it as the panel (kernels_np.panel). Unlike store_int8 there is no size rule: the rounding of the input row is
part of the scheme's arithmetic (the PyTorch reference rounds it in a forward pre-hook), so a w8a16 layer is
always stored so, and one that cannot be is an error naming it.

The row the device rounds must be the row PyTorch's hook rounds, the whole input of the nn.Linear: so the
passes never split these layers' products over their input (split_linear and const_fold leave them alone,
fuse_products fuses them only with products of w8a16 layers of the same input, which round the same row).

One exception, made here: parts of the row known to be exactly zero. A product whose input concatenates (over
its last axis) ZERO outputs with other parts, as the peeled first solver step's cat([x, h0 = 0]) does
(peel_zero_state), reads only the other parts, with a panel of their rows of the weight (its own constant; the
same scale and bias). The bits are the same: the row's max |.| over the whole row is the max over the non-zero
parts (zeros never raise it, and a NaN / inf stays in a kept part), so the exponent and every kept xq are the
same; the dropped xq are 0 and add nothing to the exact integer sums, which do not depend on the order of their
terms, so kept parts that were apart (zeros in the middle) are concatenated in their order with their rows.
This is done here and not in peel_zero_state because it holds only for this arithmetic (its proof is the
rounding's), on the final, fused product; ltc-sine's peeled step then costs the K = 1 input projection, as in
the float compile (split_linear there), instead of a product over K = 65. A row of zeros alone is left whole
(a product needs an input). The concat and ZERO nobody else reads go in the dce after this pass.

Requires: products tagged with their layers (modules / parts attrs), the final weight layout (after
select_kernels). Ensures: every product of the named layers is a w8a16 product; every named layer has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ... import kernels_np
from .. import optable
from ..ir import CompileError, Graph, Node, TensorType
from .base import Pass, PassResult, run_scoped
from .fuse_products import part_info
from .store_int8 import TRANSPOSED, layers_of

PANELED = {op: optable.get(op).paneled for op in optable.names(lambda op: bool(op.paneled))}


def _recover(wt: np.ndarray, scale: np.ndarray, node: Node, layers: tuple[str, ...]) -> np.ndarray:
    """q (K, M) int8 with q * scale == wt exactly, scale per column."""
    q = np.rint(wt / scale)
    if np.any(np.abs(q) > 127) or not np.array_equal((q.astype(np.float32) * scale).astype(np.float32), wt):
        raise CompileError(f"store_w8a16: a weight of layer {' + '.join(layers)} is not its fake-quantized value "
                           "(compile the model of quantize.fake_quantize with the w8a16 scheme)", node)
    return q.astype(np.int8)


def _parts(name: str, producers: Mapping[str, Node], types: Mapping[str, TensorType], zeros: set[str]
           ) -> list[str]:
    """name as its concatenated parts over the last axis, split as far as needed to expose the parts known to be
    zero (a concat with no zero inside stays one part)."""
    node = producers.get(name)
    if node is None or node.op != "concat" or node.attr("axis") not in (-1, len(types[name].shape) - 1):
        return [name]
    parts = [part for i in node.inputs for part in _parts(i, producers, types, zeros)]
    return parts if any(part in zeros for part in parts) else [name]


def _nonzero_rows(x: str, producers: Mapping[str, Node], types: Mapping[str, TensorType], zeros: set[str]
                  ) -> tuple[list[str], np.ndarray] | None:
    """(the parts of x not known to be zero, in order; their rows of x) when x has parts of both kinds, else
    None."""
    parts = _parts(x, producers, types, zeros)
    kept = [part for part in parts if part not in zeros]
    if not kept or len(kept) == len(parts):
        return None
    starts = np.cumsum([0] + [types[part].shape[-1] for part in parts])
    rows = [np.arange(starts[i], starts[i + 1]) for i, part in enumerate(parts) if part not in zeros]
    return kept, np.concatenate(rows)


def _row_name(rows: np.ndarray) -> str:
    """rows as their runs, for a constant's name: [0, 1, 2, 7] -> 'k0-3+7-8'."""
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    return "k" + "+".join(f"{run[0]}-{run[-1] + 1}" for run in np.split(rows, cuts))


def _convert(node: Node, w: np.ndarray, scales: Mapping[str, np.ndarray], new_constants: dict[str, np.ndarray],
             panels: dict[bytes, str], x: str, rows: np.ndarray | None) -> Node:
    """node as a w8a16 product of input x, which holds the given rows of its input (None: all of them)."""
    layers = layers_of(node)
    named = [name in scales for name in layers]
    if not all(named):
        raise CompileError(f"store_w8a16: one product computes w8a16 layers and others "
                           f"({', '.join(n or '?' for n, q in zip(layers, named) if not q)}): their input rows "
                           "cannot be rounded for some of its columns only", node)
    transposed = node.op in TRANSPOSED
    parts = node.attr("parts") if transposed else (part_info(node),)
    if any(part is not None for part in parts or ()):
        raise CompileError(f"store_w8a16: layer {' + '.join(layers)} was split over its input; its product must "
                           "read the whole input row, which the device rounds as one", node)
    wt = w if transposed else w.T  # (K, M)
    scale = np.concatenate([scales[name] for name in layers]).astype(np.float32)
    if scale.shape != (wt.shape[1],):
        raise CompileError(f"store_w8a16: layers {' + '.join(layers)} have {scale.size} scales for "
                           f"{wt.shape[1]} outputs", node)
    q = _recover(wt, scale, node, layers)
    panel = kernels_np.panel(q if rows is None else q[rows])
    # one constant per distinct panel: the peeled first step (peel_zero_state) and the loop body have their own
    # copies of the same fused weight
    key = repr(panel.shape).encode() + panel.tobytes()
    name = panels.setdefault(key, f"{node.inputs[1]}/w8a16" + ("" if rows is None else f"/{_row_name(rows)}"))
    new_constants[name] = panel
    scale_name = "scale/" + "+".join(layers)  # products of the same layers share their scales
    new_constants[scale_name] = scale
    attrs = dict(node.attrs)
    if not transposed:  # a W product has one output: the attrs of a DSTN op of one destination
        attrs.update(splits=(int(wt.shape[1]),), modules=(node.attr("module") or "",), parts=(None,))
    return replace(node, op=PANELED[node.op], inputs=(x, name, scale_name, *node.inputs[2:]),
                   attrs=tuple(attrs.items()))


def _store_scope(graph: Graph, known: dict[str, np.ndarray], scales: Mapping[str, np.ndarray],
                 new_constants: dict[str, np.ndarray], stored: set[str], panels: dict[bytes, str],
                 outer: tuple[dict[str, Node], dict[str, TensorType], set[str]] = ({}, {}, set())
                 ) -> tuple[Graph, bool]:
    """outer: the producers, types and zero values (ZERO outputs) of the enclosing scopes."""
    known = {**known, **graph.constants}
    producers = {**outer[0], **graph.producers()}
    types = {**outer[1], **graph.types}
    zeros = outer[2] | {n.output for n in graph.nodes if n.op == "zeros"}
    modified = False
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op == "loop":
            body, changed = _store_scope(node.attr("body"), known, scales, new_constants, stored, panels,
                                         (producers, types, zeros))
            if changed:
                node, modified = node.with_attrs(body=body), True
        if node.op in PANELED and any(name in scales for name in layers_of(node)):
            w = known.get(node.inputs[1])
            if w is None or w.ndim != 2 or w.dtype != np.float32:
                raise CompileError(f"store_w8a16: the weight of layer {' + '.join(layers_of(node))} is not a "
                                   "float32 constant", node)
            stored.update(layers_of(node))
            x, rows = node.inputs[0], None
            found = _nonzero_rows(x, producers, types, zeros)
            if found is not None:  # the row without its zero parts (the module docstring: the same bits)
                kept, rows = found
                x = kept[0]
                for i, part in enumerate(kept[1:]):  # the VM's CONCAT is binary (split_concat)
                    joined = f"{node.output}/x/nonzero{i}"
                    nodes.append(Node("concat", (x, part), (joined,), (("axis", -1),), node.source))
                    x = joined
            node, modified = _convert(node, w, scales, new_constants, panels, x, rows), True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)), modified


def make(scales: Mapping[str, np.ndarray]) -> Pass:
    """The pass for the layers `scales` names (layer -> float32 scale per output row, quantize.int8_scales)."""

    def run(graph: Graph) -> PassResult:
        stored: set[str] = set()
        panels: dict[bytes, str] = {}  # a panel's shape and bytes -> its constant

        def scope(g: Graph, known: dict[str, np.ndarray], new_constants: dict[str, np.ndarray]
                  ) -> tuple[Graph, bool]:
            return _store_scope(g, known, scales, new_constants, stored, panels)

        result = run_scoped(scope, graph)
        missing = sorted(set(scales) - stored)
        if missing:  # a layer computed some other way would silently lose its rounding
            raise CompileError(f"store_w8a16: no product of layer(s) {', '.join(missing)} in the compiled graph: "
                               "a layer the model does not call, one of parameters alone (computed at compile "
                               "time, without the rounding of its input) or not captured as its nn.Linear; keep "
                               "such a layer in float32 (the recipe's keep_float)")
        return result

    return Pass("store_w8a16", requires="products tagged with their layers, the final weight layout",
                ensures=f"w8a16 products for {', '.join(sorted(scales)) or 'no layer'}", run=run)
