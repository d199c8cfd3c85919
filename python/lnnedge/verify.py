"""verify: the same inputs through PyTorch, the reference VM and the device; a report, a plot, a verdict.

Writes build/<model>/verify-<board>.json and verify-<board>.png.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data
from .artifacts import atomic_write_text
from .config import Board
from .plots import classifier_plot, verify_plot
from .recipe import Recipe
from .refvm import RefVM
from .transports.base import Transport


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


def _device_fields(board: Board, result, blob: bytes, wall: float) -> dict:
    """What the report says about the device and the run, for every kind of model."""
    return {
        "target": board.target.name,
        "transport": board.transport,
        "isa": result.timing.get("isa", "unknown"),
        "kernels": result.info.get("kernels", "unknown"),
        "emulated": board.transport in ("qemu", "qemu-system") or bool(
            board.ssh and board.ssh.command_prefix and board.ssh.command_prefix[0].startswith("qemu")),
        "vm_version": result.timing.get("vm_version", "unknown"),
        "model_sha256": hashlib.sha256(blob).hexdigest(),
        "model_bytes": len(blob),
        "latency_us": result.timing.get("latency_us_median"),
        "latency_us_min": result.timing.get("latency_us_min"),
        "latency_us_max": result.timing.get("latency_us_max"),
        "latency_runs": result.timing.get("chunks"),
        **{k: result.timing[k] for k in ("cycles_per_inference_median", "cycles_min", "cycles_max", "cycle_counter")
           if k in result.timing},
        "device_wall_seconds": round(wall, 3),
    }


def verify_classifier(recipe: Recipe, model: torch.nn.Module, model_file: Path, board: Board,
                      transport: Transport, out_dir: Path) -> dict:
    """The whole test set through PyTorch, the reference VM and the device: logits within the tolerance, every
    predicted class the same, and so the same accuracy."""
    _, _, x, labels = data.classification(recipe.data)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    blob = model_file.read_bytes()
    ref_out = RefVM(blob).run([x])[0]
    started = time.perf_counter()
    result = transport.run(model_file, [x], batch=1)
    wall = time.perf_counter() - started
    device = result.outputs[0]
    tol = recipe.tolerances.float32_max_abs_err
    dev, ref = Comparison.of(device, reference), Comparison.of(ref_out, reference)
    classes = {name: np.argmax(out, axis=1) for name, out in
               (("pytorch", reference), ("device", device), ("reference_vm", ref_out))}
    accuracy = {name: float(np.mean(c == labels)) for name, c in classes.items()}
    same_dev = float(np.mean(classes["device"] == classes["pytorch"]))
    same_ref = float(np.mean(classes["reference_vm"] == classes["pytorch"]))
    report = {
        "model": recipe.name,
        "board": board.name,
        "kind": "classifier",
        **_device_fields(board, result, blob, wall),
        "n": int(len(x)),
        "max_abs_err": dev.max_abs_err,
        "rmse": dev.rmse,
        "tolerance": tol,
        "same_class_share": same_dev,
        "accuracy_pytorch": accuracy["pytorch"],
        "accuracy_device": accuracy["device"],
        "passed": bool(dev.max_abs_err <= tol and ref.max_abs_err <= tol and same_dev == 1.0 and same_ref == 1.0
                       and accuracy["device"] == accuracy["pytorch"]),
        "reference_vm": {"max_abs_err": ref.max_abs_err, "rmse": ref.rmse, "same_class_share": same_ref,
                         "accuracy": accuracy["reference_vm"]},
        "plot": f"verify-{board.name}.png",
        "json": f"verify-{board.name}.json",
    }
    atomic_write_text(out_dir / report["json"], json.dumps(report, indent=2) + "\n")
    classifier_plot(reference, device, f"{recipe.name} on {board.name} ({report['isa']}): "
                    f"max |device − PyTorch| = {dev.max_abs_err:.2e}, same class {100 * same_dev:.1f} %",
                    out_dir / f"verify-{board.name}.png")
    return report


def _against(reference: np.ndarray, device: np.ndarray, ref_out: np.ndarray, truth: np.ndarray, tol: float,
             stem: str) -> dict:
    """A regression report's verdict: device and reference VM against PyTorch, both against the truth, the
    report's file names."""
    dev, ref = Comparison.of(device, reference), Comparison.of(ref_out, reference)
    return {
        "max_abs_err": dev.max_abs_err,
        "rmse": dev.rmse,
        "tolerance": tol,
        "passed": bool(dev.max_abs_err <= tol and ref.max_abs_err <= tol),
        "reference_vm": {"max_abs_err": ref.max_abs_err, "rmse": ref.rmse},
        "pytorch_vs_true_rmse": float(np.sqrt(np.mean((reference.astype(np.float64) - truth) ** 2))),
        "device_vs_true_rmse": float(np.sqrt(np.mean((device.astype(np.float64) - truth) ** 2))),
        "plot": f"{stem}.png",
        "json": f"{stem}.json",
    }


