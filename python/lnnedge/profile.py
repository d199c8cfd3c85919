"""`invoke profile`: where one inference's time goes, per instruction of the VM program.

The profiling build (vm/Makefile PROFILE=1, -DLNN_PROFILE; the normal build has no hook at all) reads a clock at
the start of every step lnn_run executes and adds the time until the next step starts to the earlier step's pc
(vm/include/lnnvm.h): loop iterations add up on their pc, `calls` counts them. The clock is the board's:
clock_gettime(CLOCK_MONOTONIC) in ns in the runner (host, QEMU user mode, SSH: `lnnvm profile`), the firmware's
cycle counter over the serial protocol (its PROFILE frame: DWT CYCCNT on a real core, SysTick where the core has
no working CYCCNT). Under QEMU system mode the emulator runs with the -icount shift of `invoke bench --board`
(devices/icount.py bench_shift), so SysTick ticks are QEMU's exact instruction count: those figures are "emulated"
instructions, not cycles.

Each interval also holds one hook's own cost (a clock read and two counter updates): the runner and firmware
measure it by back-to-back marks, and it is subtracted once per call. The device runs the model's bundled test
case 0 (batch 1) `runs` times with the counters and as many times without, alternating, each timed from outside,
so the report can say honestly how the per-instruction sum compares with the whole run measured with the hook
on (raw) and without it (after the subtraction). The runner alternates in 100 blocks and reports the fastest
block of each kind (the one the machine's other work disturbed least), scaled to `runs`; the emulated firmware's
counts are exact, every run alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import isa, lnnb, plots
from .artifacts import atomic_write_text
from .build import _failed, firmware_make_args, make_command, output_dir, takes_no_upload
from .compiler import debuginfo
from .config import Board
from .errors import LnnedgeError
from .paths import BUILD_DIR

RUNS_RUNNER = 2000  # host / QEMU user / SSH: a run of ltc-sine is a few µs on a real core
RUNS_FIRMWARE = 3  # emulated firmware: the counts are exact and the same every run
TOP = 12  # bars in the chart


class ProfileError(LnnedgeError, ValueError):
    """A profile that cannot be made or does not add up (a device answered counters of another program)."""


def _run_make(args: list[str], what: str) -> None:
    import subprocess

    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _failed(what, proc)


def profile_program(board: Board, model: Path) -> Path:
    """The board's profiling program, made (make decides what is stale): the runner built with PROFILE=1 into
    build/vm/<target>-profile, or a firmware image with -DLNN_PROFILE into build/profile/<board>: every op
    linked and the model uploaded, or, on a target that takes no upload, `model` built in."""
    target = board.target
    if target.firmware is not None:
        out = BUILD_DIR / "profile" / board.name
        extra = f"{target.firmware.variables.get('EXTRA_CFLAGS', '')} -DLNN_PROFILE=1".strip()
        built_in = model if takes_no_upload(target) else None
        args = [a for a in firmware_make_args(target, built_in, out) if not a.startswith("EXTRA_CFLAGS=")]
        _run_make([*args, f"EXTRA_CFLAGS={extra}"], f"building the profiling firmware for {target.name}")
        return out / target.firmware.elf
    out = output_dir(target).with_name(f"{target.name}-profile")
    _run_make([*make_command(target, out, "runner"), "PROFILE=1"], f"building the profiling runner for {target.name}")
    return out / "lnnvm"


def rows(model: Path, raw: dict) -> list[dict]:
    """One row per pc of the program: op, calls and time per inference (hook cost subtracted), share of the
    sum, and the source line and module from model.lnnb.debug.json (when the compiler wrote one)."""
    data = Path(model).read_bytes()
    program = lnnb.read(data)
    counters = raw["counters"]
    if len(counters) != len(program.code):
        raise ProfileError(f"the device counted {len(counters)} instructions, {model.name} has {len(program.code)}: "
                           "it profiled another program")
    ops = isa.opcode_by_code()
    debug = {d["pc"]: d for d in debuginfo.load(Path(model), data)}
    runs, overhead = raw["runs"], raw["overhead_ticks_per_mark"]
    out = []
    for pc, (ticks, calls) in enumerate(counters):
        info = debug.get(pc, {})
        modules = [m for m in (info.get("modules") or []) if m] or [p["module"] for p in (info.get("parts") or [])]
        module = info.get("module") or ", ".join(dict.fromkeys(modules)) or ""
        out.append({"pc": pc, "op": ops[isa.decode(program.code[pc])[0]].name,
                    "calls_per_run": calls / runs,
                    "raw_per_run": ticks / runs,
                    "per_run": max(0.0, ticks - calls * overhead) / runs,
                    "value": info.get("value", ""), "source": info.get("source", ""), "module": module})
    total = sum(r["per_run"] for r in out) or 1.0
    for r in out:
        r["share_percent"] = 100.0 * r["per_run"] / total
    return out


def summary(raw: dict, table: list[dict]) -> dict:
    """The whole-run figures beside the per-instruction sums (per inference)."""
    runs = raw["runs"]
    plain, profiled = raw["whole_plain_ticks"] / runs, raw["whole_profiled_ticks"] / runs
    raw_sum, corrected = sum(r["raw_per_run"] for r in table), sum(r["per_run"] for r in table)
    return {"whole_plain": plain, "whole_profiled": profiled, "sum_raw": raw_sum, "sum_corrected": corrected,
            "sum_raw_vs_whole_profiled": raw_sum / profiled if profiled else None,
            "sum_corrected_vs_whole_plain": corrected / plain if plain else None,
            "marks_per_run": sum(r["calls_per_run"] for r in table),
            "overhead_per_mark": raw["overhead_ticks_per_mark"]}


def save(model: Path, name: str, board: str, data: dict) -> tuple[Path, Path]:
    """profile-<board>.json beside the model file (build/<model>/ for a recipe's) and its bar chart (.png)."""
    path = Path(model).parent / f"profile-{board}.json"
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    png = path.with_suffix(".png")
    top = sorted((r for r in data["rows"] if r["calls_per_run"]), key=lambda r: -r["per_run"])[:TOP]
    plots.profile_bars([f"pc {r['pc']} {r['op']}  {r['source'] or r['value']}"[:70] for r in top],
                       [r["per_run"] for r in top], [r["share_percent"] for r in top],
                       f"{name} on {board}: {data['unit']} per inference by instruction", data["unit"], png)
    return path, png


PROFILE_BEGIN, PROFILE_END = "<!-- profile:begin -->", "<!-- profile:end -->"


def readme_table(build_dir: Path, top: int = 3) -> str:
    """Every build/<model>/profile-<board>.json as its `top` instructions and how the sum compares with the
    whole run (the README's example profiles, from `invoke profile`)."""
    rows = ["`invoke profile`: the instructions that take most of one inference (bundled test case 0, batch 1), "
            "each with its share of the sum, and the sum against the whole run timed without the profiling hook.",
            "", "| model | board (clock) | pc | op | per inference | share | source line |",
            "|---|---|---|---|---|---|---|"]
    for path in sorted(build_dir.glob("*/profile-*.json")):
        d = json.loads(path.read_text())
        kind = "emulated" if d["emulated"] else "measured"
        where = f"{d['board']} ({d['unit']}, {kind})"
        for r in sorted(d["rows"], key=lambda r: -r["per_run"])[:top]:
            rows.append(f"| {d['model']} | {where} | {r['pc']} | {r['op']} | {r['per_run']:,.0f} | "
                        f"{r['share_percent']:.1f} % | `{r['source'] or r['value']}` |")
        rows.append(f"| {d['model']} | {where} | | sum | {d['sum_corrected']:,.0f} | "
                    f"{100 * d['sum_corrected_vs_whole_plain']:.1f} % of the whole run without the hook "
                    f"({d['whole_plain']:,.0f}) | {d['runs']} runs |")
    return "\n".join(rows)
