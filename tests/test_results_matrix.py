"""results.yaml, the README results table's rows: what it may name, and a table written from it that never
drops a row."""

from __future__ import annotations

import json

import pytest
from lnnedge import config, results_matrix
from lnnedge.pipeline.results import measure
from lnnedge.report import ReportError, results_table
from lnnedge.results_matrix import MatrixError, ResultRow


def test_the_shipped_matrix_has_the_demo_recipe_on_every_qemu_board():
    rows = results_matrix.load()
    demo = {r.board for r in rows if r.model == "ltc-sine" and r.quant is None}
    assert set(config.load_groups()["qemu-all"]) | {"host"} <= demo
    assert {r.quant for r in rows} == {None, "int8", "w8a16", "f16"}


@pytest.mark.parametrize("text, message", [
    ("ltc-sinus:\n  float32: [host]\n", "no recipe 'ltc-sinus' (recipes: "),
    ("ltc-sine:\n  int4: [host]\n", "ltc-sine: no scheme 'int4' (schemes: float32, int8, w8a16, f16)"),
    ("ltc-sine:\n  float32: [qemu-m5]\n", "ltc-sine.float32: no board 'qemu-m5' in boards.yaml"),
    ("ltc-sine:\n  int8: host\n", "ltc-sine.int8: expected a list of board names"),
    ("ltc-sine:\n  f16: [host, qemu-m4, host]\n", "ltc-sine (f16) on host is listed twice"),
    ("- ltc-sine\n", "expected a mapping of recipe names"),
    ("ltc-sine: [host]\n", "ltc-sine: expected a mapping of schemes"),
    ("ltc-sine: {float32: [host]\n", "results.yaml: while parsing"),
])
def test_a_wrong_entry_is_refused_by_name(tmp_path, text, message):
    path = tmp_path / "results.yaml"
    path.write_text(text)
    with pytest.raises(MatrixError) as err:
        results_matrix.load(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def _report(row: ResultRow, err: float) -> dict:
    return {"model": row.model, "board": row.board, "isa": "test-isa", "n": 16, "max_abs_err": err,
            "tolerance": 1e-5, "latency_us": 2.5, "emulated": row.board != "host", "kind": "fit",
            "device_vs_true_rmse": 0.01, "passed": err <= 1e-5, **({"weights": row.quant} if row.quant else {})}


def test_the_table_follows_the_matrix_and_names_the_rows_it_lacks(tmp_path):
    matrix = tmp_path / "results.yaml"
    matrix.write_text("ltc-sine:\n  float32: [qemu-m4, host]\n  int8: [host]\nmlp-digits:\n  float32: [host]\n")
    rows = results_matrix.load(matrix)
    build = tmp_path / "build"
    for n, row in enumerate(rows[:3]):
        path = row.report_path(build)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_report(row, 1e-6 * (n + 1))))
    with pytest.raises(ReportError, match=r"for 1 of the results table's 4 rows \(mlp-digits on host\): "
                                          r"run `invoke results --missing` first"):
        results_table(build, matrix)
    (build / "ltc-sine" / "verify-host-int8.json").unlink()
    with pytest.raises(ReportError, match=r"2 of .* rows \(ltc-sine \(int8\) on host; mlp-digits on host\)"):
        results_table(build, matrix)

    matrix.write_text("ltc-sine:\n  float32: [qemu-m4, host]\n  f16: [host]\n")
    f16 = ResultRow("ltc-sine", "f16", "host")
    f16.report_path(build).write_text(json.dumps(_report(f16, 3e-5)))
    lines = results_table(build, matrix).splitlines()[2:]
    assert [line.split(" | ")[:2] for line in lines] == [["| ltc-sine", "qemu-m4"], ["| ltc-sine", "host"],
                                                          ["| ltc-sine (f16 weights)", "host"]]
    assert "1.00e-06 | 1e-05 | 2.5 (emulated) |" in lines[0] and lines[2].endswith("| NO |")
    # `verify --file` of the recipe's model file writes the same name: not the row's figures
    f16.report_path(build).write_text(json.dumps({**_report(f16, 3e-5), "kind": "file"}))
    with pytest.raises(ReportError, match=r"1 of the results table's 3 rows \(ltc-sine \(f16\) on host\)"):
        results_table(build, matrix)


def test_measure_with_missing_only_leaves_a_row_that_has_its_report(tmp_path):
    row = ResultRow("ltc-sine", None, "host")
    row.report_path(tmp_path).parent.mkdir(parents=True)
    row.report_path(tmp_path).write_text("{}")
    said: list[str] = []
    assert measure([row], missing_only=True, build_dir=tmp_path, echo=said.append) == [] and said == []
