"""The element-wise opcodes MIN MAX POW LE LT ABS SQRT LOG ERF WHERE and the activations and LayerNorm lowered onto
them (compiler/activation_rules.py): each torch op against PyTorch on the reference VM and the host C VM, a small
sensor model using all of them on the host runner and qemu-rpi4 (NEON), the verifier's rule for WHERE, the
refusals, and the generative fuzzer reaching every element-wise op inside EWISE programs too. The kernels
themselves (every SIMD set against scalar, scalar log / erf against libm) are vm/tests/kernel_test.c's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lnnedge import config, isa
from lnnedge.build import build
from lnnedge.compiler import CompileError, compile_module, optable
from lnnedge.devices import open_device
from lnnedge.runtime import CVM

F = torch.nn.functional
TOLERANCE = 1e-5  # README: float32 verify tolerance; the transcendental kernels are within 3 ulp of libm


class Fn(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Norm(torch.nn.Module):
    """Linear then LayerNorm over the last axis (with non-trivial weight and bias, or none)."""

    def __init__(self, affine: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(12, 12)
        self.ln = torch.nn.LayerNorm(12, elementwise_affine=affine)
        if affine:
            with torch.no_grad():
                self.ln.weight.uniform_(0.5, 1.5)
                self.ln.bias.uniform_(-1.0, 1.0)

    def forward(self, x):
        return self.ln(self.lin(x))


CASES = {
    "silu": lambda: Fn(F.silu),
    "gelu": lambda: Fn(F.gelu),
    "gelu_tanh": lambda: Fn(lambda x: F.gelu(x, approximate="tanh")),
    "elu_alpha": lambda: Fn(lambda x: F.elu(x, 0.7)),
    "selu": lambda: Fn(torch.selu),
    "leaky_relu": lambda: Fn(lambda x: F.leaky_relu(x, 0.2)),
    "hardtanh": lambda: Fn(lambda x: F.hardtanh(x, -0.5, 0.8)),
    "clamp_min_only": lambda: Fn(lambda x: torch.clamp(x, min=-0.3)),
    "relu6": lambda: Fn(lambda x: F.relu6(x * 4.0)),
    "softplus": lambda: Fn(F.softplus),
    "softplus_beta_threshold": lambda: Fn(lambda x: F.softplus(x * 10.0, beta=2.0, threshold=5.0)),
    "exp": lambda: Fn(torch.exp),
    "log": lambda: Fn(lambda x: torch.log(x.abs() + 0.1)),
    "minimum": lambda: Fn(lambda x: torch.minimum(x, x * 0.5 - 0.2)),
    "maximum": lambda: Fn(lambda x: torch.maximum(x, torch.tanh(x) * 0.5)),
    "abs": lambda: Fn(torch.abs),
    "sqrt": lambda: Fn(lambda x: torch.sqrt(x.abs())),
    "rsqrt": lambda: Fn(lambda x: torch.rsqrt(x.abs() + 0.1)),
    "erf": lambda: Fn(torch.erf),
    "pow": lambda: Fn(lambda x: (x.abs() + 0.5) ** 1.5),
    "layer_norm": lambda: Norm(),
    "layer_norm_no_affine": lambda: Norm(affine=False),
}


def _inputs(rows: int = 7) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((rows, 12)).astype(np.float32) * 2.0
    x[0, :4] = (0.0, -0.0, 25.0, -25.0)  # zeros, and softplus / clamp / exp far from 0
    x[0, 4:8] = (1e-30, -1e-30, 1e-3, -3.0)
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_op_matches_pytorch_on_both_vms(name, host_build):
    module = CASES[name]().eval()
    x = _inputs()
    if name == "exp":
        x = np.clip(x, -10.0, 5.0)
    compiled = compile_module(module, (torch.zeros(1, 12),), name=name)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    ref = compiled.run(x)[0]
    dev = CVM(compiled.data, max_batch=len(x), library=host_build.library).run([x])[0].reshape(expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected))))  # exp reaches e^5: the tolerance is relative above 1
    assert float(np.max(np.abs(ref - expected))) <= TOLERANCE * scale, name
    assert float(np.max(np.abs(dev - expected))) <= TOLERANCE * scale, name


def test_the_lowerings_use_no_opcode_of_their_own():
    """silu ... layer_norm are rows without an instruction (ir=False), listed by ops() with their limits."""
    rows = {op.name: op for op in optable.ops()}
    for name in ("silu", "gelu", "elu", "leaky_relu", "clamp", "softplus", "rsqrt", "layer_norm"):
        assert not rows[name].ir and not rows[name].opcode and rows[name].listing(), name
    for name, opcode in (("min", "MIN"), ("max", "MAX"), ("abs", "ABS"), ("sqrt", "SQRT"), ("log", "LOG"),
                         ("erf", "ERF"), ("pow", "POW"), ("le", "LE"), ("lt", "LT")):
        assert rows[name].opcode == opcode and rows[name].program, name
    listing = " ".join(optable.supported())
    assert "layer_norm (nn.LayerNorm over the last axis" in listing and "gelu (exact (erf)" in listing


def test_layer_norm_over_two_axes_is_refused_by_name():
    module = Fn(lambda x: F.layer_norm(x.view(-1, 3, 4), (3, 4))).eval()
    with pytest.raises(CompileError, match=r"layer_norm over \[3, 4\].*only over the last axis"):
        compile_module(module, (torch.zeros(1, 12),))


# -- a small sensor model with every new op, on the host runner and qemu-rpi4 ------------------------------------


class SensorNet(torch.nn.Module):
    """Linear, LayerNorm, then every activation and element-wise op of this file side by side, concatenated and
    mixed by a last Linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.inp = torch.nn.Linear(6, 16)
        self.ln = torch.nn.LayerNorm(16)
        self.out = torch.nn.Linear(16 * 6, 3)

    def forward(self, x):
        h = self.ln(self.inp(x))
        a = F.gelu(h) + F.gelu(h, approximate="tanh") + F.silu(h)
        b = F.elu(h) + F.leaky_relu(h, 0.1) + F.hardtanh(h) + torch.clamp(h, -0.4, 0.6)
        c = F.softplus(h, beta=2.0, threshold=3.0) + torch.log(h.abs() + 0.5) + torch.exp(h.clamp(max=3.0))
        d = torch.minimum(h, a) + torch.maximum(h, b) + torch.erf(h)
        e = torch.sqrt(h.abs()) + torch.rsqrt(h.abs() + 1.0) + (h.abs() + 0.5) ** 1.5
        f = torch.selu(h) + F.relu6(h * 3.0)
        return self.out(torch.cat([a, b, c, d, e, f], dim=-1))


