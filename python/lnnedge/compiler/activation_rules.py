"""Capture rules for the activations and the normalization small sensor models use, each lowered at compile time
into element-wise IR nodes the VM has an instruction for (no instruction of their own):

    silu(x)                    x * sigmoid(x)
    gelu(x)                    x * 0.5 * (1 + erf(x * 1/sqrt(2)))                      (ATen's CPU formula)
    gelu(x, approximate=tanh)  x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
    elu(x, alpha, scale, s)    scale * (max(x, 0) + alpha * (exp(s * min(x, 0)) - 1))   (1 factors left out;
                               selu: elu with SELU's alpha and scale)
    leaky_relu(x, a)           max(x, 0) + a * min(x, 0)
    hardtanh / clamp / relu6   min(max(x, lo), hi)                                     (a missing bound left out)
    softplus(x, beta, thr)     where(thr < beta x, x, (max(beta x, 0) + log(1 + exp(-|beta x|))) / beta)
    rsqrt(x)                   1 / sqrt(x)
    layer_norm(x, (N,), w, b)  d = x - mean(x); d / sqrt(mean(d d) + eps) * w + b   over the last axis

Why lowerings: each is exact or within an ulp or two of PyTorch's float32 result through ops the VM already runs
(MIN / MAX / WHERE keep inf and NaN where a blend of products would not), so none needs kernels in every SIMD set.
elu's exp(x) - 1 and softplus's log(1 + e) lose the relative precision of expm1 / log1p for tiny results, an
absolute error below 1e-7, far inside the 1e-5 contract. The fused element-wise pass then merges the chains into
EWISE programs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .capture_rules import Translator, source_line, type_of
from .ir import Node, TensorType

if TYPE_CHECKING:
    from .optable import Op


class _Lowering:
    """Appends the nodes of one torch op's lowering; every intermediate named after the fx node."""

    def __init__(self, t: Translator, fx_node) -> None:
        self.t, self.fx_node = t, fx_node
        self.src = source_line(fx_node)
        self.type = type_of(fx_node)
        self.count = 0

    def node(self, op: str, *inputs: str, type_: TensorType | None = None, **attrs) -> str:
        name = f"{self.fx_node.name}_{op}{self.count}"
        self.count += 1
        self.t.nodes.append(Node(op, tuple(inputs), (name,), tuple(attrs.items()), self.src))
        self.t.types[name] = type_ or self.type
        self.t.values[name] = name
        return name

    def result(self, op: str, *inputs: str, **attrs) -> None:
        """The last node: the fx node's own value."""
        self.t.emit(op, self.fx_node, inputs, **attrs)

    def scalar(self, value: float) -> str:
        return self.t.scalar(value)


def _arg(fx_node, index: int, name: str, default):
    args = fx_node.args
    if len(args) > index:
        return args[index]
    return fx_node.kwargs.get(name, default)


def silu(t: Translator, fx_node, op: Op) -> None:
    low = _Lowering(t, fx_node)
    x = t.value(fx_node.args[0])
    low.result("mul", x, low.node("sigmoid", x))


def gelu(t: Translator, fx_node, op: Op) -> None:
    low = _Lowering(t, fx_node)
    x = t.value(fx_node.args[0])
    approximate = fx_node.kwargs.get("approximate", fx_node.args[1] if len(fx_node.args) > 1 else "none")
    if approximate == "tanh":
        cube = low.node("mul", low.node("mul", x, x), x)
        inner = low.node("add", x, low.node("mul", low.scalar(0.044715), cube))
        gate = low.node("tanh", low.node("mul", low.scalar(math.sqrt(2.0 / math.pi)), inner))
    elif approximate == "none":
        gate = low.node("erf", low.node("mul", x, low.scalar(math.sqrt(0.5))))
    else:
        raise t.refuse(f"gelu with approximate={approximate!r} (only 'none' and 'tanh')", low.src)
    low.result("mul", low.node("mul", x, low.scalar(0.5)), low.node("add", gate, low.scalar(1.0)))


def elu(t: Translator, fx_node, op: Op) -> None:
    low = _Lowering(t, fx_node)
    x = t.value(fx_node.args[0])
    if fx_node.target == torch.ops.aten.selu.default:  # selu: elu with SELU's constants (ATen's)
        alpha, scale, input_scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946, 1.0
    else:
        alpha = float(_arg(fx_node, 1, "alpha", 1.0))
        scale = float(_arg(fx_node, 2, "scale", 1.0))
        input_scale = float(_arg(fx_node, 3, "input_scale", 1.0))
    zero = low.scalar(0.0)
    neg = low.node("min", x, zero)
    if input_scale != 1.0:
        neg = low.node("mul", low.scalar(input_scale), neg)
    tail = low.node("sub", low.node("exp", neg), low.scalar(1.0))
    if alpha != 1.0:
        tail = low.node("mul", low.scalar(alpha), tail)
    if scale == 1.0:
        low.result("add", low.node("max", x, zero), tail)
    else:
        low.result("mul", low.scalar(scale), low.node("add", low.node("max", x, zero), tail))


