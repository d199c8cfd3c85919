"""w8a16 (issue 19), the compiler and reference-VM side: the panel layout, the products' bit-exact arithmetic in the
reference VM and the C VM against a plain evaluation of the spec (vm/include/lnn_opcodes.def, LINEAR_W8A16), and
compiles with w8a16_scales (store_w8a16; the products of those layers never split over their input)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import HOST_ISAS, untrained
from lnnedge import isa, kernels_np, lnnb, quantize
from lnnedge.compiler import CompileError, compile_module
from lnnedge.compiler.ir import Graph, Node
from lnnedge.compiler.passes import const_fold, store_w8a16
from lnnedge.lnnb import Program, TensorEntry
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM, VMError

F32 = np.float32
I8, CONST, INPUT, OUTPUT = (isa.const(n) for n in ("DT_I8", "REG_CONST", "REG_INPUT", "REG_OUTPUT"))


# ---- a plain evaluation of the spec: Python integers and fractions, one element at a time ----

def f32(value: Fraction) -> float:
    """value rounded to float32 once (nearest, ties to even; beyond FLT_MAX's half ulp: infinity)."""
    limit = Fraction(2) ** 128 - Fraction(2) ** 103
    if abs(value) >= limit:
        return math.copysign(math.inf, value)
    guess = np.float32(float(value))  # float() rounds once to float64: at most one float32 step off
    candidates = [guess, np.nextafter(guess, F32(np.inf)), np.nextafter(guess, F32(-np.inf))]
    candidates = [c for c in candidates if np.isfinite(c)]
    return float(min(candidates, key=lambda c: (abs(Fraction(float(c)) - value), int(c.view(np.uint32)) & 1)))


def spec_row(x: np.ndarray, qt: np.ndarray, scale: np.ndarray, bias: np.ndarray | None) -> list[float]:
    """One row of LINEAR_W8A16 (bias) / MATMUL_W8A16 as the spec words it; qt (K, M) the decoded weights."""
    m_out = qt.shape[1]
    if not all(math.isfinite(float(v)) for v in x):
        return [math.nan] * m_out
    peak = max(abs(float(v)) for v in x)
    frac, e = math.frexp(peak)  # frexp(0) = (0, 0)
    e = max(e + (round(Fraction(frac) * 32768) == 32768), -100)
    xq = [round(Fraction(float(v)) * Fraction(2) ** (15 - e)) for v in x]  # round(): half to even
    assert all(abs(v) <= 32767 for v in xq)
    out = []
    for j in range(m_out):
        s = sum(v * int(qt[k, j]) for k, v in enumerate(xq))
        t = f32(Fraction(f32(Fraction(s))) * Fraction(2) ** (e - 15))
        b = None if bias is None else float(bias[j])
        out.append(mul_add(t, float(scale[j]), b))
    return out


def mul_add(t: float, s: float, b: float | None) -> float:
    """f32(t * s + b) rounded once (b None: f32(t * s)); an infinite t, and the sign of a zero t * s (+ a zero
    b), as IEEE arithmetic has them (exact in float64 there)."""
    product = Fraction(t) * Fraction(s) if math.isfinite(t) else None
    if product is None or product == 0 and not b:
        product_ieee = np.float64(t) * s  # as the float32 product: exact, -0.0 * s keeps its sign
        return float(product_ieee if b is None else product_ieee + b)
    return f32(product + Fraction(b or 0.0))


def spec_product(x: np.ndarray, qt: np.ndarray, scale: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1])
    return np.array([spec_row(r, qt, scale, bias) for r in rows], F32).reshape(*x.shape[:-1], qt.shape[1])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, any NaN matching any NaN (the spec leaves a NaN's sign and payload open)."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    nan = np.isnan(a)
    return a.shape == b.shape and np.array_equal(nan, np.isnan(b)) and np.array_equal(
        a[~nan].view(np.uint32), b[~nan].view(np.uint32))


# ---- the panel ----

def test_panel_layout_of_a_small_example():
    """Qt (3, 3): odd K and M, so the last input pair and the last column pair are half padding. Word (jp, kp) at
    byte 4 * (jp * 2 + kp); halves 256 * q(k, 2jp+1) + q(k, 2jp) for k = 2kp, 2kp+1, little-endian."""
    qt = np.array([[1, -2, 3], [4, 5, -6], [-7, 8, 9]], np.int8)
    p = kernels_np.panel(qt)
    assert p.shape == (2, 2, 4) and p.dtype == np.int8
    # (jp 0, kp 0): 256*-2+1 = 0xfe01, 256*5+4 = 0x0504; (0, 1): 256*8-7 = 0x07f9, 0; (1, 0): 3, -6 = 0xfffa;
    # (1, 1): 9, 0
    assert p.tobytes().hex() == "01fe0405" "f9070000" "0300faff" "09000000"
    assert np.array_equal(kernels_np.unpanel(p, 3, 3), qt)


def test_panel_round_trip_and_the_decoding_of_any_bytes():
    rng = np.random.default_rng(0)
    for k, m in ((1, 1), (1, 2), (2, 1), (5, 7), (8, 6), (33, 17)):
        qt = rng.integers(-127, 128, (k, m)).astype(np.int8)
        p = kernels_np.panel(qt)
        assert p.shape == ((m + 1) // 2, (k + 1) // 2, 4)
        assert np.array_equal(kernels_np.unpanel(p, k, m), qt)
    raw = rng.integers(-128, 128, (3, 4, 4)).astype(np.int8)  # any bytes a file may hold
    got = kernels_np.unpanel(raw, 8, 6)
    for jp in range(3):
        for kp in range(4):
            for i in range(2):
                h = int.from_bytes(raw[jp, kp, 2 * i:2 * i + 2].tobytes(), "little", signed=True)
                low = (h & 0xFF) - 256 * ((h & 0xFF) >= 128)
                assert got[2 * kp + i, 2 * jp] == low and got[2 * kp + i, 2 * jp + 1] * 256 == h - low
    assert got.min() >= -128 and got.max() <= 128 and 128 in kernels_np.unpanel(
        np.array([[[-128, 127, 0, 0]]], np.int8), 1, 2)
    with pytest.raises(ValueError):
        kernels_np.panel(np.array([[-128]], np.int8))


# ---- the arithmetic ----

def edge_rows(k: int, rng: np.random.Generator) -> np.ndarray:
    """Rows that reach every branch of the rounding: ordinary, zero, NaN and +-inf, a peak whose significand
    rounds up to 2^16 (exponent + 1), ties of x * 2^(15-e), tiny rows (exponent clamped at -100, subnormals),
    huge ones (products overflowing)."""
    rows = [rng.normal(0, 1, k), rng.normal(0, 100, k), np.zeros(k), rng.normal(0, 1, k), rng.normal(0, 1, k),
            rng.normal(0, 1, k), np.full(k, 1 - 2.0 ** -24), rng.uniform(-1, 1, k), rng.normal(0, 1e-38, k),
            np.full(k, 1e-45), rng.uniform(-1, 1, k) * 3e38, np.full(k, 3.4e38)]
    rows[3][k // 2] = np.nan
    rows[4][0] = np.inf
    rows[5][-1] = -np.inf
    rows[6][1::2] = 3 * 2.0 ** -15  # with the peak's exponent + 1: steps of 2^-14, so 3 * 2^-15 rounds to 2^-13
    rows[6][2::2] = -(1 - 2.0 ** -8)
    rows[7][0] = 1.0  # peak 1: e = 1, steps of 2^-14; ties at odd multiples of 2^-15
    rows[7][1:] = (np.arange(1, k) * 2 + 1 - k) * 2.0 ** -15
    return np.array(rows, F32)


def test_fma_is_rounded_once():
    """kernels_np.fma against the exact value rounded once, on random values and on the double-rounding cases
    (the float64 sum landing exactly halfway between two float32 values while the exact sum is not)."""
    almost_one = F32(1 - 2.0 ** -15)  # a * b = 2^-24 - 2^-54: a quarter of float64's ulp below 2^-24
    a = [F32(2.0 ** -24 * (1 + 2.0 ** -15))] * 4
    b = [almost_one, almost_one, -almost_one, -almost_one]
    c = [F32(1 + 2.0 ** -23), F32(1 + 2.0 ** -22), F32(-(1 + 2.0 ** -23)), F32(-(1 + 2.0 ** -22))]
    rng = np.random.default_rng(1)
    a = np.concatenate([a, rng.normal(0, 1, 2000), [3e38, 1e-30, np.inf]]).astype(F32)
    b = np.concatenate([b, rng.normal(0, 1, 2000) * 2.0 ** rng.integers(-30, 30, 2000), [10, 1e-20, 1]]).astype(F32)
    c = np.concatenate([c, rng.normal(0, 1, 2000), [1, 1e-45, -np.inf]]).astype(F32)
    got = kernels_np.fma(a, b, c)
    naive = (a.astype(np.float64) * b + c).astype(F32)
    with np.errstate(all="ignore"):
        want = [f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))) if np.isfinite([x, y, z]).all()
                else float(np.float64(x) * y + z) for x, y, z in zip(a, b, c)]
    assert same_bits(got, np.array(want, F32))
    assert not same_bits(naive[:4], got[:4])  # the cases are real: one float64 rounding then float32 is wrong