@pytest.fixture(scope="module")
def rpi4_build():
    return build(config.load_target("rpi4"), echo=lambda _msg: None)


@pytest.mark.parametrize("board", ["host", "qemu-rpi4"])
def test_sensor_model_with_every_new_op_verifies_on_the_board(board, host_build, rpi4_build, tmp_path):
    model = SensorNet().eval()
    compiled = compile_module(model, (torch.zeros(1, 6),), name="sensor")
    names = {isa.opcode_by_code()[w & 0xFF].name for w in compiled.program.code}
    assert "WHERE" in names, names  # softplus's threshold; the rest is fused into EWISE programs
    x = np.random.default_rng(5).standard_normal((16, 6)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    path = compiled.save(tmp_path / "sensor.lnnb")
    with open_device(config.board(board)) as device:
        result = device.run(path, [x], batch=len(x))
    err = float(np.abs(result.outputs[0].reshape(expected.shape) - expected).max())
    print(f"sensor model on {board}: max abs err {err:.2e}")
    assert err <= TOLERANCE
    if board == "qemu-rpi4":
        assert result.timing["isa"] == "neon"


# -- the fuzzer -------------------------------------------------------------------------------------------------


def test_generator_puts_every_element_wise_op_in_programs_and_where_in_code():
    """Every instruction an EWISE program may hold (the op table's program rows) occurs in generated programs;
    WHERE (not a program op) as an instruction. tests/test_fuzz.py checks every opcode as an instruction."""
    from lnnedge.fuzzgen import generate

    seen: set[str] = set()
    for seed in range(300):
        seen |= generate(seed).features
    program_ops = {optable.get(name).opcode for name in optable.names(lambda op: op.program)}
    assert {f"ew:{op}" for op in program_ops} <= seen, sorted(program_ops - {f[3:] for f in seen})
    assert {"op:WHERE", "op:POW", "op:LOG", "op:ERF", "op:MIN", "op:MAX", "op:LE", "op:LT"} <= seen


# -- the verifier's rules for the new opcodes (vm/VERIFIER.md, properties 54, 57, 59) ---------------------------


def test_where_takes_the_broadcast_of_its_three_operands(host_build):
    """WHERE(c, a, b) into d: d is the numpy broadcast of c, a and b with the batch symbol (a row, a single value
    or the same shape each), may be written in place over an identical operand; anything else is E_SHAPE."""
    from lnnedge.runtime import VMError
    from test_verifier import BIAS, LINEAR_H, E, G, H, X, build, code_at

    def status(code) -> tuple[str, int] | None:
        data = build(code=code)
        try:
            CVM(data, max_batch=2, library=host_build.library)
        except VMError as e:
            return e.name, e.offset
        return None

    ok = (*LINEAR_H, E("DROP"), E("PUSH", 0, H), E("PUSH", 0, H), E("PUSH", 0, BIAS), E("WHERE", 0, H), E("DROP"))
    assert status(ok) is None  # c and a (B,3), b a row (3), in place over c and a
    scalars = (*LINEAR_H, E("DROP"), E("PUSH", 0, BIAS), E("PUSH", 0, H), E("PUSH", 0, BIAS), E("WHERE", 0, G),
               E("DROP"))
    data = build(code=scalars)
    assert status(scalars) == ("E_SHAPE", code_at(data, 8))  # the broadcast is (B,3), not G's (3)
    wide = (E("PUSH", 0, X), E("PUSH", 0, BIAS), E("PUSH", 0, BIAS), E("WHERE", 0, G), E("DROP"))
    assert status(wide) == ("E_SHAPE", code_at(build(code=wide), 3))  # c (B,2) against (3)
    assert status((E("PUSH", 0, BIAS), E("PUSH", 0, BIAS), E("PUSH", 0, BIAS), E("WHERE", 0, G), E("DROP"))) is None
