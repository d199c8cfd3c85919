"""Post-training quantization of the Linear layers' weights, three schemes.

int8: symmetric, one scale per output channel
    scale[m] = max_k |W[m, k]| / 127          (1 where the row is all zeros)
    q[m, k]  = clamp(round(W[m, k] / scale[m]), -127, 127)
    y        = (x @ q^T) * scale + b           activations and accumulation stay float32
w8a16: the int8 weights, and each input row of a quantized layer rounded to 16-bit block floating point
    (one power-of-two step per row, round_rows16) before the product, which the device then takes in
    integers: the scheme for microcontrollers with a DSP extension (SMLAD), where it is faster than float.
f16: each weight rounded to IEEE half (round to nearest even), widened to float32 by the VM at load.

`fake_quantize` gives the PyTorch model that computes exactly this (weights
replaced by q * scale, or by their float16 values; for w8a16 also a forward
pre-hook rounding each quantized layer's input): what the quantized device is
verified against. `check` is the quantize-check gate: quantized vs float on
the held-out set.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data, filesize
from .artifacts import atomic_write_text
from .quant_gate import DESCRIPTIONS, report_path
from .recipe import Recipe, RecipeError


@dataclass(frozen=True)
class QuantizedWeight:
    q: np.ndarray  # int8 (M, K)
    scale: np.ndarray  # float32 (M,)


def quantize_weight(w: np.ndarray) -> QuantizedWeight:
    w = np.asarray(w, dtype=np.float32)
    peak = np.max(np.abs(w), axis=1)
    scale = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return QuantizedWeight(q, scale)


def dequantize(qw: QuantizedWeight) -> np.ndarray:
    return (qw.q.astype(np.float32) * qw.scale[:, None]).astype(np.float32)


def quantizable(model: torch.nn.Module, keep_float: tuple[str, ...]) -> list[str]:
    """Names of the nn.Linear modules to quantize (all but those kept in float)."""
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name not in keep_float]


def int8_scales(model: torch.nn.Module, keep_float: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Layer name -> its weight's scale per output row: what the compiler needs to store q as int8."""
    modules = dict(model.named_modules())
    return {name: quantize_weight(modules[name].weight.detach().numpy()).scale
            for name in quantizable(model, keep_float)}


def _power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """2^exponent as float32, built from its bits (exact; exponent in the normal range)."""
    return ((exponent.to(torch.int32) + 127) << 23).view(torch.float32)


def round_rows16(x: torch.Tensor) -> torch.Tensor:
    """Each row (last dim) of x rounded to 16-bit block floating point, as the device's w8a16 products do
    (vm/include/lnn_opcodes.def, LINEAR_W8A16): e is the least exponent with round(max|x| 2^(15-e)) <= 32767
    (at least -100), every element becomes round_half_even(x 2^(15-e)) 2^(e-15); a row holding a NaN or an
    infinity becomes all NaN (the device gives NaN for every output of such a row)."""
    finite = torch.isfinite(x).all(dim=-1, keepdim=True)
    peak = torch.where(finite, x.abs().amax(dim=-1, keepdim=True), torch.zeros((), dtype=x.dtype))
    mantissa, exponent = torch.frexp(peak)  # peak = mantissa 2^exponent, mantissa in [0.5, 1) (0 for 0)
    # mantissa 2^15 is exact: a peak that rounds up to 32768 takes the next exponent
    exponent = exponent + (torch.round(mantissa * 32768) >= 32768).to(exponent.dtype)
    exponent = torch.clamp(exponent, min=-100)
    rounded = torch.round(x * _power_of_two(15 - exponent)) * _power_of_two(exponent - 15)
    return torch.where(finite, rounded, torch.full((), float("nan"), dtype=x.dtype))


def _round_input(_module: torch.nn.Module, args: tuple) -> tuple:
    return (round_rows16(args[0]), *args[1:])


def fake_quantize(model: torch.nn.Module, keep_float: tuple[str, ...], scheme: str = "int8") -> torch.nn.Module:
    """A copy of `model` whose quantized Linear weights are replaced by q * scale (int8, w8a16) or rounded to
    float16 (f16); for w8a16 each of those layers also rounds its input rows (round_rows16, a forward
    pre-hook; `capturable` gives the model without the hooks, for the compiler)."""
    fake = copy.deepcopy(model)
    modules = dict(fake.named_modules())
    with torch.no_grad():
        for name in quantizable(fake, keep_float):
            module = modules[name]
            if scheme == "f16":
                module.weight.copy_(module.weight.half().float())
            else:
                module.weight.copy_(torch.from_numpy(dequantize(quantize_weight(module.weight.detach().numpy()))))
            if scheme == "w8a16":
                module.register_forward_pre_hook(_round_input)
    return fake.eval()


