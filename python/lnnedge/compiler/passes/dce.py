"""Dead code elimination: drop nodes and constants that no output depends on."""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, free_values
from .base import Pass, PassResult


def eliminate(graph: Graph, extra_live: set[str] = frozenset()) -> Graph:
    live = set(graph.outputs) | set(extra_live)
    kept = []
    for node in reversed(graph.nodes):
        if not any(out in live for out in node.outputs):
            continue
        if node.op == "loop":
            node = node.with_attrs(body=eliminate(node.attr("body")))
        kept.append(node)
        live |= set(node.inputs) | free_values(node)
    kept.reverse()
    constants = {k: v for k, v in graph.constants.items() if k in live}
    tables = {k: v for k, v in graph.step_tables.items() if k in live}
    types = {k: v for k, v in graph.types.items() if k not in graph.constants or k in constants}
    return replace(graph, nodes=tuple(kept), constants=constants, step_tables=tables, types=types)


def _run(graph: Graph) -> PassResult:
    cleaned = eliminate(graph)
    changed = len(cleaned.nodes) != len(graph.nodes) or cleaned.constants.keys() != graph.constants.keys()
    return PassResult(cleaned, changed)


PASS = Pass("dce", requires="nothing", ensures="every node and constant contributes to an output", run=_run)
