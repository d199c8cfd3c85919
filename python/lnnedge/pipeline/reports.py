"""What the pipeline's functions return: one frozen dataclass per step, rendered by lnnedge.console.

A report holds what its step measured and where it wrote its artefacts; it prints nothing. Reports whose step
writes a JSON document under build/ (train-metrics, verify-<board>, quantize-check-<scheme>, bench) carry that
document as `data`: its keys are the file format the README tables and the deploy gate read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: the console imports this module without loading torch
    from ..build import BuildResult
    from ..devices.fleet import Outcome
    from ..trace import Step


@dataclass(frozen=True)
class TrainReport:
    recipe: str
    kind: str  # regression | classifier | sequence
    metrics: dict  # train-metrics.json
    files: tuple[Path, ...]

    @property
    def passed(self) -> bool:
        return bool(self.metrics["passed"])


@dataclass(frozen=True)
class SeedsReport:
    """Training on several seeds (nothing saved): each seed's metrics."""
    recipe: str
    target_rmse: float
    runs: tuple[dict, ...]

    @property
    def failed(self) -> list[int]:
        return [m["seed"] for m in self.runs if not m["passed"]]


@dataclass(frozen=True)
class CompileReport:
    recipe: str
    quant: str | None
    path: Path
    seconds: float
    plan: dict  # CompiledModel.plan_summary(), plus float_file_bytes for a quantized compile beside a float one
    arena_batch1: int
    stored_quantized: tuple[str, ...] = ()  # "name (shape)" of the constants stored as int8 / float16
    # a user's module compiled through the API (lnnedge.compile): what lnnedge.verify holds the device to
    module: Any = field(default=None, repr=False, compare=False)

    @property
    def listing(self) -> Path:
        return self.path.with_name(self.path.name + ".txt")


@dataclass(frozen=True)
class CheckReport:
    """`compile --check`: every op of a module that will not compile, each with its file:line."""
    model: str
    unsupported: tuple[str, ...]  # "op NAME in module M (Class) at file.py:LINE: code"

    @property
    def passed(self) -> bool:
        return not self.unsupported


@dataclass(frozen=True)
class OpsReport:
    """The torch ops the compiler takes, one row per op of its table: (IR op, torch ops, limits)."""
    rows: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class BuildReport:
    target: str
    result: BuildResult
    vm_size_budget: int
    resident_model: str = ""  # a firmware image's model, built in


@dataclass(frozen=True)
class RunReport:
    board: str
    isa: str
    latency_us: float
    inputs: np.ndarray  # (rows, inputs)
    outputs: np.ndarray  # (rows, outputs)


@dataclass(frozen=True)
class TraceReport:
    board: str
    row: int
    x: np.ndarray
    steps: list[Step]
    tolerance: float
    first_mismatch: Step | None

    @property
    def passed(self) -> bool:
        return self.first_mismatch is None


@dataclass(frozen=True)
class VerifyReport:
    model: str
    board: str
    kind: str  # regression | classifier | sequence
    passed: bool
    data: dict  # verify-<board>[-<weights>].json
    json_path: Path
    plot_path: Path


@dataclass(frozen=True)
class FleetReport:
    """One action (verify, deploy, status) on every board of a group: a row per board."""
    action: str
    columns: tuple[str, ...]  # the keys of each Outcome.detail shown as columns
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> list[str]:
        return [o.board for o in self.outcomes if not o.ok]


@dataclass(frozen=True)
class QuantizeReport:
    data: dict  # quantize-check-<scheme>.json
    path: Path
    compiled: tuple[CompileReport, ...] = ()  # the files compiled to measure their sizes

    @property
    def passed(self) -> bool:
        return bool(self.data["passed"])


@dataclass(frozen=True)
class BenchReport:
    data: dict  # build/bench.json
    path: Path
    compiled: tuple[CompileReport, ...] = ()


@dataclass(frozen=True)
class ProfileReport:
    data: dict  # build/<model>/profile-<board>.json (lnnedge.profile)
    path: Path
    chart: Path


@dataclass(frozen=True)
class MatmulReport:
    data: dict  # build/bench.json's "matmul"
    path: Path


@dataclass(frozen=True)
class StreamReport:
    recipe: str
    board: str
    x: np.ndarray  # (T, features) the samples fed one per line
    streamed: np.ndarray  # (T, outputs) one line each
    whole: np.ndarray  # the same sequence in one call
    reference: np.ndarray  # PyTorch (or what reference_name says)
    tolerance: float
    reference_name: str = "PyTorch"
    gap: float = field(init=False)  # max |streamed - whole|
    err: float = field(init=False)  # max |streamed - PyTorch|

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap", float(np.max(np.abs(self.streamed - self.whole))))
        object.__setattr__(self, "err", float(np.max(np.abs(self.streamed.astype(np.float64) - self.reference))))
