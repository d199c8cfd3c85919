"""deploy / status over a board or a group of boards (in parallel, a row per board).

deploy puts the target's VM and the compiled model on a board and activates them only after the device
reproduces the test set bundled in the model file (PyTorch's outputs for a few held-out inputs, smoke.py); how
a board does that is its device's business (lnnedge.devices). Boards without a remote side (local, QEMU,
serial) have nothing to upload and run the same smoke test, so a fleet can mix them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

from .. import config, fit, quant_gate
from .. import recipe as recipes
from ..artifacts import MissingArtifact
from ..build import runner_path
from ..devices import open_device, prepare, reserve
from ..devices.base import BeforeStep
from ..devices.fleet import across
from ..paths import VM_DIR, model_dir
from .model_files import compiled_file
from .reports import FleetReport

STATUS_COLUMNS = ("deployed", "release", "model", "model_sha256", "vm_version", "target", "deployed_at", "note")


def vm_version() -> str:
    text = (VM_DIR / "include" / "lnnvm.h").read_text()
    match = re.search(r'#define LNN_VM_VERSION "([^"]+)"', text)
    return match.group(1) if match else "unknown"


def deploy_to(model: str, model_file: Path, board: config.Board,
              before_step: BeforeStep | None = None) -> dict:
    """One board: the build and the fit checked here, then the device's own deploy (`model` names what is
    deployed: a recipe, or a compiled file's model). `before_step` is handed to it (called before each remote
    step: the deploy kill-point campaign's seam)."""
    prepare(board)
    runner = runner_path(board.target)
    if not runner.is_file():  # a serial board's firmware image: flashed by hand, not built here
        raise MissingArtifact(f"{runner} does not exist: run `invoke build --target {board.target.name}` first")
    fit.check(board, model_file, runner)
    version = {"model": model, "model_file": model_file.name,
               "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
               "vm_version": vm_version(), "target": board.target.name,
               "deployed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    with open_device(board) as device:
        return device.deploy(model_file, version, before_step)


def status_of(board: config.Board) -> dict:
    with open_device(board) as device:
        return device.status()


def deploy(model: str, board: str | None, quant: str | None = None, force: bool = False,
           count: int | None = None) -> FleetReport:
    """A quantized model only with a passed quantize-check of this very file (or `force`). `count`: a labgrid
    board's places to deploy to at once (lnnedge.devices.reserve)."""
    recipe = recipes.load(model)
    boards = config.resolve(board)
    path = compiled_file(recipe, quant)
    if quant and not force:
        quant_gate.gate(model_dir(recipe.name), recipe, path, quant)
    with reserve(boards, count) as boards:
        outcomes = across(boards, lambda b: deploy_to(recipe.name, path, b))
    return FleetReport("deploy", ("release", "target", "smoke_max_abs_err"), tuple(outcomes))


def status(board: str | None, count: int | None = None) -> FleetReport:
    with reserve(config.resolve(board), count) as boards:
        return FleetReport("status", STATUS_COLUMNS, tuple(across(boards, status_of)))
