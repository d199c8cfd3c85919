#!/usr/bin/env python3
"""make_sample.py - sample .lnnb models for the C VM, and a check of lnnvm.

Standard library only. Writes into OUTDIR:
  sample.lnnb        2-layer MLP y = W2 tanh(W1 x + b1) + b2 on x [B,3], a
                     3-step LOOP h += dt_i * x with a strided per-step CONST,
                     and CONCAT(y, h) -> output0 [B,5]
  ops.lnnb           every opcode and every broadcast path of the kernels,
                     batched and unbatched tensors, nested loops
  q8.lnnb            the int8-weight products (LINEAR_Q8, MATMUL_NTQ8,
                     LINEAR_TQ8 split, MATMUL_TQ8, a loop-strided int8
                     table, an unbatched input) and a bundled test set
  *.in*.f32          inputs (N rows), *.expected*.f32 expected outputs, from
                     a plain-Python reference interpreter of the file
  bad_*.lnnb         broken variants, each with the status it must produce
                     (listed in broken.json with the expected byte offset)

With --lnnvm PATH it also runs the checks: verify / info / disasm / run
against the expected outputs at several batch sizes, every broken file,
runner usage errors, and (with --fuzz N) N random mutations of the valid
models: every mutant must either be rejected with a status or run cleanly
at --batch 3 (or be refused there with E_ARENA_LIMIT: three rows of its
arena pass the runner's limit).
Point --lnnvm at the sanitizer build to catch memory errors; any sanitizer
report fails the check. With --lib PATH (liblnnvm.so) it checks the C API
through ctypes. Prints 'N passed, M failed' and exits non-zero on failure.

  python3 vm/tests/make_sample.py /tmp/lnn --lnnvm /tmp/vmbuild/lnnvm \\
      --lib /tmp/vmbuild/liblnnvm.so --fuzz 300
"""
import argparse
import ctypes
import itertools
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join(HERE, "..", "include")


# ---- the two .def tables ---------------------------------------------------

def parse_defs():
    ops, fmts = {}, {}
    with open(os.path.join(INCLUDE, "lnn_opcodes.def")) as f:
        for line in f:
            m = re.match(r"\s*OP\(\s*(\w+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(\w+)\s*,"
                         r"\s*(\d+)\s*,\s*(\d+)\s*,", line)
            if m:
                ops[m.group(1)] = int(m.group(2), 0)
                fmts[m.group(1)] = (m.group(3), int(m.group(4)), int(m.group(5)))
    status = {}
    with open(os.path.join(INCLUDE, "lnn_status.def")) as f:
        for line in f:
            m = re.match(r'\s*ST\(\s*(\w+)\s*,\s*(\d+)\s*,\s*"([^"]*)"', line)
            if m:
                status[m.group(1)] = (int(m.group(2)), m.group(3))
    return ops, fmts, status


def parse_version() -> tuple[int, ...]:
    """(major, minor) of the format this VM reads: LNN_VERSION_MAJOR and
    LNN_VERSION_MINOR of lnn_format.h, the one place they are defined."""
    with open(os.path.join(INCLUDE, "lnn_format.h")) as f:
        text = f.read()
    return tuple(int(re.search(rf"#define\s+LNN_VERSION_{part}\s+(\d+)", text).group(1))
                 for part in ("MAJOR", "MINOR"))


OPS, FMTS, STATUS = parse_defs()
VERSION_MAJOR, VERSION_MINOR = parse_version()
OPNAME = {v: k for k, v in OPS.items()}
ISAS = ("scalar", "neon", "sse3", "avx2", "avx512")
EXPECT_ISA = None     # --isa: the kernel set lnn_init must pick
FORCE_KERNELS = None  # --kernels: the set the runner is forced to

SEC_TENSORS, SEC_CONSTS, SEC_CODE, SEC_NAMES, SEC_META, SEC_TESTS = 1, 2, 3, 4, 5, 6
REG_CONST, REG_ARENA, REG_INPUT, REG_OUTPUT = 0, 1, 2, 3
TF_BATCH = 1
DT_F32 = 1
DT_U32 = 2
DT_I8 = 3


def ew_program(n, regs, *insns):
    """An element-wise program (lnn_format.h): (op name, d, a, b) instructions."""
    return [n | len(insns) << 8 | regs << 16] + [OPS[op] | d << 8 | a << 16 | b << 24
                                                for op, d, a, b in insns]


