"""A user's own module and a compiled file, outside the recipes: compile (and --check) a module, then verify,
deploy, run or stream a .lnnb file on a board.

A file compiled here carries its test set (the user's .npz, or seeded random inputs with PyTorch's outputs); a
board task given `--file` holds the device to that bundled set, and, given the user's module and inputs, to
PyTorch on those inputs too. The reports are the recipe tasks' (reports.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .. import config, lnnb, plots, usermodule
from ..artifacts import MissingArtifact, atomic_write_text
from ..devices import open_device, prepare
from ..devices.base import bundled_tests
from ..devices.fleet import across
from ..errors import UsageError
from ..paths import BUILD_DIR
from ..refvm import RefVM
from .reports import CheckReport, CompileReport, FleetReport, OpsReport, RunReport, StreamReport, VerifyReport

DEFAULT_TOLERANCE = 1e-5  # device vs PyTorch, float32 (the shipped recipes' figure)
TEST_ROWS = 16  # rows of the test set bundled when the user gives none
TEST_SEED = 20240  # those rows' inputs: standard normal, from this seed


def output_path(name: str, out: str | Path | None) -> Path:
    """`out` as given when it names a .lnnb file, `out`/model.lnnb for a directory, else build/<name>/model.lnnb."""
    if out is None:
        return BUILD_DIR / name / "model.lnnb"
    out = Path(out)
    return out if out.suffix == ".lnnb" else out / "model.lnnb"


def _as_tensors(examples: Sequence[torch.Tensor | np.ndarray]) -> list[torch.Tensor]:
    return [torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in examples]


def _test_set(module: torch.nn.Module, examples: Sequence[torch.Tensor], inputs: Sequence[np.ndarray] | None,
              outputs: np.ndarray | None, tolerance: float) -> lnnb.TestSet:
    """The test set the file carries: the given inputs (else TEST_ROWS seeded normal rows shaped like the
    examples) with the given outputs (else PyTorch's)."""
    if inputs is None:
        rng = np.random.default_rng(TEST_SEED)
        inputs = [rng.standard_normal((TEST_ROWS, *x.shape[1:])).astype(np.float32) for x in examples]
    rows = len(inputs[0])
    computed = np.concatenate([o.reshape(rows, -1) for o in usermodule.outputs_of(
        module, [torch.from_numpy(x) for x in inputs], "the test inputs")], axis=1)
    if outputs is not None and outputs.shape != computed.shape:
        raise usermodule.UserModuleError(f"the test outputs have {outputs.shape[1]} values per row; the module "
                                         f"gives {computed.shape[1]}")
    flat = np.concatenate([x.reshape(rows, -1) for x in inputs], axis=1)
    return lnnb.TestSet(flat, computed if outputs is None else outputs, tolerance)


def compile_torch(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor | np.ndarray], name: str = "model",
                  out: str | Path | None = None, test_inputs: Sequence[np.ndarray] | None = None,
                  test_outputs: np.ndarray | None = None, tolerance: float = DEFAULT_TOLERANCE,
                  meta: dict | None = None) -> CompileReport:
    """Compile `module` (example inputs: one per model input, dim 0 the batch) to `out` with its test set."""
    from ..compiler import compile_module

    examples = _as_tensors(example_inputs)
    module = module.eval()
    usermodule.outputs_of(module, examples, "the example inputs")  # a shape the module refuses, said plainly
    path = output_path(name, out)
    started = time.perf_counter()
    tests = _test_set(module, examples, test_inputs, test_outputs, tolerance)
    compiled = compile_module(module, examples, name=name, tests=tests,
                              meta={"kind": "module", "inputs": [list(x.shape[1:]) for x in examples],
                                    **(meta or {})})
    compiled.save(path)
    return CompileReport(name, None, path, time.perf_counter() - started, compiled.plan_summary(),
                         compiled.arena_bytes(1), module=module)


def compile_file(spec: str, weights: str | None, example: str, test_data: str | None = None,
                 out: str | None = None, tolerance: float = DEFAULT_TOLERANCE) -> CompileReport:
    """`invoke compile --module FILE.py:FACTORY`: the module loaded, then compile_torch."""
    examples = usermodule.parse_example(example)
    module = usermodule.load(spec, weights)
    usermodule.outputs_of(module, examples, f"--example {example}")
    inputs, outputs = usermodule.load_test_data(test_data, examples) if test_data else (None, None)
    path, factory = usermodule.split_spec(spec)
    return compile_torch(module, examples, path.stem, out, inputs, outputs, tolerance,
                         meta={"source": f"{path.name}:{factory}"})


