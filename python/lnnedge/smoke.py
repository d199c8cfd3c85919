"""The bundled test set: a few held-out inputs and the model's PyTorch outputs, shipped inside the .lnnb.

A deployment becomes active only after the device reproduces these outputs (deploy.py); the tolerance
travels with them.
"""

from __future__ import annotations

import numpy as np
import torch

from . import data
from .data import Draw, seed_for
from .lnnb import TestSet
from .recipe import Recipe

ROWS = 16


def test_set(recipe: Recipe, model: torch.nn.Module) -> TestSet:
    """ROWS inputs with `model`'s outputs: points apart from the verify and training points of a function,
    the first test samples of a data set."""
    if recipe.sequence:  # the first step of sequences, from the zero state a fresh deployment starts in
        from .sequences import damped_oscillations

        x = damped_oscillations(recipe.data, ROWS, seed_for(recipe.data, Draw.SMOKE))[0][:, 0]
        with torch.no_grad():
            expected = model.step(torch.from_numpy(x), torch.zeros(ROWS, model.hidden))[0].numpy()
        return TestSet(x, expected.astype(np.float32), recipe.tolerances.float32_max_abs_err)
    x = data.grid_points(recipe.data, ROWS, seed=seed_for(recipe.data, Draw.SMOKE)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy().astype(np.float32)
    return TestSet(x.reshape(ROWS, -1), expected.reshape(ROWS, -1), recipe.tolerances.float32_max_abs_err)
