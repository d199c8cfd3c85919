"""The serial kind: a board running the lnnedge firmware on a serial port (boards.yaml transport: serial).

protocol.py is the wire format (lnn_proto.def, COBS, frames), port.py the locked pyserial port, rows.py how a
run's rows travel in RUN frames, link.py the session (requests, retries, restarts, uploads). The firmware has
no `lnnvm test`, so the bundled test set is run here and compared on the host; it cannot stream or trace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...config import Board
from ..base import DeviceBase, RunResult, SmokeResult, bundled_tests, compare_with_tests
from .link import DeviceReset, FirmwareError, NoAnswer, SerialLink
from .port import Line, LinkLost, open_port

__all__ = ["DeviceReset", "FirmwareError", "Line", "LinkLost", "NoAnswer", "SerialDevice", "SerialLink",
           "open_port"]


class SerialDevice(DeviceBase):
    kind = "serial"

    def __init__(self, board: Board, program: Path):
        super().__init__(board, program)
        self._link: SerialLink | None = None

    @property
    def link(self) -> SerialLink:
        """The session with the board (the port opens at its first request)."""
        if self._link is None:
            self._link = self._open_link()
        return self._link

    def _open_link(self) -> SerialLink:
        s = self.board.serial
        assert s is not None  # config gives every serial board its settings
        return SerialLink(s.port, clock_hz=self.board.target.clock_hz, timeout=s.frame_timeout,
                          run_timeout=s.run_timeout, retries=s.retries, baudrate=s.baudrate, name=self.name)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def info(self, model: Path) -> dict:
        return self.link.info(model)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, keep_state: bool = False) -> RunResult:
        """keep_state: the device keeps the model's state from the previous RUN (else it starts from zero)."""
        return self.link.run(model, inputs, batch, keep_state=keep_state)

    def test(self, model: Path) -> SmokeResult:
        inputs, tests = bundled_tests(model)
        return compare_with_tests(self.run(model, inputs).outputs, tests)
