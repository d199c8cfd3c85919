"""Models from the ncps library (Neural Circuit Policies): ncps.torch.CfC and ncps.torch.LTC, fully connected
or with an AutoNCP wiring (sparse, with its masks).

`NcpsSequence` wraps one with input / output normalisation for the recipes: `forward` is ncps's own sequence
loop (what the model is trained with and verified against), `step` one time step through ncps's cell,
(x_t, h) -> (y_t, h_next), which the compiler turns into a stateful program. `ncps_step` is that step for
any ncps sequence module a user trained, refusing the configurations whose step it would not reproduce.
"""

from __future__ import annotations

import torch
from torch import nn

from ..compiler.ir import CompileError


def _rnn(kind: str, inputs: int, units: int, outputs: int, wiring: str) -> nn.Module:
    from ncps.torch import LTC, CfC
    from ncps.wirings import AutoNCP, FullyConnected

    if kind == "ncps-cfc":
        if wiring == "autoncp":
            return CfC(inputs, AutoNCP(units, outputs), batch_first=True)
        return CfC(inputs, units, proj_size=outputs, batch_first=True)
    layout = AutoNCP(units, outputs) if wiring == "autoncp" else FullyConnected(units, outputs)
    return LTC(inputs, layout, batch_first=True)


def check_supported(rnn: nn.Module) -> None:
    """What the one-step program cannot reproduce: a mixed-memory LSTM in front of the cell."""
    if getattr(rnn, "use_mixed", False):
        raise CompileError(f"{type(rnn).__name__}(mixed_memory=True) runs an LSTM beside the cell, which the VM "
                           "does not support; train the model without mixed_memory")
    if not hasattr(rnn, "rnn_cell"):
        raise CompileError(f"{type(rnn).__name__} is not an ncps sequence module (ncps.torch.CfC or LTC)")


def ncps_step(rnn: nn.Module, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ncps's sequence loop without timespans (elapsed time 1.0): the cell, then CfC's projection."""
    out, h = rnn.rnn_cell(x, h, 1.0)
    fc = getattr(rnn, "fc", None)
    return (fc(out) if fc is not None else out), h


class NcpsSequence(nn.Module):
    def __init__(self, kind: str, inputs: int, units: int, outputs: int, wiring: str):
        super().__init__()
        self.rnn = _rnn(kind, inputs, units, outputs, wiring)
        self.hidden = int(self.rnn.state_size)
        # the output of a wired net is its motor neurons' state, bounded to (-1, 1) by the cells' tanh and
        # reversal potentials: training scales the targets into that range (train.py), not to unit variance
        self.bounded_output = wiring == "autoncp"
        self.register_buffer("in_mean", torch.zeros(inputs))
        self.register_buffer("in_std", torch.ones(inputs))
        self.register_buffer("out_mean", torch.zeros(outputs))
        self.register_buffer("out_std", torch.ones(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn((x - self.in_mean) / self.in_std)
        return y * self.out_std + self.out_mean

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = ncps_step(self.rnn, (x - self.in_mean) / self.in_std, h)
        return y * self.out_std + self.out_mean, h


class NcpsStep(nn.Module):
    """A user's own trained ncps.torch.CfC / LTC as a step module (x_t, h) -> (y_t, h_next) to compile with
    state ((1, 1),); h has rnn.state_size features."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        check_supported(rnn)
        self.rnn = rnn

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ncps_step(self.rnn, x, h)