def f32(x):
    """Round a Python float to float32 (inf on overflow, like C)."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def align(v, a):
    return (v + a - 1) // a * a


# ---- building files --------------------------------------------------------

class Builder:
    """Builds an .lnnb; every field can be overridden to craft broken files.
    Dims of a batched tensor start with 'B' (stored as 1 with the BATCH flag)."""

    def __init__(self):
        self.tensors = []
        self.consts = bytearray()
        self.code = []
        self.arena_fixed = 0
        self.arena_row = 0
        self.n_in = 0
        self.n_out = 0
        self.layout = {}

    def tensor(self, region, dims, offset, stride=0, dtype=DT_F32, flags=None,
               rank=None, reserved=0):
        batched = len(dims) > 0 and dims[0] == "B"
        d = [1 if x == "B" else x for x in dims]
        self.tensors.append(dict(
            dtype=dtype, rank=len(d) if rank is None else rank, region=region,
            flags=(TF_BATCH if batched else 0) if flags is None else flags,
            dims=d + [0] * (4 - len(d)), offset=offset, stride=stride,
            reserved=reserved))
        return len(self.tensors) - 1

    @staticmethod
    def count(dims):
        n = 1
        for x in dims:
            n *= 1 if x == "B" else x
        return n

    def const(self, dims, values):
        values = list(values)
        assert len(values) == self.count(dims), (dims, len(values))
        off = align(len(self.consts), 16)
        self.consts += b"\0" * (off - len(self.consts))
        self.consts += struct.pack(f"<{len(values)}f", *values)
        return self.tensor(REG_CONST, list(dims), off)

    def words(self, values):
        """A u32 CONST tensor (an element-wise program)."""
        off = align(len(self.consts), 16)
        self.consts += b"\0" * (off - len(self.consts))
        self.consts += struct.pack(f"<{len(values)}I", *values)
        return self.tensor(REG_CONST, [len(values)], off, dtype=DT_U32)

    def const_i8(self, dims, values, steps=1):
        """An int8 CONST tensor (a _Q8 weight); steps > 1: a loop-strided table of
        steps tensors (values holds them all), each starting 4-aligned."""
        n = self.count(dims)
        assert len(values) == n * steps
        stride = align(n, 4) if steps > 1 else 0
        off = align(len(self.consts), 16)
        self.consts += b"\0" * (off - len(self.consts))
        for k in range(steps):
            self.consts += struct.pack(f"<{n}b", *values[k * n:(k + 1) * n])
            self.consts += b"\0" * (-len(self.consts) % 4)
        return self.tensor(REG_CONST, list(dims), off, stride=stride, dtype=DT_I8)

    def table(self, dims, steps):
        """A loop-strided CONST: steps[i] is the tensor at iteration i."""
        n = self.count(dims)
        off = align(len(self.consts), 16)
        self.consts += b"\0" * (off - len(self.consts))
        for s in steps:
            assert len(s) == n
            self.consts += struct.pack(f"<{n}f", *s)
        return self.tensor(REG_CONST, list(dims), off, stride=4 * n)

    def arena(self, dims, at=None):
        nbytes = 4 * self.count(dims)
        batched = len(dims) > 0 and dims[0] == "B"
        if batched:
            off = self.arena_row if at is None else at
            self.arena_row = max(self.arena_row, align(off + nbytes, 16))
        else:
            off = self.arena_fixed if at is None else at
            self.arena_fixed = max(self.arena_fixed, align(off + nbytes, 16))
        return self.tensor(REG_ARENA, list(dims), off)

    def input(self, dims):
        self.n_in += 1
        return self.tensor(REG_INPUT, list(dims), self.n_in - 1)

    def output(self, dims):
        self.n_out += 1
        return self.tensor(REG_OUTPUT, list(dims), self.n_out - 1)

    def op(self, name, b=0, a=0):
        self.code.append(OPS[name] | (a << 8) | (b << 16))
        return len(self.code) - 1

    def push(self, *tensors):
        """PUSH each tensor in turn (the operands of the next op, first to last)."""
        for t in tensors:
            self.op("PUSH", t)

    def word(self, w):
        self.code.append(w)
        return len(self.code) - 1

    def build(self, sections=None, extra=(), header=None, fix_crc=True):
        tens = b"".join(
            struct.pack("<BBBB4IIII", t["dtype"], t["rank"], t["region"], t["flags"],
                        *t["dims"], t["offset"], t["stride"], t["reserved"])
            for t in self.tensors)
        code = struct.pack(f"<{len(self.code)}I", *self.code)
        secs = [(SEC_TENSORS, tens), (SEC_CONSTS, bytes(self.consts)),
                (SEC_CODE, code)] + list(extra)
        if sections is not None:
            secs = sections(secs)
        nsec = len(secs)
        pos = 64 + 16 * nsec
        body = bytearray()
        table = b""
        for kind, data in secs:
            a = 64 if kind == SEC_CONSTS else 4
            start = align(pos + len(body), a)
            body += b"\0" * (start - pos - len(body))
            self.layout[kind] = start
            table += struct.pack("<IIII", kind, start, len(data), 0)
            body += data
        h = dict(magic=b"LNNB", major=VERSION_MAJOR, minor=0, size=pos + len(body), crc=0,
                 nsec=nsec, ntens=len(self.tensors), fixed=self.arena_fixed,
                 row=self.arena_row, nin=self.n_in, nout=self.n_out,
                 reserved=b"\0" * 28)
        h.update(header or {})
        hdr = struct.pack("<4sHHIIIIIIHH28s", h["magic"], h["major"], h["minor"],
                          h["size"], h["crc"], h["nsec"], h["ntens"], h["fixed"],
                          h["row"], h["nin"], h["nout"], h["reserved"])
        data = bytearray(hdr + table + bytes(body))
        if fix_crc:
            fix(data)
        return bytes(data)

    def code_off(self, pc):
        return self.layout[SEC_CODE] + 4 * pc

    def tensor_off(self, t, field=0):
        return self.layout[SEC_TENSORS] + 32 * t + field


def fix(data):
    """Recompute the CRC of a bytearray in place."""
    struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    return data


# ---- reference interpreter (one batch row at a time) -----------------------

class RefModel:
    def __init__(self, data):
        (_, _, _, self.size, _, nsec, ntens, self.fixed, self.row, self.nin,
         self.nout, _) = struct.unpack_from("<4sHHIIIIIIHH28s", data, 0)
        secs = {}
        for i in range(nsec):
            kind, off, size, _ = struct.unpack_from("<IIII", data, 64 + 16 * i)
            secs[kind] = data[off:off + size]
        self.tensors = []
        for t in range(ntens):
            dt, rank, reg, flags, *rest = struct.unpack_from("<BBBB4IIII", secs[SEC_TENSORS], 32 * t)
            self.tensors.append(dict(dtype=dt, rank=rank, region=reg, batched=bool(flags & 1),
                                     dims=list(rest[:rank]), offset=rest[4], stride=rest[5]))
        c = secs[SEC_CONSTS]
        c = c + b"\0" * (-len(c) % 4)
        self.raw = c  # int8 weights are read from the bytes
        self.consts = list(struct.unpack(f"<{len(c) // 4}f", c))
        self.words = list(struct.unpack(f"<{len(c) // 4}I", c))
        self.code = list(struct.unpack(f"<{len(secs[SEC_CODE]) // 4}I", secs[SEC_CODE]))

    def io(self, region, i):
        for T in self.tensors:
            if T["region"] == region and T["offset"] == i:
                return T
        raise KeyError(i)

    @staticmethod
    def n(T):
        return math.prod(T["dims"])

    def run_row(self, inputs):
        """inputs: flat float lists (one row of each batched input)."""
        mem = {"const": self.consts, "fixed": [0.0] * (self.fixed // 4 + 1),
               "row": [0.0] * (self.row // 4 + 1)}
        for i in range(self.nin):
            mem[("in", i)] = list(inputs[i])
        for i in range(self.nout):
            mem[("out", i)] = [0.0] * self.n(self.io(REG_OUTPUT, i))

        def loc(t, step=0):
            T = self.tensors[t]
            if T["region"] == REG_CONST:
                return "const", (T["offset"] + T["stride"] * step) // 4
            if T["region"] == REG_ARENA:
                return ("row" if T["batched"] else "fixed"), T["offset"] // 4
            return ("in" if T["region"] == REG_INPUT else "out", T["offset"]), 0

        def read(slot):
            space, base, t = slot
            if self.tensors[t]["dtype"] == DT_I8:  # base: in 4-byte units
                n = self.n(self.tensors[t])
                return list(struct.unpack_from(f"<{n}b", self.raw, 4 * base))
            return mem[space][base:base + self.n(self.tensors[t])]

        def write(t, vals, push=True):
            space, base = loc(t)
            assert len(vals) == self.n(self.tensors[t])
            mem[space][base:base + len(vals)] = vals
            if push:
                stack.append((space, base, t))

        def write_columns(first, n, rows):
            """The columns of `rows` in order over the n destinations first, first+1, ... (DSTN ops)."""
            col = 0
            for t in range(first, first + n):
                m_t = self.tensors[t]["dims"][-1]
                write(t, [v for row in rows for v in row[col:col + m_t]], push=t == first)
                col += m_t

        stack, loops, pc = [], [], 0
        while pc < len(self.code):
            w = self.code[pc]
            pc += 1
            op, a, b = OPNAME[w & 0xFF], (w >> 8) & 0xFF, w >> 16
            _, pops, _ = FMTS[op]
            if op == "PUSH":
                space, base = loc(b, loops[-1][2] if loops else 0)
                stack.append((space, base, b))
                continue
            if op == "DROP":
                stack.pop()
                continue
            if op == "LOOP":
                loops.append([pc, b, 0])
                continue
            if op == "END":
                loops[-1][2] += 1
                if loops[-1][2] < loops[-1][1]:
                    pc = loops[-1][0]
                else:
                    loops.pop()
                continue
            args = stack[len(stack) - pops:]
            del stack[len(stack) - pops:]
            vals = [read(s) for s in args]
            shapes = [self.tensors[s[2]]["dims"] for s in args]
            D = self.tensors[b]
            if op == "ZERO":
                out = [0.0] * self.n(D)
            elif op == "COPY":
                out = list(vals[0])
            elif op in ("LINEAR", "MATMUL_NT"):
                x, w_ = vals[0], vals[1]
                M, K = shapes[1]
                out = []
                for r in range(len(x) // K):
                    for j in range(M):
                        acc = 0.0
                        for i in range(K):
                            acc = f32(acc + f32(x[r * K + i] * w_[j * K + i]))
                        if op == "LINEAR":
                            acc = f32(acc + vals[2][j])
                        out.append(acc)
            elif op in ("ADD", "SUB", "MUL", "DIV"):
                fn = {"ADD": lambda u, v: u + v, "SUB": lambda u, v: u - v,
                      "MUL": lambda u, v: u * v, "DIV": fdiv}[op]
                out = broadcast(vals[0], shapes[0], vals[1], shapes[1], D["dims"], fn)
            elif op in ("NEG", "EXP", "SIGMOID", "TANH", "RELU"):
                fn = {"NEG": lambda v: -v, "EXP": fexp,
                      "SIGMOID": lambda v: fdiv(1.0, f32(1.0 + f32(fexp(-v)))),
                      "TANH": math.tanh, "RELU": lambda v: 0.0 if v < 0 else v}[op]
                out = [f32(fn(v)) for v in vals[0]]
            elif op == "CONCAT":
                outer = math.prod(D["dims"][:a])
                na, nb = len(vals[0]) // outer, len(vals[1]) // outer
                out = []
                for o in range(outer):
                    out += vals[0][o * na:(o + 1) * na] + vals[1][o * nb:(o + 1) * nb]
            elif op in ("LINEAR_T", "MATMUL_T"):
                # the weight transposed, Wt (K, M); columns split over A destinations b, b+1, ...
                x, w_ = vals[0], vals[1]
                K, M = shapes[1]
                rows = []
                for r in range(len(x) // K):
                    row = []
                    for j in range(M):
                        acc = 0.0
                        for i in range(K):
                            acc = f32(acc + f32(x[r * K + i] * w_[i * M + j]))
                        if op == "LINEAR_T":
                            acc = f32(acc + vals[2][j])
                        row.append(acc)
                    rows.append(row)
                write_columns(b, a, rows)
                continue
            elif op == "SPLIT":
                # a's last axis cut in order into A destinations b, b+1, ...
                n = shapes[0][-1]
                write_columns(b, a, [vals[0][r * n:(r + 1) * n] for r in range(len(vals[0]) // n)])
                continue
            elif op in ("LINEAR_Q8", "MATMUL_NTQ8", "LINEAR_TQ8", "MATMUL_TQ8"):
                # int8 weight Q (M, K) or Qt (K, M): the sum in float32, times the
                # column's scale once, plus the bias; the _T forms split columns
                x, q, scale = vals[0], vals[1], vals[2]
                t_form = op in ("LINEAR_TQ8", "MATMUL_TQ8")
                K, M = shapes[1] if t_form else shapes[1][::-1]
                rows = []
                for r in range(len(x) // K):
                    row = []
                    for j in range(M):
                        acc = 0.0
                        for i in range(K):
                            qv = q[i * M + j] if t_form else q[j * K + i]
                            acc = f32(acc + f32(x[r * K + i] * qv))
                        acc = f32(acc * scale[j])
                        if pops == 4:
                            acc = f32(acc + vals[3][j])
                        row.append(acc)
                    rows.append(row)
                write_columns(b, a if t_form else 1, rows)
                continue
            elif op.startswith("EWISE"):
                out = ewise(vals[:-1], [len(v) for v in vals[:-1]], args[-1], self, self.n(D))
            else:
                raise ValueError(op)
            write(b, out)
        return [mem[("out", i)] for i in range(self.nout)]

    def run(self, inputs, n):
        """inputs: whole input arrays (n rows if batched); returns outputs."""
        outs = [[] for _ in range(self.nout)]
        for r in range(n):
            row = []
            for i in range(self.nin):
                T = self.io(REG_INPUT, i)
                k = self.n(T)
                row.append(inputs[i][r * k:(r + 1) * k] if T["batched"] else inputs[i])
            res = self.run_row(row)
            for i in range(self.nout):
                if self.io(REG_OUTPUT, i)["batched"] or r == 0:
                    outs[i] += res[i]
        return outs


def ewise(vals, lens, prog_slot, ref, n_out):
    """EWISEn on one row: each operand read as the destination's shape (its element e), a row (element e
    modulo its size) or a single value; each instruction rounds like the op of the same name."""
    _, base, t = prog_slot
    words = ref.words[base:base + ref.n(ref.tensors[t])]
    n, count = words[0] & 0xFF, (words[0] >> 8) & 0xFF
    fns = {"ADD": lambda u, v: u + v, "SUB": lambda u, v: u - v, "MUL": lambda u, v: u * v, "DIV": fdiv,
           "NEG": lambda u, v: -u, "EXP": lambda u, v: fexp(u),
           "SIGMOID": lambda u, v: fdiv(1.0, f32(1.0 + f32(fexp(-u)))),
           "TANH": lambda u, v: math.tanh(u), "RELU": lambda u, v: 0.0 if u < 0 else u}

    def operand(k, value, regs):
        """Operand k of an instruction: input k, or register k - n past the n inputs."""
        return value[k] if k < n else regs[k - n]

    out = []
    for e in range(n_out):
        value = [vals[j][e % lens[j]] for j in range(n)]
        regs = {}
        r = 0.0
        for i, w in enumerate(words[1:1 + count]):
            op, d, a, b = OPNAME[w & 0xFF], (w >> 8) & 0xFF, (w >> 16) & 0xFF, w >> 24
            r = f32(fns[op](operand(a, value, regs),
                            operand(b, value, regs) if op in ("ADD", "SUB", "MUL", "DIV") else 0.0))
            if i + 1 < count:
                regs[d] = r
        out.append(r)
    return out


def fexp(v):
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def fdiv(u, v):
    if v == 0:
        if u == 0 or math.isnan(u):
            return math.nan
        return math.copysign(math.inf, u) * math.copysign(1.0, v)
    return u / v


def broadcast(a, sa, b, sb, sd, fn):
    r = len(sd)

    def strides(s):
        s = [1] * (r - len(s)) + list(s)
        st, acc = [0] * r, 1
        for i in range(r - 1, -1, -1):
            st[i] = 0 if s[i] == 1 else acc
            acc *= s[i]
        return st

    ta, tb = strides(sa), strides(sb)
    out = []
    for idx in itertools.product(*[range(d) for d in sd]):
        ia = sum(i * s for i, s in zip(idx, ta))
        ib = sum(i * s for i, s in zip(idx, tb))
        out.append(f32(fn(a[ia], b[ib])))
    return out


# ---- the sample models --------------------------------------------------------

def rnd_values(rng, n, lo=-1.0, hi=1.0):
    return [f32(rng.uniform(lo, hi)) for _ in range(n)]


def sample_model():
    """The brief's sample: MLP + strided loop + concat."""
    rng = random.Random(1)
    g = Builder()
    x = g.input(["B", 3])
    W1 = g.const([4, 3], rnd_values(rng, 12))
    b1 = g.const([4], rnd_values(rng, 4))
    W2 = g.const([2, 4], rnd_values(rng, 8))
    b2 = g.const([2], rnd_values(rng, 2))
    dt = g.table([], [[0.1], [0.2], [0.3]])
    h1 = g.arena(["B", 4])
    y = g.arena(["B", 2])
    h = g.arena(["B", 3])
    tmp = g.arena(["B", 3])
    out = g.output(["B", 5])
    for name, t in [("PUSH", x), ("PUSH", W1), ("PUSH", b1), ("LINEAR", h1),
                    ("TANH", h1), ("PUSH", W2), ("PUSH", b2), ("LINEAR", y),
                    ("ZERO", h), ("DROP", 0), ("LOOP", 3),
                    ("PUSH", h), ("PUSH", dt), ("PUSH", x), ("MUL", tmp),
                    ("ADD", h), ("DROP", 0), ("END", 0),
                    ("PUSH", h)]:
        g.op(name, t)
    g.op("CONCAT", out, a=1)
    g.op("DROP")
    g.names = dict(x=x, W1=W1, b1=b1, W2=W2, b2=b2, dt=dt, h1=h1, y=y, h=h, tmp=tmp, out=out)
    return g


