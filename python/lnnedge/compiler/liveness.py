"""Emit, step 3: liveness, and from it the planner's buffer requests and the two memory plans.

A storage class is live from its first definition to its last touch in the schedule; a value read inside
a loop but defined before it stays live to the loop's END (the next iteration reads it again). The
batched part of the arena (sized per batch row) and the fixed part are planned separately; the fixed part
also holds the float32 copy of every float16 constant (lnn_init writes it; every run reads it).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..lnnb import align
from .ir import TensorType
from .planner import Plan, Request, plan
from .schedule import Schedule


def live_ranges(s: Schedule) -> dict[str, tuple[int, int]]:
    """[first, last] schedule position of every storage class (keyed by its root)."""
    loops: list[tuple[int, int]] = []
    open_loops: list[int] = []
    first_def: dict[str, int] = {}
    touches: list[tuple[str, int]] = []
    for pos, item in enumerate(s.items):
        if item.kind == "loop":
            open_loops.append(pos)
        elif item.kind == "end":
            loops.append((open_loops.pop(), pos))
        else:
            for name in (*item.node.inputs, *item.node.outputs):
                if s.is_storage(name):
                    touches.append((s.storage.find(name), pos))
            for name in item.node.outputs:
                first_def.setdefault(s.storage.find(name), pos)
    ranges: dict[str, tuple[int, int]] = {}
    for root, pos in touches:
        first = first_def.get(root, pos)
        last = pos
        for start, end in loops:
            # Defined before this loop and touched inside it: the next iteration needs it again.
            if start <= pos <= end and first < start:
                last = max(last, end)
        lo, hi = ranges.get(root, (first, last))
        ranges[root] = (min(lo, first), max(hi, last))
    return ranges


def requests(s: Schedule) -> tuple[list[Request], list[Request]]:
    """(fixed, batched) buffer requests: one per storage class not written to an output, sized by its largest
    member, over its live range."""
    ranges = live_ranges(s)
    roots: dict[str, TensorType] = {}
    for item in s.items:
        if item.kind == "node":
            for name in (*item.node.inputs, *item.node.outputs):
                if s.is_storage(name):
                    root = s.storage.find(name)
                    size = s.types[name].nbytes
                    if root not in roots or size > roots[root].nbytes:
                        roots[root] = s.types[name]
    fixed, batched = [], []
    for root, ttype in roots.items():
        if root in s.output_of:
            continue
        lo, hi = ranges[root]
        (batched if ttype.batched else fixed).append(Request(root, ttype.nbytes, lo, hi))
    return fixed, batched


def float16_copies(s: Schedule) -> list[Request]:
    """The float32 copy of every float16 constant (lnn_init writes it into the fixed part; every run reads it)."""
    used = {name for item in s.items if item.kind == "node" for name in item.node.inputs
            if name in s.constants and s.constants[name].dtype == np.float16}
    return [Request(name, 4 * s.constants[name].size, 0, len(s.items)) for name in sorted(used)]


def naive_sum(s: Schedule, batched: bool) -> int:
    """Bytes of every intermediate value in a buffer of its own (the values written to outputs aside)."""
    names = {name for item in s.items if item.kind == "node" for name in (*item.node.inputs, *item.node.outputs)
             if s.is_storage(name)}
    return sum(align(s.types[n].nbytes, 16) for n in names
               if s.types[n].batched == batched and s.storage.find(n) not in s.output_of)


def plan_memory(s: Schedule) -> tuple[Plan, Plan]:
    """(fixed plan, batched plan); each plan's naive sum counts every intermediate, also those sharing a buffer
    with their operand."""
    fixed_reqs, batched_reqs = requests(s)
    widened = float16_copies(s)
    fixed_plan, batched_plan = plan(fixed_reqs + widened), plan(batched_reqs)
    fixed_plan = replace(fixed_plan, naive=naive_sum(s, batched=False) + sum(r.size for r in widened))
    batched_plan = replace(batched_plan, naive=naive_sum(s, batched=True))
    return fixed_plan, batched_plan
