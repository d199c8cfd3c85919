"""`invoke readme-table --only`: a checkout that measured some figures again writes just those blocks, each from
its report, and leaves the others as they are."""

from __future__ import annotations

import json

import pytest
from lnnedge.report import ReportError, update_readme

README = """# x
<!-- results:begin -->
old results
<!-- results:end -->
<!-- matmul:begin -->
old matmul
<!-- matmul:end -->
<!-- mcu-bench:begin -->
old counts
<!-- mcu-bench:end -->
"""
MATMUL = {"cpu": "test cpu", "isa": "avx2", "n": 64, "runs": 5, "vm_ns_median": 2e5, "naive_ns_median": 4e6,
          "speedup": 20.0, "vm_gflops": 2.6, "naive_gflops": 0.13}


@pytest.fixture
def checkout(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    fuzz = tmp_path / "vm" / "fuzz" / "README.md"
    fuzz.parent.mkdir(parents=True)
    fuzz.write_text("<!-- fuzz:begin -->\nold fuzz\n<!-- fuzz:end -->\n")
    build = tmp_path / "build"
    build.mkdir()
    (build / "bench.json").write_text(json.dumps({"matmul": MATMUL}))
    return readme, fuzz, build


def test_only_the_named_block_is_written(checkout):
    readme, fuzz, build = checkout
    out = update_readme(readme, build, only=("matmul",))
    text = readme.read_text()
    assert out.startswith("Last run (test cpu, avx2, 64×64×64, 5 runs each)")
    assert f"<!-- matmul:begin -->\n{out}\n<!-- matmul:end -->" in text
    assert "old results" in text and "old counts" in text and "old matmul" not in text
    assert "old fuzz" in fuzz.read_text()


def test_a_block_without_its_report_or_an_unknown_name_is_refused_and_nothing_is_written(checkout):
    readme, fuzz, build = checkout
    with pytest.raises(ReportError, match=r"no report in .*build for mcu-bench: run its task first"):
        update_readme(readme, build, only=("matmul", "mcu-bench"))
    with pytest.raises(ReportError, match=r"no README block named mcu; the blocks: fuzz, matmul, mcu-bench, results"):
        update_readme(readme, build, only=("mcu",))
    assert readme.read_text() == README and "old fuzz" in fuzz.read_text()
