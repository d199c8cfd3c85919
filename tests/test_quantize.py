"""int8 weights: the schemes (int8, w8a16, f16), the compiler's storage, the C VM's kernels, and the quantize-check
gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import HOST_ISAS, inputs_for, untrained
from lnnedge import config, filesize, isa, lnnb, quant_gate, quantize
from lnnedge.compiler import CompileError, compile_module
from lnnedge.paths import BUILD_DIR, ROOT
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM
from test_pipeline import invoke, ok

KEEP_FLOAT: tuple[str, ...] = ()


def test_per_channel_scheme_is_symmetric_and_bounded():
    w = np.random.default_rng(0).normal(size=(7, 13)).astype(np.float32)
    w[3] = 0  # an all-zero row gets scale 1 and zeros, not NaN
    qw = quantize.quantize_weight(w)
    assert qw.q.dtype == np.int8 and qw.scale.shape == (7,)
    assert np.abs(qw.q).max() == 127 and qw.q.min() >= -127
    for m in (0, 1, 2, 4, 5, 6):  # each row's peak maps to +-127: the full range of its own scale
        assert np.abs(qw.q[m]).max() == 127
    assert not qw.q[3].any() and qw.scale[3] == 1
    err = np.abs(quantize.dequantize(qw) - w)
    assert np.all(err <= qw.scale[:, None] / 2 * (1 + 1e-6))


def _round_row16(row: list[float]) -> list[float]:
    """The w8a16 activation rounding of one row, straight from its definition (lnn_opcodes.def), in doubles."""
    if not all(np.isfinite(row)):
        return [float("nan")] * len(row)
    mantissa, exponent = np.frexp(max(abs(v) for v in row))
    e = max(int(exponent) + (round(mantissa * 2 ** 15) == 2 ** 15), -100)
    return [round(v * 2.0 ** (15 - e)) * 2.0 ** (e - 15) for v in row]


def test_w8a16_rounds_each_input_row_to_16_bit_block_floating_point():
    rng = np.random.default_rng(5)
    rows = [rng.normal(size=9) * 10.0 ** rng.integers(-30, 30) for _ in range(200)]
    rows += [np.zeros(9), np.full(9, 1e-35), np.array([32767.5 / 32768, 0.5, -0.25]),  # rounds up: next exponent
             np.array([32767.4 / 32768, 1e-5, -1e-5]), np.array([1.0, np.nan, 2.0]), np.array([-np.inf, 0, 1]),
             np.array([3e38, -3.4e38, 1.0]), np.array([2.0 ** -20 * 3, 2.0 ** -21])]
    for row in rows:
        x = torch.tensor(np.asarray(row, dtype=np.float32)[None])
        want = np.array(_round_row16([float(v) for v in x[0]]), dtype=np.float32)
        got = quantize.round_rows16(x)[0].numpy()
        np.testing.assert_array_equal(got, want)
        if np.isfinite(want).all() and want.any():  # 16 significant bits: at most 32767 steps of one power of 2
            step = np.min([abs(v) for v in want if v] + [np.inf])
            assert np.abs(want).max() / 2.0 ** np.floor(np.log2(step)) < 2 ** 16


def test_w8a16_reference_rounds_the_inputs_of_quantized_layers_and_the_compiler_sees_no_hook():
    model = untrained("ltc-sine", seed=3)
    int8, w8a16 = (quantize.fake_quantize(model, KEEP_FLOAT, s) for s in ("int8", "w8a16"))
    x = torch.from_numpy(inputs_for(1, 64, seed=2))
    with torch.no_grad():
        y8, y16 = int8(x), w8a16(x)
        bare = quantize.capturable(w8a16)(x)
    assert 0 < (y16 - y8).abs().max() < 1e-2  # the rounding changes results, a little
    assert torch.equal(bare, y8)  # without the hooks: the int8 weights alone
    assert quantize.capturable(int8) is int8


def _quantized_sine(scheme: str):
    """An untrained ltc-sine, its fake-quantized twin and the `scheme` compile of it."""
    model = untrained("ltc-sine", seed=3)
    fake = quantize.fake_quantize(model, KEEP_FLOAT, scheme)
    compiled = compile_module(quantize.capturable(fake), (torch.zeros(1, 1),), name="ltc-sine",
                              **quantize.compile_options(model, KEEP_FLOAT, scheme))
    return model, fake, compiled


@pytest.fixture(scope="module")
def int8_sine():
    return _quantized_sine("int8")


@pytest.fixture(scope="module")
def f16_sine():
    return _quantized_sine("f16")


@pytest.fixture(scope="module", params=quant_gate.SCHEMES)
def quantized_sine(request):
    return request.param, _quantized_sine(request.param)


def test_int8_compile_stores_every_product_of_a_quantized_layer_as_int8(int8_sine):
    model, _, compiled = int8_sine
    program = compiled.program
    int8 = [t for t in program.tensors if t.dtype == isa.const("DT_I8")]
    ops = {isa.opcode_by_code()[isa.decode(w)[0]].name for w in program.code}
    # gate + candidate, split by split_linear into the hoisted 1-input projection (K = 1) and the
    # recurrent part (K = 64), fused; and the (64 -> 1) read-out
    assert sorted(t.dims for t in int8) == [(1, 64), (1, 128), (64, 128)]
    assert {"LINEAR_TQ8", "MATMUL_TQ8", "LINEAR_Q8"} <= ops
    assert not {"LINEAR", "LINEAR_T", "MATMUL_T"} & ops
    parts = filesize.breakdown(compiled.data)
    assert sum(parts.values()) == len(compiled.data)
    assert parts["int8 matrices"] == 64 * 128 + 128 + 64 and parts["float32 matrices"] == 0
    # the two parts of gate + candidate share one scale per output row, as the layers do
    scales = [t for t in program.tensors if t.dtype == isa.const("DT_F32") and t.dims == (128,)
              and "scale" in program.names[program.tensors.index(t)]]
    assert len(scales) == 1
    float_file = compile_module(model, (torch.zeros(1, 1),), name="ltc-sine").data
    assert len(compiled.data) < 0.4 * len(float_file)


def test_reference_vm_runs_the_quantized_file_as_the_fake_quantized_model(quantized_sine):
    scheme, (model, fake, compiled) = quantized_sine
    x = inputs_for(1, 256, seed=1)
    with torch.no_grad():
        expected = fake(torch.from_numpy(x)).numpy()
        float_out = model(torch.from_numpy(x)).numpy()
    got = RefVM(compiled.data).run([x])[0]
    assert np.abs(got - expected).max() <= 1e-5
    # it is really the quantized arithmetic: float16 rounds weights ~500x finer than int8
    assert np.abs(got - float_out).max() > {"int8": 1e-4, "w8a16": 1e-4, "f16": 1e-6}[scheme]


def test_int8_compile_refuses_weights_that_are_not_fake_quantized(int8_sine):
    model, _, _ = int8_sine
    with pytest.raises(CompileError, match="not its fake-quantized value"):
        compile_module(model, (torch.zeros(1, 1),), int8_scales=quantize.int8_scales(model, KEEP_FLOAT))


def test_keep_float_leaves_a_layer_in_float32(int8_sine):
    model = int8_sine[0]
    keep = ("readout",)
    compiled = compile_module(quantize.fake_quantize(model, keep), (torch.zeros(1, 1),),
                              int8_scales=quantize.int8_scales(model, keep))
    int8 = [t.dims for t in compiled.program.tensors if t.dtype == isa.const("DT_I8")]
    assert int8 == [(1, 128), (64, 128)]


@pytest.mark.parametrize("batch", [1, 3, 64])
@pytest.mark.parametrize("isa_name", HOST_ISAS)
def test_c_vm_runs_the_quantized_file_like_the_reference_vm(quantized_sine, host_build, batch, isa_name):
    _, (_, fake, compiled) = quantized_sine
    x = inputs_for(1, batch, seed=batch)
    vm = CVM(compiled.data, max_batch=batch, library=host_build.library)
    vm.use_kernels(isa_name)
    got = vm.run([x])[0]
    ref = RefVM(compiled.data).run([x])[0]
    with torch.no_grad():
        expected = fake(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-5
    assert np.abs(got - expected).max() <= 1e-5


# -- float16 weights -----------------------------------------------------------------------------------------

def test_f16_compile_stores_every_weight_as_float16_with_its_copy_in_the_fixed_arena(f16_sine):
    model, _, compiled = f16_sine
    program = compiled.program
    half = [t for t in program.tensors if t.dtype == isa.const("DT_F16")]
    assert sorted(t.dims for t in half) == [(1, 64), (1, 128), (64, 128)]
    parts = filesize.breakdown(compiled.data)
    assert parts["float32 matrices"] == 0 and parts["float16 matrices"] == 2 * (64 * 128 + 128 + 64)
    # each float32 copy: 4-aligned, inside the fixed part, apart from the others and from every fixed tensor
    spans = sorted((t.widened, t.widened + 4 * t.elems) for t in half)
    arena = [(t.offset, t.offset + t.nbytes) for t in program.tensors
             if t.region == isa.const("REG_ARENA") and not t.batched]
    assert all(lo % 4 == 0 and hi <= program.arena_fixed for lo, hi in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert not any(lo < b_hi and b_lo < hi for lo, hi in spans for b_lo, b_hi in arena)
    float_file = compile_module(model, (torch.zeros(1, 1),), name="ltc-sine").data
    assert len(compiled.data) < 0.6 * len(float_file)


def test_f16_compile_refuses_weights_float16_cannot_hold(f16_sine):
    model = f16_sine[0]
    with pytest.raises(CompileError, match="not float16-exact"):
        compile_module(model, (torch.zeros(1, 1),), **quantize.compile_options(model, KEEP_FLOAT, "f16"))


# -- the pipeline: quantize-check, compile --quant, verify, and the deploy gate (trained ltc-sine) -------------

def _tight_recipe(tmp_path: Path) -> Path:
    """ltc-sine with a quantization tolerance no int8 model meets."""
    spec = yaml.safe_load((ROOT / "recipes" / "ltc-sine.yaml").read_text())
    spec["quantization"]["tolerance"]["max_abs_err"] = 1e-4
    path = tmp_path / "ltc-sine-tight.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def trained_sine():
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        ok("train", "--model", "ltc-sine")
    ok("build", "--target", "rpi4")
    return BUILD_DIR / "ltc-sine"


def test_quantize_check_gates_deploy(trained_sine, tmp_path):
    out = trained_sine
    tight = _tight_recipe(tmp_path)
    failed = invoke("quantize-check", "--model", str(tight))
    assert failed.returncode != 0
    assert "quantize-check failed" in failed.stderr and "FAILED" in failed.stdout
    assert json.loads((out / "quantize-check-int8.json").read_text())["passed"] is False
    refused = invoke("deploy", "--model", "ltc-sine", "--quant", "int8", "--board", "qemu-rpi4")
    assert refused.returncode != 0 and "quantize-check failed" in refused.stderr
    forced = ok("deploy", "--model", "ltc-sine", "--quant", "int8", "--board", "qemu-rpi4", "--force")
    assert "1 of 1 boards ok" in forced.stdout

    passed = ok("quantize-check", "--model", "ltc-sine")
    report = json.loads((out / "quantize-check-int8.json").read_text())
    assert report["passed"] is True and "PASSED" in passed.stdout
    assert report["task_rmse_quant"] <= 0.03 and report["max_abs_err"] <= 0.02
    assert report["quantized_tensors"] and "readout.weight (1, 64)" in report["quantized_tensors"]
    assert report["quant_file_bytes"] < report["float_file_bytes"]
    sizes = report["size_breakdown"]
    assert sum(sizes["float32"].values()) == report["float_file_bytes"]
    assert sum(sizes["int8"].values()) == report["quant_file_bytes"]
    # every weight of the float file is int8 in the quantized one (nothing kept float in ltc-sine)
    assert sizes["int8"]["float32 matrices"] == 0
    assert sizes["float32"]["float32 matrices"] == 4 * sizes["int8"]["int8 matrices"]
    assert "int8 matrices" in passed.stdout
    ok("deploy", "--model", "ltc-sine", "--quant", "int8", "--board", "qemu-rpi4")
    # a check made for other bytes does not count: recompiling with another keep_float changes the file
    (out / "model-int8.lnnb").write_bytes((out / "model-int8.lnnb").read_bytes()[:-4] + b"\0\0\0\0")
    stale = invoke("deploy", "--model", "ltc-sine", "--quant", "int8", "--board", "qemu-rpi4")
    assert stale.returncode != 0 and "another model-int8.lnnb" in stale.stderr
    ok("compile", "--model", "ltc-sine", "--quant", "int8")


@pytest.mark.parametrize("board", ["host", "qemu-rpi4", "qemu-m4", "qemu-m55"])
def test_verify_int8_against_fake_quantized_pytorch(trained_sine, board):
    """Every int8 product kernel end to end: the host's and NEON's, the Cortex-M4's (integer sums on block
    floating point) and the Cortex-M55's (Helium)."""
    ok("compile", "--model", "ltc-sine", "--quant", "int8")
    proc = ok("verify", "--model", "ltc-sine", "--quant", "int8", "--board", board)
    report = json.loads((trained_sine / f"verify-{board}-int8.json").read_text())
    assert report["passed"] is True and report["weights"] == "int8"
    assert report["max_abs_err"] <= 1e-5 and report["tolerance"] == 1e-5
    assert 1e-4 < report["vs_float_model"]["max_abs_err"] <= 0.02
    assert "held to PyTorch with the same quantized weights" in proc.stdout


