"""lnnedge tasks: train, compile, build, run and verify small networks on edge devices.

    invoke demo                     the whole pipeline on the default board
    invoke train --model ltc-sine   then compile, build --target host, verify --board host

Every task is thin: it checks its arguments, calls one function of python/lnnedge/pipeline/ and shows the
report it returns with lnnedge.console. The default model is the `model` setting (ltc-sine; change it in
invoke.yaml). A user mistake
(bad recipe, unknown board, missing artefact, verification failure) ends with
one line on stderr and a non-zero exit; add --debug for the traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from invoke import Collection, Exit, task

# Numeric options have string defaults: Invoke would otherwise convert them with int() itself and print a
# traceback for `--row abc`; lnnedge.args checks them and names the flag.

sys.path.insert(0, str(Path(__file__).resolve().parent / "python"))

MODEL_HELP = "recipe name (recipes/<model>.yaml; default: the `model` setting)"
FILE_HELP = "a compiled model file (.lnnb), instead of a recipe's (e.g. from `invoke compile --module`)"
# a task whose default recipe is not the `model` setting (build: none, unless --model builds one into a firmware)
DEFAULT_MODEL = {"stream": "ltc-sequence", "build": None}


def step(func):
    """Run a task body; turn a user error (any LnnedgeError) into `Exit` with a one-line message (unless --debug).
    Anything else is a bug in the kit and keeps its traceback. A `model` left unset is the `model` setting,
    unless a compiled --file or a --module is given instead (giving both is refused)."""

    @functools.wraps(func)
    def wrapper(c, *args, **kwargs):
        from lnnedge.errors import LnnedgeError

        instead = next((k for k in ("file", "module") if kwargs.get(k)), None)
        if instead and kwargs.get("model"):
            raise Exit(f"error: --model and --{instead} are mutually exclusive: give a recipe or "
                       f"{'a compiled file' if instead == 'file' else 'your module'}, not both", code=1)
        if "model" in kwargs and kwargs["model"] is None and not instead:
            kwargs["model"] = DEFAULT_MODEL.get(func.__name__, c.config.model)
        try:
            return func(c, *args, **kwargs)
        except LnnedgeError as exc:
            if c.config.get("debug", False) or "--debug" in sys.argv:
                raise
            raise Exit(f"error: {' '.join(str(exc).split())}", code=1) from None

    return wrapper


@task(help={"model": MODEL_HELP, "seed": "override the recipe's seed",
            "epochs": "override the recipe's number of epochs"})
@step
def train(c, model=None, seed=None, epochs=None):
    """Train a recipe's model; writes build/<model>/checkpoint.pt, train-metrics.json, loss.png."""
    from lnnedge import console
    from lnnedge.args import optional_count
    from lnnedge.pipeline.train import train_model

    report = train_model(model, seed=optional_count(seed, "--seed", 0), epochs=optional_count(epochs, "--epochs"),
                         progress=console.progress)
    console.show(report)
    metrics = report.metrics
    if not metrics["passed"] and "test_accuracy" in metrics:
        raise Exit(f"error: test accuracy {metrics['test_accuracy']:.4f} is below the recipe's target "
                   f"{metrics['target_accuracy']}", code=1)
    if not metrics["passed"]:
        raise Exit(f"error: test RMSE {metrics['test_rmse']:.4f} is above the recipe's target "
                   f"{metrics['target_rmse']}", code=1)


@task(name="train-seeds", help={"model": MODEL_HELP, "seeds": "comma-separated seeds",
                                "epochs": "override the recipe's epochs"})
@step
def train_seeds(c, model=None, seeds="0,1,2,3,4", epochs=None):
    """Train on several seeds and check every one converges to the recipe's target RMSE."""
    from lnnedge import console
    from lnnedge.args import counts, optional_count
    from lnnedge.pipeline.train import train_seeds as run_seeds

    report = run_seeds(model, counts(seeds, "--seeds"), optional_count(epochs, "--epochs"), console.progress)
    console.show(report)
    if report.failed:
        raise Exit(f"error: seeds {report.failed} did not reach the target RMSE", code=1)


