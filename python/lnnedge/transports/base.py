"""The shape every transport shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import LnnedgeError


class TransportError(LnnedgeError, RuntimeError):
    pass


@dataclass(frozen=True)
class RunResult:
    outputs: list[np.ndarray]
    timing: dict  # the runner's JSON line: latency_us_median, isa, vm_version, ...
    info: dict


class Transport(Protocol):
    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1) -> RunResult: ...

    def info(self, model: Path) -> dict: ...

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]: ...
