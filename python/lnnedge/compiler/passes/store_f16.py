"""Store the weights of the given layers as float16.

The compiler is given the model whose layers' weights are already rounded to float16
(quantize.fake_quantize with the f16 scheme); the passes before this one only slice, stack and transpose
them, so each product of those layers still has a float16-exact weight and this pass stores it so
(DT_F16: half the bytes; the VM widens it to float32 once at load). The check is bit for bit: a weight
float16 cannot hold exactly is an error, never silently rounded, so the device computes what the
float16 PyTorch model does.

Requires: products tagged with their layers, the final weight layout (after select_kernels). Ensures:
the weight of every product of those layers is float16.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import CompileError, Graph, Node
from .base import Pass, run_scoped
from .store_int8 import layers_of

PRODUCTS = optable.names(lambda op: bool(op.weight) and not op.int8)  # the float products


def _half(w: np.ndarray, node: Node) -> np.ndarray:
    half = w.astype(np.float16)
    if not np.array_equal(half.astype(np.float32), w):
        raise CompileError("store_f16: a weight is not float16-exact (compile the model returned by "
                           "quantize.fake_quantize with the f16 scheme)", node)
    return half


def _store_scope(graph: Graph, known: dict[str, np.ndarray], layers: Collection[str],
                 new_constants: dict[str, np.ndarray]) -> tuple[Graph, bool]:
    known = {**known, **graph.constants}
    modified = False
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op == "loop":
            body, changed = _store_scope(node.attr("body"), known, layers, new_constants)
            if changed:
                node, modified = node.with_attrs(body=body), True
        w = known.get(node.inputs[1]) if node.op in PRODUCTS else None
        if w is not None and w.dtype == np.float32 and all(name in layers for name in layers_of(node)):
            name = f"{node.inputs[1]}/f16"
            new_constants[name] = _half(w, node)
            node = replace(node, inputs=(node.inputs[0], name, *node.inputs[2:]))
            modified = True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)), modified


def make(layers: Collection[str]) -> Pass:
    """The pass for the layers named in `layers`."""

    def scope(graph: Graph, known: dict[str, np.ndarray], new_constants: dict[str, np.ndarray]
              ) -> tuple[Graph, bool]:
        return _store_scope(graph, known, layers, new_constants)

    return Pass("store_f16", requires="products tagged with their layers, the final weight layout",
                ensures=f"float16 weights for {', '.join(sorted(layers)) or 'no layer'}",
                run=lambda graph: run_scoped(scope, graph))
