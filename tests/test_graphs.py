"""The general graph compiler: every op from a tiny torch module through the reference VM and the C VM, the
loader's re-check of hand-edited shapes, the memory plan's bounds, the unsupported-op message, and the digits
classifiers end to end on the host and on the QEMU Raspberry Pi 4."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest
import torch
from lnnedge import config, isa, lnnb, recipe
from lnnedge.build import build
from lnnedge.compiler import CompileError, compile_module
from lnnedge.models import build_model
from lnnedge.paths import BUILD_DIR
from lnnedge.runtime import CVM, VMError
from test_pipeline import ok

F = torch.nn.functional


class Lambda(torch.nn.Module):
    """A module around a function of x, with a few seeded parameters the function may use."""

    def __init__(self, fn, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fn = fn
        self.lin = torch.nn.Linear(12, 12)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.conv1 = torch.nn.Conv2d(3, 2, 3, padding=1)
        self.w = torch.nn.Parameter(torch.randn(12, 5))

    def forward(self, x):
        return self.fn(self, x)


# name -> (function of (module, x), example input shape without the batch)
CASES = {
    "conv2d_stride2_pad1_nobias": (lambda m, x: m.conv(x), (3, 9, 7)),
    "conv2d_3x3_pad1_bias": (lambda m, x: m.conv1(x), (3, 6, 6)),
    "maxpool2d_2": (lambda m, x: F.max_pool2d(x, 2), (3, 8, 9)),
    "avgpool2d_3_stride1": (lambda m, x: F.avg_pool2d(x, 3, stride=1), (2, 7, 20)),
    "softmax_last": (lambda m, x: torch.softmax(m.lin(x) * 30.0, dim=-1), (12,)),
    "log_softmax_dim1_of_3d": (lambda m, x: torch.log_softmax(x, dim=1), (5, 12)),
    "sum_keepdim": (lambda m, x: x.sum(dim=1, keepdim=True) + x, (4, 12)),
    "mean_two_dims": (lambda m, x: x.mean(dim=(1, 2)), (3, 4, 5)),
    "sum_last_squeezed": (lambda m, x: x.sum(-1), (3, 12)),
    "matmul_shared_weight": (lambda m, x: x @ m.w, (12,)),
    "matmul_3d_by_3d": (lambda m, x: torch.matmul(m.lin(x).view(-1, 3, 4), x.view(-1, 4, 3)), (12,)),
    "bmm_of_views": (lambda m, x: torch.bmm(x.view(-1, 2, 6), (x * 2.0).view(-1, 6, 2)).flatten(1), (12,)),
    "flatten_view_relu": (lambda m, x: F.relu(x.flatten(1)).view(-1, 2, 6) - 0.25, (3, 4)),
    "broadcast_binary": (lambda m, x: (x - x.mean(-1, keepdim=True)) / (x.sum(-1, keepdim=True) + 20.0) * 3.0,
                         (2, 12)),
    "cat_then_sigmoid_tanh": (lambda m, x: torch.cat([torch.sigmoid(x), torch.tanh(m.lin(x))], dim=-1), (12,)),
}


@pytest.fixture(scope="module")
def host_lib(host_build):
    return host_build.library


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_op_matches_pytorch_on_both_vms(name, host_lib):
    fn, shape = CASES[name]
    module = Lambda(fn).eval()
    x = np.random.default_rng(1).standard_normal((5, *shape)).astype(np.float32)
    compiled = compile_module(module, (torch.zeros(1, *shape),), name=name)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    ref = compiled.run(x)[0]
    dev = CVM(compiled.data, max_batch=len(x), library=host_lib).run([x])[0].reshape(expected.shape)
    assert ref.shape == expected.shape
    scale = 1.0 + float(np.max(np.abs(expected)))
    assert float(np.max(np.abs(ref - expected))) <= 2e-6 * scale, name
    assert float(np.max(np.abs(dev - expected))) <= 2e-6 * scale, name
    one = CVM(compiled.data, max_batch=1, library=host_lib).run([x[2:3]])[0].reshape(expected[2:3].shape)
    assert float(np.max(np.abs(one - expected[2:3]))) <= 2e-6 * scale


def _edit(compiled, op: str, change) -> bytes:
    """The compiled file with the destination tensor of the first `op` instruction changed by change(entry)."""
    program = lnnb.read(compiled.data)
    by_code = isa.opcode_by_code()
    for word in program.code:
        code, _, b = isa.decode(word)
        if by_code[code].name == op:
            tensors = list(program.tensors)
            tensors[b] = change(tensors[b])
            return lnnb.write(dataclasses.replace(program, tensors=tuple(tensors)))
    raise AssertionError(f"no {op} in the program")


def _edit_word(compiled, op: str, a: int) -> bytes:
    """The compiled file with field A of the first `op` instruction set to a (CRC refreshed)."""
    program = lnnb.read(compiled.data)
    by_code = isa.opcode_by_code()
    code = list(program.code)
    for i, word in enumerate(code):
        c, _, b = isa.decode(word)
        if by_code[c].name == op:
            code[i] = isa.encode(op, a, b)
            return lnnb.write(dataclasses.replace(program, code=tuple(code)))
    raise AssertionError(f"no {op} in the program")


def _dims(entry, dims):
    return dataclasses.replace(entry, dims=tuple(dims))


@pytest.mark.parametrize("name, op, edit, status", [
    ("conv2d_stride2_pad1_nobias", "CONV2D", lambda e: _dims(e, (1, 4, 5, 5)), "E_SHAPE"),  # really 5 x 4
    ("conv2d_stride2_pad1_nobias", "CONV2D", 0x30 | 1, "E_OPERAND"),  # padding 3 >= the 3x3 kernel
    ("conv2d_stride2_pad1_nobias", "CONV2D", 0x10, "E_SHAPE"),  # stride 1: the output would be 9 x 7
    ("maxpool2d_2", "MAXPOOL2D", lambda e: _dims(e, (1, 3, 4, 5)), "E_SHAPE"),  # really 4 x 4
    ("maxpool2d_2", "MAXPOOL2D", 0x12, "E_SHAPE"),  # window 3, stride 2
    ("softmax_last", "SOFTMAX", lambda e: _dims(e, (1, 11)), "E_SHAPE"),
    ("softmax_last", "SOFTMAX", 0, "E_SHAPE"),  # axis 0: the batch
    ("sum_last_squeezed", "REDUCE_SUM", lambda e: _dims(e, (1, 4)), "E_SHAPE"),
    ("sum_last_squeezed", "REDUCE_SUM", 7, "E_OPERAND"),  # no axis 7
    ("matmul_shared_weight", "MATMUL", lambda e: _dims(e, (1, 6)), "E_SHAPE"),
])
def test_loader_rejects_hand_edited_shapes_and_parameters(name, op, edit, status, host_lib):
    fn, shape = CASES[name]
    compiled = compile_module(Lambda(fn).eval(), (torch.zeros(1, *shape),), name=name)
    CVM(compiled.data, max_batch=2, library=host_lib)  # the original loads
    data = _edit_word(compiled, op, edit) if isinstance(edit, int) else _edit(compiled, op, edit)
    with pytest.raises(VMError) as caught:
        CVM(data, max_batch=2, library=host_lib)
    assert caught.value.name == status


@pytest.mark.parametrize("model", ["mlp-digits", "cnn-digits"])
def test_planned_arena_is_at_most_half_the_naive_sum_and_near_the_lower_bound(model):
    r = recipe.load(model)
    torch.manual_seed(0)
    net = build_model(r.model).eval()
    compiled = compile_module(net, (torch.zeros(1, r.model.inputs),), name=model)
    plan = compiled.plan_summary()
    batched = compiled.emitted.batched_plan
    assert batched.overlaps() == []
    assert plan["arena_row"] <= 0.5 * plan["naive_row"]
    assert plan["lower_bound_row"] <= plan["arena_row"] <= 1.1 * plan["lower_bound_row"]
    assert plan["in_place"] >= 2  # the ReLUs write over their products


def test_in_place_merging_keeps_an_operand_that_is_read_later(host_lib):
    """relu(h) may not overwrite h when h is read again afterwards."""

    class Reuse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.a = torch.nn.Linear(6, 6)

        def forward(self, x):
            h = self.a(x)
            return torch.relu(h) * h

    module = Reuse().eval()
    compiled = compile_module(module, (torch.zeros(1, 6),))
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    dev = CVM(compiled.data, max_batch=4, library=host_lib).run([x])[0]
    np.testing.assert_allclose(dev, expected, rtol=0, atol=1e-5)


class WithLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 8, batch_first=True)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.lstm(x)  # the line the error must name
        return self.head(out[:, -1])


def test_unsupported_op_names_the_op_its_line_and_what_is_supported():
    line = next(i for i, text in enumerate(inspect.getsource(WithLSTM).splitlines())
                if "self.lstm(x)" in text) + inspect.getsourcelines(WithLSTM)[1]
    with pytest.raises(CompileError) as caught:
        compile_module(WithLSTM(), (torch.zeros(1, 3, 4),))
    message = str(caught.value)
    assert "aten.lstm" in message and "module 'lstm' (LSTM)" in message
    assert f"test_graphs.py:{line}: out, _ = self.lstm(x)" in message
    assert "supported:" in message and "conv2d" in message and "linear" in message


@pytest.mark.parametrize("model, target_accuracy", [("mlp-digits", 0.95), ("cnn-digits", 0.95)])
def test_digits_classifiers_train_compile_and_verify_on_host_and_qemu_rpi4(model, target_accuracy, host_build):
    build(config.load_target("rpi4"), echo=lambda _msg: None)  # the board's VM (make: nothing to do when built)
    train = ok("train", "--model", model)
    assert "test accuracy" in train.stdout
    metrics = json.loads((BUILD_DIR / model / "train-metrics.json").read_text())
    assert metrics["test_accuracy"] >= target_accuracy and metrics["test_points"] == 450
    compiled = ok("compile", "--model", model)
    assert "naive sum" in compiled.stdout and "largest live set" in compiled.stdout
    for board in ("host", "qemu-rpi4"):
        proc = ok("verify", "--model", model, "--board", board)
        assert "PASSED" in proc.stdout and "same class as PyTorch" in proc.stdout
        report = json.loads((BUILD_DIR / model / f"verify-{board}.json").read_text())
        assert report["passed"] is True and report["n"] == 450  # the whole test set
        assert report["max_abs_err"] <= 1e-4 and report["tolerance"] == 1e-4
        assert report["same_class_share"] == 1.0
        assert report["accuracy_device"] == report["accuracy_pytorch"] == metrics["test_accuracy"]
        assert report["reference_vm"]["same_class_share"] == 1.0
    assert json.loads((BUILD_DIR / model / "verify-qemu-rpi4.json").read_text())["isa"] == "neon"


def test_digits_data_is_a_deterministic_stratified_standardised_split():
    from lnnedge import data

    spec = recipe.load("mlp-digits").data
    x_train, y_train, x_test, y_test = data.classification(spec)
    assert x_train.shape == (1347, 64) and x_test.shape == (450, 64) and x_train.dtype == np.float32
    assert np.all(np.abs(x_train.mean(axis=0)) < 1e-5)
    assert set(np.bincount(y_test)) <= {44, 45, 46}  # a quarter of each class (174..183 images)
    again = data._digits_split.__wrapped__(spec.seed, spec.test_fraction)
    assert all(np.array_equal(a, b) for a, b in zip(again, (x_train, y_train, x_test, y_test)))
    other = data._digits_split.__wrapped__(spec.seed + 1, spec.test_fraction)
    assert not np.array_equal(other[3], y_test)


def test_classifier_training_is_deterministic_by_seed():
    from lnnedge.train import train

    r = recipe.load("mlp-digits")
    a, b = (train(r, epochs=2) for _ in range(2))
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert a.metrics["test_accuracy"] == b.metrics["test_accuracy"]
    c = train(r, epochs=2, seed=1)
    assert not torch.equal(c.model.state_dict()["0.weight"], a.model.state_dict()["0.weight"])


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw["model"].update(inputs=32), "data source digits has 64 inputs and 10 classes"),
    (lambda raw: raw["model"].update(layers=[64, 0]), r"model.layers\[1\]: must be >= 1, got 0"),
    (lambda raw: raw["tolerances"].update(target_accuracy=95), "tolerances.target_accuracy: must be <= 1, got 95"),
    (lambda raw: raw["model"].update(image=[1, 8, 7]), "does not hold the 64 inputs"),
])
def test_classifier_recipe_mistakes_name_the_field(change, message, tmp_path):
    import yaml

    raw = yaml.safe_load(recipe.recipe_path("cnn-digits").read_text())
    change(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(recipe.RecipeError, match=message):
        recipe.load(str(path))


class AllOps(torch.nn.Module):
    """Every graph op in one model, with odd sizes (vector tails, pooling windows that reach a row's end)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1)
        self.conv2 = torch.nn.Conv2d(3, 5, 2)
        self.w = torch.nn.Parameter(torch.randn(5, 7))

    def forward(self, x):
        x = x.view(-1, 2, 11, 19)
        h = torch.relu(self.conv(x))                  # (3, 6, 10)
        p = F.max_pool2d(h, 2) + F.avg_pool2d(h, 2)    # (3, 3, 5)
        q = self.conv2(p)                              # (5, 2, 4)
        r = torch.matmul(q.mean(dim=(2, 3)), self.w)
        s = torch.softmax(r, dim=-1) + torch.log_softmax(q.flatten(1), dim=1).sum(dim=1, keepdim=True)
        return s


def test_sanitized_vm_runs_every_graph_op_cleanly(sanitize_build, tmp_path):
    from conftest import lnnvm

    model = AllOps().eval()
    path = compile_module(model, (torch.zeros(1, 418),), name="all-ops").save(tmp_path / "all.lnnb")
    x = np.random.default_rng(2).standard_normal((9, 418)).astype(np.float32)
    x.tofile(tmp_path / "in.f32")
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    for batch in ("1", "9"):
        proc = lnnvm(sanitize_build.runner, "run", path, "--in", tmp_path / "in.f32", "--out", tmp_path / "out.f32",
                     "--batch", batch)
        assert proc.returncode == 0, proc.stderr
        assert "runtime error" not in proc.stderr and "AddressSanitizer" not in proc.stderr, proc.stderr
        got = np.fromfile(tmp_path / "out.f32", dtype="<f4").reshape(expected.shape)
        assert np.max(np.abs(got - expected)) <= 2e-6 * (1 + np.max(np.abs(expected)))  # a few ulp at |160|
