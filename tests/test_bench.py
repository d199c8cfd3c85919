"""invoke bench produces the figures the README's performance table is built from (speed itself is
measured by the benchmark, never asserted by a test)."""

from __future__ import annotations

import json

import pytest
from lnnedge.bench import ENGINES
from lnnedge.console import bench_view, render
from lnnedge.paths import BUILD_DIR
from lnnedge.quant_gate import SCHEMES
from lnnedge.report import bench_table as readme_table
from test_pipeline import ok


@pytest.fixture(scope="module")
def bench_run():
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        ok("train")
    ok("compile")
    proc = ok("bench", "--quick")
    return proc, json.loads((BUILD_DIR / "bench.json").read_text())


def test_bench_reports_every_engine_at_both_batch_sizes(bench_run):
    proc, report = bench_run
    assert "ONNX Runtime" in proc.stdout and "PyTorch eager" in proc.stdout
    assert report["threads"] == 1 and report["cpu"]
    for key in ("batch1", f"batch{report['large_batch']}"):
        row = report["results"][key]
        assert set(row) == set(ENGINES)
        for stats in row.values():
            assert 0 < stats["min_us"] <= stats["median_us"] <= stats["max_us"]
            assert stats["runs"] >= 5
        assert row["c_vm"]["ratio_to_c_vm"] == 1.0


def test_bench_times_every_weight_scheme_against_float32(bench_run):
    """One entry per scheme, float32 the baseline (its ratio exactly 1), the int8 file well under half the
    float one, the float16 model's arena holding its widened weights; both tables show the section."""
    proc, report = bench_run
    w = report["weights"]
    assert w["baseline"] == "float32" and list(w["schemes"]) == ["float32", *SCHEMES]
    large = f"batch{report['large_batch']}"
    for entry in w["schemes"].values():
        for key in ("batch1", large):
            assert entry[key]["median_us"] > 0
    base = w["schemes"]["float32"]
    assert base["batch1"]["ratio_to_baseline"] == base[large]["ratio_to_baseline"] == 1.0
    assert w["schemes"]["int8"]["file_bytes"] < base["file_bytes"] / 2.5
    assert w["schemes"]["f16"]["arena_bytes"]["batch1"] > base["arena_bytes"]["batch1"]
    tables = render(bench_view(report))
    assert "weights: the C VM per weight scheme" in tables
    assert tables in proc.stdout
    assert "| int8 |" in readme_table(report)


def test_a_recipe_without_quantization_is_benched_in_float32_alone():
    """`invoke bench [--board]` compiled the int8 and float16 files of every recipe, so a model whose recipe has no
    quantization section (mlp-digits, cnn-digits, ltc-sequence) was refused before anything was measured."""
    from lnnedge import recipe
    from lnnedge.pipeline.bench import _schemes

    assert recipe.load("mlp-digits").quantization is None and _schemes(recipe.load("mlp-digits")) == ()
    assert _schemes(recipe.load("ltc-sine")) == SCHEMES
