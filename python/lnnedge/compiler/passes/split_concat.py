"""Split an n-ary concat into a chain of binary ones: the VM's CONCAT takes two operands."""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Node
from .base import Pass, PassResult


def split(graph: Graph) -> tuple[Graph, bool]:
    nodes: list[Node] = []
    modified = False
    for node in graph.nodes:
        if node.op == "loop":
            body, changed = split(node.attr("body"))
            node = node.with_attrs(body=body) if changed else node
            modified |= changed
        if node.op == "concat" and len(node.inputs) > 2:
            acc = node.inputs[0]
            for i, name in enumerate(node.inputs[1:-1]):
                part = f"{node.output}/part{i}"
                nodes.append(replace(node, inputs=(acc, name), outputs=(part,)))
                acc = part
            node = replace(node, inputs=(acc, node.inputs[-1]))
            modified = True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)), modified


def _run(graph: Graph) -> PassResult:
    out, modified = split(graph)
    return PassResult(out, modified)


PASS = Pass("split_concat", requires="lowered graph", ensures="every concat has two operands", run=_run)
