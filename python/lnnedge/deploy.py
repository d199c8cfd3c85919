"""deploy / status, and running a step over a fleet of boards in parallel.

deploy puts the target's VM and the compiled model on a board and activates
them only after the device reproduces the test set bundled in the model file
(PyTorch's outputs for a few held-out inputs, see smoke.py and
transports/ssh.py).
Boards without a remote side (local, qemu) have nothing to upload: deploy
checks their build exists and runs the same smoke test, so a fleet can mix
them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config, fit, isa, lnnb
from .artifacts import ArtifactError, MissingArtifact
from .build import runner_path
from .paths import VM_DIR
from .recipe import Recipe
from .transports import TransportError, for_board


def vm_version() -> str:
    text = (VM_DIR / "include" / "lnnvm.h").read_text()
    match = re.search(r'#define LNN_VM_VERSION "([^"]+)"', text)
    return match.group(1) if match else "unknown"


def bundled_tests(model_file: Path) -> tuple[list[np.ndarray], lnnb.TestSet]:
    """The model's bundled test set, with its inputs split and shaped as the model's inputs."""
    program = lnnb.read(model_file.read_bytes())
    if program.tests is None:
        raise ArtifactError(f"{model_file} carries no test set for the smoke test: recompile it with "
                         "`invoke compile` (which bundles one)")
    count = program.tests.inputs.shape[0]
    entries = sorted((t.offset, t) for t in program.tensors if t.region == isa.const("REG_INPUT"))
    inputs, start = [], 0
    for _, t in entries:
        row = t.dims[1:] if t.batched else t.dims
        width = int(np.prod(row, dtype=np.int64))
        inputs.append(program.tests.inputs[:, start:start + width].reshape(count, *row))
        start += width
    return inputs, program.tests


def deploy(recipe: Recipe, model_file: Path, board: config.Board,
           before_step: Callable[[str], None] | None = None) -> dict:
    """`before_step` is handed to the SSH transport's deploy (called before each remote step; the deploy
    kill-point campaign's seam); other boards have no remote steps."""
    runner = runner_path(board.target)
    if not runner.is_file():
        raise MissingArtifact(f"{runner} does not exist: run `invoke build --target {board.target.name}` first")
    fit.check(board, model_file, runner)
    inputs, tests = bundled_tests(model_file)
    version = {"model": recipe.name, "model_file": model_file.name,
               "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
               "vm_version": vm_version(), "target": board.target.name,
               "deployed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    transport = for_board(board, runner)
    try:
        if board.transport == "ssh":
            return transport.deploy(runner, model_file, version, before_step)
        if hasattr(transport, "smoke_test"):  # the runner's own check of the bundled test set
            smoke = transport.smoke_test(model_file)
            err, passed, what = smoke["max_abs_err"], smoke["passed"], smoke["summary"]
        else:  # a board without the runner (firmware over a serial line): the same comparison here
            outputs = transport.run(model_file, inputs).outputs
            out = np.concatenate([o.reshape(len(tests.outputs), -1) for o in outputs], axis=1)
            err = float(np.max(np.abs(out.astype(np.float64) - tests.outputs)))
            passed, what = err <= tests.max_abs_err, f"max |err| {err:.3e}, tolerance {tests.max_abs_err:.0e}"
    finally:
        getattr(transport, "close", lambda: None)()
    if not passed:
        raise TransportError(f"board {board.name}: smoke test failed ({what})")
    return {**version, "release": "local build", "smoke_max_abs_err": err}


def status(board: config.Board) -> dict:
    if board.transport != "ssh":
        # Nothing stays on such a board: each run is given the local build and the model file.
        return {"deployed": False, "target": board.target.name,
                "note": f"nothing is deployed: a {board.transport} board is given {runner_path(board.target)} "
                        "and the model at each run"}
    transport = for_board(board, runner_path(board.target))
    try:
        return transport.status()
    finally:
        transport.close()


@dataclass(frozen=True)
class Outcome:
    board: str
    ok: bool
    detail: dict
    error: str = ""


def across(boards: list[config.Board], action: Callable[[config.Board], dict]) -> list[Outcome]:
    """Run `action` on every board in parallel; one board's failure does not stop the others."""

    def one(board: config.Board) -> Outcome:
        try:
            detail = action(board)
            return Outcome(board.name, bool(detail.get("passed", True)), detail)
        except Exception as exc:  # reported per board in the summary
            return Outcome(board.name, False, {}, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    with ThreadPoolExecutor(max_workers=max(1, len(boards))) as pool:
        return list(pool.map(one, boards))


def summary(outcomes: list[Outcome], columns: tuple[str, ...]) -> str:
    header = ("board", "result", *columns)
    rows = [header]
    for o in outcomes:
        cells = []
        for col in columns:
            value = o.detail.get(col, "")
            cells.append(f"{value:.2e}" if isinstance(value, float) else str(value))
        rows.append((o.board, "ok" if o.ok else f"FAILED: {o.error}" if o.error else "FAILED", *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = sum(not o.ok for o in outcomes)
    lines.append(f"{len(outcomes) - failed} of {len(outcomes)} boards ok")
    return "\n".join(lines)
