"""Quantize the weights of chosen linear layers to int8 (see lnnedge/quantize.py for the scheme).

A `linear` whose weight is a constant and whose module is in the set becomes
`linear_q8(x, q, scale, bias)`: q an int8 constant, scale a float32 constant
per output row. Requires: linear nodes tagged with their module (capture does
that). Ensures: those layers' weights are stored as int8.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...quantize import quantize_weight
from ..ir import Graph, Node, TensorType
from .base import Pass, PassResult


def make(modules: frozenset[str]) -> Pass:
    def run(graph: Graph) -> PassResult:
        out, modified = _quantize(graph, modules)
        return PassResult(out, modified)

    return Pass("quantize_weights", requires="linear nodes tagged with their module",
                ensures=f"weights of {', '.join(sorted(modules)) or 'no module'} are int8", run=run)


def _quantize(graph: Graph, modules: frozenset[str]) -> tuple[Graph, bool]:
    constants, types = dict(graph.constants), dict(graph.types)
    nodes: list[Node] = []
    modified = False
    for node in graph.nodes:
        sub = "dynamics" if node.op == "ode" else "body" if node.op == "loop" else None
        if sub:
            inner, changed = _quantize(node.attr(sub), modules)
            if changed:
                node, modified = node.with_attrs(**{sub: inner}), True
        weight = node.inputs[1] if node.op in ("linear", "matmul_nt") else None
        if weight is not None and node.attr("module") in modules and weight in constants:
            qw = quantize_weight(constants[weight])
            q_name, s_name = f"{weight}/q8", f"{weight}/scale"
            constants[q_name], constants[s_name] = qw.q, qw.scale
            types[q_name] = TensorType(tuple(qw.q.shape), dtype="i8")
            types[s_name] = TensorType(tuple(qw.scale.shape))
            if node.op == "linear":
                bias = node.inputs[2]
            else:
                bias = f"{weight}/zero_bias"
                constants[bias] = np.zeros(qw.scale.shape, np.float32)
                types[bias] = TensorType(tuple(qw.scale.shape))
            node = replace(node, op="linear_q8", inputs=(node.inputs[0], q_name, s_name, bias))
            modified = True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes), constants=constants, types=types), modified
