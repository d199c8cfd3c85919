"""The reference VM: runs an .lnnb file in numpy, instruction by instruction.

It is the oracle the C VM is checked against, so it is written for clarity:
the same arena layout (tensors are numpy views into one arena buffer, so the
memory plan is exercised for real), the same stack discipline, float32
arithmetic from kernels_np. It trusts the file's structure (the C loader is
the hardened verifier) but raises RefVMError on anything it cannot run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import isa, kernels_np, lnnb
from .errors import LnnedgeError

Trace = Callable[[int, str, int, np.ndarray], None]


class RefVMError(LnnedgeError, RuntimeError):
    pass


class StepLimitError(RefVMError):
    """A LOOPW ran out of trips (the C VM's E_STEPS): an adaptive solver's step limit."""


class RefVM:
    def __init__(self, data: bytes):
        self.program = lnnb.read(data)
        p = self.program
        try:  # as the C VM does (E_NONFINITE): a NaN constant would make NaN results look right
            lnnb.check_finite(p)
        except lnnb.FormatError as e:
            raise RefVMError(str(e)) from e
        whole_words = p.consts[:len(p.consts) // 4 * 4]
        self.consts = np.frombuffer(whole_words, dtype="<f4")
        # u32 constants (element-wise programs) are read as integers
        self.words = np.frombuffer(whole_words, dtype="<u4")
        self.bytes = np.frombuffer(p.consts, dtype="<i1")  # int8 weights: element offsets are byte offsets
        ops = isa.opcode_by_code()
        self.decoded = []
        for word in p.code:
            code, a, b = isa.decode(word)
            if code not in ops:
                raise RefVMError(f"unknown opcode {code:#x}")
            self.decoded.append((ops[code].name, a, b))
        self.inputs = sorted((t.offset, t) for t in p.tensors if t.region == isa.const("REG_INPUT"))
        self.state: np.ndarray | None = None  # persistent STATE tensors, for the batch size of the last run
        self.state_batch = 0
        self.outputs = sorted((t.offset, t) for t in p.tensors if t.region == isa.const("REG_OUTPUT"))

    def _widen_float16(self, arena: np.ndarray) -> None:
        """DT_F16 constants are read as their float32 copies in the arena's fixed part, as lnn_init makes them."""
        for t in self.program.tensors:
            if t.dtype == isa.const("DT_F16"):
                half = np.frombuffer(self.program.consts, dtype="<f2", count=t.elems, offset=t.offset)
                arena[t.widened // 4:t.widened // 4 + t.elems] = half.astype(np.float32)

    def run(self, inputs: Sequence[np.ndarray], trace: Trace | None = None) -> list[np.ndarray]:
        p = self.program
        arrays = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
        if len(arrays) != p.num_inputs:
            raise RefVMError(f"model takes {p.num_inputs} inputs, got {len(arrays)}")
        batch = 1
        for (_, t), x in zip(self.inputs, arrays):
            if t.batched:
                batch = x.shape[0]
            if x.shape != self._shape(t, x.shape[0] if t.batched else 1):
                raise RefVMError(f"input {t.offset} has shape {x.shape}, model expects {self._shape(t, batch)}")
        arena = np.zeros((p.arena_size(batch) + 3) // 4, dtype=np.float32)
        self._widen_float16(arena)
        if self.state is None or batch != self.state_batch:  # a new batch size starts from zero state
            self.reset()
            self.state = np.zeros(p.state_row * batch // 4, dtype=np.float32)
            self.state_batch = batch
        state = self.state
        outs = [np.zeros(self._shape(t, batch), dtype=np.float32) for _, t in self.outputs]
        batched_base = lnnb.align(p.arena_fixed, isa.const("ARENA_ALIGN"))

        def view(index: int, loop_index: int) -> np.ndarray:
            t = p.tensors[index]
            shape = self._shape(t, batch)
            n = int(np.prod(shape, dtype=np.int64))
            if t.dtype == isa.const("DT_F16"):
                return arena[t.widened // 4:t.widened // 4 + n].reshape(shape)
            if t.region == isa.const("REG_CONST"):
                start = t.offset + t.stride * loop_index
                if t.dtype == isa.const("DT_I8"):
                    return self.bytes[start:start + n].reshape(shape)
                data = self.words if t.dtype == isa.const("DT_U32") else self.consts
                return data[start // 4:start // 4 + n].reshape(shape)
            if t.region == isa.const("REG_ARENA"):
                start = (batched_base + t.offset * batch if t.batched else t.offset) // 4
                return arena[start:start + n].reshape(shape)
            if t.region == isa.const("REG_INPUT"):
                return arrays[t.offset]
            if t.region == isa.const("REG_STATE"):
                start = t.offset * batch // 4
                return state[start:start + n].reshape(shape)
            return outs[t.offset]

        stack: list[np.ndarray] = []
        loops: list[list[int]] = []  # [body pc, count, index, 1 for a LOOPW]
        pc = 0
        while pc < len(self.decoded):
            name, a, b = self.decoded[pc]
            loop_index = loops[-1][2] if loops else 0
            if name == "PUSH":
                stack.append(view(b, loop_index))
            elif name == "DROP":
                stack.pop()
            elif name in ("LOOP", "LOOPW"):
                loops.append([pc + 1, b, 0, name == "LOOPW"])
            elif name == "END":
                frame = loops[-1]
                frame[2] += 1
                if frame[2] < frame[1]:
                    pc = frame[0]
                    continue
                if frame[3]:
                    raise StepLimitError(f"LOOPW at {frame[0] - 1} ran its {frame[1]} trips without its UNTIL "
                                         "ending it (E_STEPS)")
                loops.pop()
            elif name == "UNTIL":  # the last instruction of its LOOPW's body: leave it past the END
                if np.all(stack.pop() != 0):
                    loops.pop()
                    pc += 2
                    continue
            else:
                info = isa.opcodes()[name]
                args = stack[len(stack) - info.pops:]
                del stack[len(stack) - info.pops:]
                # DSTN: A destinations b, b+1, ... (LINEAR_T / MATMUL_T split their columns over them)
                dsts = [view(b + j, loop_index) for j in range(a if info.format == "DSTN" else 1)]
                results = self._compute(name, a, args, dsts)
                for j, (dst, result) in enumerate(zip(dsts, results)):
                    dst[...] = result
                    if trace is not None:
                        trace(pc, name, b + j, dst.copy())
                stack.append(dsts[0])
            pc += 1
        return [o.copy() for o in outs]

    def reset(self) -> None:
        """Zero the persistent state (as lnn_reset does)."""
        self.state, self.state_batch = None, 0

    def run_sequence(self, inputs: Sequence[np.ndarray], trace: Trace | None = None) -> list[np.ndarray]:
        """Every input (T, batch, ...) time-major: T runs from the current state; outputs (T, batch, ...)."""
        steps = [self.run([x[t] for x in inputs], trace) for t in range(inputs[0].shape[0])]
        return [np.stack([s[k] for s in steps]) for k in range(len(steps[0]))]

    @staticmethod
    def _shape(t: lnnb.TensorEntry, batch: int) -> tuple[int, ...]:
        return (batch, *t.dims[1:]) if t.batched else tuple(t.dims)

    @staticmethod
    def _compute(name: str, axis: int, args: list[np.ndarray], dsts: list[np.ndarray]) -> list[np.ndarray]:
        """The results of one instruction, one per destination."""
        if name in ("LINEAR_T", "MATMUL_T"):
            y = kernels_np.linear_t(args[0], args[1], args[2] if name == "LINEAR_T" else None)
        elif name in ("LINEAR_TQ8", "MATMUL_TQ8"):
            y = kernels_np.linear_q8(*args)
        elif name in ("LINEAR_W8A16", "MATMUL_W8A16"):  # x, panel, scale (, bias): bit-exact (kernels_np)
            y = kernels_np.linear_w8a16(*args)
        elif name == "SPLIT":
            y = args[0]
        else:
            return [RefVM._compute1(name, axis, args, dsts[0])]
        return np.split(y, np.cumsum([d.shape[-1] for d in dsts])[:-1], axis=-1)

    @staticmethod
    def _compute1(name: str, axis: int, args: list[np.ndarray], dst: np.ndarray) -> np.ndarray:
        if name == "LINEAR":
            return kernels_np.linear(args[0], args[1], args[2])
        if name == "MATMUL_NT":
            return kernels_np.linear(args[0], args[1])
        if name in ("LINEAR_Q8", "MATMUL_NTQ8"):  # Q (M, K)
            return kernels_np.linear_q8(args[0], args[1].T, *args[2:])
        # the element-wise opcodes are kernels_np's ops by their lower-case names (the IR's op names)
        if name.lower() in kernels_np.BINARY:
            return kernels_np.binary(name.lower(), args[0], args[1])
        if name.lower() in kernels_np.UNARY:
            return kernels_np.unary(name.lower(), args[0])
        if name == "WHERE":
            return kernels_np.where(*args)
        if name == "CONCAT":
            return kernels_np.concat(args[0], args[1], axis)
        if name.startswith("EWISE"):
            return kernels_np.ewise(decode_program(args[-1]), args[:-1], dst.shape)
        if name == "CONV2D":
            return kernels_np.conv2d(args[0], args[1], args[2], (axis & 0xF) + 1, axis >> 4)
        if name in ("MAXPOOL2D", "AVGPOOL2D"):
            mode = "max" if name == "MAXPOOL2D" else "avg"
            return kernels_np.pool2d(args[0], (axis & 0xF) + 1, (axis >> 4) + 1, mode)
        if name in ("SOFTMAX", "LOG_SOFTMAX"):
            return kernels_np.softmax(args[0], axis, log=name == "LOG_SOFTMAX")
        if name in ("REDUCE_SUM", "REDUCE_MEAN"):
            keep = args[0].ndim == dst.ndim
            return kernels_np.reduce(args[0], axis, keep, mean=name == "REDUCE_MEAN")
        if name == "MATMUL":
            return kernels_np.matmul(args[0], args[1])
        if name == "COPY":
            return args[0].reshape(dst.shape)
        if name == "ZERO":
            return np.zeros(dst.shape, np.float32)
        raise RefVMError(f"reference VM has no implementation of {name}")



def decode_program(words: np.ndarray) -> tuple[tuple[str, int, int, int], ...]:
    """An element-wise program (vm/include/lnn_format.h) as (op, d, a, b) tuples, op the kernels_np name."""
    ops = isa.opcode_by_code()
    header = int(words[0])
    count = (header >> 8) & 0xFF
    if len(words) != 1 + count:
        raise RefVMError(f"element-wise program of {len(words)} words declares {count} instructions")
    program = []
    for w in (int(v) for v in words[1:]):
        op = ops.get(w & 0xFF)
        if op is None or op.name.lower() not in kernels_np.BINARY.keys() | kernels_np.UNARY.keys():
            raise RefVMError(f"element-wise program: no such operation {w & 0xFF:#x}")
        program.append((op.name.lower(), (w >> 8) & 0xFF, (w >> 16) & 0xFF, w >> 24))
    return tuple(program)
