"""Shape inference: derive every value's type from the inputs' types and each op's rule.

Each op's rule is its row's in the op table (optable.py, rules in shapes.py); the graph-carrying ops are
typed here: an `ode` by inferring its dynamics, a `loop` keeps its state's types (its body is typed first).

Requires: input and constant types. Ensures: a type for every value; where the
capture already recorded one (torch's own shape), the two must agree, so a
rule that is wrong here fails compilation instead of producing a bad file.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import CompileError, Graph, Node, TensorType
from .base import Pass, PassResult


def infer_node(node: Node, types: dict[str, TensorType], recorded: TensorType | None) -> list[TensorType]:
    ins = [types[name] for name in node.inputs]
    if node.op == "ode":
        dynamics = infer(node.attr("dynamics"), [TensorType(()), *ins])
        out = dynamics.types[dynamics.outputs[0]]
        if out != ins[0]:
            raise CompileError(f"ode: the dynamics return {out} for a state of {ins[0]}", node)
        return [ins[0]]
    if node.op == "loop":
        return list(ins)
    op = optable.find(node.op)
    if op is None or op.shape is None:
        raise CompileError(f"shape inference: no rule for op {node.op!r}", node)
    return op.shape(node, op, ins, recorded)


def infer(graph: Graph, input_types: list[TensorType] | None = None, outer: dict | None = None) -> Graph:
    """Return graph with types recomputed; input_types override the inputs' recorded types."""
    types: dict[str, TensorType] = dict(outer or {})
    for i, name in enumerate(graph.inputs):
        types[name] = input_types[i] if input_types is not None else graph.types[name]
    for name, value in graph.constants.items():
        types[name] = TensorType(tuple(value.shape), dtype="i8" if value.dtype == np.int8 else "f32")
    for name, table in graph.step_tables.items():
        types[name] = TensorType(tuple(table.shape[1:]))
    nodes = []
    for node in graph.nodes:
        if node.op == "loop":
            node = node.with_attrs(body=infer(node.attr("body"), [types[i] for i in node.inputs], outer=types))
        nodes.append(node)
        recorded = [graph.types.get(out) for out in node.outputs]
        result = infer_node(node, types, recorded[0])
        for out, inferred, rec in zip(node.outputs, result, recorded):
            if rec is not None and rec != inferred and node.subgraph is None:
                raise CompileError(f"{node.op}: inferred {inferred} but torch recorded {rec}", node)
            types[out] = inferred
    own = {k: v for k, v in types.items() if outer is None or k not in outer or k in graph.types}
    return replace(graph, nodes=tuple(nodes), types=own)


def _run(graph: Graph) -> PassResult:
    inferred = infer(graph)
    return PassResult(inferred, inferred.types != graph.types)


PASS = Pass("shape_inference", requires="input and constant types", ensures="every value has a checked type",
            run=_run)
