"""Cross-compiled VMs: the right architecture, NEON where promised, every SIMD kernel against scalar
under QEMU, and the default model verified on every QEMU board."""

from __future__ import annotations

import json
import re
import struct
import subprocess

import numpy as np
import pytest
from conftest import HOST_AVX512, NO_AVX512, lnnvm
from lnnedge import config, isa, lnnb
from lnnedge.build import build, kernel_test, output_dir
from lnnedge.compiler import debuginfo
from lnnedge.paths import BUILD_DIR, ROOT
from test_pipeline import invoke, ok

LINUX_TARGETS = ("rpi4", "rpi3", "x86-64-avx2", "x86-64-sse3")
MACHINE = {"rpi4": "AArch64", "rpi3": "ARM", "x86-64-avx2": "X86-64", "x86-64-sse3": "X86-64"}
QEMU_BOARDS = {"qemu-rpi4": "neon", "qemu-rpi3": "neon", "qemu-x86-sse3": "sse3", "qemu-x86-avx2": "avx2"}


def quiet(_msg: str) -> None:
    return None


@pytest.fixture(scope="module")
def builds():
    return {name: build(config.load_target(name), echo=quiet) for name in LINUX_TARGETS}


@pytest.fixture(scope="module")
def trained():
    """A trained and compiled ltc-sine under build/ (what `invoke train` + `invoke compile` leave)."""
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        ok("train")
    ok("compile")
    return BUILD_DIR / "ltc-sine" / "model.lnnb"


