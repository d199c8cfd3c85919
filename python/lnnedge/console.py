"""How reports look on a terminal: tables (rich), plain lines, progress. The one place that formats for people.

`show(report)` prints any report of lnnedge.pipeline.reports; `render(report)` gives the same text as a string
(what a log or a test sees). Off a terminal the output has no colours and a fixed width, and progress is a plain
line every few seconds instead of a redrawn bar (no carriage returns in a log file).
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass
from functools import singledispatch
from typing import TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from . import filesize
from .pipeline.reports import (
    BenchReport,
    BuildReport,
    CheckReport,
    CompileReport,
    FleetReport,
    MatmulReport,
    OpsReport,
    ProfileReport,
    QuantizeReport,
    RunReport,
    SeedsReport,
    StreamReport,
    TraceReport,
    TrainReport,
    VerifyReport,
)
from .progress import Bar

LOG_WIDTH = 1000  # columns off a terminal: nothing wraps or is cut in a log (tables are as wide as their cells)
PLAIN_INTERVAL = 5.0  # seconds between progress lines off a terminal


def _console(file: TextIO) -> Console:
    tty = file.isatty()
    return Console(file=file, width=None if tty else LOG_WIDTH, color_system="auto" if tty else None,
                   markup=False, highlight=False, emoji=False, soft_wrap=False)


def _line(text: str) -> Text:
    return Text(text, no_wrap=True, overflow="ignore")


def _table(*columns: str, right: tuple[int, ...] = ()) -> Table:
    """A table with a header rule and no borders; columns whose index is in `right` are right-aligned."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i in right else "left", overflow="fold")
    return table


@singledispatch
def view(report: object) -> RenderableType:
    """What a report looks like (a rich renderable); one registration per report type."""
    raise TypeError(f"no view of {type(report).__name__}")


view.register(Group, lambda group: group)  # a part of a report's view (bench_view) renders as itself


def render(report: object) -> str:
    """The report as a log shows it: no colours, LOG_WIDTH columns, no padding at the ends of lines."""
    buffer = io.StringIO()
    _console(buffer).print(view(report))
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def show(report: object) -> None:
    if sys.stdout.isatty():
        _console(sys.stdout).print(view(report))
    else:
        sys.stdout.write(render(report))
        sys.stdout.flush()


@dataclass(frozen=True)
class Listing:
    """Rows of plain facts (the targets, the boards) shown as a table."""
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True)
class Heading:
    """A line announcing the next step of a multi-step task (demo)."""
    text: str


def _group(*parts: RenderableType | str | None) -> Group:
    return Group(*(_line(p) if isinstance(p, str) else p for p in parts if p is not None))


@view.register
def _(r: Listing) -> RenderableType:
    table = _table(*r.columns)
    for row in r.rows:
        table.add_row(*row)
    return table


@view.register
def _(r: Heading) -> RenderableType:
    return _line(f"== {r.text}")


@view.register
def _(r: TrainReport) -> RenderableType:
    m = r.metrics
    run = f"{m['epochs']} epochs in {m['train_seconds']:.1f} s, seed {m['seed']}"
    if r.kind == "classifier":
        score = (f"test accuracy {100 * m['test_accuracy']:.2f} % on {m['test_points']} held-out images "
                 f"(target ≥ {100 * m['target_accuracy']:.0f} %)")
    else:
        score = f"test RMSE vs true function {m['test_rmse']:.4f} (target ≤ {m['target_rmse']})"
    return _group(f"{r.recipe}: {score}, {run}", f"wrote {', '.join(str(f) for f in r.files)}")


@view.register
def _(r: SeedsReport) -> RenderableType:
    table = _table("seed", "test RMSE", "seconds", f"verdict (target ≤ {r.target_rmse})", right=(0, 1, 2))
    for m in r.runs:
        table.add_row(str(m["seed"]), f"{m['test_rmse']:.5f}", f"{m['train_seconds']:.1f}",
                      "ok" if m["passed"] else "FAIL")
    return table


