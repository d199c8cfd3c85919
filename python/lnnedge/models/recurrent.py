"""PyTorch's recurrent layers in a user's sequence model, compiled as a stateful step program.

A sequence module built with nn.LSTM / nn.GRU / nn.RNN (one or several layers, batch_first either way) or with
nn.LSTMCell / GRUCell / RNNCell becomes `RecurrentStep(model)`: (x_t, state) -> (y_t, state_next), which
compile_module turns into a program with state ((1, 1),), run one call per time step like the LTC (the state
carried between calls, zero after a reset and for a new batch size; zero is also PyTorch's hx=None).

    step = RecurrentStep(model)          # refuses what one step cannot reproduce (bidirectional layers)
    step.check(inputs=3)                 # the steps against the model's own forward over whole sequences
    compiled = compile_module(step, (torch.zeros(1, 3), torch.zeros(1, step.hidden)), state=((1, 1),))

or `compile_recurrent(model, inputs=3)`, which does the three.

How a step runs: the model's forward is called on x_t as a sequence of one step, laid out (batch, 1, features)
whatever its batch_first (the time-pointwise layers around the recurrent ones — Linear, activations — compute
the same on (batch, 1, f) as on (1, batch, f), and only dim 0 may be the batch in the compiler's IR), while
every recurrent layer runs one step from its part of `state` through ATen's cells (aten.lstm_cell, gru_cell,
rnn_*_cell: compiler/recurrent_rules.py expands them into products, gates and element-wise ops) and hands back
its new state. The state is one vector: per recurrent layer in module order, per stacked layer, h (then c for
an LSTM). A model whose output at step t depends on more than its inputs up to t through that state (it reads
the time axis, or starts from a learned initial state) would not step like its forward: `check` finds that out
on random sequences before anything is compiled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ..compiler.ir import CompileError

LAYERS = (nn.LSTM, nn.GRU, nn.RNN)
CELLS = (nn.LSTMCell, nn.GRUCell, nn.RNNCell)
# stepping against the model's own forward: the same float32 arithmetic in another order differs by ~1e-7;
# a model that does not stream (reads the time axis, learned initial state) differs by far more
CHECK_TOLERANCE = 1e-4


def _widths(layer: nn.Module) -> list[int]:
    """The widths of the layer's state pieces, in the state vector's order."""
    if isinstance(layer, CELLS):
        return [layer.hidden_size] * (2 if isinstance(layer, nn.LSTMCell) else 1)
    h = (layer.proj_size or layer.hidden_size) if isinstance(layer, nn.LSTM) else layer.hidden_size
    per_layer = [h, layer.hidden_size] if isinstance(layer, nn.LSTM) else [h]
    return per_layer * layer.num_layers


def _cell_step(kind: type, x: torch.Tensor, state: list[torch.Tensor], w_ih: torch.Tensor, w_hh: torch.Tensor,
               b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, nonlinearity: str = "tanh"
               ) -> list[torch.Tensor]:
    """One step of one cell through ATen's cell op (what nn.*Cell and nn.LSTM/GRU/RNN compute): the new state."""
    aten = torch.ops.aten
    if kind in (nn.LSTM, nn.LSTMCell):
        return list(aten.lstm_cell.default(x, state, w_ih, w_hh, b_ih, b_hh))
    if kind in (nn.GRU, nn.GRUCell):
        return [aten.gru_cell.default(x, state[0], w_ih, w_hh, b_ih, b_hh)]
    cell = aten.rnn_relu_cell.default if nonlinearity == "relu" else aten.rnn_tanh_cell.default
    return [cell(x, state[0], w_ih, w_hh, b_ih, b_hh)]


def _projected_lstm_cell(x: torch.Tensor, state: list[torch.Tensor], w_ih: torch.Tensor, w_hh: torch.Tensor,
                         b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, w_hr: torch.Tensor
                         ) -> list[torch.Tensor]:
    """nn.LSTM's cell with proj_size (aten.lstm_cell takes no projection): ATen's gate arithmetic, then
    h = W_hr (o * tanh(c))."""
    linear = torch.nn.functional.linear
    i, f, g, o = (linear(state[0], w_hh, b_hh) + linear(x, w_ih, b_ih)).split(state[1].shape[-1], dim=-1)
    c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
    return [linear(torch.sigmoid(o) * torch.tanh(c), w_hr), c]


