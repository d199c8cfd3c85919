"""Peel the first iteration of a loop that starts from zeros, and drop the work zeros make trivial.

A solver loop whose state starts as `zeros` (the LTC's h0 = 0) runs its first step on a known value: the
product h . W is exactly zero, so is -h, and h + y is y. This pass runs iteration 0 once before the loop (its
step-table rows become constants), simplifies it with what is known to be zero, and leaves count - 1
iterations in the loop, starting from the peeled iteration's result. For the LTC the first of the nine
products (a quarter of the work at batch 1 is that product) disappears.

Simplifications, each exact (up to the sign of a zero result; NaN and inf cannot come out of a zero):
  matmul_nt / matmul_t of a zero input with finite constant weights  ->  zeros
  add(a, 0), add(0, a), sub(a, 0) of a's type                         ->  a
  neg(0)                                                              ->  0
(mul(a, 0) is not simplified: a may be inf or NaN.)
The products of w8a16 layers (rounded to 16 bits per input row on the device, store_w8a16, which runs later)
are simplified too: they are never split (split_linear), so a product whose input is the zero state reads a
whole row of zeros, which rounds to zeros (max |x| = 0: exponent 0, every xq 0), and its integer sums are 0:
zeros exactly, as the PyTorch model's rounded row gives. No product here sees only part of its row; a w8a16
product of cat([x, h0]) keeps its zeros here and loses them in store_w8a16, which shows the bits are the same.

Requires: typed graph, lowered loops, before fuse_products (products are still single). Ensures: no top-level
loop whose initial state is a zeros value runs its first iteration from it. `modified` is true iff a loop was
peeled.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import Graph, Node, TensorType
from .base import Pass, PassResult

_ZERO_PRODUCTS = optable.names(lambda op: bool(op.weight) and not op.int8 and not op.bias)  # x . W, no bias


def _peel(graph: Graph, loop: Node, zeros: set[str]) -> tuple[list[Node], Node, dict[str, np.ndarray],
                                                             dict[str, TensorType]]:
    """(the peeled, simplified iteration's nodes, the shortened loop, new constants, new types)."""
    body: Graph = loop.attr("body")
    prefix = f"{loop.output}/peel"
    rename: dict[str, str] = dict(zip(body.inputs, loop.inputs))
    constants: dict[str, np.ndarray] = {}
    for name, table in body.step_tables.items():
        rename[name] = f"{prefix}/{name.rsplit('/', 1)[-1]}0"
        constants[rename[name]] = np.array(table[0], dtype=np.float32)  # row 0, its own shape
    known = {**graph.constants, **constants}
    zero = {rename[i] for i in body.inputs if rename[i] in zeros}
    types = dict(graph.types)
    new_types: dict[str, TensorType] = {}
    nodes: list[Node] = []
    for node in body.nodes:
        inputs = tuple(rename.get(i, i) for i in node.inputs)
        outs = tuple(f"{prefix}/{o}" for o in node.outputs)
        for o, new in zip(node.outputs, outs):
            rename[o] = new
            if o in body.types:
                new_types[new] = types[new] = body.types[o]
        x = inputs[0] if inputs else None
        if (node.op in _ZERO_PRODUCTS and x in zero and inputs[1] in known
                and np.all(np.isfinite(known[inputs[1]]))):
            for o in outs:  # x . W = 0 exactly
                zero.add(o)
                nodes.append(Node("zeros", (), (o,), (), node.source))
            continue
        if node.op == "neg" and x in zero:
            zero.add(outs[0])
            nodes.append(Node("zeros", (), outs, (), node.source))
            continue
        if node.op in ("add", "sub") and len(outs) == 1:
            a, b = inputs
            keep = a if b in zero else b if a in zero and node.op == "add" else None
            if keep is not None and types.get(keep) == types.get(outs[0]) is not None:
                rename[node.outputs[0]] = keep  # a + 0 = a
                new_types.pop(outs[0], None)
                continue
        # a peeled copy is one solver step, not a layer's loop-invariant part: no per-part trace comparison
        attrs = tuple(kv for kv in node.attrs if kv[0] not in ("part_of", "cols", "has_bias"))
        nodes.append(replace(node, inputs=inputs, outputs=outs, attrs=attrs))
    state = tuple(rename.get(o, o) for o in body.outputs)
    tables = {name: table[1:] for name, table in body.step_tables.items()}
    shorter = loop.with_attrs(count=loop.attr("count") - 1, body=replace(body, step_tables=tables))
    return nodes, replace(shorter, inputs=state), constants, new_types


def peel(graph: Graph) -> tuple[Graph, bool]:
    zeros = {n.output for n in graph.nodes if n.op == "zeros"}
    nodes: list[Node] = []
    constants, types = dict(graph.constants), dict(graph.types)
    modified = False
    for node in graph.nodes:
        body = node.attr("body") if node.op == "loop" else None
        # a loop its flag ends (until) runs its first trip like every other: not peeled
        if (body is not None and node.attr("count", 0) >= 2 and any(i in zeros for i in node.inputs)
                and not node.attr("until")
                and not any(n.op == "loop" for n in body.nodes)):
            peeled, node, extra, extra_types = _peel(replace(graph, constants=constants, types=types), node,
                                                     zeros)
            nodes.extend(peeled)
            constants.update(extra)
            types.update(extra_types)
            modified = True
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes), constants=constants, types=types), modified


def _run(graph: Graph) -> PassResult:
    out, modified = peel(graph)
    return PassResult(out, modified)


PASS = Pass("peel_zero_state", requires="typed graph with lowered loops, single products",
            ensures="no loop runs its first iteration from a zeros state", run=_run)
