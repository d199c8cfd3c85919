"""Models trained with the ncps library: CfC and LTC, AutoNCP-wired and fully connected, compiled as stateful step
programs and checked against ncps's own sequence loop; the recipes end to end on host and qemu-rpi4."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lnnedge.compiler import CompileError, compile_module
from lnnedge.models.ncps import NcpsSequence, NcpsStep
from lnnedge.paths import BUILD_DIR
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM
from test_pipeline import ok

VARIANTS = [(kind, wiring) for kind in ("ncps-cfc", "ncps-ltc") for wiring in ("autoncp", "fully-connected")]


def _compiled(kind: str, wiring: str):
    torch.manual_seed(0)
    model = NcpsSequence(kind, 2, 12, 1, wiring).eval()
    with torch.no_grad():  # a non-trivial normalisation
        model.in_mean.fill_(0.3)
        model.in_std.fill_(1.7)
        model.out_std.fill_(0.8)
    compiled = compile_module(NcpsStep(model.rnn), (torch.zeros(1, 2), torch.zeros(1, model.hidden)),
                              name=kind, state=((1, 1),))
    return model, compiled


def _sequences(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(5, 20, 2)).astype(np.float32)  # (n, T, features)


def _ncps_outputs(model: NcpsSequence, x: np.ndarray) -> np.ndarray:
    """ncps's own sequence loop over the raw ncps module."""
    with torch.no_grad():
        return model.rnn(torch.from_numpy(x))[0].numpy()


@pytest.mark.parametrize("kind, wiring", VARIANTS)
def test_reference_vm_steps_like_ncps_sequence_loop(kind, wiring):
    model, compiled = _compiled(kind, wiring)
    x = _sequences()
    got = RefVM(compiled.data).run_sequence([np.ascontiguousarray(x.transpose(1, 0, 2))])[0].transpose(1, 0, 2)
    assert np.abs(got - _ncps_outputs(model, x)).max() <= 1e-4


@pytest.mark.parametrize("kind, wiring", VARIANTS)
def test_c_vm_steps_like_ncps_sequence_loop(kind, wiring, host_build):
    model, compiled = _compiled(kind, wiring)
    x = _sequences(1)
    vm = CVM(compiled.data, max_batch=len(x), library=host_build.library)
    got = np.stack([vm.run([x[:, t]])[0] for t in range(x.shape[1])], axis=1)
    assert np.abs(got - _ncps_outputs(model, x)).max() <= 1e-4


def test_autoncp_sparsity_masks_reach_the_weights():
    """The wired CfC multiplies its weights by the wiring's masks: the compiled constants carry the zeros."""
    model, compiled = _compiled("ncps-cfc", "autoncp")
    masks = [m.sparsity_mask for m in model.rnn.rnn_cell.modules() if getattr(m, "sparsity_mask", None) is not None]
    assert masks and any(float((mask == 0).float().mean()) > 0.2 for mask in masks)
    weights = [c for c in compiled.graph.constants.values() if c.ndim == 2 and c.size >= 24]
    assert weights and any(float(np.mean(w == 0)) > 0.2 for w in weights)


@pytest.mark.parametrize("kind", ["ncps-cfc", "ncps-ltc"])
def test_mixed_memory_steps_like_ncps_sequence_loop(kind, host_build):
    """mixed_memory=True: ncps's LSTM cell runs before the liquid cell; the state is [h, c] (tests/test_recurrent.py
    runs these on qemu-rpi4)."""
    torch.manual_seed(0)
    model = NcpsSequence(kind, 2, 12, 1, "fully-connected", mixed_memory=True).eval()
    assert model.hidden == 2 * model.rnn.state_size
    compiled = compile_module(NcpsStep(model.rnn), (torch.zeros(1, 2), torch.zeros(1, model.hidden)), name=kind,
                              state=((1, 1),))
    x = _sequences(2)
    expected = _ncps_outputs(model, x)
    got = RefVM(compiled.data).run_sequence([np.ascontiguousarray(x.transpose(1, 0, 2))])[0].transpose(1, 0, 2)
    assert np.abs(got - expected).max() <= 1e-5
    vm = CVM(compiled.data, max_batch=len(x), library=host_build.library)
    got = np.stack([vm.run([x[:, t]])[0] for t in range(x.shape[1])], axis=1)
    assert np.abs(got - expected).max() <= 1e-5


def test_a_module_that_is_not_ncps_is_refused():
    with pytest.raises(CompileError, match="not an ncps sequence module"):
        NcpsStep(torch.nn.GRU(2, 8))


@pytest.mark.parametrize("recipe", ["ncps-cfc", "ncps-ltc"])
def test_ncps_recipes_train_compile_and_verify_on_host_and_qemu_rpi4(recipe):
    ok("train", "--model", recipe)
    ok("compile", "--model", recipe)
    ok("build", "--target", "rpi4")
    out = BUILD_DIR / recipe
    metrics = json.loads((out / "train-metrics.json").read_text())
    assert metrics["passed"] and metrics["test_rmse"] < metrics["repeat_last_rmse"] / 2
    for board in ("host", "qemu-rpi4"):
        ok("verify", "--model", recipe, "--board", board)
        report = json.loads((out / f"verify-{board}.json").read_text())
        assert report["kind"] == "sequence" and report["passed"] is True
        assert report["max_abs_err"] <= 1e-4 and report["steps"] == 32
