"""Model architectures built from a recipe's `model:` section."""

from __future__ import annotations

import torch
from torch import nn

from ..recipe import ModelSpec
from .feedforward import CNN, mlp
from .ltc import LTCRegressor
from .sequence import LTCSequence


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.kind in ("ltc", "ltc-sequence"):
        t = torch.linspace(spec.t_start, spec.t_end, spec.steps)
        # tau_min: at least the largest step the solver takes (see models/ltc.py)
        largest = spec.step_size if spec.step_size is not None else float((t[1:] - t[:-1]).max())
        tau_min = spec.tau_min if spec.tau_min is not None else largest
        options = {"step_size": spec.step_size} if spec.step_size is not None else None
        kind = LTCRegressor if spec.kind == "ltc" else LTCSequence
        if kind is LTCRegressor:
            return kind(spec.inputs, spec.hidden, spec.outputs, t, spec.method, tau_min, options,
                        rtol=spec.rtol, atol=spec.atol)
        return kind(spec.inputs, spec.hidden, spec.outputs, t, spec.method, tau_min, options)
    if spec.kind in ("ncps-cfc", "ncps-ltc"):
        from .ncps import NcpsSequence

        return NcpsSequence(spec.kind, spec.inputs, spec.hidden, spec.outputs, spec.wiring, spec.mixed_memory,
                            spec.timespans)
    if spec.kind in ("lstm", "gru", "rnn"):
        from .recurrent import RecurrentSequence

        return RecurrentSequence(spec.kind, spec.inputs, spec.hidden, spec.outputs, spec.num_layers)
    if spec.kind == "mlp":
        return mlp(spec.inputs, spec.layers, spec.outputs)
    if spec.kind == "cnn" and spec.image is not None:
        return CNN(spec.image, spec.layers, spec.outputs)
    raise ValueError(f"unknown model kind {spec.kind!r}")
