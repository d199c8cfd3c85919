"""Fuse chains of element-wise ops into one `ewise` node: a small program the VM runs in one pass over the
data (EWISEn, format in vm/include/lnn_format.h).

In one scope, a group grows from a root element-wise node backwards: the producer of one of its inputs joins
when it is element-wise too, computes a value of the root's type, and nothing outside the group reads that
value. The group becomes one node placed where the root was, reading the group's outside inputs (its
operands) and writing the root's value; intermediates live in the kernel's registers, never in the arena.
Every operand must be of the root's shape, a row of it or a single value (the VM's broadcast modes for
EWISE), and a group stays within the VM's limits: 8 operands, 32 instructions, 8 registers.

For the LTC this turns the whole step after the product - gate = sigmoid(mg + pg), cand = mc + pc,
f = (-h + cand * gate) / tau and the Euler update h + dt * f - into one instruction that updates h in place.

Before grouping, add(neg(x), b) and add(b, neg(x)) become sub(b, x) when nothing else reads neg(x): IEEE
subtraction is the addition of the negation and addition commutes, so the result is the same bits, one
instruction fewer (the LTC's -h + cand * gate).

Numerics: each program instruction rounds exactly as the op it replaces, so fusion changes no bit.

Requires: typed graph. Ensures: no element-wise node computes a value that only one other element-wise node
of its group reads. `modified` is true iff a group was formed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from ... import isa
from .. import optable
from ..ir import Graph, Node, TensorType, free_values
from .base import Pass, PassResult

ELEMENTWISE = optable.names(lambda op: op.program)  # the ops a program may contain
_EWISE = optable.get("ewise")
MAX_OPERANDS = max(n for n in range(1, 256) if _EWISE.opcode_for(n) in isa.opcodes())  # EWISE1 .. EWISEn
MAX_INSNS = isa.const("EW_MAX_INSNS")
MAX_REGS = isa.const("EW_MAX_REGS")


def operand_mode(t: TensorType, out: TensorType) -> str | None:
    """How EWISE reads an operand of type t for an output of type out: 'same', 'row', 'scalar' or None."""
    if t.dtype != "f32" or len(t.shape) > len(out.shape):
        return None
    if t.batched:
        return "same" if out.batched and t.shape == out.shape else None
    if t.elems == 1:
        return "scalar"
    dims = list(t.shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    tail = list(out.shape[len(out.shape) - len(dims):])
    if tail != dims or (out.batched and len(dims) == len(out.shape)):
        return None
    return "same" if not out.batched and t.elems == out.elems else "row"


def program_of(members: list[Node]) -> tuple[tuple[str, ...], tuple[tuple[str, int, int, int], ...], int]:
    """(operands, program, registers) of a group in execution order, its root last."""
    produced = {n.output for n in members}
    operands: list[str] = []
    for n in members:
        for v in n.inputs:
            if v not in produced and v not in operands:
                operands.append(v)
    last_use = {v: i for i, n in enumerate(members) for v in n.inputs}
    reg_of: dict[str, int] = {}
    free: list[int] = []
    nregs = 0
    program = []
    for i, n in enumerate(members):
        srcs = [operands.index(v) if v in operands else len(operands) + reg_of[v] for v in n.inputs]
        for v in dict.fromkeys(n.inputs):  # registers read for the last time here are free again
            if v in reg_of and last_use[v] == i:
                free.append(reg_of[v])
        if i + 1 == len(members):
            d = 0
        else:
            d = free.pop() if free else nregs
            nregs = max(nregs, d + 1)
            reg_of[n.output] = d
        program.append((n.op, d, srcs[0], srcs[1] if optable.get(n.op).operands == 2 else 0))
    return tuple(operands), tuple(program), nregs


def _fits(members: list[Node], types: dict[str, TensorType], out: TensorType) -> bool:
    operands, program, nregs = program_of(members)
    return (len(operands) <= MAX_OPERANDS and len(program) <= MAX_INSNS and nregs <= MAX_REGS
            and all(v in types and operand_mode(types[v], out) is not None for v in operands))


def _sub_of_neg(nodes: list[Node], uses: Counter[str]) -> bool:
    """add(neg(x), b) / add(b, neg(x)) -> sub(b, x) where the neg has no other reader (exact)."""
    negs = {n.output: n for n in nodes if n.op == "neg"}
    changed = False
    for i, node in enumerate(nodes):
        if node.op != "add":
            continue
        for k in (0, 1):
            neg = negs.get(node.inputs[k])
            if neg is not None and uses[neg.output] == 1 and node.inputs[1 - k] != neg.output:
                nodes[i] = Node("sub", (node.inputs[1 - k], neg.inputs[0]), node.outputs, node.attrs, node.source)
                uses[neg.output] -= 1
                uses[neg.inputs[0]] += 1
                changed = True
                break
    return changed


def _fuse_scope(graph: Graph, outer_types: dict[str, TensorType]) -> tuple[Graph, bool]:
    types = {**outer_types, **graph.types}
    modified = False
    nodes = list(graph.nodes)
    for i, node in enumerate(nodes):
        if node.op == "loop":
            body, changed = _fuse_scope(node.attr("body"), types)
            if changed:
                nodes[i], modified = node.with_attrs(body=body), True
    uses: Counter[str] = Counter()
    for node in nodes:
        uses.update(node.inputs)
        uses.update(free_values(node))
    uses.update(graph.outputs)
    if _sub_of_neg(nodes, uses):
        nodes = [n for n in nodes if not (n.op == "neg" and uses[n.output] == 0)]
        modified = True
    producer = {out: i for i, node in enumerate(nodes) for out in node.outputs}
    taken: set[int] = set()
    fused: dict[int, Node] = {}
    for root_index in reversed(range(len(nodes))):
        root = nodes[root_index]
        out = types.get(root.output)
        if root_index in taken or root.op not in ELEMENTWISE or out is None:
            continue
        group = {root_index}
        grown = True
        while grown:
            grown = False
            # in the group's order, not a set's: the file must not depend on PYTHONHASHSEED
            for v in dict.fromkeys(v for m in sorted(group) for v in nodes[m].inputs):
                p = producer.get(v)
                if p is None or p in group or p in taken or nodes[p].op not in ELEMENTWISE or types.get(v) != out:
                    continue
                if sum(nodes[m].inputs.count(v) for m in group) != uses[v]:
                    continue  # read outside the group
                candidate = group | {p}
                if _fits([nodes[m] for m in sorted(candidate)], types, out):
                    group, grown = candidate, True
        members = [nodes[m] for m in sorted(group)]
        if len(members) < 2 or not _fits(members, types, out):
            continue
        operands, program, nregs = program_of(members)
        fused[root_index] = Node(_EWISE.name, operands, (root.output,), (("program", program), ("regs", nregs)),
                                 root.source)
        taken |= group
        modified = True
    kept = [fused.get(i, node) for i, node in enumerate(nodes) if i not in taken or i in fused]
    dropped = {o for i in taken - fused.keys() for o in nodes[i].outputs}
    return replace(graph, nodes=tuple(kept), types={k: v for k, v in graph.types.items() if k not in dropped}), \
        modified


def fuse(graph: Graph) -> tuple[Graph, bool]:
    return _fuse_scope(graph, {})


def _run(graph: Graph) -> PassResult:
    out, modified = fuse(graph)
    return PassResult(out, modified)


PASS = Pass("fuse_elementwise", requires="typed graph",
            ensures="element-wise chains whose intermediates nothing else reads are one ewise node", run=_run)
