"""quantize-check: the quantized model vs the float one on the held-out set (the gate a quantized deploy needs),
with the two compiled files' sizes."""

from __future__ import annotations

from .. import quantize
from .. import recipe as recipes
from ..paths import model_dir
from .compile import compile_model, quant_spec
from .model_files import model_file
from .reports import QuantizeReport
from .train import load_trained


def quantize_check(model: str, quant: str | None = None) -> QuantizeReport:
    """Compiles the quantized file, and the float one if missing, so the sizes are of this checkpoint. `quant`:
    the scheme, by default the recipe's."""
    recipe = recipes.load(model)
    scheme = quant or quant_spec(recipe).scheme
    net = load_trained(recipe)
    compiled = [] if model_file(recipe.name).is_file() else [compile_model(model)]
    compiled.append(compile_model(model, scheme))
    out = model_dir(recipe.name)
    data = quantize.check(recipe, net, model_file(recipe.name), model_file(recipe.name, scheme), out, scheme)
    return QuantizeReport(data, quantize.report_path(out, scheme), tuple(compiled))
