"""The op table: every op the compiler knows, one row each, and everything derived from it.

A row names the torch targets captured as the op and the rule that captures them (capture_rules.py), the IR
op, its VM instruction (by name: the numbers live in vm/include/lnn_opcodes.def, read by isa.py), its shape
rule (shapes.py) and what the passes and the emitter need to know about it (how to fold it, whether it may
write over an operand, the weight layout of a product...). Capture, shape inference, the passes, the emitter,
the listing of supported ops and the "unsupported op" message all read these rows, so adding an op is adding
a row (and its rules). `ops()` returns the rows.

Rows without an instruction: `ode` and `loop` carry a graph (lowered to a loop by passes/lower_ode; a loop
is emitted as LOOP ... END), and three rows capture torch ops into no IR node of their own (alias, a
transpose of a constant, indexing a split).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

from .. import isa, kernels_np
from . import activation_rules, recurrent_rules, shapes
from . import capture_rules as rules
from .ir import CompileError, Node, TensorType

ShapeRule = Callable[[Node, "Op", list[TensorType], TensorType | None], list[TensorType]]
CaptureRule = Callable[[rules.Translator, torch.fx.Node, "Op"], None]
FoldRule = Callable[[Node, list[np.ndarray]], np.ndarray]
ParamRule = Callable[[Node, dict[str, TensorType]], int]


@dataclass(frozen=True)
class Op:
    name: str                           # the IR op (Node.op)
    opcode: str = ""                    # its VM instruction in lnn_opcodes.def; "" for the rows above
    shape: ShapeRule | None = None      # shapes.py; None: no IR node, or a graph-carrying op (shape_inference)
    targets: tuple[Any, ...] = ()       # the torch targets captured by `capture`
    capture: CaptureRule | None = None
    note: str = ""                      # what the supported-op listing says besides the targets' names
    ir: bool = True                     # False: captured into no IR node of its own
    fold: FoldRule | None = None        # const_fold evaluates it when every input is a constant
    program: bool = False               # an instruction of an element-wise program (fuse_elementwise, EWISEn)
    variadic: bool = False              # the instruction is `opcode` + the number of operands (EWISE1..8)
    in_place: str = ""                  # may write over an operand of its own "type" (element-wise) or "bytes"
    weight: str = ""                    # a product: its weight is "W" (M, K) or "Wt" (K, M), transposed, or the
                                        # w8a16 panel "P" (ceil(M/2), ceil(K/2), 4) of Wt
    int8: bool = False                  # a product whose weight is int8 with one scale per output
    w8a16: bool = False                 # a product of an int8 panel, x rounded per row to 16 bits (store_w8a16)
    bias: bool = False                  # a product with a bias operand
    transposed: str = ""                # a W product: the op of the same product with Wt (select_kernels)
    quantized: str = ""                 # a float product: the op of the same product with an int8 weight
    paneled: str = ""                   # a float product: the op of the same product as w8a16 (store_w8a16)
    param: ParamRule | None = None      # field A of a DSTAX / DSTP instruction

    @property
    def operands(self) -> int:
        """Tensors the instruction pops (of a variadic one: the program only)."""
        return isa.opcodes()[self.opcode].pops if self.opcode and not self.variadic else 0

    @property
    def format(self) -> str:
        """The instruction's operand format in lnn_opcodes.def (DSTN: one destination per output)."""
        return isa.opcodes()[self.opcode_for(1)].format if self.opcode else ""

    def opcode_for(self, operands: int) -> str:
        return f"{self.opcode}{operands}" if self.variadic else self.opcode

    def listing(self) -> str:
        """'name / name (note)': the torch ops this row captures, as the supported-op listing shows them."""
        names = dict.fromkeys(t.overloadpacket.__name__.lstrip("_") for t in self.targets
                              if isinstance(t, torch._ops.OpOverload))
        if not names:
            return ""
        return " / ".join(names) + (f" ({self.note})" if self.note else "")


def _fold_binary(node: Node, args: list[np.ndarray]) -> np.ndarray:
    return kernels_np.binary(node.op, args[0], args[1])