def capturable(model: torch.nn.Module) -> torch.nn.Module:
    """`model` without w8a16's input-rounding hooks: what the compiler captures (its store_w8a16 pass puts
    the rounding into the device's products); the same model when it has none."""
    if not any(_round_input in m._forward_pre_hooks.values() for m in model.modules()):
        return model
    bare = copy.deepcopy(model)
    for module in bare.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if hook is _round_input:
                del module._forward_pre_hooks[key]
    return bare


def rounding_effect(model: torch.nn.Module, forward: Callable[[torch.nn.Module], np.ndarray]) -> float:
    """How far w8a16's activation rounding moves `model`'s outputs (`forward(m)` runs a model on the inputs at
    hand): max |with the rounding - without it|; 0 for a model without the rounding.

    This is the tolerance a device is held to for w8a16 (when above the float one): the device rounds the same
    rows as PyTorch, but a pre-rounding value one float ulp away from PyTorch's (another sum order, another exp)
    that straddles a rounding midpoint moves one input by a whole 16-bit step. On the trained ltc-sine a few percent
    of the verify rows hold such a flip (the others match to 1e-5), which no float tolerance can absorb; a
    flip moves one input by one step where the rounding itself moves every input by up to half a step, so the
    rounding's own effect bounds what flips can do."""
    bare = capturable(model)
    if bare is model:
        return 0.0
    with torch.no_grad():
        rounded, plain = forward(model), forward(bare)
    return float(np.max(np.abs(rounded.astype(np.float64) - plain.astype(np.float64)), initial=0.0))


def compile_options(model: torch.nn.Module, keep_float: tuple[str, ...], scheme: str) -> dict:
    """compile_module's arguments that store the quantized layers of `model` in `scheme`."""
    if scheme == "f16":
        return {"float16_layers": tuple(quantizable(model, keep_float))}
    if scheme == "w8a16":
        return {"w8a16_scales": int8_scales(model, keep_float)}
    return {"int8_scales": int8_scales(model, keep_float)}


def check(recipe: Recipe, model: torch.nn.Module, float_file: Path | None, quant_file: Path | None,
          out_dir: Path, scheme: str) -> dict:
    """Quantized vs float PyTorch on the held-out set, the task metric of both, sizes; writes the JSON."""
    spec = recipe.quantization
    if spec is None:
        raise RecipeError(f"{recipe.path}: the recipe has no quantization section")
    _, _, x_test, y_test = data.train_test(recipe.data)
    fake = fake_quantize(model, spec.keep_float, scheme)
    with torch.no_grad():
        xt = torch.tensor(x_test, dtype=torch.float32)
        y_float = model(xt).double().numpy()
        y_quant = fake(xt).double().numpy()
    diff = y_quant - y_float
    quantized = quantizable(model, spec.keep_float)
    modules = dict(model.named_modules())
    report = {
        "model": recipe.name,
        "quant": scheme,
        "scheme": DESCRIPTIONS[scheme],
        "quantized_tensors": [f"{name}.weight {tuple(modules[name].weight.shape)}" for name in quantized],
        "float_tensors": sorted(n for n, _ in model.named_parameters()
                                if not (n.endswith(".weight") and n[:-7] in quantized)),
        "n": int(len(x_test)),
        "max_abs_err": float(np.max(np.abs(diff))),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "task_rmse_float": float(np.sqrt(np.mean((y_float - y_test) ** 2))),
        "task_rmse_quant": float(np.sqrt(np.mean((y_quant - y_test) ** 2))),
        "tolerance": {"max_abs_err": spec.max_abs_err, "task_rmse": spec.task_rmse},
        "float_file_bytes": float_file.stat().st_size if float_file and float_file.is_file() else None,
        "quant_file_bytes": quant_file.stat().st_size if quant_file and quant_file.is_file() else None,
    }
    if report["float_file_bytes"] and report["quant_file_bytes"]:
        report["size_ratio"] = report["quant_file_bytes"] / report["float_file_bytes"]
        report["quant_file_sha256"] = hashlib.sha256(quant_file.read_bytes()).hexdigest()
        report["size_breakdown"] = {"float32": filesize.breakdown(float_file.read_bytes()),
                                    scheme: filesize.breakdown(quant_file.read_bytes())}
    report["passed"] = bool(report["max_abs_err"] <= spec.max_abs_err and report["task_rmse_quant"] <= spec.task_rmse)
    atomic_write_text(report_path(out_dir, scheme), json.dumps(report, indent=2) + "\n")
    return report