QUANT_HELP = ("int8, w8a16 or f16: the model with int8 weights, int8 weights and 16-bit activations, or float16 "
              "weights (build/<model>/model-<scheme>.lnnb)")


MODULE_HELP = "your own model: FILE.py:FACTORY, a function returning the nn.Module (instead of --model)"


@task(name="compile", help={"model": MODEL_HELP, "quant": QUANT_HELP, "module": MODULE_HELP,
                            "weights": "with --module: a state_dict saved by torch.save, loaded into the module",
                            "example": "with --module: the input shapes, batch first, e.g. 1x3 or 1x3,1x8",
                            "test-data": "with --module: an .npz of test inputs (`inputs`, or inputs_0, inputs_1...) "
                                         "and optionally their `outputs` (else PyTorch's), bundled in the file",
                            "out": "with --module: the .lnnb file or a directory (default build/<FILE>/model.lnnb)",
                            "tolerance": "with --module: max |device - PyTorch| the bundled test set allows",
                            "check": "with --module: list every op that will not compile, with file:line; emit "
                                     "nothing"})
@step
def compile_(c, model=None, quant=None, module=None, weights=None, example=None, test_data=None, out=None,
             tolerance="1e-5", check=False):
    """Compile the trained model to build/<model>/model.lnnb (+ listing, debug info), or
    model-<scheme>.lnnb with --quant; or your own module (--module FILE.py:FACTORY --example 1x3)."""
    from lnnedge import console
    from lnnedge.args import positive_number
    from lnnedge.errors import UsageError

    if module is None:
        if check or any(v is not None for v in (weights, example, test_data, out)):
            raise UsageError("--check, --weights, --example, --test-data and --out go with --module FILE.py:FACTORY")
        from lnnedge.pipeline.compile import compile_model

        console.show(compile_model(model, quant))
        return
    if quant:
        raise UsageError("--quant goes with a recipe (--model); a --module is compiled with float32 weights")
    if example is None:
        raise UsageError("--module needs --example, the input shapes (e.g. 1x3, or 1x3,1x8 for two inputs)")
    from lnnedge.pipeline import userfile

    if check:
        report = userfile.check_file(module, weights, example)
        console.show(report)
        if not report.passed:
            raise Exit(f"error: {len(report.unsupported)} op(s) of {module} will not compile (listed above)", code=1)
        return
    console.show(userfile.compile_file(module, weights, example, test_data, out,
                                       positive_number(tolerance, "--tolerance")))


@task(help={"target": "a target in targets/ (see `invoke targets`)", "sanitize": "ASan + UBSan runner",
            "model": "a firmware target: the recipe whose compiled model is built into the image (run from flash)",
            "file": "a firmware target: a compiled model file (.lnnb) built into the image"})
@step
def build(c, target="host", sanitize=False, model=None, file=None):
    """Build the C VM (runner + library) for a target into build/vm/<target>/, or a firmware target's image into
    build/firmware/<target>/ (with --model or --file: that model resident in its flash)."""
    from lnnedge import console
    from lnnedge.pipeline.build import build_target

    console.show(build_target(target, sanitize=sanitize, model=model, file=Path(file) if file else None))


@task(help={"board": "a microcontroller board in boards.yaml (a serial board with a flasher, or a QEMU one)"})
@step
def flash(c, board=None):
    """Write the target's firmware image (invoke build --target T --model M) to a board with its flasher
    (pyocd, openocd, st-flash; a QEMU board's emulated flash), reset it, and succeed only when the board answers
    INFO with the image's CRC-32 and the resident model's digest."""
    from lnnedge import console
    from lnnedge.devices.flashing import flash as flash_board

    report = flash_board(board)
    console.show(console.Listing(("", ""), report.rows()))


@task(help={"model": MODEL_HELP, "board": "a board in boards.yaml (default: its default_board)",
            "inputs": "comma-separated input values (one row per model input width)", "quant": QUANT_HELP,
            "file": FILE_HELP})