def ops_model():
    """Every opcode and every kernel path; 3 inputs, 10 outputs."""
    rng = random.Random(2)
    g = Builder()
    x = g.input(["B", 3])           # batched
    c = g.input([2, 3])             # unbatched, also used as a weight
    z = g.input(["B", 2, 3])        # batched rank 3
    r3 = g.const([3], [-1.0, -1.5, -2.0])
    s = g.const([], [0.5])
    wcol = g.const([1, 3], rnd_values(rng, 3))
    bcol = g.const([1], [0.25])
    w43 = g.const([4, 3], rnd_values(rng, 12))
    tab = g.table([3], [rnd_values(rng, 3) for _ in range(3)])
    outs = [g.output(d) for d in (["B", 3], ["B", 3], ["B", 2], ["B", 2, 6],
                                  ["B", 3, 3], ["B", 2, 4], [2, 3], [4, 3],
                                  ["B", 3], ["B", 3], ["B", 3], ["B", 2, 2], [2, 3],
                                  ["B", 2, 1], ["B", 2, 2], [2, 3])]
    t1, t2, t3, t4 = (g.arena(["B", 3]) for _ in range(4))
    col = g.arena(["B", 1])
    zc = g.arena(["B", 2, 3])
    x13 = g.arena(["B", 1, 3])
    zx = g.arena(["B", 2, 3])
    u1 = g.arena([2, 3])
    acc = g.arena(["B", 3])
    # o0: chain through SUB (row b), DIV (scalar a), MUL (general: [B,3]*[B,1]),
    #     ADD (row a), NEG, EXP, SIGMOID, RELU
    g.push(x, r3)
    g.op("SUB", t1)                                    # t1 = x - r3      ROW_B
    g.op("DROP")
    g.push(s, t1)
    g.op("DIV", t2)                                    # t2 = s / t1      SCALAR_A
    g.push(x, wcol, bcol)
    g.op("LINEAR", col)                                # col [B,1]
    g.op("MUL", t3)                                    # t3 = t2 * col    GENERAL
    g.op("DROP")
    g.push(r3, t3)
    g.op("ADD", t4)                                    # t4 = r3 + t3     ROW_A
    g.op("NEG", t4)
    g.op("EXP", t4)
    g.op("SIGMOID", t4)
    g.op("RELU", outs[0])
    g.op("DROP")
    # o1: SAME, SCALAR_B, TANH, COPY into an output
    g.push(x, x)
    g.op("ADD", t1)
    g.push(s)
    g.op("MUL", t1)
    g.op("TANH", t1)
    g.op("COPY", outs[1])
    g.op("DROP")
    # o2: MATMUL_NT with an unbatched input as the weight
    g.push(x, c)
    g.op("MATMUL_NT", outs[2])
    g.op("DROP")
    # o3: rank 3 ROW_B (z * c), CONCAT axis 2
    g.push(z, c)
    g.op("MUL", zc)
    g.push(z)
    g.op("CONCAT", outs[3], a=2)
    g.op("DROP")
    # o4: COPY as reshape [B,3] -> [B,1,3], GENERAL rank 3, CONCAT axis 1
    g.push(x)
    g.op("COPY", x13)
    g.push(z, x13)
    g.op("ADD", zx)                                    # [B,1,3] + [B,2,3]
    g.op("CONCAT", outs[4], a=1)
    g.op("DROP")
    # o5: LINEAR on rank 3 x
    g.push(z, w43, g.const([4], [0.1, 0.2, 0.3, 0.4]))
    g.op("LINEAR", outs[5])
    g.op("DROP")
    # o6, o7: unbatched path, CONCAT axis 0 on unbatched
    g.push(c)
    g.op("TANH", u1)
    g.push(s)
    g.op("ADD", outs[6])
    g.push(u1)
    g.op("CONCAT", outs[7], a=0)
    g.op("DROP")
    # o8: nested loops, strided table in the inner loop: acc = 2*sum_i tab_i*x
    g.op("ZERO", acc)
    g.op("DROP")
    g.op("LOOP", 2)
    g.op("LOOP", 3)
    g.push(acc, tab, x)
    g.op("MUL", t1)
    g.op("ADD", acc)
    g.op("DROP")
    g.op("END")
    g.op("END")
    g.push(acc)
    g.op("COPY", outs[8])
    g.op("DROP")
    # o9: SUB / DIV same shape, RELU in place on an output
    g.push(x, t4)
    g.op("SUB", outs[9])
    g.push(x)
    g.op("DIV", outs[9])
    g.op("RELU", outs[9])
    g.op("DROP")
    # o10: LINEAR_T into two destinations, EWISE3 with a row and a single value, EWISE2 in place
    wt35 = g.const([3, 5], rnd_values(rng, 15))
    b5 = g.const([5], rnd_values(rng, 5))
    da, db = g.arena(["B", 2]), g.arena(["B", 3])  # consecutive: LINEAR_T's destinations
    g.push(x, wt35, b5)
    g.op("LINEAR_T", da, a=2)
    g.op("DROP")
    prog3 = g.words(ew_program(3, 1, ("MUL", 0, 0, 2), ("SUB", 0, 3, 1), ("TANH", 0, 3, 0),
                               ("RELU", 0, 3, 0)))
    g.push(db, r3, s, prog3)
    g.op("EWISE3", outs[10])
    prog2 = g.words(ew_program(2, 2, ("EXP", 1, 0, 0), ("SIGMOID", 0, 1, 0), ("DIV", 1, 2, 3),
                               ("ADD", 0, 3, 0)))
    g.push(x, prog2)
    g.op("EWISE2", outs[10])                        # in place: o10 = exp(o10)... over o10 and x
    g.op("DROP")
    # o11: MATMUL_T on rank 3 z (one destination), EWISE1 with every unary op
    wt32 = g.const([3, 2], rnd_values(rng, 6))
    g.push(z, wt32)
    g.op("MATMUL_T", outs[11], a=1)
    prog1 = g.words(ew_program(1, 2, ("NEG", 0, 0, 0), ("EXP", 1, 1, 0), ("ADD", 1, 2, 0),
                               ("SIGMOID", 0, 2, 0), ("TANH", 0, 2, 0), ("RELU", 0, 2, 0)))
    g.push(prog1)
    g.op("EWISE1", outs[11])
    g.op("DROP")
    # o12: EWISE on unbatched tensors: a [2,3] input with a [3] row, written to an unbatched output
    row_div = g.words(ew_program(2, 0, ("DIV", 0, 0, 1)))
    g.push(c, r3, row_div)
    g.op("EWISE2", outs[12])
    g.op("DROP")
    # o13, o14: SPLIT of rank 3 zx into two outputs; o15: SPLIT of unbatched c into the arena,
    # the parts CONCATenated in the other order
    g.push(zx)
    g.op("SPLIT", outs[13], a=2)
    g.op("DROP")
    ua, ub = g.arena([2, 1]), g.arena([2, 2])  # consecutive: SPLIT's destinations
    g.push(c)
    g.op("SPLIT", ua, a=2)
    g.op("DROP")
    g.push(ub, ua)
    g.op("CONCAT", outs[15], a=1)
    g.op("DROP")
    return g


def q8_model():
    """The int8-weight products: K = 7 and M = 10 (tails for every vector
    width), LINEAR_TQ8 split 3 | 7, a loop over an int8 table, an unbatched
    input; 5 outputs, and a bundled test set computed by the reference."""
    rng = random.Random(3)
    K, M = 7, 10
    g = Builder()
    x = g.input(["B", K])
    c = g.input([2, K])                                   # unbatched
    qv = [rng.randrange(-128, 128) for _ in range(M * K)]
    Q = g.const_i8([M, K], qv)
    Qt = g.const_i8([K, M], [qv[j * K + i] for i in range(K) for j in range(M)])
    Qs = g.const_i8([M, K], [rng.randrange(-128, 128) for _ in range(2 * M * K)], steps=2)
    scale = g.const([M], [f32(rng.uniform(1e-3, 2e-2)) for _ in range(M)])
    bias = g.const([M], rnd_values(rng, M))
    outs = [g.output(d) for d in (["B", M], ["B", M], ["B", M], ["B", M], [2, M])]
    da, db = g.arena(["B", 3]), g.arena(["B", M - 3])  # consecutive: LINEAR_TQ8's destinations
    h, acc = g.arena(["B", M]), g.arena(["B", M])
    g.push(x, Q, scale, bias)
    g.op("LINEAR_Q8", outs[0])
    g.op("DROP")
    g.push(x, Qt, scale, bias)
    g.op("LINEAR_TQ8", da, a=2)
    g.push(db)
    g.op("CONCAT", outs[1], a=1)
    g.op("DROP")
    g.push(x, Q, scale)
    g.op("MATMUL_NTQ8", h)
    g.push(x, Qt, scale)
    g.op("MATMUL_TQ8", outs[2], a=1)
    g.op("ADD", outs[2])
    g.op("DROP")
    g.op("ZERO", acc)
    g.op("DROP")
    g.op("LOOP", 2)
    g.push(acc, x, Qs, scale)
    g.op("MATMUL_NTQ8", h)
    g.op("ADD", acc)
    g.op("DROP")
    g.op("END")
    g.push(acc)
    g.op("COPY", outs[3])
    g.op("DROP")
    g.push(c, Q, scale, bias)
    g.op("LINEAR_Q8", outs[4])
    g.op("DROP")
    g.names = dict(x=x, Q=Q, Qt=Qt, scale=scale, h=h)
    return g


