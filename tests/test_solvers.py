"""Every torchdiffeq fixed-grid solver the compiler emits, on the host C VM and the reference VM, against odeint.

The cases and the measurement are lnnedge.solvers_check's (the README's solver table comes from its JSON).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lnnedge import isa, recipe, solvers_check
from lnnedge.compiler import CompileError, compile_module
from lnnedge.models import build_model
from lnnedge.models.ltc import ADAPTIVE, SOLVERS, LTCRegressor

torch.set_num_threads(1)
POINTS = 128


@pytest.fixture(scope="module")
def host_lib(host_build):
    return host_build.library


@pytest.fixture(autouse=True)
def _quiet_adams():
    # torchdiffeq warns on every implicit Adams step that does not converge early (see compiler/passes/lower_ode)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Functional iteration did not converge")
        yield


@pytest.mark.parametrize("case", [c for c in solvers_check.CASES if c.well_conditioned], ids=lambda c: c.name)
def test_solver_matches_torchdiffeq_on_both_vms(case, host_lib):
    r = solvers_check.run_case(case, POINTS, host_lib)
    assert r.host_max_abs_err <= 1e-5, r
    assert r.refvm_max_abs_err <= 1e-5, r
    # the implicit program is torchdiffeq's computation when no corrector stops early: none does here
    assert r.early_stops == 0, r


@pytest.mark.parametrize("case", [c for c in solvers_check.CASES if not c.well_conditioned], ids=lambda c: c.name)
def test_high_order_explicit_adams_is_as_close_to_the_exact_solve_as_torchdiffeq_itself(case, host_lib):
    """Above 1e-5 from torchdiffeq, and why: torchdiffeq's own float32 result is that far from float64 (the
    order-9 Adams-Bashforth sum magnifies 1-ulp differences of f), and the device is no further from float64."""
    r = solvers_check.run_case(case, POINTS, host_lib)
    assert r.torchdiffeq_f32_vs_f64 > 1e-5, r
    assert r.host_vs_f64 <= r.torchdiffeq_f32_vs_f64, r


def test_implicit_adams_early_stops_change_results_by_less_than_1e_5(host_lib):
    """On a fine grid torchdiffeq's corrector converges early on most steps (the program never stops early and
    stays at order 3): the outputs still agree, both being accurate solves."""
    r = solvers_check.run_case(solvers_check.FINE, POINTS, host_lib)
    assert r.early_stops > 0, r
    assert r.host_max_abs_err <= 1e-5, r


def test_measure_writes_every_case(tmp_path, host_lib):
    results = solvers_check.measure(host_lib, points=4, cases=solvers_check.CASES[:2])
    path = solvers_check.save(results, tmp_path / "errors.json")
    assert [r["name"] for r in yaml.safe_load(path.read_text())] == ["euler", "midpoint"]


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
def test_adams_code_size_does_not_grow_with_steps(method):
    sizes = set()
    for points in (20, 200):
        model = LTCRegressor(1, 8, 1, torch.linspace(0, 5, points), method, tau_min=0.5)
        program = compile_module(model, (torch.zeros(1, 1),)).program
        sizes.add(len(program.code))
        assert any(isa.opcode_by_code()[isa.decode(w)[0]].name == "LOOP" for w in program.code)
    assert len(sizes) == 1


def _train(model: LTCRegressor, steps: int = 5) -> None:
    torch.manual_seed(0)
    x, y = torch.rand(32, 3), torch.rand(32, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("method,options", [("rk4", None), ("implicit_adams", {"step_size": 0.35})])
def test_odeint_adjoint_trained_module_compiles_to_the_same_bytes(method, options):
    torch.manual_seed(3)
    adjoint = LTCRegressor(3, 8, 1, torch.linspace(0, 3, 7), method, 0.5, options, adjoint=True)
    before = copy.deepcopy(adjoint.state_dict())
    _train(adjoint)
    assert any(not torch.equal(before[k], v) for k, v in adjoint.state_dict().items())  # it did train
    plain = LTCRegressor(3, 8, 1, torch.linspace(0, 3, 7), method, 0.5, options)
    plain.load_state_dict(adjoint.state_dict())
    example = (torch.zeros(1, 3),)
    assert compile_module(adjoint.eval(), example).data == compile_module(plain.eval(), example).data
    x = torch.rand(16, 3)
    with torch.no_grad():
        assert torch.equal(adjoint(x), plain(x))


def test_unsupported_method_or_option_is_refused_by_the_block():
    with pytest.raises(ValueError, match="'scipy_solver' is not supported"):
        LTCRegressor(1, 4, 1, torch.linspace(0, 1, 3), "scipy_solver", 0.5)
    with pytest.raises(ValueError, match="option.* max_iters not supported; explicit_adams accepts max_order"):
        LTCRegressor(1, 4, 1, torch.linspace(0, 1, 3), "explicit_adams", 0.5, {"max_iters": 3})


@pytest.mark.parametrize("method,options,message", [
    ("implicit_adams", {"max_order": 13}, "max_order must be an integer in \\[2, 12\\], got 13"),
    ("explicit_adams", {"max_order": 1}, "max_order must be an integer in \\[2, 12\\], got 1"),
    ("implicit_adams", {"max_iters": 0}, "max_iters must be an integer in \\[1, 64\\], got 0"),
    ("euler", {"step_size": -0.1}, "step_size must be a positive number, got -0.1"),
    ("rk4", {"step_size": 1e-6}, "takes more than 65535 steps"),
    ("rk4", {"grid_constructor": None}, "grid_constructor not supported"),
])
def test_bad_solver_options_are_refused_at_compile_time(method, options, message):
    model = LTCRegressor(1, 4, 1, torch.linspace(0, 1, 3), method, 0.5)
    model.ode.options = options  # set after construction, as a user's own block could
    with pytest.raises(CompileError, match=message):
        compile_module(model, (torch.zeros(1, 1),))


def test_recipe_solver_takes_every_method_and_step_size(tmp_path: Path):
    raw = yaml.safe_load(Path(recipe.RECIPES_DIR, "ltc-3in-rk4.yaml").read_text())
    assert recipe.METHODS == tuple(SOLVERS) and recipe.ADAPTIVE_METHODS == ADAPTIVE
    for method in ADAPTIVE:  # they choose their own steps: rtol and atol, no step_size
        raw["model"]["solver"] = {"method": method, "t_start": 0, "t_end": 3, "rtol": 1e-5, "atol": 1e-6}
        path = tmp_path / f"{method}.yaml"
        path.write_text(yaml.safe_dump(raw))
        model = build_model(recipe.load(str(path)).model)
        assert (model.ode.method, model.ode.rtol, model.ode.atol) == (method, 1e-5, 1e-6)
        raw["model"]["solver"]["step_size"] = 0.35
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(recipe.RecipeError, match=f"step_size is for the fixed-grid methods; {method}"):
            recipe.load(str(path))
    for method in (m for m in SOLVERS if m not in ADAPTIVE):
        raw["model"]["solver"] = {"method": method, "t_start": 0, "t_end": 3, "steps": 2, "step_size": 0.35}
        path = tmp_path / f"{method}.yaml"
        path.write_text(yaml.safe_dump(raw))
        model = build_model(recipe.load(str(path)).model)
        assert (model.ode.method, model.ode.options) == (method, {"step_size": 0.35})
        assert model.ode.func.tau_min == pytest.approx(0.35)  # the largest step
    raw["model"]["solver"] = {"method": "rk4", "step_size": 0}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(recipe.RecipeError, match="step_size"):
        recipe.load(str(path))


def test_step_size_grid_with_a_repeated_end_point_stops_at_the_first(host_lib):
    """torchdiffeq's grid for [0.1, 0.3] in steps of 0.1 ends 0.2, 0.3, 0.3: the output is y at the first 0.3."""
    case = solvers_check.Case("rk4 repeated end", "rk4", (0.1, 0.3), (("step_size", 0.1),))
    r = solvers_check.run_case(case, 16, host_lib)
    assert r.steps == 2 and r.host_max_abs_err <= 1e-5, r
    assert np.isfinite(r.host_max_abs_err)
