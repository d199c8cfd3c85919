"""The LTC over a sequence: one ODE solve per time step, the hidden state carried from step to step.

    h_t = ODE(LTC dynamics, from h_{t-1}, input x_t, over [0, t_end])     h_0 = 0
    y_t = readout(h_t)

`step` is one time step, (x_t, h_{t-1}) -> (y_t, h_t): what the compiler turns into a stateful program (the
hidden state lives in the VM between runs). `forward` runs whole sequences (batch, T, inputs) through
`step` — PyTorch's reference for the device's per-step outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from .ltc import LTCRegressor


class LTCSequence(LTCRegressor):
    """The regressor's parts (ODE block, read-out, normalisation), applied once per time step."""

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.ode(h, (x - self.in_mean) / self.in_std)
        return self.readout(h) * self.out_std + self.out_mean, h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros((x.shape[0], self.hidden))
        outputs = []
        for t in range(x.shape[1]):
            y, h = self.step(x[:, t], h)
            outputs.append(y)
        return torch.stack(outputs, dim=1)


class Step(nn.Module):
    """A sequence model's `step` as a module of its own: (x_t, h) -> (y_t, h_next), what gets compiled."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.step(x, h)
