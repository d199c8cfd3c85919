"""Loop-invariant hoisting: body nodes that read nothing the loop changes move before the loop.

A value is loop-variant if it is the loop state, a step table, or computed
from one. Everything else computes the same result every iteration.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Node
from .base import Pass, PassResult


def variant(body: Graph) -> set[str]:
    """Values of a loop body that change between iterations: the state, the step tables, what is computed
    from them, and what nested loops and zeros write (a zeros buffer is written again each iteration)."""
    values = set(body.inputs) | set(body.step_tables)
    for node in body.nodes:
        if any(name in values for name in node.inputs) or node.op in ("loop", "zeros"):
            values |= set(node.outputs)
    return values


def hoist_loop(loop: Node) -> tuple[list[Node], Node]:
    body: Graph = loop.attr("body")
    changing = variant(body)
    hoisted, kept = [], []
    for node in body.nodes:
        (kept if any(out in changing for out in node.outputs) else hoisted).append(node)
    if not hoisted:
        return [], loop
    moved_types = {o: body.types[o] for n in hoisted for o in n.outputs if o in body.types}
    new_body = replace(body, nodes=tuple(kept), types={k: v for k, v in body.types.items() if k not in moved_types})
    return hoisted, loop.with_attrs(body=new_body, hoisted_types=moved_types)


def _run(graph: Graph) -> PassResult:
    nodes: list[Node] = []
    types = dict(graph.types)
    modified = False
    for node in graph.nodes:
        if node.op == "loop":
            hoisted, node = hoist_loop(node)
            if hoisted:
                modified = True
                nodes.extend(hoisted)
                types.update(node.attr("hoisted_types"))
                node = replace(node, attrs=tuple(kv for kv in node.attrs if kv[0] != "hoisted_types"))
        nodes.append(node)
    return PassResult(replace(graph, nodes=tuple(nodes), types=types), modified)


PASS = Pass("hoist", requires="lowered loops", ensures="loop bodies hold only loop-variant nodes", run=_run)
