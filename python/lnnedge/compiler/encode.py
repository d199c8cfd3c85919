"""Emit, step 4: the tensor table, the constant pool and the code of a scheduled, planned graph.

Each node: PUSH its operands, then its instruction (the op table's opcode) writing its planned
destination; a result still on top of the stack is not pushed again. Each instruction also gets a
debug record (pc, op, value, source line, module) for debuginfo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import isa
from ..lnnb import Program, TensorEntry, align
from . import optable
from .ir import CompileError, Node
from .planner import Plan
from .schedule import Item, Schedule

_CONST_DTYPES = {np.dtype(np.float32): ("<f4", "DT_F32"), np.dtype(np.uint32): ("<u4", "DT_U32"),
                 np.dtype(np.int8): ("<i1", "DT_I8"), np.dtype(np.float16): ("<f2", "DT_F16")}


@dataclass(frozen=True)
class Encoded:
    program: Program
    names: tuple[str, ...]
    debug: tuple[dict, ...]  # per compute instruction: pc, op, value, source line, module (debuginfo.py)


def program_words(program: tuple[tuple[str, int, int, int], ...], operands: int, regs: int) -> np.ndarray:
    """An element-wise program as the VM reads it (vm/include/lnn_format.h): a header word, then one word per
    instruction (op, d, a, b), op the VM opcode of the IR op."""
    words = [operands | len(program) << 8 | regs << 16]
    words += [isa.opcodes()[optable.get(op).opcode].code | d << 8 | a << 16 | b << 24 for op, d, a, b in program]
    return np.array(words, dtype=np.uint32)


class _Encoder:
    def __init__(self, s: Schedule, fixed_plan: Plan, batched_plan: Plan) -> None:
        self.s = s
        self.fixed_plan = fixed_plan
        self.batched_plan = batched_plan
        self.constants = dict(s.constants)  # and the element-wise programs, added as they are met
        self.entries: list[TensorEntry] = []
        self.names: list[str] = []
        self.index_of: dict[str, int] = {}
        self.consts = bytearray()
        self.const_offset: dict[str, int] = {}
        self.code: list[int] = []
        self.stack: list[str] = []
        self.debug: list[dict] = []

    def add_const(self, name: str, array: np.ndarray) -> int:
        if name not in self.const_offset:
            self.consts.extend(b"\0" * (align(len(self.consts), 16) - len(self.consts)))
            self.const_offset[name] = len(self.consts)
            self.consts.extend(np.ascontiguousarray(array, dtype=_CONST_DTYPES[array.dtype][0]).tobytes())
        return self.const_offset[name]

    def entry_for(self, name: str) -> TensorEntry:
        s = self.s
        if name in s.inputs:
            t = s.types[name]
            return TensorEntry(t.shape, isa.const("REG_INPUT"), s.inputs[name], t.batched)
        if name in s.state_inputs:
            t = s.types[name]
            if not t.batched:
                raise CompileError(f"state {name} {t} must have the batch dimension (one state per stream)")
            return TensorEntry(t.shape, isa.const("REG_STATE"), s.state_offset[name], True)
        if name in s.tables:
            table = s.tables[name]
            row = tuple(table.shape[1:])
            return TensorEntry(row, isa.const("REG_CONST"), self.add_const(name, table), False,
                               stride=4 * int(np.prod(row, dtype=np.int64)))
        if name in self.constants:
            array = self.constants[name]
            dtype = isa.const(_CONST_DTYPES[array.dtype][1])
            widened = self.fixed_plan.offsets[name] if array.dtype == np.float16 else 0
            return TensorEntry(tuple(array.shape), isa.const("REG_CONST"), self.add_const(name, array), dtype=dtype,
                               widened=widened)
        t = s.types[name]
        root = s.storage.find(name)
        if root in s.output_of:
            return TensorEntry(t.shape, isa.const("REG_OUTPUT"), s.output_of[root], t.batched)
        offset = (self.batched_plan if t.batched else self.fixed_plan).offsets[root]
        return TensorEntry(t.shape, isa.const("REG_ARENA"), offset, t.batched)

    def tensor(self, name: str) -> int:
        if name not in self.index_of:
            self.index_of[name] = len(self.entries)
            self.entries.append(self.entry_for(name))
            self.names.append(name)
        return self.index_of[name]

    def destinations(self, outputs: tuple[str, ...]) -> int:
        """Consecutive tensor entries for the outputs of a DSTN instruction; the first one's index."""
        first = [self.tensor(o) for o in outputs][0]
        if [self.index_of[o] for o in outputs] != list(range(first, first + len(outputs))):
            first = len(self.entries)  # fresh entries describing the same storage
            for o in outputs:
                self.entries.append(self.entry_for(o))
                self.names.append(o)
        return first

    def flush(self) -> None:
        for _ in self.stack:
            self.code.append(isa.encode("DROP"))
        self.stack.clear()

    def node(self, node: Node, depth: int) -> None:
        op = optable.get(node.op)
        if not op.opcode:
            raise CompileError(f"no VM instruction for op {node.op!r}", node)
        operands = list(node.inputs)
        if not op.variadic and len(operands) != op.operands:  # e.g. a concat of three (split_concat missed)
            raise CompileError(f"{node.op} of {len(operands)} tensors reached the emitter; "
                               f"{op.opcode} takes {op.operands}", node)
        if self.stack and operands and self.stack[-1] == operands[0]:
            operands = operands[1:]
        else:
            self.flush()
        for name in operands:
            self.code.append(isa.encode("PUSH", 0, self.tensor(name)))
        if op.variadic:  # an element-wise program: a u32 constant, the top operand
            words = program_words(node.attr("program"), len(node.inputs), node.attr("regs"))
            self.constants[f"{node.output}/program"] = words
            self.code.append(isa.encode("PUSH", 0, self.tensor(f"{node.output}/program")))
        entry = {"pc": len(self.code), "value": node.output, "op": node.op, "source": node.source,
                 "module": node.attr("module")}
        if len(node.outputs) > 1 or op.format == "DSTN":
            # one destination per output (trace records come one per destination, in this order)
            entry.update(outputs=list(node.outputs), modules=list(node.attr("modules") or ()))
            if node.attr("modules") and len(node.outputs) == 1:
                entry["module"] = node.attr("modules")[0] or None
            parts = node.attr("parts") or ()
            if depth == 0 and any(parts):  # loop-invariant parts of layers (split_linear, hoisted)
                entry["parts"] = [None if p is None else {"module": p[0], "cols": [p[1], p[2]], "bias": p[3]}
                                  for p in parts]
            a, dst = len(node.outputs), self.destinations(node.outputs)
        else:
            a, dst = (op.param(node, self.s.types) if op.param else 0), self.tensor(node.output)
        self.debug.append(entry)
        self.code.append(isa.encode(op.opcode_for(len(node.inputs)), a, dst))
        self.stack[:] = [node.output]

    def encode(self, items: list[Item]) -> Encoded:
        depth = 0
        for item in items:
            if item.kind in ("loop", "end"):
                depth += 1 if item.kind == "loop" else -1
                self.flush()
                loop = "LOOPW" if item.until else "LOOP"
                self.code.append(isa.encode(loop, 0, item.count) if item.kind == "loop" else isa.encode("END"))
            elif item.kind == "until":  # pops its flag: the stack is then as at the LOOPW
                flag = item.node.inputs[0]
                if self.stack[-1:] != [flag]:
                    self.flush()
                    self.code.append(isa.encode("PUSH", 0, self.tensor(flag)))
                self.stack.clear()
                self.code.append(isa.encode("UNTIL"))
            else:
                self.node(item.node, depth)
        self.flush()
        s = self.s
        num_outputs = len(s.graph.outputs) - len(s.state_outputs)
        for k in range(num_outputs):
            if not any(e.region == isa.const("REG_OUTPUT") and e.offset == k for e in self.entries):
                raise CompileError(f"output {k} is never written")
        program = Program(
            tensors=tuple(self.entries),
            consts=bytes(self.consts),
            code=tuple(self.code),
            arena_fixed=self.fixed_plan.size,
            arena_row=self.batched_plan.size,
            num_inputs=len(s.inputs),
            num_outputs=num_outputs,
            names=tuple(self.names),
            state_row=sum(s.types[n].nbytes for n in s.state_inputs),
        )
        return Encoded(program, tuple(self.names), tuple(self.debug))


def encode(s: Schedule, fixed_plan: Plan, batched_plan: Plan) -> Encoded:
    """The program of schedule `s` with its tensors placed by the two plans."""
    return _Encoder(s, fixed_plan, batched_plan).encode(s.items)
