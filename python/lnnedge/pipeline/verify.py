"""verify: the same inputs through PyTorch, the reference VM and the device; a report, a plot, a verdict.

One skeleton (`verify_on`) for every model kind; what differs per kind — the inputs and what they should give,
how the reference VM and the device are fed, how the outputs are scored, the plot — is a `Kind` (regression,
classifier, sequence). Writes build/<model>/verify-<board>[-<weights>].json and .png.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .. import config, data, plots, quantize, sequences
from .. import recipe as recipes
from ..artifacts import atomic_write_text
from ..data import Draw, seed_for
from ..devices import Device, RunResult, open_device, prepare, reserve
from ..devices.fleet import across
from ..paths import model_dir
from ..refvm import RefVM
from .compile import reference_model
from .model_files import compiled_file
from .reports import FleetReport, VerifyReport
from .train import kind as task_kind
from .train import load_trained


@dataclass(frozen=True)
class Comparison:
    max_abs_err: float
    rmse: float

    @staticmethod
    def of(device: np.ndarray, reference: np.ndarray) -> Comparison:
        diff = device.astype(np.float64) - reference.astype(np.float64)
        worst = float(np.max(np.abs(diff))) if diff.size else 0.0
        if not np.all(np.isfinite(device)):
            worst = float("inf")
        return Comparison(worst, float(np.sqrt(np.mean(diff ** 2))))


@dataclass(frozen=True)
class Case:
    x: np.ndarray  # the inputs: (n, features), or (n, T, features) for sequences
    truth: np.ndarray  # what the model should give: the true function, the next clean sample, or the labels


class Kind(Protocol):
    name: str

    def case(self, recipe: recipes.Recipe) -> Case: ...

    def reference_vm(self, blob: bytes, x: np.ndarray) -> np.ndarray: ...

    def device(self, device: Device, model_file: Path, x: np.ndarray) -> tuple[np.ndarray, RunResult]: ...

    def size(self, case: Case) -> dict: ...

    def score(self, case: Case, reference: np.ndarray, device: np.ndarray, ref_out: np.ndarray,
              tol: float) -> dict:
        """The verdict fields of the report, `passed` among them."""

    def plot(self, case: Case, reference: np.ndarray, device: np.ndarray, title: str, path: Path) -> None: ...


def _against(reference: np.ndarray, device: np.ndarray, ref_out: np.ndarray, truth: np.ndarray, tol: float) -> dict:
    """A regression verdict: device and reference VM against PyTorch, both against the truth."""
    dev, ref = Comparison.of(device, reference), Comparison.of(ref_out, reference)
    return {
        "max_abs_err": dev.max_abs_err,
        "rmse": dev.rmse,
        "tolerance": tol,
        "passed": bool(dev.max_abs_err <= tol and ref.max_abs_err <= tol),
        "reference_vm": {"max_abs_err": ref.max_abs_err, "rmse": ref.rmse},
        "pytorch_vs_true_rmse": float(np.sqrt(np.mean((reference.astype(np.float64) - truth) ** 2))),
        "device_vs_true_rmse": float(np.sqrt(np.mean((device.astype(np.float64) - truth) ** 2))),
    }


class Regression:
    """A function of the inputs: the recipe's verify points, held to PyTorch and compared with the truth."""
    name = "regression"

    def case(self, recipe: recipes.Recipe) -> Case:
        x = data.grid_points(recipe.data, recipe.verify_points, seed=seed_for(recipe.data, Draw.VERIFY))
        x = x.astype(np.float32)
        return Case(x, data.target(recipe.data, x))

    def reference_vm(self, blob: bytes, x: np.ndarray) -> np.ndarray:
        return RefVM(blob).run([x])[0]

    def device(self, device: Device, model_file: Path, x: np.ndarray) -> tuple[np.ndarray, RunResult]:
        result = device.run(model_file, [x], batch=1)
        return result.outputs[0], result

    def size(self, case: Case) -> dict:
        return {"n": int(len(case.x))}

    def score(self, case: Case, reference: np.ndarray, device: np.ndarray, ref_out: np.ndarray,
              tol: float) -> dict:
        return _against(reference, device, ref_out, case.truth, tol)

    def plot(self, case: Case, reference: np.ndarray, device: np.ndarray, title: str, path: Path) -> None:
        plots.verify_plot(case.x, case.truth, reference, device, title, path)


