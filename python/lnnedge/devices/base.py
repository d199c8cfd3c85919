"""The shape every device shares: the `Device` protocol, its results and its errors.

A device is one board of boards.yaml opened for use (`lnnedge.devices.open_device`). Every kind
answers the same verbs; a verb a kind cannot do raises `CapabilityError` (a `DeviceError`) naming the
kind and what to use instead, so callers never ask which kind they hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .. import isa, lnnb
from ..artifacts import ArtifactError
from ..config import Board
from ..errors import LnnedgeError


class DeviceError(LnnedgeError, RuntimeError):
    """A device could not do what was asked: unreachable, refused, failed, or answered wrongly."""


class CapabilityError(DeviceError):
    """This kind of device cannot do the verb at all (trace over a serial line, stream over SSH)."""


@dataclass(frozen=True)
class RunResult:
    outputs: list[np.ndarray]  # one array per model output, rows first
    timing: dict  # the runner's JSON line: latency_us_median, isa, vm_version, ... (serial: cycles too)
    info: dict  # the model's and device's description, as info() returns it


@dataclass(frozen=True)
class SmokeResult:
    """The model's bundled test set run on the device (`lnnvm test`, or compared here for firmware)."""

    cases: int
    max_abs_err: float
    tolerance: float
    passed: bool
    summary: str  # one line, e.g. "tests: 16 cases, max_abs_err 1.2e-07, tolerance 1e-05, PASSED"


@runtime_checkable
class Stream(Protocol):
    """A model run one row at a time with its state kept between rows (a context manager)."""

    def step(self, row: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Stream: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Device(Protocol):
    """One board, opened. Connections open lazily (at the first verb that needs one); close() releases
    them (and stops an emulator the device started). Use it as a context manager."""

    name: str  # the board's name
    kind: str  # "local", "qemu-user", "ssh", "serial" or "emulator"
    emulated: bool  # the code runs under an emulator (QEMU user or system mode, or an SSH command prefix)

    def info(self, model: Path) -> dict: ...

    def deploy(self, model: Path, version: dict, before_step: BeforeStep | None = None) -> dict: ...

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1) -> RunResult: ...

    def stream(self, model: Path) -> Stream: ...

    def test(self, model: Path) -> SmokeResult: ...

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]: ...

    def profile(self, model: Path, runs: int, program: Path) -> dict: ...

    def status(self) -> dict: ...

    def close(self) -> None: ...

    def __enter__(self) -> Device: ...

    def __exit__(self, *exc: object) -> None: ...


class BeforeStep(Protocol):
    """Called with a short description before each remote step of a deploy (the kill-point campaign's seam)."""

    def __call__(self, what: str) -> None: ...


def bundled_tests(model: Path) -> tuple[list[np.ndarray], lnnb.TestSet]:
    """The model's bundled test set, with its inputs split and shaped as the model's inputs."""
    program = lnnb.read(Path(model).read_bytes())
    if program.tests is None:
        raise ArtifactError(f"{model} carries no test set for the smoke test: recompile it with "
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


def compare_with_tests(outputs: list[np.ndarray], tests: lnnb.TestSet) -> SmokeResult:
    """The device's outputs for the bundled inputs held to the bundled outputs and tolerance (for a device
    without the runner's own `lnnvm test`)."""
    out = np.concatenate([o.reshape(len(tests.outputs), -1) for o in outputs], axis=1)
    err = float(np.max(np.abs(out.astype(np.float64) - tests.outputs)))
    passed = err <= tests.max_abs_err  # a NaN output compares False: not passed
    return SmokeResult(len(tests.outputs), err, float(tests.max_abs_err), passed,
                       f"max |err| {err:.3e}, tolerance {tests.max_abs_err:.0e}")


class DeviceBase:
    """What every kind shares: the board, the context manager, the deploy and status of a board that keeps
    nothing between runs, and the refusals of the verbs a kind lacks."""

    kind: str
    emulated: bool = False

    def __init__(self, board: Board, program: Path):
        self.board = board
        self.name = board.name
        self.program = Path(program)  # what the board runs: the lnnvm runner or the firmware image

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (kinds with a connection or a process override this)."""

    def _cannot(self, verb: str, instead: str) -> CapabilityError:
        return CapabilityError(f"board {self.name} ({self.kind}): {verb} is not available; {instead}")

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        raise self._cannot("tracing (verify --trace)",
                           "trace on a board with the lnnvm runner (host, QEMU user mode or SSH)")

    def test(self, model: Path) -> SmokeResult:
        raise NotImplementedError  # every kind implements it

    def profile(self, model: Path, runs: int, program: Path) -> dict:
        """`invoke profile`: the model's bundled test case 0 run `runs` times by `program` (the profiling runner or
        firmware, lnnedge.profile) with per-pc counters; the raw figures (lnnedge.profile reads them)."""
        raise self._cannot("profiling", "profile on a board with the runner (host, QEMU, SSH) or the firmware")

    def deploy(self, model: Path, version: dict, before_step: BeforeStep | None = None) -> dict:
        """Nothing is uploaded (each run is given the model): the bundled test set must pass here.
        `before_step` is not called: such a board has no remote steps."""
        smoke = self.test(model)
        if not smoke.passed:
            raise DeviceError(f"board {self.name}: smoke test failed ({smoke.summary})")
        return {**version, "release": "local build", "smoke_max_abs_err": smoke.max_abs_err}

    def status(self) -> dict:
        # Nothing stays on such a board: each run is given the local build and the model file.
        return {"deployed": False, "target": self.board.target.name,
                "note": f"nothing is deployed: a {self.board.transport} board is given {self.program} "
                        "and the model at each run"}
