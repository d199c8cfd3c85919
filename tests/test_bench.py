"""invoke bench produces the figures the README's performance table is built from (speed itself is
measured by the benchmark, never asserted by a test)."""

from __future__ import annotations

import json

from lnnedge.bench import ENGINES
from lnnedge.paths import BUILD_DIR
from test_pipeline import ok


def test_bench_reports_every_engine_at_both_batch_sizes():
    if not (BUILD_DIR / "ltc-sine" / "checkpoint.pt").is_file():
        ok("train")
    ok("compile")
    proc = ok("bench", "--quick")
    assert "ONNX Runtime" in proc.stdout and "PyTorch eager" in proc.stdout
    report = json.loads((BUILD_DIR / "bench.json").read_text())
    assert report["threads"] == 1 and report["cpu"]
    for key in ("batch1", f"batch{report['large_batch']}"):
        row = report["results"][key]
        assert set(row) == set(ENGINES)
        for stats in row.values():
            assert 0 < stats["min_us"] <= stats["median_us"] <= stats["max_us"]
            assert stats["runs"] >= 5
        assert row["c_vm"]["ratio_to_c_vm"] == 1.0
