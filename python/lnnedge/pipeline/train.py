"""train: a recipe's model trained and saved (checkpoint, metrics, loss curve), or trained on several seeds."""

from __future__ import annotations

import torch

from .. import recipe as recipes
from ..paths import model_dir
from ..progress import Progress, silent
from ..train import load_checkpoint, save, train
from .reports import SeedsReport, TrainReport


def kind(recipe: recipes.Recipe) -> str:
    """The recipe's task: regression (a function of the inputs), classifier or sequence."""
    return "classifier" if recipe.classifier else "sequence" if recipe.sequence else "regression"


def load_trained(recipe: recipes.Recipe) -> torch.nn.Module:
    """The recipe's trained model from build/<model>/checkpoint.pt."""
    return load_checkpoint(recipe, model_dir(recipe.name))


def train_model(model: str, seed: int | None = None, epochs: int | None = None,
                progress: Progress = silent) -> TrainReport:
    recipe = recipes.load(model)
    result = train(recipe, seed=seed, epochs=epochs, progress=progress)
    out = model_dir(recipe.name)
    save(result, recipe, out)
    return TrainReport(recipe.name, kind(recipe), result.metrics,
                       (out / "checkpoint.pt", out / "train-metrics.json", out / "loss.png"))


def train_seeds(model: str, seeds: list[int], epochs: int | None = None, progress: Progress = silent) -> SeedsReport:
    """Train once per seed (nothing saved)."""
    recipe = recipes.load(model)
    runs = tuple(train(recipe, seed=seed, epochs=epochs, progress=progress).metrics for seed in seeds)
    return SeedsReport(recipe.name, recipe.tolerances.target_rmse, runs)
