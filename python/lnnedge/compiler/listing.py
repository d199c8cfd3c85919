"""A human-readable listing of a compiled model: tensors, memory plan and code."""

from __future__ import annotations

from .. import isa
from ..lnnb import Program
from .planner import Plan

_REGIONS = {isa.const("REG_CONST"): "const", isa.const("REG_ARENA"): "arena",
            isa.const("REG_INPUT"): "input", isa.const("REG_OUTPUT"): "output", isa.const("REG_STATE"): "state"}


def tensor_label(program: Program, index: int) -> str:
    t = program.tensors[index]
    dims = ",".join("B" if i == 0 and t.batched else str(d) for i, d in enumerate(t.dims))
    name = program.names[index] if index < len(program.names) else f"t{index}"
    return f"t{index}:{name}[{dims}]"


def render(program: Program, fixed: Plan, batched: Plan, title: str) -> str:
    out = [f"; {title}", f"; {len(program.tensors)} tensors, {len(program.consts)} constant bytes, "
           f"{len(program.code)} instructions ({4 * len(program.code)} code bytes)",
           f"; arena: {program.arena_fixed} fixed bytes + {program.arena_row} bytes per batch row"
           + (f" + {program.state_row} bytes of persistent state per batch row" if program.state_row else ""),
           "", "; tensors"]
    for i, t in enumerate(program.tensors):
        stride = f" stride {t.stride}" if t.stride else ""
        out.append(f";   {tensor_label(program, i):<48} {_REGIONS.get(t.region, '?'):<6} @ {t.offset}{stride}")
    for label, p in (("per batch row", batched), ("fixed", fixed)):
        out += ["", f"; memory plan ({label}): {p.size} bytes, naive sum {p.naive}, "
                    f"largest live set {p.lower_bound}, strategy {p.strategy}"]
        out += [f";   {line}" for line in p.ascii_map().splitlines()]
    out += ["", "; code"]
    ops = isa.opcode_by_code()
    depth = 0
    for pc, word in enumerate(program.code):
        code, a, b = isa.decode(word)
        info = ops[code]
        if info.name == "END":
            depth -= 1
        operand = ""
        if info.format in ("PUSHT", "DST", "DSTAX", "DSTN", "DSTP"):
            operand = tensor_label(program, b)
            if info.format == "DSTAX":
                operand += f" axis={a}"
            if info.format == "DSTP":
                operand += f" param={a}"
            if info.format == "DSTN":  # A destinations: b, b+1, ...
                operand = ", ".join(tensor_label(program, b + j) for j in range(a))
        elif info.format == "COUNT":
            operand = str(b)
        out.append(f"{pc:5d}  {'  ' * depth}{info.name:<10} {operand}")
        if info.name in ("LOOP", "LOOPW"):
            depth += 1
    return "\n".join(out) + "\n"