def test_reference_products_match_the_spec_on_edge_rows():
    rng = np.random.default_rng(2)
    for k, m in ((7, 5), (1, 1), (6, 2)):
        x = edge_rows(k, rng)
        raw = rng.integers(-128, 128, ((m + 1) // 2, (k + 1) // 2, 4)).astype(np.int8)
        qt = kernels_np.unpanel(raw, k, m)
        scale = rng.uniform(-0.05, 0.05, m).astype(F32)
        bias = rng.normal(0, 1, m).astype(F32)
        with np.errstate(all="ignore"):
            assert same_bits(kernels_np.linear_w8a16(x, raw, scale, bias), spec_product(x, qt, scale, bias))
            assert same_bits(kernels_np.linear_w8a16(x, raw, scale), spec_product(x, qt, scale))
            x3 = x[:6].reshape(2, 3, k)  # rows are the last axis of any rank
            assert same_bits(kernels_np.linear_w8a16(x3, raw, scale, bias), spec_product(x3, qt, scale, bias))


# ---- the C VM against the reference VM and the spec ----

def w8a16_file(k: int, m: int, splits: tuple[int, ...], panel: np.ndarray, scale: np.ndarray, bias: np.ndarray
               ) -> bytes:
    """y0.. = LINEAR_W8A16(x) split over len(splits) outputs; then MATMUL_W8A16(x) into one more output."""
    consts = bytearray()

    def const(data: bytes) -> int:
        consts.extend(bytes(-len(consts) % 4))
        consts.extend(data)
        return len(consts) - len(data)

    tensors = [TensorEntry((1, k), INPUT, 0, batched=True),
               TensorEntry(panel.shape, CONST, const(panel.tobytes()), dtype=I8),
               TensorEntry((m,), CONST, const(scale.tobytes())), TensorEntry((m,), CONST, const(bias.tobytes()))]
    tensors += [TensorEntry((1, n), OUTPUT, i, batched=True) for i, n in enumerate(splits)]
    tensors.append(TensorEntry((1, m), OUTPUT, len(splits), batched=True))
    e = isa.encode
    code = (e("PUSH", 0, 0), e("PUSH", 0, 1), e("PUSH", 0, 2), e("PUSH", 0, 3), e("LINEAR_W8A16", len(splits), 4),
            e("DROP"), e("PUSH", 0, 0), e("PUSH", 0, 1), e("PUSH", 0, 2), e("MATMUL_W8A16", 1, 4 + len(splits)),
            e("DROP"))
    return lnnb.write(Program(tensors=tuple(tensors), consts=bytes(consts), code=code, arena_fixed=0, arena_row=0,
                              num_inputs=1, num_outputs=len(splits) + 1))


CASES = {  # (K, M, column split of the LINEAR_W8A16, panel from random int8 weights or arbitrary bytes)
    "odd K, odd M, odd widths": (7, 5, (1, 3, 1), "bytes"),
    "K 1, M 1": (1, 1, (1,), "weights"),
    "K 2, M 9": (2, 9, (4, 5), "weights"),
    "K 33, M 20": (33, 20, (3, 16, 1), "bytes"),
    # |S| up to 1031 * 32767 * 128 > 2^31: the sums must not wrap in int32
    "K 1031, sums beyond int32": (1031, 4, (2, 2), "extremes"),
}


@pytest.mark.parametrize("case", CASES)
def test_c_vm_matches_the_reference_vm_bit_for_bit(host_build, case):
    k, m, splits, kind = CASES[case]
    rng = np.random.default_rng(len(case))
    if kind == "weights":
        raw = kernels_np.panel(rng.integers(-127, 128, (k, m)).astype(np.int8))
    elif kind == "bytes":
        raw = rng.integers(-128, 128, ((m + 1) // 2, (k + 1) // 2, 4)).astype(np.int8)
    else:  # every word 0x7f80 0x7f80: decoded -128 (even columns) and 128 (odd columns)
        raw = np.tile(np.array([-128, 127], np.int8), ((m + 1) // 2, (k + 1) // 2, 2))
    scale = rng.uniform(-0.02, 0.02, m).astype(F32)
    bias = rng.normal(0, 1, m).astype(F32)
    x = edge_rows(k, rng)
    if kind == "extremes":
        x = np.concatenate([x, np.full((2, k), 0.99998, F32), np.full((1, k), -3e38, F32)])
    data = w8a16_file(k, m, splits, raw, scale, bias)
    with np.errstate(all="ignore"):
        ref = RefVM(data).run([x])
        qt = kernels_np.unpanel(raw, k, m)
        assert same_bits(np.concatenate(ref[:-1], axis=1), spec_product(x, qt, scale, bias))
        assert same_bits(ref[-1], spec_product(x, qt, scale))
    vm = CVM(data, max_batch=len(x), library=host_build.library)
    ran = []
    for ks in [p if isinstance(p, str) else p.values[0] for p in HOST_ISAS]:
        try:
            vm.use_kernels(ks)
        except VMError:
            continue  # not on this processor
        for plan in (True, False):
            if vm.use_plan(plan) != plan:
                continue
            got = vm.run([x])
            assert all(same_bits(g.reshape(r.shape), r) for g, r in zip(got, ref)), (ks, plan)
            ran.append(ks)
    assert "scalar" in ran


def test_c_vm_refuses_a_panel_of_the_wrong_shape(host_build):
    rng = np.random.default_rng(5)
    raw = rng.integers(-128, 128, (3, 4, 4)).astype(np.int8)  # for K 7 or 8 and M 5 or 6
    good = w8a16_file(7, 5, (5,), raw, np.ones(5, F32), np.zeros(5, F32))
    CVM(good, library=host_build.library)
    with pytest.raises(VMError):  # M 7 needs 4 column pairs
        CVM(w8a16_file(7, 7, (7,), raw, np.ones(7, F32), np.zeros(7, F32)), library=host_build.library)


# ---- compiles with w8a16_scales ----

class Cell(torch.nn.Module):
    """A layer on cat([x, h]), the product split_linear would split; a bias-free one; float layers (kept float)
    sharing the w8a16 layers' inputs: c on cat([x, h]), e on x beside the w8a16 layer d (fuse_products must not
    put a float layer's columns into a w8a16 product)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(5, 7)
        self.b = torch.nn.Linear(7, 3, bias=False)
        self.c = torch.nn.Linear(5, 2)
        self.d = torch.nn.Linear(2, 4)
        self.e = torch.nn.Linear(2, 3)

    def forward(self, x, h):
        xh = torch.cat([x, h], dim=-1)
        z = torch.tanh(self.a(xh))
        return self.b(z), self.c(xh), self.d(x), self.e(x)


KEEP = ("c", "e")


@pytest.fixture(scope="module")
def cell():
    torch.manual_seed(0)
    model = Cell().eval()
    fake = quantize.fake_quantize(model, KEEP, "w8a16")
    scales = quantize.int8_scales(model, KEEP)
    compiled = compile_module(quantize.capturable(fake), (torch.zeros(1, 2), torch.zeros(1, 3)),
                              w8a16_scales=scales)
    return model, fake, scales, compiled


def products(graph) -> list:
    return [n for n in graph.walk() if n.op in ("linear", "matmul_nt", "linear_t", "matmul_t", "linear_w8a16",
                                                "matmul_w8a16")]


def layers(node) -> set[str]:
    """The layers a product computes (all of them, or a part split over the input)."""
    names = {p[0] for p in node.attr("parts") or () if p} | set(node.attr("modules") or ())
    return (names | {node.attr("part_of"), node.attr("module")}) - {None, ""}


def test_w8a16_product_reads_the_whole_concatenated_row(cell):
    model, fake, scales, compiled = cell
    found = products(compiled.graph)
    a, b = ([n for n in found if layers(n) == {name}] for name in "ab")
    assert [n.op for n in a] == ["linear_w8a16"] and [n.op for n in b] == ["matmul_w8a16"]
    assert all(n.attr("parts") == (None,) for n in a + b)
    producer = compiled.graph.producers()[a[0].inputs[0]]
    assert producer.op == "concat" and compiled.graph.types[producer.output].shape[-1] == 5
    # the float layers c (reading the same row: split) and e stay float and apart from the w8a16 products
    assert [n.op for n in found if layers(n) == {"d"}] == ["linear_w8a16"]
    assert all(n.op.endswith("w8a16") == (layers(n) <= {"a", "b", "d"}) for n in found)
    assert {"c", "e"} <= set().union(*(layers(n) for n in found if not n.op.endswith("w8a16")))
    # without w8a16, layer a too is split into an x part and an h part
    floats = compile_module(model, (torch.zeros(1, 2), torch.zeros(1, 3)))
    assert len([n for n in products(floats.graph) if "a" in layers(n)]) == 2


def test_compiled_cell_runs_the_spec_and_pytorch(cell):
    model, fake, scales, compiled = cell
    rng = np.random.default_rng(3)
    x, h = rng.normal(0, 2, (6, 2)).astype(F32), rng.normal(0, 1, (6, 3)).astype(F32)
    h[4, 1] = np.nan  # a NaN row of layer a's input: its outputs are NaN, and so b's
    with np.errstate(all="ignore"):
        y, *floats = compiled.run(x, h)
    xh = np.concatenate([x, h], axis=1)
    qa = quantize.quantize_weight(model.a.weight.detach().numpy()).q.T
    qb = quantize.quantize_weight(model.b.weight.detach().numpy()).q.T
    z = np.tanh(spec_product(xh, qa, scales["a"], model.a.bias.detach().numpy()))
    assert same_bits(y, spec_product(z, qb, scales["b"]))
    assert np.isnan(y[4]).all() and not np.isnan(np.delete(y, 4, axis=0)).any()
    with torch.no_grad():
        want = [t.numpy() for t in fake(torch.from_numpy(x), torch.from_numpy(h))]
    assert all(np.allclose(got, w, rtol=0, atol=1e-5, equal_nan=True) for got, w in zip([y, *floats], want))


def compile_w8a16(model: torch.nn.Module, args: tuple, drop_zero_parts: bool = True):
    """model compiled with every layer w8a16; without drop_zero_parts as before store_w8a16
    dropped the zero parts of a product's row (each product reads its whole concatenated row)."""
    fake = quantize.fake_quantize(model, (), "w8a16")
    with pytest.MonkeyPatch.context() as patch:
        if not drop_zero_parts:
            patch.setattr(store_w8a16, "_nonzero_rows", lambda *_: None)
        return compile_module(quantize.capturable(fake), args, w8a16_scales=quantize.int8_scales(model, ()))


@pytest.fixture(scope="module")
def ltc():
    """ltc-sine (untrained) as the PyTorch w8a16 model, its compile, and its compile with whole rows."""
    model = untrained("ltc-sine")
    return (quantize.fake_quantize(model, (), "w8a16"), compile_w8a16(model, (torch.zeros(1, 1),)),
            compile_w8a16(model, (torch.zeros(1, 1),), drop_zero_parts=False))


def test_ltc_w8a16_compile_keeps_the_loop_product_whole(ltc, host_build):
    """ltc-sine: the solver loop's product of linear(cat([x, h])) stays one LINEAR_W8A16 over the whole row (no
    hoisted input projection), every product of the quantized layers is w8a16, and the file runs as the
    PyTorch model with the rounding hooks, on the reference VM and the C VM."""
    fake, compiled, _ = ltc
    found = products(compiled.graph)
    assert found and all(n.op.endswith("w8a16") for n in found)
    loop = next(n for n in compiled.graph.nodes if n.op == "loop")
    body = loop.attr("body")
    inner = [n for n in body.nodes if n.op.endswith("w8a16")]
    assert all(not any(n.attr("parts")) for n in found)
    # one product in the loop: gate and candidate fused (same row), reading cat([x, h]) of width 1 + 64
    assert [n.attr("modules") for n in inner] == [("ode.func.gate", "ode.func.candidate")]
    cat = body.producers()[inner[0].inputs[0]]
    assert cat.op == "concat" and body.types[cat.output].shape[-1] == 65
    # the peeled first step's product (over x alone, its own panel) and the loop's share their scales
    peeled = [n for n in compiled.graph.nodes if n.op == "linear_w8a16" and n.attr("modules") == inner[0].attr(
        "modules")]
    assert len(peeled) == 1 and peeled[0].inputs[2] == inner[0].inputs[2]
    x = np.random.default_rng(4).uniform(-1, 7, (9, 1)).astype(F32)
    ref = compiled.run(x)[0]
    with torch.no_grad():
        want = fake(torch.from_numpy(x)).numpy()
    assert np.abs(ref - want).max() <= 1e-5
    got = CVM(compiled.data, max_batch=9, library=host_build.library).run([x])[0]
    assert np.abs(got.reshape(ref.shape) - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_ltc_peeled_step_reads_x_alone_with_the_same_bits(ltc, host_build):
    """ltc-sine's peeled first step, h0 = 0: its product of cat([x, 0]) over K = 65 becomes one over x (K = 1)
    with the weight's row of x (the concat and ZERO gone), and the outputs are the bits of the compile whose
    product reads the whole row, on the reference VM and the C VM, on edge rows."""
    _, compiled, whole = ltc
    loop = [n.op for n in compiled.graph.nodes].index("loop")
    before = compiled.graph.nodes[:loop]
    assert not {"concat", "zeros"} & {n.op for n in before}
    peeled = [n for n in before if n.op == "linear_w8a16"]
    assert len(peeled) == 1 and compiled.graph.types[peeled[0].inputs[0]].shape[-1] == 1
    old = next(n for n in whole.graph.nodes if n.op == "linear_w8a16")
    assert whole.graph.types[old.inputs[0]].shape[-1] == 65 and peeled[0].inputs[2:] == old.inputs[2:]
    q = kernels_np.unpanel(whole.graph.constants[old.inputs[1]], 65, 128)
    assert np.array_equal(compiled.graph.constants[peeled[0].inputs[1]], kernels_np.panel(q[:1].astype(np.int8)))
    rng = np.random.default_rng(6)
    # x, whose normalised (x - 1.5) / 2 is the product's row: edge rows of one value, a zero row (x = 1.5), -0
    x = np.concatenate([edge_rows(1, rng), [[1.5], [-0.0], [1.5 + 2.0 ** -22], [-7.0]],
                        rng.uniform(-1, 7, (8, 1))]).astype(F32)
    with np.errstate(all="ignore"):
        assert same_bits(compiled.run(x)[0], whole.run(x)[0])
    got, want = (CVM(c.data, max_batch=len(x), library=host_build.library).run([x])[0] for c in (compiled, whole))
    assert same_bits(got, want) and not np.isnan(got[-8:]).any()


class ZeroParts(torch.nn.Module):
    """w8a16 layers on rows with parts known to be zero: a at both ends and in the middle, b at the end only
    (its non-zero part stays one concat), d on zeros alone (a product over the whole row)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(12, 5)
        self.b = torch.nn.Linear(6, 3, bias=False)
        self.d = torch.nn.Linear(5, 2)

    def forward(self, x, h):
        zx, zh = torch.zeros_like(x), torch.zeros_like(h)
        return (self.a(torch.cat([zx, x, zh, h, zx], dim=-1)), self.b(torch.cat([x, h, x.new_zeros(x.shape[0], 1)],
                dim=-1)), self.d(torch.cat([zx, zh], dim=-1)))


def test_w8a16_product_drops_the_zero_parts_of_its_row():
    """Each product reads its row's non-zero parts in order, with those rows of the weight: the spec's result of
    the whole row (zeros included) bit for bit; a row of zeros alone stays whole."""
    torch.manual_seed(3)
    model = ZeroParts().eval()
    compiled = compile_w8a16(model, (torch.zeros(1, 2), torch.zeros(1, 3)))
    found = {layers(n).pop(): n for n in products(compiled.graph)}
    widths = {name: compiled.graph.types[n.inputs[0]].shape[-1] for name, n in found.items()}
    assert widths == {"a": 5, "b": 5, "d": 5}
    producers = compiled.graph.producers()
    assert [producers[n.inputs[0]].op for n in found.values()] == ["concat"] * 3
    # a: a new concat of x and h; b: the model's own cat([x, h]) (split_concat's first part), zeros dropped
    assert [producers[found[n].inputs[0]].inputs for n in "ab"] == [("x", "h")] * 2
    assert found["b"].inputs[0].endswith("/part0") and "zeros" in {n.op for n in compiled.graph.nodes}
    rng = np.random.default_rng(7)
    x, h = rng.normal(0, 2, (5, 2)).astype(F32), rng.normal(0, 1, (5, 3)).astype(F32)
    x[1] = (1 - 2.0 ** -24, 3 * 2.0 ** -15)  # the peak's exponent moves up
    h[2, 1], h[3] = np.nan, 0.0
    with np.errstate(all="ignore"):
        got = compiled.run(x, h)
    zx, zh = np.zeros_like(x), np.zeros_like(h)
    rows = {"a": np.concatenate([zx, x, zh, h, zx], -1), "b": np.concatenate([x, h, zx[:, :1]], -1),
            "d": np.concatenate([zx, zh], -1)}
    for name, y in zip("abd", got):
        layer = getattr(model, name)
        bias = None if layer.bias is None else layer.bias.detach().numpy()
        qt = quantize.quantize_weight(layer.weight.detach().numpy()).q.T
        assert same_bits(y, spec_product(rows[name], qt, quantize.int8_scales(model, ())[name], bias)), name


def test_w8a16_compile_refuses_what_it_cannot_store():
    torch.manual_seed(1)
    model = Cell().eval()
    args = (torch.zeros(1, 2), torch.zeros(1, 3))
    scales = quantize.int8_scales(model, KEEP)
    with pytest.raises(CompileError, match="layer a is not its fake-quantized value"):
        compile_module(model, args, w8a16_scales=scales)  # the float weights, not q * scale
    fake = quantize.capturable(quantize.fake_quantize(model, KEEP, "w8a16"))
    with pytest.raises(CompileError, match="no product of layer.s. nope"):
        compile_module(fake, args, w8a16_scales={**scales, "nope": np.ones(2, F32)})
    with pytest.raises(CompileError, match="given as both int8 and w8a16"):
        compile_module(fake, args, w8a16_scales=scales, int8_scales={"a": scales["a"]})



class ConstantInput(torch.nn.Module):
    """A w8a16 layer whose input is a constant: capture computes it from the parameters, without the rounding."""

    def __init__(self):
        super().__init__()
        self.f = torch.nn.Linear(3, 2)
        self.register_buffer("c0", torch.tensor([0.1, -0.3, 0.7]))

    def forward(self, x):
        return x * self.f(self.c0)


def test_w8a16_layer_of_a_constant_is_refused_and_never_folded():
    """Capture folds a layer of parameters alone with torch (no rounding): refused, naming it. And const_fold,
    which would fold such a product made constant by the passes, leaves the w8a16 layers' products alone."""
    torch.manual_seed(2)
    model = ConstantInput().eval()
    fake = quantize.capturable(quantize.fake_quantize(model, (), "w8a16"))
    with pytest.raises(CompileError, match="no product of layer.s. f in the compiled graph.*keep_float"):
        compile_module(fake, (torch.zeros(1, 2),), w8a16_scales=quantize.int8_scales(model, ()))
    consts = {"c": np.ones((1, 3), F32), "w": np.ones((2, 3), F32), "b": np.zeros(2, F32)}
    graph = Graph(("x",), ("y",), (Node("linear", ("c", "w", "b"), ("y",), (("module", "f"),)),), consts)
    assert [n.op for n in const_fold.make(frozenset({"f"})).run(graph).graph.nodes] == ["linear"]
    assert [n.op for n in const_fold.make(frozenset({"g"})).run(graph).graph.nodes] == []