def _fold_unary(node: Node, args: list[np.ndarray]) -> np.ndarray:
    return kernels_np.unary(node.op, args[0])


def _fold_where(node: Node, args: list[np.ndarray]) -> np.ndarray:
    return kernels_np.where(*args)


def _fold_product(node: Node, args: list[np.ndarray]) -> np.ndarray:
    return kernels_np.linear(*args)


def _fold_concat(node: Node, args: list[np.ndarray]) -> np.ndarray:
    out = args[0]
    for arg in args[1:]:
        out = kernels_np.concat(out, arg, node.attr("axis"))
    return out


# field A of the instructions that take a parameter (lnn_opcodes.def): an axis, or stride / padding / window

def _input_axis(node: Node, types: dict[str, TensorType]) -> int:
    return node.attr("axis") % len(types[node.inputs[0]].shape)


def _output_axis(node: Node, types: dict[str, TensorType]) -> int:
    return node.attr("axis") % len(types[node.output].shape)


def _conv_param(node: Node, types: dict[str, TensorType]) -> int:
    return (node.attr("stride") - 1) | node.attr("padding") << 4


def _pool_param(node: Node, types: dict[str, TensorType]) -> int:
    return (node.attr("kernel") - 1) | (node.attr("stride") - 1) << 4


A = torch.ops.aten  # the targets below are mostly its overloads
_ELEMENTWISE = {"shape": shapes.elementwise, "capture": rules.operands, "program": True, "in_place": "type"}
_BINARY = {**_ELEMENTWISE, "fold": _fold_binary}
_UNARY = {**_ELEMENTWISE, "fold": _fold_unary}

