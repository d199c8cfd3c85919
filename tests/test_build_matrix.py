"""The VM's C is warning-free (-Wall -Wextra -Werror -Wpedantic, vm/Makefile's WARN) at every optimization level,
with gcc and clang, on every Linux-class compiler the targets name: some warnings (-Wmaybe-uninitialized,
-Wstringop-overflow, clang's -Wunused at -O0) appear only at one level, and the targets build at -O2 alone. On the
host each build also runs the kernel test (every SIMD kernel against the scalar one): the bits must not depend on
the optimizer. The firmware image (arm-none-eabi-gcc) at every level too; with clang, every board's own firmware
files (the Makefile's `objects`, compiled, not linked) and the VM library for the same Cortex-M cores, as a user
embeds it in firmware that clang builds."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from lnnedge import config
from lnnedge.build import firmware_make_args, make_command, tool_command
from lnnedge.config import Target

LEVELS = ["-O0", "-O1", "-O2", "-O3", "-Os"]


def at_level(target: Target, level: str, cc: str | None = None, ar: str | None = None) -> Target:
    """The target with its -O flag replaced by `level` (and its compiler by `cc`, for clang on the host)."""
    flags = tuple(flag for flag in target.cflags if not flag.startswith("-O"))
    toolchain = dataclasses.replace(target.toolchain, cc=cc or target.toolchain.cc, ar=ar or target.toolchain.ar)
    return dataclasses.replace(target, cflags=(*flags, level), toolchain=toolchain)


def make(target: Target, out: Path, *goals: str) -> None:
    compiler = tool_command(target.toolchain.cc)[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (./kit installs it)")
    args = make_command(target, out, goals[0])
    proc = subprocess.run([*args, *goals[1:], "-s"], capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_host_build_is_warning_free_and_its_kernels_match_scalar_at_every_level(cc, level, tmp_path):
    """The library, the runner and the kernel test with the host's x86 kernel sets (sse3, avx2, avx512)."""
    make(at_level(config.load_target("host"), level, cc), tmp_path, "runner", "kerneltest")
    run = subprocess.run([str(tmp_path / "lnn_kernel_test")], capture_output=True, text=True, timeout=300)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0 and summary.endswith(" passed, 0 failed"), run.stdout[-3000:] + run.stderr[-2000:]


# one target per compiler and word size: 64-bit ARM (gcc), 32-bit ARM (gcc), arm64 macOS (zig's clang)
CROSS = ["rpi4", "armv7", "apple-m1"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", CROSS)
def test_cross_library_is_warning_free_at_every_level(name, level, tmp_path):
    """The library with the NEON kernel set, compiled by the target's own cross toolchain and flags."""
    make(at_level(config.load_target(name), level), tmp_path, str(tmp_path / "liblnnvm.a"))
    assert (tmp_path / "liblnnvm.a").stat().st_size > 0


# the firmware CPUs: Cortex-M4F, M7 and M33 (FPU, DSP: the cm4 kernel set), Cortex-M55 (Helium), Cortex-M0 (no FPU)
FIRMWARE = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "nrf51"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", FIRMWARE)
def test_firmware_is_warning_free_at_every_level(name, level, tmp_path):
    """The firmware image (VM, kernel sets, serial protocol, board support) at the level (OPT, the last wins)."""
    target = config.load_target(name)
    if shutil.which(target.toolchain.cc) is None:
        pytest.skip(f"{target.toolchain.cc} is not installed (./kit installs it)")
    args = [*firmware_make_args(target, None, tmp_path), f"OPT={level}", "-s"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    assert (tmp_path / target.firmware.elf).stat().st_size > 0


# the kernel sets a core's build holds besides the scalar one (an MVE core also links cm4: lnn_use_kernels can pick it)
CORTEX_M_SETS = {"cortex-m4": {"lnn_kernels_cm4"}, "cortex-m7": {"lnn_kernels_cm4"}, "cortex-m33": {"lnn_kernels_cm4"},
                 "cortex-m55": {"lnn_kernels_cm4", "lnn_kernels_mve"}, "nrf51": set()}


@cache
def newlib_include() -> str:
    """The C library headers of the arm-none-eabi toolchain (Debian's libnewlib-dev), which clang has none of."""
    probe = subprocess.run(["arm-none-eabi-gcc", "-E", "-Wp,-v", "-"], input="", capture_output=True, text=True)
    dirs = [line.strip() for line in probe.stderr.splitlines() if line.startswith(" /")]
    return next(d for d in dirs if d.rstrip("/").endswith("arm-none-eabi/include"))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", FIRMWARE)
def test_cortex_m_library_with_clang_is_warning_free_at_every_level(name, level, tmp_path):
    """vm/Makefile's library with ISA=auto for the firmware target's CPU flags: the scalar set, and the cm4 (its
    Thumb-2 assembly through clang's integrated assembler) or mve (Helium intrinsics) set the core has."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc (the newlib headers) is not installed (./kit installs it)")
    target = config.load_target(name)
    flags = ("--target=arm-none-eabi", *target.cflags, "-isystem", newlib_include())
    clang = dataclasses.replace(at_level(dataclasses.replace(target, cflags=flags), level, "clang", "arm-none-eabi-ar"),
                                simd="auto")
    make(clang, tmp_path, str(tmp_path / "liblnnvm.a"))
    symbols = subprocess.run(["arm-none-eabi-nm", "--defined-only", str(tmp_path / "liblnnvm.a")],
                             capture_output=True, text=True).stdout.split()
    assert "lnn_kernels_scalar" in symbols
    assert {"lnn_kernels_cm4", "lnn_kernels_mve"} & set(symbols) == CORTEX_M_SETS[name]


# one firmware target per board (BOARD in targets/*.yaml): each board's own C files, with its core's flags
FIRMWARE_BOARDS = sorted({t.firmware.variables["BOARD"]: t.name for t in map(config.load_target, config.target_names())
                          if t.firmware is not None}.values())


@pytest.mark.parametrize("name", FIRMWARE_BOARDS)
def test_firmware_files_with_clang_are_warning_free_at_every_level(name, tmp_path):
    """The firmware's own C files (the Makefile's `objects`: startup, board, protocol, libc_mem) compiled by clang
    for the target's core with the Makefile's flags, at the five levels at once (one make each, side by side)."""
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("clang") is None:
        pytest.skip("clang or arm-none-eabi-gcc (the newlib headers) is not installed (./kit installs them)")
    target = config.load_target(name)
    cpu = " ".join(("--target=arm-none-eabi", *target.cflags, "-isystem", newlib_include()))
    builds = {level: subprocess.Popen([*firmware_make_args(target, None, tmp_path / level), "CC=clang", f"CPU={cpu}",
                                       f"OPT={level}", "objects", "-s"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for level in LEVELS}
    outputs = {level: proc.communicate()[0] for level, proc in builds.items()}
    failed = [f"{level}:\n{outputs[level][-3000:]}" for level, proc in builds.items() if proc.returncode != 0]
    assert not failed, "\n".join(failed)
    for level in LEVELS:
        objects = list((tmp_path / level / "obj").glob("*.o"))
        assert objects and all(b"clang version" in o.read_bytes() for o in objects), f"{level}: not clang's objects"
