"""The liquid time-constant (LTC) network, solved with torchdiffeq.

    combined = [x, h]
    gate     = sigmoid(W_gate . combined + b_gate)
    dh/dt    = (-h + (W . combined + b) * gate) / tau

tau is kept above `tau_min` by construction (tau = tau_min + exp(log_tau)).
An unconstrained tau can shrink during training until dt / tau > 2, where
explicit Euler amplifies every step and training diverges; with tau_min at
the solver's largest step the decay term alone can never do that. The
compiler folds `tau` into a constant, so the device never computes the exp.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

SOLVERS = ("euler", "midpoint", "rk4")


class LTCDynamics(nn.Module):
    """The vector field f(t, h, x) of the LTC cell (autonomous: t is unused)."""

    def __init__(self, inputs: int, hidden: int, tau_min: float):
        super().__init__()
        self.candidate = nn.Linear(inputs + hidden, hidden)
        self.gate = nn.Linear(inputs + hidden, hidden)
        self.log_tau = nn.Parameter(torch.zeros(hidden))
        self.tau_min = tau_min

    def tau(self) -> torch.Tensor:
        return self.tau_min + torch.exp(self.log_tau)

    def forward(self, t: torch.Tensor, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        combined = torch.cat([x, h], dim=-1)
        gate = torch.sigmoid(self.gate(combined))
        return (-h + self.candidate(combined) * gate) / self.tau()


class ODEBlock(nn.Module):
    """h(t_end) of dh/dt = func(t, h, *args) from h0, on the fixed grid `t` with `method`.

    The compiler recognises this module: it captures `func` once and emits the
    solver as a bounded loop in bytecode.
    """

    def __init__(self, func: nn.Module, t: torch.Tensor, method: str = "euler"):
        super().__init__()
        if method not in SOLVERS:
            raise ValueError(f"solver method {method!r} is not supported; use one of {', '.join(SOLVERS)}")
        self.func = func
        self.method = method
        self.register_buffer("t", t.detach().clone().to(torch.float32))

    def forward(self, h0: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        return odeint(lambda t, h: self.func(t, h, *args), h0, self.t, method=self.method)[-1]


class LTCRegressor(nn.Module):
    """Normalise the input, run the LTC from h = 0, read out, de-normalise."""

    def __init__(self, inputs: int, hidden: int, outputs: int, t: torch.Tensor, method: str, tau_min: float):
        super().__init__()
        self.hidden = hidden
        self.ode = ODEBlock(LTCDynamics(inputs, hidden, tau_min), t, method)
        self.readout = nn.Linear(hidden, outputs)
        self.register_buffer("in_mean", torch.zeros(inputs))
        self.register_buffer("in_std", torch.ones(inputs))
        self.register_buffer("out_mean", torch.zeros(outputs))
        self.register_buffer("out_std", torch.ones(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = (x - self.in_mean) / self.in_std
        h0 = xn.new_zeros((xn.shape[0], self.hidden))
        h = self.ode(h0, xn)
        return self.readout(h) * self.out_std + self.out_mean
