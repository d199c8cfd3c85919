"""Constant folding: a node whose inputs are all constants becomes a constant.

Computed with the same float32 numpy kernels as the reference VM, so folding
changes no result. The LTC's tau = tau_min + exp(log_tau) is folded this way:
the device never evaluates that exp. Runs inside ODE dynamics and loop bodies
too (a body may read constants of its own and of the enclosing graph).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import Graph, Node
from .base import Pass, PassResult


def evaluate(node: Node, args: list[np.ndarray]) -> np.ndarray:
    """The op's fold rule (its row in the op table): the kernels_np arithmetic."""
    fold = optable.get(node.op).fold
    assert fold is not None
    return fold(node, args)


def fold(graph: Graph, outer_constants: dict[str, np.ndarray] | None = None) -> tuple[Graph, bool]:
    foldable = optable.names(lambda op: op.fold is not None)
    known = dict(outer_constants or {})
    known.update(graph.constants)
    constants = dict(graph.constants)
    nodes: list[Node] = []
    modified = False
    for node in graph.nodes:
        sub = "dynamics" if node.op == "ode" else "body" if node.op == "loop" else None
        if sub:
            inner, changed = fold(node.attr(sub), known)
            if changed:
                node = node.with_attrs(**{sub: inner})
                modified = True
        if node.op in foldable and node.inputs and all(name in known for name in node.inputs):
            value = evaluate(node, [known[name] for name in node.inputs])
            known[node.output] = constants[node.output] = value
            modified = True
            continue
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes), constants=constants), modified


def _run(graph: Graph) -> PassResult:
    folded, modified = fold(graph)
    return PassResult(folded, modified)


PASS = Pass("const_fold", requires="typed graph", ensures="no node has only constant inputs", run=_run)
