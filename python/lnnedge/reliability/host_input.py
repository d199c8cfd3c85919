"""Host-side bad input: every task of the CLI given what a careless user (or an attacker) would give it.

Each case is an `invoke` command line with damaged input: a recipe with an unknown, misspelt, non-finite or
out-of-range key, a boards.yaml entry of the wrong type, a checkpoint that is truncated or not one, a user's
module, weights, example shape or test data that cannot be used, a --file that is not a model, an
option that is not a number (or NaN, or out of range), a name that would step out of build/, a missing
tool. The contract (tasks.py): a non-zero exit, exactly one line `error: ...` on stderr that names the
problem (the case's `expect` phrase), and no traceback. A few valid controls must still succeed.

`run_cases` runs them through the real CLI: Invoke's `Program` over tasks.py, either in this process (fast:
torch is imported once) or as `.venv/bin/invoke` subprocesses (`processes=True`, 2 at a time), which is what
`host_input_campaign` does at full size. Scratch files live in a temporary directory; the few artefacts a
case needs under build/ go to build/hostinput-*/ and are removed afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..paths import BUILD_DIR, ROOT
from . import Campaign

INVOKE = ROOT / ".venv" / "bin" / "invoke"
PREFIX = "hostinput-"  # build/<PREFIX>*/: the campaign's own artefacts


@dataclass(frozen=True)
class Case:
    name: str  # what is wrong, in a few words
    argv: tuple[str, ...]  # the invoke arguments; "{tmp}" stands for the scratch directory
    expect: str | None  # a phrase the error line must hold; None: a valid control that must succeed
    files: dict[str, str | bytes] = field(default_factory=dict)  # scratch files ({tmp}/name, or build/...)
    env: dict[str, str] = field(default_factory=dict)
    needs_model: bool = False  # the compiled build/hostinput-model/ (a tiny LTC) must exist


@dataclass(frozen=True)
class Result:
    case: Case
    outcome: str  # "rejected", "accepted", "crashed", "hung", "wrongly accepted"
    detail: str


def _recipe(edit: Callable[[dict], None] | None = None, name: str | None = None) -> str:
    """recipes/ltc-sine.yaml, edited, as YAML text; `name` keeps build/ clean (default: a campaign name)."""
    raw = yaml.safe_load((ROOT / "recipes" / "ltc-sine.yaml").read_text())
    raw["name"] = name or f"{PREFIX}recipe"
    if edit is not None:
        edit(raw)
    return yaml.safe_dump(raw)


def _boards(entry: str) -> dict[str, str]:
    return {"boards.yaml": f"boards: {{b: {{{entry}}}}}\n"}


BOARDS_ENV = {"LNNEDGE_BOARDS": "{tmp}/boards.yaml"}
SSH = "target: rpi4, transport: ssh, host: pi, user: pi, key: k, remote_dir: /srv/lnnedge"
SERIAL = "target: cortex-m4, transport: serial, port: /dev/ttyACM0"
MODEL = f"{PREFIX}model"  # the tiny compiled model of the cases that need one


def _checkpoints() -> dict[str, bytes]:
    """Damaged checkpoints: a real one cut short, one of another shape, a pickled 5."""
    import torch

    from ..models import build_model
    from ..recipe import load

    def saved(obj: object) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    good = saved({"state_dict": build_model(load("ltc-sine").model).state_dict()})
    return {"truncated": good[: len(good) // 3], "text": b"not a checkpoint\n",
            "other shape": saved({"state_dict": {"w": torch.zeros(3)}}), "five": saved(5), "empty": b""}


USER_MODULE = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)

    def forward(self, x):
        return torch.tanh(self.a(x))


def make_model():
    return Net()
"""