class Classifier(Regression):
    """The whole test set: logits within the tolerance, every predicted class the same, so the same accuracy."""
    name = "classifier"

    def case(self, recipe: recipes.Recipe) -> Case:
        _, _, x, labels = data.classification(recipe.data)
        return Case(x, labels)

    def score(self, case: Case, reference: np.ndarray, device: np.ndarray, ref_out: np.ndarray,
              tol: float) -> dict:
        dev, ref = Comparison.of(device, reference), Comparison.of(ref_out, reference)
        classes = {name: np.argmax(out, axis=1) for name, out in
                   (("pytorch", reference), ("device", device), ("reference_vm", ref_out))}
        accuracy = {name: float(np.mean(c == case.truth)) for name, c in classes.items()}
        same_dev = float(np.mean(classes["device"] == classes["pytorch"]))
        same_ref = float(np.mean(classes["reference_vm"] == classes["pytorch"]))
        return {
            "max_abs_err": dev.max_abs_err,
            "rmse": dev.rmse,
            "tolerance": tol,
            "same_class_share": same_dev,
            "accuracy_pytorch": accuracy["pytorch"],
            "accuracy_device": accuracy["device"],
            "passed": bool(dev.max_abs_err <= tol and ref.max_abs_err <= tol and same_dev == 1.0
                           and same_ref == 1.0 and accuracy["device"] == accuracy["pytorch"]),
            "reference_vm": {"max_abs_err": ref.max_abs_err, "rmse": ref.rmse, "same_class_share": same_ref,
                             "accuracy": accuracy["reference_vm"]},
        }

    def plot(self, case: Case, reference: np.ndarray, device: np.ndarray, title: str, path: Path) -> None:
        same = float(np.mean(np.argmax(device, axis=1) == np.argmax(reference, axis=1)))
        plots.classifier_plot(reference, device, f"{title}, same class {100 * same:.1f} %", path)


def run_sequences(device: Device, model_file: Path, x: np.ndarray) -> tuple[np.ndarray, RunResult]:
    """Whole sequences x (n, T, features) through a stateful model on a device: the runner takes the rows
    time-major in chunks of n (one chunk per time step, the n streams' states kept in the VM between chunks).
    Returns (outputs (n, T, out), the run's RunResult)."""
    n, steps = x.shape[:2]
    result = device.run(model_file, [np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(steps * n, -1)], batch=n)
    return result.outputs[0].reshape(steps, n, -1).transpose(1, 0, 2), result


class Sequence(Regression):
    """Held-out sequences, every step's output compared; the truth is the clean next sample."""
    name = "sequence"

    def case(self, recipe: recipes.Recipe) -> Case:
        _, _, x_all, y_all = sequences.train_test(recipe.data)
        return Case(x_all[:recipe.verify_points], y_all[:recipe.verify_points])

    def reference_vm(self, blob: bytes, x: np.ndarray) -> np.ndarray:
        return RefVM(blob).run_sequence([np.ascontiguousarray(x.transpose(1, 0, 2))])[0].transpose(1, 0, 2)

    def device(self, device: Device, model_file: Path, x: np.ndarray) -> tuple[np.ndarray, RunResult]:
        return run_sequences(device, model_file, x)

    def size(self, case: Case) -> dict:
        return {"n": int(case.x.shape[0]), "steps": int(case.x.shape[1])}

    def plot(self, case: Case, reference: np.ndarray, device: np.ndarray, title: str, path: Path) -> None:
        n, steps = case.x.shape[:2]
        plots.sequence_plot(case.x, case.truth, reference, device,
                            title.replace(": max", f": {n} sequences × {steps} steps, max"), path)


KINDS: dict[str, Kind] = {k.name: k for k in (Regression(), Classifier(), Sequence())}


def kind_of(recipe: recipes.Recipe) -> Kind:
    return KINDS[task_kind(recipe)]


def _device_fields(board: config.Board, device: Device, result: RunResult, blob: bytes, wall: float) -> dict:
    """What the report says about the device and the run, for every kind of model."""
    return {
        "target": board.target.name,
        "transport": board.transport,
        "isa": result.timing.get("isa", "unknown"),
        "kernels": result.info.get("kernels", "unknown"),
        "emulated": device.emulated,
        "vm_version": result.timing.get("vm_version", "unknown"),
        "model_sha256": hashlib.sha256(blob).hexdigest(),
        "model_bytes": len(blob),
        "model_source": result.info.get("model_source"),  # a microcontroller's: "flash" (built in) or "ram"
        "latency_us": result.timing.get("latency_us_median"),
        "latency_us_min": result.timing.get("latency_us_min"),
        "latency_us_max": result.timing.get("latency_us_max"),
        "latency_runs": result.timing.get("chunks"),
        **{k: result.timing[k] for k in ("cycles_per_inference_median", "cycles_min", "cycles_max", "cycle_counter")
           if k in result.timing},
        "device_wall_seconds": round(wall, 3),
    }


