"""Models from the ncps library (Neural Circuit Policies): ncps.torch.CfC and ncps.torch.LTC, fully connected
or with an AutoNCP wiring (sparse, with its masks).

`NcpsSequence` wraps one with input / output normalisation for the recipes: `forward` is ncps's own sequence
loop (what the model is trained with and verified against), `step` one time step through ncps's cell,
(x_t, h) -> (y_t, h_next), which the compiler turns into a stateful program. `ncps_step` is that step for
any ncps sequence module a user trained, refusing the configurations whose step it would not reproduce.

With mixed_memory=True ncps runs its LSTM cell (ncps.torch.lstm.LSTMCell: linear maps, sigmoid, tanh) before
the liquid cell at every step; the step's state is then [h, c], h the liquid cell's state (which the LSTM
also updates) and c the LSTM's cell state, each rnn.state_size wide.

Irregular time (`timespans=True`): the elapsed time of each step is a run-time input, ncps's `timespans`. The
step's input row is then [x_t, Δt_t], the Δt column last; the compiled program takes it like any input column,
so `lnnvm run`, `lnnvm stream` and the firmware's RUN carry it beside the inputs with no protocol of their own.
"""

from __future__ import annotations

import torch
from torch import nn

from ..compiler.ir import CompileError


def _rnn(kind: str, inputs: int, units: int, outputs: int, wiring: str, mixed_memory: bool = False) -> nn.Module:
    from ..extras import require

    require("ncps", "ncps", f"a {kind} model")
    from ncps.torch import LTC, CfC
    from ncps.wirings import AutoNCP, FullyConnected

    if kind == "ncps-cfc":
        if wiring == "autoncp":
            return CfC(inputs, AutoNCP(units, outputs), batch_first=True, mixed_memory=mixed_memory)
        return CfC(inputs, units, proj_size=outputs, batch_first=True, mixed_memory=mixed_memory)
    layout = AutoNCP(units, outputs) if wiring == "autoncp" else FullyConnected(units, outputs)
    return LTC(inputs, layout, batch_first=True, mixed_memory=mixed_memory)


def check_supported(rnn: nn.Module) -> None:
    """What the one-step program cannot reproduce: anything but ncps's CfC / LTC."""
    if not hasattr(rnn, "rnn_cell"):
        raise CompileError(f"{type(rnn).__name__} is not an ncps sequence module (ncps.torch.CfC or LTC)")


def state_width(rnn: nn.Module) -> int:
    """The step's state: h, and with mixed_memory the LSTM's c beside it."""
    return int(rnn.state_size) * (2 if rnn.use_mixed else 1)


def ncps_step(rnn: nn.Module, x: torch.Tensor, h: torch.Tensor,
              elapsed: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ncps's sequence loop: the mixed-memory LSTM if any, the cell over `elapsed` time (ncps's
    timespans: 1.0 without them, else a (batch, 1) column), then CfC's projection."""
    if rnn.use_mixed:
        h, c = h.split(int(rnn.state_size), dim=-1)
        h, c = rnn.lstm(x, (h, c))
    out, h = rnn.rnn_cell(x, h, elapsed)
    fc = getattr(rnn, "fc", None)
    return (fc(out) if fc is not None else out), (torch.cat([h, c], dim=-1) if rnn.use_mixed else h)


def split_elapsed(x: torch.Tensor, inputs: int) -> tuple[torch.Tensor, torch.Tensor | float]:
    """(the inputs, the elapsed-time column (..., 1)) of rows [x, Δt]; rows of `inputs` features alone are
    regularly sampled (elapsed time 1.0, ncps's default)."""
    if x.shape[-1] == inputs:
        return x, 1.0
    return x[..., :inputs], x[..., inputs:inputs + 1]


class NcpsSequence(nn.Module):
    """With `timespans`, each input row carries its elapsed time as a last column; without, a row with that
    column is read as regularly sampled (the column ignored): the fixed-Δt model the irregular recipes are
    compared with (irregular.py)."""

    def __init__(self, kind: str, inputs: int, units: int, outputs: int, wiring: str, mixed_memory: bool = False,
                 timespans: bool = False):
        super().__init__()
        self.rnn = _rnn(kind, inputs, units, outputs, wiring, mixed_memory)
        self.hidden = state_width(self.rnn)
        self.inputs = inputs
        self.timespans = timespans
        # the output of a wired net is its motor neurons' state, bounded to (-1, 1) by the cells' tanh and
        # reversal potentials: training scales the targets into that range (train.py), not to unit variance
        self.bounded_output = wiring == "autoncp"
        self.register_buffer("in_mean", torch.zeros(inputs))
        self.register_buffer("in_std", torch.ones(inputs))
        self.register_buffer("out_mean", torch.zeros(outputs))
        self.register_buffer("out_std", torch.ones(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, elapsed = split_elapsed(x, self.inputs)
        if not self.timespans:
            y, _ = self.rnn((x - self.in_mean) / self.in_std)
            return y * self.out_std + self.out_mean
        # ncps's own loop squeezes timespans[:, t] to (batch,), which broadcasts against the units rather than the
        # batch when batch > 1 (ncps 1.0.1); this loop keeps it a (batch, 1) column and is ncps's loop otherwise
        # (tests/test_irregular.py holds it to ncps's own forward, one sequence at a time)
        x = (x - self.in_mean) / self.in_std
        h = x.new_zeros((x.shape[0], self.hidden))
        outputs = []
        for t in range(x.shape[1]):
            y, h = ncps_step(self.rnn, x[:, t], h, elapsed[:, t] if torch.is_tensor(elapsed) else elapsed)
            outputs.append(y)
        return torch.stack(outputs, dim=1) * self.out_std + self.out_mean

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, elapsed = split_elapsed(x, self.inputs)
        y, h = ncps_step(self.rnn, (x - self.in_mean) / self.in_std, h, elapsed if self.timespans else 1.0)
        return y * self.out_std + self.out_mean, h


class NcpsStep(nn.Module):
    """A user's own trained ncps.torch.CfC / LTC as a step module (x_t, h) -> (y_t, h_next) to compile with
    state ((1, 1),); h has state_width(rnn) features. With `timespans` (a model trained with ncps's timespans)
    x_t is [inputs, Δt]: the step's elapsed time is its last column, read at run time."""

    def __init__(self, rnn: nn.Module, timespans: bool = False):
        super().__init__()
        check_supported(rnn)
        self.rnn = rnn
        self.timespans = timespans

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.timespans:
            return ncps_step(self.rnn, x[:, :-1], h, x[:, -1:])
        return ncps_step(self.rnn, x, h)
