"""Your own model (issue 16, item 1): a module the kit has never seen, written here from scratch, through
`invoke compile --module` and `invoke verify --file` on qemu-rpi4, through the Python API in the README's five
lines, and `invoke compile --check` naming every op that will not compile with its file:line."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from lnnedge.compiler import CompileError, compile_module
from lnnedge.paths import BUILD_DIR, ROOT
from test_pipeline import invoke

# torchdiffeq methods the unseen module is taken through; helper B adds "dopri5" when the adaptive solvers land
METHODS = ["rk4", "dopri5"]

# A module of our own: its own dynamics class, torchdiffeq's odeint called directly over non-uniform times.
UNSEEN = '''
import torch
from torch import nn
from torchdiffeq import odeint


class Damped(nn.Module):
    """dh/dt = W2 tanh(W1 h) - k h: no t, no inputs besides the state."""

    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Linear(width, 12)
        self.outer = nn.Linear(12, width)
        self.k = nn.Parameter(torch.full((width,), 0.3))

    def forward(self, t, h):
        return self.outer(torch.tanh(self.inner(h))) - self.k * h


class Sensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(3, 5)
        self.field = Damped(5)
        self.decode = nn.Linear(5, 2)
        self.register_buffer("times", torch.tensor([0.0, 0.2, 0.5, 1.0]))  # non-uniform steps

    def forward(self, x):
        h0 = torch.sigmoid(self.encode(x))
        h = odeint(self.field, h0, self.times, method="{method}")[-1]
        return self.decode(h) * 2.0 + 0.5


def make_model():
    torch.manual_seed(0)
    return Sensor()
'''

# Three ops without a VM instruction: one in the forward, one in the ODE's dynamics, one after it.
THREE_UNSUPPORTED = '''
import torch
from torch import nn
from torchdiffeq import odeint


class Field(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, t, h):
        return torch.atan(self.a(h))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(3, 4)
        self.field = Field()
        self.register_buffer("times", torch.tensor([0.0, 0.3, 1.0]))

    def forward(self, x):
        h0 = torch.sin(self.enc(x))
        h = odeint(self.field, h0, self.times, method="rk4")[-1]
        return torch.cumsum(h, dim=1)


def make_model():
    return Net()
'''


def _cli(*argv: str) -> tuple[int, str, str]:
    """`invoke ARGV` in this process (Invoke's Program over tasks.py, as the command builds it; torch is loaded
    already): exit code, stdout, stderr."""
    from invoke import Program

    spec = importlib.util.spec_from_file_location("lnnedge_tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            Program(namespace=tasks.ns).run(["invoke", *argv], exit=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _load(path, name: str = "make_model"):
    from lnnedge import usermodule

    return usermodule.load(f"{path}:{name}")


@pytest.fixture(scope="module")
def rpi4_build():
    """The qemu-rpi4 board's VM (make: nothing to do when it is built)."""
    from lnnedge import config
    from lnnedge.build import build

    return build(config.load_target("rpi4"), echo=lambda _msg: None)


@pytest.fixture(scope="module", params=METHODS)
def unseen(request, tmp_path_factory, rpi4_build):
    """The module file, weights other than the factory's (so --weights matters) and test inputs."""
    tmp = tmp_path_factory.mktemp(f"unseen-{request.param}")
    source = tmp / "sensor_net.py"
    source.write_text(UNSEEN.replace("{method}", request.param))
    torch.manual_seed(7)
    trained = _load(source)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.2 * torch.randn_like(p))
    torch.save(trained.state_dict(), tmp / "ckpt.pt")
    np.savez(tmp / "data.npz", inputs=np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32))
    return tmp, source, trained


@pytest.fixture(scope="module")
def compiled_by_cli(unseen):
    """`invoke compile --module ... --weights ... --example 1x3 --test-data ... --out ...` (a process)."""
    tmp, source, _ = unseen
    proc = invoke("compile", "--module", f"{source}:make_model", "--weights", str(tmp / "ckpt.pt"), "--example",
                  "1x3", "--test-data", str(tmp / "data.npz"), "--out", str(tmp / "out"))
    assert proc.returncode == 0, proc.stderr
    return proc, tmp / "out" / "model.lnnb"


