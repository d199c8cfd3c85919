"""Every task meets malformed recipes, boards and inputs with one clear line and a non-zero exit;
--debug is the only way to see a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import inputs_for
from lnnedge import recipe
from lnnedge.paths import BUILD_DIR
from test_pipeline import invoke, ok


def _bad_recipe(tmp_path, edit) -> str:
    raw = yaml.safe_load(recipe.recipe_path("ltc-sine").read_text())
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("task", ["train", "compile", "verify"])
@pytest.mark.parametrize("edit, message", [
    (lambda r: r["data"].update(function="sin(x) + import_os()"), "unsupported syntax"),
    (lambda r: r["model"].update(inputs=0), "model.inputs: must be >= 1"),
    (lambda r: r.pop("tolerances"), "tolerances: is missing"),
])
def test_malformed_recipe(tmp_path, task, edit, message):
    path = _bad_recipe(tmp_path, edit)
    proc = invoke(task, "--model", path)
    assert proc.returncode == 1
    assert message in proc.stderr and path in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ("boards: {pi: {target: rpi4, transport: ssh, host: h, user: u, remote_dir: /x}}",
     "give a 'key' file or 'agent: true'"),
    ("boards: {pi: {target: rpi4, transport: ssh, host: h, user: u, key: k, remote_dir: /x, port: 70000}}",
     "boards.pi.port: must be <= 65535, got 70000"),
    ("boards: {pi: {target: host, transport: qemu}}", "transport qemu needs a target with qemu settings"),
    ("boards: {a: {target: host, transport: local}}\ngroups: {g: [a, ghost]}", "unknown board(s) ghost"),
])
@pytest.mark.parametrize("task", ["verify", "deploy", "status"])
def test_malformed_boards_file(tmp_path, text, message, task):
    path = tmp_path / "boards.yaml"
    path.write_text(text)
    proc = invoke(task, "--board", "g" if "groups" in text else "pi", env={"LNNEDGE_BOARDS": str(path)})
    assert proc.returncode == 1
    assert message in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_inputs_to_run_are_named():
    if not (BUILD_DIR / "ltc-sine" / "model.lnnb").is_file():
        ok("train")
        ok("compile")
    ok("build", "--target", "host")
    proc = invoke("run", "--board", "host", "--inputs", "0.5,abc")
    assert proc.returncode == 1 and "abc" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_flag_shows_the_traceback():
    proc = invoke("--debug", "verify", "--board", "mars")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "unknown board" in proc.stderr


def test_nan_and_inf_inputs_propagate_identically_in_both_vms(host_build, sine_compiled):
    """The documented policy: non-finite inputs are not rejected by the VM; they propagate (IEEE 754)
    the same way in the reference VM and in every kernel set of the C VM."""
    from lnnedge.refvm import RefVM
    from lnnedge.runtime import CVM

    x = np.concatenate([inputs_for(1, 4), np.array([[np.nan], [np.inf], [-np.inf], [1e30], [-1e30]], np.float32)])
    with np.errstate(invalid="ignore"):
        ref = RefVM(sine_compiled.data).run([x])[0]
    vm = CVM(sine_compiled.data, max_batch=len(x), library=host_build.library)
    dev = vm.run([x])[0]
    assert np.array_equal(np.isnan(ref), np.isnan(dev))
    finite = np.isfinite(ref)
    assert np.array_equal(finite, np.isfinite(dev))
    scale = np.maximum(1.0, np.abs(ref[finite]))  # inputs of ±1e30 give outputs near ±1e28
    assert np.max(np.abs(ref[finite] - dev[finite]) / scale) <= 1e-5
    assert np.isnan(dev[4, 0])
