"""The pass pipeline: one flat, ordered list. Each pass is Graph -> Graph."""

from __future__ import annotations

from dataclasses import dataclass

from .ir import Graph
from .passes import const_fold, dce, hoist, lower_ode, shape_inference, split_concat
from .passes.base import Pass

PIPELINE: tuple[Pass, ...] = (
    shape_inference.PASS,  # re-derive every shape and check it against torch's
    const_fold.PASS,       # e.g. tau = tau_min + exp(log_tau) becomes one constant
    dce.PASS,              # the parameters folded away are no longer needed
    lower_ode.PASS,        # ODE blocks -> bounded solver loops around the inlined dynamics
    split_concat.PASS,     # the VM's CONCAT is binary
    shape_inference.PASS,  # type the new loop bodies
    hoist.PASS,            # loop-invariant work moves before the loop
    const_fold.PASS,       # fold what hoisting exposed
    dce.PASS,
    shape_inference.PASS,  # final check: the emitter relies on every type
)


@dataclass(frozen=True)
class PassLog:
    name: str
    modified: bool
    nodes: int


def count_nodes(graph: Graph) -> int:
    total = 0
    for node in graph.nodes:
        total += 1
        if node.op == "loop":
            total += count_nodes(node.attr("body"))
        elif node.op == "ode":
            total += count_nodes(node.attr("dynamics"))
    return total


def run(graph: Graph, verifier=None) -> tuple[Graph, list[PassLog]]:
    """Run every pass in order; `verifier(graph)` (tests) runs between passes."""
    log = []
    for p in PIPELINE:
        result = p.run(graph)
        graph = result.graph
        log.append(PassLog(p.name, result.modified, count_nodes(graph)))
        if verifier is not None:
            verifier(graph, p.name)
    return graph, log
