"""The ops' arithmetic in numpy float32: used by the reference VM and by constant folding.

One function per IR op / VM opcode; every result is float32, like the C VM's.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = np.matmul(x, w.T, dtype=F32)
    return y if b is None else (y + b).astype(F32)


def linear_t(x: np.ndarray, wt: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """LINEAR_T / MATMUL_T: the weight transposed, wt (K, M)."""
    y = np.matmul(x, wt, dtype=F32)
    return y if b is None else (y + b).astype(F32)


def linear_q8(x: np.ndarray, qt: np.ndarray, scale: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """The _Q8 products, weight as Qt (K, M) int8: (x @ Qt) * scale (+ b), the sum over exact float32 values."""
    y = (np.matmul(x, qt.astype(F32), dtype=F32) * scale).astype(F32)
    return y if b is None else (y + b).astype(F32)


def ewise(program: tuple[tuple[str, int, int, int], ...], operands: list[np.ndarray], shape: tuple[int, ...]
          ) -> np.ndarray:
    """EWISEn: run an element-wise program, each instruction the op of the same name (so the bits of the ops it
    replaces). Instructions are (op, d, a, b): values 0..n-1 are the operands, n + r register r; the last
    instruction's result, broadcast to `shape`, is the output."""
    n = len(operands)
    regs: dict[int, np.ndarray] = {}

    def value(i: int) -> np.ndarray:
        return operands[i] if i < n else regs[i - n]

    out = None
    for k, (op, d, a, b) in enumerate(program):
        out = binary(op, value(a), value(b)) if op in BINARY else unary(op, value(a))
        if k + 1 < len(program):
            regs[d] = out
    assert out is not None
    return np.broadcast_to(out, shape).astype(F32)


def sigmoid(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (F32(1) / (F32(1) + np.exp(-a, dtype=F32))).astype(F32)


_erf = np.vectorize(math.erf, otypes=[np.float64])

BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "min": np.minimum,  # NaN if either is NaN, like the C VM's
    "max": np.maximum,
    "pow": np.power,  # float32: powf
    "le": np.less_equal,  # 1.0 / 0.0 (binary() converts the booleans)
    "lt": np.less,
}
UNARY = {
    "neg": np.negative,
    "exp": np.exp,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, F32(0)),
    "sigmoid": sigmoid,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "log": np.log,
    "erf": lambda a: _erf(a).astype(F32),  # float64 erf rounded: the VM's is within 2 ulp of it
}


def binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.asarray(BINARY[op](a.astype(F32), b.astype(F32)), dtype=F32)


def unary(op: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(UNARY[op](a.astype(F32)), dtype=F32)


def where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """WHERE: a where c != 0 else b, broadcast; a select (the value not taken may be NaN or infinite)."""
    return np.asarray(np.where(c != 0, a, b), dtype=F32)


def concat(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate([a, b], axis=axis).astype(F32)


# ---- the graph ops (CONV2D .. MATMUL) -------------------------------------------------------------------------


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """NCHW convolution: x (N, C, H, W), w (O, C, KH, KW), bias (O) -> (N, O, OH, OW), float32 products summed
    per tap in (c, kh, kw) order from the bias, like the VM's kernels."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x.astype(F32), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    y = np.broadcast_to(bias.astype(F32)[None, :, None, None], (n, o, oh, ow)).copy()
    for ci in range(c):
        for u in range(kh):
            for v in range(kw):
                patch = xp[:, ci, u:u + stride * (oh - 1) + 1:stride, v:v + stride * (ow - 1) + 1:stride]
                y += (w[None, :, ci, u, v, None, None] * patch[:, None]).astype(F32)
    return y.astype(F32)


def pool2d(x: np.ndarray, kernel: int, stride: int, mode: str) -> np.ndarray:
    """MAXPOOL2D / AVGPOOL2D over k x k windows, no padding; the average is the window's sum / k*k."""
    n, c, h, wd = x.shape
    oh, ow = (h - kernel) // stride + 1, (wd - kernel) // stride + 1
    taps = [x[:, :, u:u + stride * (oh - 1) + 1:stride, v:v + stride * (ow - 1) + 1:stride]
            for u in range(kernel) for v in range(kernel)]
    if mode == "max":
        return np.max(np.stack(taps), axis=0).astype(F32)
    total = np.zeros((n, c, oh, ow), F32)
    for tap in taps:
        total = (total + tap).astype(F32)
    return (total / F32(kernel * kernel)).astype(F32)


def softmax(x: np.ndarray, axis: int, log: bool = False) -> np.ndarray:
    """Numerically stable: the maximum along the axis is subtracted before exp."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        shifted = (x - np.max(x, axis=axis, keepdims=True)).astype(F32)
        e = np.exp(shifted, dtype=F32)
        total = np.sum(e, axis=axis, keepdims=True, dtype=F32)
        if log:
            return (shifted - np.log(total, dtype=F32)).astype(F32)
        return (e / total).astype(F32)


def reduce(x: np.ndarray, axis: int, keepdims: bool, mean: bool) -> np.ndarray:
    total = np.sum(x, axis=axis, keepdims=keepdims, dtype=F32)
    return (total / F32(x.shape[axis])).astype(F32) if mean else total.astype(F32)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a, b, dtype=F32)
