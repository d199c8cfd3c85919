"""Constant folding: a node whose inputs are all constants becomes a constant.

Computed with the same float32 numpy kernels as the reference VM, so folding
changes no result. The LTC's tau = tau_min + exp(log_tau) is folded this way:
the device never evaluates that exp. Runs inside ODE dynamics and loop bodies
too (a body may read constants of its own and of the enclosing graph).

Not folded: the products of w8a16 layers (make(keep)), whose arithmetic (the input row rounded to 16 bits)
is not kernels_np.linear's: the device computes them (store_w8a16 makes them w8a16 products).
"""

from __future__ import annotations

from collections.abc import Collection
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


def fold(graph: Graph, outer_constants: dict[str, np.ndarray] | None = None, keep: Collection[str] = ()
         ) -> tuple[Graph, bool]:
    foldable = optable.names(lambda op: op.fold is not None)
    known = dict(outer_constants or {})
    known.update(graph.constants)
    constants = dict(graph.constants)
    nodes: list[Node] = []
    modified = False
    for node in graph.nodes:
        sub = "dynamics" if node.op == "ode" else "body" if node.op == "loop" else None
        if sub:
            inner, changed = fold(node.attr(sub), known, keep)
            if changed:
                node = node.with_attrs(**{sub: inner})
                modified = True
        if (node.op in foldable and node.inputs and all(name in known for name in node.inputs)
                and node.attr("module") not in keep):
            value = evaluate(node, [known[name] for name in node.inputs])
            known[node.output] = constants[node.output] = value
            modified = True
            continue
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes), constants=constants), modified


def make(keep: Collection[str] = ()) -> Pass:
    """The pass; the products of the layers named in `keep` (w8a16) are not folded."""

    def run(graph: Graph) -> PassResult:
        folded, modified = fold(graph, keep=keep)
        return PassResult(folded, modified)

    kept = f", except the products of {', '.join(sorted(keep))}" if keep else ""
    return Pass("const_fold", requires="typed graph", ensures=f"no node has only constant inputs{kept}", run=run)


PASS = make()