@view.register
def _(r: CompileReport) -> RenderableType:
    plan = r.plan
    lines = [f"compiled {r.recipe}{f' ({r.quant} weights)' if r.quant else ''} in {r.seconds:.1f} s -> {r.path} "
             f"({plan['file_bytes']} bytes; code {plan['code_bytes']} B, constants {plan['const_bytes']} B)"]
    if r.quant:
        lines.append(f"{r.quant} weights: {', '.join(r.stored_quantized) or 'none'}")
        if "float_file_bytes" in plan:
            lines.append(f"file size {plan['file_bytes']} B vs {plan['float_file_bytes']} B float "
                         f"({plan['file_bytes'] / plan['float_file_bytes']:.2f}×)")
    lines.append(f"arena: {plan['arena_row']} B per batch row (naive sum {plan['naive_row']} B, largest live set "
                 f"{plan['lower_bound_row']} B) + {plan['arena_fixed']} B fixed; batch 1 needs {r.arena_batch1} B")
    if plan["naive_row"]:
        lines.append(f"per batch row the plan is {100 * plan['arena_row'] / plan['naive_row']:.1f} % of the naive "
                     f"sum and {100 * plan['arena_row'] / max(plan['lower_bound_row'], 1):.1f} % of the largest "
                     f"live set; {plan['in_place']} op(s) write over their operand")
    lines.append(f"listing: {r.listing}")
    return _group(*lines)


@view.register
def _(r: CheckReport) -> RenderableType:
    if r.passed:
        return _line(f"{r.model}: every op has a VM instruction (nothing was emitted; `invoke compile` without "
                     "--check compiles it)")
    return _group(f"{r.model}: {len(r.unsupported)} op(s) will not compile:", *(f"  {u}" for u in r.unsupported),
                  "(`invoke ops` lists what compiles)")


@view.register
def _(r: OpsReport) -> RenderableType:
    table = _table("op", "torch ops", "limits")
    for row in r.rows:
        table.add_row(*row)
    return _group(table, "every op: float32 values; dim 0 of each input is the batch (any size at run time), the "
                         "other dims fixed at compile time")


@view.register
def _(r: BuildReport) -> RenderableType:
    b = r.result
    lines = [f"$ {b.command}", f"built {r.target}: {b.runner} ({b.runner_bytes} bytes)"
             + (f", {b.library}" if b.library else "")]
    if b.memory is not None:
        m = b.memory
        lines.append(f"flash {m['flash']} B (.text {m['text']} + .rodata {m['rodata']} + .data {m['data']}); "
                     f"RAM {m['ram']} of {m['ram_total']} B (.bss {m['bss']} + model buffer {m['model_max']} + "
                     f"arena {m['arena_size']} + stack {m['stack']}); flash budget {r.vm_size_budget} B")
        lines.append(f"resident model (in flash): {r.resident_model}" if r.resident_model else
                     "no resident model: the board runs what is uploaded over the serial line")
    elif b.vm_bytes is not None:
        lines.append(f"VM library (text + data): {b.vm_bytes} bytes of a {r.vm_size_budget}-byte budget")
    return _group(*lines)


@view.register
def _(r: RunReport) -> RenderableType:
    rows = [f"{' '.join(f'{v:g}' for v in x)} -> {' '.join(f'{v:.6f}' for v in y)}"
            for x, y in zip(r.inputs, r.outputs)]
    return _group(*rows, f"on {r.board} ({r.isa}): {r.latency_us:.2f} µs per inference")


@view.register
def _(r: TraceReport) -> RenderableType:
    from . import trace  # loads torch, which listings do not need

    return _group(f"trace of input row {r.row} ({', '.join(f'{v:g}' for v in r.x[0])}) on {r.board}",
                  *trace.render(r.steps, r.tolerance).splitlines())


