"""lnnedge tasks: train, compile, build, run and verify small networks on edge devices.

    invoke demo                     the whole pipeline on the default board
    invoke train --model ltc-sine   then compile, build --target host, verify --board host

Every task is thin: the work happens in python/lnnedge/steps.py. A user mistake
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

DEFAULT_MODEL = "ltc-sine"


def step(func):
    """Run a task body; turn a user error (any LnnedgeError) into `Exit` with a one-line message (unless --debug).
    Anything else is a bug in the kit and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(c, *args, **kwargs):
        from lnnedge.errors import LnnedgeError

        try:
            return func(c, *args, **kwargs)
        except LnnedgeError as exc:
            if c.config.get("debug", False) or "--debug" in sys.argv:
                raise
            raise Exit(f"error: {' '.join(str(exc).split())}", code=1) from None

    return wrapper


@task(help={"model": "recipe name (recipes/<model>.yaml)", "seed": "override the recipe's seed",
            "epochs": "override the recipe's number of epochs"})
@step
def train(c, model=DEFAULT_MODEL, seed=None, epochs=None):
    """Train a recipe's model; writes build/<model>/checkpoint.pt, train-metrics.json, loss.png."""
    from lnnedge.args import optional_count
    from lnnedge.steps import train_step

    metrics = train_step(model, seed=optional_count(seed, "--seed", 0), epochs=optional_count(epochs, "--epochs"))
    if not metrics["passed"] and "test_accuracy" in metrics:
        raise Exit(f"error: test accuracy {metrics['test_accuracy']:.4f} is below the recipe's target "
                   f"{metrics['target_accuracy']}", code=1)
    if not metrics["passed"]:
        raise Exit(f"error: test RMSE {metrics['test_rmse']:.4f} is above the recipe's target "
                   f"{metrics['target_rmse']}", code=1)


@task(name="train-seeds", help={"model": "recipe name", "seeds": "comma-separated seeds",
                                "epochs": "override the recipe's epochs"})
@step
def train_seeds(c, model=DEFAULT_MODEL, seeds="0,1,2,3,4", epochs=None):
    """Train on several seeds and check every one converges to the recipe's target RMSE."""
    from lnnedge.args import counts, optional_count
    from lnnedge.steps import seeds_step

    rows = seeds_step(model, counts(seeds, "--seeds"), optional_count(epochs, "--epochs"))
    failed = [m["seed"] for m in rows if not m["passed"]]
    if failed:
        raise Exit(f"error: seeds {failed} did not reach the target RMSE", code=1)


QUANT_HELP = "int8 or f16: the model with int8 or float16 weights (build/<model>/model-<scheme>.lnnb)"


@task(name="compile", help={"model": "recipe name", "quant": QUANT_HELP})
@step
def compile_(c, model=DEFAULT_MODEL, quant=None):
    """Compile the trained model to build/<model>/model.lnnb (+ listing, debug info), or
    model-<scheme>.lnnb with --quant."""
    from lnnedge.steps import compile_step

    compile_step(model, quant)


@task(help={"target": "a target in targets/ (see `invoke targets`)", "sanitize": "ASan + UBSan runner"})
@step
def build(c, target="host", sanitize=False):
    """Build the C VM (runner + library) for a target into build/vm/<target>/."""
    from lnnedge.steps import build_step

    build_step(target, sanitize=sanitize)


@task(help={"model": "recipe name", "board": "a board in boards.yaml (default: its default_board)",
            "inputs": "comma-separated input values (one row per model input width)", "quant": QUANT_HELP})
@step
def run(c, model=DEFAULT_MODEL, board=None, inputs="", quant=None):
    """Run the compiled model on a board and print its outputs."""
    from lnnedge.args import numbers
    from lnnedge.steps import run_step

    run_step(model, board, numbers(inputs, "--inputs") if inputs else None, quant)


@task(help={"model": "recipe name", "board": "a board in boards.yaml (default: its default_board)",
            "trace": "run one input with every intermediate tensor compared, and name the first op that differs",
            "row": "with --trace: which verify input to trace (default 0)", "quant": QUANT_HELP})
@step
def verify(c, model=DEFAULT_MODEL, board=None, trace=False, row="0", quant=None):
    """Compare the device with PyTorch on the recipe's verify points; exit 1 unless within tolerance."""
    from lnnedge.args import count
    from lnnedge.steps import trace_step, verify_step

    if trace:
        if not trace_step(model, board, count(row, "--row", 0), quant):
            raise Exit("error: the device and the references part ways (see the first mismatch above)", code=1)
        return
    reports = verify_step(model, board, quant)
    failed = [r for r in reports if not r.get("passed")]
    if len(reports) == 1 and failed:
        r = failed[0]
        if r.get("kind") == "classifier":
            raise Exit(f"error: verification failed on {r['board']}: max_abs_err {r['max_abs_err']:.3e} "
                       f"(tolerance {r['tolerance']:.0e}), same class {100 * r['same_class_share']:.2f} %, "
                       f"accuracy {r['accuracy_device']:.4f} vs PyTorch {r['accuracy_pytorch']:.4f}", code=1)
        raise Exit(f"error: verification failed on {r['board']}: max_abs_err {r['max_abs_err']:.3e} "
                   f"> tolerance {r['tolerance']:.0e}", code=1)
    if failed:
        raise Exit(f"error: verification failed on {', '.join(r['board'] for r in failed)}", code=1)


