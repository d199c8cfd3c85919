"""Emit, steps 1-2: storage and schedule.

  1. storage: decide which values share one buffer (loop state with its initial value, final value and
     in-place update; an element-wise op outside loops with the operand it overwrites) and which land
     directly in an output tensor;
  2. schedule: flatten the graph and its loop bodies into one list of items (node, loop, end), inserting
     the copies step 1 could not avoid.

The result, a Schedule, is what liveness.py plans memory for and encode.py turns into bytecode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import optable
from .ir import Graph, Node, TensorType, free_values


@dataclass(frozen=True)
class Item:
    kind: str  # "node" | "loop" | "end" | "until" (node: its flag as the one input)
    node: Node | None = None
    count: int = 0
    until: bool = False  # a loop that its "until" item ends (LOOPW)


class Storage:
    """Storage classes: values that share one buffer (a union-find over value names)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(b)] = self.find(a)

    def members(self, root: str) -> list[str]:
        return [v for v in self.parent if self.find(v) == root]


@dataclass
class Schedule:
    graph: Graph
    types: dict[str, TensorType]           # every value's, the output copies' included
    inputs: dict[str, int]                 # input value -> input number (state inputs aside)
    state_inputs: dict[str, str]           # state input -> the output that updates it
    state_outputs: set[int]
    state_offset: dict[str, int]           # state input -> its byte offset in a batch row of the state
    constants: dict[str, np.ndarray]
    tables: dict[str, np.ndarray] = field(default_factory=dict)  # step tables of every loop
    storage: Storage = field(default_factory=Storage)
    output_of: dict[str, int] = field(default_factory=dict)      # storage class root -> output number
    items: list[Item] = field(default_factory=list)

    def is_storage(self, name: str) -> bool:
        """A value that needs a buffer in the arena (or an output)."""
        return (name not in self.inputs and name not in self.constants and name not in self.tables
                and name not in self.state_inputs)


def _readers(nodes: tuple[Node, ...], name: str) -> list[int]:
    return [i for i, n in enumerate(nodes) if name in n.inputs]


