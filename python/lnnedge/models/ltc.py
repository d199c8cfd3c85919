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
from torchdiffeq import odeint, odeint_adjoint

# torchdiffeq's methods the compiler emits, each with the `options` it accepts (torchdiffeq's names). Fixed grid:
# step_size (its grid of equal steps, the last one partial), max_order (the Adams history), max_iters (the
# implicit corrector's iterations). Adaptive (with rtol, atol): first_step, the controller's safety, ifactor and
# dfactor, and max_num_steps, which on the device bounds the steps of the whole solve (accepted and rejected)
# and is also the compiled loop's trip count (default passes/lower_ode.DEFAULT_MAX_STEPS).
_ADAPTIVE_OPTIONS = frozenset({"first_step", "safety", "ifactor", "dfactor", "max_num_steps"})
ADAPTIVE = ("dopri5", "bosh3", "adaptive_heun", "fehlberg2", "dopri8")
SOLVERS: dict[str, frozenset[str]] = {
    "euler": frozenset({"step_size"}),
    "midpoint": frozenset({"step_size"}),
    "rk4": frozenset({"step_size"}),
    "explicit_adams": frozenset({"step_size", "max_order"}),
    "implicit_adams": frozenset({"step_size", "max_order", "max_iters"}),
    **{method: _ADAPTIVE_OPTIONS for method in ADAPTIVE},
}


def check_solver(method: str, options: dict) -> None:
    """ValueError naming the method or option torchdiffeq would take but the compiler does not."""
    if method not in SOLVERS:
        raise ValueError(f"solver method {method!r} is not supported; use one of {', '.join(SOLVERS)}")
    unknown = sorted(set(options) - SOLVERS[method])
    if unknown:
        raise ValueError(f"solver {method}: option(s) {', '.join(unknown)} not supported; "
                         f"{method} accepts {', '.join(sorted(SOLVERS[method])) or 'none'}")


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
    """h(t[-1]) of dh/dt = func(t, h, *args) from h0, torchdiffeq's fixed-grid `method` over `t`, with its
    `options` (e.g. {"step_size": 0.3}).

    The compiler recognises this module: it captures `func` once and emits the
    solver as a bounded loop in bytecode. With `adjoint`, training back-propagates
    through torchdiffeq's odeint_adjoint; the forward pass, and so the compiled
    program, is the same as without.
    """

    def __init__(self, func: nn.Module, t: torch.Tensor, method: str = "euler", options: dict | None = None,
                 adjoint: bool = False, rtol: float = 1e-7, atol: float = 1e-9):
        super().__init__()
        self.options = dict(options or {})
        check_solver(method, self.options)
        self.func = func
        self.method = method
        self.adjoint = adjoint
        self.rtol = rtol  # torchdiffeq's defaults; the adaptive methods' tolerances (implicit_adams': atol too)
        self.atol = atol
        self.register_buffer("t", t.detach().clone().to(torch.float32))

    def forward(self, h0: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if self.adjoint:  # odeint_adjoint needs a module: the args ride along as adjoint parameters
            return odeint_adjoint(_Bound(self.func, args), h0, self.t, method=self.method, options=self.options,
                                  rtol=self.rtol, atol=self.atol,
                                  adjoint_params=(*self.func.parameters(), *args))[-1]
        return odeint(lambda t, h: self.func(t, h, *args), h0, self.t, method=self.method,
                      options=self.options, rtol=self.rtol, atol=self.atol)[-1]


class _Bound(nn.Module):
    """func(t, h, *args) as the module f(t, h) that odeint_adjoint integrates."""

    def __init__(self, func: nn.Module, args: tuple[torch.Tensor, ...]):
        super().__init__()
        self.func = func
        self.args = args

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.func(t, h, *self.args)


class LTCRegressor(nn.Module):
    """Normalise the input, run the LTC from h = 0, read out, de-normalise."""

    def __init__(self, inputs: int, hidden: int, outputs: int, t: torch.Tensor, method: str, tau_min: float,
                 options: dict | None = None, adjoint: bool = False, rtol: float = 1e-7, atol: float = 1e-9):
        super().__init__()
        self.hidden = hidden
        self.ode = ODEBlock(LTCDynamics(inputs, hidden, tau_min), t, method, options, adjoint, rtol, atol)
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