@step
def run(c, model=None, board=None, inputs="", quant=None, file=None):
    """Run the compiled model on a board and print its outputs."""
    from lnnedge import console
    from lnnedge.args import numbers

    values = numbers(inputs, "--inputs") if inputs else None
    if file:
        from lnnedge.pipeline.userfile import run_file

        console.show(run_file(file, board, values))
        return
    from lnnedge.pipeline.run import run as run_model

    console.show(run_model(model, board, values, quant))


@task(help={"model": MODEL_HELP, "board": "a board or a group of boards in boards.yaml (default: its default_board)",
            "trace": "run one input with every intermediate tensor compared, and name the first op that differs",
            "row": "with --trace: which verify input to trace", "quant": QUANT_HELP,
            "junit": "also write the verdicts as JUnit XML to this file, a test case per board (for CI)",
            "file": FILE_HELP + ": held to the test set bundled in it", "module": "with --file: " + MODULE_HELP
            + ", also held to on --test-data's inputs", "weights": "with --module: its state_dict (torch.save)",
            "test-data": "with --module: an .npz of inputs (`inputs`, or inputs_0, inputs_1...) to compare on",
            "count": "with a labgrid board (lg:tags=... or transport: labgrid): how many free places to use at once"})
@step
def verify(c, model=None, board=None, trace=False, row="0", quant=None, junit=None, file=None, module=None,
           weights=None, test_data=None, count=None):
    """Compare the device with PyTorch on the recipe's verify points (or a compiled --file's bundled test set);
    exit 1 unless within tolerance."""
    from lnnedge import console
    from lnnedge.args import count as parse_count
    from lnnedge.args import optional_count
    from lnnedge.pipeline.reports import FleetReport
    from lnnedge.pipeline.run import trace_row
    from lnnedge.pipeline.verify import failure_message
    from lnnedge.pipeline.verify import verify as run_verify

    if file or module:
        _verify_file(file, board, module, weights, test_data, trace or quant or junit)
        return
    if trace:
        traced = trace_row(model, board, parse_count(row, "--row", 0), quant)
        console.show(traced)
        if not traced.passed:
            raise Exit("error: the device and the references part ways (see the first mismatch above)", code=1)
        return
    if junit:
        from lnnedge.junit import verify_to_junit

        report = verify_to_junit(Path(junit), model, board, quant)
    else:
        report = run_verify(model, board, quant, optional_count(count, "--count"))
    console.show(report)
    if isinstance(report, FleetReport):
        if report.failed:
            raise Exit(f"error: verification failed on {', '.join(report.failed)}", code=1)
    elif not report.passed:
        raise Exit(f"error: {failure_message(report.data)}", code=1)


def _verify_file(file, board, module, weights, test_data, recipe_only) -> None:
    """verify --file [--module M --test-data D]: the compiled file on the board."""
    from lnnedge import console
    from lnnedge.errors import UsageError
    from lnnedge.pipeline.reports import FleetReport
    from lnnedge.pipeline.userfile import verify_file_with

    if not file:
        raise UsageError("--module goes with --file (verify a compiled file against your module)")
    if recipe_only:
        raise UsageError("--trace, --quant and --junit go with a recipe (--model), not --file")
    if (module is None) != (test_data is None):
        raise UsageError("verify --file: --module and --test-data go together (your module and the inputs to "
                         "compare it on)")
    report = verify_file_with(file, board, module, weights, test_data)
    console.show(report)
    if isinstance(report, FleetReport):
        if report.failed:
            raise Exit(f"error: verification failed on {', '.join(report.failed)}", code=1)
    elif not report.passed:
        d = report.data
        worst = max(d["max_abs_err"], d.get("vs_module", {}).get("max_abs_err", 0.0))
        raise Exit(f"error: verification failed on {d['board']}: max_abs_err {worst:.3e} > tolerance "
                   f"{d['tolerance']:.0e}", code=1)


@task(help={"model": MODEL_HELP, "board": "a board or a group of boards in boards.yaml", "quant": QUANT_HELP,
            "force": "deploy a quantized model even without a passed quantize-check", "file": FILE_HELP,
            "count": "with a labgrid board (lg:tags=... or transport: labgrid): how many free places to use at once"})
