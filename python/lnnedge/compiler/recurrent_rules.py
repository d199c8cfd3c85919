"""Capture rules for PyTorch's recurrent cells: aten.lstm_cell, gru_cell, rnn_tanh_cell and rnn_relu_cell (what
torch.export makes of nn.LSTMCell, nn.GRUCell, nn.RNNCell, and of one step of nn.LSTM / GRU / RNN as
models/recurrent.py runs it) expanded into IR nodes the VM has: two products, sigmoid / tanh / relu, element-wise
mul / add / sub and a split of the gates. No instruction of their own.

The arithmetic follows ATen's CPU cells (aten/src/ATen/native/RNN.cpp), gate order and operation order alike:

    LSTM  gates = W_hh h + b_hh + W_ih x + b_ih -> i, f, g, o     c' = f c + i g        h' = o tanh(c')
    GRU   gi = W_ih x + b_ih, gh = W_hh h + b_hh -> r, z, n parts  r = sigmoid(gh_r + gi_r)  z = sigmoid(gh_z + gi_z)
          n = tanh(gi_n + r * gh_n)   (b_hn inside the reset product, as PyTorch places it)   h' = (h - n) z + n
    RNN   h' = act(W_hh h + b_hh + W_ih x + b_ih)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .capture_rules import Translator, source_line
from .ir import CompileError, Node, TensorType

if TYPE_CHECKING:
    from .optable import Op


def _result_type(fx_node) -> TensorType:
    """The type of the cell's new hidden state (the first result of an LSTM cell)."""
    val = fx_node.meta.get("val")
    val = val[0] if isinstance(val, (tuple, list)) else val
    if not isinstance(val, torch.Tensor) or val.dtype != torch.float32 or val.dim() != 2:
        raise CompileError(f"{fx_node.target}: only float32 cells over (batch, features) are supported",
                           Node(str(fx_node.target), (), (), (), source_line(fx_node)))
    batched = isinstance(val.shape[0], torch.SymInt)
    return TensorType((1 if batched else int(val.shape[0]), int(val.shape[1])), batched)


class _Cell:
    """Appends the cell's nodes to the translator, each value named after the cell's fx node."""

    def __init__(self, t: Translator, fx_node) -> None:
        self.t, self.fx_node = t, fx_node
        self.src = source_line(fx_node)
        self.row = _result_type(fx_node)  # (batch, hidden): every gate value has this batch

    def value(self, suffix: str, op: str, inputs: tuple[str, ...], width: int, **attrs) -> str:
        name = f"{self.fx_node.name}_{suffix}"
        self.t.nodes.append(Node(op, inputs, (name,), tuple(attrs.items()), self.src))
        self.t.types[name] = TensorType((self.row.shape[0], width), self.row.batched)
        self.t.values[name] = name
        return name

    def product(self, suffix: str, x, weight, bias) -> str:
        """weight x + bias (matmul_nt without a bias)."""
        w = self.t.value(weight)
        inputs = (self.t.value(x), w) + ((self.t.value(bias),) if bias is not None else ())
        return self.value(suffix, "linear" if bias is not None else "matmul_nt", inputs, self.t.types[w].shape[0])

    def split(self, suffix: str, x: str, parts: int) -> tuple[str, ...]:
        width = self.t.types[x].shape[-1] // parts
        pieces = self.t.emit_split(self.fx_node, x, self.t.types[x], [width] * parts, f"{self.fx_node.name}_{suffix}",
                                   self.src)
        for piece in pieces:
            self.t.values[piece] = piece
        return pieces


def _arguments(fx_node) -> tuple:
    """(input, hx, w_ih, w_hh, b_ih, b_hh) of a cell op, the biases None when absent."""
    args = [*fx_node.args, None, None][:6]
    for i, key in ((4, "b_ih"), (5, "b_hh")):
        args[i] = args[i] if args[i] is not None else fx_node.kwargs.get(key)
    return tuple(args)


def lstm_cell(t: Translator, fx_node, op: Op) -> None:
    x, (h, c), w_ih, w_hh, b_ih, b_hh = _arguments(fx_node)
    cell = _Cell(t, fx_node)
    hidden = cell.row.shape[1]
    gates = cell.value("gates", "add", (cell.product("hh", h, w_hh, b_hh), cell.product("ih", x, w_ih, b_ih)),
                       4 * hidden)
    i, f, g, o = cell.split("gate", gates, 4)
    i, f = cell.value("i", "sigmoid", (i,), hidden), cell.value("f", "sigmoid", (f,), hidden)
    g, o = cell.value("g", "tanh", (g,), hidden), cell.value("o", "sigmoid", (o,), hidden)
    cy = cell.value("cy", "add", (cell.value("fc", "mul", (f, t.value(c)), hidden),
                                  cell.value("ig", "mul", (i, g), hidden)), hidden)
    hy = cell.value("hy", "mul", (o, cell.value("tanh_cy", "tanh", (cy,), hidden)), hidden)
    t.pieces[fx_node.name] = (hy, cy)  # read by getitem
    t.values[fx_node.name] = fx_node.name


def gru_cell(t: Translator, fx_node, op: Op) -> None:
    x, h, w_ih, w_hh, b_ih, b_hh = _arguments(fx_node)
    cell = _Cell(t, fx_node)
    hidden = cell.row.shape[1]
    gi_r, gi_z, gi_n = cell.split("gi", cell.product("ih", x, w_ih, b_ih), 3)
    gh_r, gh_z, gh_n = cell.split("gh", cell.product("hh", h, w_hh, b_hh), 3)
    r = cell.value("r", "sigmoid", (cell.value("r_in", "add", (gh_r, gi_r), hidden),), hidden)
    z = cell.value("z", "sigmoid", (cell.value("z_in", "add", (gh_z, gi_z), hidden),), hidden)
    n = cell.value("n", "tanh", (cell.value("n_in", "add", (gi_n, cell.value("rh", "mul", (gh_n, r), hidden)),
                                            hidden),), hidden)
    h_minus_n = cell.value("h_minus_n", "sub", (t.value(h), n), hidden)
    hy = cell.value("hy", "add", (cell.value("zh", "mul", (h_minus_n, z), hidden), n), hidden)
    t.values[fx_node.name] = hy


def rnn_cell(t: Translator, fx_node, op: Op) -> None:
    x, h, w_ih, w_hh, b_ih, b_hh = _arguments(fx_node)
    cell = _Cell(t, fx_node)
    hidden = cell.row.shape[1]
    pre = cell.value("pre", "add", (cell.product("hh", h, w_hh, b_hh), cell.product("ih", x, w_ih, b_ih)), hidden)
    act = "relu" if fx_node.target == torch.ops.aten.rnn_relu_cell.default else "tanh"
    t.values[fx_node.name] = cell.value("hy", act, (pre,), hidden)