def readelf(path) -> str:
    return subprocess.run(["readelf", "-h", "-l", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", LINUX_TARGETS)
def test_build_has_the_target_architecture_and_is_static(builds, name):
    header = readelf(builds[name].runner)
    machine = re.search(r"Machine:\s+(.*)", header).group(1)
    assert MACHINE[name] in machine.replace("Advanced Micro Devices ", "")
    assert "INTERP" not in header, "Linux target binaries must be static (no dynamic loader)"
    if name == "rpi3":
        assert "hard-float ABI" in header and "Version5 EABI" in header


def test_apple_m1_build_is_an_arm64_mach_o():
    result = build(config.load_target("apple-m1"), echo=quiet)
    head = result.runner.read_bytes()[:8]
    magic, cputype = struct.unpack("<II", head)
    assert magic == 0xFEEDFACF, "64-bit Mach-O magic"
    assert cputype == 0x0100000C, "CPU_TYPE_ARM64"


@pytest.mark.parametrize("name, pattern", [
    ("rpi4", r"\b(fmla|fmul|fadd|ld1|st1)\s+v\d+\.4s"),
    ("rpi3", r"\bv(mla|mul|add|ld1|st1)\.(f32|32)\s+[{]?[qd]\d+"),
])
def test_arm_kernels_contain_neon_instructions(builds, name, pattern):
    objdump = config.load_target(name).toolchain.objdump
    listing = subprocess.run([objdump, "-d", str(builds[name].runner)], capture_output=True, text=True,
                             check=True).stdout
    neon_functions = re.split(r"\n(?=[0-9a-f]+ <)", listing)
    bodies = [f for f in neon_functions if re.match(r"[0-9a-f]+ <[^>]*__neon", f)]
    assert bodies, "no *__neon kernel functions in the binary"
    vector_ops = sum(len(re.findall(pattern, body)) for body in bodies)
    assert vector_ops >= 20, f"only {vector_ops} NEON vector instructions in the NEON kernels"


def test_sse3_build_uses_no_avx_registers(builds):
    """Our objects only: the static libc inside the binary picks its own memcpy by CPU at run time."""
    objects = sorted((builds["x86-64-sse3"].runner.parent / "obj").glob("*.o"))
    assert any(o.name == "kernels_sse3.o" for o in objects)
    listing = subprocess.run(["objdump", "-d", *map(str, objects)], capture_output=True, text=True,
                             check=True).stdout
    assert "%ymm" not in listing and "%zmm" not in listing
    assert "%xmm" in listing


def test_avx2_build_carries_no_avx512_code(builds):
    """x86-64-avx2 is for CPUs without AVX-512: the avx512 set is not compiled in, and no object uses ZMM."""
    objects = sorted((builds["x86-64-avx2"].runner.parent / "obj").glob("*.o"))
    assert any(o.name == "kernels_avx2.o" for o in objects)
    assert not any(o.name == "kernels_avx512.o" for o in objects)
    listing = subprocess.run(["objdump", "-d", *map(str, objects)], capture_output=True, text=True,
                             check=True).stdout
    assert "%zmm" not in listing and "%ymm" in listing


@pytest.mark.skipif(not HOST_AVX512, reason=NO_AVX512)
def test_host_build_picks_avx512_where_the_cpu_has_it(host_build, sine_file, tmp_path):
    """cpuid + xgetbv say AVX-512 here: lnn_init takes avx512, every x86 set stays selectable by name."""
    info = lnnvm(host_build.runner, "info", sine_file).stdout
    assert "isa: avx512" in info and "kernels: avx512,avx2,sse3,scalar" in info
    x = np.random.default_rng(1).uniform(-1, 1, (7, 1)).astype("<f4")
    x.tofile(tmp_path / "in.f32")
    outs = {}
    for isa_name in ("avx2", "avx512"):
        proc = lnnvm(host_build.runner, "run", sine_file, "--in", tmp_path / "in.f32", "--out",
                     tmp_path / f"{isa_name}.f32", "--batch", "7", "--kernels", isa_name)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.strip().splitlines()[-1])["isa"] == isa_name
        outs[isa_name] = np.fromfile(tmp_path / f"{isa_name}.f32", dtype="<f4")
    assert np.abs(outs["avx512"] - outs["avx2"]).max() <= 1e-5


@pytest.mark.parametrize("name", ["host", *LINUX_TARGETS])
def test_every_simd_kernel_matches_scalar(name):
    target = config.load_target(name)
    program = kernel_test(target, echo=quiet)
    prefix = [target.qemu.program, "-cpu", target.qemu.cpu] if target.qemu else []
    proc = subprocess.run([*prefix, str(program)], capture_output=True, text=True, timeout=600)
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    passed, failed = map(int, re.fullmatch(r"(\d+) passed, (\d+) failed", summary).groups())
    assert failed == 0 and passed > 0
    if name == "host" and HOST_AVX512:  # every avx512 kernel ran (not "skip avx512: the processor lacks it")
        assert "ok   avx512 linear_tq8" in proc.stdout and "ok   avx512 matmul" in proc.stdout


@pytest.mark.parametrize("board, expected_isa", sorted(QEMU_BOARDS.items()))
def test_default_model_verifies_on_every_qemu_board(trained, board, expected_isa):
    ok("build", "--target", config.board(board).target.name)
    ok("verify", "--board", board)
    report = json.loads((BUILD_DIR / "ltc-sine" / f"verify-{board}.json").read_text())
    assert report["passed"] is True
    assert report["max_abs_err"] <= 1e-5
    assert report["isa"] == expected_isa
    assert report["target"] == config.board(board).target.name


def test_avx2_build_refuses_a_cpu_without_avx(builds, trained):
    proc = subprocess.run(["qemu-x86_64", "-cpu", "core2duo", str(builds["x86-64-avx2"].runner), "verify",
                           str(trained)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "E_CPU" in proc.stderr
    assert "Illegal instruction" not in proc.stderr


def test_trace_finds_no_mismatch_on_a_good_model(trained):
    proc = ok("verify", "--board", "qemu-rpi4", "--trace")
    assert "instructions agree" in proc.stdout


def test_trace_names_the_first_op_that_differs(trained):
    """Nudge the gate layer's first bias in the file: the first instruction computing with it must be named, not a
    later op. In the optimised code that is the input projection before the loop (LINEAR_T: x . W[:, :1] + b for
    the gate and the candidate at once), compared with PyTorch's partial sum of the gate layer."""
    original = trained.read_bytes()
    program = lnnb.read(original)
    debug = debuginfo.load(trained, original)
    entry = next(d for d in debug if any(p and p["module"] == "ode.func.gate" and p["bias"]
                                         for p in d.get("parts") or []))
    gate_pc = entry["pc"]
    part = next(j for j, p in enumerate(entry["parts"]) if p and p["module"] == "ode.func.gate")
    first = isa.decode(program.code[gate_pc])[2]  # the destinations: one per part, columns in order
    column = sum(program.tensors[first + j].dims[-1] for j in range(part))
    bias_index = isa.decode(program.code[gate_pc - 1])[2]  # the PUSH just before LINEAR_T: the stacked bias
    consts_at, _ = lnnb.section_offsets(original)[isa.const("SEC_CONSTS")]
    offset = consts_at + program.tensors[bias_index].offset + 4 * column
    data = bytearray(original)
    struct.pack_into("<f", data, offset, struct.unpack_from("<f", data, offset)[0] + 0.01)
    try:
        trained.write_bytes(lnnb.refresh_crc(bytes(data)))
        proc = invoke("verify", "--board", "qemu-rpi4", "--trace")
        assert proc.returncode == 1
        assert f"(pc {gate_pc}, LINEAR" in proc.stdout and "loop iteration 0" in proc.stdout
        assert "PyTorch (ode.func.gate)" in proc.stdout
    finally:
        trained.write_bytes(original)


def test_cmake_toolchain_file_cross_builds_without_invoke(tmp_path):
    build_dir = tmp_path / "cmake-aarch64"
    subprocess.run(["cmake", "-S", str(ROOT / "vm"), "-B", str(build_dir), "-DLNN_ISA=neon",
                    f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'toolchains/cmake/aarch64-linux-gnu.cmake'}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build_dir)], check=True, capture_output=True)
    runners = [p for p in build_dir.rglob("lnnvm") if p.is_file()]
    assert runners and "AArch64" in readelf(runners[0])


def test_boards_and_targets_are_listed():
    boards = ok("boards").stdout
    assert re.search(r"^\*\s+qemu-rpi4\b", boards, re.M), "qemu-rpi4 is the default board"
    targets = ok("targets").stdout
    for name in ("rpi4", "rpi3", "apple-m1", "x86-64-avx2", "x86-64-sse3", "host"):
        assert name in targets
    assert output_dir(config.load_target("rpi4")).name == "rpi4"


@pytest.mark.parametrize("name", ["host", *LINUX_TARGETS])
def test_vm_stays_within_its_size_budget(builds, name):
    result = builds.get(name) or build(config.load_target(name), echo=quiet)
    target = config.load_target(name)
    assert target.vm_size_budget > 0
    assert result.vm_bytes is not None and 0 < result.vm_bytes <= target.vm_size_budget


def test_a_build_over_budget_fails_with_the_numbers():
    from dataclasses import replace

    from lnnedge.build import BuildError

    tight = replace(config.load_target("rpi4"), vm_size_budget=1000)
    with pytest.raises(BuildError, match=r"over its budget of 1000 bytes"):
        build(tight, echo=quiet)


def test_kit_installs_every_toolchains_debian_packages():
    """kit reads the toolchains' package lists from toolchains/*.yaml instead of repeating them."""
    listed = set(subprocess.run(["bash", str(ROOT / "kit"), "--apt-packages"], check=True, capture_output=True,
                                text=True).stdout.split())
    for path in sorted((ROOT / "toolchains").glob("*.yaml")):
        wanted = set(config.load_toolchain(path.stem).debian_packages)
        assert wanted <= listed, f"{path.name}: kit does not install {sorted(wanted - listed)}"


def test_a_changed_target_configuration_is_rebuilt_from_scratch(tmp_path, monkeypatch):
    """Regression: make compares files, not the flags it is given, so after an edit of targets/<name>.yaml (a flag,
    the kernel set, a memory size) the objects compiled with the old flags stayed, `invoke build` relinked them and
    the tasks that build on demand (ensure_built) ran the old image. Now the build records the configuration it was
    compiled for, and another one recompiles everything."""
    import dataclasses

    from lnnedge import build as building

    monkeypatch.setattr(building, "BUILD_DIR", tmp_path)  # its own output: the real build/ stays as it is
    target = config.load_target("x86-64-sse3")
    build(target, echo=lambda _line: None)
    said: list[str] = []
    building.ensure_built(target, say=said.append)
    assert said == []  # up to date
    changed = dataclasses.replace(target, cflags=(*target.cflags, "-DLNN_TEST_CONFIG_CHANGED=1"))
    compiled = (output_dir(target) / "obj" / "interp.o").stat().st_mtime_ns
    building.ensure_built(changed, say=said.append)
    assert len(said) == 1 and "built for another configuration of targets/x86-64-sse3.yaml" in said[0]
    assert (output_dir(target) / "obj" / "interp.o").stat().st_mtime_ns > compiled
    building.ensure_built(changed, say=said.append)
    assert len(said) == 1  # and now up to date for the new one