def leaky_relu(t: Translator, fx_node, op: Op) -> None:
    low = _Lowering(t, fx_node)
    x = t.value(fx_node.args[0])
    slope = float(_arg(fx_node, 1, "negative_slope", 0.01))
    zero = low.scalar(0.0)
    low.result("add", low.node("max", x, zero), low.node("mul", low.scalar(slope), low.node("min", x, zero)))


def clamp(t: Translator, fx_node, op: Op) -> None:
    """clamp(x, lo, hi) with number or tensor bounds (either may be None), hardtanh(x, lo, hi), relu6(x)."""
    low = _Lowering(t, fx_node)
    target = fx_node.target.overloadpacket.__name__
    defaults = {"hardtanh": (-1.0, 1.0), "relu6": (0.0, 6.0)}.get(target, (None, None))
    lo = _arg(fx_node, 1, "min", defaults[0]) if target != "relu6" else defaults[0]
    hi = _arg(fx_node, 2, "max", defaults[1]) if target != "relu6" else defaults[1]
    if target == "hardtanh":
        lo, hi = _arg(fx_node, 1, "min_val", -1.0), _arg(fx_node, 2, "max_val", 1.0)
    x = t.value(fx_node.args[0])
    steps = [("max", lo), ("min", hi)]
    steps = [(name, bound) for name, bound in steps if bound is not None]
    if not steps:
        t.values[fx_node.name] = x  # clamp with no bounds: x itself
        return
    for i, (name, bound) in enumerate(steps):
        value = t.value(bound) if not isinstance(bound, (int, float)) else low.scalar(float(bound))
        if i + 1 == len(steps):
            low.result(name, x, value)
        else:
            x = low.node(name, x, value)


def softplus(t: Translator, fx_node, op: Op) -> None:
    low = _Lowering(t, fx_node)
    x = t.value(fx_node.args[0])
    beta = float(_arg(fx_node, 1, "beta", 1.0))
    threshold = float(_arg(fx_node, 2, "threshold", 20.0))
    z = x if beta == 1.0 else low.node("mul", x, low.scalar(beta))
    e = low.node("exp", low.node("neg", low.node("abs", z)))
    soft = low.node("add", low.node("max", z, low.scalar(0.0)),
                    low.node("log", low.node("add", low.scalar(1.0), e)))
    if beta != 1.0:
        soft = low.node("div", soft, low.scalar(beta))
    # PyTorch returns x itself where beta x > threshold
    low.result("where", low.node("lt", low.scalar(threshold), z), x, soft)


def rsqrt(t: Translator, fx_node, op: Op) -> None:
    low = _Lowering(t, fx_node)
    low.result("div", low.scalar(1.0), low.node("sqrt", t.value(fx_node.args[0])))


def layer_norm(t: Translator, fx_node, op: Op) -> None:
    """nn.LayerNorm over the last axis (normalized_shape of one dim), with or without weight and bias."""
    low = _Lowering(t, fx_node)
    x_node = fx_node.args[0]
    shape = list(_arg(fx_node, 1, "normalized_shape", []))
    weight, bias = _arg(fx_node, 2, "weight", None), _arg(fx_node, 3, "bias", None)
    eps = float(_arg(fx_node, 4, "eps", 1e-5))
    xt = type_of(x_node)
    if len(shape) != 1 or xt.shape[-1] != shape[0] or (xt.batched and len(xt.shape) == 1):
        raise t.refuse(f"layer_norm over {shape} of {xt} (only over the last axis)", low.src)
    x = t.value(x_node)
    axis = len(xt.shape) - 1
    kept = TensorType(xt.shape[:-1] + (1,), xt.batched)
    mean = low.node("reduce_mean", x, type_=kept, axis=axis, keepdim=True)
    d = low.node("sub", x, mean)
    var = low.node("reduce_mean", low.node("mul", d, d), type_=kept, axis=axis, keepdim=True)
    y = low.node("div", d, low.node("sqrt", low.node("add", var, low.scalar(eps), type_=kept), type_=kept))
    last = [("mul", weight), ("add", bias)]
    last = [(name, v) for name, v in last if v is not None]
    if not last:
        t.values[fx_node.name] = y
        return
    for i, (name, v) in enumerate(last):
        if i + 1 == len(last):
            low.result(name, y, t.value(v))
        else:
            y = low.node(name, y, t.value(v))
