"""The pipeline as a user runs it: the invoke tasks, as processes, on the real recipes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from lnnedge import isa, lnnb
from lnnedge.paths import BUILD_DIR, ROOT

INVOKE = [sys.executable, "-m", "invoke"]


def invoke(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`invoke ARGS` as a process from the repository root; `env` adds environment variables."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*INVOKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


def ok(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = invoke(*args, env=env)
    assert proc.returncode == 0, f"invoke {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def demo():
    """`invoke demo`: train -> compile -> build -> verify on the default board."""
    return ok("demo")


def _report(model: str, board: str) -> dict:
    return json.loads((BUILD_DIR / model / f"verify-{board}.json").read_text())


def test_demo_runs_the_whole_pipeline_on_qemu_rpi4_and_passes(demo):
    """The default board is the QEMU Raspberry Pi 4: aarch64 build, NEON kernels, under qemu-aarch64."""
    out = BUILD_DIR / "ltc-sine"
    for name in ("checkpoint.pt", "train-metrics.json", "loss.png", "model.lnnb", "model.lnnb.txt",
                 "verify-qemu-rpi4.json", "verify-qemu-rpi4.png"):
        assert (out / name).is_file(), name
    assert (BUILD_DIR / "vm" / "rpi4" / "lnnvm").is_file()
    metrics = json.loads((out / "train-metrics.json").read_text())
    assert metrics["test_rmse"] <= 0.02
    report = _report("ltc-sine", "qemu-rpi4")
    assert report["isa"] == "neon" and report["target"] == "rpi4"
    assert report["passed"] is True
    assert report["n"] == 1024
    assert report["max_abs_err"] <= 1e-5
    assert report["reference_vm"]["max_abs_err"] <= 1e-5
    assert report["tolerance"] == 1e-5
    assert report["latency_us"] > 0
    assert {"model", "board", "target", "rmse", "isa"} <= set(report)
    assert "PASSED" in demo.stdout


def test_single_steps_and_run(demo):
    ok("compile")
    ok("build", "--target", "host")
    verify = ok("verify", "--board", "host")
    assert "reference VM (numpy)" in verify.stdout
    run = ok("run", "--board", "host", "--inputs", "0.5,1.5")
    lines = [line for line in run.stdout.splitlines() if "->" in line]
    assert len(lines) == 2


def test_second_recipe_hidden16_input3_rk4_trains_compiles_and_verifies():
    ok("train", "--model", "ltc-3in-rk4")
    ok("compile", "--model", "ltc-3in-rk4")
    ok("verify", "--model", "ltc-3in-rk4", "--board", "host")
    report = _report("ltc-3in-rk4", "host")
    assert report["passed"] and report["max_abs_err"] <= 1e-5


def test_verify_fails_with_nonzero_exit_when_the_device_disagrees(demo, tmp_path):
    """A model file whose weights were altered (CRC fixed, so it loads) must fail verification."""
    ok("build", "--target", "host")
    path = BUILD_DIR / "ltc-sine" / "model.lnnb"
    original = path.read_bytes()
    try:
        consts_at, _ = lnnb.section_offsets(original)[isa.const("SEC_CONSTS")]
        data = bytearray(original)
        value = struct.unpack_from("<f", data, consts_at)[0]
        struct.pack_into("<f", data, consts_at, value + 0.5)
        path.write_bytes(lnnb.refresh_crc(bytes(data)))
        proc = invoke("verify", "--board", "host")
        assert proc.returncode != 0
        assert "verification failed" in proc.stderr
        assert _report("ltc-sine", "host")["passed"] is False
    finally:
        path.write_bytes(original)
    ok("verify", "--board", "host")


@pytest.mark.parametrize("args, message", [
    (("verify", "--board", "mars"), "unknown board or group 'mars'"),
    (("train", "--model", "no-such-model"), "recipe 'no-such-model' not found"),
    (("build", "--target", "pdp11"), "unknown target 'pdp11'"),
])
def test_user_mistakes_give_one_line_and_nonzero_exit(args, message):
    proc = invoke(*args)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_model_file_is_a_clear_error(demo, tmp_path):
    path = BUILD_DIR / "ltc-sine" / "model.lnnb"
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-10])
        proc = invoke("verify", "--board", "host")
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert "header says" in proc.stderr or "E_" in proc.stderr
    finally:
        path.write_bytes(original)


def test_listings_and_tasks_are_documented():
    proc = ok("--list")
    for name in ("train", "compile", "build", "run", "verify", "demo", "targets", "boards", "train-seeds"):
        assert name in proc.stdout
    assert "host" in ok("boards").stdout
    assert "host" in ok("targets").stdout


def test_ruff_is_clean():
    """Every Python file of the checkout (the VM's scripts under vm/ and the examples too; .gitignore'd ones not)."""
    proc = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
