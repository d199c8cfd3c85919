"""The kit as an installed package used in a user's own project and CI: the wheel, the `lnnedge` command, the
project directory, JUnit reports, the shipped boards.yaml's groups, the thread policy, the runner's --help.

The wheel test builds the wheel from this checkout and installs it into a fresh venv. To keep the suite fast
the venv gets its dependencies (torch, numpy, ...) from the kit's own .venv through a .pth file instead of
downloading them; the lnnedge package itself — code and data — comes only from the wheel (checked)."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import yaml
from lnnedge import config, junit, recipe, threads
from lnnedge.paths import ROOT
from lnnedge.train import train

# A recipe small enough to train in seconds; it lives in the user's project (recipes/), not in the kit.
TINY_RECIPE = """\
name: tiny
description: a small LTC fitting a line, for the package test
model: {kind: ltc, inputs: 1, hidden: 8, outputs: 1, solver: {method: euler, t_start: 0, t_end: 1, steps: 4}}
data: {function: 0.5*x, range: [0, 1], train_points: 256, test_points: 64, seed: 7}
training: {seed: 0, epochs: 30, batch_size: 64, lr: 0.02, lr_final: 0.001, grad_clip: 1.0}
tolerances: {float32_max_abs_err: 1.0e-5, target_rmse: 0.2}
verify: {points: 64}
"""


def check_junit(path: Path) -> ET.Element:
    """Parse a JUnit report and check it against what both the Ant JUnit schema (JUnit.xsd) and Jenkins'
    junit-10.xsd require: element order, required attributes, their types; returns its <testsuite>."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and not root.attrib  # JUnit.xsd declares no attributes on <testsuites>
    (suite,) = list(root)
    assert suite.tag == "testsuite"
    required = {"name", "package", "id", "timestamp", "hostname", "tests", "failures", "errors", "time"}
    assert set(suite.attrib) == required
    assert suite.get("name").strip() and suite.get("hostname").strip() and suite.get("package").strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))  # no zone: the xsd's pattern
    for key in ("id", "tests", "failures", "errors"):
        assert suite.get(key).isdigit()
    float(suite.get("time"))
    tags = [child.tag for child in suite]
    assert tags == ["properties", *["testcase"] * (len(tags) - 3), "system-out", "system-err"]
    assert all(p.tag == "property" and set(p.attrib) == {"name", "value"} for p in suite.find("properties"))
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    for case in cases:
        assert set(case.attrib) == {"name", "classname", "time"}
        float(case.get("time"))
        assert len(case) <= 1 and all(child.tag in ("failure", "error") for child in case)
        for child in case:
            assert child.get("type") and child.get("message")
    assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
    return suite


def test_junit_report_has_a_case_per_board_with_failures_and_errors_named(tmp_path):
    data = {"model": "ltc-sine", "board": "b", "kind": "regression", "passed": False, "max_abs_err": 3.2e-3,
            "tolerance": 1e-5, "device_wall_seconds": 1.25}
    cases = [junit.case_of("a", {**data, "board": "a", "passed": True}), junit.case_of("b", data),
             junit.case_of("c", {}, "board c: connection refused")]
    suite = check_junit(junit.write(tmp_path / "j.xml", cases, "ltc-sine"))
    a, b, c = suite.findall("testcase")
    assert [x.get("name") for x in (a, b, c)] == ["a", "b", "c"]
    assert len(a) == 0
    assert b.find("failure").get("message") == "verification failed on b: max_abs_err 3.200e-03 > tolerance 1e-05"
    assert b.get("time") == "1.250"
    assert c.find("error").get("message") == "board c: connection refused"


def test_the_shipped_qemu_all_group_holds_every_qemu_board():
    boards, _default = config.load_boards(config.BOARDS_FILE)
    emulated = {name for name, b in boards.items() if b.transport in ("qemu", "qemu-system")}
    assert set(config.load_groups(config.BOARDS_FILE)["qemu-all"]) == emulated


def test_training_follows_the_thread_policy(tmp_path, monkeypatch):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.setenv(threads.ENV, "2")  # train() must set torch's threads itself
        assert train(recipe.load(str(path)), epochs=1).metrics["torch_threads"] == 2
        monkeypatch.delenv(threads.ENV)
        assert threads.apply_policy() == torch.get_num_threads() == threads.DEFAULT_THREADS == 1
        monkeypatch.setenv(threads.ENV, "lots")
        with pytest.raises(threads.ThreadsError, match=r"\$LNNEDGE_THREADS='lots': expected a whole number"):
            train(recipe.load(str(path)), epochs=1)
    finally:
        torch.set_num_threads(before)


