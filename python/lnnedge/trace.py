"""verify --trace: locate the first instruction where the device, the reference VM or PyTorch part ways.

One input row runs on the device with every intermediate tensor dumped (the
runner's --trace: one record per destination), on the reference VM with the
same dump, and through PyTorch with forward hooks on every nn.Linear. The
compiler's debug info (model.lnnb.debug.json) maps each instruction to its IR value,
op, source line and, for linear layers, the module; the k-th execution of a
module's instruction is paired with the module's k-th call in PyTorch (inside
an ODE solve the module is called once per stage, in the same order as the
bytecode runs). An instruction with several destinations (LINEAR_T / MATMUL_T
after fuse_products) lists them ("outputs", "modules").

Optimised code computes some layers in parts (split_linear: x . W[:, :kx] + b
before the loop, h . W[:, kx:] inside it, the sum inside an EWISE): a part
before any loop (the hoisted input projection) is compared with PyTorch's
partial sum over its columns at the layer's first call ("parts" in the debug
table); parts inside the loop have no PyTorch counterpart, and the layer's
whole output is never a tensor. A wrong constant in a part shows up there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import isa, lnnb
from .errors import LnnedgeError
from .refvm import RefVM


class TraceError(LnnedgeError, ValueError):
    """A trace that cannot be compared: truncated, or the device ran other instructions than the reference VM."""


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
            raise TraceError(f"{path}: truncated trace record at byte {pos}")
        pc, tensor, count = np.frombuffer(data, dtype="<u4", count=3, offset=pos)
        pos += 12
        values = np.frombuffer(data, dtype="<f4", count=int(count), offset=pos).copy()
        pos += 4 * int(count)
        records.append((int(pc), int(tensor), values))
    return records


def torch_linear_outputs(model: torch.nn.Module, x: np.ndarray,
                         inputs: dict[str, list[np.ndarray]] | None = None) -> dict[str, list[np.ndarray]]:
    """Every nn.Linear's output at each call (and, into `inputs`, its input)."""
    outputs: dict[str, list[np.ndarray]] = defaultdict(list)
    handles = []

    def hook(name: str):
        def record(_m, args, out):
            outputs[name].append(out.detach().numpy().ravel().copy())
            if inputs is not None:
                inputs.setdefault(name, []).append(args[0].detach().numpy().copy())
        return record

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model(torch.from_numpy(x))
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _partial(model: torch.nn.Module, part: dict, layer_input: np.ndarray) -> np.ndarray:
    """A layer's output from its input columns [c0, c1) only, plus the bias if the part has it."""
    layer = model.get_submodule(part["module"])
    c0, c1 = part["cols"]
    with torch.no_grad():
        y = torch.from_numpy(layer_input[..., c0:c1]) @ layer.weight[:, c0:c1].T
        if part["bias"]:
            y = y + layer.bias
    return y.numpy().ravel()


def compare(model: torch.nn.Module, model_bytes: bytes, x: np.ndarray,
            device_records: list[tuple[int, int, np.ndarray]], source_map: list[dict]) -> list[Step]:
    """The device's and the reference VM's intermediates side by side, labelled by `source_map`
    (compiler/debuginfo.py; without it, by tensor number and not compared with PyTorch)."""
    program = lnnb.read(model_bytes)
    debug = {d["pc"]: d for d in source_map}
    ops = isa.opcode_by_code()
    ref_records: list[tuple[int, int, np.ndarray]] = []
    RefVM(model_bytes).run([x], trace=lambda pc, _name, tensor, arr: ref_records.append((pc, tensor, arr.ravel())))
    if len(ref_records) != len(device_records):
        raise TraceError(f"the device ran {len(device_records)} instructions, the reference VM {len(ref_records)}")
    module_inputs: dict[str, list[np.ndarray]] = {}
    module_outputs = torch_linear_outputs(model, x, module_inputs)
    seen: dict[tuple[int, int], int] = defaultdict(int)
    module_calls: dict[str, int] = defaultdict(int)
    steps = []
    for i, ((pc, tensor, dev), (ref_pc, _, ref)) in enumerate(zip(device_records, ref_records)):
        if pc != ref_pc:
            raise TraceError(f"instruction {i}: device ran pc {pc}, reference VM pc {ref_pc}")
        info = debug.get(pc, {})
        j = tensor - isa.decode(program.code[pc])[2]  # which destination of the instruction
        value, module, part = info.get("value", f"t{tensor}"), info.get("module"), None
        if "outputs" in info and 0 <= j < len(info["outputs"]):
            value = info["outputs"][j]
            module = (info.get("modules") or [None] * len(info["outputs"]))[j] or None
            part = (info.get("parts") or [None] * len(info["outputs"]))[j]
        vs_torch = None
        if module and module_calls[module] < len(module_outputs.get(module, [])):
            expected = module_outputs[module][module_calls[module]]
            vs_torch = _max_diff(dev, expected)
            module_calls[module] += 1
        elif part and seen[pc, j] == 0 and module_inputs.get(part["module"]):
            module = part["module"]
            vs_torch = _max_diff(dev, _partial(model, part, module_inputs[module][0]))
        steps.append(Step(i, pc, ops[isa.decode(program.code[pc])[0]].name, value, info.get("source", ""),
                          seen[pc, j], _max_diff(dev, ref), module, vs_torch))
        seen[pc, j] += 1
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
