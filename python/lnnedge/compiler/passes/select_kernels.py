"""Choose each remaining product's kernel by its shape: the weight as stored by PyTorch, W (M, K), for the
dot-product kernels of LINEAR / MATMUL_NT, or transposed, Wt (K, M), for the outer-product kernels of
LINEAR_T / MATMUL_T.

The dot-product kernels run each output as a dot product along K (vectors along K, one lane reduction per
output): good when K is long and M small, e.g. a readout with M = 1. The outer-product kernels keep vectors of
outputs along M and add x[k] * Wt[k, :] for each k: no reduction, and at batch > 1 each weight vector
serves several rows, so they win when M fills vectors (M >= MIN_M) or K is too short for a dot product
(K < MIN_K, e.g. the input projection of a 1-input model).

Requires: typed graph. Ensures: every product of a constant weight with M >= MIN_M or K < MIN_K is a
linear_t / matmul_t. `modified` is true iff a node changed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import Graph, Node
from .base import Pass, run_scoped
from .fuse_products import part_info

MIN_M = 32  # outputs per row from which the outer-product kernels win (8 AVX2 vectors run 8 independent sums)
MIN_K = 8   # a dot product shorter than one AVX2 vector wastes most of its lanes


def _select_scope(graph: Graph, outer: dict[str, np.ndarray], new_constants: dict[str, np.ndarray]
                  ) -> tuple[Graph, bool]:
    known = {**outer, **graph.constants}
    modified = False
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op == "loop":
            body, changed = _select_scope(node.attr("body"), known, new_constants)
            if changed:
                node, modified = node.with_attrs(body=body), True
        transposed = optable.get(node.op).transposed
        w = known.get(node.inputs[1]) if transposed else None
        if w is not None and w.ndim == 2 and w.dtype == np.float32 and (w.shape[0] >= MIN_M or w.shape[1] < MIN_K):
            name = f"{node.inputs[1]}/t"
            new_constants[name] = np.ascontiguousarray(w.T)
            module = node.attr("module") or ""
            attrs = {**dict(node.attrs), "splits": (int(w.shape[0]),), "modules": (module,),
                     "parts": (part_info(node),)}
            node = replace(node, op=transposed, inputs=(node.inputs[0], name, *node.inputs[2:]),
                           attrs=tuple(attrs.items()))
            modified = True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)), modified


PASS = Pass("select_kernels", requires="typed graph",
            ensures=f"products with M >= {MIN_M} or K < {MIN_K} use the transposed-weight kernels",
            run=lambda graph: run_scoped(_select_scope, graph))