def _user_module_cases() -> list[Case]:
    """Your own module (compile --module) and a compiled file (--file), given wrongly."""
    import numpy as np
    import torch

    def npz(**arrays: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    other = io.BytesIO()
    torch.save(torch.nn.Linear(5, 2).state_dict(), other)
    module = {"m.py": USER_MODULE}
    compile_m = ("compile", "--module", "{tmp}/m.py:make_model", "--example", "1x3", "--out", "{tmp}/out")
    return [
        Case("module file missing", ("compile", "--module", "{tmp}/none.py:make_model", "--example", "1x3"),
             "none.py does not exist"),
        Case("module without a factory", ("compile", "--module", "{tmp}/m.py", "--example", "1x3"),
             "expected FILE.py:FACTORY", module),
        Case("no such factory", ("compile", "--module", "{tmp}/m.py:build", "--example", "1x3"),
             "has no function build (it defines make_model)", module),
        Case("factory not giving a module", ("compile", "--module", "{tmp}/m.py:make_model", "--example", "1x3"),
             "returned int, not an nn.Module", {"m.py": "def make_model():\n    return 5\n"}),
        Case("module that does not import", ("compile", "--module", "{tmp}/m.py:make_model", "--example", "1x3"),
             "importing", {"m.py": "import no_such_package_here\n"}),
        Case("wrong example shape", (*compile_m[:4], "1x5"), "cannot run on inputs of shape 1x5", module),
        Case("example not a shape", (*compile_m[:4], "1xa"), "--example 1xa: expected shapes like 1x3", module),
        Case("example without a batch", (*compile_m[:4], "3"), "at least two dims", module),
        Case("module without --example", compile_m[:3], "--module needs --example", module),
        Case("weights missing", (*compile_m, "--weights", "{tmp}/none.pt"), "--weights", module),
        Case("weights of another model", (*compile_m, "--weights", "{tmp}/w.pt"), "does not fit Net",
             {**module, "w.pt": other.getvalue()}),
        Case("weights not a state_dict", (*compile_m, "--weights", "{tmp}/w.pt"), "not a PyTorch state_dict",
             {**module, "w.pt": "hello"}),
        Case("test data without inputs", (*compile_m, "--test-data", "{tmp}/d.npz"), "no array inputs",
             {**module, "d.npz": npz(x=np.zeros((4, 3), np.float32))}),
        Case("test data not an npz", (*compile_m, "--test-data", "{tmp}/d.npz"), "not an .npz archive",
             {**module, "d.npz": "inputs"}),
        Case("test inputs of another width", (*compile_m, "--test-data", "{tmp}/d.npz"),
             "inputs has shape 4x5; rows of 3 expected", {**module, "d.npz": npz(inputs=np.zeros((4, 5), np.float32))}),
        Case("test data holding NaN", (*compile_m, "--test-data", "{tmp}/d.npz"), "hold NaN",
             {**module, "d.npz": npz(inputs=np.full((4, 3), np.nan, np.float32))}),
        Case("check without a module", ("compile", "--check"), "go with --module"),
        Case("--file not .lnnb", ("verify", "--file", "{tmp}/m.py", "--board", "host"),
             "not a compiled model (.lnnb)", module),
        Case("--file missing", ("deploy", "--file", "{tmp}/none.lnnb", "--board", "host"), "no such file"),
        Case("--file not a model", ("run", "--file", "{tmp}/x.lnnb", "--board", "host"), "--file",
             {"x.lnnb": b"LNNB" + bytes(7)}),
        Case("--model and --file", ("run", "--model", "ltc-sine", "--file", "{tmp}/x.lnnb"), "mutually exclusive"),
        Case("--module without --file", ("verify", "--module", "{tmp}/m.py:make_model"), "--module goes with --file",
             module),
        Case("control: compile your own module", compile_m, None, module),
    ]


def cases() -> list[Case]:
    """The table of bad inputs, one per line: (what is wrong, command, the phrase its error must hold)."""
    def recipe_case(name: str, edit: Callable[[dict], None], expect: str, task: str = "train") -> Case:
        return Case(name, (task, "--model", "{tmp}/r.yaml"), expect, {"r.yaml": _recipe(edit)})

    def board_case(name: str, entry: str, expect: str) -> Case:
        return Case(name, ("status", "--board", "b"), expect, _boards(entry), BOARDS_ENV)

    solver = lambda **kw: lambda r: r["model"]["solver"].update(kw)  # noqa: E731
    table = [
        # recipes (issue 15, defects 9 and 10, and more)
        recipe_case("unknown solver key", solver(step=50), "model.solver.step: unknown key (did you mean 'steps'?)"),
        recipe_case("training key at the top", lambda r: r.update(epochs=5), "did you mean 'training.epochs'?"),
        recipe_case("NaN t_start", solver(t_start=float("nan")), "model.solver.t_start: must be a finite number"),
        recipe_case("infinite tolerance", lambda r: r["tolerances"].update(float32_max_abs_err=float("inf")),
                    "tolerances.float32_max_abs_err: must be a finite number", "verify"),
        recipe_case("name out of build/", lambda r: r.update(name="../.."), "name: must be a name"),
        recipe_case("name with a slash", lambda r: r.update(name="a/b"), "name: must be a name"),
        recipe_case("overflowing expression", lambda r: r["data"].update(range=[0, "10**400"]),
                    "data.range[0][1]: must be a finite number"),
        recipe_case("bool as integer", lambda r: r["model"].update(hidden=True), "model.hidden: must be an integer"),
        recipe_case("string as integer", lambda r: r["training"].update(epochs="10"),
                    "training.epochs: must be an integer"),
        recipe_case("float as integer", lambda r: r["training"].update(batch_size=12.5),
                    "training.batch_size: must be an integer"),
        recipe_case("negative learning rate", lambda r: r["training"].update(lr=-1), "training.lr: must be > 0"),
        recipe_case("seed beyond 32 bits", lambda r: r["training"].update(seed=2**40), "training.seed: must be <="),
        recipe_case("unknown model kind", lambda r: r["model"].update(kind="sparse"), "model.kind: must be one of"),
        recipe_case("solver backwards", solver(t_end=-1), "t_end (-1) must be greater than t_start"),
        recipe_case("code in the function", lambda r: r["data"].update(function="__import__('os')"),
                    "data.function"),
        recipe_case("function with a pole", lambda r: r["data"].update(function="log(x)"), "is not finite"),
        recipe_case("range per input", lambda r: r["data"].update(range=[[0, 1], [0, 2]]),
                    "data.range: needs one [low, high] pair per input"),
        recipe_case("tolerance section missing", lambda r: r.pop("tolerances"), "tolerances: is missing"),
        recipe_case("misspelt quantization key", lambda r: r["quantization"].update(schem="int8"),
                    "quantization.schem: unknown key (did you mean 'scheme'?)", "compile"),
        Case("recipe not found", ("train", "--model", "no-such-recipe"), "not found"),
        Case("recipe not YAML", ("train", "--model", "{tmp}/r.yaml"), "not valid YAML", {"r.yaml": "model: {"}),
        Case("recipe not text", ("train", "--model", "{tmp}/r.yaml"), "not valid YAML",
             {"r.yaml": b"\xff\xfe\x00garbage"}),
        Case("recipe a list", ("train", "--model", "{tmp}/r.yaml"), "must be a mapping", {"r.yaml": "[1, 2]\n"}),
        Case("recipe empty", ("train", "--model", "{tmp}/r.yaml"), "must be a mapping", {"r.yaml": ""}),
        # checkpoints
        *[Case(f"checkpoint: {what}", ("compile", "--model", "{tmp}/r.yaml"), expect,
               {"r.yaml": _recipe(name=f"{PREFIX}ckpt-{i}"), f"build/{PREFIX}ckpt-{i}/checkpoint.pt": what})
          for i, (what, expect) in enumerate([("truncated", "is not a checkpoint written by `invoke train`"),
                                              ("text", "is not a checkpoint written by `invoke train`"),
                                              ("other shape", "does not match recipe"),
                                              ("five", "holds no model weights"),
                                              ("empty", "is not a checkpoint written by `invoke train`")])],
        Case("checkpoint missing", ("compile", "--model", "{tmp}/r.yaml"), "does not exist: run `invoke train",
             {"r.yaml": _recipe(name=f"{PREFIX}nothing")}),
        # options
        Case("zero epochs", ("train", "--epochs", "0"), "--epochs must be >= 1, got 0"),
        Case("negative epochs", ("train", "--epochs", "-5"), "--epochs must be >= 1, got -5"),
        Case("epochs not a number", ("train", "--epochs", "ten"), "--epochs must be an integer, got 'ten'"),
        Case("negative seed", ("train", "--seed", "-1"), "--seed must be >= 0"),
        Case("empty seed in a list", ("train-seeds", "--seeds", "1,,2"), "--seeds has an empty item"),
        Case("row not a number", ("verify", "--trace", "--row", "abc"), "--row must be an integer, got 'abc'"),
        Case("negative row", ("verify", "--trace", "--row", "-1"), "--row must be >= 0, got -1"),
        Case("row past the points", ("verify", "--trace", "--board", "host", "--model", MODEL, "--row", "99999"),
             "--row must be between 0 and", needs_model=True),
        Case("zero steps", ("stream", "--steps", "0"), "--steps must be >= 1, got 0"),
        Case("steps not a number", ("stream", "--steps", "abc"), "--steps must be an integer, got 'abc'"),
        Case("negative steps", ("stream", "--steps", "-1"), "--steps must be >= 1, got -1"),
        Case("steps past the sequence", ("stream", "--steps", "1000"), "--steps must be between 1 and 32"),
        Case("stream a non-sequence model", ("stream", "--model", "ltc-sine"), "is not a sequence model"),
        Case("NaN input", ("run", "--inputs", "nan"), "--inputs must be finite numbers, got 'nan'"),
        Case("infinite input", ("run", "--inputs", "0.5,-inf"), "--inputs must be finite numbers, got '-inf'"),
        Case("only commas", ("run", "--inputs", ",,,"), "--inputs has an empty item"),
        Case("trailing comma", ("run", "--inputs", "0.5,"), "--inputs has an empty item"),
        Case("input not a number", ("run", "--inputs", "0.5,abc"), "got 'abc'"),
        Case("inputs not a whole row", ("run", "--board", "host", "--model", MODEL, "--inputs", "1,2,3"),
             "takes 2 value(s) per input row, got 3", needs_model=True),
        Case("unknown weight scheme", ("run", "--quant", "int4"), "--quant int4: supported schemes are"),
        Case("unknown target", ("build", "--target", "pdp11"), "unknown target 'pdp11'"),
        Case("target out of targets/", ("build", "--target", "../boards"), "unknown target '../boards'"),
        Case("unknown board", ("verify", "--board", "mars"), "unknown board or group 'mars'"),
        Case("board name with a path", ("status", "--board", "../host"), "unknown board or group '../host'"),
        Case("fuzz seconds not a number", ("fuzz", "--seconds", "soon"), "--seconds must be an integer"),
        Case("zero fuzz jobs", ("fuzz", "--jobs", "0"), "--jobs must be >= 1, got 0"),
        Case("zero matrix size", ("bench-matmul", "--size", "0"), "--size must be >= 1, got 0"),
        Case("runs not a number", ("bench-matmul", "--runs", "many"), "--runs must be an integer"),
        # boards.yaml (issue 15, defect 10, and more)
        board_case("serial port a bool", f"{SERIAL.replace('/dev/ttyACM0', 'true')}",
                   "boards.b.port: must be a string, got True"),
        board_case("RAM of '0'", "target: host, transport: local, memory: {ram: '0'}", "boards.b.memory.ram: must be"),
        board_case("RAM not a size", "target: host, transport: local, memory: {ram: lots}", "'lots' is not a size"),
        board_case("negative baud rate", f"{SERIAL}, baudrate: -5", "boards.b.baudrate: must be >= 50, got -5"),
        board_case("infinite timeout", f"{SSH}, timeouts: {{command: .inf}}",
                   "boards.b.timeouts.command: must be a finite number"),
        board_case("misspelt timeout", f"{SSH}, timeouts: {{comand: 5}}", "did you mean 'command'?"),
        board_case("port out of range", f"{SSH}, port: 70000", "boards.b.port: must be <= 65535"),
        board_case("SSH port a bool", f"{SSH}, port: true", "boards.b.port: must be an integer, got True"),
        board_case("relative remote_dir", SSH.replace("/srv/lnnedge", "lnnedge"), "boards.b.remote_dir: must be"),
        board_case("remote_dir with ..", SSH.replace("/srv/lnnedge", "/srv/../etc"), "boards.b.remote_dir: must be"),
        board_case("remote_dir /", SSH.replace("/srv/lnnedge", "/"), "boards.b.remote_dir: must be"),
        board_case("host an ssh option", SSH.replace("host: pi", "host: -oProxyCommand=sh"), "boards.b.host: must be"),
        board_case("no SSH credentials", SSH.replace("key: k, ", ""), "give a 'key' file or 'agent: true'"),
        board_case("unknown board key", "target: host, transport: local, colour: red", "boards.b.colour: unknown key"),
        board_case("unknown transport", "target: host, transport: pigeon", "boards.b.transport: must be one of"),
        board_case("target out of targets/", "target: ../boards, transport: local", "boards.b.target: must be a name"),
        board_case("qemu board on a host target", "target: host, transport: qemu", "needs a target with qemu"),
        Case("group of unknown boards", ("status", "--board", "g"), "groups.g: unknown board(s) ghost",
             {"boards.yaml": "boards: {b: {target: host, transport: local}}\ngroups: {g: [b, ghost]}\n"},
             BOARDS_ENV),
        Case("boards file missing", ("status",), "file not found", {}, {"LNNEDGE_BOARDS": "{tmp}/none.yaml"}),
        Case("boards file not YAML", ("boards",), "not valid YAML", {"boards.yaml": "boards: {"}, BOARDS_ENV),
        *_user_module_cases(),
        # a missing tool
        Case("qemu-system-arm missing", ("run", "--board", "qemu-m4", "--model", MODEL), "qemu-system-arm not found",
             env={"PATH": "{tmp}/no-tools"}, needs_model=True),
        # valid controls: the checks refuse what is wrong, not everything
        Case("control: the boards", ("boards",), None),
        Case("control: a valid custom board", ("boards",), None,
             _boards("target: host, transport: local, memory: {ram: 256KiB}"), BOARDS_ENV),
        Case("control: a valid SSH board", ("boards",), None, _boards(SSH), BOARDS_ENV),
        Case("control: run the tiny model", ("run", "--board", "host", "--model", MODEL, "--inputs", "0.5,1"), None,
             needs_model=True),
    ]
    checkpoints = _checkpoints()
    return [Case(c.name, c.argv, c.expect, {k: checkpoints[v] if k.startswith("build/") else v
                                            for k, v in c.files.items()}, c.env, c.needs_model) for c in table]


def _tiny_model() -> None:
    """build/hostinput-model/: a 2-input, 4-unit LTC trained for one epoch and compiled (a few seconds), and the
    host VM it runs on."""
    from ..pipeline.build import build_target
    from ..pipeline.compile import compile_model
    from ..pipeline.train import train_model

    recipe = ROOT / "build" / f"{MODEL}.yaml"

    def edit(r: dict) -> None:
        r["model"].update(inputs=2, hidden=4)
        r["data"].update(function="sin(x0) * x1", range=[[0, 1], [0, 1]], train_points=64, test_points=16)
        r["training"].update(epochs=1, batch_size=32)
        r["verify"] = {"points": 8}
        r.pop("quantization")

    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(_recipe(edit, name=MODEL))
    train_model(str(recipe))  # the pipeline prints nothing: no output to silence
    compile_model(str(recipe))
    build_target("host")


def _argv(case: Case, tmp: Path) -> list[str]:
    model_recipe = str(BUILD_DIR / f"{MODEL}.yaml")
    return [model_recipe if a == MODEL else a.replace("{tmp}", str(tmp)) for a in case.argv]


def _prepare(case: Case, tmp: Path) -> dict[str, str]:
    for name, content in case.files.items():
        path = ROOT / name if name.startswith("build/") else tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return {k: v.replace("{tmp}", str(tmp)) for k, v in case.env.items()}


def _judge(case: Case, code: int | None, stderr: str) -> Result:
    if code is None:
        return Result(case, "hung", "no answer within the time limit")
    lines = stderr.strip().splitlines()
    if case.expect is None:
        ok = code == 0
        return Result(case, "accepted" if ok else "crashed", "" if ok else f"exit {code}: {stderr.strip()[-300:]}")
    if code == 0:
        return Result(case, "wrongly accepted", "exit 0")
    if "Traceback" in stderr:
        return Result(case, "crashed", stderr.strip()[-600:])
    if len(lines) != 1 or not lines[0].startswith("error: ") or case.expect not in lines[0]:
        # refused, but not with one line that names the problem: the contract is broken all the same
        return Result(case, "crashed", f"exit {code}, expected one line 'error: ...{case.expect}...', got "
                                       f"{stderr.strip()[-400:]!r}")
    return Result(case, "rejected", lines[0])


def _in_process(case: Case, tmp: Path, program) -> Result:
    env = _prepare(case, tmp)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                program.run(["invoke", *_argv(case, tmp)], exit=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # a bug: what the process would print as a traceback
                import traceback

                traceback.print_exc()
                code = 1
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return _judge(case, code, err.getvalue())


def _in_subprocess(case: Case, tmp: Path, timeout: float) -> Result:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **_prepare(case, tmp)}
    try:
        proc = subprocess.run([str(INVOKE), *_argv(case, tmp)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return _judge(case, None, "")
    return _judge(case, proc.returncode, proc.stderr)


def _program():
    """Invoke's Program over this checkout's tasks.py, as the `invoke` command builds it."""
    from invoke import Program

    spec = importlib.util.spec_from_file_location("lnnedge_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return Program(namespace=module.ns)


def run_cases(selected: Sequence[Case] | None = None, processes: bool = False, workers: int = 2,
              timeout: float = 300) -> list[Result]:
    """Each case through the CLI: in this process, or as `invoke` subprocesses (`workers` at a time)."""
    selected = list(cases() if selected is None else selected)
    if any(c.needs_model for c in selected):
        _tiny_model()
    tmp_root = Path(tempfile.mkdtemp(prefix="lnnedge-host-input-"))
    (tmp_root / "no-tools").mkdir()
    try:
        dirs = []
        for i, _case in enumerate(selected):
            (tmp_root / str(i)).mkdir()
            dirs.append(tmp_root / str(i))
        if processes:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return list(pool.map(lambda pair: _in_subprocess(pair[0], pair[1], timeout), zip(selected, dirs)))
        program = _program()
        return [_in_process(case, d, program) for case, d in zip(selected, dirs)]
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
        for leftover in BUILD_DIR.glob(f"{PREFIX}*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()


def campaign_of(results: Sequence[Result], how: str) -> Campaign:
    count = {o: sum(r.outcome == o for r in results)
             for o in ("rejected", "accepted", "crashed", "hung", "wrongly accepted")}
    return Campaign("host-side bad input", how, tried=len(results), rejected_cleanly=count["rejected"],
                    accepted_correctly=count["accepted"], crashed=count["crashed"], hung=count["hung"],
                    wrongly_accepted=count["wrongly accepted"])


def host_input_campaign(processes: bool = True, workers: int = 2) -> Campaign:
    """The whole table through the CLI; at full size each case is its own `invoke` process."""
    results = run_cases(processes=processes, workers=workers)
    for r in results:
        if r.outcome not in ("rejected", "accepted"):
            print(f"host-side bad input: {r.case.name}: {r.outcome}: {r.detail}", file=sys.stderr)
    tried = len(results)
    how = (f"{tried} command lines through the invoke CLI ({'one process each' if processes else 'in process'}): "
           "recipes, boards.yaml entries, checkpoints, user modules, compiled files and options with unknown, "
           "misspelt, non-finite, out-of-range "
           "or path-escaping values, a missing emulator, and valid controls; clean = exit 1 with one "
           "`error:` line naming the problem")
    return campaign_of(results, how)
