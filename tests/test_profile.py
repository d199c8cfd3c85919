"""invoke profile: per-instruction figures from the profiling runner (host) and the profiling firmware (qemu-m4,
and qemu-m0 whose firmware runs only a model built in), on an LTC compiled here (conftest.sine_file, with its
debug info). No timing is asserted: only that the rows cover the program, the product inside the solver loop
is the top line with its source line, and the shares add up."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from lnnedge import isa, lnnb
from lnnedge.compiler import compile_module
from lnnedge.pipeline.profile import profile

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed")


@pytest.fixture(scope="module")
def sine_file(tmp_path_factory, sine_model):
    """conftest's untrained LTC compiled with a bundled test set (the case a profile runs) and its debug info."""
    x = np.array([[0.5]], dtype=np.float32)
    with torch.no_grad():
        y = sine_model(torch.from_numpy(x)).numpy()
    tests = lnnb.TestSet(x, y.astype(np.float32), 1e-5)
    return compile_module(sine_model, (torch.zeros(1, 1),), name="ltc-sine", tests=tests).save(
        tmp_path_factory.mktemp("profile") / "model.lnnb")


def check(report, sine_file) -> None:
    data = json.loads(report.path.read_text())
    assert report.chart.is_file() and report.chart.stat().st_size > 0
    code = lnnb.read(sine_file.read_bytes()).code
    rows = data["rows"]
    assert [r["pc"] for r in rows] == list(range(len(code)))  # a row per pc of the program
    ops = isa.opcode_by_code()
    for r, word in zip(rows, code, strict=True):
        name = ops[isa.decode(word)[0]].name
        assert r["op"] == name
        # the plan runs every instruction but PUSH and DROP; the solver loop's body 8 times per inference
        assert (r["calls_per_run"] == 0) == (name in ("PUSH", "DROP")), r
    assert sum(r["share_percent"] for r in rows) == pytest.approx(100.0, abs=1e-6)
    top = max(rows, key=lambda r: r["per_run"])
    assert top["op"] == "MATMUL_T" and top["calls_per_run"] == 8, top  # h . W in the loop: the LTC step's product
    assert top["source"].startswith("ltc.py:") and "self.gate(combined)" in top["source"], top
    assert data["sum_corrected"] > 0 and data["whole_plain"] > 0


def test_host_profile_names_the_ltc_product_with_its_source_line(sine_file):
    report = profile(None, "host", str(sine_file), runs=100)
    check(report, sine_file)
    assert report.data["unit"] == "ns" and not report.data["emulated"]


@needs_qemu
@pytest.mark.parametrize("board", ["qemu-m4", "qemu-m0"])  # qemu-m0 takes no upload: the model is built in
def test_firmware_profile_over_the_serial_protocol_counts_emulated_instructions(sine_file, board):
    report = profile(None, board, str(sine_file), runs=1)
    check(report, sine_file)
    assert report.data["unit"] == "instructions" and report.data["emulated"]
    # QEMU's instruction count is exact: the per-instruction sum and the whole run agree closely
    assert report.data["sum_raw_vs_whole_profiled"] == pytest.approx(1.0, abs=0.05)
    assert report.data["sum_corrected_vs_whole_plain"] == pytest.approx(1.0, abs=0.05)