def check_torch(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor | np.ndarray],
                name: str = "model") -> CheckReport:
    """Every op of `module` that will not compile, with file:line; nothing is emitted."""
    from ..compiler.capture import unsupported_ops

    examples = _as_tensors(example_inputs)
    module = module.eval()
    usermodule.outputs_of(module, examples, "the example inputs")
    return CheckReport(name, tuple(unsupported_ops(module, examples)))


def check_file(spec: str, weights: str | None, example: str) -> CheckReport:
    """`invoke compile --check --module FILE.py:FACTORY`."""
    examples = usermodule.parse_example(example)
    module = usermodule.load(spec, weights)
    usermodule.outputs_of(module, examples, f"--example {example}")
    return check_torch(module, examples, usermodule.split_spec(spec)[0].stem)


def compiled_path(file: str | Path) -> Path:
    """A compiled model file given with --file: it exists, is named .lnnb and its framing reads."""
    path = Path(file)
    if path.suffix != ".lnnb":
        raise UsageError(f"--file {path}: not a compiled model (.lnnb); compile one with `invoke compile`")
    if not path.is_file():
        raise MissingArtifact(f"--file {path}: no such file")
    try:
        lnnb.read(path.read_bytes())
    except lnnb.FormatError as exc:
        raise lnnb.FormatError(f"--file {path}: not a model file: {exc}") from None
    return path


def _name(path: Path) -> str:
    """The model's name from the debug info beside the file (the device file keeps none), else the file's."""
    from ..compiler import debuginfo

    try:
        meta = json.loads(debuginfo.path_for(path).read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):  # no debug info beside a copied file: its name will do
        meta = {}
    return str(meta.get("model") or path.name)


def _flat(outputs: Sequence[np.ndarray], rows: int) -> np.ndarray:
    return np.concatenate([np.asarray(o).reshape(rows, -1) for o in outputs], axis=1)


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def verify_file(file: str | Path, board: str | None, module: torch.nn.Module | None = None,
                inputs: Sequence[np.ndarray] | None = None) -> VerifyReport | FleetReport:
    """The device's outputs for the file's bundled test set held to its bundled outputs and tolerance (the
    reference VM's too); with `module` and `inputs`, the device's outputs for those inputs held to PyTorch's.
    Writes verify-<board>.json and .png beside the file."""
    path = compiled_path(file)
    boards = config.resolve(board)
    blob = path.read_bytes()
    name = _name(path)
    bundled, tests = bundled_tests(path)
    extra = None
    if module is not None and inputs is not None:
        rows = len(inputs[0])
        extra = ([np.asarray(x, dtype=np.float32) for x in inputs],
                 _flat(usermodule.outputs_of(module.eval(), [torch.from_numpy(np.asarray(x, dtype=np.float32))
                                                            for x in inputs], "the verify inputs"), rows))
    tol = float(tests.max_abs_err)
    ref_err = _max_err(_flat(RefVM(blob).run(bundled), len(tests.outputs)), tests.outputs)

    def one(b: config.Board) -> VerifyReport:
        prepare(b, path)
        with open_device(b) as device:
            started = time.perf_counter()
            result = device.run(path, bundled, batch=len(tests.outputs))
            wall = time.perf_counter() - started
            device_out = _flat(result.outputs, len(tests.outputs))
            err = _max_err(device_out, tests.outputs)
            report = {"model": name, "board": b.name, "kind": "file", "file": str(path), "n": len(tests.outputs),
                      "target": b.target.name, "transport": b.transport, "isa": result.timing.get("isa", "unknown"),
                      "emulated": device.emulated, "vm_version": result.timing.get("vm_version", "unknown"),
                      "model_sha256": hashlib.sha256(blob).hexdigest(), "model_bytes": len(blob),
                      "latency_us": result.timing.get("latency_us_median"), "device_wall_seconds": round(wall, 3),
                      "max_abs_err": err, "rmse": float(np.sqrt(np.mean((device_out.astype(np.float64)
                                                                          - tests.outputs) ** 2))),
                      "tolerance": tol, "reference_vm": {"max_abs_err": ref_err}}
            passed = err <= tol and ref_err <= tol
            if extra is not None:
                x, expected = extra
                got = _flat(device.run(path, x, batch=len(expected)).outputs, len(expected))
                module_err = _max_err(got, expected)
                report["vs_module"] = {"n": len(expected), "max_abs_err": module_err}
                passed = passed and module_err <= tol
        report["passed"] = bool(passed)
        stem = path.with_name(f"verify-{b.name}")
        json_path, plot_path = stem.with_suffix(".json"), stem.with_suffix(".png")
        report.update(json=json_path.name, plot=plot_path.name)
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
        plots.classifier_plot(tests.outputs, device_out, f"{name} on {b.name} ({report['isa']}): bundled test set, "
                              f"max |device − PyTorch| = {err:.2e}", plot_path)
        return VerifyReport(name, b.name, "file", report["passed"], report, json_path, plot_path)

    if len(boards) == 1:
        return one(boards[0])
    return FleetReport("verify", ("isa", "max_abs_err", "latency_us"), tuple(across(boards, lambda b: one(b).data)))