def tests_section(data, count, rng, tolerance=1e-5):
    """A TESTS section for a model: count cases of random inputs and the
    reference's outputs (an unbatched input or output is a whole case)."""
    ref = RefModel(data)
    cases_in, cases_out = [], []
    for _ in range(count):
        row = inputs_for(ref, 1, rng)
        cases_in += [v for vals in row for v in vals]
        cases_out += [v for vals in ref.run_row(row) for v in vals]
    n_in, n_out = len(cases_in) // count, len(cases_out) // count
    return (struct.pack("<4sIIIf", b"LNNT", count, n_in, n_out, tolerance)
            + struct.pack(f"<{len(cases_in)}f", *cases_in)
            + struct.pack(f"<{len(cases_out)}f", *cases_out))


def q8_data(g):
    """The q8 model's file: its code and its test set."""
    return g.build(extra=[(SEC_TESTS, tests_section(g.build(), 5, random.Random(4)))])


def inputs_for(ref, n, rng, lo=1.0, hi=2.0):
    ins = []
    for i in range(ref.nin):
        T = ref.io(REG_INPUT, i)
        k = ref.n(T) * (n if T["batched"] else 1)
        ins.append(rnd_values(rng, k, lo, hi))
    return ins


def write_f32(path, vals):
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{len(vals)}f", *vals))


def read_f32(path):
    with open(path, "rb") as f:
        d = f.read()
    return list(struct.unpack(f"<{len(d) // 4}f", d))


# ---- broken variants ---------------------------------------------------------

def broken_variants():
    """(name, bytes, status name, expected offset or None)."""
    out = []
    g = sample_model()
    good = bytearray(g.build())
    N = g.names

    def patched(off, fmt, val, crc=True):
        d = bytearray(good)
        struct.pack_into(fmt, d, off, val)
        return bytes(fix(d) if crc else d)

    out.append(("bad_magic", patched(0, "<4s", b"LNNX", False), "E_MAGIC", 0))
    # a reader takes every minor version up to its own: one past it is refused
    out.append(("bad_version", patched(4, "<H", VERSION_MAJOR + 1, False), "E_VERSION", 4))
    out.append(("bad_minor", patched(6, "<H", VERSION_MINOR + 1, False), "E_VERSION", 6))
    d = bytearray(good)
    d[g.layout[SEC_CONSTS] + 5] ^= 0x40
    out.append(("bad_crc", bytes(d), "E_CRC", 12))
    out.append(("truncated", bytes(good[:-8]), "E_TRUNCATED", 8))
    out.append(("truncated_header", bytes(good[:40]), "E_TRUNCATED", 0))
    out.append(("size_mismatch", bytes(good) + b"\0\0\0\0", "E_SIZE", 8))
    out.append(("header_reserved", patched(40, "<B", 1), "E_HEADER", 40))
    out.append(("no_inputs", patched(32, "<H", 0), "E_HEADER", 32))
    out.append(("too_many_sections", patched(16, "<I", 9), "E_HEADER", 16))
    # sections
    out.append(("section_kind", patched(64 + 16 * 2, "<I", 9), "E_SECTION", 64 + 32))
    out.append(("section_dup", patched(64 + 16 * 2, "<I", SEC_TENSORS), "E_SECTION", 64 + 32))
    out.append(("section_overlap", patched(64 + 16 * 2 + 4, "<I", g.layout[SEC_TENSORS]),
                "E_SECTION", 64 + 36))
    out.append(("section_in_header", patched(64 + 4, "<I", 32), "E_SECTION", 68))
    out.append(("section_misaligned", patched(64 + 16 + 4, "<I", g.layout[SEC_CONSTS] + 4),
                "E_SECTION", 64 + 20))
    out.append(("section_past_end", patched(64 + 16 * 2 + 8, "<I", 1 << 20),
                "E_TRUNCATED", 64 + 40))
    out.append(("section_reserved", patched(64 + 12, "<I", 1), "E_SECTION", 64 + 12))
    out.append(("tensors_size", patched(64 + 8, "<I", 32 * len(g.tensors) - 32), "E_SECTION", 72))
    out.append(("code_size", patched(64 + 32 + 8, "<I", 6), "E_SECTION", 64 + 40))
    out.append(("missing_code", patched(64 + 32, "<I", SEC_META), "E_MISSING", 64))
    # tensors
    out.append(("tensor_dtype", patched(g.tensor_off(N["W1"], 0), "<B", 9), "E_TENSOR",
                g.tensor_off(N["W1"], 0)))
    # u32 (instruction data) is for constants only, and no f32 op takes it
    out.append(("tensor_u32_arena", patched(g.tensor_off(N["h1"], 0), "<B", 2), "E_TENSOR",
                g.tensor_off(N["h1"], 0)))
    out.append(("operand_dtype", patched(g.tensor_off(N["W1"], 0), "<B", 2), "E_DTYPE",
                g.code_off(3)))
    out.append(("tensor_rank", patched(g.tensor_off(N["W1"], 1), "<B", 5), "E_TENSOR",
                g.tensor_off(N["W1"], 1)))
    out.append(("tensor_region", patched(g.tensor_off(N["W1"], 2), "<B", 4), "E_TENSOR",
                g.tensor_off(N["W1"], 2)))
    out.append(("tensor_flags", patched(g.tensor_off(N["W1"], 3), "<B", 2), "E_TENSOR",
                g.tensor_off(N["W1"], 3)))
    out.append(("tensor_batched_const", patched(g.tensor_off(N["b1"], 3), "<B", 1), "E_TENSOR",
                g.tensor_off(N["b1"], 3)))
    out.append(("tensor_zero_dim", patched(g.tensor_off(N["W1"], 8), "<I", 0), "E_TENSOR",
                g.tensor_off(N["W1"], 8)))
    out.append(("tensor_dim_past_rank", patched(g.tensor_off(N["W1"], 12), "<I", 1), "E_TENSOR",
                g.tensor_off(N["W1"], 12)))
    out.append(("tensor_huge", patched(g.tensor_off(N["W1"], 4), "<I", 1 << 30), "E_TENSOR",
                g.tensor_off(N["W1"], 4)))
    out.append(("tensor_stride_arena", patched(g.tensor_off(N["h"], 24), "<I", 4), "E_TENSOR",
                g.tensor_off(N["h"], 24)))
    out.append(("tensor_reserved", patched(g.tensor_off(N["h"], 28), "<I", 1), "E_TENSOR",
                g.tensor_off(N["h"], 28)))
    out.append(("const_oob", patched(g.tensor_off(N["W2"], 20), "<I", len(g.consts)),
                "E_TENSOR_BOUNDS", g.tensor_off(N["W2"], 20)))
    out.append(("const_misaligned", patched(g.tensor_off(N["W2"], 20), "<I", 2),
                "E_TENSOR_BOUNDS", g.tensor_off(N["W2"], 20)))
    out.append(("arena_oob", patched(g.tensor_off(N["tmp"], 20), "<I", g.arena_row),
                "E_TENSOR_BOUNDS", g.tensor_off(N["tmp"], 20)))
    out.append(("io_out_of_range", patched(g.tensor_off(N["x"], 20), "<I", 1), "E_IO",
                g.tensor_off(N["x"], 20)))
    out.append(("io_missing", patched(g.tensor_off(N["x"], 2), "<B", REG_ARENA), "E_IO", 32))

    # code: built from scratch so the CRC is right
    def prog(words_fn, name, status):
        """Replaces the sample's code; '!' marks the instruction at fault."""
        b = sample_model()
        b.code = []
        pc = words_fn(b, b.names)
        data = b.build()
        out.append((name, data, status, None if pc is None else b.code_off(pc)))

    def ops(*seq):
        def f(b, n):
            err = None
            for item in seq:
                if item == "!":
                    err = len(b.code)
                    continue
                if isinstance(item, int):
                    b.word(item)
                else:
                    nm, t, *ax = item
                    b.op(nm, n[t] if isinstance(t, str) else t, a=ax[0] if ax else 0)
            return err
        return f

    LIN1 = [("PUSH", "x"), ("PUSH", "W1"), ("PUSH", "b1")]
    prog(ops("!", 0x7F), "bad_opcode", "E_OPCODE")
    prog(ops(("PUSH", "x"), "!", 0x00, ("DROP", 0)), "opcode_zero", "E_OPCODE")
    prog(ops("!", ("PUSH", 9999)), "operand_range", "E_OPERAND")
    prog(ops("!", OPS["DROP"] | 1 << 8), "operand_reserved", "E_OPERAND")
    prog(ops("!", ("LOOP", 0), ("END", 0)), "loop_zero", "E_OPERAND")
    prog(ops(("PUSH", "x"), ("PUSH", "h"), "!", ("CONCAT", "out", 2), ("DROP", 0)),
         "concat_axis", "E_OPERAND")
    prog(ops("!", ("DROP", 0)), "underflow", "E_UNDERFLOW")
    prog(ops(("PUSH", "x"), "!", ("ADD", "h")), "underflow_binary", "E_UNDERFLOW")
    prog(ops(*([("PUSH", "x")] * 16), "!", ("PUSH", "x")), "overflow", "E_OVERFLOW")
    prog(ops(*LIN1, "!", ("LINEAR", "y"), ("DROP", 0)), "shape_linear", "E_SHAPE")
    prog(ops(("PUSH", "x"), ("PUSH", "h1"), "!", ("ADD", "h"), ("DROP", 0)),
         "shape_broadcast", "E_SHAPE")
    prog(ops(("PUSH", "x"), ("PUSH", "W1"), "!", ("ADD", "h"), ("DROP", 0)),
         "shape_batch_vs_concrete", "E_SHAPE")
    prog(ops(("PUSH", "x"), "!", ("TANH", "h1"), ("DROP", 0)), "shape_unary", "E_SHAPE")
    prog(ops(("PUSH", "x"), "!", ("COPY", "y"), ("DROP", 0)), "shape_copy", "E_SHAPE")
    prog(ops(("PUSH", "h1"), ("PUSH", "y"), "!", ("CONCAT", "out", 0), ("DROP", 0)),
         "shape_concat_batch_axis", "E_SHAPE")
    prog(ops(("PUSH", "x"), ("PUSH", "h"), "!", ("CONCAT", "out", 1), ("DROP", 0)),
         "shape_concat_sum", "E_SHAPE")
    prog(ops(("PUSH", "x"), "!", ("NEG", "W1"), ("DROP", 0)), "write_const", "E_READONLY")
    prog(ops(("PUSH", "h"), "!", ("NEG", "x"), ("DROP", 0)), "write_input", "E_READONLY")
    prog(ops("!", ("ZERO", "b2"), ("DROP", 0)), "zero_const", "E_READONLY")
    prog(ops(("PUSH", "x"), ("LOOP", 3), ("DROP", 0), "!", ("END", 0)),
         "loop_depth_change", "E_LOOP")
    prog(ops(("PUSH", "x"), ("LOOP", 2), ("DROP", 0), ("PUSH", "h"), "!", ("END", 0),
             ("DROP", 0)), "loop_stack_changed", "E_LOOP")
    prog(ops("!", ("END", 0)), "end_without_loop", "E_LOOP")
    prog(ops(*([("LOOP", 2)] * 4), "!", ("LOOP", 2)), "loop_too_deep", "E_LOOP")
    prog(ops("!", ("LOOP", 3), ("LOOP", 2), ("END", 0)), "loop_unclosed", "E_LOOP")
    prog(ops("!", ("PUSH", "dt"), ("DROP", 0)), "stride_outside_loop", "E_STRIDE")
    prog(ops(("LOOP", 4), "!", ("PUSH", "dt"), ("DROP", 0), ("END", 0)),
         "stride_overrun", "E_STRIDE")
    prog(ops(("PUSH", "x"), "!", ("PUSH", "x")), "stack_not_empty", "E_STACK_END")

    # aliasing: element-wise partial overlap; LINEAR into its own input
    b = sample_model()
    n = b.names
    part = b.arena(["B", 3], at=b.tensors[n["h"]]["offset"] + 4)  # overlaps h
    b.code = []
    b.push(n["x"])
    b.op("COPY", n["h"])
    b.push(n["x"])
    pc = b.op("ADD", part)
    b.op("DROP")
    out.append(("alias_partial", b.build(), "E_ALIAS", b.code_off(pc)))
    b = sample_model()
    n = b.names
    over = b.arena(["B", 4], at=b.tensors[n["h"]]["offset"])  # starts where h does
    b.code = []
    b.push(n["h"], n["W1"], n["b1"])
    pc = b.op("LINEAR", over)
    b.op("DROP")
    out.append(("alias_linear", b.build(), "E_ALIAS", b.code_off(pc)))
    # a loop body that swaps the tensor under the stack top at the same depth:
    # with a depth-only rule, iteration 2 hands LINEAR x = big [4] and it
    # writes 16 floats into a 4-float tensor (heap overflow)
    b = Builder()
    x, o = b.input(["B", 1]), b.output(["B", 1])
    W, bias = b.const([4, 1], [1, 2, 3, 4]), b.const([4], [0, 0, 0, 0])
    s1, big = b.arena([1]), b.arena([4])
    b.push(x)
    b.op("COPY", o)
    b.op("DROP")
    b.op("ZERO", s1)
    b.op("LOOP", 3)
    b.push(W, bias)
    b.op("LINEAR", big)
    pc = b.op("END")
    b.op("DROP")
    out.append(("loop_stack_swap", b.build(), "E_LOOP", b.code_off(pc)))
    b = sample_model()
    y5 = b.tensor(REG_OUTPUT, ["B", 2], 0)  # a second tensor for output 0
    out.append(("io_duplicate", b.build(), "E_IO", b.tensor_off(y5, 20)))
    out += q8_broken_variants()
    return out


