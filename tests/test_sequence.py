"""Stateful models: state tensors that persist between runs, reset, sequences step by step and whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import HOST_ISAS, lnnvm
from lnnedge import isa, lnnb
from lnnedge.compiler import CompileError, compile_module
from lnnedge.paths import BUILD_DIR
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM
from test_pipeline import ok


class GRUish(torch.nn.Module):
    """A small recurrent step, (x, h) -> (y, h_next): enough to see whether state is carried."""

    def __init__(self, inputs: int = 3, hidden: int = 8, outputs: int = 2):
        super().__init__()
        self.inp = torch.nn.Linear(inputs, hidden)
        self.rec = torch.nn.Linear(hidden, hidden)
        self.out = torch.nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.sigmoid(self.inp(x))
        h_next = (1 - z) * h + z * torch.tanh(self.rec(h) + self.inp(x))
        return self.out(h_next), h_next


def _reference(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """PyTorch over time-major x (T, batch, in) from h = 0: outputs (T, batch, out)."""
    h = torch.zeros(x.shape[1], 8)
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, h = model(torch.from_numpy(x[t]), h)
            outs.append(y.numpy())
    return np.stack(outs)


@pytest.fixture(scope="module")
def stateful():
    torch.manual_seed(1)
    model = GRUish().eval()
    compiled = compile_module(model, (torch.zeros(1, 3), torch.zeros(1, 8)), name="gruish", state=((1, 1),))
    x = np.random.default_rng(2).normal(size=(12, 4, 3)).astype(np.float32)
    return model, compiled, x


def test_state_is_a_state_tensor_not_an_input(stateful):
    _, compiled, _ = stateful
    program = compiled.program
    assert program.num_inputs == 1 and program.num_outputs == 1
    assert program.state_row == 8 * 4
    state = [t for t in program.tensors if t.region == isa.const("REG_STATE")]
    assert [t.dims for t in state] == [(1, 8)] and state[0].batched
    assert lnnb.read(compiled.data).state_row == 32


def test_reference_vm_carries_state_between_runs_and_resets(stateful):
    model, compiled, x = stateful
    expected = _reference(model, x)
    vm = RefVM(compiled.data)
    whole = vm.run_sequence([x])[0]
    assert np.abs(whole - expected).max() <= 1e-5
    vm.reset()
    stepwise = np.stack([vm.run([x[t]])[0] for t in range(len(x))])
    assert np.abs(stepwise - whole).max() <= 1e-6
    # without a reset the next run continues from the state the sequence left: not the first step's output
    assert np.abs(vm.run([x[0]])[0] - expected[0]).max() > 1e-3
    vm.reset()
    assert np.abs(vm.run([x[0]])[0] - expected[0]).max() <= 1e-6


def test_a_new_batch_size_starts_from_zero_state(stateful):
    model, compiled, x = stateful
    vm = RefVM(compiled.data)
    vm.run([x[0]])
    assert np.abs(vm.run([x[0, :2]])[0] - _reference(model, x[:1, :2])[0]).max() <= 1e-6


@pytest.mark.parametrize("state, message", [
    (((2, 1),), "names no such input"),
    (((0, 1),), "differ"),
    (((1, 1), (1, 1)), "one state pair only"),
])
def test_bad_state_declarations_are_compile_errors(state, message):
    with pytest.raises(CompileError, match=message):
        compile_module(GRUish().eval(), (torch.zeros(1, 3), torch.zeros(1, 8)), state=state)


@pytest.mark.parametrize("isa_name", HOST_ISAS)
def test_c_vm_carries_state_like_the_reference_vm(stateful, host_build, isa_name):
    model, compiled, x = stateful
    expected = _reference(model, x)
    vm = CVM(compiled.data, max_batch=4, library=host_build.library)
    vm.use_kernels(isa_name)
    whole = np.stack([vm.run([x[t]])[0] for t in range(len(x))])
    assert np.abs(whole - expected).max() <= 1e-5
    assert np.abs(vm.run([x[0]])[0] - expected[0]).max() > 1e-3  # state survived the last call
    vm.reset()
    assert np.abs(vm.run([x[0]])[0] - expected[0]).max() <= 1e-6  # and reset cleared it


def test_runner_runs_chunks_as_time_steps(stateful, host_build, tmp_path):
    """The runner over T * batch rows in chunks of batch: one chunk per time step, state carried."""
    model, compiled, x = stateful
    path = compiled.save(tmp_path / "gruish.lnnb")
    x.tofile(tmp_path / "in.f32")
    proc = lnnvm(host_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "out.f32",
                 "--batch", "4")
    assert proc.returncode == 0, proc.stderr
    got = np.fromfile(tmp_path / "out.f32", dtype="<f4").reshape(12, 4, 2)
    assert np.abs(got - _reference(model, x)).max() <= 1e-5


# -- ltc-sequence: the recipe end to end ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def ltc_sequence():
    ok("train", "--model", "ltc-sequence")
    ok("compile", "--model", "ltc-sequence")
    return BUILD_DIR / "ltc-sequence"


def test_ltc_sequence_trains_to_its_target(ltc_sequence):
    metrics = json.loads((ltc_sequence / "train-metrics.json").read_text())
    assert metrics["test_rmse"] <= metrics["target_rmse"] == 0.1
    assert metrics["test_rmse"] < metrics["repeat_last_rmse"] / 2


@pytest.mark.parametrize("board", ["host", "qemu-rpi4"])
def test_ltc_sequence_verifies_every_step(ltc_sequence, board):
    if board != "host":
        ok("build", "--target", "rpi4")
    proc = ok("verify", "--model", "ltc-sequence", "--board", board)
    report = json.loads((ltc_sequence / f"verify-{board}.json").read_text())
    assert report["kind"] == "sequence" and report["passed"] is True
    assert report["n"] == 64 and report["steps"] == 32
    assert report["max_abs_err"] <= 1e-4 and report["reference_vm"]["max_abs_err"] <= 1e-4
    assert "64 sequences × 32 steps" in proc.stdout