@step
def deploy(c, model=None, board=None, quant=None, force=False, file=None, count=None):
    """Upload the target's VM and the compiled model; activate only after a smoke test passes on the device.
    A quantized model (--quant int8|w8a16|f16) needs a passed `invoke quantize-check --quant` of it unless --force."""
    from lnnedge import console

    if file:
        from lnnedge.errors import UsageError
        from lnnedge.pipeline.userfile import deploy_file

        if quant or force:
            raise UsageError("--quant and --force go with a recipe (--model), not --file")
        report = deploy_file(file, board)
    else:
        from lnnedge.args import optional_count
        from lnnedge.pipeline.deploy import deploy as deploy_model

        report = deploy_model(model, board, quant, force, optional_count(count, "--count"))
    console.show(report)
    if report.failed:
        raise Exit(f"error: deploy failed on {', '.join(report.failed)}; the summary above says what is live on each",
                   code=1)


@task(help={"seconds": "seconds per fuzz target",
            "target": "load, run, load_uint, run_uint, gen (generated programs) or all (load, run, gen)",
            "jobs": "parallel fuzzing processes (libFuzzer targets)"})
@step
def fuzz(c, seconds="60", target="all", jobs="1"):
    """Fuzz the VM: libFuzzer (ASan + UBSan) on its loader and interpreter, generated programs on three executors."""
    from lnnedge.args import count
    from lnnedge.fuzz import fuzz as run_fuzz

    report = run_fuzz(count(seconds, "--seconds"), target, count(jobs, "--jobs"))
    if report["crashes"] or report["sanitizer_reports"]:
        raise Exit("error: the fuzzers found crashes, sanitizer reports or differences (saved under "
                   "vm/fuzz/regressions/ and build/fuzz/gen/findings/)", code=1)


@task(name="quantize-check", help={"model": MODEL_HELP,
                                   "quant": "int8, w8a16 or f16 (default: the recipe's quantization scheme)"})
@step
def quantize_check(c, model=None, quant=None):
    """Quantized weights vs float on the held-out set; exit 1 when worse than the recipe's quantization tolerance."""
    from lnnedge import console
    from lnnedge.pipeline.quantize import quantize_check as check

    report = check(model, quant)
    console.show(report)
    if not report.passed:
        raise Exit(f"error: quantize-check failed for {model}: the {report.data['quant']} model degrades beyond the "
                   "recipe's tolerance; it will not be deployed", code=1)


@task(help={"model": MODEL_HELP, "quick": "fewer repetitions (a smoke run, not for figures)",
            "board": "an emulated microcontroller (qemu-m4, qemu-m7, qemu-m33, qemu-m55, qemu-stm32f405, qemu-m0): "
                     "instructions per inference instead"})
@step
def bench(c, model=None, quick=False, board=None):
    """Time the C VM, its Python binding, the reference VM, PyTorch and ONNX Runtime; writes build/bench.json.
    With --board: QEMU's exact instruction counts per inference and multiply-add (build/<model>/bench-<board>.json)."""
    from lnnedge import console

    if board:
        from lnnedge.mcu_bench import table
        from lnnedge.pipeline.bench import bench_board

        _data, path = bench_board(model, board, console.progress)
        print(table(path.parent.parent))
        print(f"wrote {path}")
        return
    from lnnedge.pipeline.bench import bench as run_bench

    console.show(run_bench(model, quick=quick, progress=console.progress))


@task(help={"model": MODEL_HELP, "board": "a board in boards.yaml (default: its default_board)", "file": FILE_HELP,
            "runs": "inferences profiled (default: 2000 on a runner, 3 on firmware, whose counts are exact)"})
@step
def profile(c, model=None, board=None, file=None, runs=None):
    """Time (or emulated instructions) per instruction of the program on a board, mapped to the source line;
    writes build/<model>/profile-<board>.json and a bar chart (.png)."""
    from lnnedge import console
    from lnnedge.args import optional_count
    from lnnedge.pipeline.profile import profile as run_profile

    console.show(run_profile(model, board, file, optional_count(runs, "--runs")))


