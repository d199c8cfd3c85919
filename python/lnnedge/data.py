"""Data sets: generated from a recipe's target function, or bundled with a package (no downloads)."""

from __future__ import annotations

from enum import IntEnum
from functools import cache

import numpy as np

from .expr import evaluate
from .recipe import DataSpec


class Draw(IntEnum):
    """What a set of points is for. Each is drawn with the recipe's data.seed plus its own offset, so no two
    overlap (a smoke-test or verify point is never a training point); this is the one place the offsets live."""

    TRAIN = 0
    TEST = 1  # the held-out set training reports and quantize-check score on
    VERIFY = 2  # verify's points (and verify --trace's rows)
    SMOKE = 3  # the test set bundled in a .lnnb (smoke.py)
    BENCH = 4  # the benchmark's inputs
    STREAM = 5  # the sequence `invoke stream` feeds


def seed_for(spec: DataSpec, draw: Draw) -> int:
    return spec.seed + int(draw)


def target(spec: DataSpec, x: np.ndarray) -> np.ndarray:
    """The true function at points x of shape (n, inputs) -> (n, outputs), one column per target expression, in
    float64."""
    x = np.asarray(x, dtype=np.float64)
    names = {f"x{i}": x[:, i] for i in range(x.shape[1])}
    if x.shape[1] == 1:
        names["x"] = x[:, 0]
    # an expression that is a constant (or ignores the inputs) still gives one value per point
    return np.stack([np.broadcast_to(np.asarray(evaluate(f, names), dtype=np.float64), (x.shape[0],))
                     for f in spec.functions], axis=1)


def uniform_points(spec: DataSpec, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = np.array([r[0] for r in spec.ranges])
    high = np.array([r[1] for r in spec.ranges])
    return low + (high - low) * rng.random((n, len(spec.ranges)))


def grid_points(spec: DataSpec, n: int, seed: int = 0) -> np.ndarray:
    """n points covering the range: an even grid in 1-D, seeded uniform samples otherwise.
    A bundled data set gives its first n test inputs (repeated when it has fewer)."""
    if spec.source != "function":
        x_test = classification(spec)[2]
        return np.resize(x_test, (n, x_test.shape[1])) if n else x_test
    if len(spec.ranges) == 1:
        low, high = spec.ranges[0]
        return np.linspace(low, high, n).reshape(-1, 1)
    return uniform_points(spec, n, seed)


def train_test(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); test points are drawn independently (held out)."""
    x_train = uniform_points(spec, spec.train_points, seed_for(spec, Draw.TRAIN))
    x_test = uniform_points(spec, spec.test_points, seed_for(spec, Draw.TEST))
    return x_train, target(spec, x_train), x_test, target(spec, x_test)


@cache
def _digits_split(seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from .extras import require

    # bundled with scikit-learn: no download
    load_digits = require("sklearn.datasets", "digits", "the digits data set").load_digits

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    # a stratified split by a seeded permutation of each class: the same split on every machine
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        test[rng.permutation(members)[:round(len(members) * test_fraction)]] = True
    x_train, x_test = x[~test], x[test]
    # standardised with the training set's statistics; pixels that never vary there (std 0) are only centred
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), y[~test], ((x_test - mean) / std).astype(np.float32), y[test]


def classification(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, labels_train, x_test, labels_test) of a bundled data set: float32 features, int64 labels.
    Deterministic for a given seed and test fraction."""
    if spec.source == "digits":
        return _digits_split(spec.seed, spec.test_fraction)
    raise ValueError(f"no bundled data set {spec.source!r}")