def q8_broken_variants():
    """The int8 weights and the test set of q8.lnnb, broken one rule at a time."""
    g = q8_model()
    good = bytearray(q8_data(g))
    N, ts = g.names, g.layout[SEC_TESTS]
    first_q8 = 4  # pc of the first LINEAR_Q8

    def patched(off, fmt, *vals):
        d = bytearray(good)
        struct.pack_into(fmt, d, off, *vals)
        return bytes(fix(d))

    i8_end = (len(g.consts) - 70 + 4) // 4 * 4  # Qt's 70 bytes run past the constants
    return [
        ("q8_i8_in_arena", patched(g.tensor_off(N["h"], 0), "<B", DT_I8), "E_TENSOR",
         g.tensor_off(N["h"], 0)),
        ("q8_i8_past_consts", patched(g.tensor_off(N["Qt"], 20), "<I", i8_end), "E_TENSOR_BOUNDS",
         g.tensor_off(N["Qt"], 20)),
        ("q8_scale_i8", patched(g.tensor_off(N["scale"], 0), "<B", DT_I8), "E_DTYPE",
         g.code_off(first_q8)),
        ("q8_scale_length", patched(g.tensor_off(N["scale"], 4), "<I", 9), "E_SHAPE",
         g.code_off(first_q8)),
        ("q8_q_rank_1", patched(g.tensor_off(N["Q"], 1), "<BBBII", 1, REG_CONST, 0, 70, 0), "E_SHAPE",
         g.code_off(first_q8)),
        ("tests_magic", patched(ts, "<4s", b"LNNX"), "E_TESTS", ts),
        ("tests_count_zero", patched(ts + 4, "<I", 0), "E_TESTS", ts + 4),
        ("tests_in_floats", patched(ts + 8, "<I", 8), "E_TESTS", ts + 8),
        ("tests_count_wrong", patched(ts + 4, "<I", 4), "E_TESTS", 64 + 16 * 3 + 8),  # its size
    ]


# ---- random programs -------------------------------------------------------------

SHAPES_B = [["B", 1], ["B", 3], ["B", 4], ["B", 2], ["B", 2, 3], ["B", 1, 3],
            ["B", 3, 1], ["B", 2, 1, 3]]
SHAPES_U = [[], [1], [3], [4], [2], [2, 3], [1, 3], [3, 1], [4, 3], [3, 4], [2, 4],
            [1, 1, 3]]


def shape_bcast(sa, sb):
    r = max(len(sa), len(sb))
    a = [1] * (r - len(sa)) + list(sa)
    b = [1] * (r - len(sb)) + list(sb)
    out = []
    for x, y in zip(a, b):
        if x == y:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            return None
    if "B" in out[1:]:
        return None
    return out