@pytest.mark.parametrize("board", ["host", "qemu-m4", "qemu-m55"])
def test_verify_w8a16_against_pytorch_with_rounded_activations(trained_sine, board):
    """The MCU scheme: on the host (its SIMD kernel), the Cortex-M4 firmware (the SMLAD kernel) and the M55 firmware
    (the Helium kernel), held to PyTorch with the same int8 weights and the same 16-bit rounding of each quantized
    layer's input rows."""
    ok("compile", "--model", "ltc-sine", "--quant", "w8a16")
    ok("build", "--target", config.board(board).target.name)
    ok("verify", "--model", "ltc-sine", "--quant", "w8a16", "--board", board)
    report = json.loads((trained_sine / f"verify-{board}-w8a16.json").read_text())
    assert report["passed"] is True and report["weights"] == "w8a16"
    # the tolerance is the effect of the rounding itself (quantize.rounding_effect: a device value one ulp from
    # PyTorch's at a rounding midpoint moves an input by a whole 16-bit step); the rows without such a flip
    # match as float32 does (4 % of the rows hold one on the host)
    assert "activation rounding" in report["tolerance_basis"] and 1e-5 < report["tolerance"] < 2e-3
    assert report["max_abs_err"] <= report["tolerance"] and report["rows_within_float32_tolerance"] >= 0.9
    assert 1e-4 < report["vs_float_model"]["max_abs_err"] <= 0.02


