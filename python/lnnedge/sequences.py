"""Sequence data generated in code: noisy damped oscillations, and the task of predicting the next sample.

Each sequence is s(k) = A exp(-g k) sin(w k + p) at steps k = 0..T, with A, g, w, p drawn per sequence;
the model sees s(k) plus Gaussian noise and must predict the clean s(k + 1). The test set is drawn with
another seed (held out).

The irregular source samples the same signals at random times: t_0 = 0, t_{k+1} = t_k + Δt_{k+1} with
Δt ~ U(IRREGULAR_DT) (mean 1, the regular source's step). Each input row is [s(t_k) + noise, Δt_{k+1}]: the sample
and the time to the sample to predict, which is the clean s(t_{k+1}). A model given that column can tell how far
ahead it predicts; one that assumes a fixed step cannot (irregular.py measures both).
"""

from __future__ import annotations

import numpy as np

from .data import Draw, seed_for
from .recipe import DataSpec

IRREGULAR_DT = (0.2, 1.8)  # the irregular source's sampling intervals


def damped_oscillations(spec: DataSpec, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (count, T, 1), or (count, T, 2) with the Δt column for the irregular source; targets
    (count, T, 1)), float32."""
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.5, 1.5, (count, 1))
    decay = rng.uniform(0.0, 0.08, (count, 1))
    omega = rng.uniform(0.25, 0.7, (count, 1))
    phase = rng.uniform(0, 2 * np.pi, (count, 1))
    irregular = spec.source == "irregular-oscillation"
    if irregular:  # drawn after the regular source's draws, which stay as they were
        dt = rng.uniform(*IRREGULAR_DT, (count, spec.sequence_length))
        t = np.concatenate([np.zeros((count, 1)), np.cumsum(dt, axis=1)], axis=1)
    else:
        t = np.arange(spec.sequence_length + 1)
    clean = amplitude * np.exp(-decay * t) * np.sin(omega * t + phase)
    noisy = clean[:, :-1] + rng.normal(0, spec.noise, (count, spec.sequence_length))
    inputs = np.stack([noisy, dt], axis=-1) if irregular else noisy[..., None]
    return inputs.astype(np.float32), clean[:, 1:, None].astype(np.float32)


def train_test(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train, y_train = damped_oscillations(spec, spec.train_points, seed_for(spec, Draw.TRAIN))
    x_test, y_test = damped_oscillations(spec, spec.test_points, seed_for(spec, Draw.TEST))
    return x_train, y_train, x_test, y_test