class ProgGen:
    """A random program over a random tensor pool. diff=True keeps it
    comparable with the per-row reference: batched arena tensors are disjoint
    or identical, and nothing is read before it is written. diff=False adds
    overlaps, uninitialised reads and deliberate mistakes."""

    def __init__(self, rng, diff):
        self.rng, self.diff = rng, diff
        g = self.g = Builder()
        r = rng
        self.shape = {}
        self.readable = []      # consts and inputs
        self.writable = []      # arena and outputs
        self.tables = []
        for _ in range(r.randint(1, 3)):
            sh = r.choice(SHAPES_B + SHAPES_U[:6])
            self._add(g.input(sh), sh, self.readable)
        for _ in range(r.randint(1, 3)):
            sh = r.choice(SHAPES_B + SHAPES_U)
            self._add(g.output(sh), sh, self.writable)
        for sh in r.sample(SHAPES_U, 8):
            self._add(g.const(sh, rnd_values(r, Builder.count(sh))), sh, self.readable)
        for k in (1, 2, 3, 4):
            for mm in r.sample([1, 2, 3, 4], 2):
                self._add(g.const([mm, k], rnd_values(r, mm * k)), [mm, k], self.readable)
                self._add(g.const([mm], rnd_values(r, mm)), [mm], self.readable)
        for sh in ([], [3], [1, 3]):
            t = g.table(sh, [rnd_values(r, Builder.count(sh)) for _ in range(4)])
            self.shape[t] = sh
            self.tables.append(t)
        for sh in r.sample(SHAPES_B, 6) + r.sample(SHAPES_U, 6):
            for _ in range(2):
                self._add(g.arena(sh), sh, self.writable)
        # identical-range twins (reshape views) and, in chaos mode, overlaps
        for t in list(self.writable):
            T = g.tensors[t]
            if T["region"] != REG_ARENA or r.random() < 0.6:
                continue
            sh = self.shape[t]
            n = Builder.count(sh)
            twins = [s2 for s2 in SHAPES_B + SHAPES_U
                     if Builder.count(s2) == n and (s2[:1] == ["B"]) == (sh[:1] == ["B"])]
            s2 = r.choice(twins)
            off = T["offset"]
            if not diff or sh[:1] != ["B"]:  # partial overlaps
                off = max(off + 4 * r.choice([0, 0, 1, 2, -1]), 0)
            self._add(g.arena(s2, at=off), s2, self.writable)
        self.written = {}       # space -> set of 4-byte slots (row units if batched)

    def _add(self, t, sh, pool):
        self.shape[t] = sh
        pool.append(t)

    def _range(self, t):
        T = self.g.tensors[t]
        n = Builder.count(self.shape[t])
        if T["region"] == REG_ARENA:
            space = "row" if self.shape[t][:1] == ["B"] else "fixed"
            return space, range(T["offset"] // 4, T["offset"] // 4 + n)
        if T["region"] == REG_OUTPUT:
            return ("out", T["offset"]), range(n)
        return None, range(0)

    def is_init(self, t):
        if self.g.tensors[t]["region"] in (REG_CONST, REG_INPUT):
            return True
        space, rg = self._range(t)
        w = self.written.get(space, set())
        return all(i in w for i in rg)

    def mark(self, t):
        space, rg = self._range(t)
        self.written.setdefault(space, set()).update(rg)

    def sources(self):
        if not self.diff:
            return self.readable + self.writable
        return self.readable + [t for t in self.writable if self.is_init(t)]

    def dst_for(self, shape, batched_only=None):
        c = [t for t in self.writable if self.shape[t] == shape]
        if not self.diff and self.rng.random() < 0.03:
            c = self.writable
        return self.rng.choice(c) if c else None

    def generate(self):
        r, g = self.rng, self.g
        stack, loops = [], []
        for _ in range(r.randint(3, 40)):
            x = r.random()
            if x < 0.08 and len(loops) < 4:
                if self.diff:  # in chaos mode a table left on the stack is one more mistake
                    self._drop_strided(stack)
                g.op("LOOP", r.randint(1, 4) if self.diff else r.randint(1, 5))
                loops.append(list(stack))
                continue
            if x < 0.14 and loops:
                self._settle(stack, loops.pop())
                g.op("END")
                continue
            if x < 0.2 and stack:
                stack.pop()
                g.op("DROP")
                continue
            if len(stack) > 12:
                stack.pop()
                g.op("DROP")
                continue
            self._compute(stack, loops)
            if not self.diff and r.random() < 0.005:
                g.word(r.randrange(1 << 32))
        while loops:
            self._settle(stack, loops.pop())
            g.op("END")
        while stack:
            stack.pop()
            g.op("DROP")

    def _drop_strided(self, stack):
        """Before LOOP: DROP down to below the deepest table. The verifier
        refuses a loop-strided operand on the stack at a LOOP (E_STRIDE,
        VERIFIER.md row 51a), so a table is read in the iteration it was
        pushed in; _settle then never pushes one back before an END."""
        while any(t in self.tables for t in stack):
            stack.pop()
            self.g.op("DROP")

    def _settle(self, stack, snap):
        """Before END: restore the stack the LOOP saw (same tensors)."""
        if not self.diff and self.rng.random() < 0.03:
            snap = snap[:-1] + [self.rng.choice(self.sources())] if snap else snap
        keep = 0
        while keep < min(len(stack), len(snap)) and stack[keep] == snap[keep]:
            keep += 1
        while len(stack) > keep:
            stack.pop()
            self.g.op("DROP")
        for t in snap[keep:]:
            self._push(stack, t)

    def _push(self, stack, t):
        self.g.op("PUSH", t)
        stack.append(t)

    def _operand(self, stack, want=None, loops=()):
        """Use the top of the stack or push a source matching want(shape)."""
        src = self.sources()
        if loops:
            src = src + self.tables
        c = [t for t in src if want is None or want(self.shape[t])]
        if not c:
            return None
        t = self.rng.choice(c)
        self._push(stack, t)
        return t

    def _compute(self, stack, loops):
        r, g = self.rng, self.g
        op = r.choice(["ADD", "SUB", "MUL", "DIV", "NEG", "EXP", "SIGMOID", "TANH",
                       "RELU", "COPY", "ZERO", "LINEAR", "MATMUL_NT", "CONCAT", "PUSH"])
        top = stack[-1] if stack and r.random() < 0.5 else None
        if top is None and op not in ("ZERO", "PUSH"):
            top = self._operand(stack, None, loops)
            if top is None:
                return
        if op == "PUSH":
            self._operand(stack, None, loops)
            return
        if op == "ZERO":
            d = r.choice(self.writable)
            g.op("ZERO", d)
            self.mark(d)
            stack.append(d)
            return
        sa = self.shape[top]
        axis = 0
        if op in ("NEG", "EXP", "SIGMOID", "TANH", "RELU"):
            res = sa
            if op == "EXP" and self.diff:
                op = "TANH"
        elif op == "COPY":
            c = [t for t in self.writable
                 if Builder.count(self.shape[t]) == Builder.count(sa)
                 and (self.shape[t][:1] == ["B"]) == (sa[:1] == ["B"])]
            if c and (self.diff or r.random() > 0.03):
                d = r.choice(c)
            elif self.diff or r.random() > 0.03:
                d = self.g.arena(sa)
                self.shape[d] = sa
                self.writable.append(d)
            else:
                d = r.choice(self.writable)
            if self.diff and self._overlaps(d, top) and self._range(d) != self._range(top):
                d = self.g.arena(sa)
                self.shape[d] = sa
                self.writable.append(d)
            self._emit(stack, op, 1, d)
            return
        elif op in ("ADD", "SUB", "MUL", "DIV"):
            b = self._operand(stack, lambda s: shape_bcast(sa, s) is not None, loops)
            if b is None:
                return
            res = shape_bcast(sa, self.shape[b])
            if op == "DIV" and self.diff:
                op = "MUL"
        elif op in ("LINEAR", "MATMUL_NT"):
            if not sa or sa[-1] == "B":
                return
            k = sa[-1]
            w = self._operand(stack, lambda s: len(s) == 2 and s[1] == k and "B" not in s)
            if w is None:
                return
            mm = self.shape[w][0]
            if op == "LINEAR":
                if self._operand(stack, lambda s: s == [mm]) is None:
                    return
            res = list(sa[:-1]) + [mm]
        else:  # CONCAT
            if not sa:
                return
            axis = r.randrange(len(sa))
            if sa[0] == "B" and axis == 0:
                axis = len(sa) - 1
                if axis == 0:
                    return
            b = self._operand(stack, lambda s: len(s) == len(sa) and all(
                i == axis or s[i] == sa[i] for i in range(len(sa))) and (s[:1] == ["B"]) == (sa[:1] == ["B"]))
            if b is None:
                return
            res = list(sa)
            res[axis] = sa[axis] + self.shape[b][axis]
        d = self.dst_for(res)
        if d is None:  # no destination of that shape: make one
            d = self.g.arena(res)
            self.shape[d] = res
            self.writable.append(d)
        if self.diff and op in ("LINEAR", "MATMUL_NT", "CONCAT"):
            # avoid a deliberate alias rejection in diff mode
            if any(self._overlaps(d, t) for t in stack[-FMTS[op][1]:]):
                d = self.g.arena(res)
                self.shape[d] = res
                self.writable.append(d)
        if self.diff and op in ("ADD", "SUB", "MUL", "DIV", "NEG", "EXP", "SIGMOID",
                                "TANH", "RELU"):
            for t in stack[-FMTS[op][1]:]:
                if self._overlaps(d, t) and self._range(d) != self._range(t):
                    d = self.g.arena(res)
                    self.shape[d] = res
                    self.writable.append(d)
                    break
        self._emit(stack, op, FMTS[op][1], d, axis)

    def _overlaps(self, a, b):
        sa, ra = self._range(a)
        sb, rb = self._range(b)
        return sa is not None and sa == sb and ra.start < rb.stop and rb.start < ra.stop

    def _emit(self, stack, op, pops, d, axis=0):
        del stack[len(stack) - pops:]
        self.g.op(op, d, a=axis)
        self.mark(d)
        stack.append(d)


def check_progfuzz(ck, lnnvm, out, count, seed):
    rng = random.Random(seed)
    stats = {"diff-ok": 0, "diff-rejected": 0, "chaos-ok": 0, "chaos-rejected": 0}
    for k in range(count):
        diff = k % 2 == 0
        pg = ProgGen(rng, diff)
        pg.generate()
        data = pg.g.build()
        path = os.path.join(out, "prog.lnnb")
        with open(path, "wb") as f:
            f.write(data)
        ref = RefModel(data)
        # N rows come from the batched inputs; with none, lnnvm runs once
        n = 5 if any(ref.io(REG_INPUT, i)["batched"] for i in range(ref.nin)) else 1
        ins = inputs_for(ref, n, rng, -2.0, 2.0)
        cmd = [lnnvm, "run", path, "--batch", str(rng.choice([1, 2, 3, 5]))]
        for i, v in enumerate(ins):
            ip = os.path.join(out, f"prog.in{i}.f32")
            write_f32(ip, v)
            cmd += ["--in", ip]
        outs = [os.path.join(out, f"prog.out{i}.f32") for i in range(ref.nout)]
        for o in outs:
            cmd += ["--out", o]
        p = run(cmd)
        kind = "diff" if diff else "chaos"
        ok = p.returncode in (0, 3) and sanitizer_clean(p)
        stats[kind + ("-ok" if p.returncode == 0 else "-rejected")] += 1
        if diff and p.returncode == 0:
            exp = ref.run(ins, n)
            for i, o in enumerate(outs):
                if not close(read_f32(o), exp[i]):
                    ok = False
                    p.stderr += f"output {i} differs from the reference"
        if diff and p.returncode == 3:
            ok = False  # the generator meant it to be valid
        if not ck.check(ok, f"progfuzz #{k} ({kind})", p.stderr[-3000:]):
            with open(os.path.join(out, f"prog_fail_{k}.lnnb"), "wb") as f:
                f.write(data)
    print("progfuzz outcomes:", ", ".join(f"{outcome}={tally}" for outcome, tally in sorted(stats.items())))


# ---- running the checks --------------------------------------------------------

class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what} {detail}")
        return ok


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def sanitizer_clean(p):
    return "Sanitizer" not in p.stderr and "runtime error" not in p.stderr


def close(a, b):
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if u == v or (math.isnan(u) and math.isnan(v)):
            continue
        if not abs(u - v) <= 1e-6 + 2e-5 * abs(v):
            return False
    return True


def check_model(ck, lnnvm, out, name, data, n, rng):
    path = os.path.join(out, name + ".lnnb")
    ref = RefModel(data)
    ins = inputs_for(ref, n, rng)
    exp = ref.run(ins, n)
    in_paths = []
    for i, v in enumerate(ins):
        p = os.path.join(out, f"{name}.in{i}.f32")
        write_f32(p, v)
        in_paths.append(p)
    for i, v in enumerate(exp):
        write_f32(os.path.join(out, f"{name}.expected{i}.f32"), v)
    if not lnnvm:
        return
    p = run([lnnvm, "verify", path])
    ck.check(p.returncode == 0 and p.stdout.strip() == "ok" and sanitizer_clean(p),
             "verify " + name, p.stderr)
    p = run([lnnvm, "info", path])
    info_isa = re.search(r"^isa: (\w+)$", p.stdout, re.M)
    info_sets = re.search(r"^kernels: ([\w,]+)$", p.stdout, re.M)
    ck.check(p.returncode == 0 and info_isa and info_sets and sanitizer_clean(p)
             and info_isa.group(1) in ISAS and info_isa.group(1) in info_sets.group(1).split(",")
             and info_sets.group(1).split(",")[-1] == "scalar"
             and (EXPECT_ISA is None or info_isa.group(1) == EXPECT_ISA)
             and re.search(r"^target: \S+$", p.stdout, re.M),
             "info " + name, p.stdout + p.stderr)
    run_isa = FORCE_KERNELS or (info_isa.group(1) if info_isa else None)
    n_tests = int(re.search(r"^tests: (\d+)$", p.stdout, re.M).group(1))
    p = run([lnnvm, "test", path])
    if n_tests:
        ck.check(p.returncode == 0 and sanitizer_clean(p) and re.fullmatch(
            rf"tests: {n_tests} cases, max_abs_err \S+, tolerance \S+, PASSED\n", p.stdout),
            "test " + name, p.stdout + p.stderr)
    else:
        ck.check(p.returncode == 2 and sanitizer_clean(p) and "no bundled test set" in p.stderr,
                 "test without a test set " + name, p.stderr)
    p = run([lnnvm, "disasm", path])
    ck.check(p.returncode == 0 and len(p.stdout.splitlines()) == len(ref.code)
             and sanitizer_clean(p), "disasm " + name, p.stderr)
    # the run plan and the instruction interpreter (--no-plan), one thread and several (--threads)
    runs = [(b, []) for b in (1, 2, 3, n, n + 4)]
    runs += [(2, ["--no-plan"]), (1, ["--threads", "2"]), (3, ["--threads", "3", "--no-plan"])]
    for batch, extra in runs:
        outs = [os.path.join(out, f"{name}.out{i}.b{batch}.f32")
                for i in range(ref.nout)]
        cmd = [lnnvm, "run", path]
        for ip in in_paths:
            cmd += ["--in", ip]
        for op in outs:
            cmd += ["--out", op]
        cmd += ["--batch", str(batch), "--repeat", "2"] + extra
        what = f"{name} batch {batch} {' '.join(extra)}"
        p = run(cmd)
        if not ck.check(p.returncode == 0 and sanitizer_clean(p), "run " + what, p.stderr):
            continue
        js = json.loads(p.stdout)
        threads = min(int(extra[extra.index("--threads") + 1]) if "--threads" in extra else 1, n)
        per_thread = (n + threads - 1) // threads
        chunks = (per_thread + min(batch, per_thread) - 1) // min(batch, per_thread) * threads
        ck.check(js["n"] == n and js["batch"] == batch and js["chunks"] == chunks
                 and js["repeat"] == 2 and js["isa"] == run_isa and js["threads"] == threads
                 and js["plan"] in (True, False) and ("--no-plan" not in extra or js["plan"] is False)
                 and js["latency_us_min"] <= js["latency_us_median"] <= js["latency_us_max"],
                 "run json " + what, p.stdout)
        for i, op in enumerate(outs):
            got = read_f32(op)
            ck.check(close(got, exp[i]), f"output {i} of {what}",
                     f"\n got {got[:12]}\n exp {exp[i][:12]}")


