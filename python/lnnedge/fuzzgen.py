"""A generative fuzzer for the C VM: valid .lnnb programs from a seed, run by three executors and compared.

Mutating bytes (vm/fuzz/, libFuzzer) rarely builds a program that is valid all the way through: in
16 M runs it never reached the shape of issue 15's defect 1 (a loop-strided constant pushed again
inside an inner loop and read after that loop ends). This module builds programs that are valid by
construction, in the spirit of wasm-smith: a random graph of the VM's ops (products, their int8 and
split forms, broadcasting arithmetic, element-wise programs, CONCAT / SPLIT, the graph ops, reshapes)
over inputs, float32 / float16 / int8 / loop-strided constants, arena and STATE tensors, in nested
LOOPs, with operands carried on the stack across loops and pushed again inside them.

Each program runs through
  - the C VM's run plan and its instruction interpreter (`lnn_use_plan` 1 / 0), on the scalar kernels
    and on the best kernel set of the machine: the two must give the same bits (vm/VERIFIER.md,
    property 64);
  - the numpy reference VM (refvm.py): every C result within 1e-5 x max(1, |reference|), the float32
    tolerance of `invoke verify` (README: "1e-5 for float32") in the relative form that
    tests/test_robustness.py uses for the two VMs. The generator keeps every value's magnitude bounded
    (interval bounds per value, divisors bounded away from 0) so that this documented tolerance holds
    for correct executors: a difference beyond it is a finding, never widened.
Edge probes (about one program in eight) break one rule on purpose (a loop nested one deeper than
LNN_MAX_LOOP_DEPTH, a strided table one row short of its loop, a strided push outside every loop):
the verifier must refuse them with the named status.

    from lnnedge.fuzzgen import run_campaign
    stats = run_campaign(programs=500)          # or seconds=600
    stats.mismatches, stats.crashes, stats.refused

Also a command line: python -m lnnedge.fuzzgen --seconds 60 [--lib build/vm/host/liblnnvm.so]
(--seed N --count 1 replays one program). The C VM runs in a worker process, so a crash (a
segmentation fault in a wrong build) is counted, its seed kept, and the campaign goes on.

(Over 1,000 lines, one module for now: the op generators and the interval bounds that keep the
documented tolerance honest are one piece of reasoning; the worker and the campaign loop could move
out into their own modules.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import isa, kernels_np, lnnb
from .errors import LnnedgeError
from .paths import BUILD_DIR, PACKAGE_DIR

F32, U32, I8, F16 = (isa.const(n) for n in ("DT_F32", "DT_U32", "DT_I8", "DT_F16"))
CONST, ARENA, INPUT, OUTPUT, STATE = (isa.const(n) for n in
                                      ("REG_CONST", "REG_ARENA", "REG_INPUT", "REG_OUTPUT", "REG_STATE"))
MAX_DEPTH = isa.const("MAX_LOOP_DEPTH")
MAX_STACK = isa.const("MAX_STACK")
ABS_TOL = 1e-5  # README: verify's float32 tolerance; scaled by max(1, |reference|) as in test_robustness.py
MAG_CAP = 8.0  # largest |value| a generated program computes (keeps the comparison well conditioned)
OUT_DIR = BUILD_DIR / "fuzz" / "gen"
CHECKED_LIBRARY = BUILD_DIR / "fuzz" / "checked" / "liblnnvm.so"  # lnnedge.fuzz.build_gen_library makes it
KEEP_FINDINGS = 20  # programs kept as files per campaign (the rest are counted)
PROGRAM_TIMEOUT = 30.0  # seconds without a result before the worker counts as hung

# element-wise program ops (lnn_format.h); unary ones take b = 0
# the element-wise opcodes, from the one table of their semantics (kernels_np, keyed by the IR's op names)
_EW_BINARY = tuple(name.upper() for name in kernels_np.BINARY)
_EW_UNARY = tuple(name.upper() for name in kernels_np.UNARY)
_BOUNDED = ("SIGMOID", "TANH")  # results in [-1, 1] whatever the input
# A comparison (LE, LT) or a WHERE's condition turns a one-ulp difference between executors into a jump of the
# whole value range (0 or 1, a or b), which no tolerance can judge. So they only read values that every executor
# computes to the same bits: inputs, constants, and these ops over such values (selections and sign changes; an
# ADD or MUL may be contracted into an FMA by one compiler and not another, a SIMD exp is within an ulp).
_EXACT = ("NEG", "ABS", "RELU", "MIN", "MAX", "LE", "LT")
_COMPARE = ("LE", "LT")
# SQRT and LOG of a negative value, and POW of a negative base, give NaN. Every executor passes a NaN on as PyTorch
# does (vm/README.md, "NaN at run time"), but a value near 0 that executors compute an ulp apart would be NaN in one
# and a number in another, which no tolerance can judge: they only read values known >= 0.
_NEEDS_NONNEG = ("SQRT", "LOG", "POW")


def _nonneg(name: str, a: bool, b: bool = False) -> bool:
    """Whether op name's result is >= 0 given whether its operands are (b: the second operand's)."""
    if name in ("ABS", "SQRT", "EXP", "SIGMOID", "RELU", "LE", "LT", "POW"):
        return True
    if name == "MAX":
        return a or b
    if name in ("MIN", "ADD", "MUL", "DIV"):
        return a and b
    return a and name in ("TANH", "ERF")


class FuzzGenError(LnnedgeError, RuntimeError):
    pass


# ---- the generator -----------------------------------------------------------------------------------

@dataclass
class _Tensor:
    """A tensor-table entry under construction (constants get their offsets when the file is laid out)."""

    dims: tuple[int, ...]
    region: int
    offset: int = 0
    batched: bool = False
    stride: int = 0
    dtype: int = F32
    widened: int = 0
    blob: bytes = b""  # CONST: its bytes (every row of a strided table)
    place: int = 0  # CONST: 1 after the others, 2 the very last (a row too many then reads past the constants)


@dataclass
class _Val:
    """A readable tensor and a bound on its values."""

    t: int
    dims: tuple[int, ...]  # dims[0] is 1 and stands for the batch when batched
    batched: bool
    mag: float  # |every element| <= mag
    floor: float = 0.0  # |every element| >= floor (0: unknown); a divisor needs floor > 0
    rows: int = 0  # a loop-strided table: its rows
    writable: bool = False  # arena or state: may be an in-place destination
    exact: bool = False  # every executor computes the same bits (see _EXACT)
    nonneg: bool = False  # every element >= 0 (see _NEEDS_NONNEG)

    @property
    def elems(self) -> int:
        return math.prod(self.dims)


@dataclass
class Generated:
    """One generated program: the file, the inputs of each run (a STATE model runs twice), the batch, the
    status the verifier must give (None: it must accept), the statuses it may give instead of running the
    program identically in every executor (an edge of the format where refusing is a sound choice), and
    what the program contains."""

    seed: int
    data: bytes
    runs: list[list[np.ndarray]]
    batch: int
    expect: str | None
    features: frozenset[str]
    may_refuse: frozenset[str] = frozenset()
    run_status: str | None = None  # the status every run must end with (E_STEPS: a LOOPW never ended)


class _Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.tensors: list[_Tensor] = []
        self.code: list[int] = []
        self.vals: list[_Val] = []  # every tensor an instruction may read now
        self.stack: list[_Val] = []
        self.loops: list[int] = []  # trip counts of the open loops, outermost first
        self.fixed = 0  # bump allocators of the arena's fixed part, batched part (per row), state part
        self.row = 0
        self.state_row = 0
        self.inputs: list[_Val] = []
        self.outputs: list[int] = []
        self.states: list[_Val] = []
        self.read: set[int] = set()  # tensors some instruction reads
        self.expect: str | None = None
        self.may_refuse: set[str] = set()
        self.features: set[str] = set()
        self.run_status: str | None = None

    # -- tensors --

    def _add(self, t: _Tensor) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    def arena(self, dims: tuple[int, ...], batched: bool) -> _Val:
        nbytes = 4 * math.prod(dims)
        if batched:
            t, self.row = self._add(_Tensor(dims, ARENA, self.row, True)), self.row + nbytes
        else:
            t, self.fixed = self._add(_Tensor(dims, ARENA, self.fixed)), self.fixed + nbytes
        return _Val(t, dims, batched, 0.0, writable=True)

    def const(self, dims: tuple[int, ...], mag: float = 1.0, floor: float = 0.0, positive: bool = False) -> _Val:
        """A float32 (or now and then float16) constant with values in [floor, mag] in absolute value (positive:
        all of them >= 0)."""
        n = math.prod(dims)
        values = np.array([self.rng.uniform(floor, mag) * (1 if positive else self.rng.choice((-1, 1)))
                           for _ in range(n)], np.float32)
        if self.rng.random() < 0.2:
            half = values.astype(np.float16)
            self.features.add("f16")
            widened, self.fixed = self.fixed, self.fixed + 4 * n  # its float32 copy in the fixed part
            t = self._add(_Tensor(dims, CONST, dtype=F16, widened=widened, blob=half.astype("<f2").tobytes()))
            wide = half.astype(np.float32)
        else:
            t = self._add(_Tensor(dims, CONST, blob=values.astype("<f4").tobytes()))
            wide = values
        return _Val(t, dims, False, float(np.max(np.abs(wide))), float(np.min(np.abs(wide))), exact=True,
                    nonneg=bool(np.all(wide >= 0)))

    def table(self, dims: tuple[int, ...], rows: int, mag: float = 1.0, place: int | None = None) -> _Val:
        """A loop-strided float32 constant: `rows` rows of dims, one per loop iteration; half of them at the end
        of the constants."""
        n = math.prod(dims)
        values = np.array([self.rng.uniform(-mag, mag) for _ in range(n * rows)], np.float32)
        t = self._add(_Tensor(dims, CONST, stride=4 * n, blob=values.astype("<f4").tobytes(),
                              place=int(self.rng.random() < 0.5) if place is None else place))
        self.features.add("strided")
        return _Val(t, dims, False, mag, rows=rows, exact=True)

    def words(self, values: list[int]) -> int:
        return self._add(_Tensor((len(values),), CONST, dtype=U32, blob=np.array(values, "<u4").tobytes()))

    def int8(self, dims: tuple[int, ...]) -> tuple[int, np.ndarray]:
        q = np.array([self.rng.randint(-127, 127) for _ in range(math.prod(dims))], np.int8).reshape(dims)
        return self._add(_Tensor(dims, CONST, dtype=I8, blob=q.tobytes())), q

    # -- code --

    def emit(self, op: str, a: int = 0, b: int = 0) -> None:
        self.code.append(isa.encode(op, a, b))

    def push(self, v: _Val) -> None:
        self.emit("PUSH", b=v.t)
        self.stack.append(v)

    def drop(self) -> None:
        self.emit("DROP")
        self.stack.pop()

    def trips(self) -> int:
        return math.prod(self.loops)

    def op(self, name: str, operands: list[_Val], dst: _Val, a: int = 0, on_stack: int = 0) -> _Val:
        """Pushes the operands (the first `on_stack` of them are already the top of the stack), emits the op
        writing dst (the first of a DSTN op's destinations) and leaves dst on the stack."""
        for v in operands[on_stack:]:
            self.push(v)
        self.read.update(v.t for v in operands)
        self.emit(name, a, dst.t)
        del self.stack[len(self.stack) - len(operands):]
        self.stack.append(dst)
        return dst

    def settle(self, base: int) -> None:
        """Drops what the current block pushed above `base`."""
        while len(self.stack) > base:
            self.drop()

    # -- operands --

    def pick(self, pred=lambda v: True) -> _Val | None:
        cands = [v for v in self.vals if pred(v) and not v.rows]
        return self.rng.choice(cands) if cands else None

    def like(self, d: _Val) -> _Val:
        """An operand that broadcasts to d's shape: a value of d's shape, a row or a single value (constants,
        or a strided table inside a loop)."""
        r = self.rng.random()
        same = self.pick(lambda v: v.dims == d.dims and v.batched == d.batched)
        if same is not None and r < 0.5:
            return same
        shape = (1,) if r < 0.65 else d.dims[-1:] if r < 0.85 or len(d.dims) < 2 else (1,) + d.dims[1:]
        if d.batched and shape == (1,) + d.dims[1:]:
            shape = d.dims[1:]
        if self.loops and self.rng.random() < 0.3:
            return self.table(shape, self.loops[-1] + self.rng.randint(0, 2), mag=1.0)
        return self.const(shape)

    # -- ops: each takes x (on the stack top when on_stack) and returns the result, left on the stack --

    def product(self, x: _Val, on_stack: int = 0) -> _Val | None:
        """One of the ten products (float32 / int8 weight, plain / transposed, w8a16, with or without bias,
        columns split over several destinations)."""
        r = self.rng
        if x.batched and len(x.dims) < 2:  # x (B): K would be the batch
            return None
        k = x.dims[-1]
        m = r.randint(1, 6)
        scale = 1.0 / max(k, 1)  # |each row of W| sums to at most 1: the result stays within |x| + |bias|
        kind = r.choice(("LINEAR", "MATMUL_NT", "LINEAR_T", "MATMUL_T",
                         "LINEAR_Q8", "MATMUL_NTQ8", "LINEAR_TQ8", "MATMUL_TQ8", "LINEAR_W8A16", "MATMUL_W8A16"))
        if kind.endswith("W8A16"):
            if x.exact:
                return self.w8a16(x, kind, m, on_stack)
            kind = kind.replace("W8A16", "T")  # the rounding of an inexact row could differ by one step
        bias = kind in ("LINEAR", "LINEAR_T", "LINEAR_Q8", "LINEAR_TQ8")
        transposed = kind.endswith(("_T", "_TQ8"))
        ops = [x]
        if kind.endswith("Q8"):
            self.features.add("q8")
            q_t, q = self.int8((k, m) if transposed else (m, k))
            ops += [_Val(q_t, q.shape, False, 127.0), self.const((m,), scale / 127, scale / 254)]
        else:
            ops.append(self.const((k, m) if transposed else (m, k), scale))
        if bias:
            ops.append(self.const((m,), 0.5))
        mag = x.mag + (0.5 if bias else 0.0)
        parts = [m]
        if transposed and m > 1 and r.random() < 0.6:  # split columns over consecutive destinations
            cut = sorted(r.sample(range(1, m), r.randint(1, min(m - 1, 3))))
            parts = [b - a for a, b in zip([0, *cut], [*cut, m])]
            self.features.add("dstn")
        dsts = [self.arena(x.dims[:-1] + (p,), x.batched) for p in parts]
        for d in dsts:
            d.mag = mag
        self.op(kind, ops, dsts[0], a=len(dsts) if transposed else 0, on_stack=on_stack)
        self.vals += dsts
        return dsts[0]

    def w8a16(self, x: _Val, kind: str, m: int, on_stack: int) -> _Val:
        """LINEAR_W8A16 / MATMUL_W8A16 of an exact x (every executor rounds the same bits; the op is bit-exact,
        so its result is exact too): a panel of random int8 weights or of arbitrary bytes (decoded to [-128, 128]),
        the M columns split over 1-4 destinations at any widths; now and then x is first SQRT'd (correctly
        rounded, so still exact), which makes the rows holding a negative value NaN rows."""
        r = self.rng
        if r.random() < 0.2:
            root = self.arena(x.dims, x.batched)
            root.mag, root.exact = math.sqrt(x.mag), True
            x = self.op("SQRT", [x], root, on_stack=on_stack)  # NaN where x < 0: only this product reads it
            on_stack = 1
            self.features.add("w8a16_nan")
        k = x.dims[-1]
        if r.random() < 0.3:
            blob = bytes(r.randrange(256) for _ in range(4 * ((m + 1) // 2) * ((k + 1) // 2)))
            self.features.add("w8a16_bytes")
        else:
            q = np.array([r.randint(-127, 127) for _ in range(k * m)], np.int8).reshape(k, m)
            blob = kernels_np.panel(q).tobytes()
        dims = ((m + 1) // 2, (k + 1) // 2, 4)
        panel = _Val(self._add(_Tensor(dims, CONST, dtype=I8, blob=blob)), dims, False, 128.0)
        scale = 1.0 / k  # |decoded q| <= 128: |each row of the weight| sums to at most 1
        ops = [x, panel, self.const((m,), scale / 128, scale / 256)]
        if kind == "LINEAR_W8A16":
            ops.append(self.const((m,), 0.5))
        cut = sorted(r.sample(range(1, m), r.randint(0, min(m - 1, 3)))) if m > 1 else []
        parts = [b - a for a, b in zip([0, *cut], [*cut, m])]
        dsts = [self.arena(x.dims[:-1] + (p,), x.batched) for p in parts]
        for d in dsts:  # the row's rounding moves |x| by at most 2^-16 of its largest element
            d.mag = x.mag * (1 + 2 ** -15) + (0.5 if kind == "LINEAR_W8A16" else 0.0)
            d.exact = True
        self.features.add("w8a16")
        self.op(kind, ops, dsts[0], a=len(dsts), on_stack=on_stack)
        self.vals += dsts
        return dsts[0]

    def binary(self, x: _Val, on_stack: int) -> _Val | None:
        """x op y, y of x's shape, a row of it or a single value; for a strided table x, y may be a batched
        value whose rows the table is."""
        r = self.rng
        name = r.choice(_EW_BINARY)
        if x.rows:
            y = self.pick(lambda v: v.dims[-len(x.dims):] == x.dims) or self.const(x.dims)
        else:
            y = self.like(x)
        if r.random() < 0.1 and x.exact:
            return self.where(x, y, on_stack)
        if name in _COMPARE and not (x.exact and y.exact):
            name = "MAX"
        if name == "DIV" and y.floor < 0.25:
            y = self.const(y.dims if not y.batched else (1,), 2.0, 0.5)
        if name == "POW":  # x ** y: a base away from 0, an exponent in [-1.5, 1.5] (a negative base: NaN)
            if (x.floor < 0.5 or not x.nonneg) and not on_stack and not x.rows:
                x = self.const(x.dims, 2.0, 0.5, positive=True)
            elif x.floor < 0.5 or not x.nonneg:
                name = "MAX"
            if y.mag > 1.5:
                y = self.const(y.dims if not y.batched else (1,), 1.5, 0.25)
        dims = x.dims if len(x.dims) >= len(y.dims) and not y.batched else y.dims
        batched = x.batched or y.batched
        bound = _ew_bound(name, x.mag, x.floor, y.mag, y.floor)
        if bound is None:
            return None
        mag = bound[0]
        if mag > MAG_CAP:
            return None
        inplace = (x.writable and x.dims == dims and x.batched == batched and not on_stack and not x.exact
                   and (not x.nonneg or _nonneg(name, True, y.nonneg))
                   and name in ("ADD", "SUB") and x.mag + self.trips() * y.mag <= MAG_CAP and r.random() < 0.3)
        if inplace:  # an accumulator: grows by |y| per iteration
            x.mag = x.mag + self.trips() * y.mag
            self.features.add("in_place")
            return self.op(name, [x, y], x)
        d = self.arena(dims, batched)
        d.mag = mag
        d.exact = x.exact and y.exact and name in _EXACT
        d.nonneg = _nonneg(name, x.nonneg, y.nonneg)
        if name == "MUL":
            d.floor = x.floor * y.floor
        self.op(name, [x, y], d, on_stack=on_stack)
        self.vals.append(d)
        return d

    def where(self, c: _Val, y: _Val, on_stack: int) -> _Val | None:
        """WHERE(c, a, b): c chooses between x-like values (c != 0: a); the three broadcast together."""
        a, b = (y, self.like(c)) if self.rng.random() < 0.5 else (self.like(c), y)
        dims = c.dims if len(c.dims) >= len(y.dims) and not y.batched else y.dims
        d = self.arena(dims, c.batched or y.batched)
        d.mag = max(a.mag, b.mag)
        d.exact = c.exact and a.exact and b.exact
        d.nonneg = a.nonneg and b.nonneg
        self.features.add("where")
        self.op("WHERE", [c, a, b], d, on_stack=on_stack)
        self.vals.append(d)
        return d

    def unary(self, x: _Val, on_stack: int) -> _Val | None:
        r = self.rng
        name = r.choice(_EW_UNARY)
        if name == "EXP" and x.mag > 2 or name == "LOG" and x.floor < 0.25 or name in _NEEDS_NONNEG and not x.nonneg:
            name = "TANH"
        mag, floor = _ew_bound(name, x.mag, x.floor, 0.0, 0.0) or (x.mag, 0.0)
        # in place only over an inexact value: a comparison read earlier in a loop must keep reading exact bits
        if (x.writable and not x.exact and not (x.nonneg and not _nonneg(name, True)) and not on_stack
                and r.random() < 0.25 and name in ("SIGMOID", "TANH", "NEG", "RELU")):
            x.mag, x.floor = max(x.mag, mag), 0.0  # in place: earlier reads in a loop saw the old bound
            self.features.add("in_place")
            return self.op(name, [x], x)
        d = self.arena(x.dims, x.batched)
        d.mag, d.floor = mag, floor
        d.exact = x.exact and name in _EXACT
        d.nonneg = _nonneg(name, x.nonneg)
        self.op(name, [x], d, on_stack=on_stack)
        self.vals.append(d)
        return d

    def ewise(self, x: _Val, on_stack: int, into: _Val | None = None) -> _Val | None:
        """EWISEn over x and up to 7 more operands; a random program whose values stay bounded. into: write
        a STATE tensor (the program then ends in TANH or SIGMOID, so the state stays within 1)."""
        r = self.rng
        dshape = _Val(0, x.dims, x.batched, 0.0) if not x.rows else _Val(0, x.dims, False, 0.0)
        more = r.randint(0, 3) if r.random() < 0.7 else r.randint(4, 7)  # EWISE1..8
        operands = [x] + [self.like(dshape) for _ in range(min(more, MAX_STACK - 1 - len(self.stack)))]
        n = len(operands)
        vals = [(v.mag, v.floor) for v in operands]  # (mag, floor) of operands, then registers
        regs: list[tuple[float, float]] = []
        exact = [v.exact for v in operands]  # of operands, then registers
        rexact: list[bool] = []
        nonneg = [v.nonneg for v in operands]  # of operands, then registers
        rnonneg: list[bool] = []
        length = r.randint(1, 6)
        insns = []
        for i in range(length):
            last = i == length - 1
            avail = list(range(n)) + [n + j for j in range(len(regs))]
            for _ in range(20):
                name = r.choice(_EW_BINARY + _EW_UNARY) if not (last and into) else r.choice(_BOUNDED)
                a = r.choice(avail)
                b = r.choice(avail) if name in _EW_BINARY else 0
                ma, fa = (vals + regs)[a]
                mb, fb = (vals + regs)[b] if name in _EW_BINARY else (0.0, 0.0)
                if name in _COMPARE and not ((exact + rexact)[a] and (exact + rexact)[b]):
                    continue
                if name in _NEEDS_NONNEG and not (nonneg + rnonneg)[a]:
                    continue
                res = _ew_bound(name, ma, fa, mb, fb)
                if res is not None and res[0] <= MAG_CAP:
                    break
            else:
                name, b, res = "TANH", 0, (1.0, 0.0)
            is_exact = (exact + rexact)[a] and (name not in _EW_BINARY or (exact + rexact)[b]) and name in _EXACT
            is_nonneg = _nonneg(name, (nonneg + rnonneg)[a], name in _EW_BINARY and (nonneg + rnonneg)[b])
            if last:
                insns.append((name, 0, a, b))
                mag, floor = res
                result_exact, result_nonneg = is_exact, is_nonneg
            else:
                d = r.randint(0, len(regs)) if len(regs) < isa.const("EW_MAX_REGS") else r.randrange(len(regs))
                if d == len(regs):
                    regs.append(res)
                    rexact.append(is_exact)
                    rnonneg.append(is_nonneg)
                else:
                    regs[d] = res
                    rexact[d] = is_exact
                    rnonneg[d] = is_nonneg
                insns.append((name, d, a, b))
        nregs = len(regs)
        ops = isa.opcodes()
        program = [n | len(insns) << 8 | nregs << 16] + [ops[o].code | d << 8 | a << 16 | b << 24
                                                           for o, d, a, b in insns]
        p = _Val(self.words(program), (len(program),), False, 0.0)
        self.features.add("ewise")
        self.features.update(f"ew:{name}" for name, _, _, _ in insns)
        if into is not None:
            into.mag = max(into.mag, mag)
            return self.op(f"EWISE{n}", operands + [p], into, on_stack=on_stack)
        if mag > MAG_CAP:
            return None
        # in place over x (an identical range) now and then, when the program is bounded
        if (x.writable and not x.exact and not (x.nonneg and not result_nonneg) and not on_stack
                and insns[-1][0] in _BOUNDED and r.random() < 0.3):
            x.mag, x.floor = max(x.mag, mag), 0.0
            self.features.add("in_place")
            return self.op(f"EWISE{n}", operands + [p], x)
        d = self.arena(dshape.dims, dshape.batched)
        d.mag, d.floor = mag, floor
        d.exact, d.nonneg = result_exact, result_nonneg
        self.op(f"EWISE{n}", operands + [p], d, on_stack=on_stack)
        self.vals.append(d)
        return d

    def concat(self, x: _Val, on_stack: int) -> _Val | None:
        if len(x.dims) < 2 and x.batched:
            return None
        y = self.pick(lambda v: v.batched == x.batched and v.dims[:-1] == x.dims[:-1])
        if y is None:
            if x.batched:
                return None
            y = self.const(x.dims[:-1] + (self.rng.randint(1, 3),))
        axis = len(x.dims) - 1
        d = self.arena(x.dims[:-1] + (x.dims[-1] + y.dims[-1],), x.batched)
        d.mag = max(x.mag, y.mag)
        self.op("CONCAT", [x, y], d, a=axis, on_stack=on_stack)
        self.vals.append(d)
        return d

    def split(self, x: _Val, on_stack: int) -> _Val | None:
        last = x.dims[-1]
        if last < 2 or (x.batched and len(x.dims) < 2):
            return None
        cut = sorted(self.rng.sample(range(1, last), self.rng.randint(1, min(last - 1, 4))))
        parts = [b - a for a, b in zip([0, *cut], [*cut, last])]
        dsts = [self.arena(x.dims[:-1] + (p,), x.batched) for p in parts]
        for d in dsts:
            d.mag = x.mag
        self.features.add("split")
        self.op("SPLIT", [x], dsts[0], a=len(dsts), on_stack=on_stack)
        self.vals += dsts
        return dsts[0]

    def reshape(self, x: _Val, on_stack: int) -> _Val | None:
        n = math.prod(x.dims[1:]) if x.batched else x.elems
        factors = [f for f in range(2, n) if n % f == 0]
        if x.batched:
            dims = (1, n) if len(x.dims) > 2 or not factors else (1, (f := self.rng.choice(factors)), n // f)
        else:
            dims = (n,) if len(x.dims) > 1 or not factors else ((f := self.rng.choice(factors)), n // f)
        d = self.arena(dims, x.batched)
        d.mag, d.floor = x.mag, x.floor
        self.op("COPY", [x], d, on_stack=on_stack)
        self.vals.append(d)
        return d

    def graph(self, x: _Val, on_stack: int) -> _Val | None:
        """SOFTMAX / LOG_SOFTMAX, REDUCE_SUM / _MEAN, MATMUL against a shared weight, CONV2D / pools."""
        r = self.rng
        axes = [i for i in range(len(x.dims)) if not (i == 0 and x.batched)]
        if not axes:
            return None
        kind = r.choice(("SOFTMAX", "LOG_SOFTMAX", "REDUCE_SUM", "REDUCE_MEAN", "MATMUL", "IMAGE", "IMAGE"))
        self.features.add("graph")
        if kind in ("SOFTMAX", "LOG_SOFTMAX"):
            axis = r.choice(axes)
            d = self.arena(x.dims, x.batched)
            d.mag = 1.0 if kind == "SOFTMAX" else 2 * x.mag + math.log(x.dims[axis]) + 1
            if d.mag > MAG_CAP:
                return None
            self.op(kind, [x], d, a=axis, on_stack=on_stack)
        elif kind.startswith("REDUCE"):
            axis = r.choice(axes)
            keep = r.random() < 0.5 or len(x.dims) == 1 or (x.batched and len(x.dims) == 2 and r.random() < 0.5)
            dims = tuple(1 if i == axis else n for i, n in enumerate(x.dims)) if keep else \
                x.dims[:axis] + x.dims[axis + 1:]
            d = self.arena(dims, x.batched)
            d.mag = x.mag * (x.dims[axis] if kind == "REDUCE_SUM" else 1)
            if d.mag > MAG_CAP:
                return None
            self.op(kind, [x], d, a=axis, on_stack=on_stack)
        elif kind == "MATMUL":
            if len(x.dims) < 2:
                return None
            k, n = x.dims[-1], r.randint(1, 5)
            w = self.const((k, n), 1.0 / k)
            d = self.arena(x.dims[:-1] + (n,), x.batched)
            d.mag = x.mag
            self.op("MATMUL", [x, w], d, on_stack=on_stack)
        else:
            return self.image(x, on_stack)
        self.vals.append(d)
        return d

    def image(self, x: _Val, on_stack: int) -> _Val | None:
        """x reshaped to NCHW, a CONV2D or a pool, reshaped back to (B, n)."""
        r = self.rng
        if not x.batched:
            return None
        n = x.elems
        shapes = [(c, h, n // c // h) for c in (1, 2) for h in (2, 3, 4) if n % (c * h) == 0 and n // c // h >= 2]
        if not shapes:
            return None
        c, h, w = r.choice(shapes)
        img = self.arena((1, c, h, w), True)
        img.mag = x.mag
        self.op("COPY", [x], img, on_stack=on_stack)
        if r.random() < 0.5:
            kh, kw = r.randint(1, h), r.randint(1, w)
            pad = r.randint(0, min(kh, kw) - 1) if r.random() < 0.3 else 0
            s = r.randint(1, 2)
            o = r.randint(1, 3)
            wt, bias = self.const((o, c, kh, kw), 1.0 / (c * kh * kw)), self.const((o,), 0.5)
            dims = (1, o, (h + 2 * pad - kh) // s + 1, (w + 2 * pad - kw) // s + 1)
            d = self.arena(dims, True)
            d.mag = x.mag + 0.5
            self.op("CONV2D", [img, wt, bias], d, a=(s - 1) | pad << 4, on_stack=1)
        else:
            k, s = r.randint(1, min(h, w)), r.randint(1, 2)
            d = self.arena((1, c, (h - k) // s + 1, (w - k) // s + 1), True)
            d.mag = x.mag
            self.op(r.choice(("MAXPOOL2D", "AVGPOOL2D")), [img], d, a=(k - 1) | (s - 1) << 4, on_stack=1)
        flat = self.arena((1, math.prod(d.dims[1:])), True)
        flat.mag = d.mag
        self.op("COPY", [d], flat, on_stack=1)
        self.vals += [img, d, flat]
        return flat

    def state_update(self) -> None:
        s = self.rng.choice(self.states)
        x = self.pick(lambda v: v.dims == s.dims and v.batched)
        if x is None:
            return
        if self.rng.random() < 0.5:
            self.op(self.rng.choice(_BOUNDED), [x], s)
        else:
            self.ewise(x, 0, into=s)
        self.drop()

    # -- structure --

    def step(self, x: _Val | None, on_stack: int) -> _Val | None:
        """One op on x (a random readable value when None)."""
        if x is None:
            x = self.pick()
            on_stack = 0
        assert x is not None
        r = self.rng.random()
        if x.rows or (not x.batched and r < 0.3):
            fn = self.rng.choice((self.binary, self.ewise, self.unary, self.product))
        elif r < 0.25:
            fn = self.product
        elif r < 0.45:
            fn = self.binary
        elif r < 0.6:
            fn = self.unary
        elif r < 0.75:
            fn = self.ewise
        elif r < 0.82:
            fn = self.split
        elif r < 0.87:
            fn = self.concat
        elif r < 0.92:
            fn = self.reshape
        else:
            fn = self.graph
        before = len(self.code)
        out = fn(x, on_stack)
        if out is None and len(self.code) == before and on_stack:  # nothing emitted: use x up another way
            out = self.unary(x, on_stack) if not x.rows else self.binary(x, on_stack)
        return out

    def block(self, items: int) -> None:
        """items ops and loops at the current depth; leaves the stack as it found it."""
        base = len(self.stack)
        for _ in range(items):
            top = self.stack[-1] if len(self.stack) > base else None
            if top is not None and self.rng.random() < 0.4:  # chain: the previous result is the next op's x
                self.step(top, 1)
                continue
            self.settle(base)
            if self.loops and self.states and self.rng.random() < 0.1:
                self.state_update()
            elif len(self.loops) < MAX_DEPTH and self.rng.random() < 0.3:
                self.loopw() if self.rng.random() < 0.3 else self.loop()
            else:
                self.step(None, 0)
        self.settle(base)

    def loop(self) -> None:
        """LOOP n ... END, now and then with an operand carried on the stack across it and pushed again in
        the body, then consumed after END (issue 15, defect 1: a strided table pushed in an inner loop and
        read after it)."""
        r = self.rng
        count = r.choice((1, 2, 2, 3, 3, 4, 5))
        carried = None
        if len(self.stack) < MAX_STACK - 10 and r.random() < 0.35:
            if self.loops and r.random() < 0.3:  # a table stepping with the current loop, also long enough
                rows = max(self.loops[-1], count) + r.randint(0, 1)
                carried = self.table(self.rng.choice(((1,), (3,), (2, 3))), rows)
                # which iteration's row it is after the inner loop is the question of defect 1: the verifier
                # may refuse a strided operand on the stack at a LOOP, or all executors must agree
                self.may_refuse.add("E_STRIDE")
            else:
                carried = self.pick() or self.inputs[0]
            self.push(carried)
        acc = self.zeroed() if carried is None and r.random() < 0.3 else None
        self.emit("LOOP", b=count)
        self.loops.append(count)
        if acc is not None:
            self.accumulate(acc)
        if carried is not None and r.random() < 0.6:  # the body pushes the carried operand again
            self.drop()
            self.push(carried)
            self.features.add("repush")
        self.block(r.randint(1, 3))
        self.emit("END")
        self.loops.pop()
        if carried is not None:
            self.step(carried, 1)
            self.drop()

    def loopw(self) -> None:
        """LOOPW n ... flag UNTIL END (the adaptive solvers' loop): a counter counts the trips and the flag is
        LE(thresholds, counter) over a row of thresholds in 1..n, so the loop ends early, at the trip of the
        largest threshold; now and then a threshold is n + 1 and no trip ends it: every run must then stop
        with E_STEPS in every executor."""
        r = self.rng
        count = r.randint(1, 5)
        width = r.randint(1, 4)
        never = r.random() < 0.15
        thresholds = np.array([r.randint(1, count) for _ in range(width)], np.float32)
        if never:
            thresholds[r.randrange(width)] = count + 1
        thr_t = self._add(_Tensor((width,), CONST, blob=thresholds.astype("<f4").tobytes()))
        thr = _Val(thr_t, (width,), False, float(thresholds.max()), float(thresholds.min()))
        one_t = self._add(_Tensor((1,), CONST, blob=np.ones(1, "<f4").tobytes()))
        one = _Val(one_t, (1,), False, 1.0, 1.0)
        counter = self.arena((width,), False)
        self.op("ZERO", [], counter)
        self.drop()
        self.emit("LOOPW", b=count)
        self.loops.append(count)
        self.op("ADD", [counter, one], counter)
        self.drop()
        self.block(r.randint(1, 3))
        flag = self.arena((width,), False)
        self.op("LE", [thr, counter], flag)
        self.emit("UNTIL")
        self.stack.pop()
        self.emit("END")
        self.loops.pop()
        self.features.add("loopw_steps" if never else "loopw")
        if never:
            self.run_status = "E_STEPS"

    def zeroed(self) -> _Val:
        """ZERO into a fresh tensor of an existing value's shape (the accumulator of the loop that follows)."""
        like = self.pick(lambda v: not (v.batched and len(v.dims) < 2)) or self.inputs[0]
        acc = self.arena(like.dims, like.batched)
        self.op("ZERO", [], acc)
        self.drop()
        self.vals.append(acc)
        return acc

    def accumulate(self, acc: _Val) -> None:
        """acc += y in place (y of acc's shape, a row or a single value), growing by |y| per iteration; a
        TANH in place when that would pass MAG_CAP."""
        y = self.like(acc)
        if acc.mag + self.trips() * y.mag <= MAG_CAP:
            acc.mag += self.trips() * y.mag
            self.op(self.rng.choice(("ADD", "SUB")), [acc, y], acc)
        else:
            acc.mag = max(acc.mag, 1.0)
            self.op("TANH", [acc], acc)
        self.features.add("in_place")
        self.drop()

    def edge_loop_depth(self) -> None:
        """Loops nested to LNN_MAX_LOOP_DEPTH, or one deeper (E_LOOP)."""
        deeper = self.rng.random() < 0.5
        depth = MAX_DEPTH + (1 if deeper else 0)
        for _ in range(depth):
            count = self.rng.randint(1, 2)
            self.emit("LOOP", b=count)
            self.loops.append(count)
        self.step(None, 0)
        self.settle(0)
        for _ in range(depth):
            self.emit("END")
            self.loops.pop()
        if deeper:
            self.expect = "E_LOOP"

    def edge_stride(self) -> None:
        """A strided table one row short of the loop that pushes it, or pushed outside every loop (E_STRIDE)."""
        count = self.rng.randint(2, 4)
        short = self.table((3,), count - 1, place=2)  # the last constant: its row count-1 is past them
        outside = self.rng.random() < 0.3
        if not outside:
            self.emit("LOOP", b=count)
            self.loops.append(count)
        self.push(short)
        self.push(self.const((3,)))
        d = self.arena((3,), False)
        self.op("ADD", self.stack[-2:], d, on_stack=2)
        self.drop()
        if not outside:
            self.emit("END")
            self.loops.pop()
        self.expect = "E_STRIDE"

    # -- the whole program --

    def generate(self) -> tuple[lnnb.Program, int, list[list[np.ndarray]]]:
        r = self.rng
        n_in = r.randint(1, 3)
        for i in range(n_in):
            batched = i == 0 or r.random() < 0.7
            dims = (1, r.randint(1, 8)) if batched else (r.randint(1, 6),)
            t = self._add(_Tensor(dims, INPUT, i, batched))
            v = _Val(t, dims, batched, 1.0, exact=True)
            self.inputs.append(v)
            self.vals.append(v)
        if r.random() < 0.3:
            self.features.add("state")
            for _ in range(r.randint(1, 2)):
                dims = (1, r.randint(1, 6))
                t = self._add(_Tensor(dims, STATE, self.state_row, True))
                self.state_row += 4 * dims[1]
                v = _Val(t, dims, True, 1.0, writable=True)
                self.states.append(v)
                self.vals.append(v)
        edge = r.random()
        if edge < 0.06:
            self.edge_loop_depth()
        elif edge < 0.1:
            self.edge_stride()
        self.block(r.randint(2, 9))
        if self.states:
            self.state_update()
        # outputs: copies (or bounded results) of what the program computed, first the values nothing read
        # (so that a wrong value anywhere is seen), newest first, then any
        computed = [v for v in self.vals if self.tensors[v.t].region in (ARENA, STATE)] or self.inputs
        leaves = [v for v in reversed(computed) if v.t not in self.read]
        picks = leaves[:r.randint(3, 10)] + [r.choice(computed) for _ in range(r.randint(0 if leaves else 1, 2))]
        for i, x in enumerate(picks[:isa.const("MAX_IO")]):
            t = self._add(_Tensor(x.dims, OUTPUT, i, x.batched))
            out = _Val(t, x.dims, x.batched, x.mag)
            self.op("COPY" if r.random() < 0.7 else "TANH", [x], out)
            self.drop()
            self.outputs.append(t)
        program = self._layout(len(self.outputs))
        batch = r.choice((1, 1, 2, 3, 5))
        runs = [[np.asarray(np.random.default_rng(r.randrange(2 ** 32)).uniform(-1, 1, (batch, *v.dims[1:])
                                                                                   if v.batched else v.dims),
                            np.float32) for v in self.inputs]
                for _ in range(2 if self.states else 1)]
        return program, batch, runs

    def _layout(self, n_out: int) -> lnnb.Program:
        """Constants at 4-aligned offsets (the tables with a `place` after the others), then the entries."""
        consts = bytearray()
        order = sorted((i for i, t in enumerate(self.tensors) if t.region == CONST),
                       key=lambda i: self.tensors[i].place)
        for i in order:
            t = self.tensors[i]
            consts += b"\0" * (-len(consts) % 4)
            t.offset = len(consts)
            consts += t.blob
        entries = tuple(lnnb.TensorEntry(t.dims, t.region, t.offset, t.batched, t.stride, t.dtype, t.widened)
                        for t in self.tensors)
        return lnnb.Program(entries, bytes(consts), tuple(self.code), arena_fixed=max(self.fixed, 4),
                            arena_row=self.row, num_inputs=len(self.inputs), num_outputs=n_out,
                            state_row=self.state_row)


def _ew_bound(name: str, ma: float, fa: float, mb: float, fb: float) -> tuple[float, float] | None:
    """(mag, floor) of an element-wise op's result from its operands' bounds; None when not allowed."""
    if name == "ADD" or name == "SUB":
        return ma + mb, 0.0
    if name == "MUL":
        return ma * mb, fa * fb
    if name == "DIV":
        return (ma / fb, fa / mb if mb else 0.0) if fb >= 0.25 else None
    if name == "NEG":
        return ma, fa
    if name == "EXP":
        return (math.exp(ma), math.exp(-ma)) if ma <= 2 else None
    if name == "SIGMOID":
        return 1.0, 1 / (1 + math.exp(min(ma, 80)))
    if name == "TANH":
        return 1.0, 0.0
    if name in ("MIN", "MAX"):
        return max(ma, mb), 0.0
    if name in ("LE", "LT"):
        return 1.0, 0.0
    if name == "POW":  # |a| in [fa, ma], |b| <= mb (a negative a gives NaN in every executor)
        if fa < 0.5 or mb > 1.5:
            return None
        big = max(ma, 1.0 / fa) ** mb
        return (big, 0.0) if big <= MAG_CAP else None
    if name == "ABS":
        return ma, fa
    if name == "SQRT":  # a negative operand gives NaN in every executor
        return math.sqrt(ma), math.sqrt(fa)
    if name == "LOG":
        return (max(abs(math.log(fa)), abs(math.log(ma))), 0.0) if fa >= 0.25 else None
    if name == "ERF":
        return min(1.0, 1.13 * ma), math.erf(fa)
    return ma, 0.0  # RELU


def generate(seed: int) -> Generated:
    """The program of this seed (the same bytes and inputs on every machine)."""
    g = _Gen(seed)
    program, batch, runs = g.generate()
    data = lnnb.write(program)
    return Generated(seed, data, runs, batch, g.expect, frozenset(g.features | features(data)),
                     frozenset(g.may_refuse), g.run_status)


# ---- what a program contains (read from its code) ----------------------------------------------------------

def features(data: bytes) -> set[str]:
    """Shapes of the code worth counting, found by walking the stack like the verifier: `strided_after_loop`
    when an op consumes a loop-strided constant pushed inside a loop that has ended since (issue 15's
    defect 1), `nested` (depth >= 2), `max_depth` (LNN_MAX_LOOP_DEPTH), `reentered` (an inner loop inside
    an outer loop that runs more than once); and `op:NAME` for every opcode the code uses."""
    p = lnnb.read(data)
    ops = isa.opcode_by_code()
    found: set[str] = set()
    stack: list[tuple[int, int]] = []  # (tensor, loop instance it was pushed in; -1 outside loops)
    open_loops: list[tuple[int, int]] = []  # (instance id, count)
    ended: set[int] = set()
    next_id = 0
    for word in p.code:
        code, a, b = isa.decode(word)
        info = ops.get(code)
        if info is None:
            break
        found.add(f"op:{info.name}")
        if info.name in ("LOOP", "LOOPW"):
            if open_loops and any(c > 1 for _, c in open_loops):
                found.add("reentered")
            open_loops.append((next_id, b))
            next_id += 1
            found.add("nested" if len(open_loops) >= 2 else "loop")
            if len(open_loops) >= MAX_DEPTH:
                found.add("max_depth")
        elif info.name == "END":
            if open_loops:
                ended.add(open_loops.pop()[0])
        elif info.name == "PUSH":
            stack.append((b, open_loops[-1][0] if open_loops else -1))
        elif info.name == "DROP":
            if stack:
                stack.pop()
        else:
            popped = stack[len(stack) - info.pops:] if info.pops <= len(stack) else []
            del stack[len(stack) - len(popped):]
            for t, loop in popped:
                if t < len(p.tensors) and p.tensors[t].stride and loop in ended:
                    found.add("strided_after_loop")
            if info.pushes:  # UNTIL pushes nothing
                stack.append((b, -2))
    return found


# ---- running one program through the three executors ---------------------------------------------------

@dataclass
class Outcome:
    seed: int
    kind: str  # accepted (agreeing), refused, mismatch, wrongly_accepted (an edge probe the verifier took)
    status: str = ""  # the verifier's status name when refused
    detail: str = ""
    plan: bool = False  # the C VM built a run plan for it
    checks: int = 0  # differential comparisons made (pairs of result arrays)
    features: list[str] = field(default_factory=list)


def _close(got: np.ndarray, ref: np.ndarray) -> tuple[bool, float]:
    """Within ABS_TOL x max(1, |ref|), with NaN where the reference has NaN and the same infinities."""
    if got.size != ref.size:
        return False, math.inf
    got = got.reshape(ref.shape)  # the binding gives rows of a batched output, whole arrays of the others
    if not np.array_equal(np.isnan(got), np.isnan(ref)):
        return False, math.inf
    fin = np.isfinite(ref)
    if not np.array_equal(got[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)]):
        return False, math.inf
    if not np.all(np.isfinite(got[fin])):
        return False, math.inf
    err = np.abs(got[fin].astype(np.float64) - ref[fin]) / np.maximum(1.0, np.abs(ref[fin].astype(np.float64)))
    worst = float(err.max()) if err.size else 0.0
    return worst <= ABS_TOL, worst


def check(gen: Generated, library: Path) -> Outcome:
    """Verifies and runs one generated program: plan vs interpreter bit for bit on the scalar and the best
    kernel set, each against the reference VM within the documented tolerance."""
    from .refvm import RefVM, StepLimitError
    from .runtime import CVM, VMError

    feats = sorted(gen.features)
    try:
        vm = CVM(gen.data, max_batch=gen.batch, library=library)
    except VMError as e:
        if e.name == gen.expect or (gen.expect is None and e.name in gen.may_refuse):
            return Outcome(gen.seed, "refused", e.name, features=feats)
        if gen.expect is not None:
            return Outcome(gen.seed, "refused", e.name, f"expected {gen.expect}", features=feats)
        return Outcome(gen.seed, "refused", e.name, str(e), features=feats)
    if gen.expect is not None:
        return Outcome(gen.seed, "wrongly_accepted", detail=f"the verifier accepted an edge probe that must "
                       f"give {gen.expect}", features=feats)
    with np.errstate(all="ignore"):
        ref_vm = RefVM(gen.data)
        try:
            reference = [ref_vm.run(inputs) for inputs in gen.runs]
            ref_status = None
        except StepLimitError:
            reference, ref_status = [], "E_STEPS"
    if ref_status != gen.run_status:
        return Outcome(gen.seed, "mismatch", detail=f"the reference VM's run ended with {ref_status or 'OK'}, "
                       f"expected {gen.run_status or 'OK'}", features=feats)
    sets = list(dict.fromkeys([vm.isa, "scalar"]))  # the best set of this processor, and the scalar one
    has_plan = vm.use_plan(True)
    checks = 0
    for ks in sets:
        try:
            vm.use_kernels(ks)
        except VMError:
            continue  # compiled in, but not on this processor
        results = {}
        for plan in ((True, False) if has_plan else (False,)):
            vm.use_plan(plan)
            vm.reset()
            try:
                results[plan] = [[o.copy() for o in vm.run(inputs)] for inputs in gen.runs]
            except VMError as e:  # a LOOPW out of trips: every executor must say so (E_STEPS)
                if e.name != gen.run_status:
                    return Outcome(gen.seed, "mismatch", detail=f"{ks}: the run ended with {e.name}",
                                   plan=plan, checks=checks, features=feats)
                results[plan] = []
                checks += 1
                continue
            if gen.run_status is not None:
                return Outcome(gen.seed, "mismatch", detail=f"{ks}: the run ended OK, expected "
                               f"{gen.run_status}", plan=plan, checks=checks, features=feats)
        if has_plan:
            for run, (a, b) in enumerate(zip(results[True], results[False])):
                for k, (x, y) in enumerate(zip(a, b)):
                    checks += 1
                    if not np.array_equal(x.view(np.uint32), y.view(np.uint32)):
                        return Outcome(gen.seed, "mismatch", detail=f"{ks}: run plan and interpreter differ in "
                                       f"output {k} of run {run} (max |diff| {_maxdiff(x, y)})", plan=True,
                                       checks=checks, features=feats)
        for run, (outs, refs) in enumerate(zip(results[False], reference)):
            for k, (x, y) in enumerate(zip(outs, refs)):
                checks += 1
                ok, worst = _close(x, y)
                if not ok:
                    return Outcome(gen.seed, "mismatch", detail=f"{ks}: output {k} of run {run} differs from "
                                   f"the reference VM by {worst:.3g} (relative to max(1, |ref|); tolerance "
                                   f"{ABS_TOL})", plan=has_plan, checks=checks, features=feats)
    return Outcome(gen.seed, "accepted", plan=has_plan, checks=checks, features=feats)


def _maxdiff(x: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        return float(np.nanmax(np.abs(x.astype(np.float64) - y))) if x.size else 0.0


# ---- campaigns ---------------------------------------------------------------------------------------------

@dataclass
class Stats:
    """What a campaign did: programs generated, how each ended, the checks made, the shapes reached."""

    library: str
    seconds: float = 0.0
    generated: int = 0
    accepted: int = 0  # accepted and every executor agreed
    refused: dict[str, int] = field(default_factory=dict)  # by status; edge probes refused as they must be
    refused_valid: int = 0  # programs meant to be valid that the verifier refused (a generator or verifier gap)
    probes_refused: int = 0
    mismatches: int = 0
    wrongly_accepted: int = 0
    crashes: int = 0
    hangs: int = 0
    planned: int = 0  # accepted programs the C VM ran from a run plan (and by its interpreter)
    checks: int = 0
    features: dict[str, int] = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)  # seed, kind, detail, file
    first_finding_after: dict | None = None  # programs and seconds until the first finding

    @property
    def clean(self) -> bool:
        return not (self.mismatches or self.wrongly_accepted or self.crashes or self.hangs)

    def line(self) -> str:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())) or "none"
        rate = self.generated / max(self.seconds, 1e-9)
        return (f"fuzz_gen: {self.generated} programs in {self.seconds:.0f} s ({rate:.0f}/s): "
                f"{self.accepted} accepted and agreeing ({self.planned} with a run plan), refused "
                f"{sum(self.refused.values())} ({refused}; edge probes and shapes {self.probes_refused}, meant valid "
                f"{self.refused_valid}), {self.checks} differential checks, mismatches {self.mismatches}, "
                f"wrongly accepted {self.wrongly_accepted}, crashes {self.crashes}, hangs {self.hangs}")


def _keep(seed: int, kind: str, detail: str, out_dir: Path) -> str:
    """The finding's program and inputs under build/fuzz/gen/findings/, and how to replay it."""
    gen = generate(seed)
    folder = out_dir / "findings"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-seed{seed}.lnnb"
    path.write_bytes(gen.data)
    np.savez(path.with_suffix(".inputs.npz"), *[x for run in gen.runs for x in run])
    (path.with_suffix(".txt")).write_text(f"{kind}: {detail}\nbatch {gen.batch}\nreplay: python -m lnnedge.fuzzgen "
                                          f"--seed {seed} --count 1\n")
    return str(path)


def default_library() -> Path:
    """The checked build of the VM when one is there (operand ranges asserted at every kernel call), else the
    host release build."""
    return CHECKED_LIBRARY if CHECKED_LIBRARY.is_file() else BUILD_DIR / "vm" / "host" / "liblnnvm.so"


def run_campaign(programs: int | None = None, seconds: float | None = None, seed: int = 0,
                 library: Path | None = None, echo=print, progress_every: float = 30.0,
                 stop_at_first: bool = False, out_dir: Path = OUT_DIR) -> Stats:
    """Generates programs seed, seed+1, ... until `programs` are done or `seconds` have passed, each run in
    a worker process (python -m lnnedge.fuzzgen --worker) so that a crash of the C VM is counted and the
    campaign goes on from the next seed. Prints one progress line every `progress_every` seconds."""
    if programs is None and seconds is None:
        raise FuzzGenError("give programs or seconds")
    if (programs is not None and programs < 1) or (seconds is not None and seconds <= 0):
        raise FuzzGenError("programs and seconds must be positive")
    library = Path(library or default_library())
    if not library.is_file():
        raise FuzzGenError(f"{library} does not exist: build the VM first (make -C vm)")
    stats = Stats(str(library))
    feats: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    start = time.monotonic()
    last_echo = start
    next_seed = seed
    end_seed = seed + programs if programs is not None else None

    def done() -> bool:
        if end_seed is not None and next_seed >= end_seed:
            return True
        if seconds is not None and time.monotonic() - start >= seconds:
            return True
        return stop_at_first and bool(stats.findings)

    def finding(s: int, kind: str, detail: str, shapes: Sequence[str] = ()) -> None:
        kept = _keep(s, kind, detail, out_dir) if len(stats.findings) < KEEP_FINDINGS else ""
        stats.findings.append({"seed": s, "kind": kind, "detail": detail, "file": kept,
                               "shapes": [f for f in shapes if not f.startswith("op:")]})
        if stats.first_finding_after is None:
            stats.first_finding_after = {"programs": stats.generated, "seconds": round(time.monotonic() - start, 2)}
        if kept:
            echo(f"  finding: seed {s}: {kind}: {detail}")

    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    while not done():
        count = (end_seed - next_seed) if end_seed is not None else 1 << 30
        proc = subprocess.Popen([sys.executable, "-m", "lnnedge.fuzzgen", "--worker", "--seed", str(next_seed),
                                 "--count", str(count), "--lib", str(library)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, bufsize=1)
        assert proc.stdout is not None
        try:
            while not done():
                ready, _, _ = select.select([proc.stdout], [], [], PROGRAM_TIMEOUT)
                if not ready:  # no result in time: hung
                    proc.kill()
                    stats.generated += 1
                    stats.hangs += 1
                    finding(next_seed, "hang", f"no result in {PROGRAM_TIMEOUT:.0f} s")
                    next_seed += 1
                    break
                line = proc.stdout.readline()
                if not line:  # the worker died on this seed
                    proc.wait()
                    err = proc.stderr.read() if proc.stderr else ""
                    stats.generated += 1
                    stats.crashes += 1
                    finding(next_seed, "crash", f"worker exit {proc.returncode}: {err.strip()[-300:]}")
                    next_seed += 1
                    break
                o = Outcome(**json.loads(line))
                next_seed = o.seed + 1
                stats.generated += 1
                stats.checks += o.checks
                feats.update(o.features)
                if o.kind == "accepted":
                    stats.accepted += 1
                    stats.planned += o.plan
                elif o.kind == "refused":
                    refused[o.status] += 1
                    if o.detail:
                        stats.refused_valid += 1
                    else:
                        stats.probes_refused += 1
                elif o.kind == "mismatch":
                    stats.mismatches += 1
                    finding(o.seed, "mismatch", o.detail, o.features)
                else:
                    stats.wrongly_accepted += 1
                    finding(o.seed, "wrongly_accepted", o.detail, o.features)
                now = time.monotonic()
                if now - last_echo >= progress_every:
                    last_echo = now
                    stats.seconds = now - start
                    stats.refused = dict(sorted(refused.items()))
                    echo(stats.line())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
    stats.seconds = round(time.monotonic() - start, 1)
    stats.features = dict(sorted(feats.items()))
    stats.refused = dict(sorted(refused.items()))
    return stats


def _worker(seed: int, count: int, library: Path) -> None:
    """One JSON line per program, in seed order (the parent takes a missing line for a crash)."""
    for s in range(seed, seed + count):
        gen = generate(s)
        try:
            outcome = check(gen, library)
        except Exception as e:  # the reference VM or the binding failing on a program is a finding too
            outcome = Outcome(s, "mismatch", detail=f"{type(e).__name__}: {e}", features=sorted(gen.features))
        sys.stdout.write(json.dumps(asdict(outcome)) + "\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="generate valid .lnnb programs and compare the C VM's run plan, "
                                             "its interpreter and the reference VM on them")
    ap.add_argument("--seconds", type=float, help="run for this long")
    ap.add_argument("--count", type=int, help="run this many programs")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--lib", type=Path, help="liblnnvm.so to test (default: the checked build, else the host build)")
    ap.add_argument("--stop-at-first", action="store_true", help="stop at the first finding")
    ap.add_argument("--json", type=Path, help="also write the statistics here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.seed, args.count, args.lib)
        return 0
    if args.seconds is None and args.count is None:
        args.seconds = 60
    try:
        stats = run_campaign(args.count, args.seconds, args.seed, args.lib, stop_at_first=args.stop_at_first)
    except FuzzGenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(stats.line())
    if stats.first_finding_after:
        print(f"first finding after {stats.first_finding_after['programs']} programs, "
              f"{stats.first_finding_after['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(asdict(stats), indent=1) + "\n")
    return 0 if stats.clean else 1


if __name__ == "__main__":
    sys.exit(main())
