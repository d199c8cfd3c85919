"""PyTorch's recurrent layers (nn.LSTM / GRU / RNN, stacked, batch_first either way, and the *Cell variants) and
ncps's mixed_memory models as stateful step programs: every step against PyTorch's own forward over the whole
sequence, on the reference VM, the host C VM and qemu-rpi4 (qemu-aarch64, NEON kernels), ≤ 1e-5 per step."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from lnnedge import config
from lnnedge.build import build
from lnnedge.compiler import CompileError, compile_module
from lnnedge.devices import open_device
from lnnedge.models.ncps import NcpsSequence, NcpsStep
from lnnedge.models.recurrent import RecurrentStep, compile_recurrent
from lnnedge.paths import BUILD_DIR
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM
from test_pipeline import ok
from torch import nn

TOLERANCE = 1e-5  # per step, every step of every sequence
INPUTS, STEPS, BATCH = 3, 24, 5


class LayerSequence(nn.Module):
    """A user's sequence model: a recurrent layer, then a per-step head."""

    def __init__(self, rnn: nn.Module, outputs: int = 2):
        super().__init__()
        self.rnn = rnn
        width = getattr(rnn, "proj_size", 0) or rnn.hidden_size
        self.head = nn.Sequential(nn.Linear(width, 8), nn.Tanh(), nn.Linear(8, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


class CellSequence(nn.Module):
    """A user's sequence model written with a cell and its own loop over time (batch first)."""

    def __init__(self, cell: nn.Module, outputs: int = 2):
        super().__init__()
        self.cell = cell
        self.head = nn.Linear(cell.hidden_size, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        c = x.new_zeros(x.shape[0], self.cell.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            if isinstance(self.cell, nn.LSTMCell):
                h, c = self.cell(x[:, t], (h, c))
            else:
                h = self.cell(x[:, t], h)
            outputs.append(self.head(h))
        return torch.stack(outputs, dim=1)


MODELS: dict[str, Callable[[], nn.Module]] = {
    "lstm": lambda: LayerSequence(nn.LSTM(INPUTS, 24, batch_first=True)),
    "lstm-2-layers-time-major": lambda: LayerSequence(nn.LSTM(INPUTS, 16, num_layers=2)),
    "lstm-proj": lambda: LayerSequence(nn.LSTM(INPUTS, 16, proj_size=8, batch_first=True)),
    "gru": lambda: LayerSequence(nn.GRU(INPUTS, 24, batch_first=True)),
    "gru-2-layers-time-major": lambda: LayerSequence(nn.GRU(INPUTS, 16, num_layers=2)),
    "rnn-relu-2-layers": lambda: LayerSequence(nn.RNN(INPUTS, 16, num_layers=2, nonlinearity="relu",
                                                      batch_first=True)),
    "rnn-no-bias": lambda: LayerSequence(nn.RNN(INPUTS, 16, bias=False, batch_first=True)),
    "rnn-tanh-2-layers-time-major": lambda: LayerSequence(nn.RNN(INPUTS, 16, num_layers=2)),
    "lstm-cell": lambda: CellSequence(nn.LSTMCell(INPUTS, 16)),
    "gru-cell": lambda: CellSequence(nn.GRUCell(INPUTS, 16)),
    "rnn-cell": lambda: CellSequence(nn.RNNCell(INPUTS, 16)),
}


def _model(name: str) -> nn.Module:
    torch.manual_seed(sorted(MODELS).index(name))
    model = MODELS[name]().eval()
    with torch.no_grad():  # biases well away from zero: a misplaced b_hn or a swapped gate shows
        for param_name, param in model.named_parameters():
            if "bias" in param_name:
                param.uniform_(-0.8, 0.8)
    return model


def _sequences(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(BATCH, STEPS, INPUTS)).astype(np.float32)


def _pytorch(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's own forward over whole sequences (batch, T, in) -> (batch, T, out), in its layout."""
    step = RecurrentStep(model)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if step.time_major:
            return model(xt.transpose(0, 1)).transpose(0, 1).numpy()
        return model(xt).numpy()


def _time_major(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(1, 0, 2))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_vm_steps_like_the_pytorch_forward(name):
    model = _model(name)
    compiled = compile_recurrent(model, INPUTS, name=name)
    x = _sequences(0)
    got = RefVM(compiled.data).run_sequence([_time_major(x)])[0].transpose(1, 0, 2)
    assert np.abs(got - _pytorch(model, x)).max() <= TOLERANCE


@pytest.mark.parametrize("name", sorted(MODELS))
def test_c_vm_steps_like_the_pytorch_forward_and_resets(name, host_build):
    model = _model(name)
    compiled = compile_recurrent(model, INPUTS, name=name)
    x = _sequences(1)
    expected = _pytorch(model, x)
    vm = CVM(compiled.data, max_batch=BATCH, library=host_build.library)
    got = np.stack([vm.run([x[:, t]])[0] for t in range(STEPS)], axis=1)
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.abs(vm.run([x[:, 0]])[0] - expected[:, 0]).max() > 1e-3  # the state survived the last call
    vm.reset()
    assert np.abs(vm.run([x[:, 0]])[0] - expected[:, 0]).max() <= TOLERANCE  # and reset cleared it


def test_state_is_one_vector_of_every_layers_h_and_c():
    step = RecurrentStep(_model("lstm-2-layers-time-major"))
    assert step.time_major and step.hidden == 4 * 16  # (h, c) of two layers
    assert RecurrentStep(_model("lstm-proj")).hidden == 8 + 16  # projected h, full c
    assert RecurrentStep(_model("gru-2-layers-time-major")).hidden == 2 * 16


def test_cells_compile_in_a_step_module_of_the_users_own():
    """No wrapper: a step (x, [h, c]) -> (y, [h', c']) calling nn.LSTMCell is captured through aten.lstm_cell."""

    class Step(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.LSTMCell(INPUTS, 16)
            self.out = nn.Linear(16, 1)

        def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h, c = self.cell(x, tuple(state.split(16, dim=-1)))
            return self.out(h), torch.cat([h, c], dim=-1)

    torch.manual_seed(3)
    model = Step().eval()
    compiled = compile_module(model, (torch.zeros(1, INPUTS), torch.zeros(1, 32)), state=((1, 1),))
    assert not any(n.op.endswith("_cell") for n in compiled.graph.nodes)  # expanded into the VM's ops
    x = _sequences(2)
    state, expected = torch.zeros(BATCH, 32), []
    with torch.no_grad():
        for t in range(STEPS):
            y, state = model(torch.from_numpy(x[:, t]), state)
            expected.append(y.numpy())
    got = RefVM(compiled.data).run_sequence([_time_major(x)])[0]
    assert np.abs(got - np.stack(expected)).max() <= TOLERANCE


class ReadsTheTimeAxis(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(INPUTS, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return out.mean(dim=1)  # the mean over all steps so far: not a function of the state alone


class Bidirectional(LayerSequence):
    def __init__(self):
        super().__init__(nn.LSTM(INPUTS, 8, batch_first=True, bidirectional=True))
        self.head = nn.Linear(16, 2)


class TwiceAStep(LayerSequence):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        out, _ = self.rnn(out[..., :INPUTS])
        return self.head(out)


@pytest.mark.parametrize("make, message", [
    (ReadsTheTimeAxis, "does not run one step at a time like its forward"),
    (Bidirectional, "bidirectional"),
    (lambda: TwiceAStep(nn.GRU(INPUTS, 8, batch_first=True)), "called more than once in one time step"),
    (lambda: nn.Linear(INPUTS, 2), "no nn.LSTM, GRU, RNN or \\*Cell layer"),
])
def test_what_cannot_stream_is_refused_by_name(make, message):
    torch.manual_seed(0)
    with pytest.raises(CompileError, match=message):
        compile_recurrent(make().eval(), INPUTS)


# -- on the boards: the host runner and qemu-rpi4 ----------------------------------------------------------------

BOARD_MODELS = ["lstm", "lstm-2-layers-time-major", "gru", "gru-2-layers-time-major", "rnn-relu-2-layers",
                "rnn-tanh-2-layers-time-major", "ncps-cfc-mixed", "ncps-ltc-mixed"]


def _board_case(name: str) -> tuple[object, np.ndarray, np.ndarray]:
    """(compiled, x (batch, T, in), PyTorch's outputs (batch, T, out))."""
    x = _sequences(3)
    if name.startswith("ncps"):
        torch.manual_seed(4)
        model = NcpsSequence(name.removesuffix("-mixed"), INPUTS, 12, 1, "autoncp", mixed_memory=True).eval()
        compiled = compile_module(NcpsStep(model.rnn), (torch.zeros(1, INPUTS), torch.zeros(1, model.hidden)),
                                  name=name, state=((1, 1),))
        with torch.no_grad():
            return compiled, x, model.rnn(torch.from_numpy(x))[0].numpy()  # ncps's own sequence loop
    model = _model(name)
    return compile_recurrent(model, INPUTS, name=name), x, _pytorch(model, x)


@pytest.fixture(scope="module")
def rpi4_build():
    return build(config.load_target("rpi4"), echo=lambda _msg: None)


@pytest.mark.parametrize("board", ["host", "qemu-rpi4"])
@pytest.mark.parametrize("name", BOARD_MODELS)
def test_sequences_verify_every_step_on_the_board(name, board, host_build, rpi4_build, tmp_path):
    compiled, x, expected = _board_case(name)
    path = compiled.save(tmp_path / f"{name}.lnnb")
    with open_device(config.board(board)) as device:
        # the runner takes the rows time-major in chunks of BATCH: one chunk per step, the states kept between
        result = device.run(path, [_time_major(x).reshape(STEPS * BATCH, INPUTS)], batch=BATCH)
    got = result.outputs[0].reshape(STEPS, BATCH, -1).transpose(1, 0, 2)
    err = float(np.abs(got - expected).max())
    print(f"{name} on {board}: max abs err per step {err:.2e} ({BATCH} sequences x {STEPS} steps)")
    assert err <= TOLERANCE
    if board == "qemu-rpi4":
        assert result.timing["isa"] == "neon"


# -- the recipes end to end: train, compile, verify on host and qemu-rpi4 ----------------------------------------

@pytest.mark.parametrize("recipe", ["lstm-sequence", "gru-sequence", "ncps-cfc-mixed"])
def test_recurrent_recipes_train_compile_and_verify_on_host_and_qemu_rpi4(recipe, rpi4_build):
    ok("train", "--model", recipe)
    ok("compile", "--model", recipe)
    out = BUILD_DIR / recipe
    metrics = json.loads((out / "train-metrics.json").read_text())
    assert metrics["passed"] and metrics["test_rmse"] < metrics["repeat_last_rmse"] / 2
    for board in ("host", "qemu-rpi4"):
        ok("verify", "--model", recipe, "--board", board)
        report = json.loads((out / f"verify-{board}.json").read_text())
        assert report["kind"] == "sequence" and report["passed"] is True and report["steps"] == 32
        assert report["max_abs_err"] <= report["tolerance"] == 1e-5