@task(name="bench-matmul", help={"size": "matrix size n (n x n times n x n)", "runs": "timed runs of each"})
@step
def bench_matmul(c, size="256", runs="9"):
    """The VM's blocked MATMUL kernel vs a naive triple loop in C; the table and build/bench.json's "matmul"."""
    from lnnedge import console
    from lnnedge.args import count
    from lnnedge.pipeline.bench import bench_matmul as run_matmul

    console.show(run_matmul(count(size, "--size"), count(runs, "--runs")))


@task(help={"board": "a board or a group of boards in boards.yaml",
            "count": "with a labgrid board (lg:tags=... or transport: labgrid): how many free places to use at once"})
@step
def status(c, board=None, count=None):
    """Show what is deployed on a board: model hash, VM version, target, when."""
    from lnnedge import console
    from lnnedge.args import optional_count
    from lnnedge.pipeline.deploy import status as board_status

    report = board_status(board, optional_count(count, "--count"))
    console.show(report)
    if report.failed:
        raise Exit("error: could not read the status of every board", code=1)


@task(help={"model": "a sequence recipe (default ltc-sequence)", "board": "a local or QEMU board",
            "steps": "samples to feed (default 32; with --file, every bundled test input)",
            "file": FILE_HELP + ": its bundled test inputs are the samples"})
@step
def stream(c, model=None, board=None, steps=None, file=None):
    """Feed a sequence to the device one sample at a time (`lnnvm stream`: stdin -> stdout, state in the VM) and
    show it gives the whole-sequence call's outputs."""
    from lnnedge import console
    from lnnedge.args import count

    if file:
        from lnnedge.pipeline.userfile import stream_file

        report = stream_file(file, board, None if steps is None else count(steps, "--steps"))
    else:
        from lnnedge.pipeline.stream import stream as run_stream

        report = run_stream(model, board, count("32" if steps is None else steps, "--steps"))
    console.show(report)
    if report.err > report.tolerance:
        raise Exit(f"error: the streamed outputs differ from {report.reference_name} by {report.err:.3e}", code=1)
    if report.gap > 0:
        raise Exit("error: streaming gave other outputs than the whole-sequence call", code=1)


@task(help={"model": MODEL_HELP, "board": "board to verify on (default: boards.yaml's default_board)"})
@step
def demo(c, model=None, board=None):
    """The whole pipeline: train -> compile -> build -> verify on the default board."""
    from lnnedge import config, console

    chosen = config.board(board)
    console.show(console.Heading(f"train {model}"))
    train(c, model=model)
    console.show(console.Heading(f"compile {model}"))
    compile_(c, model=model)
    console.show(console.Heading(f"build --target {chosen.target.name}"))
    build(c, target=chosen.target.name)
    console.show(console.Heading(f"verify --board {chosen.name}"))
    verify(c, model=model, board=chosen.name)


@task
@step
def ops(c):
    """List the torch ops the compiler takes, with their limits (what `invoke compile --check` holds a module to)."""
    from lnnedge import console
    from lnnedge.pipeline.userfile import supported_ops

    console.show(supported_ops())


@task
@step
def targets(c):
    """List the compile targets in targets/."""
    from lnnedge import config, console

    targets = [config.load_target(name) for name in config.target_names()]
    console.show(console.Listing(("target", "arch", "os", "simd", "toolchain", "description"),
                                 [(t.name, t.arch, t.os, t.simd, t.toolchain.name, t.description) for t in targets]))


@task
@step
def boards(c):
    """List the boards in boards.yaml (* marks the default) and its groups."""
    from lnnedge import config, console

    all_boards, default = config.load_boards()
    console.show(console.Listing(("", "board", "target", "transport", "description"),
                                 [("*" if name == default else "", name, b.target.name, b.transport, b.description)
                                  for name, b in all_boards.items()]))
    groups = config.load_groups()
    if groups:
        console.show(console.Listing(("group", "boards"), [(name, ", ".join(members))
                                                          for name, members in groups.items()]))
    print(f"from {config.boards_file()}")