def test_w8a16_quantize_check_passes_and_deploys_to_the_firmware(trained_sine):
    """The deploy's smoke test (the bundled rows, their tolerance from the same rounding effect) passes on the
    Cortex-M4 firmware."""
    ok("quantize-check", "--model", "ltc-sine", "--quant", "w8a16")
    check = json.loads((trained_sine / "quantize-check-w8a16.json").read_text())
    assert check["passed"] is True and "16-bit block floating point" in check["scheme"]
    assert check["size_ratio"] < 0.4
    ok("build", "--target", "cortex-m4")
    proc = ok("deploy", "--model", "ltc-sine", "--quant", "w8a16", "--board", "qemu-m4")
    assert "1 of 1 boards ok" in proc.stdout


def test_verify_quant_on_a_classifier_writes_its_own_report(tmp_path):
    """Regression (issue 17): the classifier path of verify ignored --quant's label and the float model, so
    `verify --quant int8` on a classifier overwrote verify-<board>.json with an unlabelled report. Now every kind
    writes verify-<board>-int8.json (weights, error vs the float model) and leaves the float report alone."""
    spec = yaml.safe_load((ROOT / "recipes" / "mlp-digits.yaml").read_text())
    spec["name"] = "mlp-digits-quant"  # its own build directory: the real recipe's reports stay untouched
    spec["training"]["epochs"] = 3
    spec["tolerances"]["target_accuracy"] = 0.5
    spec["quantization"] = {"scheme": "int8", "keep_float": [], "tolerance": {"max_abs_err": 1.0, "task_rmse": 1.0}}
    recipe = tmp_path / "mlp-digits-quant.yaml"
    recipe.write_text(yaml.safe_dump(spec))
    out = BUILD_DIR / "mlp-digits-quant"
    for name in ("verify-host.json", "verify-host-int8.json"):
        (out / name).unlink(missing_ok=True)
    ok("train", "--model", str(recipe))
    ok("compile", "--model", str(recipe))
    ok("compile", "--model", str(recipe), "--quant", "int8")
    ok("build", "--target", "host")
    ok("verify", "--model", str(recipe), "--board", "host")
    float_report = (out / "verify-host.json").read_text()
    ok("verify", "--model", str(recipe), "--board", "host", "--quant", "int8")
    assert (out / "verify-host.json").read_text() == float_report
    assert (out / "verify-host-int8.png").is_file()
    report = json.loads((out / "verify-host-int8.json").read_text())
    assert report["kind"] == "classifier" and report["weights"] == "int8" and report["passed"] is True
    assert report["same_class_share"] == 1.0
    assert 0 < report["vs_float_model"]["max_abs_err"] < 1.0