_TABLE: tuple[Op, ...] = (
    # element-wise: an instruction each, and the instructions of fused programs
    Op("add", "ADD", targets=(A.add.Tensor, operator.add), **_BINARY),
    Op("sub", "SUB", targets=(A.sub.Tensor, operator.sub, A.rsub.Scalar), **_BINARY),
    Op("mul", "MUL", targets=(A.mul.Tensor, operator.mul), **_BINARY),
    Op("div", "DIV", targets=(A.div.Tensor, operator.truediv), **_BINARY),
    Op("neg", "NEG", targets=(A.neg.default,), **_UNARY),
    Op("exp", "EXP", targets=(A.exp.default,), **_UNARY),
    Op("sigmoid", "SIGMOID", targets=(A.sigmoid.default, A.sigmoid_.default), **_UNARY),
    Op("tanh", "TANH", targets=(A.tanh.default, A.tanh_.default), **_UNARY),
    Op("relu", "RELU", targets=(A.relu.default, A.relu_.default), **_UNARY),
    # more element-wise ops (le / lt / where: the adaptive solvers' controller, passes/lower_ode; le / lt
    # give 1.0 / 0.0)
    Op("abs", "ABS", targets=(A.abs.default,), **_UNARY),
    Op("sqrt", "SQRT", targets=(A.sqrt.default,), **_UNARY),
    Op("min", "MIN", targets=(A.minimum.default,), **_BINARY),
    Op("max", "MAX", targets=(A.maximum.default,), **_BINARY),
    Op("pow", "POW", targets=(A.pow.Tensor_Scalar, A.pow.Tensor_Tensor), **_BINARY),
    Op("le", "LE", **{**_BINARY, "capture": None}),  # no torch target: torch's comparisons give booleans
    Op("lt", "LT", **{**_BINARY, "capture": None}),
    Op("where", "WHERE", shapes.elementwise, fold=_fold_where),
    Op("log", "LOG", targets=(A.log.default,), **_UNARY),
    Op("erf", "ERF", targets=(A.erf.default,), **_UNARY),
    Op("ewise", "EWISE", shapes.elementwise, variadic=True, in_place="type"),  # passes/fuse_elementwise
    # products: nn.Linear is captured as linear / matmul_nt, the passes choose the other forms
    Op("linear", "LINEAR", shapes.product, (A.linear.default,), rules.linear, "nn.Linear", fold=_fold_product,
       weight="W", bias=True, transposed="linear_t", quantized="linear_q8", paneled="linear_w8a16"),
    Op("matmul_nt", "MATMUL_NT", shapes.product, fold=_fold_product, weight="W", transposed="matmul_t",
       quantized="matmul_ntq8", paneled="matmul_w8a16"),
    Op("linear_t", "LINEAR_T", shapes.transposed_product, weight="Wt", bias=True, quantized="linear_tq8",
       paneled="linear_w8a16"),
    Op("matmul_t", "MATMUL_T", shapes.transposed_product, weight="Wt", quantized="matmul_tq8",
       paneled="matmul_w8a16"),
    Op("linear_q8", "LINEAR_Q8", shapes.quantized_product, weight="W", int8=True, bias=True),
    Op("matmul_ntq8", "MATMUL_NTQ8", shapes.quantized_product, weight="W", int8=True),
    Op("linear_tq8", "LINEAR_TQ8", shapes.quantized_product, weight="Wt", int8=True, bias=True),
    Op("matmul_tq8", "MATMUL_TQ8", shapes.quantized_product, weight="Wt", int8=True),
    # w8a16 (store_w8a16): x rounded per row to 16-bit block floating point, exact integer sums over the panel
    Op("linear_w8a16", "LINEAR_W8A16", shapes.w8a16_product, weight="P", w8a16=True, bias=True),
    Op("matmul_w8a16", "MATMUL_W8A16", shapes.w8a16_product, weight="P", w8a16=True),
    Op("matmul", "MATMUL", shapes.matmul, (A.matmul.default, A.mm.default, A.bmm.default), rules.operands),
    # data movement
    Op("concat", "CONCAT", shapes.concat, (A.cat.default,), rules.concat, fold=_fold_concat, param=_output_axis),
    Op("split", "SPLIT", shapes.split, (A.split_with_sizes.default, A.split.Tensor, A.chunk.default, A.slice.Tensor),
       rules.split, "along the last axis"),
    Op("zeros", "ZERO", shapes.as_recorded, (A.new_zeros.default, A.zeros.default, A.zeros_like.default),
       rules.nullary),
    Op("reshape", "COPY", shapes.as_recorded, (A.view.default, A.reshape.default, A._unsafe_view.default,
                                               A.flatten.using_ints, A.unflatten.int, A.squeeze.dim,
                                               A.unsqueeze.default), rules.operands, in_place="bytes"),
    Op("copy", "COPY", shapes.elementwise),  # the emitter's copies (loop state, outputs)
    # graph ops (NCHW images, axes)
    Op("conv2d", "CONV2D", shapes.conv2d, (A.conv2d.default,), rules.conv2d,
       "nn.Conv2d: one stride and padding for both dims, NCHW", param=_conv_param),
    Op("maxpool2d", "MAXPOOL2D", shapes.pool2d, (A.max_pool2d.default,), rules.pool2d,
       "nn.MaxPool2d: square windows, no padding", param=_pool_param),
    Op("avgpool2d", "AVGPOOL2D", shapes.pool2d, (A.avg_pool2d.default,), rules.pool2d,
       "nn.AvgPool2d: square windows, no padding", param=_pool_param),
    Op("softmax", "SOFTMAX", shapes.along_axis, (A.softmax.int, A._softmax.default), rules.softmax,
       param=_input_axis),
    Op("log_softmax", "LOG_SOFTMAX", shapes.along_axis, (A.log_softmax.int, A._log_softmax.default),
       rules.softmax, param=_input_axis),
    Op("reduce_sum", "REDUCE_SUM", shapes.reduce, (A.sum.dim_IntList,), rules.reduce, "over dims",
       param=_input_axis),
    Op("reduce_mean", "REDUCE_MEAN", shapes.reduce, (A.mean.dim,), rules.reduce, "over dims", param=_input_axis),
    # graph-carrying ops
    Op("ode", targets=(torch.ops.lnnedge.ode_block.default,), capture=rules.ode,
       note="ODEBlock: euler, midpoint, rk4, explicit_adams, implicit_adams (step_size); dopri5, bosh3, "
            "adaptive_heun, fehlberg2, dopri8 (rtol, atol)"),
    Op("loop"),
    # recurrent cells: expanded into products, gates and element-wise nodes (recurrent_rules.py)
    Op("lstm_cell", targets=(A.lstm_cell.default,), capture=recurrent_rules.lstm_cell, ir=False,
       note="nn.LSTMCell; nn.LSTM through models.recurrent"),
    Op("gru_cell", targets=(A.gru_cell.default,), capture=recurrent_rules.gru_cell, ir=False,
       note="nn.GRUCell; nn.GRU through models.recurrent"),
    Op("rnn_cell", targets=(A.rnn_tanh_cell.default, A.rnn_relu_cell.default), capture=recurrent_rules.rnn_cell,
       ir=False, note="nn.RNNCell; nn.RNN through models.recurrent"),
    # activations and LayerNorm: lowered to the element-wise ops above (activation_rules.py)
    Op("silu", targets=(A.silu.default,), capture=activation_rules.silu, ir=False, note="x * sigmoid(x)"),
    Op("gelu", targets=(A.gelu.default,), capture=activation_rules.gelu, ir=False,
       note="exact (erf) and approximate='tanh'"),
    Op("elu", targets=(A.elu.default, A.selu.default), capture=activation_rules.elu, ir=False,
       note="alpha, scale, input_scale"),
    Op("leaky_relu", targets=(A.leaky_relu.default,), capture=activation_rules.leaky_relu, ir=False),
    Op("clamp", targets=(A.clamp.default, A.hardtanh.default, A.relu6.default), capture=activation_rules.clamp,
       ir=False, note="as min / max, number bounds"),
    Op("softplus", targets=(A.softplus.default,), capture=activation_rules.softplus, ir=False,
       note="beta and PyTorch's threshold"),
    Op("rsqrt", targets=(A.rsqrt.default,), capture=activation_rules.rsqrt, ir=False, note="1 / sqrt"),
    Op("layer_norm", targets=(A.layer_norm.default,), capture=activation_rules.layer_norm, ir=False,
       note="nn.LayerNorm over the last axis, with or without weight and bias"),
    # captured into no IR node of their own
    Op("alias", targets=(A.alias.default, A.detach.default, A.clone.default, A.contiguous.default),
       capture=rules.alias, ir=False),
    Op("transpose", targets=(A.t.default, A.transpose.int, A.permute.default), capture=rules.transposed_constant,
       note="of a constant", ir=False),
    Op("getitem", targets=(operator.getitem,), capture=rules.getitem, note="of a split", ir=False),
    Op("select", targets=(A.select.int,), capture=rules.select, note="of an axis of size 1", ir=False),
    Op("stack", targets=(A.stack.default,), capture=rules.stack, note="of one tensor", ir=False),
)