def run_sequences(transport: Transport, model_file: Path, x: np.ndarray):
    """Whole sequences x (n, T, features) through a stateful model on a device: the runner takes the rows
    time-major in chunks of n (one chunk per time step, the n streams' states kept in the VM between chunks).
    Returns (outputs (n, T, out), the run's RunResult)."""
    n, steps = x.shape[:2]
    result = transport.run(model_file, [np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(steps * n, -1)], batch=n)
    return result.outputs[0].reshape(steps, n, -1).transpose(1, 0, 2), result


def verify_sequence(recipe: Recipe, model: torch.nn.Module, model_file: Path, board: Board,
                    transport: Transport, out_dir: Path) -> dict:
    """Held-out sequences through PyTorch, the reference VM and the device, every step's output compared."""
    from . import sequences
    from .plots import sequence_plot

    _, _, x_all, y_all = sequences.train_test(recipe.data)
    x, target = x_all[:recipe.verify_points], y_all[:recipe.verify_points]
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    blob = model_file.read_bytes()
    ref_out = RefVM(blob).run_sequence([np.ascontiguousarray(x.transpose(1, 0, 2))])[0].transpose(1, 0, 2)
    started = time.perf_counter()
    device, result = run_sequences(transport, model_file, x)
    wall = time.perf_counter() - started
    tol = recipe.tolerances.float32_max_abs_err
    report = {
        "model": recipe.name,
        "board": board.name,
        "kind": "sequence",
        **_device_fields(board, result, blob, wall),
        "n": int(x.shape[0]),
        "steps": int(x.shape[1]),
        **_against(reference, device, ref_out, target, tol, f"verify-{board.name}"),
    }
    atomic_write_text(out_dir / report["json"], json.dumps(report, indent=2) + "\n")
    sequence_plot(x, target, reference, device, f"{recipe.name} on {board.name} ({report['isa']}): {x.shape[0]} "
                  f"sequences × {x.shape[1]} steps, max |device − PyTorch| = {report['max_abs_err']:.2e}",
                  out_dir / report["plot"])
    return report


def verify(recipe: Recipe, model: torch.nn.Module, model_file: Path, board: Board, transport: Transport,
           out_dir: Path, float_model: torch.nn.Module | None = None, label: str | None = None) -> dict:
    """`model` is what the device must reproduce (for a quantized file: the fake-quantized model); with
    `float_model` the device's error against the float model is reported as well. `label` (e.g. int8)
    names the report files verify-<board>-<label>.json/png."""
    if recipe.classifier:
        return verify_classifier(recipe, model, model_file, board, transport, out_dir)
    if recipe.sequence:
        return verify_sequence(recipe, model, model_file, board, transport, out_dir)
    x = data.grid_points(recipe.data, recipe.verify_points, seed=recipe.data.seed + 2).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    blob = model_file.read_bytes()
    ref_out = RefVM(blob).run([x])[0]
    started = time.perf_counter()
    result = transport.run(model_file, [x], batch=1)
    wall = time.perf_counter() - started
    device = result.outputs[0]
    truth = data.target(recipe.data, x)

    tol = recipe.tolerances.float32_max_abs_err
    stem = f"verify-{board.name}" + (f"-{label}" if label else "")
    report = {
        "model": recipe.name,
        "board": board.name,
        **_device_fields(board, result, blob, wall),
        "n": int(len(x)),
        **_against(reference, device, ref_out, truth, tol, stem),
    }
    if label:
        report["weights"] = label
    if float_model is not None:
        with torch.no_grad():
            float_out = float_model(torch.from_numpy(x)).numpy()
        vs_float = Comparison.of(device, float_out)
        report["vs_float_model"] = {"max_abs_err": vs_float.max_abs_err, "rmse": vs_float.rmse}
    atomic_write_text(out_dir / report["json"], json.dumps(report, indent=2) + "\n")
    title = f"{recipe.name} on {board.name} ({report['isa']}): max |device − PyTorch| = {report['max_abs_err']:.2e}"
    verify_plot(x, truth, reference, device, title, out_dir / report["plot"])
    return report


