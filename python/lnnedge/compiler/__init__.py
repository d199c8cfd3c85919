"""The lnnedge compiler: a torch module + example inputs -> an .lnnb file.

    import torch
    from lnnedge.compiler import compile_module

    compiled = compile_module(model, (torch.zeros(1, 1),), name="ltc-sine")
    compiled.save("build/ltc-sine/model.lnnb")   # also writes the listing (.txt) and debug info (.debug.json:
                                                  # tensor names, metadata, source map)
    y = compiled.run(x)                           # the reference VM (numpy) on the same bytes
    print(compiled.arena_bytes(batch=1), compiled.plan_summary())

The model is captured with torch.export (ODEBlocks are captured as their
dynamics and solved by a bytecode loop), passed through the pipeline in
pipeline.py and emitted by emit.py. See DESIGN.md for the big picture.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import lnnb
from ..artifacts import atomic_write_bytes, atomic_write_text
from . import debuginfo
from .capture import capture
from .emit import Emitted, emit
from .ir import CompileError, Graph
from .listing import render
from .optable import ops
from .pipeline import PassLog, run

__all__ = ["CompileError", "CompiledModel", "compile_module", "ops"]


@dataclass(frozen=True)
class CompiledModel:
    name: str
    data: bytes
    emitted: Emitted
    graph: Graph
    log: tuple[PassLog, ...]

    @property
    def program(self) -> lnnb.Program:
        return self.emitted.program

    def listing(self) -> str:
        return render(self.program, self.emitted.fixed_plan, self.emitted.batched_plan, f"{self.name}.lnnb")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_bytes(path, self.data)
        atomic_write_text(path.with_name(path.name + ".txt"), self.listing())
        debuginfo.save(path, self.data, self.program, self.debug, [p.name for p in self.log])
        return path

    @property
    def debug(self) -> tuple[dict, ...]:
        return self.emitted.debug

    def arena_bytes(self, batch: int = 1) -> int:
        return self.program.arena_size(batch)

    def plan_summary(self) -> dict:
        fixed, batched = self.emitted.fixed_plan, self.emitted.batched_plan
        return {
            "arena_fixed": fixed.size, "arena_row": batched.size,
            "naive_fixed": fixed.naive, "naive_row": batched.naive,
            "lower_bound_fixed": fixed.lower_bound, "lower_bound_row": batched.lower_bound,
            "code_bytes": 4 * len(self.program.code), "const_bytes": len(self.program.consts),
            "file_bytes": len(self.data), "in_place": in_place_ops(self.program),
        }

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        from ..refvm import RefVM

        return RefVM(self.data).run(list(inputs))


def in_place_ops(program: lnnb.Program) -> int:
    """Compute instructions whose destination is exactly one of their operands' storage (written in place)."""
    from .. import isa

    by_code = isa.opcode_by_code()
    stack: list[int] = []
    count = 0

    def where(t: lnnb.TensorEntry) -> tuple:  # the byte range (a reshape keeps it with other dims)
        return t.region, t.offset, t.batched, t.elems

    for word in program.code:
        code, a, b = isa.decode(word)
        info = by_code[code]
        if info.name == "PUSH":
            stack.append(b)
        elif info.name == "DROP":
            stack.pop()
        elif info.pops or info.pushes:
            operands = stack[len(stack) - info.pops:]
            del stack[len(stack) - info.pops:]
            dst = program.tensors[b]
            if dst.region == isa.const("REG_ARENA") and any(
                    where(program.tensors[o]) == where(dst) for o in operands):
                count += 1
            stack.append(b)
    return count


def requirements(program: lnnb.Program) -> dict:
    """What a device needs to run the program: recorded in the file so a deploy can refuse early."""
    from .. import isa

    by_code = isa.opcode_by_code()
    depth = deepest = 0
    ops = set()
    for word in program.code:
        info = by_code[isa.decode(word)[0]]
        ops.add(info.name)
        depth += info.pushes - info.pops
        deepest = max(deepest, depth)
    return {"arena_bytes_batch1": program.arena_size(1), "arena_fixed": program.arena_fixed,
            "arena_row": program.arena_row, "const_bytes": len(program.consts), "max_stack": deepest,
            "code_words": len(program.code), "ops": sorted(ops)}


def compile_module(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], name: str = "model",
                   meta: dict | None = None, int8_scales: Mapping[str, np.ndarray] | None = None,
                   float16_layers: Collection[str] = (), w8a16_scales: Mapping[str, np.ndarray] | None = None,
                   tests: lnnb.TestSet | None = None, state: Sequence[tuple[int, int]] = ()) -> CompiledModel:
    """Capture, optimise and emit `module`; dim 0 of every input is the batch dimension.

    int8_scales (layer -> scale per output row) stores those layers' weights as int8: `module` must then be
    the fake-quantized model (lnnedge.quantize); float16_layers (layer names) stores those layers' weights as
    float16, `module` then having them rounded to float16 (the f16 scheme of lnnedge.quantize); w8a16_scales (as
    int8_scales, quantize.int8_scales) makes those layers' products w8a16 (LINEAR_W8A16 / MATMUL_W8A16: int8
    panel, each input row rounded to 16-bit block floating point on the device), `module` then being the
    w8a16 fake-quantized model without its rounding hooks (quantize.capturable).
    `tests` is bundled in the file for the smoke test.
    `state` pairs (input i, output j) make input i persistent state, updated from output j after every run
    and zero after a reset: a step module (x_t, h) -> (y_t, h_next) with state ((1, 1),) runs a sequence
    one call per time step."""
    graph = capture(module, example_inputs)
    graph, log = run(graph, int8_scales=int8_scales, float16_layers=float16_layers, w8a16_scales=w8a16_scales)
    emitted = emit(graph, tuple(state))
    requires = requirements(emitted.program)
    program = lnnb.Program(**{**emitted.program.__dict__, "tests": tests,
                              "meta": {"model": name, "requires": requires, **(meta or {})}})
    emitted = replace(emitted, program=program)
    # The device file records what it needs (a deploy checks it) and nothing the VM does not read: the
    # tensor names and the rest of the metadata go to the debug info beside it (CompiledModel.save).
    device = replace(program, names=(), meta={"requires": requires})
    return CompiledModel(name, lnnb.write(device), emitted, graph, tuple(log))
