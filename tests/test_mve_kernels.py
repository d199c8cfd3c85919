"""The Helium kernel set (vm/src/kernels_mve.c) on the emulated Cortex-M55 (QEMU mps3-an547): every kernel of the
mve set against the scalar one on the core (the hosted kernel test, vm/tests/kernel_test.c, as a bare-metal
program with semihosting), and a model verified on the qemu-m55 board with the firmware picking the mve set."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
from lnnedge import config, mcu_bench
from lnnedge.build import firmware_make_args
from lnnedge.compiler import compile_module
from lnnedge.devices import open_device, prepare
from lnnedge.paths import BUILD_DIR

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc")

M55 = config.load_target("cortex-m55")
SIMDTEST = BUILD_DIR / "test-firmware" / "m55-simdtest"


def test_every_mve_kernel_matches_the_scalar_one_on_the_core():
    """kernel_test.c on the Cortex-M55 under QEMU: unary, binary, products (float, int8), element-wise programs and
    the LTC step's fused form, graph ops, each against the scalar kernel with the host test's criteria (MVE
    flushes denormals: compared as the AArch32 NEON set is). The cm4 set is left out of this build (its own test
    covers it). Its heap lives in the AN547's DDR: the stack and data at 0x61000000, the heap below."""
    args = firmware_make_args(M55, out=SIMDTEST)
    args += ["RAM_ORIGIN=0x61000000", f"RAM_SIZE={16 << 20}", "STEST_HEAP=0x60000000", "OPT=-O2",
             "EXTRA_CFLAGS=-DLNN_HAVE_CM4=0", "-s", "-j2", "simdtest"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    q = M55.qemu
    run = subprocess.run([q.program, "-M", q.machine, "-cpu", q.cpu, "-display", "none", "-monitor", "none",
                          "-serial", "none", "-semihosting-config", "enable=on,target=native",
                          "-kernel", str(SIMDTEST / "lnn_simd_kernel_test.elf")],
                         capture_output=True, text=True, timeout=300)
    lines = (run.stdout + run.stderr).splitlines()
    assert run.returncode == 0, "\n".join(line for line in lines if not line.startswith("ok"))[-3000:]
    assert "kernel sets compiled in: mve scalar; lnn_init picks mve" in lines[0]
    tested = {line.split()[1] for line in lines if line.startswith("ok ")}
    assert "mve" in tested
    for family in ("exp", "sigmoid", "tanh", "add", "div", "sqrt", "linear", "linear_t", "linear_q8", "linear_tq8",
                   "linear_w8a16", "ewise", "conv2d", "maxpool2d", "softmax", "matmul"):
        assert any(line.split()[1:3] == ["mve", family] for line in lines if line.startswith("ok ")), family
    assert lines[-1].endswith(" passed, 0 failed")


def test_a_model_verifies_on_qemu_m55_with_the_mve_set(sine_model, tmp_path):
    """ltc-sine (seeded weights) on the qemu-m55 board: the firmware reports the mve set and its outputs are
    within 1e-5 of PyTorch's."""
    x = np.linspace(-1, 7, 24, dtype=np.float32).reshape(-1, 1)
    with torch.no_grad():
        want = sine_model(torch.from_numpy(x)).numpy()
    model = compile_module(sine_model, (torch.zeros(1, 1),), name="ltc-sine").save(tmp_path / "sine.lnnb")
    board = config.board("qemu-m55")
    prepare(board)  # the firmware built as the pipeline builds it (a fresh checkout has none)
    with open_device(board) as device:
        result = device.run(model, [x], batch=1)
        assert result.info["board"] == "mps3-an547"
        assert result.timing["isa"] == "mve"
        np.testing.assert_allclose(result.outputs[0].reshape(want.shape), want, atol=1e-5, rtol=0)


def test_the_bench_table_compares_each_vector_set_with_the_m4_scalar_build(tmp_path):
    """The lines under `invoke readme-table`'s instruction-count table: each board's float32 kernel-set count over
    qemu-m4's scalar build, from the JSON files alone (a board without a vector set gets no line)."""
    def save(board: str, cpu: str, isa: str, count: int, scalar: int) -> None:
        row = {"instructions_median": count, "macs": 100, "instructions_per_mac": count / 100, "isa": isa}
        mcu_bench.save({"model": "m", "board": board, "cpu": cpu, "icount_shift": 6, "results": {"float32": row},
                        "scalar_results": {"float32": {**row, "instructions_median": scalar, "isa": "scalar"}}},
                       tmp_path)

    save("qemu-m4", "cortex-m4", "cm4", 150, 400)
    save("qemu-m55", "cortex-m55", "mve", 100, 420)
    save("qemu-m0", "cortex-m0", "scalar", 9000, 9000)
    lines = mcu_bench.table(tmp_path).splitlines()
    assert lines[-2:] == [
        "- m, float32 weights: qemu-m4 (cortex-m4, cm4 kernels) 150 instructions per inference = 0.38 × the "
        "Cortex-M4 scalar build's (qemu-m4, 400)",
        "- m, float32 weights: qemu-m55 (cortex-m55, mve kernels) 100 instructions per inference = 0.25 × the "
        "Cortex-M4 scalar build's (qemu-m4, 400)"]


def test_the_bench_table_compares_each_quantized_file_with_float32_on_its_board(tmp_path):
    """Issue 19's int8-versus-float figure comes out of the same JSON: each quantized file's count over the float32
    file's on the same board and kernels."""
    rows = {scheme: {"instructions_median": n, "macs": 100, "instructions_per_mac": n / 100, "isa": "cm4"}
            for scheme, n in (("float32", 150), ("int8", 285), ("w8a16", 140))}
    mcu_bench.save({"model": "m", "board": "qemu-m4", "cpu": "cortex-m4", "icount_shift": 6, "results": rows},
                   tmp_path)
    assert mcu_bench.table(tmp_path).splitlines()[-2:] == [
        "- m on qemu-m4 (cm4 kernels): int8 weights 285 instructions per inference = 1.90 × float32's (150)",
        "- m on qemu-m4 (cm4 kernels): w8a16 weights 140 instructions per inference = 0.93 × float32's (150)"]