def check_broken(ck, lnnvm, out, variants):
    for name, _, status, off in variants:
        path = os.path.join(out, name + ".lnnb")
        if not lnnvm:
            continue
        p = run([lnnvm, "verify", path])
        want = f"{path}: {status} at byte "
        if off is not None:
            want += f"{off}:"
        ck.check(p.returncode == 3 and want in p.stderr and sanitizer_clean(p)
                 and len(p.stderr.splitlines()) == 1,
                 f"broken {name} -> {status}", repr(p.stderr))
        p = run([lnnvm, "disasm", path])
        ck.check(p.returncode == 3 and sanitizer_clean(p), "disasm broken " + name, p.stderr)


def check_usage(ck, lnnvm, out):
    s = os.path.join(out, "sample.lnnb")
    x = os.path.join(out, "sample.in0.f32")
    o = os.path.join(out, "usage.out.f32")
    bad = os.path.join(out, "bad_input.f32")
    with open(bad, "wb") as f:
        f.write(b"\0" * 10)
    cases = [
        ([], 2, "usage"),
        (["frobnicate", s], 2, "usage"),
        (["verify", os.path.join(out, "nope.lnnb")], 2, "cannot open"),
        (["run", s, "--in", x], 2, "got 0 --out"),
        (["run", s, "--out", o], 2, "got 0 --in"),
        (["run", s, "--in", bad, "--out", o], 2, "got file size 10"),
        (["run", s, "--in", x, "--out", o, "--batch", "0"], 2, "--batch"),
        (["run", s, "--in", x, "--out", o, "--repeat", "x"], 2, "--repeat"),
        (["run", s, "--in", x, "--out", o, "--bogus"], 2, "unknown option"),
        (["run", s, "--in", os.path.join(out, "nope.f32"), "--out", o], 2, "cannot open"),
        (["run", os.path.join(out, "bad_crc.lnnb"), "--in", x, "--out", o], 3, "E_CRC"),
    ]
    for args, code, text in cases:
        p = run([lnnvm] + args)
        ck.check(p.returncode == code and text in p.stderr and sanitizer_clean(p),
                 f"usage {args[:1]}", f"rc={p.returncode} {p.stderr!r}")
    # stdin as the input
    with open(x, "rb") as f:
        p = subprocess.run([lnnvm, "run", s, "--in", "-", "--out", o], stdin=f,
                           capture_output=True, text=False)
    ck.check(p.returncode == 0, "run with --in -", p.stderr)
    ck.check(read_f32(o) == read_f32(os.path.join(out, "sample.out0.b1.f32")),
             "stdin output equals file output")
    empty = os.path.join(out, "empty.lnnb")
    open(empty, "wb").close()
    p = run([lnnvm, "verify", empty])
    ck.check(p.returncode == 3 and "E_ARG" in p.stderr, "empty model file", p.stderr)


def mutate(data, rng, regions):
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        lo, hi = rng.choice(regions)
        i = rng.randrange(lo, hi)
        r = rng.random()
        if r < 0.4:
            d[i] ^= 1 << rng.randrange(8)
        elif r < 0.7:
            d[i] = rng.choice([0, 1, 2, 3, 4, 0x7F, 0xFF, rng.randrange(256)])
        else:
            d[i] = (d[i] + rng.choice([-1, 1])) & 0xFF
    return bytes(fix(d))


def check_fuzz(ck, lnnvm, out, models, count, seed):
    rng = random.Random(seed)
    stats = {}
    for k in range(count):
        name, g, data = models[k % len(models)]
        regions = [(16, 64 + 16 * 3), (g.layout[SEC_TENSORS], g.layout[SEC_TENSORS] + 32 * len(g.tensors)),
                   (g.layout[SEC_CODE], g.layout[SEC_CODE] + 4 * len(g.code))]
        m = mutate(data, rng, regions)
        path = os.path.join(out, "fuzz.lnnb")
        with open(path, "wb") as f:
            f.write(m)
        p = run([lnnvm, "verify", path])
        st = re.search(r": (E_\w+) at byte", p.stderr)
        stats[st.group(1) if st else "ok"] = stats.get(st.group(1) if st else "ok", 0) + 1
        if not ck.check(p.returncode in (0, 3) and sanitizer_clean(p), f"fuzz verify #{k}",
                        p.stderr[-2000:]):
            with open(os.path.join(out, f"fuzz_fail_{k}.lnnb"), "wb") as f:
                f.write(m)
            continue
        if p.returncode != 0:
            continue
        # accepted: it must run cleanly at batch 3 (5 rows: a full chunk and
        # a partial one)
        ref_in = []
        info = run([lnnvm, "info", path]).stdout
        nin = int(re.search(r"^inputs: (\d+)", info, re.M).group(1))
        nout = int(re.search(r"^outputs: (\d+)", info, re.M).group(1))
        # a mutated header may make it stateful: the runner then takes the
        # rows as time steps of 3 streams and refuses a count not a multiple
        # of 3, so such a model gets 6 rows
        stateful = int(re.search(r"^state_row: (\d+)", info, re.M).group(1)) > 0
        cmd = [lnnvm, "run", path, "--batch", "3"]
        for i in range(nin):
            shape = re.search(rf"^input{i}: \[([^\]]*)\]", info, re.M).group(1)
            dims = [d for d in shape.split(",") if d]
            cnt = math.prod(int(d) for d in dims if d != "B")
            rows = (6 if stateful else 5) if dims[:1] == ["B"] else 1
            ip = os.path.join(out, f"fuzz.in{i}.f32")
            write_f32(ip, rnd_values(rng, cnt * rows, -3, 3))
            cmd += ["--in", ip]
            ref_in.append(ip)
        for i in range(nout):
            cmd += ["--out", os.path.join(out, f"fuzz.out{i}.f32")]
        p2 = run(cmd)
        # verify accepted the arena of one row; the runner refuses a --batch
        # whose arena passes its limit (usage error, exit 2), as it says
        limit = re.search(r"E_ARENA_LIMIT: the arena for 3 rows is (\d+) bytes, above the limit (\d+)",
                          p2.stderr)
        if p2.returncode == 2 and limit and int(limit.group(1)) > int(limit.group(2)):
            stats["ok-run-refused-E_ARENA_LIMIT"] = stats.get("ok-run-refused-E_ARENA_LIMIT", 0) + 1
            ck.check(sanitizer_clean(p2), f"fuzz run #{k}", p2.stderr[-2000:])
            continue
        if not ck.check(p2.returncode == 0 and sanitizer_clean(p2), f"fuzz run #{k}",
                        p2.stderr[-2000:]):
            with open(os.path.join(out, f"fuzz_fail_{k}.lnnb"), "wb") as f:
                f.write(m)
    print("fuzz outcomes:", ", ".join(f"{outcome}={tally}" for outcome, tally in sorted(stats.items())))


