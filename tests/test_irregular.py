"""Irregular time: an ncps CfC / LTC with `timespans`, each step's elapsed time a run-time input (the last input
column), held to ncps's own sequence loop in PyTorch, the reference VM, the C VM, `lnnvm stream` and the boards
(host, qemu-rpi4, the Cortex-M4 firmware on qemu-m4); the irregularly sampled recipe's data and its checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from lnnedge import config, recipe, sequences
from lnnedge.build import build
from lnnedge.compiler import compile_module
from lnnedge.devices import open_device
from lnnedge.errors import UsageError
from lnnedge.models.ncps import NcpsSequence, NcpsStep
from lnnedge.models.sequence import Step
from lnnedge.paths import RECIPES_DIR
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM

# the elapsed time enters CfC's time gate and LTC's cm / Δt alike for either wiring (test_ncps.py runs all four
# without timespans)
VARIANTS = [("ncps-cfc", "autoncp"), ("ncps-ltc", "fully-connected")]
INPUTS, N, STEPS = 2, 4, 24
TOLERANCE = 1e-4  # the ncps recipes' float32 tolerance (device vs PyTorch, every step)


def _model(kind: str, wiring: str, seed: int = 0) -> NcpsSequence:
    torch.manual_seed(seed)
    model = NcpsSequence(kind, INPUTS, 12, 1, wiring, timespans=True).eval()
    with torch.no_grad():  # a non-trivial normalisation
        model.in_mean.fill_(0.3)
        model.in_std.fill_(1.7)
        model.out_mean.fill_(-0.2)
        model.out_std.fill_(0.8)
    return model


def _rows(seed: int = 0) -> np.ndarray:
    """(N, STEPS, INPUTS + 1): the inputs and, last, a Δt drawn at random per step and per sequence."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, STEPS, INPUTS))
    dt = rng.uniform(0.05, 3.0, (N, STEPS, 1))
    return np.concatenate([x, dt], axis=-1).astype(np.float32)


def _ncps(model: NcpsSequence, rows: np.ndarray) -> np.ndarray:
    """ncps's own sequence loop with timespans, one sequence at a time (its loop squeezes timespans[:, t] to a
    scalar there, as it means to; over a batch it would broadcast against the units instead)."""
    x = (torch.from_numpy(rows[..., :INPUTS]) - model.in_mean) / model.in_std
    ts = torch.from_numpy(rows[..., INPUTS])
    with torch.no_grad():
        y = torch.cat([model.rnn(x[i:i + 1], timespans=ts[i:i + 1])[0] for i in range(len(rows))])
    return (y * model.out_std + model.out_mean).numpy()


def _compiled(model: NcpsSequence):
    return compile_module(NcpsStep(model.rnn, timespans=True),
                          (torch.zeros(1, INPUTS + 1), torch.zeros(1, model.hidden)), name="irregular",
                          state=((1, 1),))


def _time_major(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows.transpose(1, 0, 2)).reshape(STEPS * N, -1)


@pytest.mark.parametrize("kind, wiring", VARIANTS)
def test_timespans_step_is_ncps_own_loop_in_pytorch_and_the_reference_vm(kind, wiring):
    model = _model(kind, wiring)
    rows = _rows()
    expected = _ncps(model, rows)
    with torch.no_grad():  # the recipes' model: the batched loop over the step, normalisation included
        np.testing.assert_allclose(model(torch.from_numpy(rows)).numpy(), expected, atol=1e-6, rtol=0)
    # the elapsed time matters: the same rows with Δt = 1 give other outputs
    assert np.abs(_ncps(model, np.concatenate([rows[..., :INPUTS], np.ones((N, STEPS, 1), np.float32)], -1))
                  - expected).max() > 1e-2
    # the user's own ncps module (no normalisation) through NcpsStep, on the reference VM
    raw = NcpsSequence(kind, INPUTS, 12, 1, wiring, timespans=True)
    raw.rnn = model.rnn
    compiled = _compiled(raw)
    got = RefVM(compiled.data).run_sequence([_time_major(rows).reshape(STEPS, N, -1)])[0].transpose(1, 0, 2)
    assert np.abs(got - _ncps(raw, rows)).max() <= TOLERANCE