def _verdict(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def _verify_table(d: dict) -> Table:
    ref, tol = d["reference_vm"], d["tolerance"]
    device = f"device {d['board']} ({d['isa']})"
    if d.get("kind") == "classifier":
        table = _table("", "max |logit err| vs PyTorch", "same class as PyTorch", "accuracy", "verdict")
        table.add_row("PyTorch", "", "", f"{100 * d['accuracy_pytorch']:.2f} %", "")
        table.add_row("reference VM (numpy)", f"{ref['max_abs_err']:.3e}", f"{100 * ref['same_class_share']:.2f} %",
                      f"{100 * ref['accuracy']:.2f} %",
                      _verdict(ref["max_abs_err"] <= tol and ref["same_class_share"] == 1.0))
        table.add_row(device, f"{d['max_abs_err']:.3e}", f"{100 * d['same_class_share']:.2f} %",
                      f"{100 * d['accuracy_device']:.2f} %",
                      _verdict(d["max_abs_err"] <= tol and d["same_class_share"] == 1.0))
        return table
    if d.get("kind") == "file":  # a compiled file: its bundled test set, and the user's module when given
        table = _table("", "max |err| vs PyTorch", "rows", "verdict")
        table.add_row("reference VM (numpy), bundled test set", f"{ref['max_abs_err']:.3e}", str(d["n"]),
                      _verdict(ref["max_abs_err"] <= tol))
        table.add_row(f"{device}, bundled test set", f"{d['max_abs_err']:.3e}", str(d["n"]),
                      _verdict(d["max_abs_err"] <= tol))
        if "vs_module" in d:
            m = d["vs_module"]
            table.add_row(f"{device}, your inputs vs your module", f"{m['max_abs_err']:.3e}", str(m["n"]),
                          _verdict(m["max_abs_err"] <= tol))
        return table
    table = _table("", "max |err| vs PyTorch", "RMSE vs PyTorch", "verdict")
    table.add_row("reference VM (numpy)", f"{ref['max_abs_err']:.3e}", f"{ref['rmse']:.3e}",
                  _verdict(ref["max_abs_err"] <= tol))
    table.add_row(device, f"{d['max_abs_err']:.3e}", f"{d['rmse']:.3e}", _verdict(d["max_abs_err"] <= tol))
    return table


@view.register
def _(r: VerifyReport) -> RenderableType:
    d = r.data
    verdict = "PASSED" if d["passed"] else "FAILED"
    latency = d.get("latency_us")
    emulated = " under QEMU emulation, not device speed" if d.get("emulated") else ""
    on_device = f"on-device latency {latency:.2f} µs (median per inference{emulated})" if latency is not None else ""
    lines: list[str] = []
    if r.kind == "classifier":
        if on_device:
            lines.append(on_device)
        lines.append(f"n = {d['n']} test images (the whole test set), logit tolerance {d['tolerance']:.0e}, "
                     f"identical classes required")
    else:
        n = f"{d['n']} sequences × {d['steps']} steps" if r.kind == "sequence" else d["n"]
        lines.append(f"n = {n}, tolerance {d['tolerance']:.0e}" + (f", {on_device}" if on_device else ""))
    if d.get("cycles_per_inference_median") is not None:
        lines.append(f"{d['cycles_per_inference_median']:.0f} cycles per inference (median, "
                     f"{d.get('cycle_counter', 'cycle counter')})")
    if d.get("vs_float_model"):
        f = d["vs_float_model"]
        lines.append(f"{d['weights']} model: held to PyTorch with the same quantized weights; vs the float "
                     f"model max |err| {f['max_abs_err']:.3e}, RMSE {f['rmse']:.3e}")
    if r.kind not in ("classifier", "file"):
        truth = "the clean next sample" if r.kind == "sequence" else "true function"
        lines.append(f"PyTorch vs {truth} RMSE {d['pytorch_vs_true_rmse']:.4f}")
    lines.append(verdict)
    return _group(_verify_table(d), *lines, f"wrote {r.json_path} and {r.plot_path}")


@view.register
def _(r: FleetReport) -> RenderableType:
    table = _table("board", "result", *r.columns)
    for o in r.outcomes:
        cells = [f"{v:.2e}" if isinstance(v, float) else str(v) for v in (o.detail.get(c, "") for c in r.columns)]
        table.add_row(o.board, "ok" if o.ok else f"FAILED: {o.error}" if o.error else "FAILED", *cells)
    ok = sum(o.ok for o in r.outcomes)
    return _group(table, f"{ok} of {len(r.outcomes)} boards ok")


def _sizes(sizes: dict[str, dict[str, int]]) -> Table:
    """File-size breakdowns side by side (column title -> breakdown); a part no file has is left out."""
    table = _table("file bytes", *sizes, "", right=tuple(range(1, len(sizes) + 1)))
    for part, what in filesize.PARTS:
        if any(parts[part] for parts in sizes.values()):
            table.add_row(part, *(f"{parts[part]:,}" for parts in sizes.values()), what)
    table.add_row("total", *(f"{sum(parts.values()):,}" for parts in sizes.values()), "")
    return table


@view.register
def _(r: QuantizeReport) -> RenderableType:
    d, tol = r.data, r.data["tolerance"]
    parts: list[RenderableType | str] = [view(c) for c in r.compiled]
    parts += [f"{d['model']}: {d['scheme']}",
              f"  quantized: {', '.join(d['quantized_tensors'])}",
              f"  kept float: {', '.join(d['float_tensors'])}",
              f"  quantized vs float   max |err| {d['max_abs_err']:.3e} (≤ {tol['max_abs_err']})   "
              f"RMSE {d['rmse']:.3e}",
              f"  vs true function     float RMSE {d['task_rmse_float']:.4f}   "
              f"quantized RMSE {d['task_rmse_quant']:.4f} (≤ {tol['task_rmse']})"]
    if d.get("size_ratio"):
        parts.append(f"  model file           {d['float_file_bytes']} B float -> {d['quant_file_bytes']} B "
                     f"{d['quant']} ({d['size_ratio']:.2f}×)")
        parts.append(_sizes(d["size_breakdown"]))
    parts += [f"  {'PASSED' if r.passed else 'FAILED'}", f"wrote {r.path}"]
    return _group(*parts)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


@view.register
def _(r: ProfileReport) -> RenderableType:
    d = r.data
    unit = d["unit"] if d["unit"] != "ns" else "ns"
    table = _table("pc", "op", f"{unit}/inference", "share", "calls", "source line", "module", right=(0, 2, 3, 4))
    for row in sorted(d["rows"], key=lambda x: -x["per_run"]):
        if row["calls_per_run"] == 0:
            continue
        table.add_row(str(row["pc"]), row["op"], _fmt(row["per_run"]), f"{row['share_percent']:.1f} %",
                      f"{row['calls_per_run']:g}", row["source"] or row["value"], row["module"])
    unrun = [str(x["pc"]) for x in d["rows"] if x["calls_per_run"] == 0]
    kind = "emulated" if d["emulated"] else "measured"
    return _group(
        f"{d['model']} on {d['board']} ({d['target']}, {d['isa']} kernels): {d['runs']} runs of the bundled test "
        f"case 0, batch 1; clock {d['clock']} ({kind})", table,
        f"not executed (PUSH/DROP, compiled into the plan): pc {', '.join(unrun)}" if unrun else None,
        f"sum of the instructions {_fmt(d['sum_corrected'])} {unit} per inference (hook cost "
        f"{d['overhead_per_mark']:.2f} {unit} x {d['marks_per_run']:g} marks subtracted) vs the whole run without "
        f"profiling {_fmt(d['whole_plain'])}: {100 * d['sum_corrected_vs_whole_plain']:.1f} %",
        f"raw sum {_fmt(d['sum_raw'])} vs the whole run with the hook on {_fmt(d['whole_profiled'])}: "
        f"{100 * d['sum_raw_vs_whole_profiled']:.1f} % (the rest: lnn_run's entry and exit, outside every step)",
        f"method: {d['method']}", f"wrote {r.path} and {r.chart}")


def _matmul(m: dict) -> Group:
    table = _table("", "median ms", "min ms", "GFLOP/s", right=(1, 2, 3))
    table.add_row(f"VM MATMUL kernel ({m['isa']}, blocked)", f"{m['vm_ns_median'] / 1e6:.3f}",
                  f"{min(m['vm_ns']) / 1e6:.3f}", f"{m['vm_gflops']:.2f}")
    table.add_row("naive triple loop (C, same flags)", f"{m['naive_ns_median'] / 1e6:.3f}",
                  f"{min(m['naive_ns']) / 1e6:.3f}", f"{m['naive_gflops']:.2f}")
    return _group(f"matmul {m['n']}x{m['n']}x{m['n']} float32 on {m['cpu']}, 1 thread, {m['runs']} runs each "
                  "(interleaved)", table,
                  f"speed-up (ratio of the medians): x{m['speedup']:.1f} (goal >= 10: "
                  f"{'met' if m['speedup'] >= 10 else 'NOT met'}); results differ by at most {m['max_abs_diff']:.2g}")


def _weights(w: dict, large: int) -> Group:
    table = _table("scheme", "file bytes", "arena (batch 1)", "batch 1 µs", f"batch {large} µs", right=(1, 2, 3, 4))
    for scheme, e in w["schemes"].items():
        table.add_row(scheme, f"{e['file_bytes']:,}", f"{e['arena_bytes']['batch1']:,}",
                      *(f"{e[k]['median_us']:.2f} (×{e[k]['ratio_to_baseline']:.2f})"
                        for k in ("batch1", f"batch{large}")))
    return _group(f"weights: the C VM per weight scheme, median of {w['rounds']} interleaved rounds "
                  f"(× {w['baseline']})", table)


def bench_view(d: dict) -> Group:
    """build/bench.json as tables: engines per batch size, the goals, the weight schemes, the MATMUL kernel."""
    from . import bench  # its engine names; imported here as it loads torch, which listings do not need

    parts: list[RenderableType | str] = [f"{d['model']} on {d['cpu']}, 1 thread, C VM kernels: {d['isa']}"]
    for key, row in d["results"].items():
        table = _table(f"{key}: time per inference (µs)", "median", "min", "max", "× C VM", right=(1, 2, 3, 4))
        for name in bench.ENGINES:
            s = row[name]
            table.add_row(bench.LABELS[name], f"{s['median_us']:.2f}", f"{s['min_us']:.2f}", f"{s['max_us']:.2f}",
                          f"{s['ratio_to_c_vm']:.1f}")
        parts.append(table)
    parts.append(f"binding overhead at batch 1: {d['binding_overhead_us']:.2f} µs")
    mc = d.get("multicore")
    if mc:
        parts.append(f"C VM on {mc['threads']} threads, batch {mc['rows']}: {mc['wall_us_median']:.2f} µs per "
                     f"inference (1 thread: {mc['one_thread_wall_us_median']:.2f}), speed-up x{mc['speedup']:.2f}")
    goals = _table("goal", "measured", "target", "", right=(1,))
    for name, g in d.get("goals", {}).items():
        goals.add_row(name, f"{g['value']:.2f}", g["goal"], "met" if g["met"] else "NOT met")
    parts.append(goals)
    if d.get("weights"):
        parts.append(_weights(d["weights"], d["large_batch"]))
    if d.get("matmul"):
        parts.append(_matmul(d["matmul"]))
    return _group(*parts)


@view.register
def _(r: BenchReport) -> RenderableType:
    return _group(*(view(c) for c in r.compiled), bench_view(r.data), f"wrote {r.path}")


@view.register
def _(r: MatmulReport) -> RenderableType:
    return _group(_matmul(r.data), f"wrote {r.path}")


@view.register
def _(r: StreamReport) -> RenderableType:
    # the whole line fed: with timespans its last number is the step's elapsed time
    table = _table("step", "line in" if r.x.shape[1] > 1 else "input", "streamed", "whole call", r.reference_name,
                   right=(0, 1, 2, 3, 4))
    for t in range(len(r.x)):
        table.add_row(str(t), ", ".join(f"{v:.5f}" for v in r.x[t]), f"{r.streamed[t, 0]:.6f}",
                      f"{r.whole[t, 0]:.6f}", f"{r.reference[t, 0]:.6f}")
    return _group(f"{r.recipe} on {r.board}: one sample per line through `lnnvm stream`, state kept in the VM",
                  table, f"streamed vs whole-sequence call: max |diff| {r.gap:.3e}; vs {r.reference_name}: max |err| "
                  f"{r.err:.3e} (tolerance {r.tolerance:.0e})")


class _PlainBar:
    """Progress in a log: a line when it starts, one every PLAIN_INTERVAL seconds, and one at the end."""

    def __init__(self, file: TextIO, what: str, total: int, unit: str):
        self.file, self.what, self.total, self.unit = file, what, total, unit
        self.done, self.status = 0, ""
        self.started = self.last = time.monotonic()
        self._write()

    def _write(self) -> None:
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        status = f", {self.status}" if self.status else ""
        self.file.write(f"{self.what}: {self.done}/{self.total} {self.unit}s{share}, "
                        f"{time.monotonic() - self.started:.0f} s{status}\n")
        self.file.flush()

    def advance(self, **status: str) -> None:
        self.done += 1
        self.status = ", ".join(f"{k} {v}" for k, v in status.items())
        now = time.monotonic()
        if now - self.last >= PLAIN_INTERVAL:
            self.last = now
            self._write()

    def close(self) -> None:
        if self.file is not None:
            self._write()
            self.file = None  # type: ignore[assignment]


class _LiveBar:
    """Progress on a terminal: one rich bar, redrawn in place, left on the screen when done."""

    def __init__(self, file: TextIO, what: str, total: int, unit: str):
        self.progress = RichProgress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn(f"{unit}s"),
                                     TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                                     console=_console(file))
        self.task = self.progress.add_task(what, total=total, status="")
        self.progress.start()

    def advance(self, **status: str) -> None:
        self.progress.update(self.task, advance=1, status=", ".join(f"{k} {v}" for k, v in status.items()))

    def close(self) -> None:
        self.progress.stop()


def progress(what: str, total: int, unit: str) -> Bar:
    """A progress bar on stderr (lnnedge.progress.Progress): live on a terminal, plain lines in a log."""
    return (_LiveBar if sys.stderr.isatty() else _PlainBar)(sys.stderr, what, total, unit)
