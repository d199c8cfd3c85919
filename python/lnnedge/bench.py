"""invoke bench: the same trained model on every engine, in one run, one thread each.

Engines: the C VM timed by its own runner loop (in-process C), the C VM through
the Python binding, the reference VM, PyTorch eager and ONNX Runtime (the
model exported with torch.onnx; onnxruntime is a benchmark-only dependency).
For batch 1 and a large batch it reports the median, min and max time per
inference and each engine's ratio to the in-process C VM and writes
build/bench.json (lnnedge.console shows it as tables). This machine is noisy: ratios measured
in the same run are the figures to trust.

`matmul` (also alone: invoke bench-matmul): the VM's blocked, vectorized MATMUL
kernel against a naive triple loop in C at 256 x 256 x 256, both in one binary
built with the VM's flags (vm/tests/matmul_bench.c): every run's time, the
medians and their ratio. A benchmark, never asserted by a test.

`weights`: the in-process C VM on the same model stored with float32, int8 and
float16 weights (the files of `invoke compile --quant`): the file's bytes, the
arena the caller provides, and the median time per inference at batch 1 and
the large batch, each scheme's runs interleaved with the others' so the ratios
to float32 share the machine's state.

Besides, for the large batch, the C VM on every core (`lnnvm run --threads N`,
one model and arena per thread): its wall time per inference and speed-up
over one thread ("multicore"); and every goal of the performance issue with
the measured figure and whether it is met ("goals"). Every figure in
bench.json is named by what it measures (µs per inference unless the name
says otherwise), so the README's table can be generated from it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import data
from .artifacts import atomic_write_text
from .data import Draw, seed_for
from .lnnb import read
from .paths import BUILD_DIR
from .progress import Progress, silent
from .recipe import Recipe
from .refvm import RefVM
from .runtime import CVM

ENGINES = ("c_vm", "c_vm_python", "onnxruntime", "pytorch", "reference_vm")
LABELS = {"c_vm": "C VM (in-process C)", "c_vm_python": "C VM via Python binding",
          "reference_vm": "reference VM (numpy)", "pytorch": "PyTorch eager", "onnxruntime": "ONNX Runtime"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _stats(per_inference_us: list[float]) -> dict:
    arr = np.asarray(per_inference_us)
    return {"median_us": float(np.median(arr)), "min_us": float(arr.min()), "max_us": float(arr.max()),
            "runs": int(arr.size)}


def _time_calls(call: Callable[[], object], runs: int, rows: int, warmup: int) -> dict:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6 / rows)
    return _stats(samples)


def export_onnx(model: torch.nn.Module, inputs: int, path: Path) -> Path:
    """torch.onnx's TorchScript exporter: it traces odeint's fixed-grid loop (the torch.export-based
    exporter stops at odeint's value-dependent checks, like torch.export itself)."""
    from .extras import require

    require("onnx", "bench", "invoke bench (torch.onnx writes the benchmark model with it)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, inputs),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return path


def _runner(runner: Path, model_file: Path, x: np.ndarray, batch: int, repeat: int, threads: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="lnnedge-bench-") as tmp:
        np.ascontiguousarray(x, dtype="<f4").tofile(Path(tmp) / "in.f32")
        proc = subprocess.run([str(runner), "run", str(model_file), "--in", f"{tmp}/in.f32", "--out", f"{tmp}/out.f32",
                               "--batch", str(batch), "--repeat", str(repeat), "--threads", str(threads)],
                              capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _runner_timing(runner: Path, model_file: Path, x: np.ndarray, batch: int, repeat: int) -> dict:
    timing = _runner(runner, model_file, x, batch, repeat)
    return {"median_us": timing["latency_us_median"], "min_us": timing["latency_us_min"],
            "max_us": timing["latency_us_max"], "runs": timing["chunks"] * timing.get("repeat", 1),
            "isa": timing["isa"]}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def multicore(runner: Path, model_file: Path, x: np.ndarray, repeat: int) -> dict:
    """All rows of x on 1 thread and on every core (one batch per thread): wall time per inference (the whole run
    divided by its rows) and the speed-up."""
    n = cores()
    one = _runner(runner, model_file, x, len(x), repeat, threads=1)
    many = _runner(runner, model_file, x, -(-len(x) // n), repeat, threads=n)
    return {"threads": n, "rows": len(x), "runs": repeat,
            "one_thread_wall_us_median": one["wall_us_per_row_median"],
            "wall_us_median": many["wall_us_per_row_median"], "wall_us_min": many["wall_us_per_row_min"],
            "speedup": one["wall_us_per_row_median"] / many["wall_us_per_row_median"]}


def weights(runner: Path, files: dict[str, Path], x: np.ndarray, rounds: int, progress: Progress = silent) -> dict:
    """Each weight scheme's file (scheme -> .lnnb, float32 first) timed by the runner at batch 1 and at len(x):
    `rounds` rounds, every scheme once per round; a scheme's figure is the median of its rounds' medians."""
    batches = (1, len(x))
    medians: dict[tuple[str, int], list[float]] = {(s, b): [] for s in files for b in batches}
    bar = progress("bench weights", rounds * len(files) * len(batches), "run")
    try:
        for _ in range(rounds):
            for scheme, path in files.items():
                for batch in batches:
                    timing = _runner(runner, path, x, batch, repeat=1 if batch == 1 else 5)
                    medians[(scheme, batch)].append(timing["latency_us_median"])
                    bar.advance()
    finally:
        bar.close()
    base = next(iter(files))
    out: dict = {"rounds": rounds, "baseline": base, "schemes": {}}
    for scheme, path in files.items():
        data = path.read_bytes()
        program = read(data)
        entry = {"file_bytes": len(data), "arena_bytes": {f"batch{b}": program.arena_size(b) for b in batches}}
        for batch in batches:
            median = float(np.median(medians[(scheme, batch)]))
            entry[f"batch{batch}"] = {
                "median_us": median,
                "ratio_to_baseline": median / float(np.median(medians[(base, batch)]))}
        out["schemes"][scheme] = entry
    return out


GOALS = {  # the performance issue's targets: figure -> (comparison, bound)
    "batch1_c_vm_us": ("<=", 3.0),
    "batch1_c_vm_speedup_vs_onnxruntime": (">=", 10.0),
    "batch1_c_vm_speedup_vs_pytorch": (">=", 50.0),
    "large_batch_c_vm_ratio_to_onnxruntime": ("<=", 1.0),
    "large_batch_c_vm_ratio_to_pytorch": ("<=", 0.5),
    "binding_overhead_us": ("<=", 2.0),
}


def goals(results: dict, large_batch: int, binding_overhead: float) -> dict:
    """Each goal: the measured figure, the bound, whether it is met."""
    one, big = results["batch1"], results[f"batch{large_batch}"]
    figures = {
        "batch1_c_vm_us": one["c_vm"]["median_us"],
        "batch1_c_vm_speedup_vs_onnxruntime": one["onnxruntime"]["median_us"] / one["c_vm"]["median_us"],
        "batch1_c_vm_speedup_vs_pytorch": one["pytorch"]["median_us"] / one["c_vm"]["median_us"],
        "large_batch_c_vm_ratio_to_onnxruntime": big["c_vm"]["median_us"] / big["onnxruntime"]["median_us"],
        "large_batch_c_vm_ratio_to_pytorch": big["c_vm"]["median_us"] / big["pytorch"]["median_us"],
        "binding_overhead_us": binding_overhead,
    }
    out = {}
    for name, (op, bound) in GOALS.items():
        value = figures[name]
        out[name] = {"value": value, "goal": f"{op} {bound:g}",
                     "met": bool(value <= bound if op == "<=" else value >= bound)}
    return out


def bench(recipe: Recipe, model: torch.nn.Module, model_files: dict[str, Path], runner: Path, library: Path,
          large_batch: int = 1024, quick: bool = False, progress: Progress = silent) -> dict:
    """model_files: weight scheme -> .lnnb, float32 first (the engines table runs that one)."""
    torch.set_num_threads(1)  # the kit's thread policy (threads.py); ONNX Runtime gets one thread as well
    from .extras import require

    ort = require("onnxruntime", "bench", "invoke bench")

    x_all = data.grid_points(recipe.data, large_batch, seed=seed_for(recipe.data, Draw.BENCH)).astype(np.float32)
    model_file = next(iter(model_files.values()))
    blob = model_file.read_bytes()
    vm = CVM(blob, max_batch=large_batch, library=library)
    ref = RefVM(blob)
    with tempfile.TemporaryDirectory(prefix="lnnedge-onnx-") as tmp:
        onnx_path = export_onnx(model, recipe.model.inputs, Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    scale = 0.1 if quick else 1.0

    def runs(n: int) -> int:
        return max(5, int(n * scale))

    results: dict[str, dict] = {}
    plan = [(1, x_all[:1]), (large_batch, x_all)]
    bar = progress("bench", len(plan) * len(ENGINES), "engine")
    try:
        for batch, x in plan:
            key = f"batch{batch}"
            row: dict[str, dict] = {}
            tx = torch.from_numpy(x)
            with torch.no_grad():
                row["c_vm"] = _runner_timing(runner, model_file, x_all if batch == 1 else x, batch,
                                             repeat=runs(5) if batch == 1 else runs(50))
                bar.advance()
                row["c_vm_python"] = _time_calls(lambda x=x: vm.run([x]), runs(5000 if batch == 1 else 100), batch, 50)
                bar.advance()
                row["onnxruntime"] = _time_calls(lambda x=x: session.run(None, {"x": x}),
                                                 runs(3000 if batch == 1 else 50), batch, 20)
                bar.advance()
                row["pytorch"] = _time_calls(lambda tx=tx: model(tx), runs(300 if batch == 1 else 20), batch, 5)
                bar.advance()
                row["reference_vm"] = _time_calls(lambda x=x: ref.run([x]), runs(100 if batch == 1 else 5), batch, 2)
                bar.advance()
            base = row["c_vm"]["median_us"]
            for stats in row.values():
                stats["ratio_to_c_vm"] = stats["median_us"] / base
            results[key] = row
    finally:
        bar.close()
    batch1 = results["batch1"]
    overhead = batch1["c_vm_python"]["median_us"] - batch1["c_vm"]["median_us"]
    report = {"model": recipe.name, "cpu": cpu_model(), "threads": 1, "isa": results["batch1"]["c_vm"]["isa"],
              "large_batch": large_batch, "results": results, "binding_overhead_us": overhead,
              "multicore": multicore(runner, model_file, x_all, runs(50)),
              "goals": goals(results, large_batch, overhead),
              "weights": weights(runner, model_files, x_all, 2 if quick else 7, progress),
              "matmul": matmul_bench(runs=3 if quick else 9)}
    atomic_write_text(BUILD_DIR / "bench.json", json.dumps(report, indent=2) + "\n")
    return report


def matmul_bench(n: int = 256, runs: int = 9) -> dict:
    """The MATMUL kernel vs a naive triple loop (vm/tests/matmul_bench.c, built for the host)."""
    from .build import matmul_bench_program
    from .config import load_target

    program = matmul_bench_program(load_target("host"), echo=lambda _m: None)
    proc = subprocess.run([str(program), str(n), str(runs)], capture_output=True, text=True, check=True, timeout=600)
    result = json.loads(proc.stdout)
    result["cpu"] = cpu_model()
    return result


def save_matmul(result: dict) -> Path:
    """Put the matmul figures into build/bench.json, keeping whatever else it holds."""
    path = BUILD_DIR / "bench.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    report["matmul"] = result
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    return path
