"""Emit: a lowered, typed graph -> tensor table + constant pool + stack bytecode.

Steps, in order:
  1. storage: decide which values share one buffer (loop state with its
     initial value, final value and in-place update) and which land directly
     in an output tensor;
  2. schedule: flatten the graph and its loop bodies into one list of items,
     inserting the copies step 1 could not avoid;
  3. liveness + planning: a value read inside a loop but defined before it
     stays live to the loop's END (the next iteration reads it again); the
     batched and the fixed part of the arena are planned separately;
  4. tensor table and code: PUSH operands, one op per node writing its planned
     destination; a result still on top of the stack is not pushed again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import isa
from ..lnnb import Program, TensorEntry, align
from .ir import CompileError, Graph, Node, TensorType, free_values
from .planner import Plan, Request, plan

_CONST_DTYPES = {np.dtype(np.float32): ("<f4", "DT_F32"), np.dtype(np.uint32): ("<u4", "DT_U32"),
                 np.dtype(np.int8): ("<i1", "DT_I8"), np.dtype(np.float16): ("<f2", "DT_F16")}
_DSTN_OPS = ("linear_t", "matmul_t", "linear_tq8", "matmul_tq8", "split")  # columns over destinations
_ELEMENTWISE = {"add", "sub", "mul", "div", "neg", "exp", "sigmoid", "tanh", "relu", "ewise"}
_IN_PLACE = _ELEMENTWISE | {"reshape"}  # may write over an operand of exactly their output's bytes
_OPCODE = {
    "linear": "LINEAR", "matmul_nt": "MATMUL_NT", "linear_t": "LINEAR_T", "matmul_t": "MATMUL_T",
    "linear_q8": "LINEAR_Q8", "matmul_ntq8": "MATMUL_NTQ8", "linear_tq8": "LINEAR_TQ8", "matmul_tq8": "MATMUL_TQ8",
    "add": "ADD", "sub": "SUB", "mul": "MUL", "div": "DIV",
    "neg": "NEG", "exp": "EXP", "sigmoid": "SIGMOID", "tanh": "TANH", "relu": "RELU", "concat": "CONCAT",
    "zeros": "ZERO", "reshape": "COPY", "copy": "COPY", "split": "SPLIT",
    "conv2d": "CONV2D", "maxpool2d": "MAXPOOL2D", "avgpool2d": "AVGPOOL2D", "softmax": "SOFTMAX",
    "log_softmax": "LOG_SOFTMAX", "reduce_sum": "REDUCE_SUM", "reduce_mean": "REDUCE_MEAN", "matmul": "MATMUL",
}


def param_field(node: Node, types: dict[str, TensorType]) -> int:
    """Field A of a graph op (lnn_opcodes.def): conv stride and padding, pool window and stride, an axis."""
    if node.op == "conv2d":
        return (node.attr("stride") - 1) | node.attr("padding") << 4
    if node.op in ("maxpool2d", "avgpool2d"):
        return (node.attr("kernel") - 1) | (node.attr("stride") - 1) << 4
    if node.op in ("softmax", "log_softmax", "reduce_sum", "reduce_mean"):
        return node.attr("axis") % len(types[node.inputs[0]].shape)
    return 0


@dataclass(frozen=True)
class Item:
    kind: str  # "node" | "loop" | "end"
    node: Node | None = None
    count: int = 0


@dataclass(frozen=True)
class Emitted:
    program: Program
    tensor_names: tuple[str, ...]
    fixed_plan: Plan
    batched_plan: Plan
    schedule: tuple[Item, ...]
    debug: tuple[dict, ...] = ()  # per compute instruction: pc, op, value, source line, module (debuginfo.py)


class _UnionFind:
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


def _readers(nodes: tuple[Node, ...], name: str) -> list[int]:
    return [i for i, n in enumerate(nodes) if name in n.inputs]


class _Emitter:
    def __init__(self, graph: Graph, state: tuple[tuple[int, int], ...] = ()):
        self.graph = graph
        self.types = {k: v for scope in graph.scopes() for k, v in scope.types.items()}
        self.uf = _UnionFind()
        # state: (input, output) pairs; the input is a STATE tensor that the output is copied into at the end
        self.state_inputs = {graph.inputs[i]: graph.outputs[j] for i, j in state}
        self.state_outputs = {j for _, j in state}
        self.state_offset: dict[str, int] = {}
        for name in self.state_inputs:
            self.state_offset[name] = sum(self.types[n].nbytes for n in self.state_offset)
        self.inputs = {name: i for i, name in enumerate(n for n in graph.inputs if n not in self.state_inputs)}
        self.constants: dict[str, np.ndarray] = dict(graph.constants)
        self.tables: dict[str, np.ndarray] = {}
        self.output_of: dict[str, int] = {}  # storage class root -> output number
        self.items: list[Item] = []
        self.top_users: dict[str, int] = {}
        for node in graph.nodes:
            # a loop body's reads of outer values count too: a loop's initial state may share its buffer
            # with the state only if nothing else reads it (the body may, when the first iteration was peeled)
            for name in (*node.inputs, *sorted(free_values(node))):
                self.top_users[name] = self.top_users.get(name, 0) + 1

    def is_storage(self, name: str) -> bool:
        return (name not in self.inputs and name not in self.constants and name not in self.tables
                and name not in self.state_inputs)

    # 2. schedule (with storage decisions made on the way)
    def schedule(self, graph: Graph, top: bool) -> None:
        producers = graph.producers()
        for node in graph.nodes:
            if node.op != "loop":
                self.items.append(Item("node", node))
                continue
            body: Graph = node.attr("body")
            self.tables.update(body.step_tables)
            for init, state, final in zip(node.inputs, body.inputs, node.outputs):
                self.uf.union(state, final)
                init_node = producers.get(init)
                if (top and init_node is not None and init_node.op != "loop" and self.is_storage(init)
                        and self.top_users.get(init, 0) == 1 and init not in self.graph.outputs):
                    self.uf.union(state, init)
                else:
                    self.items.append(Item("node", Node("copy", (init,), (state,), source=node.source)))
            self.items.append(Item("loop", count=node.attr("count")))
            self.schedule(body, top=False)
            for state, update in zip(body.inputs, body.outputs):
                if not self._can_update_in_place(body, state, update):
                    self.items.append(Item("node", Node("copy", (update,), (state,), source=node.source)))
                elif update != state:
                    self.uf.union(state, update)
            self.items.append(Item("end"))

    @staticmethod
    def _can_update_in_place(body: Graph, state: str, update: str) -> bool:
        """The state buffer may receive `update` directly if nothing reads the old state afterwards."""
        index = next((i for i, n in enumerate(body.nodes) if update in n.outputs), None)
        if index is None or body.nodes[index].op not in _ELEMENTWISE:
            return False
        later_reads = [i for i in _readers(body.nodes, state) if i > index]
        return not later_reads and body.outputs.count(update) == 1

    def assign_outputs(self) -> None:
        """Outputs written directly by their producing node where possible, else copied at the end."""
        producers = self.graph.producers()
        for state, update in self.state_inputs.items():  # after every read of the old state
            self.items.append(Item("node", Node("copy", (update,), (state,))))
        numbered = [name for j, name in enumerate(self.graph.outputs) if j not in self.state_outputs]
        for k, name in enumerate(numbered):
            root = self.uf.find(name)
            members = [v for v in self.uf.parent if self.uf.find(v) == root]
            node = producers.get(name)
            direct = (node is not None and node.op != "loop" and self.is_storage(name)
                      and root not in self.output_of and len(members) <= 1)
            if direct:
                self.output_of[root] = k
            else:
                alias = f"output{k}"
                self.types[alias] = self.types[name]
                self.items.append(Item("node", Node("copy", (name,), (alias,))))
                self.output_of[self.uf.find(alias)] = k

    # 3. liveness
    def live_ranges(self) -> dict[str, tuple[int, int]]:
        """[first, last] schedule position of every storage class (keyed by its root)."""
        loops: list[tuple[int, int]] = []
        open_loops: list[int] = []
        first_def: dict[str, int] = {}
        touches: list[tuple[str, int]] = []
        for pos, item in enumerate(self.items):
            if item.kind == "loop":
                open_loops.append(pos)
            elif item.kind == "end":
                loops.append((open_loops.pop(), pos))
            else:
                for name in (*item.node.inputs, *item.node.outputs):
                    if self.is_storage(name):
                        touches.append((self.uf.find(name), pos))
                for name in item.node.outputs:
                    first_def.setdefault(self.uf.find(name), pos)
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

    def merge_in_place(self) -> int:
        """Outside loops, an element-wise op (or a reshape) writes over an operand that no later instruction
        reads: the two values share one buffer. The VM allows exactly this overlap (the same byte range) for
        these ops, and their kernels read an element before writing its slot. Returns the number merged."""
        reads: dict[str, int] = {}  # value -> last schedule position that reads it (inside loops too)
        depth_at: list[int] = []
        depth = 0
        for pos, item in enumerate(self.items):
            depth += item.kind == "loop"
            depth -= item.kind == "end"
            depth_at.append(depth)
            if item.kind == "node":
                for name in item.node.inputs:
                    reads[name] = pos
        in_loops = {name for pos, item in enumerate(self.items) if item.kind == "node" and depth_at[pos] > 0
                    for name in (*item.node.inputs, *item.node.outputs)}
        merged = 0
        for pos, item in enumerate(self.items):
            node = item.node
            if (item.kind != "node" or depth_at[pos] > 0 or node.op not in _IN_PLACE or len(node.outputs) != 1
                    or not self.is_storage(node.output) or self.uf.find(node.output) in self.output_of
                    or node.output in self.graph.outputs):
                continue
            out_t = self.types[node.output]
            for name in node.inputs:
                t = self.types.get(name)
                fits = t is not None and (t == out_t if node.op != "reshape" else
                                          (t.nbytes, t.batched) == (out_t.nbytes, out_t.batched))
                root = self.uf.find(name)
                if (fits and self.is_storage(name) and reads.get(name) == pos and name not in in_loops
                        and root not in self.output_of and name not in self.graph.outputs
                        and all(m not in in_loops for m in self.uf.parent if self.uf.find(m) == root)):
                    self.uf.union(name, node.output)
                    merged += 1
                    break
        return merged

    def float16_copies(self) -> list[Request]:
        """The float32 copy of every float16 constant (lnn_init writes it into the fixed part; every run reads it)."""
        used = {name for item in self.items if item.kind == "node" for name in item.node.inputs
                if name in self.constants and self.constants[name].dtype == np.float16}
        return [Request(name, 4 * self.constants[name].size, 0, len(self.items)) for name in sorted(used)]

    def naive_sum(self, batched: bool) -> int:
        """Bytes of every intermediate value in a buffer of its own (the values written to outputs aside)."""
        names = {name for item in self.items if item.kind == "node" for name in (*item.node.inputs, *item.node.outputs)
                 if self.is_storage(name)}
        return sum(align(self.types[n].nbytes, 16) for n in names
                   if self.types[n].batched == batched and self.uf.find(n) not in self.output_of)

    def emit(self) -> Emitted:
        self.schedule(self.graph, top=True)
        self.assign_outputs()
        self.merge_in_place()
        ranges = self.live_ranges()
        roots: dict[str, TensorType] = {}
        for item in self.items:
            if item.kind == "node":
                for name in (*item.node.inputs, *item.node.outputs):
                    if self.is_storage(name):
                        root = self.uf.find(name)
                        size = self.types[name].nbytes
                        if root not in roots or size > roots[root].nbytes:
                            roots[root] = self.types[name]
        fixed_reqs, batched_reqs = [], []
        for root, ttype in roots.items():
            if root in self.output_of:
                continue
            lo, hi = ranges[root]
            (batched_reqs if ttype.batched else fixed_reqs).append(Request(root, ttype.nbytes, lo, hi))
        widened = self.float16_copies()
        fixed_reqs += widened
        fixed_plan, batched_plan = plan(fixed_reqs), plan(batched_reqs)
        # the naive sum counts every intermediate, also those now sharing a buffer with their operand
        fixed_plan = replace(fixed_plan, naive=self.naive_sum(batched=False) + sum(r.size for r in widened))
        batched_plan = replace(batched_plan, naive=self.naive_sum(batched=True))
        return self._encode(fixed_plan, batched_plan)

    # 4. tensor table and code
    def _encode(self, fixed_plan: Plan, batched_plan: Plan) -> Emitted:
        entries: list[TensorEntry] = []
        names: list[str] = []
        index_of: dict[str, int] = {}
        consts = bytearray()
        const_offset: dict[str, int] = {}

        def add_const(name: str, array: np.ndarray) -> int:
            if name not in const_offset:
                consts.extend(b"\0" * (align(len(consts), 16) - len(consts)))
                const_offset[name] = len(consts)
                consts.extend(np.ascontiguousarray(array, dtype=_CONST_DTYPES[array.dtype][0]).tobytes())
            return const_offset[name]

        def entry_for(name: str) -> TensorEntry:
            if name in self.inputs:
                t = self.types[name]
                return TensorEntry(t.shape, isa.const("REG_INPUT"), self.inputs[name], t.batched)
            if name in self.state_inputs:
                t = self.types[name]
                if not t.batched:
                    raise CompileError(f"state {name} {t} must have the batch dimension (one state per stream)")
                return TensorEntry(t.shape, isa.const("REG_STATE"), self.state_offset[name], True)
            if name in self.tables:
                table = self.tables[name]
                row = tuple(table.shape[1:])
                return TensorEntry(row, isa.const("REG_CONST"), add_const(name, table), False,
                                   stride=4 * int(np.prod(row, dtype=np.int64)))
            if name in self.constants:
                array = self.constants[name]
                dtype = isa.const(_CONST_DTYPES[array.dtype][1])
                widened = fixed_plan.offsets[name] if array.dtype == np.float16 else 0
                return TensorEntry(tuple(array.shape), isa.const("REG_CONST"), add_const(name, array), dtype=dtype,
                                   widened=widened)
            t = self.types[name]
            root = self.uf.find(name)
            if root in self.output_of:
                return TensorEntry(t.shape, isa.const("REG_OUTPUT"), self.output_of[root], t.batched)
            offset = (batched_plan if t.batched else fixed_plan).offsets[root]
            return TensorEntry(t.shape, isa.const("REG_ARENA"), offset, t.batched)

        def tensor(name: str) -> int:
            if name not in index_of:
                index_of[name] = len(entries)
                entries.append(entry_for(name))
                names.append(name)
            return index_of[name]

        def destinations(outputs: tuple[str, ...]) -> int:
            """Consecutive tensor entries for the outputs of a DSTN instruction; the first one's index."""
            first = [tensor(o) for o in outputs][0]
            if [index_of[o] for o in outputs] != list(range(first, first + len(outputs))):
                first = len(entries)  # fresh entries describing the same storage
                for o in outputs:
                    entries.append(entry_for(o))
                    names.append(o)
            return first

        code: list[int] = []
        stack: list[str] = []
        debug: list[dict] = []

        def flush() -> None:
            for _ in stack:
                code.append(isa.encode("DROP"))
            stack.clear()

        depth = 0
        for item in self.items:
            if item.kind in ("loop", "end"):
                depth += 1 if item.kind == "loop" else -1
                flush()
                code.append(isa.encode("LOOP", 0, item.count) if item.kind == "loop" else isa.encode("END"))
                continue
            node = item.node
            operands = list(node.inputs)
            if node.op == "concat" and len(operands) != 2:
                raise CompileError(f"concat of {len(operands)} tensors reached the emitter", node)
            if stack and operands and stack[-1] == operands[0]:
                operands = operands[1:]
            else:
                flush()
            for name in operands:
                code.append(isa.encode("PUSH", 0, tensor(name)))
            if node.op == "ewise":  # its program: a u32 constant, the top operand
                words = program_words(node.attr("program"), len(node.inputs), node.attr("regs"))
                self.constants[f"{node.output}/program"] = words
                code.append(isa.encode("PUSH", 0, tensor(f"{node.output}/program")))
                opcode = f"EWISE{len(node.inputs)}"
            elif node.op in _OPCODE:
                opcode = _OPCODE[node.op]
            else:
                raise CompileError(f"no VM instruction for op {node.op!r}", node)
            axis = param_field(node, self.types)
            if node.op == "concat":
                rank = len(self.types[node.output].shape)
                axis = node.attr("axis") % rank
            entry = {"pc": len(code), "value": node.output, "op": node.op, "source": node.source,
                     "module": node.attr("module")}
            if len(node.outputs) > 1 or node.op in _DSTN_OPS:
                # one destination per output (trace records come one per destination, in this order)
                entry.update(outputs=list(node.outputs), modules=list(node.attr("modules") or ()))
                if node.attr("modules") and len(node.outputs) == 1:
                    entry["module"] = node.attr("modules")[0] or None
                parts = node.attr("parts") or ()
                if depth == 0 and any(parts):  # loop-invariant parts of layers (split_linear, hoisted)
                    entry["parts"] = [None if p is None else {"module": p[0], "cols": [p[1], p[2]], "bias": p[3]}
                                      for p in parts]
                axis, dst = len(node.outputs), destinations(node.outputs)
            else:
                dst = tensor(node.output)
            debug.append(entry)
            code.append(isa.encode(opcode, axis, dst))
            stack[:] = [node.output]
        flush()
        num_outputs = len(self.graph.outputs) - len(self.state_outputs)
        for k in range(num_outputs):
            if not any(e.region == isa.const("REG_OUTPUT") and e.offset == k for e in entries):
                raise CompileError(f"output {k} is never written")
        program = Program(
            tensors=tuple(entries),
            consts=bytes(consts),
            code=tuple(code),
            arena_fixed=fixed_plan.size,
            arena_row=batched_plan.size,
            num_inputs=len(self.inputs),
            num_outputs=num_outputs,
            names=tuple(names),
            state_row=sum(self.types[n].nbytes for n in self.state_inputs),
        )
        return Emitted(program, tuple(names), fixed_plan, batched_plan, tuple(self.items), tuple(debug))


def program_words(program: tuple[tuple[str, int, int, int], ...], operands: int, regs: int) -> np.ndarray:
    """An element-wise program as the VM reads it (vm/include/lnn_format.h): a header word, then one word per
    instruction (op, d, a, b), op the VM opcode of the same name."""
    words = [operands | len(program) << 8 | regs << 16]
    words += [isa.opcodes()[op.upper()].code | d << 8 | a << 16 | b << 24 for op, d, a, b in program]
    return np.array(words, dtype=np.uint32)


def emit(graph: Graph, state: tuple[tuple[int, int], ...] = ()) -> Emitted:
    """`state` pairs (input i, output j): input i is persistent state that output j updates after each run."""
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
    return _Emitter(graph, tuple(state)).emit()
