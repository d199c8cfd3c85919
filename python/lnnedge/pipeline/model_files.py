"""Where a recipe's compiled model files are, and the error that names the command making a missing one.

Kept apart from pipeline.compile (which needs torch) so that the steps working on compiled files alone —
build, deploy, status — start without importing torch.
"""

from __future__ import annotations

from pathlib import Path

from .. import recipe as recipes
from ..artifacts import MissingArtifact
from ..errors import UsageError
from ..paths import model_dir
from ..quant_gate import SCHEMES


def model_file(name: str, quant: str | None = None) -> Path:
    """build/<model>/model.lnnb, or model-<scheme>.lnnb for a quantized compile."""
    if quant is not None and quant not in SCHEMES:
        raise UsageError(f"--quant {quant}: supported schemes are {', '.join(SCHEMES)}")
    return model_dir(name) / (f"model-{quant}.lnnb" if quant else "model.lnnb")


def compiled_file(recipe: recipes.Recipe, quant: str | None = None) -> Path:
    """The compiled file a later step needs; missing, it names the command that makes it."""
    path = model_file(recipe.name, quant)
    if not path.is_file():
        flag = f" --quant {quant}" if quant else ""
        raise MissingArtifact(f"{path} does not exist: run `invoke compile --model {recipe.name}{flag}` first")
    return path