def _torch(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def verify_on(recipe: recipes.Recipe, model: torch.nn.Module, model_file: Path, board: config.Board,
              device: Device, out_dir: Path, float_model: torch.nn.Module | None = None,
              label: str | None = None) -> VerifyReport:
    """`model` is what the device must reproduce (for a quantized file: the fake-quantized model); with
    `float_model` the device's error against the float model is reported as well. `label` (e.g. int8) names the
    report files verify-<board>-<label>.json/png, so they do not overwrite the float model's."""
    kind = kind_of(recipe)
    case = kind.case(recipe)
    reference = _torch(model, case.x)
    rounding = quantize.rounding_effect(model, lambda m: _torch(m, case.x))
    tolerance = max(recipe.tolerances.float32_max_abs_err, rounding)
    blob = model_file.read_bytes()
    ref_out = kind.reference_vm(blob, case.x)
    started = time.perf_counter()
    output, result = kind.device(device, model_file, case.x)
    wall = time.perf_counter() - started
    stem = f"verify-{board.name}" + (f"-{label}" if label else "")
    report = {"model": recipe.name, "board": board.name, "kind": kind.name,
              **_device_fields(board, device, result, blob, wall), **kind.size(case),
              **kind.score(case, reference, output, ref_out, tolerance),
              "plot": f"{stem}.png", "json": f"{stem}.json"}
    if rounding:
        base = recipe.tolerances.float32_max_abs_err
        report["tolerance_basis"] = (f"w8a16: the effect of the 16-bit activation rounding on these inputs "
                                     f"({rounding:.2e}), above the float32 tolerance {base:.0e}")
        # the rows without a rounding flip match PyTorch as a float model does: the share of them is the check
        # that the rounding is the same one, which the wider tolerance alone would not show
        rows = np.abs(output.astype(np.float64) - reference).reshape(len(output), -1).max(axis=1)
        report["rows_within_float32_tolerance"] = float(np.mean(rows <= base))
    if label:
        report["weights"] = label
    if float_model is not None:
        vs_float = Comparison.of(output, _torch(float_model, case.x))
        report["vs_float_model"] = {"max_abs_err": vs_float.max_abs_err, "rmse": vs_float.rmse}
    json_path, plot_path = out_dir / report["json"], out_dir / report["plot"]
    atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    weights = f" ({label} weights)" if label else ""
    kind.plot(case, reference, output, f"{recipe.name}{weights} on {board.name} ({report['isa']}): "
              f"max |device − PyTorch| = {report['max_abs_err']:.2e}", plot_path)
    return VerifyReport(recipe.name, board.name, kind.name, report["passed"], report, json_path, plot_path)


def failure_message(report: dict) -> str:
    """Why a verify report (verify-<board>.json) did not pass, in one line."""
    if report.get("kind") == "classifier":
        return (f"verification failed on {report['board']}: max_abs_err {report['max_abs_err']:.3e} (tolerance "
                f"{report['tolerance']:.0e}), same class {100 * report['same_class_share']:.2f} %, accuracy "
                f"{report['accuracy_device']:.4f} vs PyTorch {report['accuracy_pytorch']:.4f}")
    return (f"verification failed on {report['board']}: max_abs_err {report['max_abs_err']:.3e} > tolerance "
            f"{report['tolerance']:.0e}")


def verify(model: str, board: str | None, quant: str | None = None, count: int | None = None
           ) -> VerifyReport | FleetReport:
    """Verify on one board, or on every board of a group in parallel (a row per board). A quantized model is
    held to the fake-quantized PyTorch model and its error vs the float model is reported too. `count`: a labgrid
    board's places to verify on at once (lnnedge.devices.reserve)."""
    recipe = recipes.load(model)
    boards = config.resolve(board)
    out = model_dir(recipe.name)
    path = compiled_file(recipe, quant)
    trained = load_trained(recipe)
    net = reference_model(recipe, quant, trained)
    float_net = trained if quant else None

    def one(b: config.Board) -> VerifyReport:
        prepare(b, path)
        with open_device(b) as device:
            return verify_on(recipe, net, path, b, device, out, float_model=float_net, label=quant)

    with reserve(boards, count) as boards:
        if len(boards) == 1 and count is None:
            return one(boards[0])
        outcomes = across(boards, lambda b: one(b).data)
    return FleetReport("verify", ("isa", "max_abs_err", "latency_us"), tuple(outcomes))