def verify_file_with(file: str | Path, board: str | None, spec: str | None = None, weights: str | None = None,
                     test_data: str | None = None) -> VerifyReport | FleetReport:
    """`invoke verify --file F [--module FILE.py:FACTORY --weights W --test-data D]`: the module loaded and the
    .npz's inputs read (shaped as the file's inputs), then verify_file."""
    if spec is None or test_data is None:
        return verify_file(file, board)
    bundled, _ = bundled_tests(compiled_path(file))
    module = usermodule.load(spec, weights)
    inputs, _ = usermodule.load_test_data(test_data, [torch.from_numpy(x[:1]) for x in bundled])
    return verify_file(file, board, module, inputs)


def deploy_file(file: str | Path, board: str | None) -> FleetReport:
    """deploy with a compiled file: the same steps as a recipe's (pipeline.deploy.deploy_to)."""
    from .deploy import deploy_to

    path = compiled_path(file)
    name = _name(path)
    outcomes = across(config.resolve(board), lambda b: deploy_to(name, path, b))
    return FleetReport("deploy", ("release", "target", "smoke_max_abs_err"), tuple(outcomes))


def run_file(file: str | Path, board: str | None, values: list[float] | None) -> RunReport:
    """The file's model on `values` (rows of its single input; default: the bundled test set's first row)."""
    path = compiled_path(file)
    chosen = config.board(board)
    bundled, _ = bundled_tests(path)
    if len(bundled) != 1:
        raise UsageError(f"--file {path}: the model takes {len(bundled)} inputs; run --file feeds one")
    width = int(np.prod(bundled[0].shape[1:]))
    if values:
        x = np.array(values, dtype=np.float32)
        if x.size % width:
            raise UsageError(f"--inputs: {path.name} takes {width} value(s) per input row, got {x.size}")
        x = x.reshape(-1, *bundled[0].shape[1:])
    else:
        x = bundled[0][:1]
    prepare(chosen, path)
    with open_device(chosen) as device:
        result = device.run(path, [x])
    return RunReport(chosen.name, result.timing.get("isa", "unknown"), result.timing.get("latency_us_median"),
                     x.reshape(len(x), -1), result.outputs[0].reshape(len(x), -1))


def stream_file(file: str | Path, board: str | None, steps: int | None = None) -> StreamReport:
    """The bundled test inputs fed one per line (`lnnvm stream`, state kept in the VM), and in one call; the
    reference is the reference VM on the same sequence (a file carries no PyTorch outputs for a sequence)."""
    path = compiled_path(file)
    chosen = config.board(board)
    bundled, tests = bundled_tests(path)
    if len(bundled) != 1 or bundled[0].ndim != 2:
        raise UsageError(f"--file {path}: streaming feeds one input of one row of values per line")
    steps = len(tests.inputs) if steps is None else steps
    if not 1 <= steps <= len(tests.inputs):
        raise UsageError(f"--steps must be between 1 and {len(tests.inputs)} (the file's test rows), got {steps}")
    x = bundled[0][:steps]
    reference = RefVM(path.read_bytes()).run_sequence([x[:, None]])[0][:, 0]
    prepare(chosen, path)
    with open_device(chosen) as device:
        with device.stream(path) as streamer:
            streamed = np.stack([streamer.step(row) for row in x])
        whole = device.run(path, [x], batch=1).outputs[0]
    return StreamReport(_name(path), chosen.name, x, streamed, whole, reference, float(tests.max_abs_err),
                        reference_name="the reference VM")


def supported_ops() -> OpsReport:
    """The compiler's op table as a user reads it: each row's torch ops and its limits."""
    from ..compiler.optable import ops

    rows = []
    for op in ops():
        names = op.listing().removesuffix(f" ({op.note})" if op.note else "")
        if names:
            rows.append((op.name, names, op.note))
    rows.append(("(folded)", "any op on parameters and buffers alone", "computed once at compile time"))
    return OpsReport(tuple(rows))
