"""The C VM under AddressSanitizer + UndefinedBehaviorSanitizer: real models, every broken file, every kernel."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import torch
from conftest import inputs_for, lnnvm, untrained
from lnnedge.compiler import compile_module
from test_loader import BROKEN

SANITIZER_MARKS = ("AddressSanitizer", "runtime error", "LeakSanitizer", "UndefinedBehaviorSanitizer")


def _clean(proc) -> None:
    for mark in SANITIZER_MARKS:
        assert mark not in proc.stderr, proc.stderr


def test_sanitized_kernel_test_keeps_every_kernel_within_its_buffers(sanitize_build):
    """vm/tests/kernel_test.c in the sanitizer build (make sanitize): each of the host's kernel sets against the
    scalar one on its tails, partial loads, odd shapes and special values, with no access outside a buffer and
    no undefined behaviour (an over-read of a partial vector or panel would pass the bit comparisons)."""
    program = sanitize_build.runner.parent / "lnn_kernel_test"
    proc = subprocess.run([program], capture_output=True, text=True, timeout=600)
    _clean(proc)
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = re.search(r"(\d+) passed, (\d+) failed", proc.stdout)
    assert summary and int(summary[1]) > 100 and summary[2] == "0", proc.stdout[-3000:]


def test_sanitized_vm_runs_models_exactly_like_pytorch(sanitize_build, tmp_path):
    for name, inputs in (("ltc-sine", 1), ("ltc-3in-rk4", 3)):
        model = untrained(name)
        path = compile_module(model, (torch.zeros(1, inputs),), name=name).save(tmp_path / f"{name}.lnnb")
        x = inputs_for(inputs, 50)
        x.tofile(tmp_path / "in.f32")
        for batch in ("1", "7", "50"):
            proc = lnnvm(sanitize_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out",
                         tmp_path / "out.f32", "--batch", batch)
            assert proc.returncode == 0, proc.stderr
            _clean(proc)
            got = np.fromfile(tmp_path / "out.f32", dtype="<f4").reshape(50, 1)
            with torch.no_grad():
                expected = model(torch.from_numpy(x)).numpy()
            assert np.max(np.abs(got - expected)) <= 1e-5


def test_sanitized_loader_rejects_every_broken_file_cleanly(sanitize_build, tmp_path):
    for name, data in BROKEN.items():
        path = tmp_path / f"{name}.lnnb"
        path.write_bytes(data)
        for command in ("verify", "info", "disasm"):
            proc = lnnvm(sanitize_build.runner, command, path)
            assert proc.returncode == 3, (name, command, proc.stderr)
            assert name in proc.stderr
            _clean(proc)


def test_sanitized_loader_survives_random_corruption(sanitize_build, sine_compiled, tmp_path):
    """Bit flips anywhere, with the CRC fixed so they reach the verifier: an error or a clean run, never a crash."""
    from lnnedge import lnnb

    rng = np.random.default_rng(7)
    data = sine_compiled.data
    x = inputs_for(1, 3)
    x.tofile(tmp_path / "in.f32")
    outcomes = set()
    for i in range(150):
        blob = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            pos = int(rng.integers(16, len(blob)))
            blob[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{i}.lnnb"
        path.write_bytes(lnnb.refresh_crc(bytes(blob)))
        proc = lnnvm(sanitize_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "o.f32")
        _clean(proc)
        assert proc.returncode in (0, 2, 3), proc.stderr
        outcomes.add(proc.returncode)
    assert 3 in outcomes


def test_checked_build_stops_a_run_that_would_leave_its_regions(tmp_path, sine_file):
    """The checked VM (make CHECKED=1; the sanitizer build is checked): a run plan and a tensor table spoiled after
    lnn_init (a verifier gap, simulated) end the run with E_CHECKED before a kernel reads past the constants, in
    the plan and in the interpreter, with ASan and UBSan quiet (vm/tests/checked_test.c)."""
    import subprocess

    from lnnedge.paths import VM_DIR

    out = tmp_path / "checked"
    build = subprocess.run(["make", "-j2", "--no-print-directory", "-C", str(VM_DIR), f"O={out}", "SANITIZE=1",
                            "checkedtest"], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    proc = subprocess.run([str(out / "lnn_checked_test"), str(sine_file)], capture_output=True, text=True,
                          timeout=120)
    _clean(proc)
    assert proc.returncode == 0 and "plan: E_CHECKED, interpreter: E_CHECKED" in proc.stdout, proc.stdout + proc.stderr

