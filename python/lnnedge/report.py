"""The README's generated tables: verify results (results.yaml's rows) from build/*/verify-*.json, performance
from build/bench.json, the thread policy's measurement from build/threads.json."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from .errors import LnnedgeError
from .paths import BUILD_DIR, ROOT

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
BENCH_BEGIN, BENCH_END = "<!-- bench:begin -->", "<!-- bench:end -->"
RELIABILITY_BEGIN, RELIABILITY_END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
FUZZ_BEGIN, FUZZ_END = "<!-- fuzz:begin -->", "<!-- fuzz:end -->"
THREADS_BEGIN, THREADS_END = "<!-- threads:begin -->", "<!-- threads:end -->"
MATMUL_BEGIN, MATMUL_END = "<!-- matmul:begin -->", "<!-- matmul:end -->"
IRREGULAR_BEGIN, IRREGULAR_END = "<!-- irregular:begin -->", "<!-- irregular:end -->"
MCU_BEGIN, MCU_END = "<!-- mcu-bench:begin -->", "<!-- mcu-bench:end -->"
SOLVERS_BEGIN, SOLVERS_END = "<!-- solvers:begin -->", "<!-- solvers:end -->"
_ENGINES = (("c_vm", "C VM, in-process (runner's timing loop)"), ("c_vm_python", "C VM through the Python binding"),
            ("onnxruntime", "ONNX Runtime"), ("pytorch", "PyTorch eager"), ("reference_vm", "reference VM (numpy)"))


class ReportError(LnnedgeError, ValueError):
    """README.md lacks a block the tables are written into."""


def results_table(build_dir: Path = BUILD_DIR, matrix: Path | None = None) -> str:
    """One row per row of results.yaml (lnnedge.results_matrix), in its order, from the row's verify report; a
    row without its report (or with a `verify --file` report in its place) is refused by name (`invoke results`
    measures them), never left out."""
    from . import results_matrix

    wanted = results_matrix.load(matrix or results_matrix.MATRIX_FILE)
    reports = {r: r.report(build_dir) for r in wanted}
    missing = [r for r in wanted if reports[r] is None]
    if missing:
        raise ReportError(f"no verify report in {build_dir} for {len(missing)} of the results table's "
                          f"{len(wanted)} rows ({'; '.join(map(str, missing[:3]))}{'; ...' if len(missing) > 3 else ''}"
                          "): run `invoke results --missing` first")
    rows = ["| model | board | ISA | n | max abs err vs PyTorch | tolerance | latency (µs, median) | "
            "RMSE vs true function (or accuracy) | passed |", "|---|---|---|---|---|---|---|---|---|"]
    for row in wanted:
        r = reports[row]
        latency = f"{r['latency_us']:.1f}" + (" (emulated)" if r.get("emulated") else "")
        model = f"{r['model']} ({r['weights']} weights)" if r.get("weights") else r["model"]
        tolerance = f"{r['tolerance']:.0e}"
        if "rows_within_float32_tolerance" in r:  # w8a16: the rounding's own effect (pipeline/verify.py)
            tolerance += (f" (rounding effect; {100 * r['rows_within_float32_tolerance']:.1f} % of rows within "
                          f"float32's)")
        rows.append(f"| {model} | {r['board']} | {r['isa']} | {r['n']} | {r['max_abs_err']:.2e} | "
                    f"{tolerance} | {latency} | {_task_metric(r)} | "
                    f"{'yes' if r['passed'] else 'NO'} |")
    return "\n".join(rows)


def bench_table(bench: dict) -> str:
    """Engines x batch sizes (median µs per inference and the ratio to the C VM), then the goals."""
    large = bench["large_batch"]
    rows = [f"{bench['model']} on {bench['cpu']}, {bench['threads']} thread, C VM kernels {bench['isa']}; "
            "median per inference (ratio to the C VM):", "",
            f"| engine | batch 1 (µs) | batch {large} (µs) |", "|---|---|---|"]
    for key, label in _ENGINES:
        cells = []
        for batch in ("batch1", f"batch{large}"):
            r = bench["results"][batch].get(key)
            cells.append(f"{r['median_us']:.2f} (×{r['ratio_to_c_vm']:.2f})" if r else "—")
        rows.append(f"| {label} | {cells[0]} | {cells[1]} |")
    rows += ["", "| goal | measured | target | met |", "|---|---|---|---|"]
    for name, g in bench["goals"].items():
        rows.append(f"| {name} | {g['value']:.3g} | {g['goal']} | {'yes' if g['met'] else 'NO'} |")
    if "weights" in bench:
        rows += ["", _weights_table(bench["weights"], large)]
    return "\n".join(rows)


def _weights_table(w: dict, large: int) -> str:
    base = w["baseline"]
    rows = [f"The C VM with each weight scheme (`invoke compile --quant`), median of {w['rounds']} interleaved "
            f"rounds (ratio to {base}):", "",
            f"| weights | file (bytes) | arena, batch 1 (bytes) | batch 1 (µs) | batch {large} (µs) |",
            "|---|---|---|---|---|"]
    for scheme, e in w["schemes"].items():
        cells = [f"{e[k]['median_us']:.2f} (×{e[k]['ratio_to_baseline']:.2f})" for k in ("batch1", f"batch{large}")]
        rows.append(f"| {scheme} | {e['file_bytes']:,} | {e['arena_bytes']['batch1']:,} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def reliability_table(build_dir: Path = BUILD_DIR) -> str:
    """One row per campaign saved under build/reliability/ by `invoke reliability`."""
    from .reliability import load_all

    rows = ["| inputs | tried | rejected cleanly | accepted correctly | crashed | hung | wrongly accepted | how |",
            "|---|---|---|---|---|---|---|---|"]
    for r in load_all(build_dir / "reliability"):
        rows.append(f"| {r.area} | {r.tried:,} | {r.rejected_cleanly:,} | {r.accepted_correctly:,} | {r.crashed} | "
                    f"{r.hung} | {r.wrongly_accepted} | {r.how} |")
    return "\n".join(rows)


def solvers_table(results: list[dict]) -> str:
    """`invoke solvers` (build/solvers/errors.json): each solver's max abs error against torchdiffeq on the host C
    VM and a board, and its steps (adaptive methods: mean per row, device vs torchdiffeq)."""
    boards = sorted({r["board"] for r in results if r.get("board_max_abs_err", -1) >= 0}) or ["board"]
    rows = [f"| case | host vs torchdiffeq | {boards[0]} vs torchdiffeq | reference VM | host vs torchdiffeq's "
            "whole-batch solve | torchdiffeq float32 vs float64 | steps (device / torchdiffeq) |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        board = f"{r['board_max_abs_err']:.1e}" if r.get("board_max_abs_err", -1) >= 0 else "not run"
        adaptive = r.get("device_steps", 0) > 0
        batched = f"{r['batched_max_abs_err']:.1e}" if adaptive else "(the same)"
        steps = (f"{r['device_steps']:.1f} / {r['torchdiffeq_steps']:.1f} ({r['rows_with_other_steps']} rows differ)"
                 if adaptive else f"{r['steps']} / {r['steps']} (its grid)")
        rows.append(f"| {r['name']} | {r['host_max_abs_err']:.1e} | {board} | {r['refvm_max_abs_err']:.1e} | "
                    f"{batched} | {r['torchdiffeq_f32_vs_f64']:.1e} | {steps} |")
    return "\n".join(rows)


def irregular_table(build_dir: Path = BUILD_DIR) -> str:
    """One row per `invoke irregular` report (build/irregular/*.json): Δt-aware vs fixed-Δt held-out RMSE."""
    from .irregular import load_all

    rows = ["| model | sampling | held-out sequences × steps | seeds | RMSE, Δt-aware (median) | "
            "RMSE, fixed Δt (median) | Δt-aware better on every seed | repeating the last sample |",
            "|---|---|---|---|---|---|---|---|"]
    for r in load_all(build_dir / "irregular"):
        rows.append(f"| {r['model']} | Δt ~ U({r['dt_range'][0]:g}, {r['dt_range'][1]:g}) | {r['test_sequences']} × "
                    f"{r['steps']} | {', '.join(str(run['seed']) for run in r['runs'])} | "
                    f"{r['dt_aware_rmse_median']:.4f} | {r['fixed_dt_rmse_median']:.4f} | "
                    f"{'yes' if r['dt_aware_better_every_seed'] else 'NO'} | {r['repeat_last_rmse']:.4f} |")
    return "\n".join(rows)


def fuzz_table(report: dict) -> str:
    """The last `invoke fuzz --target all` campaign (build/fuzz/report-all.json), one row per fuzzer."""
    rows = [f"`invoke fuzz --seconds {report['seconds']} --jobs {report['jobs']}`, finished "
            f"{report.get('finished_at', '?')}:", "",
            "| fuzzer | seconds | executions | exec/s | coverage | checks | findings |",
            "|---|---|---|---|---|---|---|"]
    for r in report["targets"].values():
        if r["target"] == "fuzz_gen":
            refused = ", ".join(f"{status} {n:,}" for status, n in sorted(r["refused"].items()))
            coverage = (f"{r['accepted']:,} accepted ({r['planned']:,} with a run plan), "
                        f"{sum(r['refused'].values()):,} refused ({refused or 'none'})")
            checks = f"{r['checks']:,} differential, {r['mismatches']} mismatches"
        else:
            coverage = f"cov {r['cov']:,}, ft {r['ft']:,}, corpus {r['corpus_size']:,}"
            checks = f"{r['sanitizer_reports']} sanitizer reports"
        findings = f"{r['crash_count']} crashes, {r['timeouts']} hangs/timeouts, {r['ooms']} OOMs"
        rows.append(f"| {r['target']} | {r['seconds']} | {r['executions']:,} | {r['exec_per_sec']:,} | {coverage} | "
                    f"{checks} | {findings} |")
    return "\n".join(rows)


def threads_table(report: dict) -> str:
    """`invoke bench-threads` (build/threads.json): training time per torch thread count, beside busy processes."""
    same = "yes" if report["same_weights"] else "NO"
    rows = [f"`invoke bench-threads`: {report['model']}, {report['epochs']} epochs a run, {report['runs']} runs of "
            f"each (the thread counts alternating), {report['cpu_count']} cores shared with whatever else runs; "
            f"the same trained weights with every thread count: {same}.", "",
            "| CPU-busy processes started beside it | torch threads | median (s) | runs (s) |", "|---|---|---|---|"]
    for c in report["cases"]:
        runs = ", ".join(f"{s:.2f}" for s in c["seconds"])
        rows.append(f"| {c['busy_processes']} | {c['threads']} | {c['median_s']:.2f} | {runs} |")
    return "\n".join(rows)


def matmul_line(m: dict) -> str:
    """`invoke bench-matmul` (build/bench.json's "matmul") in one sentence."""
    return (f"Last run ({m['cpu']}, {m['isa']}, {m['n']}×{m['n']}×{m['n']}, {m['runs']} runs each): median "
            f"{m['vm_ns_median'] / 1e6:.2f} ms vs {m['naive_ns_median'] / 1e6:.1f} ms, ×{m['speedup']:.0f} "
            f"({m['vm_gflops']:.0f} vs {m['naive_gflops']:.1f} GFLOP/s).")


def _replace_block(text: str, begin: str, end: str, body: str) -> str:
    new, count = re.subn(re.escape(begin) + ".*?" + re.escape(end), lambda _m: f"{begin}\n{body}\n{end}", text,
                         flags=re.S)
    if count != 1:
        raise ReportError(f"README.md has no {begin} ... {end} block")
    return new


def _blocks(build_dir: Path) -> Iterator[tuple[str, str, Callable[[], str]]]:
    """Each README block that has a report behind it: (begin marker, end marker, what makes its text), in the
    README's order; performance, reliability and the others only when their reports exist."""
    yield BEGIN, END, lambda: results_table(build_dir)
    bench_path = build_dir / "bench.json"
    if bench_path.is_file():
        bench = json.loads(bench_path.read_text())
        yield BENCH_BEGIN, BENCH_END, lambda: bench_table(bench)
        if "matmul" in bench:
            yield MATMUL_BEGIN, MATMUL_END, lambda: matmul_line(bench["matmul"])
    threads_path = build_dir / "threads.json"
    if threads_path.is_file():
        yield THREADS_BEGIN, THREADS_END, lambda: threads_table(json.loads(threads_path.read_text()))
    if (build_dir / "reliability").is_dir():
        yield RELIABILITY_BEGIN, RELIABILITY_END, lambda: reliability_table(build_dir)
    if any(build_dir.glob("*/bench-*.json")):  # `invoke bench --board` (lnnedge.mcu_bench)
        from .mcu_bench import table as mcu_table

        yield MCU_BEGIN, MCU_END, lambda: mcu_table(build_dir)
    if any(build_dir.glob("*/profile-*.json")):  # `invoke profile` (lnnedge.profile)
        from .profile import PROFILE_BEGIN, PROFILE_END
        from .profile import readme_table as profile_table

        yield PROFILE_BEGIN, PROFILE_END, lambda: profile_table(build_dir)
    if (build_dir / "irregular").is_dir():
        yield IRREGULAR_BEGIN, IRREGULAR_END, lambda: irregular_table(build_dir)
    if any((build_dir / "size").glob("*.json")):  # `invoke size --target T --model M` (lnnedge.footprint)
        from .footprint import SIZE_BEGIN, SIZE_END
        from .footprint import readme_table as size_table

        yield SIZE_BEGIN, SIZE_END, lambda: size_table(build_dir)
    solvers_path = build_dir / "solvers" / "errors.json"
    if solvers_path.is_file():
        yield SOLVERS_BEGIN, SOLVERS_END, lambda: solvers_table(json.loads(solvers_path.read_text()))
    fuzz_path = build_dir / "fuzz" / "report-all.json"
    if fuzz_path.is_file():
        yield FUZZ_BEGIN, FUZZ_END, lambda: fuzz_table(json.loads(fuzz_path.read_text()))


def _name(begin: str) -> str:
    """A block's name, from its begin marker: "<!-- mcu-bench:begin -->" is mcu-bench."""
    return begin.removeprefix("<!-- ").removesuffix(":begin -->")


def update_readme(readme: Path = ROOT / "README.md", build_dir: Path = BUILD_DIR, only: Collection[str] = ()) -> str:
    """The generated tables written into the README (and the fuzz table into vm/fuzz/README.md); returns them all.

    only: the names of the blocks to write (e.g. mcu-bench, profile: their markers' names), each of which must
    have its report in build_dir; the other blocks stay as they are. For a checkout that has measured some of
    the figures again: the results table needs every row of results.yaml measured (ReportError names the
    missing ones), the others are written from what build_dir holds."""
    fuzz_readme = readme.parent / "vm" / "fuzz" / "README.md"
    texts = {readme: readme.read_text(), fuzz_readme: fuzz_readme.read_text()}
    known = {name for text in texts.values() for name in re.findall(r"<!-- ([\w-]+):begin -->", text)}
    if set(only) - known:
        raise ReportError(f"no README block named {', '.join(sorted(set(only) - known))}; the blocks: "
                          f"{', '.join(sorted(known))}")
    blocks = [(begin, end, make) for begin, end, make in _blocks(build_dir) if not only or _name(begin) in only]
    missing = set(only) - {_name(begin) for begin, _, _ in blocks}
    if missing:
        raise ReportError(f"no report in {build_dir} for {', '.join(sorted(missing))}: run its task first")
    tables = []
    for begin, end, make in blocks:
        body = make()
        where = fuzz_readme if begin == FUZZ_BEGIN else readme
        texts[where] = _replace_block(texts[where], begin, end, body)
        tables.append(body)
    for path, text in texts.items():
        path.write_text(text)
    return "\n\n".join(tables)


def _task_metric(r: dict) -> str:
    if r.get("kind") == "sequence":
        return f"{r['device_vs_true_rmse']:.4f} (next sample, {r['n']} × {r['steps']} steps)"
    if r.get("kind") == "classifier":
        return f"accuracy {100 * r['accuracy_device']:.2f} % (same class {100 * r['same_class_share']:.0f} %)"
    return f"{r['device_vs_true_rmse']:.4f}"