class _Scheduler:
    def __init__(self, graph: Graph, state: tuple[tuple[int, int], ...]):
        types = {k: v for scope in graph.scopes() for k, v in scope.types.items()}
        # state: (input, output) pairs; the input is a STATE tensor that the output is copied into at the end
        state_inputs = {graph.inputs[i]: graph.outputs[j] for i, j in state}
        state_offset: dict[str, int] = {}
        for name in state_inputs:
            state_offset[name] = sum(types[n].nbytes for n in state_offset)
        inputs = {name: i for i, name in enumerate(n for n in graph.inputs if n not in state_inputs)}
        self.s = Schedule(graph, types, inputs, state_inputs, {j for _, j in state}, state_offset,
                          dict(graph.constants))
        self.top_users: dict[str, int] = {}
        for node in graph.nodes:
            # a loop body's reads of outer values count too: a loop's initial state may share its buffer
            # with the state only if nothing else reads it (the body may, when the first iteration was peeled)
            for name in (*node.inputs, *sorted(free_values(node))):
                self.top_users[name] = self.top_users.get(name, 0) + 1
        self.in_place = optable.names(lambda op: op.in_place == "type")

    def schedule(self, graph: Graph, top: bool) -> None:
        s = self.s
        producers = graph.producers()
        for node in graph.nodes:
            if node.op != "loop":
                s.items.append(Item("node", node))
                continue
            body: Graph = node.attr("body")
            s.tables.update(body.step_tables)
            for init, state, final in zip(node.inputs, body.inputs, node.outputs):
                s.storage.union(state, final)
                init_node = producers.get(init)
                if (top and init_node is not None and init_node.op != "loop" and s.is_storage(init)
                        and self.top_users.get(init, 0) == 1 and init not in s.graph.outputs):
                    s.storage.union(state, init)
                else:
                    s.items.append(Item("node", Node("copy", (init,), (state,), source=node.source)))
            until = node.attr("until", False)
            s.items.append(Item("loop", count=node.attr("count"), until=until))
            self.schedule(body, top=False)
            for state, update in zip(body.inputs, body.outputs):
                if not self._can_update_in_place(body, state, update):
                    s.items.append(Item("node", Node("copy", (update,), (state,), source=node.source)))
                elif update != state:
                    s.storage.union(state, update)
            if until:  # the loop's last state is its end flag, read after the trip's updates
                s.items.append(Item("until", Node("until", (body.inputs[-1],), (), source=node.source)))
            s.items.append(Item("end"))

    def _can_update_in_place(self, body: Graph, state: str, update: str) -> bool:
        """The state buffer may receive `update` directly if nothing reads the old state afterwards (the end of
        the iteration does when the old state is another state's update, e.g. a solver's history shifting)."""
        index = next((i for i, n in enumerate(body.nodes) if update in n.outputs), None)
        if index is None or body.nodes[index].op not in self.in_place or state in body.outputs:
            return False
        later_reads = [i for i in _readers(body.nodes, state) if i > index]
        return not later_reads and body.outputs.count(update) == 1

    def assign_outputs(self) -> None:
        """Outputs written directly by their producing node where possible, else copied at the end."""
        s = self.s
        producers = s.graph.producers()
        for state, update in s.state_inputs.items():  # after every read of the old state
            s.items.append(Item("node", Node("copy", (update,), (state,))))
        numbered = [name for j, name in enumerate(s.graph.outputs) if j not in s.state_outputs]
        for k, name in enumerate(numbered):
            root = s.storage.find(name)
            node = producers.get(name)
            direct = (node is not None and node.op != "loop" and s.is_storage(name)
                      and root not in s.output_of and len(s.storage.members(root)) <= 1)
            if direct:
                s.output_of[root] = k
            else:
                alias = f"output{k}"
                s.types[alias] = s.types[name]
                s.items.append(Item("node", Node("copy", (name,), (alias,))))
                s.output_of[s.storage.find(alias)] = k

    def merge_in_place(self) -> int:
        """Outside loops, an op that may write over an operand (the op table's in_place: element-wise ops of the
        operand's type, a reshape of its byte size) does so when no later instruction reads that operand: the two
        values share one buffer. The VM allows exactly this overlap (the same byte range) for these ops, and
        their kernels read an element before writing its slot. Returns the number merged."""
        s = self.s
        reads: dict[str, int] = {}  # value -> last schedule position that reads it (inside loops too)
        depth_at: list[int] = []
        depth = 0
        for pos, item in enumerate(s.items):
            depth += item.kind == "loop"
            depth -= item.kind == "end"
            depth_at.append(depth)
            if item.kind == "node":
                for name in item.node.inputs:
                    reads[name] = pos
        in_loops = {name for pos, item in enumerate(s.items) if item.kind == "node" and depth_at[pos] > 0
                    for name in (*item.node.inputs, *item.node.outputs)}
        merged = 0
        for pos, item in enumerate(s.items):
            node = item.node
            mode = optable.get(node.op).in_place if item.kind == "node" else ""
            if (not mode or depth_at[pos] > 0 or len(node.outputs) != 1
                    or not s.is_storage(node.output) or s.storage.find(node.output) in s.output_of
                    or node.output in s.graph.outputs):
                continue
            out_t = s.types[node.output]
            for name in node.inputs:
                t = s.types.get(name)
                fits = t is not None and (t == out_t if mode == "type" else
                                          (t.nbytes, t.batched) == (out_t.nbytes, out_t.batched))
                root = s.storage.find(name)
                if (fits and s.is_storage(name) and reads.get(name) == pos and name not in in_loops
                        and root not in s.output_of and name not in s.graph.outputs
                        and all(m not in in_loops for m in s.storage.members(root))):
                    s.storage.union(name, node.output)
                    merged += 1
                    break
        return merged


def schedule(graph: Graph, state: tuple[tuple[int, int], ...] = ()) -> Schedule:
    """Storage decisions and the flat schedule of `graph` (state pairs as in emit.emit)."""
    scheduler = _Scheduler(graph, state)
    scheduler.schedule(graph, top=True)
    scheduler.assign_outputs()
    scheduler.merge_in_place()
    return scheduler.s
