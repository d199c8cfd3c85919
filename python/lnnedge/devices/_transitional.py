"""Transitional (removed once its code has moved into this package): the ssh kind wrapped around the old
transport, so that open_device serves every board from the start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import Board
from .base import BeforeStep, DeviceBase, RunResult, SmokeResult, bundled_tests, compare_with_tests


class TransportDevice(DeviceBase):
    def __init__(self, board: Board, program: Path, kind: str, emulated: bool, make: Callable[[], object]):
        super().__init__(board, program)
        self.kind, self.emulated, self._make, self._t = kind, emulated, make, None

    @property
    def transport(self):
        if self._t is None:
            self._t = self._make()
        return self._t

    def close(self) -> None:
        if self._t is not None:
            self._t.close()
            self._t = None

    def info(self, model: Path) -> dict:
        return self.transport.info(model)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, **kw) -> RunResult:
        r = self.transport.run(model, inputs, batch, **kw)
        return RunResult(r.outputs, r.timing, r.info)

    def test(self, model: Path) -> SmokeResult:
        inputs, tests = bundled_tests(model)
        return compare_with_tests(self.run(model, inputs).outputs, tests)

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        if self.kind != "ssh":
            return super().trace(model, inputs)
        return self.transport.trace(model, inputs)

    def deploy(self, model: Path, version: dict, before_step: BeforeStep | None = None) -> dict:
        if self.kind != "ssh":
            return super().deploy(model, version, before_step)
        return self.transport.deploy(self.program, model, version, before_step)

    def status(self) -> dict:
        return self.transport.status() if self.kind == "ssh" else super().status()