@task(help={"model": "recipe name", "board": "a board or a group of boards in boards.yaml", "quant": QUANT_HELP,
            "force": "deploy a quantized model even without a passed quantize-check"})
@step
def deploy(c, model=DEFAULT_MODEL, board=None, quant=None, force=False):
    """Upload the target's VM and the compiled model; activate only after a smoke test passes on the device.
    A quantized model (--quant int8|f16) needs a passed `invoke quantize-check --quant` of it unless --force."""
    from lnnedge.steps import deploy_step

    outcomes = deploy_step(model, board, quant, force)
    failed = [o.board for o in outcomes if not o.ok]
    if failed:
        raise Exit(f"error: deploy failed on {', '.join(failed)}; their previous deployments stay active", code=1)


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


@task(name="quantize-check", help={"model": "recipe name",
                                   "quant": "int8 or f16 (default: the recipe's quantization scheme)"})
@step
def quantize_check(c, model=DEFAULT_MODEL, quant=None):
    """Quantized weights vs float on the held-out set; exit 1 when worse than the recipe's quantization tolerance."""
    from lnnedge.steps import quantize_check_step

    report = quantize_check_step(model, quant)
    if not report["passed"]:
        raise Exit(f"error: quantize-check failed for {model}: the {report['quant']} model degrades beyond the "
                   "recipe's tolerance; it will not be deployed", code=1)


@task(help={"model": "recipe name", "quick": "fewer repetitions (a smoke run, not for figures)"})
@step
def bench(c, model=DEFAULT_MODEL, quick=False):
    """Time the C VM, its Python binding, the reference VM, PyTorch and ONNX Runtime; writes build/bench.json."""
    from lnnedge.steps import bench_step

    bench_step(model, quick=quick)


@task(name="bench-matmul", help={"size": "matrix size n (n x n times n x n)", "runs": "timed runs of each"})
@step
def bench_matmul(c, size="256", runs="9"):
    """The VM's blocked MATMUL kernel vs a naive triple loop in C; the table and build/bench.json's "matmul"."""
    from lnnedge.args import count
    from lnnedge.bench import matmul_bench, matmul_table, save_matmul

    result = matmul_bench(count(size, "--size"), count(runs, "--runs"))
    print(matmul_table(result))
    print(f"wrote {save_matmul(result)}")


@task(help={"board": "a board or a group of boards in boards.yaml"})
@step
def status(c, board=None):
    """Show what is deployed on a board: model hash, VM version, target, when."""
    from lnnedge.steps import status_step

    outcomes = status_step(board)
    if not all(o.ok for o in outcomes):
        raise Exit("error: could not read the status of every board", code=1)


@task(help={"model": "a sequence recipe (e.g. ltc-sequence)", "board": "a local or QEMU board",
            "steps": "samples to feed"})
@step
def stream(c, model="ltc-sequence", board=None, steps="32"):
    """Feed a sequence to the device one sample at a time (`lnnvm stream`: stdin -> stdout, state in the VM) and
    show it gives the whole-sequence call's outputs."""
    from lnnedge.args import count
    from lnnedge.steps import stream_step

    if stream_step(model, board, count(steps, "--steps")) > 0:
        raise Exit("error: streaming gave other outputs than the whole-sequence call", code=1)


@task(help={"model": "recipe name", "board": "board to verify on (default: boards.yaml's default_board)"})
@step
def demo(c, model=DEFAULT_MODEL, board=None):
    """The whole pipeline: train -> compile -> build -> verify on the default board."""
    from lnnedge import config

    chosen = config.board(board)
    print(f"== train {model}")
    train(c, model=model)
    print(f"== compile {model}")
    compile_(c, model=model)
    print(f"== build --target {chosen.target.name}")
    build(c, target=chosen.target.name)
    print(f"== verify --board {chosen.name}")
    verify(c, model=model, board=chosen.name)


@task
@step
def targets(c):
    """List the compile targets in targets/."""
    from lnnedge import config

    for name in config.target_names():
        t = config.load_target(name)
        print(f"{name:<14} {t.arch:<8} {t.os:<8} simd={t.simd:<6} toolchain={t.toolchain.name}  {t.description}")


@task
@step
def boards(c):
    """List the boards in boards.yaml."""
    from lnnedge import config

    all_boards, default = config.load_boards()
    for name, b in all_boards.items():
        mark = "*" if name == default else " "
        print(f"{mark} {name:<14} target={b.target.name:<12} transport={b.transport:<7} {b.description}")


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


@task(name="readme-table")
@step
def readme_table(c):
    """Regenerate the README's results table (build/*/verify-*.json) and performance table (build/bench.json)."""
    from lnnedge.report import update_readme

    print(update_readme())


ns = Collection(train, train_seeds, fuzz, quantize_check, compile_, build, run, verify, deploy, status, bench,
               bench_matmul, stream, demo,
               targets, boards, schema, readme_table)
ns.configure({"debug": False})