def ops() -> tuple[Op, ...]:
    """The table's rows, in table order."""
    return _TABLE


@cache
def _by_name() -> dict[str, Op]:
    return {op.name: op for op in _TABLE if op.ir}


@cache
def _by_target() -> dict[Any, Op]:
    return {target: op for op in _TABLE for target in op.targets}


def find(name: str) -> Op | None:
    """The row of IR op `name`, or None."""
    return _by_name().get(name)


def get(name: str) -> Op:
    """The row of IR op `name`."""
    op = find(name)
    if op is None:
        raise CompileError(f"no such IR op {name!r}")
    return op


def for_target(target: Any) -> Op | None:
    """The row that captures torch target `target`, or None."""
    return _by_target().get(target)


def names(where: Callable[[Op], bool]) -> frozenset[str]:
    """The IR ops whose rows satisfy `where`, e.g. names(lambda op: op.program)."""
    return frozenset(op.name for op in _TABLE if op.ir and where(op))


def supported() -> tuple[str, ...]:
    """What a model may use, one line per row that captures torch ops, sorted."""
    lines = {op.listing() for op in _TABLE if op.listing()}
    return (*sorted(lines), "any op on parameters alone (computed at compile time)")


def unsupported(what: str, source: str) -> CompileError:
    """The error for something the VM cannot run: what it is, where (file:line: code), what is supported."""
    where = f" at {source}" if source else ""
    return CompileError(f"unsupported {what}{where}; supported: {', '.join(supported())}")
