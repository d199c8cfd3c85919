"""The bundled test set: a few held-out inputs and the model's PyTorch outputs, shipped inside the .lnnb.

A deployment becomes active only after the device reproduces these outputs (deploy.py); the tolerance
travels with them.
"""

from __future__ import annotations

import numpy as np
import torch

from . import data, quantize
from .data import Draw, seed_for
from .lnnb import TestSet
from .recipe import Recipe

ROWS = 16


def test_set(recipe: Recipe, model: torch.nn.Module) -> TestSet:
    """ROWS inputs with `model`'s outputs: points apart from the verify and training points of a function,
    the first test samples of a data set. The tolerance is the recipe's float32 one, or for w8a16 the effect of
    its activation rounding on these rows when larger (quantize.rounding_effect)."""
    if recipe.sequence:  # the first step of sequences, from the zero state a fresh deployment starts in
        from .sequences import damped_oscillations

        x = damped_oscillations(recipe.data, ROWS, seed_for(recipe.data, Draw.SMOKE))[0][:, 0]

        def forward(m: torch.nn.Module) -> np.ndarray:
            return m.step(torch.from_numpy(x), torch.zeros(ROWS, m.hidden))[0].numpy()
    else:
        x = data.grid_points(recipe.data, ROWS, seed=seed_for(recipe.data, Draw.SMOKE)).astype(np.float32)
        x = x.reshape(ROWS, -1)

        def forward(m: torch.nn.Module) -> np.ndarray:
            return m(torch.from_numpy(x)).numpy().reshape(ROWS, -1)
    with torch.no_grad():
        expected = forward(model).astype(np.float32)
    tolerance = max(recipe.tolerances.float32_max_abs_err, quantize.rounding_effect(model, forward))
    return TestSet(x, expected, tolerance)
