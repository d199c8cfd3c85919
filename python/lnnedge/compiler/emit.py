"""Emit: a lowered, typed graph -> tensor table + constant pool + stack bytecode.

Steps, in order, each in its own module:
  1-2. schedule.py: storage (which values share one buffer, which land directly in an output) and the
       flat schedule of the graph and its loop bodies, with the copies storage could not avoid;
  3.   liveness.py: live ranges -> the planner's requests -> the fixed and the batched memory plan;
  4.   encode.py: the tensor table, the constant pool and the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import isa
from ..lnnb import Program
from .encode import encode
from .ir import CompileError, Graph
from .liveness import plan_memory
from .planner import Plan
from .schedule import Item, schedule


@dataclass(frozen=True)
class Emitted:
    program: Program
    tensor_names: tuple[str, ...]
    fixed_plan: Plan
    batched_plan: Plan
    schedule: tuple[Item, ...]
    debug: tuple[dict, ...] = ()  # per compute instruction: pc, op, value, source line, module (debuginfo.py)


def _check_state(graph: Graph, state: tuple[tuple[int, int], ...]) -> None:
    if len(graph.inputs) > isa.const("MAX_IO") or len(graph.outputs) > isa.const("MAX_IO"):
        raise CompileError(f"at most {isa.const('MAX_IO')} inputs and outputs are supported")
    for i, j in state:
        if not (0 <= i < len(graph.inputs) and 0 <= j < len(graph.outputs)):
            raise CompileError(f"state pair (input {i}, output {j}) names no such input or output")
        if graph.types[graph.inputs[i]] != graph.types[graph.outputs[j]]:
            raise CompileError(f"state input {i} {graph.types[graph.inputs[i]]} and its update, output {j} "
                               f"{graph.types[graph.outputs[j]]}, differ")
    if len({i for i, _ in state}) != len(state) or len({j for _, j in state}) != len(state):
        raise CompileError("each state input and output may appear in one state pair only")
    if len(state) >= len(graph.inputs) or len(state) >= len(graph.outputs):
        raise CompileError("a stateful model needs at least one input and one output besides its state")


def emit(graph: Graph, state: tuple[tuple[int, int], ...] = ()) -> Emitted:
    """`state` pairs (input i, output j): input i is persistent state that output j updates after each run."""
    _check_state(graph, tuple(state))
    scheduled = schedule(graph, tuple(state))
    fixed_plan, batched_plan = plan_memory(scheduled)
    encoded = encode(scheduled, fixed_plan, batched_plan)
    return Emitted(encoded.program, encoded.names, fixed_plan, batched_plan, tuple(scheduled.items), encoded.debug)