@task
@step
def schema(c):
    """Write the JSON Schemas of recipes, boards.yaml, targets and toolchains to build/schema/ (for editors)."""
    import json

    from lnnedge import config, recipe
    from lnnedge.artifacts import atomic_write_text
    from lnnedge.paths import BUILD_DIR

    for name, body in {**config.json_schemas(), "recipe": recipe.json_schema()}.items():
        path = BUILD_DIR / "schema" / f"{name}.schema.json"
        atomic_write_text(path, json.dumps(body, indent=2) + "\n")
        print(f"wrote {path}")


@task(help={"only": "comma-separated areas: files, serial, deploy, host (default: all)"})
@step
def reliability(c, only=""):
    """Throw bad input at every boundary (files, serial frames, deploy kills, CLI); writes build/reliability/."""
    from lnnedge.reliability.suite import run

    campaigns = run([a for a in only.split(",") if a])
    dirty = [x.area for x in campaigns if not x.clean]
    if dirty:
        raise Exit(f"error: crashed, hung or wrongly accepted input in: {', '.join(dirty)}", code=1)


@task(help={"target": "a firmware target in targets/ (e.g. cortex-m4)",
            "model": "a recipe: a selective build for its ops, and the core application with it (optional)"})
@step
def size(c, target="cortex-m4", model=""):
    """Flash and RAM of a firmware by component, from the map file, against its board; build/size/<name>.json."""
    from lnnedge.footprint import measure, table
    from lnnedge.paths import model_dir

    path = model_dir(model) / "model.lnnb" if model else None
    if path is not None and not path.is_file():
        raise Exit(f"error: {path} does not exist: run `invoke compile --model {model}` first", code=1)
    print(table(measure(target, path)))


@task(help={"file": "the compiled model (.lnnb) to export", "format": "output format: c (the only one)",
            "out": "directory for <name>.h and <name>.c (default: the model file's directory)",
            "name": "C name of the array and prefix of the macros (default: the file's stem)",
            "batch": "rows the arena macro is sized for (default 1)"})
@step
def export(c, file=None, format="c", out=None, name=None, batch="1"):
    """Write a model as C source for an app that embeds the VM: a 64-byte aligned const array (<name>.c) and a
    header (<name>.h) with its size, the arena size and the inputs' / outputs' floats per row as macros."""
    from lnnedge.args import count
    from lnnedge.export_c import ExportError, export_c

    if not file:
        raise ExportError("give the model to export: --file MODEL.lnnb")
    if format != "c":
        raise ExportError(f"--format {format!r}: the only format is c")
    model = Path(file)
    header, source = export_c(model, Path(out) if out else model.parent, name, count(batch, "--batch"))
    print(f"wrote {header} and {source}")


@task(name="arduino-library", help={"out": "directory to write the library into, as <out>/lnnvm (default build/)"})
@step
def arduino_library(c, out=None):
    """Assemble the VM as an Arduino library (library.properties + one src/ of its sources and headers); for
    PlatformIO, vm/library.json describes vm/ in place."""
    from lnnedge.paths import BUILD_DIR
    from lnnedge.vm_library import arduino_library as assemble

    print(f"wrote {assemble(Path(out) if out else BUILD_DIR)}")


@task(help={"model": "an irregularly sampled recipe (model.timespans: true)", "seeds": "comma-separated seeds",
            "epochs": "override the recipe's number of epochs"})
@step
def irregular(c, model="ncps-cfc-irregular", seeds="0,1,2", epochs=None):
    """Train the recipe's Δt-aware model and the same model assuming a fixed step, one thread; held-out RMSE of
    both (build/irregular/<model>.json, a README table by `invoke readme-table`)."""
    from lnnedge import console
    from lnnedge.args import counts, optional_count
    from lnnedge.irregular import compare, summary

    report = compare(model, tuple(counts(seeds, "--seeds")), optional_count(epochs, "--epochs"), console.progress)
    print(summary(report))
    if not report["dt_aware_better_every_seed"]:
        raise Exit("error: the Δt-aware model is not better than the fixed-Δt one on every seed", code=1)


