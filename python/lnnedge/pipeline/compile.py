"""compile: a trained recipe's model to build/<model>/model.lnnb (or model-<scheme>.lnnb), and the files the
other steps need from it."""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import quantize
from .. import recipe as recipes
from ..compiler import compile_module
from ..smoke import test_set
from .model_files import model_file
from .reports import CompileReport
from .train import load_trained


def quant_spec(recipe: recipes.Recipe) -> recipes.QuantSpec:
    if recipe.quantization is None:
        raise recipes.RecipeError(f"{recipe.path}: the recipe has no quantization section; add one to compile with "
                                  "--quant")
    return recipe.quantization


def reference_model(recipe: recipes.Recipe, quant: str | None = None,
                    net: torch.nn.Module | None = None) -> torch.nn.Module:
    """What the device must reproduce: the trained model (`net`, else loaded), or for a quantized compile the
    model with fake-quantized weights (the same int8 or float16 arithmetic in PyTorch; w8a16 also rounds the
    quantized layers' inputs)."""
    net = net if net is not None else load_trained(recipe)
    if quant is None:
        return net
    return quantize.fake_quantize(net, quant_spec(recipe).keep_float, quant)


def _module(recipe: recipes.Recipe, net: torch.nn.Module) -> tuple[torch.nn.Module, tuple, tuple, dict]:
    """What gets compiled: (module, example inputs, state pairs, metadata). A sequence model is compiled as one
    time step whose hidden state (as wide as the model's) stays in the VM between runs."""
    # a model with timespans takes each step's elapsed time as a last input column
    example = torch.zeros(1, recipe.model.inputs + int(recipe.model.timespans))
    meta = {"recipe": recipe.name, "kind": recipe.model.kind}
    if not recipe.classifier:
        meta.update(method=recipe.model.method, steps=recipe.model.steps - 1)
    if not recipe.sequence:
        return net, (example,), (), meta
    from ..models.sequence import Step

    hidden = int(net.hidden)
    meta["sequence"] = {"state": "hidden", "hidden": hidden}
    return Step(net), (example, torch.zeros(1, hidden)), ((1, 1),), meta


def compile_model(model: str, quant: str | None = None) -> CompileReport:
    recipe = recipes.load(model)
    path = model_file(recipe.name, quant)
    trained = load_trained(recipe)
    net = reference_model(recipe, quant, trained)
    stored = quantize.compile_options(trained, quant_spec(recipe).keep_float, quant) if quant else {}
    started = time.perf_counter()
    module, examples, state, meta = _module(recipe, quantize.capturable(net))
    if quant:
        meta["quantization"] = {"scheme": quant, "layers": sorted(next(iter(stored.values())))}
    compiled = compile_module(module, examples, name=recipe.name, meta=meta, tests=test_set(recipe, net),
                              state=state, **stored)
    compiled.save(path)
    seconds = time.perf_counter() - started
    plan = compiled.plan_summary()
    stored_as: tuple[str, ...] = ()
    if quant:
        dtype = np.float16 if quant == "f16" else np.int8
        constants = {k: v for scope in compiled.graph.scopes() for k, v in scope.constants.items()}
        stored_as = tuple(f"{name} {tuple(v.shape)}" for name, v in constants.items() if v.dtype == dtype)
        plain = model_file(recipe.name)
        if plain.is_file():
            plan["float_file_bytes"] = plain.stat().st_size
    return CompileReport(recipe.name, quant, path, seconds, plan, compiled.arena_bytes(1), stored_as)