def _layer_step(layer: nn.Module, x: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
    """One time step of a stacked nn.LSTM / GRU / RNN from its state pieces; the new pieces (the top layer's h
    is the output). Dropout between layers is a training-time op: eval mode runs none."""
    kind, per = type(layer), (2 if isinstance(layer, nn.LSTM) else 1)
    nonlinearity = getattr(layer, "nonlinearity", "tanh")
    new: list[torch.Tensor] = []
    for k in range(layer.num_layers):
        w = [getattr(layer, f"{name}_l{k}") if layer.bias or name.startswith("weight") else None
             for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if isinstance(layer, nn.LSTM) and layer.proj_size:
            pieces = _projected_lstm_cell(x, state[2 * k:2 * k + 2], *w, getattr(layer, f"weight_hr_l{k}"))
        else:
            pieces = _cell_step(kind, x, state[per * k:per * (k + 1)], *w, nonlinearity)
        new += pieces
        x = pieces[0]
    return new


class RecurrentStep(nn.Module):
    """A sequence model with PyTorch recurrent layers as one time step, (x_t, state) -> (y_t, state_next)."""

    def __init__(self, model: nn.Module, time_major: bool | None = None):
        super().__init__()
        self.model = model.eval()
        self.layers = recurrent_layers(model)
        if not self.layers:
            raise CompileError(f"{type(model).__name__} has no nn.LSTM, GRU, RNN or *Cell layer to step")
        for name, layer in self.layers:
            if getattr(layer, "bidirectional", False):
                raise CompileError(f"recurrent layer '{name}' is bidirectional: its output at step t depends on "
                                   "later inputs, so it cannot run one step per call")
        flags = {layer.batch_first for _, layer in self.layers if isinstance(layer, LAYERS)}
        if time_major is None and len(flags) > 1:
            raise CompileError(f"{type(model).__name__} mixes batch_first=True and False layers; pass time_major")
        self.time_major = time_major if time_major is not None else flags == {False}
        self.widths = [_widths(layer) for _, layer in self.layers]
        self.hidden = sum(sum(w) for w in self.widths)  # the state width (the pipeline's `hidden`)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return step_once(self.model, self.layers, self.widths, x, state)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x, state)

    def check(self, inputs: int, steps: int = 8, batch: int = 3, seed: int = 0) -> float:
        """Step random sequences (batch, steps, inputs) and compare step t's output with the model's forward over
        the first t + 1 inputs (its last step); CompileError when they differ. Returns the largest difference."""
        x = torch.randn(batch, steps, inputs, generator=torch.Generator().manual_seed(seed))
        worst = 0.0
        with torch.no_grad():
            state = x.new_zeros(batch, self.hidden)
            for t in range(steps):
                y, state = self(x[:, t], state)
                prefix = x[:, :t + 1].transpose(0, 1) if self.time_major else x[:, :t + 1]
                full = self.model(prefix)
                full = full[0] if isinstance(full, (tuple, list)) else full
                if full.dim() == 3:
                    full = full[-1] if self.time_major else full[:, -1]
                if full.shape != y.shape:
                    raise CompileError(f"{type(self.model).__name__}: one step gives outputs {tuple(y.shape)}, its "
                                       f"forward {tuple(full.shape)}; expected (batch, T, out) or (batch, out)")
                worst = max(worst, float((full - y).abs().max()))
        if worst > CHECK_TOLERANCE:
            raise CompileError(f"{type(self.model).__name__} does not run one step at a time like its forward "
                               f"(max |diff| {worst:.2e} over {steps} steps): its output may read the time axis, "
                               "start from a learned initial state or call a recurrent layer on a whole sequence "
                               "it built itself")
        return worst


def recurrent_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every nn.LSTM / GRU / RNN / *Cell of `model`, in module order."""
    return [(name or type(model).__name__, m) for name, m in model.named_modules() if isinstance(m, LAYERS + CELLS)]


def step_once(model: nn.Module, layers: Sequence[tuple[str, nn.Module]], widths: Sequence[Sequence[int]],
              x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """model's forward on x (batch, features) as a one-step sequence, its recurrent `layers` stepping from their
    pieces of `state` (`widths`: each layer's piece widths): (output, new state)."""
    sizes = [w for ws in widths for w in ws]
    pieces = list(state.split(sizes, dim=-1)) if len(sizes) > 1 else [state]  # no split (or cat) of one
    per_layer = []
    for ws in widths:
        per_layer.append(pieces[:len(ws)])
        pieces = pieces[len(ws):]
    with _stepping(layers, per_layer) as new_state:
        y = model(x.unsqueeze(1))
    if isinstance(y, (tuple, list)):  # (output, hidden) as an nn.LSTM returns it: the output
        y = y[0]
    return (y.squeeze(1) if y.dim() == 3 else y), (torch.cat(new_state, dim=-1) if len(sizes) > 1 else new_state[0])


@contextlib.contextmanager
def _stepping(layers: Sequence[tuple[str, nn.Module]], state: list[list[torch.Tensor]]
              ) -> Iterator[list[torch.Tensor]]:
    """While active each recurrent layer runs one step from its state pieces, whatever hx it is given (the user's
    loop passes its initial state), and must be called once; yields the new state pieces, filled on exit."""
    new_state: list[torch.Tensor] = []
    results: dict[int, list[torch.Tensor]] = {}
    calls = [0] * len(layers)

    def stepper(index: int, layer: nn.Module):
        def forward(x: torch.Tensor, hx: object = None):
            calls[index] += 1
            if calls[index] > 1:
                raise CompileError(f"recurrent layer '{layers[index][0]}' is called more than once in one time "
                                   "step; a step program runs each recurrent layer once")
            if isinstance(layer, CELLS):
                new = _cell_step(type(layer), x, state[index], layer.weight_ih, layer.weight_hh, layer.bias_ih,
                                 layer.bias_hh, getattr(layer, "nonlinearity", "tanh"))
                results[index] = new
                return tuple(new) if isinstance(layer, nn.LSTMCell) else new[0]
            if x.dim() != 3:
                raise CompileError(f"recurrent layer '{layers[index][0]}' is given a {x.dim()}-d input; a step "
                                   "program needs (batch, time, features) sequences")
            new = _layer_step(layer, x.squeeze(1), state[index])
            results[index] = new
            # nn.LSTM's (output, (h_n, c_n)) / GRU's (output, h_n). h_n is (layers, batch, hidden), its batch in
            # dim 1, which the IR cannot hold: while exporting a model may unpack it but not compute with it (None
            # then fails the export with torch's message), and export keeps every op, used or not
            per = 2 if isinstance(layer, nn.LSTM) else 1
            if torch.compiler.is_exporting():
                hidden = (None, None) if per == 2 else None
            else:
                h_n = torch.stack(new[0::per])
                hidden = (h_n, torch.stack(new[1::per])) if per == 2 else h_n
            return new[-per].unsqueeze(1), hidden

        return forward

    for index, (_, layer) in enumerate(layers):
        layer.forward = stepper(index, layer)  # type: ignore[method-assign]
    try:
        yield new_state
        missing = [layers[i][0] for i, n in enumerate(calls) if n != 1]
        if missing:
            raise CompileError(f"recurrent layer(s) {', '.join(missing)} not called in a time step")
        for index in range(len(layers)):
            new_state += results[index]
    finally:
        for _, layer in layers:
            del layer.forward  # the class's forward again


def compile_recurrent(model: nn.Module, inputs: int, name: str = "model", time_major: bool | None = None,
                      **options):
    """`model` (a sequence module with PyTorch recurrent layers) as a stateful step program: RecurrentStep,
    checked against the model's forward, compiled with state ((1, 1),). `options` go to compile_module."""
    from ..compiler import compile_module

    step = RecurrentStep(model, time_major)
    step.check(inputs)
    meta = {"sequence": {"state": "hidden", "hidden": step.hidden}, **options.pop("meta", {})}
    return compile_module(step, (torch.zeros(1, inputs), torch.zeros(1, step.hidden)), name=name, meta=meta,
                          state=((1, 1),), **options)


class RecurrentSequence(nn.Module):
    """The recipes' recurrent baseline (kind lstm, gru or rnn): normalise the input, a stacked nn.LSTM / GRU / RNN
    (batch first), a linear read-out per step, de-normalise. `forward` runs whole sequences (what training and
    verify use), `step` one time step from the state vector, `hidden` its width (what the pipeline compiles)."""

    def __init__(self, kind: str, inputs: int, hidden: int, outputs: int, layers: int = 1):
        super().__init__()
        layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
        self.rnn = layer(inputs, hidden, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden, outputs)
        self.widths = [_widths(self.rnn)]
        self.hidden = sum(self.widths[0])
        self.register_buffer("in_mean", torch.zeros(inputs))
        self.register_buffer("in_std", torch.ones(inputs))
        self.register_buffer("out_mean", torch.zeros(outputs))
        self.register_buffer("out_std", torch.ones(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn((x - self.in_mean) / self.in_std)
        return self.readout(out) * self.out_std + self.out_mean

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return step_once(self, [("rnn", self.rnn)], self.widths, x, state)