@pytest.fixture(scope="module")
def f16_checked(trained_sine):
    proc = ok("quantize-check", "--model", "ltc-sine", "--quant", "f16")
    check = json.loads((trained_sine / "quantize-check-f16.json").read_text())
    assert "float16 matrices" in proc.stdout
    return check


def test_f16_quantize_check_passes_and_deploys(trained_sine, f16_checked):
    assert f16_checked["passed"] is True and f16_checked["quant"] == "f16"
    assert f16_checked["max_abs_err"] < 1e-3 and f16_checked["size_ratio"] < 0.6
    sizes = f16_checked["size_breakdown"]
    assert sizes["f16"]["float16 matrices"] * 2 == sizes["float32"]["float32 matrices"]
    ok("deploy", "--model", "ltc-sine", "--quant", "f16", "--board", "qemu-rpi4")


@pytest.mark.parametrize("board", ["host", "qemu-rpi4", "qemu-m4"])
def test_verify_f16_against_float16_pytorch(trained_sine, f16_checked, board):
    """On every kind of device: a Linux runner natively and under QEMU, and the bare-metal firmware."""
    ok("build", "--target", config.board(board).target.name)
    proc = ok("verify", "--model", "ltc-sine", "--quant", "f16", "--board", board)
    report = json.loads((trained_sine / f"verify-{board}-f16.json").read_text())
    assert report["passed"] is True and report["weights"] == "f16"
    assert report["max_abs_err"] <= 1e-5
    assert 0 < report["vs_float_model"]["max_abs_err"] <= f16_checked["tolerance"]["max_abs_err"]
    assert "held to PyTorch with the same quantized weights" in proc.stdout


def test_int8_file_bundles_its_test_set(trained_sine):
    ok("compile", "--model", "ltc-sine", "--quant", "int8")
    program = lnnb.read((trained_sine / "model-int8.lnnb").read_bytes())
    assert program.tests is not None and program.tests.inputs.shape == (16, 1)
    ref = RefVM((trained_sine / "model-int8.lnnb").read_bytes()).run([program.tests.inputs])[0]
    assert np.abs(ref - program.tests.outputs).max() <= program.tests.max_abs_err
