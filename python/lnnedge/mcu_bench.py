"""Instruction counts as a deterministic benchmark on emulated microcontrollers (`invoke bench --board qemu-m4`).

The firmware times each inference with its cycle counter (vm/firmware/cycles_v7m.c): under QEMU 7.2 that is
SysTick on the core clock (the nRF51: TIMER0 at 16 MHz), and QEMU's `-icount shift=s` makes the emulated clock
advance exactly 2^s ns per executed guest instruction (QEMU docs, "TCG Instruction Counting":
QEMU_CLOCK_VIRTUAL is computed from the instruction count). So counter ticks = instructions × 2^s ns ×
clock_hz, and the instruction count is ticks / (2^s × clock_hz / 1e9). The bench boots its own emulator with
the smallest shift that makes an instruction at least two SysTick ticks (devices/icount.py: 7 on the 25 MHz MPS2+, 6
on the 32 MHz MPS3 AN547 (Cortex-M55), 4 on the 168 MHz STM32F405), so rounding gives the exact number of
instructions between the firmware's two counter reads around lnn_run, repeatable from run to run, while the
24-bit SysTick wraps (its interrupt handler's few instructions count too) only every 4-8 M instructions: the
median over the rows never holds one.
They are instructions, not cycles: QEMU gives every instruction the same time, a real Cortex-M4 takes 1 to 12+
cycles for one.

Multiply-adds per inference are counted by running the reference VM once on the model (every LINEAR/MATMUL
family product's output elements × its inner dimension, CONV2D's output elements × C·KH·KW).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from . import lnnb
from .artifacts import atomic_write_text
from .build import ensure_built
from .config import Board
from .devices.base import DeviceError, bundled_tests
from .devices.icount import bench_shift, instructions
from .errors import LnnedgeError
from .fit import FitError
from .fit import check as check_fit
from .progress import Progress, silent
from .refvm import RefVM

_PRODUCTS = ("LINEAR", "LINEAR_T", "MATMUL_T", "MATMUL_NT", "MATMUL", "LINEAR_Q8", "LINEAR_TQ8", "MATMUL_TQ8",
             "MATMUL_NTQ8", "LINEAR_W8A16", "MATMUL_W8A16")


# the board whose scalar build the table's comparison lines divide by (the Cortex-M4 baseline)
BASELINE_BOARD = "qemu-m4"


class McuBenchError(LnnedgeError, ValueError):
    """The board cannot give instruction counts (not an emulated firmware board, or no icount)."""


class _CountingVM(RefVM):
    """The reference VM, counting the multiply-adds of the products it computes."""

    macs = 0

    def _compute(self, name: str, axis: int, args: list[np.ndarray], dsts: list[np.ndarray]) -> list[np.ndarray]:
        out = RefVM._compute(name, axis, args, dsts)
        if name in _PRODUCTS:
            # every output element is one dot product over the first operand's last dimension
            self.macs += sum(int(d.size) for d in dsts) * int(args[0].shape[-1])
        elif name == "CONV2D":  # w (O, C, KH, KW): C * KH * KW products per output element
            self.macs += int(dsts[0].size) * int(np.prod(args[1].shape[1:]))
        return out


def macs_per_inference(model: Path) -> int:
    """Multiply-adds of one inference (batch 1) of the model, by running it once on the reference VM."""
    vm = _CountingVM(Path(model).read_bytes())
    inputs, _ = bundled_tests(model)
    vm.run([x[:1] for x in inputs])
    return vm.macs


def check_board(board: Board) -> None:
    """Refuses (McuBenchError) a board that is not an emulated microcontroller."""
    _emulated(board).close()


def _emulated(board: Board):
    """The board as an EmulatorDevice (nothing started yet); refused when it is not emulated firmware."""
    from .devices import open_device
    from .devices.emulator import EmulatorDevice

    device = open_device(board)
    if not isinstance(device, EmulatorDevice):
        device.close()
        raise McuBenchError(f"board {board.name} is not an emulated microcontroller (transport qemu-system): "
                            "instruction counts need QEMU's -icount; time a Linux board with `invoke bench`")
    return device


def count(board: Board, model: Path, shift: int | None = None, image: Path | None = None) -> dict:
    """Instructions per inference of `model` (its bundled test rows, batch 1) on the emulated `board` running
    `image` (default: the target's build, made when missing or stale), under -icount shift=`shift` (default
    bench_shift of the target's clock)."""
    from .devices.emulator import Emulator

    device = _emulated(board)
    if shift is None:
        shift = bench_shift(board.target.clock_hz)
    target = board.target
    bench_target = dataclasses.replace(target, qemu=dataclasses.replace(target.qemu, icount=shift))
    program = image or ensure_built(target, say=lambda _line: None)
    # the bench's own emulator: its shift, and the target's build, not what `invoke flash` last wrote to the
    # board (a selective image for one model)
    device.emulator = Emulator(bench_target, program)
    inputs, tests = bundled_tests(model)
    try:
        result = device.run(model, inputs, batch=1)
    finally:
        device.close()
    clock = float(result.timing["clock_hz"])
    if result.timing.get("cycle_counter") not in ("systick", "timer0"):
        raise McuBenchError(f"board {board.name} counts with {result.timing.get('cycle_counter')}, not SysTick "
                            "or TIMER0: its counts would not follow QEMU's instruction count")
    outputs = np.concatenate([o.reshape(len(tests.outputs), -1) for o in result.outputs], axis=1)
    err = float(np.max(np.abs(outputs.astype(np.float64) - _expected(model, inputs, tests))))
    return {
        "instructions_median": instructions(result.timing["cycles_per_inference_median"], clock, shift),
        "instructions_min": instructions(result.timing["cycles_min"], clock, shift),
        "instructions_max": instructions(result.timing["cycles_max"], clock, shift),
        "rows": int(result.timing["chunks"]),
        "isa": result.timing.get("isa"),
        "kernels": result.info.get("kernels"),
        "max_abs_err_vs_bundled": err,
        "bundled_tolerance": float(tests.max_abs_err),
    }


def _expected(model: Path, inputs: list[np.ndarray], tests: lnnb.TestSet) -> np.ndarray:
    """What the rows, run at batch 1 in one RUN, must give: the bundled outputs, or for a stateful model (whose
    bundled cases are streams of one step each, from zero state) the reference VM's outputs for the rows as
    the one stream they then are."""
    blob = Path(model).read_bytes()
    if not lnnb.state_row(blob):
        return tests.outputs
    steps = RefVM(blob).run_sequence([x[:, None] for x in inputs])
    return np.concatenate([o.reshape(len(tests.outputs), -1) for o in steps], axis=1)


def bench(board: Board, model_name: str, files: dict[str, Path], progress: Progress = silent,
          images: dict[str, Path] | None = None) -> dict:
    """Instructions per inference and per multiply-add for each weight format's file on the board, running
    images[format] (default: the target's build)."""
    check_board(board)  # before the clock of a board without one is asked
    shift = bench_shift(board.target.clock_hz)
    results = {}
    bar = progress(f"{model_name} on {board.name} (qemu -icount shift={shift})", len(files), "weight format")
    try:
        for scheme, path in files.items():
            try:
                check_fit(board, path, None)  # e.g. float16 weights widen into an arena the part does not have
                r = count(board, path, shift, (images or {}).get(scheme))
            except (FitError, DeviceError) as e:
                results[scheme] = {"refused": str(e)}
                bar.advance(last=scheme)
                continue
            macs = macs_per_inference(path)
            r.update(macs=macs, instructions_per_mac=round(r["instructions_median"] / macs, 3))
            results[scheme] = r
            bar.advance(last=scheme)
    finally:
        bar.close()
    return {
        "model": model_name, "board": board.name, "target": board.target.name, "cpu": board.target.cpu,
        "machine": board.target.qemu.machine if board.target.qemu else None,
        "unit": "instructions (QEMU -icount: every instruction counts 1; not cycles)",
        "icount_shift": shift, "counter": "SysTick under qemu -icount",
        "results": results,
    }


def save(data: dict, build_dir: Path) -> Path:
    path = build_dir / data["model"] / f"bench-{data['board']}.json"
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def table(build_dir: Path) -> str:
    """Every build/<model>/bench-<board>.json as rows: instructions per inference and per multiply-add."""
    rows = ["Instructions counted by QEMU (`-icount`: exact and repeatable, every instruction counts 1 — not "
            "cycles: a real core takes 1 to 12+ cycles per instruction); median over the model's bundled test "
            "rows, batch 1, one `lnn_run`.", "",
            "| model | board (CPU) | weights | kernels | instructions / inference | multiply-adds | "
            "instructions / multiply-add |", "|---|---|---|---|---|---|---|"]
    for path in sorted(build_dir.glob("*/bench-*.json")):
        data = json.loads(path.read_text())
        if "icount_shift" not in data:
            continue
        rows_of = [*data["results"].items(), *data.get("scalar_results", {}).items()]
        for scheme, r in rows_of:
            if "refused" in r:
                rows.append(f"| {data['model']} | {data['board']} ({data['cpu']}) | {scheme} | — | "
                            f"{r['refused']} | | |")
                continue
            rows.append(f"| {data['model']} | {data['board']} ({data['cpu']}) | {scheme} | {r['isa']} | "
                        f"{r['instructions_median']:,} | {r['macs']:,} | {r['instructions_per_mac']:.2f} |")
    return "\n".join(rows + _versus_m4_scalar(build_dir) + _quantized_versus_float(build_dir))


def _quantized_versus_float(build_dir: Path) -> list[str]:
    """Lines comparing each quantized file with the float32 one on the same board and kernels (the same run)."""
    lines = []
    for path in sorted(build_dir.glob("*/bench-*.json")):
        data = json.loads(path.read_text())
        base = data.get("results", {}).get("float32", {})
        if "icount_shift" not in data or "instructions_median" not in base:
            continue
        for scheme, r in data["results"].items():
            if scheme == "float32" or "instructions_median" not in r:
                continue
            lines.append(f"- {data['model']} on {data['board']} ({r['isa']} kernels): {scheme} weights "
                         f"{r['instructions_median']:,} instructions per inference = "
                         f"{r['instructions_median'] / base['instructions_median']:.2f} × float32's "
                         f"({base['instructions_median']:,})")
    return ["", *lines] if lines else []


def _versus_m4_scalar(build_dir: Path) -> list[str]:
    """Lines comparing each board's kernel set (float32 weights) with the Cortex-M4 firmware's scalar build
    (qemu-m4's scalar_results), per model that has both."""
    lines = []
    for base_path in sorted(build_dir.glob(f"*/bench-{BASELINE_BOARD}.json")):
        base = json.loads(base_path.read_text()).get("scalar_results", {}).get("float32", {})
        if "instructions_median" not in base:
            continue
        for path in sorted(base_path.parent.glob("bench-*.json")):
            r = json.loads(path.read_text())["results"].get("float32", {})
            if r.get("isa", "scalar") == "scalar" or "instructions_median" not in r:
                continue
            data = json.loads(path.read_text())
            lines.append(f"- {data['model']}, float32 weights: {data['board']} ({data['cpu']}, {r['isa']} kernels) "
                         f"{r['instructions_median']:,} instructions per inference = "
                         f"{r['instructions_median'] / base['instructions_median']:.2f} × the Cortex-M4 scalar "
                         f"build's ({BASELINE_BOARD}, {base['instructions_median']:,})")
    return ["", *lines] if lines else []