def check_api(ck, lib_path, out, sample, ops_data, q8):
    lib = ctypes.CDLL(lib_path)
    P, U32, SZ = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_size_t
    lib.lnn_model_size.restype = SZ
    lib.lnn_init.argtypes = [P, P, SZ, P, SZ]
    lib.lnn_arena_size.argtypes = [P, SZ, U32]
    lib.lnn_arena_size.restype = SZ
    lib.lnn_run.argtypes = [P, P, P, U32]
    for fn in ("lnn_error_offset", "lnn_max_batch", "lnn_num_inputs", "lnn_num_outputs"):
        getattr(lib, fn).argtypes = [P]
        getattr(lib, fn).restype = U32
    for fn in ("lnn_input_row_elems", "lnn_output_row_elems"):
        getattr(lib, fn).argtypes = [P, U32]
        getattr(lib, fn).restype = U32
    for fn in ("lnn_input_batched", "lnn_output_batched"):
        getattr(lib, fn).argtypes = [P, U32]
    for fn in ("lnn_status_str", "lnn_status_name"):
        getattr(lib, fn).argtypes = [ctypes.c_int]
        getattr(lib, fn).restype = ctypes.c_char_p
    lib.lnn_isa.argtypes = [P]
    lib.lnn_isa.restype = ctypes.c_char_p
    lib.lnn_version.restype = ctypes.c_char_p
    S = {k: v[0] for k, v in STATUS.items()}

    for name, (code, msg) in STATUS.items():
        ck.check(lib.lnn_status_name(code).decode() == name
                 and lib.lnn_status_str(code).decode() == msg, "status table " + name)
    ck.check(lib.lnn_status_name(999).decode() == "E_UNKNOWN", "unknown status name")
    ck.check(lib.lnn_version().decode() == "0.1.0", "version")

    def aligned(data, shift=0):
        raw = ctypes.create_string_buffer(len(data) + 128)
        base = (ctypes.addressof(raw) + 63) // 64 * 64 + shift
        ctypes.memmove(base, data, len(data))
        return raw, base

    msize = lib.lnn_model_size()
    ck.check(64 <= msize <= 4096, f"model size {msize}")
    m = ctypes.create_string_buffer(msize)
    keep, buf = aligned(sample)
    need1 = lib.lnn_arena_size(buf, len(sample), 1)
    need4 = lib.lnn_arena_size(buf, len(sample), 4)
    ck.check(need1 > 0 and need4 > need1, f"arena sizes {need1} {need4}")
    ck.check(lib.lnn_arena_size(buf, len(sample) - 1, 1) == 0, "arena size of bad header")
    ck.check(lib.lnn_arena_size(None, 0, 1) == 0, "arena size of NULL")
    arena = ctypes.create_string_buffer(need4 + 64)
    abase = (ctypes.addressof(arena) + 63) // 64 * 64
    X = ctypes.POINTER(ctypes.c_float)
    xs = (ctypes.c_float * 12)(*[0.5] * 12)
    ys = (ctypes.c_float * 20)()
    ins = (X * 1)(ctypes.cast(xs, X))
    outs = (X * 1)(ctypes.cast(ys, X))
    ck.check(lib.lnn_run(m, ins, outs, 1) == S["E_NOT_READY"], "run before init")
    ck.check(lib.lnn_init(None, buf, len(sample), abase, need4) == S["E_ARG"], "init NULL model")
    ck.check(lib.lnn_init(m, None, 0, abase, need4) == S["E_ARG"], "init NULL buffer")
    ck.check(lib.lnn_init(m, buf, len(sample), None, 16) == S["E_ARG"], "init NULL arena with length")
    keep2, mis = aligned(sample, 2)
    ck.check(lib.lnn_init(m, mis, len(sample), abase, need4) == S["E_ALIGN"], "misaligned buffer")
    ck.check(lib.lnn_init(m, buf, len(sample), abase + 2, need4) == S["E_ALIGN"], "misaligned arena")
    ck.check(lib.lnn_init(m, buf, len(sample), abase, need1 - 4) == S["E_ARENA"], "arena too small")
    ck.check(lib.lnn_run(m, ins, outs, 1) == S["E_NOT_READY"], "run after failed init")
    ck.check(lib.lnn_init(m, buf, len(sample), abase, need4) == S["OK"], "init ok")
    ck.check(lib.lnn_max_batch(m) == 4, f"max batch {lib.lnn_max_batch(m)}")
    ck.check(lib.lnn_num_inputs(m) == 1 and lib.lnn_num_outputs(m) == 1, "io counts")
    ck.check(lib.lnn_input_row_elems(m, 0) == 3 and lib.lnn_output_row_elems(m, 0) == 5
             and lib.lnn_input_row_elems(m, 1) == 0, "row elems")
    ck.check(lib.lnn_input_batched(m, 0) == 1 and lib.lnn_output_batched(m, 0) == 1,
             "batched flags")
    isa = lib.lnn_isa(m).decode()
    ck.check(isa in ISAS and (EXPECT_ISA is None or isa == EXPECT_ISA), "isa " + isa)
    ck.check(lib.lnn_run(m, ins, outs, 0) == S["E_BATCH"], "batch 0")
    ck.check(lib.lnn_run(m, ins, outs, 5) == S["E_BATCH"], "batch 5 > max")
    ck.check(lib.lnn_run(m, None, outs, 1) == S["E_ARG"], "NULL inputs")
    nulls = (X * 1)()
    ck.check(lib.lnn_run(m, nulls, outs, 1) == S["E_ARG"], "NULL input pointer")
    ck.check(lib.lnn_run(m, ins, outs, 4) == S["OK"], "run batch 4")
    ref = RefModel(sample)
    exp = ref.run([list(xs)], 4)[0]
    ck.check(close(list(ys), exp), "api run result", f"{list(ys)[:5]} vs {exp[:5]}")
    # every compiled-in kernel set, forced
    lib.lnn_kernel_set_name.argtypes = [U32]
    lib.lnn_kernel_set_name.restype = ctypes.c_char_p
    lib.lnn_use_kernels.argtypes = [P, ctypes.c_char_p]
    lib.lnn_use_kernels.restype = ctypes.c_int
    sets = []
    while lib.lnn_kernel_set_name(len(sets)) is not None and len(sets) < 8:
        sets.append(lib.lnn_kernel_set_name(len(sets)).decode())
    ck.check(sets and sets[-1] == "scalar" and isa in sets and set(sets) <= set(ISAS),
             f"kernel sets {sets}")
    for ks in sets:
        st = lib.lnn_use_kernels(m, ks.encode())
        if st == S["E_CPU"]:
            continue
        ck.check(st == S["OK"] and lib.lnn_isa(m).decode() == ks, "use kernels " + ks)
        ys2 = (ctypes.c_float * 20)()
        outs2 = (X * 1)(ctypes.cast(ys2, X))
        ck.check(lib.lnn_run(m, ins, outs2, 4) == S["OK"] and close(list(ys2), exp),
                 "api run result with " + ks, f"{list(ys2)[:5]} vs {exp[:5]}")
    ck.check(lib.lnn_use_kernels(m, b"scalar") == S["OK"], "use kernels scalar")
    ck.check(lib.lnn_use_kernels(m, b"mmx") == S["E_CPU"], "use kernels unknown")
    ck.check(lib.lnn_use_kernels(m, None) == S["E_ARG"], "use kernels NULL")
    ck.check(lib.lnn_use_kernels(None, b"scalar") == S["E_ARG"], "use kernels NULL model")
    # the trace hook: one call per compute instruction, the last one the output
    TRACE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, U32, U32, X, U32)
    calls = []

    def on_trace(ctx, pc, tensor, data, count):
        calls.append((pc, tensor, [data[i] for i in range(count)]))

    hook = TRACE(on_trace)
    lib.lnn_set_trace.argtypes = [P, TRACE, ctypes.c_void_p]
    lib.lnn_set_trace.restype = None
    lib.lnn_set_trace(m, hook, None)
    ck.check(lib.lnn_run(m, ins, outs, 4) == S["OK"], "traced run")
    computes = sum(1 for w in ref.code if OPNAME[w & 0xFF] not in ("PUSH", "DROP", "LOOP", "END"))
    ck.check(len(calls) >= computes and calls[-1][2] == list(ys)
             and all(OPNAME[ref.code[pc] & 0xFF] not in ("PUSH", "DROP", "LOOP", "END")
                     for pc, _, _ in calls), "trace calls", f"{len(calls)} calls")
    lib.lnn_set_trace(m, TRACE(), None)
    n_before = len(calls)
    ck.check(lib.lnn_run(m, ins, outs, 4) == S["OK"] and len(calls) == n_before, "trace off")
    # a model that needs no batched arena: max batch is UINT32_MAX
    g = Builder()
    x = g.input(["B", 2])
    o = g.output(["B", 2])
    g.push(x)
    g.op("NEG", o)
    g.op("DROP")
    d = g.build()
    keep3, b3 = aligned(d)
    ck.check(lib.lnn_arena_size(b3, len(d), 7) == 0, "zero arena")
    ck.check(lib.lnn_init(m, b3, len(d), None, 0) == S["OK"], "init without arena")
    ck.check(lib.lnn_max_batch(m) == 0xFFFFFFFF, "max batch without batched arena")
    # error offset through the API
    bad = bytearray(sample)
    bad[40] = 1
    fix(bad)
    keep4, b4 = aligned(bytes(bad))
    ck.check(lib.lnn_init(m, b4, len(bad), abase, need4) == S["E_HEADER"]
             and lib.lnn_error_offset(m) == 40, "error offset")
    # the bundled test set, read in place (lnn_get_tests)
    class Tests(ctypes.Structure):
        _fields_ = [("count", U32), ("in_floats", U32), ("out_floats", U32),
                    ("max_abs_err", ctypes.c_float), ("inputs", X), ("expected", X)]

    lib.lnn_get_tests.argtypes = [P, ctypes.POINTER(Tests)]
    t = Tests()
    ck.check(lib.lnn_get_tests(m, ctypes.byref(t)) == 0 and t.count == 0, "no tests: failed init")
    ck.check(lib.lnn_get_tests(None, ctypes.byref(t)) == 0 and lib.lnn_get_tests(m, None) == 0,
             "tests: NULL arguments")
    keep5, b5 = aligned(q8)
    qarena = ctypes.create_string_buffer(lib.lnn_arena_size(b5, len(q8), 1) + 64)
    qa = (ctypes.addressof(qarena) + 63) // 64 * 64
    ck.check(lib.lnn_init(m, b5, len(q8), qa, lib.lnn_arena_size(b5, len(q8), 1)) == S["OK"]
             and lib.lnn_get_tests(m, ctypes.byref(t)) == 1, "q8 tests")
    head = struct.unpack_from("<4sIIIf", q8, q8.index(b"LNNT"))
    ck.check((t.count, t.in_floats, t.out_floats, t.max_abs_err) == head[1:]
             and t.inputs[0] == struct.unpack_from("<f", q8, q8.index(b"LNNT") + 20)[0],
             "q8 tests fields", f"{head}")
    keep6, b6 = aligned(sample)
    ck.check(lib.lnn_init(m, b6, len(sample), abase, need4) == S["OK"]
             and lib.lnn_get_tests(m, ctypes.byref(t)) == 0, "sample has no tests")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--lnnvm", help="runner to check (e.g. the sanitizer build)")
    ap.add_argument("--lib", help="liblnnvm.so to check through ctypes")
    ap.add_argument("--fuzz", type=int, default=0, help="number of random mutants")
    ap.add_argument("--progfuzz", type=int, default=0,
                    help="number of random programs (half checked against the reference)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--isa", help="kernel set lnn_init must pick (default: any)")
    ap.add_argument("--kernels", help="force this kernel set in the runner (LNNVM_KERNELS)")
    args = ap.parse_args()
    global EXPECT_ISA, FORCE_KERNELS
    EXPECT_ISA = args.isa
    if args.kernels:
        FORCE_KERNELS = args.kernels
        os.environ["LNNVM_KERNELS"] = args.kernels
    out = args.outdir
    os.makedirs(out, exist_ok=True)
    ck = Checker()
    rng = random.Random(args.seed)

    gs = sample_model()
    sample = gs.build()
    go = ops_model()
    ops_data = go.build(extra=[(SEC_META, b'{"name": "ops"}')])
    with open(os.path.join(out, "sample.lnnb"), "wb") as f:
        f.write(sample)
    with open(os.path.join(out, "ops.lnnb"), "wb") as f:
        f.write(ops_data)
    gq = q8_model()
    q8 = q8_data(gq)
    with open(os.path.join(out, "q8.lnnb"), "wb") as f:
        f.write(q8)
    variants = broken_variants()
    listing = {}
    for name, data, status, off in variants:
        with open(os.path.join(out, name + ".lnnb"), "wb") as f:
            f.write(data)
        listing[name + ".lnnb"] = dict(status=status, offset=off)
    with open(os.path.join(out, "broken.json"), "w") as f:
        json.dump(listing, f, indent=1)

    check_model(ck, args.lnnvm, out, "sample", sample, 7, rng)
    check_model(ck, args.lnnvm, out, "ops", ops_data, 5, rng)
    check_model(ck, args.lnnvm, out, "q8", q8, 6, rng)
    if args.lnnvm:
        check_broken(ck, args.lnnvm, out, variants)
        check_usage(ck, args.lnnvm, out)
        if args.fuzz:
            check_fuzz(ck, args.lnnvm, out, [("sample", gs, sample), ("ops", go, ops_data),
                                             ("q8", gq, q8)], args.fuzz, args.seed)
        if args.progfuzz:
            check_progfuzz(ck, args.lnnvm, out, args.progfuzz, args.seed)
    if args.lib:
        check_api(ck, args.lib, out, sample, ops_data, q8)
    print(f"{ck.passed} passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main())