def test_unseen_module_compiles_and_verifies_on_qemu_rpi4_from_the_cli(unseen, compiled_by_cli):
    tmp, source, trained = unseen
    compiled, model_file = compiled_by_cli
    assert f"-> {model_file}" in compiled.stdout
    # the bundled test set: the .npz's inputs with the outputs of the module as loaded with its weights
    from lnnedge.devices.base import bundled_tests

    (x,), tests = bundled_tests(model_file)
    with torch.no_grad():
        expected = trained(torch.from_numpy(x)).numpy()
    assert x.shape == (40, 3) and np.array_equal(tests.outputs, expected) and tests.max_abs_err == np.float32(1e-5)
    verified = invoke("verify", "--file", str(model_file), "--board", "qemu-rpi4", "--module", f"{source}:make_model",
                      "--weights", str(tmp / "ckpt.pt"), "--test-data", str(tmp / "data.npz"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASSED" in verified.stdout and "your inputs vs your module" in verified.stdout
    report = json.loads((model_file.parent / "verify-qemu-rpi4.json").read_text())
    assert report["passed"] is True and report["isa"] == "neon" and report["emulated"] is True
    assert report["n"] == 40 and report["max_abs_err"] <= 1e-5 and report["reference_vm"]["max_abs_err"] <= 1e-5
    assert report["vs_module"]["n"] == 40 and report["vs_module"]["max_abs_err"] <= 1e-5


def test_verify_file_fails_against_another_module(tmp_path, rpi4_build):
    """The module comparison is real: a module with other weights is refused, the bundled set still passes."""
    import lnnedge
    from lnnedge.pipeline.userfile import verify_file

    source = tmp_path / "sensor_rk4.py"
    source.write_text(UNSEEN.replace("{method}", "rk4"))
    mine, other = _load(source), _load(source)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1)
    compiled = lnnedge.compile(mine, torch.zeros(1, 3), out=tmp_path)
    x = [np.random.default_rng(5).normal(size=(8, 3)).astype(np.float32)]
    assert verify_file(compiled.path, "qemu-rpi4", mine, x).passed
    failed = verify_file(compiled.path, "qemu-rpi4", other, x)
    assert not failed.passed and failed.data["vs_module"]["max_abs_err"] > 1e-3
    assert failed.data["max_abs_err"] <= 1e-5  # the bundled set alone still passes: only the module differs


def test_readme_api_example_runs_as_written(tmp_path, monkeypatch, rpi4_build):
    """The README's five lines, executed as they are, with the unseen module as `my_model`."""
    text = (ROOT / "README.md").read_text()
    snippet = re.search(r"<!-- api-example[^>]*-->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(snippet.strip().splitlines()) == 5
    (tmp_path / "my_model.py").write_text(UNSEEN.replace("{method}", METHODS[0]))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_model", raising=False)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    compiled, report, deployed = scope["compiled"], scope["report"], scope["deployed"]
    assert compiled.path == BUILD_DIR / "Sensor" / "model.lnnb" and compiled.path.is_file()
    assert report.passed and report.board == "qemu-rpi4" and report.data["vs_module"]["n"] == 64
    assert deployed is not None and deployed.failed == [] and deployed.outcomes[0].detail["model"] == "Sensor"


def test_check_lists_every_unsupported_op_with_file_and_line(tmp_path):
    source = tmp_path / "three_unsupported.py"
    source.write_text(THREE_UNSUPPORTED)
    lines = THREE_UNSUPPORTED.splitlines()
    where = {op: next(i + 1 for i, line in enumerate(lines) if f"torch.{op}(" in line)
             for op in ("sin", "atan", "cumsum")}
    code, stdout, stderr = _cli("compile", "--check", "--module", f"{source}:make_model", "--example", "1x3")
    assert code == 1
    assert stderr.strip() == f"error: 3 op(s) of {source}:make_model will not compile (listed above)"
    for op, line in where.items():
        assert re.search(rf"op aten\.{op}\.default in .* at three_unsupported\.py:{line}: ", stdout), op
    assert "in module 'field' (Field)" in stdout  # the dynamics' op named by its path in the model
    assert not (BUILD_DIR / "three_unsupported").exists()  # nothing emitted
    import lnnedge

    (tmp_path / "fine.py").write_text(UNSEEN.replace("{method}", METHODS[0]))
    assert lnnedge.check(_load(tmp_path / "fine.py"), torch.zeros(1, 3)).unsupported == ()


def test_odeint_calls_that_cannot_compile_are_refused_and_the_module_is_left_as_it_was(tmp_path):
    source = tmp_path / "trajectory.py"
    source.write_text(UNSEEN.replace("{method}", "rk4").replace(")[-1]", ")[1]"))
    module = _load(source)
    before = dict(module.named_modules())
    with pytest.raises(CompileError, match=r"odeint at trajectory\.py:\d+: only the final state odeint\(...\)\[-1\] "
                                           r"compiles .* got \[1\]"):
        compile_module(module, (torch.zeros(1, 3),))
    assert dict(module.named_modules()) == before
    import torchdiffeq

    assert sys.modules[type(module).__module__].odeint is torchdiffeq.odeint  # the patch undone
    lam = tmp_path / "closure.py"
    lam.write_text(UNSEEN.replace("{method}", "rk4").replace("odeint(self.field,", "odeint(lambda t, h: -h,"))
    with pytest.raises(CompileError, match="func must be an nn.Module f\\(t, h\\)"):
        compile_module(_load(lam), (torch.zeros(1, 3),))


def test_ops_lists_the_supported_torch_ops_and_import_lnnedge_stays_light():
    import lnnedge

    rows = {name: (torch_ops, limits) for name, torch_ops, limits in lnnedge.ops().rows}
    assert rows["linear"] == ("linear", "nn.Linear")
    assert rows["conv2d"][1].startswith("nn.Conv2d: one stride and padding")
    assert "rk4" in rows["ode"][1]
    proc = subprocess.run([sys.executable, "-c", "import sys, lnnedge; print('torch' in sys.modules, "
                           "'numpy' in sys.modules, callable(lnnedge.compile))"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.split() == ["False", "False", "True"]


def test_api_compiles_two_inputs_and_two_outputs_with_their_test_set(tmp_path):
    """lnnedge.compile with two example inputs and the user's test inputs: the file bundles them (split back by
    the loader into the model's inputs) with the module's two outputs, and runs as the module does."""
    import lnnedge
    from lnnedge.devices.base import bundled_tests

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(2, 4)

        def forward(self, x, y):
            return torch.tanh(self.a(x) + self.b(y)), torch.sigmoid(self.a(x))

    torch.manual_seed(2)
    net = Two()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    report = lnnedge.compile(net, (torch.zeros(1, 3), torch.zeros(1, 2)), out=tmp_path, test_inputs=[x, y])
    assert report.path == tmp_path / "model.lnnb" and report.recipe == "Two" and report.module is net
    (bx, by), tests = bundled_tests(report.path)
    with torch.no_grad():
        first, second = net(torch.from_numpy(x), torch.from_numpy(y))
    assert np.array_equal(bx, x) and np.array_equal(by, y)
    assert np.array_equal(tests.outputs, np.concatenate([first.numpy(), second.numpy()], axis=1))
    from lnnedge.refvm import RefVM

    out = RefVM(report.path.read_bytes()).run([x, y])
    assert max(float(np.max(np.abs(o - r.numpy()))) for o, r in zip(out, (first, second))) <= 1e-6


def test_odeint_tolerances_reach_the_compiled_solver(tmp_path):
    """rtol/atol given to odeint are the compiled adaptive solver's: with loose ones torchdiffeq takes other steps
    than with its defaults (outputs apart by ~3e-4), and the reference VM follows the loose ones within the
    adaptive solvers' 1e-4 (an accept/reject decision may differ on float noise; measured 2.2e-5)."""
    source = tmp_path / "loose.py"
    source.write_text(UNSEEN.replace('method="{method}")', 'method="dopri5", rtol=1e-2, atol=1e-3)'))
    module = _load(source)
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    compiled = compile_module(module, (torch.zeros(1, 3),))
    assert float(np.max(np.abs(compiled.run(x)[0] - expected))) <= 1e-4
    strict = tmp_path / "strict.py"
    strict.write_text(UNSEEN.replace("{method}", "dopri5"))
    with torch.no_grad():
        assert float(np.max(np.abs(_load(strict)(torch.from_numpy(x)).numpy() - expected))) > 1e-4
