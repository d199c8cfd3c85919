"""Fuse matrix products that share their input into one product with stacked weights.

In one scope (the graph, or one loop body), every linear (or every matmul_nt) with the same input x and
constant weights (and biases) becomes one `linear_t` (`matmul_t`) node: the weights transposed and stacked
side by side, Wt = [W1^T W2^T ...] (K, M1 + M2 + ...), the biases stacked, and one output per original
product, in order. The VM's LINEAR_T / MATMUL_T write the columns of each part into its own destination, so
the consumers read the same tensors as before. For the LTC this makes the gate and the candidate one
product inside the loop (h against [Wg_h; Wc_h]) and one before it (the hoisted input projection).

Each output column is the same sum as before (same terms, same order), so the result does not change
beyond the summation order the kernels choose. The products of w8a16 layers (make(w8a16)) fuse only with each
other: they read the same x, so the device's one rounding of the x row is each layer's own (store_w8a16), but a
float layer's columns in their product would read the rounded row too.

Requires: typed graph. Ensures: no two linear / matmul_nt nodes of one scope with constant weights share
their input, except in groups of the VM's maximum number of destinations (LNN_MAX_DSTS, e.g. the hoisted
input projections of the five dynamics inlined by an Adams solver). `modified` is true iff a group was fused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import numpy as np

from ... import isa
from .. import optable
from ..ir import Graph, Node
from .base import Pass, run_scoped


def part_info(node: Node) -> tuple | None:
    """(layer, first column, end column, has the bias) of a product that is part of a layer, else None."""
    if not node.attr("part_of"):
        return None
    return (node.attr("part_of"), *node.attr("cols"), bool(node.attr("has_bias")))


def _fusable(node: Node, known: dict[str, np.ndarray]) -> bool:
    op = optable.get(node.op)
    if not op.transposed or node.inputs[1] not in known or known[node.inputs[1]].ndim != 2:
        return False
    if known[node.inputs[1]].dtype != np.float32:
        return False
    return not op.bias or node.inputs[2] in known


def _fuse_scope(graph: Graph, outer: dict[str, np.ndarray], new_constants: dict[str, np.ndarray],
                w8a16: Collection[str]) -> tuple[Graph, bool]:
    known = {**outer, **graph.constants}
    modified = False
    groups: dict[tuple[str, str, bool, int], list[Node]] = {}
    most = isa.const("MAX_DSTS")  # one instruction writes at most this many destinations
    for node in graph.nodes:
        if _fusable(node, known):
            key = (node.op, node.inputs[0], node.attr("module") in w8a16, 0)
            while len(groups.get(key, ())) == most:  # a full group: the next products start another
                key = (*key[:3], key[3] + 1)
            groups.setdefault(key, []).append(node)
    fused_at: dict[int, Node] = {}  # id of the group's first node -> the fused node
    dropped: set[int] = set()
    for (op, x, _, _), members in groups.items():
        if len(members) < 2:
            continue
        first = members[0]
        base = f"{first.output}/fused"
        wt = np.concatenate([known[n.inputs[1]].T for n in members], axis=1)
        new_constants[f"{base}/wt"] = np.ascontiguousarray(wt, dtype=np.float32)
        inputs = [x, f"{base}/wt"]
        if optable.get(op).bias:
            new_constants[f"{base}/bias"] = np.concatenate([known[n.inputs[2]] for n in members]).astype(np.float32)
            inputs.append(f"{base}/bias")
        splits = tuple(int(known[n.inputs[1]].shape[0]) for n in members)
        modules = tuple(n.attr("module") or "" for n in members)  # whole layers (verify --trace)
        parts = tuple(part_info(n) for n in members)                # parts of layers (split_linear)
        fused_at[id(first)] = Node(optable.get(op).transposed, tuple(inputs), tuple(n.output for n in members),
                                   (("splits", splits), ("modules", modules), ("parts", parts)), first.source)
        dropped |= {id(n) for n in members[1:]}
        modified = True
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op == "loop":
            body, changed = _fuse_scope(node.attr("body"), known, new_constants, w8a16)
            if changed:
                node, modified = node.with_attrs(body=body), True
        if id(node) in dropped:
            continue
        nodes.append(fused_at.get(id(node), node))
    return replace(graph, nodes=tuple(nodes)), modified


def make(w8a16: Collection[str] = ()) -> Pass:
    """The pass; the products of the layers named in `w8a16` fuse only with each other."""

    def scope(graph: Graph, outer: dict[str, np.ndarray], new_constants: dict[str, np.ndarray]
              ) -> tuple[Graph, bool]:
        return _fuse_scope(graph, outer, new_constants, w8a16)

    return Pass("fuse_products", requires="typed graph",
                ensures="no two products of constant weights in one scope share their input (w8a16 layers apart)",
                run=lambda graph: run_scoped(scope, graph))


PASS = make()
