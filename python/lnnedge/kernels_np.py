"""The ops' arithmetic in numpy float32: used by the reference VM and by constant folding.

One function per IR op / VM opcode; every result is float32, like the C VM's.
"""

from __future__ import annotations

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


BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
}
UNARY = {
    "neg": np.negative,
    "exp": np.exp,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, F32(0)),
    "sigmoid": sigmoid,
}


def binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.asarray(BINARY[op](a.astype(F32), b.astype(F32)), dtype=F32)


def unary(op: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(UNARY[op](a.astype(F32)), dtype=F32)


def concat(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    return np.concatenate([a, b], axis=axis).astype(F32)