def test_a_user_step_without_timespans_stays_as_it_was():
    """NcpsStep without timespans: the row is the inputs only, elapsed time 1.0 (ncps's default)."""
    model = _model("ncps-cfc", "fully-connected")
    rows = _rows(1)[..., :INPUTS]
    compiled = compile_module(NcpsStep(model.rnn), (torch.zeros(1, INPUTS), torch.zeros(1, model.hidden)),
                              name="regular", state=((1, 1),))
    got = RefVM(compiled.data).run_sequence([np.ascontiguousarray(rows.transpose(1, 0, 2))])[0]
    with torch.no_grad():
        expected = model.rnn(torch.from_numpy(rows))[0].numpy()
    assert np.abs(got.transpose(1, 0, 2) - expected).max() <= TOLERANCE


@pytest.fixture(scope="module")
def cfc_case():
    """A CfC (AutoNCP wiring) with timespans drawn at random per step, compiled as the recipes compile it (its
    normalisation included): the program and ncps's outputs."""
    model = _model("ncps-cfc", "autoncp", seed=3)
    rows = _rows(2)
    compiled = compile_module(Step(model), (torch.zeros(1, INPUTS + 1), torch.zeros(1, model.hidden)),
                              name="cfc-timespans", state=((1, 1),))
    return compiled, rows, _ncps(model, rows)


@pytest.mark.parametrize("board", ["host", "qemu-rpi4", "qemu-m4"])
def test_cfc_with_random_timespans_verifies_every_step_on_the_board(board, cfc_case, tmp_path):
    compiled, rows, expected = cfc_case
    path = compiled.save(tmp_path / "cfc-timespans.lnnb")
    chosen = config.board(board)
    build(chosen.target, echo=lambda _msg: None)  # make: nothing to do when built
    with open_device(chosen) as device:
        # time-major chunks of N rows: chunk t is step t of the N sequences, each row [inputs, Δt]
        result = device.run(path, [_time_major(rows)], batch=N)
    got = result.outputs[0].reshape(STEPS, N, -1).transpose(1, 0, 2)
    err = float(np.abs(got - expected).max())
    print(f"ncps CfC with random timespans on {board}: max abs err per step {err:.2e} ({N} x {STEPS} steps)")
    assert err <= TOLERANCE


def test_c_vm_and_lnnvm_stream_take_the_elapsed_time_beside_the_inputs(cfc_case, host_build, tmp_path):
    compiled, rows, expected = cfc_case
    vm = CVM(compiled.data, max_batch=N, library=host_build.library)
    got = np.stack([vm.run([rows[:, t]])[0] for t in range(STEPS)], axis=1)
    assert np.abs(got - expected).max() <= TOLERANCE
    path = compiled.save(tmp_path / "cfc-timespans.lnnb")
    with open_device(config.board("host")) as device, device.stream(path) as streamer:  # one line: x0, x1, Δt
        streamed = np.stack([streamer.step(row) for row in rows[0]])
    assert np.abs(streamed - expected[0]).max() <= TOLERANCE


# -- the irregularly sampled recipe ----------------------------------------------------------------------------

def test_irregular_source_rows_carry_the_time_to_the_predicted_sample():
    r = recipe.load("ncps-cfc-irregular")
    assert r.model.timespans and r.data.source == "irregular-oscillation"
    x, y = sequences.damped_oscillations(r.data, 8, 5)
    assert x.shape == (8, r.data.sequence_length, 2) and y.shape == (8, r.data.sequence_length, 1)
    dt = x[..., 1]
    low, high = sequences.IRREGULAR_DT
    assert dt.min() >= low and dt.max() <= high and dt.std() > 0.2
    # without noise the input at step k + 1 is the target of step k: s(t_k + Δt_{k+1})
    clean = recipe.DataSpec(**{**r.data.__dict__, "noise": 0.0})
    x, y = sequences.damped_oscillations(clean, 8, 5)
    np.testing.assert_allclose(x[:, 1:, 0], y[:, :-1, 0], atol=1e-6)
    # the regular source is the same draw as before: integer times, one column
    regular = recipe.load("ncps-cfc").data
    assert sequences.damped_oscillations(regular, 2, 0)[0].shape[-1] == 1


