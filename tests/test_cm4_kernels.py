"""The Cortex-M4F kernel set (vm/src/kernels_cm4.c) on the emulated core, and the instruction counts of
`invoke bench --board` (lnnedge.mcu_bench): exact, repeatable, instructions rather than time."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from lnnedge import config, lnnb, mcu_bench, opselect, quantize
from lnnedge.build import build_firmware as build_target_firmware
from lnnedge.build import firmware_make_args
from lnnedge.compiler import compile_module
from lnnedge.devices import icount
from support.emulator import OUT, build_firmware

pytestmark = pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v qemu-system-arm arm-none-eabi-gcc"],
                                               capture_output=True).returncode != 0,
                                reason="needs qemu-system-arm and arm-none-eabi-gcc")


@pytest.mark.parametrize(("target_name", "blocks", "opt"),
                         [("cortex-m4", "", "-O2"), ("cortex-m4", "-DLNN_CM4_T_BLOCKS=0", "-O2"),
                          ("cortex-m4", "", "-O0"), ("cortex-m7", "", "-O2"), ("cortex-m33", "", "-O2")],
                         ids=["full", "no-tail-blocks", "O0", "cortex-m7", "cortex-m33"])
def test_cm4_products_and_ltc_step_match_the_scalar_kernels_on_the_core(target_name, blocks, opt):
    """cm4_kernel_test.c under QEMU with semihosting: linear / linear_t within 1e-5 sum |x w| of the scalar
    kernels, linear_tq8 (block floating point) within that + 2^-29 max |x| sum |w|, the fused LTC step bit for bit
    the scalar block interpreter's result, conv2d (the cm4 tap) within 1e-5 of the sum of the absolute terms,
    linear_w8a16 (SMLALD / SMLAD on the column-pair panel) bit for bit the scalar kernel's result; it exits 1 on any
    failure. Also as a selective build whose models need none of linear_t's 8/4/2-column tail
    blocks builds it (LNN_CM4_T_BLOCKS 0): every width then runs its last columns one at a time. At -O0, where
    gcc calls the C library for fmaf() (newlib's rounds twice: the w8a16 finish was an ulp off there). And for the
    Cortex-M7 (QEMU mps2-an500) and the Cortex-M33 (mps2-an505, Secure state), with their targets' flags (FPv5)
    and memory maps."""
    target = config.load_target(target_name)
    # a directory per configuration: make rebuilds everything when a directory's flags change
    out = OUT.parent / "kerneltest" / f"{target_name}{blocks}{opt}"
    proc = subprocess.run([*firmware_make_args(target, None, out), "-s", f"EXTRA_CFLAGS={blocks}", f"OPT={opt}",
                           "kerneltest"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = subprocess.run([target.qemu.program, "-M", target.qemu.machine, "-cpu", target.qemu.cpu, "-display", "none",
                          "-monitor", "none", "-serial", "none", "-semihosting-config", "enable=on,target=native",
                          "-kernel", str(out / "lnn_cm4_kernel_test.elf")], capture_output=True, text=True, timeout=120)
    lines = run.stderr.splitlines()  # QEMU's semihosting console
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lnn_init picks cm4" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == [
        "ok   cm4 linear vs scalar (1e-5 sum |x w|)", "ok   cm4 linear_t vs scalar (1e-5 sum |x w|)",
        "ok   cm4 linear_tq8 vs scalar (1e-5 sum |x w| + 2^-29 max |x| sum |w|)",
        "ok   cm4 ewise LTC form vs scalar block interpreter (bits)",
        "ok   cm4 ewise unsplit LTC form (w8a16) vs scalar block interpreter (bits)",
        "ok   cm4 conv2d vs scalar (1e-5 sum |x w| + |bias|)", "ok   cm4 linear_w8a16 vs scalar (bits)"]


@pytest.fixture(scope="module")
def sine_with_tests(tmp_path_factory, sine_model) -> Path:
    """ltc-sine (seeded weights) with a bundled test set of PyTorch's outputs, as `invoke compile` bundles."""
    x = np.linspace(-1, 7, 16, dtype=np.float32).reshape(-1, 1)
    with torch.no_grad():
        y = sine_model(torch.from_numpy(x)).numpy()
    tests = lnnb.TestSet(x, y.reshape(len(x), -1), 1e-5)
    compiled = compile_module(sine_model, (torch.zeros(1, 1),), name="ltc-sine", tests=tests)
    return compiled.save(tmp_path_factory.mktemp("sine-tests") / "model.lnnb")


def test_instruction_counts_are_exact_repeatable_and_verify(sine_with_tests):
    """The same instruction count under two -icount shifts (4x apart in emulated time per instruction: a
    count of time would differ 4x); the firmware picked the cm4 set, its outputs verify, and
    the multiply-adds are ltc-sine's products (1x128 input layer, 8 steps of 64x128, 64x1 readout)."""
    image = build_firmware()["elf"]
    board = config.board("qemu-m4")
    assert icount.bench_shift(board.target.clock_hz) == 7  # 128 ns per instruction: 3.2 ticks of 25 MHz
    fine = mcu_bench.count(board, sine_with_tests, image=image)
    coarse = mcu_bench.count(board, sine_with_tests, shift=9, image=image)
    assert fine["isa"] == "cm4"
    assert fine["max_abs_err_vs_bundled"] <= fine["bundled_tolerance"]
    assert coarse["instructions_median"] == fine["instructions_median"]
    assert fine["instructions_min"] <= fine["instructions_median"] <= fine["instructions_max"]
    assert mcu_bench.macs_per_inference(sine_with_tests) == 1 * 128 + 8 * 64 * 128 + 64 * 1


@pytest.fixture(scope="module")
def sine_int8_with_tests(tmp_path_factory, sine_model) -> Path:
    """ltc-sine with int8 weights and a bundled test set of the fake-quantized PyTorch model's outputs."""
    fake = quantize.fake_quantize(sine_model, ())
    x = np.linspace(-1, 7, 16, dtype=np.float32).reshape(-1, 1)
    with torch.no_grad():
        y = fake(torch.from_numpy(x)).numpy()
    compiled = compile_module(fake, (torch.zeros(1, 1),), name="ltc-sine", tests=lnnb.TestSet(x, y, 1e-5),
                              **quantize.compile_options(sine_model, (), "int8"))
    return compiled.save(tmp_path_factory.mktemp("sine-int8") / "model-int8.lnnb")


def test_int8_weights_run_the_integer_kernel_and_verify_on_the_core(sine_int8_with_tests):
    """ltc-sine with int8 weights (its products LINEAR_TQ8 / MATMUL_TQ8: kernels_cm4.c's block floating point
    kernel) on the emulated Cortex-M4F: the outputs within 1e-5 of the fake-quantized PyTorch model's."""
    path = sine_int8_with_tests
    assert {"LINEAR_TQ8", "MATMUL_TQ8"} <= opselect.used_ops(path.read_bytes())
    result = mcu_bench.count(config.board("qemu-m4"), path, image=build_firmware()["elf"])
    assert result["isa"] == "cm4"
    assert result["max_abs_err_vs_bundled"] <= result["bundled_tolerance"] == pytest.approx(1e-5)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The firmware image of a board's target, built once per module."""
    root = tmp_path_factory.mktemp("images")
    return cache(lambda board: build_target_firmware(config.board(board).target, echo=lambda _line: None,
                                                     out=root / board).runner)


@pytest.mark.parametrize(("board", "fpga"), [("qemu-m7", "mps2-an500"), ("qemu-m33", "mps2-an505")])
@pytest.mark.parametrize("scheme", ["float32", "int8"])
def test_the_cm4_kernels_run_and_verify_on_the_cortex_m7_and_m33(board, fpga, scheme, images, sine_with_tests,
                                                                  sine_int8_with_tests):
    """The Cortex-M7 and Cortex-M33 images (targets/cortex-m7.yaml, cortex-m33.yaml: fpv5-sp-d16, DSP; QEMU
    mps2-an500, mps2-an505) pick the cm4 set and verify ltc-sine within 1e-5 with float32 and int8 weights; the
    board names its FPGA image."""
    image = images(board)
    path = sine_with_tests if scheme == "float32" else sine_int8_with_tests
    result = mcu_bench.count(config.board(board), path, image=image)
    assert result["isa"] == "cm4" and result["kernels"] == "cm4,scalar"
    assert result["max_abs_err_vs_bundled"] <= result["bundled_tolerance"] == pytest.approx(1e-5)
    assert fpga.encode() + b"\0" in image.with_suffix(".bin").read_bytes()


def test_bench_refuses_a_board_that_is_not_emulated_firmware():
    with pytest.raises(mcu_bench.McuBenchError, match="not an emulated microcontroller"):
        mcu_bench.count(config.board("qemu-rpi4"), Path("unused.lnnb"))


def test_bench_names_a_file_the_firmware_cannot_hold_without_booting_it(sine_model, tmp_path):
    """ltc-sine with float16 weights widens them into the arena: 34 KB at batch 1 against the nRF51 firmware's
    1,280 bytes. The bench row says so with both figures (lnnedge.fit, from the file and the target file) and no
    emulator starts: the board here names a QEMU that does not exist, so a boot would fail, not be refused."""
    board = config.board("qemu-m0")
    board = replace(board, target=replace(board.target, qemu=replace(board.target.qemu, program="/nonexistent/qemu")))
    f16 = quantize.fake_quantize(sine_model, (), "f16")
    path = compile_module(f16, (torch.zeros(1, 1),), name="ltc-sine",
                          **quantize.compile_options(f16, (), "f16")).save(tmp_path / "f16.lnnb")
    need = lnnb.read(path.read_bytes()).arena_size(1)
    data = mcu_bench.bench(board, "ltc-sine", {"f16": path}, images={})
    assert data["results"]["f16"] == {"refused": f"board qemu-m0: the arena needs {need} bytes but the firmware's "
                                                 "ARENA_SIZE is 1280 (targets/nrf51.yaml firmware.variables)"}