@task(name="bench-threads", help={"model": MODEL_HELP, "epochs": "epochs per training run",
                                  "runs": "training runs per thread count and load",
                                  "busy": "comma-separated numbers of CPU-busy processes to train beside"})
@step
def bench_threads(c, model=None, epochs="20", runs="3", busy="0,1"):
    """Training time with 1 torch thread vs one per core, idle and beside busy processes: the measurement
    behind the kit's thread policy (lnnedge/threads.py); writes build/threads.json."""
    import json
    import os

    from lnnedge.args import count, counts
    from lnnedge.artifacts import atomic_write_text
    from lnnedge.paths import BUILD_DIR
    from lnnedge.threads_bench import measure

    threads = tuple(sorted({1, os.cpu_count() or 1}))
    report = measure(model, count(epochs, "--epochs"), count(runs, "--runs"), tuple(counts(busy, "--busy")), threads)
    for case in report["cases"]:
        print(f"{case['busy_processes']} busy, {case['threads']} thread(s): median {case['median_s']:.2f} s "
              f"of {case['seconds']}")
    print(f"same trained weights with every thread count: {report['same_weights']}")
    path = BUILD_DIR / "threads.json"
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


@task(help={"board": "the board run beside the host (default qemu-rpi4)", "points": "random inputs per case"})
def solvers(c, board="qemu-rpi4", points=256):
    """Every torchdiffeq solver the compiler emits against torchdiffeq, on the host and a board (max abs error,
    steps); writes build/solvers/errors.json (the README's solver table: invoke readme-table)."""
    from lnnedge.args import count
    from lnnedge.solvers_check import measure_on_boards

    print(f"wrote {measure_on_boards(board, count(points, '--points', 1))}")


@task(help={"missing": "measure only the rows that have no report yet (default: every row again)"})
@step
def results(c, missing=False):
    """Measure the README's results table: verify every row of results.yaml on its board (training and compiling
    a recipe whose files are missing), then `invoke readme-table` writes the table; exit 1 if a row failed."""
    from lnnedge import results_matrix
    from lnnedge.pipeline.results import measure

    failed = [o for o in measure(results_matrix.load(), missing_only=missing) if not o.passed]
    if failed:
        raise Exit("error: " + "; ".join(f"{o.row}: {o.why}" for o in failed), code=1)


@task(name="readme-table", help={"only": "comma-separated block names (the README's <!-- NAME:begin --> markers, "
                                           "e.g. mcu-bench,profile): write only these, each from its report"})
@step
def readme_table(c, only=""):
    """Regenerate the README's generated tables from the reports in build/: results (results.yaml's rows),
    performance (build/bench.json), the MCU counts, profiles, sizes and the others whose reports exist."""
    from lnnedge.report import update_readme

    print(update_readme(only=tuple(name for name in only.split(",") if name)))


ns = Collection(train, train_seeds, fuzz, quantize_check, compile_, build, flash, run, verify, deploy, status, bench,
               profile, bench_matmul, bench_threads, stream, demo, ops, irregular,
               targets, boards, schema, reliability, results, readme_table, export, arduino_library, size, solvers)
ns.configure({"debug": False, "model": "ltc-sine"})


def _complete_help(collection: Collection) -> None:
    """`--list` shows a docstring's first line, `--help` no defaults: each task's first paragraph becomes its
    first line (so the list never stops mid-sentence), and each flag's help names its default — the value in
    the task's signature, unless the help already speaks of one or there is none to name (None, False, "")."""
    import inspect

    for t in collection.tasks.values():
        doc = inspect.cleandoc(t.__doc__ or "")
        first, _, rest = doc.partition("\n\n")
        t.__doc__ = " ".join(first.split()) + (f"\n\n{rest}" if rest else "")
        for name, param in inspect.signature(t.body).parameters.items():
            if param.default in (None, False, "", inspect.Parameter.empty):
                continue
            key = next((k for k in (name.replace("_", "-"), name) if k in t.help), name)
            text = t.help.get(key, "")
            if "default" not in text:
                t.help[key] = f"{text} (default: {param.default})".lstrip()


_complete_help(ns)