def _variant(tmp_path, change) -> str:
    raw = yaml.safe_load((RECIPES_DIR / "ncps-cfc-irregular.yaml").read_text())
    change(raw)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["data"].update(source="damped-oscillation"),
     "model.timespans: needs the elapsed time of each step: data.source irregular-oscillation"),
    (lambda r: r.update(model={"kind": "gru", "inputs": 1, "hidden": 8, "outputs": 1}),
     "data.source: irregular-oscillation rows carry their elapsed time, which only the ncps models"),
    (lambda r: r["model"].update(timespans="sometimes"), "model.timespans: must be true or false"),
])
def test_recipe_mistakes_about_time_are_named(tmp_path, change, message):
    with pytest.raises(recipe.RecipeError, match=message):
        recipe.load(_variant(tmp_path, change))


def test_the_readme_example_compiles_a_users_cfc_with_timespans():
    """README "Irregular time": its snippet, executed on a CfC(3, 16) of ncps, runs like ncps with timespans."""
    from lnnedge.paths import ROOT
    from ncps.torch import CfC

    text = (ROOT / "README.md").read_text()
    snippet = text.split("Your own trained CfC (here `CfC(3, 16)`):\n\n```python\n", 1)[1].split("```", 1)[0]
    torch.manual_seed(5)
    cfc = CfC(3, 16, batch_first=True, backbone_units=32).eval()  # a small backbone: a quicker compile
    scope = {"cfc": cfc, "torch": torch, "compile_module": compile_module}
    exec(snippet, scope)  # noqa: S102 (the README's own example)
    rng = np.random.default_rng(6)
    x, dt = rng.normal(size=(1, 10, 3)).astype(np.float32), rng.uniform(0.1, 2, (1, 10)).astype(np.float32)
    with torch.no_grad():
        expected = cfc(torch.from_numpy(x), timespans=torch.from_numpy(dt))[0].numpy()
    rows = np.concatenate([x, dt[..., None]], axis=-1).transpose(1, 0, 2)
    got = RefVM(scope["compiled"].data).run_sequence([np.ascontiguousarray(rows)])[0].transpose(1, 0, 2)
    assert np.abs(got - expected).max() <= TOLERANCE


def test_invoke_irregular_report_and_its_readme_table(tmp_path, monkeypatch):
    """The comparison `invoke irregular` runs, cut to one seed and one epoch (the figures come from the task)."""
    from lnnedge import irregular, report

    monkeypatch.setattr(irregular, "REPORT_DIR", tmp_path / "irregular")
    r = irregular.compare("ncps-cfc-irregular", seeds=(0,), epochs=1)
    saved = irregular.load_all(tmp_path / "irregular")
    assert saved == [r] and r["epochs"] == 1 and r["dt_range"] == list(sequences.IRREGULAR_DT)
    run = r["runs"][0]
    assert run["dt_aware_rmse"] != run["fixed_dt_rmse"]  # two models: one reads Δt, one does not
    assert r["dt_aware_better_every_seed"] == (run["dt_aware_rmse"] < run["fixed_dt_rmse"])
    assert "seed 0: Δt-aware" in irregular.summary(r)
    assert "| ncps-cfc-irregular | Δt ~ U(0.2, 1.8) | 128 × 32 | 0 |" in report.irregular_table(tmp_path)
    with pytest.raises(UsageError, match="does not take each step's elapsed time"):
        irregular.compare("ncps-cfc", seeds=(0,), epochs=1)
