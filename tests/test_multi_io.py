"""Regression recipes with several inputs and several outputs: `data.function` a list of expressions, one per
output; the shipped 2-input, 2-output recipe end to end on host, qemu-rpi4 and qemu-x86-sse3."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from lnnedge import data, recipe
from lnnedge.paths import BUILD_DIR, RECIPES_DIR
from lnnedge.pipeline.build import build_target
from lnnedge.pipeline.compile import compile_model
from lnnedge.pipeline.train import train_model
from lnnedge.pipeline.verify import verify

NAME = "ltc-2in-2out"


def _raw() -> dict:
    return yaml.safe_load((RECIPES_DIR / f"{NAME}.yaml").read_text())


def test_each_expression_is_one_output_column():
    r = recipe.load(NAME)
    assert (r.model.inputs, r.model.outputs, r.model.hidden, r.model.method) == (2, 2, 24, "midpoint")
    x = np.array([[0.5, -1.0], [1.5, 2.0]])
    y = data.target(r.data, x)
    assert y.shape == (2, 2)
    np.testing.assert_allclose(y[:, 0], np.sin(x[:, 0]) * np.cos(x[:, 1]))
    np.testing.assert_allclose(y[:, 1], 0.5 * x[:, 0] - np.tanh(x[:, 1]))


def test_a_constant_expression_still_gives_a_value_per_point(tmp_path):
    raw = _raw()
    raw["data"]["function"] = ["2", "x0 * x1"]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    y = data.target(recipe.load(str(path)).data, np.ones((3, 2)))
    np.testing.assert_array_equal(y, [[2, 1]] * 3)


def test_a_single_expression_is_still_a_one_output_recipe():
    r = recipe.load("ltc-3in-rk4")
    assert r.data.functions == ("sin(x0) + 0.5*cos(x1) * x2",)
    assert data.target(r.data, np.zeros((4, 3))).shape == (4, 1)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["model"].update(outputs=3), r"model.outputs: must be the number of data.function expressions \(2"),
    (lambda r: r["data"].update(function="sin(x0)"), r"model.outputs: must be the number of data.function "
                                                      r"expressions \(1: one per output\), got 2"),
    (lambda r: r["data"].update(function=["sin(x0)", "log(x1)"]), r"data.function\[1\]: 'log\(x1\)' is not finite"),
    (lambda r: r["data"].update(function=["sin(x0)", "x7"]), r"data.function\[1\]: unknown name 'x7'"),
    (lambda r: r["data"].update(function=[]), r"data.function: must have at least 1 item"),
    (lambda r: r["data"].update(function=["sin(x0)", 3]), r"data.function\[1\]: must be a string"),
])
def test_mistakes_in_the_expressions_name_the_one_at_fault(tmp_path, change, message):
    raw = _raw()
    change(raw)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(recipe.RecipeError, match=message):
        recipe.load(str(path))


def test_two_inputs_two_outputs_train_compile_and_verify_on_host_rpi4_and_x86_sse3():
    torch.set_num_threads(1)  # the machine's cores are shared by the suite's processes
    trained = train_model(NAME)
    assert trained.metrics["passed"] and trained.metrics["test_rmse"] <= 0.05
    compile_model(NAME)
    for target in ("rpi4", "x86-64-sse3"):
        build_target(target)
    for board in ("host", "qemu-rpi4", "qemu-x86-sse3"):
        report = verify(NAME, board)
        assert report.passed, board
        saved = json.loads((BUILD_DIR / NAME / f"verify-{board}.json").read_text())
        assert saved["n"] == 1024 and saved["tolerance"] == 1e-5
        assert saved["max_abs_err"] <= 1e-5 and saved["reference_vm"]["max_abs_err"] <= 1e-5
        assert saved["pytorch_vs_true_rmse"] <= 0.05