def test_lnnvm_help_exits_0_and_a_bare_call_is_a_usage_error(host_build):
    helped = subprocess.run([str(host_build.runner), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "usage: lnnvm" in helped.stdout and "lnnvm --help" in helped.stdout
    bare = subprocess.run([str(host_build.runner)], capture_output=True, text=True)
    assert bare.returncode == 2 and "usage: lnnvm" in bare.stderr


def _tasks():
    spec = importlib.util.spec_from_file_location("lnnedge_tasks_under_test", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns


def test_task_list_lines_are_whole_sentences_and_flags_name_their_defaults():
    ns = _tasks()
    for name, t in ns.tasks.items():
        assert t.__doc__.splitlines()[0].rstrip().endswith("."), name  # --list shows only this line
    help_of = {a.name: a.help for a in ns.tasks["build"].get_arguments()}
    assert help_of["target"].endswith("(default: host)")
    help_of = {a.name: a.help for a in ns.tasks["verify"].get_arguments()}
    assert "(default:" in help_of["row"] and "JUnit" in help_of["junit"]


def test_the_ci_example_verifies_the_qemu_all_group_with_a_junit_report():
    workflow = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text())
    commands = [step.get("run", "") for step in workflow["jobs"]["verify"]["steps"]]
    assert any("lnnedge verify" in c and "--board qemu-all" in c and "--junit build/junit.xml" in c for c in commands)
    assert "qemu-all" in config.load_groups(config.BOARDS_FILE)


def test_readme_links_resolve():
    for readme in (ROOT / "README.md", ROOT / "vm" / "README.md", ROOT / "vm" / "firmware" / "README.md"):
        for target in re.findall(r"\]\(([^)#\s]+)[^)]*\)", readme.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (readme.parent / target).exists(), f"{readme}: {target}"


# ---- the wheel, installed in a fresh venv, used from a directory outside the checkout ----------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout; returns its bin/ directory."""
    work = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (work / "dist").glob("lnnedge-*.whl")
    venv.create(work / "venv", with_pip=False)
    python = work / "venv" / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True,
                   capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the dependencies from the kit's venv: its site-packages directories (after the fresh venv's own, so lnnedge
    # is the wheel's; the checkout's python/ is not among them)
    kit_sites = [p for p in sys.path if Path(p).name == "site-packages" and Path(p).is_dir()]
    (site / "kit-dependencies.pth").write_text("".join(f"{p}\n" for p in kit_sites))
    return python.parent


def _env() -> dict:
    """This process's environment without anything that would point the installed package at the checkout."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("LNNEDGE_")}


def _run(bin_dir: Path, cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(bin_dir / "lnnedge"), *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == code, f"lnnedge {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_wheel_trains_compiles_builds_and_verifies_outside_the_checkout(installed, tmp_path):
    project = tmp_path / "my-project"
    (project / "recipes").mkdir(parents=True)
    (project / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    assert ROOT not in project.parents

    where = subprocess.run([str(installed / "python"), "-c", "import lnnedge.paths as p; print(p.DATA_DIR); "
                            "print(p.PROJECT_DIR)"], cwd=project, env=_env(), capture_output=True, text=True,
                           check=True).stdout.split()
    assert Path(where[0]).is_relative_to(installed.parent) and Path(where[1]) == project
    for shipped in ("vm/src/interp.c", "vm/Makefile", "targets/host.yaml", "toolchains/native-gcc.yaml",
                    "recipes/ltc-sine.yaml", "boards.yaml", "tasks.py"):
        assert (Path(where[0]) / shipped).is_file(), shipped

    assert "verify" in _run(installed, project, "--list").stdout
    missing = _run(installed, tmp_path, "--project", str(tmp_path / "nowhere"), "boards", code=1)
    assert missing.stderr.strip() == f"error: --project {tmp_path / 'nowhere'}: no such directory"
    _run(installed, project, "train", "--model", "tiny")
    _run(installed, project, "compile", "--model", "tiny")
    # no runner yet: verify builds it (one line says so), as make would
    verified = _run(installed, project, "verify", "--model", "tiny", "--board", "host")
    assert [line for line in verified.stderr.splitlines() if "building it" in line] == [
        f"{project / 'build/vm/host/lnnvm'} is missing: building it (invoke build --target host)"]
    _run(installed, project, "build", "--target", "host")
    for made in ("tiny/checkpoint.pt", "tiny/model.lnnb", "tiny/verify-host.json", "vm/host/lnnvm"):
        assert (project / "build" / made).is_file(), made

    # the project's own boards.yaml and a group, verified from elsewhere with --project, reported as JUnit
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens there once the socket is closed
    (project / "key").write_text("not a key\n")
    (project / "boards.yaml").write_text(yaml.safe_dump({
        "default_board": "host",
        "boards": {"host": {"target": "host", "transport": "local"},
                   "host-again": {"target": "host", "transport": "local"},
                   "offline": {"target": "host", "transport": "ssh", "host": "127.0.0.1", "port": closed_port,
                               "user": "nobody", "key": "key", "remote_dir": "/tmp/lnnedge-offline",
                               "timeouts": {"connect": 5}}},
        "groups": {"ci": ["host", "host-again", "offline"]}}))
    failed = _run(installed, tmp_path, "--project", str(project), "verify", "--model", "tiny", "--board", "ci",
                  "--junit", str(project / "build" / "junit.xml"), code=1)
    assert "verification failed on offline" in failed.stderr
    suite = check_junit(project / "build" / "junit.xml")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["host", "host-again", "offline"]
    assert len(cases["host"]) == 0 and len(cases["host-again"]) == 0
    assert cases["offline"].find("error") is not None
    assert (project / "build" / "tiny" / "verify-host-again.json").is_file()
