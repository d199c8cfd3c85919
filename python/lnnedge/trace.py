"""verify --trace: locate the first instruction where the device, the reference VM or PyTorch part ways.

One input row runs on the device with every intermediate tensor dumped (the
runner's --trace), on the reference VM with the same dump, and through PyTorch
with forward hooks on every nn.Linear. The compiler's debug table (META
section) maps each instruction to its IR value, op, source line and, for
linear layers, the module; the k-th execution of a module's instruction is
paired with the module's k-th call in PyTorch (inside an ODE solve the module
is called once per stage, in the same order as the bytecode runs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import isa, lnnb
from .refvm import RefVM


@dataclass(frozen=True)
class Step:
    index: int  # execution order
    pc: int
    op: str
    value: str
    source: str
    occurrence: int  # how many times this pc ran before (loop iteration)
    device_vs_ref: float
    torch_module: str | None
    device_vs_torch: float | None


def read_trace(path: Path) -> list[tuple[int, int, np.ndarray]]:
    """Records of the runner's --trace file: u32 pc, u32 tensor, u32 count, count float32 (little-endian)."""
    data = Path(path).read_bytes()
    records, pos = [], 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated trace record at byte {pos}")
        pc, tensor, count = np.frombuffer(data, dtype="<u4", count=3, offset=pos)
        pos += 12
        values = np.frombuffer(data, dtype="<f4", count=int(count), offset=pos).copy()
        pos += 4 * int(count)
        records.append((int(pc), int(tensor), values))
    return records


def torch_linear_outputs(model: torch.nn.Module, x: np.ndarray) -> dict[str, list[np.ndarray]]:
    outputs: dict[str, list[np.ndarray]] = defaultdict(list)
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, name=name: outputs[name].append(out.detach().numpy().ravel().copy())))
    try:
        with torch.no_grad():
            model(torch.from_numpy(x))
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def compare(model: torch.nn.Module, model_bytes: bytes, x: np.ndarray,
            device_records: list[tuple[int, int, np.ndarray]]) -> list[Step]:
    program = lnnb.read(model_bytes)
    debug = {d["pc"]: d for d in program.meta.get("debug", [])}
    ops = isa.opcode_by_code()
    ref_records: list[tuple[int, int, np.ndarray]] = []
    RefVM(model_bytes).run([x], trace=lambda pc, _name, tensor, arr: ref_records.append((pc, tensor, arr.ravel())))
    if len(ref_records) != len(device_records):
        raise ValueError(f"the device ran {len(device_records)} instructions, the reference VM {len(ref_records)}")
    module_outputs = torch_linear_outputs(model, x)
    seen: dict[int, int] = defaultdict(int)
    module_calls: dict[str, int] = defaultdict(int)
    steps = []
    for i, ((pc, tensor, dev), (ref_pc, _, ref)) in enumerate(zip(device_records, ref_records)):
        if pc != ref_pc:
            raise ValueError(f"instruction {i}: device ran pc {pc}, reference VM pc {ref_pc}")
        info = debug.get(pc, {})
        module = info.get("module")
        vs_torch = None
        if module and module_calls[module] < len(module_outputs.get(module, [])):
            expected = module_outputs[module][module_calls[module]]
            vs_torch = _max_diff(dev, expected)
            module_calls[module] += 1
        steps.append(Step(i, pc, ops[isa.decode(program.code[pc])[0]].name, info.get("value", f"t{tensor}"),
                          info.get("source", ""), seen[pc], _max_diff(dev, ref), module, vs_torch))
        seen[pc] += 1
    return steps


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff[np.isnan(a) & np.isnan(b)] = 0.0
    return float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0.0


def first_mismatch(steps: list[Step], tolerance: float) -> Step | None:
    for step in steps:
        if step.device_vs_ref > tolerance or (step.device_vs_torch is not None and step.device_vs_torch > tolerance):
            return step
    return None


def render(steps: list[Step], tolerance: float, limit: int = 40) -> str:
    lines = [f"{'#':>4} {'pc':>4} {'op':<9} {'iter':>4} {'|dev-ref|':>10} {'|dev-torch|':>11}  value / source"]
    bad = first_mismatch(steps, tolerance)
    shown = steps[:limit] if bad is None else [s for s in steps if abs(s.index - bad.index) <= limit // 2]
    for s in shown:
        torch_col = f"{s.device_vs_torch:.2e}" if s.device_vs_torch is not None else "-"
        mark = " <== first mismatch" if bad is not None and s.index == bad.index else ""
        lines.append(f"{s.index:>4} {s.pc:>4} {s.op:<9} {s.occurrence:>4} {s.device_vs_ref:>10.2e} {torch_col:>11}  "
                     f"{s.value}  [{s.source}]{mark}")
    if bad is None:
        lines.append(f"all {len(steps)} instructions agree within {tolerance:.0e} "
                     f"(device vs reference VM, and vs PyTorch for {sum(s.torch_module is not None for s in steps)} "
                     "linear-layer outputs)")
    else:
        which = "the reference VM" if bad.device_vs_ref > tolerance else f"PyTorch ({bad.torch_module})"
        lines.append(f"first mismatch: instruction {bad.index} (pc {bad.pc}, {bad.op} -> {bad.value}, "
                     f"loop iteration {bad.occurrence}) differs from {which}; source: {bad.source}")
    return "\n".join(lines)