def _classifier_table(report: dict) -> str:
    ref = report["reference_vm"]
    tol = report["tolerance"]
    rows = [
        ("", "max |logit err| vs PyTorch", "same class as PyTorch", "accuracy", "verdict"),
        ("PyTorch", "", "", f"{100 * report['accuracy_pytorch']:.2f} %", ""),
        ("reference VM (numpy)", f"{ref['max_abs_err']:.3e}", f"{100 * ref['same_class_share']:.2f} %",
         f"{100 * ref['accuracy']:.2f} %",
         "ok" if ref["max_abs_err"] <= tol and ref["same_class_share"] == 1.0 else "FAIL"),
        (f"device {report['board']} ({report['isa']})", f"{report['max_abs_err']:.3e}",
         f"{100 * report['same_class_share']:.2f} %", f"{100 * report['accuracy_device']:.2f} %",
         "ok" if report["max_abs_err"] <= tol and report["same_class_share"] == 1.0 else "FAIL"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    latency = report.get("latency_us")
    emulated = " under QEMU emulation, not device speed" if report.get("emulated") else ""
    if latency is not None:
        lines.append(f"on-device latency {latency:.2f} µs (median per inference{emulated})")
    lines.append(f"n = {report['n']} test images (the whole test set), logit tolerance {tol:.0e}, identical "
                 f"classes required; {'PASSED' if report['passed'] else 'FAILED'}")
    return "\n".join(lines)


def table(report: dict) -> str:
    """The report as a small terminal table."""
    if report.get("kind") == "classifier":
        return _classifier_table(report)
    rows = [
        ("", "max |err| vs PyTorch", "RMSE vs PyTorch", "verdict"),
        ("reference VM (numpy)", f"{report['reference_vm']['max_abs_err']:.3e}",
         f"{report['reference_vm']['rmse']:.3e}",
         "ok" if report["reference_vm"]["max_abs_err"] <= report["tolerance"] else "FAIL"),
        (f"device {report['board']} ({report['isa']})", f"{report['max_abs_err']:.3e}", f"{report['rmse']:.3e}",
         "ok" if report["max_abs_err"] <= report["tolerance"] else "FAIL"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    latency = report.get("latency_us")
    emulated = " under QEMU emulation, not device speed" if report.get("emulated") else ""
    n = f"{report['n']} sequences × {report['steps']} steps" if report.get("kind") == "sequence" else report["n"]
    lines.append(f"n = {n}, tolerance {report['tolerance']:.0e}, "
                 f"on-device latency {latency:.2f} µs (median per inference{emulated})" if latency is not None else "")
    if report.get("cycles_per_inference_median") is not None:
        lines.append(f"{report['cycles_per_inference_median']:.0f} cycles per inference (median, "
                     f"{report.get('cycle_counter', 'cycle counter')})")
    if report.get("vs_float_model"):
        f = report["vs_float_model"]
        lines.append(f"{report['weights']} model: held to PyTorch with the same quantized weights; vs the float "
                     f"model max |err| {f['max_abs_err']:.3e}, RMSE {f['rmse']:.3e}")
    truth = "the clean next sample" if report.get("kind") == "sequence" else "true function"
    lines.append(f"PyTorch vs {truth} RMSE {report['pytorch_vs_true_rmse']:.4f}; "
                 f"{'PASSED' if report['passed'] else 'FAILED'}")
    return "\n".join(lines)
