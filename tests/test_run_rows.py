"""lnn_run_rows (vm/src/rows.c): many rows as lnn_run calls of at most `batch` rows, a stateful model's chunks as
time steps; the runner, the firmware and CVM.run_rows all run through it. And the VM's one source list
(vm/sources.mk), which every build reads."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from conftest import lnnvm
from lnnedge.paths import ROOT, VM_DIR
from lnnedge.runtime import CVM, VMError
from test_loader import VALID, _running_sums, expected_output, stateful


def test_rows_in_chunks_give_what_one_run_gives(host_build):
    x = np.random.default_rng(3).uniform(-2, 2, (10, 2)).astype(np.float32)
    whole = CVM(VALID, max_batch=10, library=host_build.library).run([x])[0]
    np.testing.assert_allclose(whole, expected_output(x), rtol=1e-6)
    vm = CVM(VALID, max_batch=3, library=host_build.library)
    for batch in (1, 3, vm.max_batch):  # 10 rows: chunks of 3, 3, 3, 1 at batch 3
        np.testing.assert_array_equal(vm.run_rows([x], batch)[0], whole)
    assert vm.max_batch < 10
    with pytest.raises(VMError, match="E_BATCH"):  # a chunk above what the arena holds
        vm.run_rows([x], vm.max_batch + 1)


def test_a_stateful_models_chunks_are_time_steps_that_continue_the_state(host_build):
    x = np.random.default_rng(5).uniform(-2, 2, (6, 3, 2)).astype(np.float32)  # 6 steps of 3 streams
    vm = CVM(stateful(), max_batch=3, library=host_build.library)
    rows = x.reshape(18, 2)
    np.testing.assert_array_equal(vm.run_rows([rows], 3)[0].reshape(x.shape), _running_sums(x))
    # no reset inside: a second call continues from the state the first left; lnn_reset starts from zero
    vm.reset()
    first = vm.run_rows([rows[:9]], 3)[0]
    second = vm.run_rows([rows[9:]], 3)[0]
    np.testing.assert_array_equal(np.concatenate([first, second]).reshape(x.shape), _running_sums(x))
    # 18 rows at batch 4: the last chunk of 2 would be another batch and start from zero; refused, state kept
    vm.reset()
    vm.run_rows([rows[:3]], 3)
    with pytest.raises(VMError, match="E_BATCH"):
        vm.run_rows([rows], 4)
    np.testing.assert_array_equal(vm.run_rows([rows[3:6]], 3)[0], x[0] + x[1])


def test_the_runner_and_the_bindings_agree(tmp_path, host_build):
    """lnnvm run --batch (with threads for a stateless model) and CVM.run_rows: the same rows, the same floats."""
    for data, rows, batch, extra in ((VALID, 11, 4, ("--threads", "2")), (stateful(), 12, 3, ())):
        path = tmp_path / "m.lnnb"
        path.write_bytes(data)
        x = np.random.default_rng(rows).uniform(-2, 2, (rows, 2)).astype(np.float32)
        x.tofile(tmp_path / "in.f32")
        proc = lnnvm(host_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "out.f32",
                     "--batch", batch, *extra)
        assert proc.returncode == 0, proc.stderr
        got = np.fromfile(tmp_path / "out.f32", dtype="<f4")
        want = CVM(data, max_batch=batch, library=host_build.library).run_rows([x], batch)[0]
        np.testing.assert_array_equal(got, want.ravel())


# ---- the one source list -----------------------------------------------------------------------------------


def _sources_mk() -> dict[str, list[str]]:
    out = {}
    for line in (VM_DIR / "sources.mk").read_text().splitlines():
        m = re.match(r"^(LNN_[A-Za-z0-9_]+) :=[ ]*(.*)$", line)
        if m:
            out[m[1]] = m[2].split()
        else:
            assert re.match(r"^\s*(#.*)?$", line), f"sources.mk: not a `LNN_NAME := words` line: {line!r}"
    return out


def test_every_vm_source_is_in_the_one_list_and_named_nowhere_else():
    lists = _sources_mk()
    listed = set(lists["LNN_LIB_SRCS"]).union(*(v for k, v in lists.items() if k.startswith("LNN_ISA_SRCS_")))
    on_disk = {p.name for p in (VM_DIR / "src").glob("*.c")}
    assert on_disk == listed, f"not in sources.mk: {on_disk - listed}; listed, not in src/: {listed - on_disk}"
    # the build files (comments aside) name no file of vm/src: they take the list from sources.mk
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    build_files = [f for f in tracked if re.search(r"(^|/)(Makefile|CMakeLists\.txt)$|\.(mk|cmake)$", f)
                   and f != "vm/sources.mk"]
    assert {"vm/Makefile", "vm/CMakeLists.txt", "vm/firmware/Makefile", "vm/fuzz/Makefile"} <= set(build_files)
    names = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(on_disk)) + r")\b")
    for f in build_files:
        for lno, line in enumerate((ROOT / f).read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not names.search(code), f"{f}:{lno} names a file of vm/src: {line.strip()}"
    for f in ("vm/Makefile", "vm/firmware/Makefile"):
        assert re.search(r"^include .*sources\.mk$", (ROOT / f).read_text(), re.M), f
    assert "sources.mk" in (VM_DIR / "CMakeLists.txt").read_text()


def test_cmake_reads_the_list_and_builds_the_checked_vm(tmp_path):
    """The CMake build from sources.mk with LNN_CHECKED=ON: the same library files as make, compiled with
    -DLNN_CHECKED=1 and the per-file ISA flags."""
    build = tmp_path / "cmake"
    subprocess.run(["cmake", "-S", VM_DIR, "-B", build, "-DLNN_ISA=auto", "-DLNN_CHECKED=ON"], check=True,
                   capture_output=True)
    flags = (build / "CMakeFiles" / "liblnnvm.dir" / "flags.make").read_text()
    assert "-DLNN_CHECKED=1" in flags
    lists = _sources_mk()
    for src in lists["LNN_LIB_SRCS"]:
        assert f"src/{src}" in (build / "CMakeFiles" / "liblnnvm.dir" / "build.make").read_text()
    if "x86" in subprocess.run(["cc", "-dumpmachine"], capture_output=True, text=True).stdout:
        assert "kernels_avx2.c.o_OPTIONS = -mavx2;-mfma" in flags
