"""Sequence data generated in code: noisy damped oscillations, and the task of predicting the next sample.

Each sequence is s(k) = A exp(-g k) sin(w k + p) at steps k = 0..T, with A, g, w, p drawn per sequence;
the model sees s(k) plus Gaussian noise and must predict the clean s(k + 1). The test set is drawn with
another seed (held out).
"""

from __future__ import annotations

import numpy as np

from .data import Draw, seed_for
from .recipe import DataSpec


def damped_oscillations(spec: DataSpec, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (count, T, 1), targets (count, T, 1)), float32."""
    rng = np.random.default_rng(seed)
    k = np.arange(spec.sequence_length + 1)
    amplitude = rng.uniform(0.5, 1.5, (count, 1))
    decay = rng.uniform(0.0, 0.08, (count, 1))
    omega = rng.uniform(0.25, 0.7, (count, 1))
    phase = rng.uniform(0, 2 * np.pi, (count, 1))
    clean = amplitude * np.exp(-decay * k) * np.sin(omega * k + phase)
    noisy = clean[:, :-1] + rng.normal(0, spec.noise, (count, spec.sequence_length))
    return noisy[..., None].astype(np.float32), clean[:, 1:, None].astype(np.float32)


def train_test(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train, y_train = damped_oscillations(spec, spec.train_points, seed_for(spec, Draw.TRAIN))
    x_test, y_test = damped_oscillations(spec, spec.test_points, seed_for(spec, Draw.TEST))
    return x_train, y_train, x_test, y_test
