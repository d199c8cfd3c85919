"""Data sets generated from a recipe's target function (no downloads)."""

from __future__ import annotations

import numpy as np

from .expr import evaluate
from .recipe import DataSpec


def target(spec: DataSpec, x: np.ndarray) -> np.ndarray:
    """The true function at points x of shape (n, inputs) -> (n, 1), in float64."""
    x = np.asarray(x, dtype=np.float64)
    names = {f"x{i}": x[:, i] for i in range(x.shape[1])}
    if x.shape[1] == 1:
        names["x"] = x[:, 0]
    y = np.broadcast_to(np.asarray(evaluate(spec.function, names), dtype=np.float64), (x.shape[0],))
    return y.reshape(-1, 1).copy()


def uniform_points(spec: DataSpec, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = np.array([r[0] for r in spec.ranges])
    high = np.array([r[1] for r in spec.ranges])
    return low + (high - low) * rng.random((n, len(spec.ranges)))


def grid_points(spec: DataSpec, n: int, seed: int = 0) -> np.ndarray:
    """n points covering the range: an even grid in 1-D, seeded uniform samples otherwise."""
    if len(spec.ranges) == 1:
        low, high = spec.ranges[0]
        return np.linspace(low, high, n).reshape(-1, 1)
    return uniform_points(spec, n, seed)


def train_test(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); test points are drawn independently (held out)."""
    x_train = uniform_points(spec, spec.train_points, spec.seed)
    x_test = uniform_points(spec, spec.test_points, spec.seed + 1)
    return x_train, target(spec, x_train), x_test, target(spec, x_test)
