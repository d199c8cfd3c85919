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


def panel(qt: np.ndarray) -> np.ndarray:
    """The w8a16 panel (LINEAR_W8A16 / MATMUL_W8A16) of Qt (K, M) int8 in [-127, 127]: int8 (ceil(M/2), ceil(K/2), 4),
    one little-endian word per column pair jp and input pair kp, its int16 halves
    h_i = 256 * q(2kp+i, 2jp+1) + q(2kp+i, 2jp), zeros outside the matrix (vm/include/lnn_opcodes.def)."""
    k, m = qt.shape
    if qt.dtype != np.int8 or qt.size and int(np.abs(qt.astype(np.int16)).max()) > 127:
        raise ValueError(f"panel: Qt must be int8 in [-127, 127], got {qt.dtype} {qt.shape}")
    padded = np.zeros((k + k % 2, m + m % 2), np.int16)
    padded[:k, :m] = qt
    halves = 256 * padded[:, 1::2] + padded[:, 0::2]  # (K', M/2): exact int16 for |q| <= 127
    words = halves.reshape(-1, 2, halves.shape[1]).transpose(2, 0, 1)  # (jp, kp, i)
    return np.ascontiguousarray(words.astype("<i2")).view(np.int8).reshape(halves.shape[1], -1, 4)


def unpanel(p: np.ndarray, k: int, m: int) -> np.ndarray:
    """Qt (K, M) of a w8a16 panel as every kernel decodes it, for any bytes: q(k, 2jp) = sext8(h & 0xFF),
    q(k, 2jp+1) = (h - q(k, 2jp)) / 256, in [-128, 128] (int32)."""
    h = np.ascontiguousarray(p, dtype=np.int8).view("<i2").astype(np.int32)  # (jp, kp, i)
    low = (h & 0xFF) - 256 * ((h & 0x80) != 0)
    high = (h - low) // 256  # exact
    qt = np.empty((2 * h.shape[1], 2 * h.shape[0]), np.int32)
    qt[:, 0::2] = low.transpose(1, 2, 0).reshape(qt.shape[0], -1)
    qt[:, 1::2] = high.transpose(1, 2, 0).reshape(qt.shape[0], -1)
    return qt[:k, :m]


def round16(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of x (..., K) in 16-bit block floating point (the w8a16 spec): (xq int64 (..., K), p float32 (...),
    finite (...)) with x ~ xq * p; a row holding a NaN or an infinity is not finite (its results are NaN)."""
    x = np.asarray(x, F32)
    finite = np.all(np.isfinite(x), axis=-1)
    x64 = np.where(finite[..., None], x, 0).astype(np.float64)
    f, big_e = np.frexp(np.max(np.abs(x64), axis=-1, initial=0.0))  # m = f 2^E, f in [0.5, 1); m = 0: E = 0
    # e = E + 1 when m's significand rounds up to 2^16 (>= 0xFFFF00 in 24 bits), then at least -100
    e = np.maximum(big_e + (np.rint(f * 32768) == 32768), -100)
    xq = np.rint(x64 * np.ldexp(1.0, 15 - e)[..., None]).astype(np.int64)  # x * 2^(15-e) is exact in float64
    return xq, np.ldexp(1.0, e - 15).astype(F32), finite


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fmaf(a, b, c) rounded once, as C's fmaf. a * b is exact in float64 (two 24-bit significands, no
    float32 product leaves float64's range); the float64 sum r = a*b + c and its exact error (TwoSum) give the
    correct float32 rounding: rounding r to float32 is right except when r is exactly halfway between two float32
    values and the error is not zero, when the neighbour on the error's side is the answer."""
    with np.errstate(all="ignore"):
        p = np.asarray(a, F32).astype(np.float64) * np.asarray(b, F32).astype(np.float64)
        c64 = np.asarray(c, F32).astype(np.float64)
        r = p + c64
        bb = r - p
        err = (p - (r - bb)) + (c64 - bb)
        y = r.astype(F32)
        yv = np.where(np.isinf(y), np.copysign(2.0 ** 128, r), y.astype(np.float64))  # an overflow as 2^128
        other = np.nextafter(y, np.where(yv > r, -np.inf, np.inf).astype(F32))  # r lies between y and other
        tie = np.isfinite(r) & (err != 0) & (yv != r) & ((yv + other.astype(np.float64)) * 0.5 == r)
        return np.where(tie & ((yv > r) != (err > 0)), other, y).astype(F32)


def linear_w8a16(x: np.ndarray, p: np.ndarray, scale: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """LINEAR_W8A16 (b given) / MATMUL_W8A16, bit-exact as the spec defines them: each row of x rounded (round16),
    S = xq @ Q in integers, then fmaf((float)S * 2^(e-15), scale, b), or ((float)S * 2^(e-15)) * scale."""
    scale = np.asarray(scale, F32)
    xq, step, finite = round16(x)
    s = xq @ unpanel(p, x.shape[-1], scale.size).astype(np.int64)  # exact integers
    with np.errstate(all="ignore"):
        t = s.astype(np.float64).astype(F32) * step[..., None]  # (float)S: |S| < 2^53, one rounding; * 2^(e-15)
        y = t * scale if b is None else fma(t, scale, b)
    return np.where(finite[..., None], y, np.float32(np.nan)).astype(F32)


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
