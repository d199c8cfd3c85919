"""The serial kind: a board running the lnnedge firmware on a serial port (boards.yaml transport: serial).

protocol.py is the wire format (lnn_proto.def, COBS, frames), port.py the locked pyserial port, rows.py how a
run's rows travel in RUN frames, link.py the session (requests, retries, restarts, uploads). The firmware has
no `lnnvm test`, so the bundled test set is run here and compared on the host; a stream is one RUN per step
with the device keeping the state between them (SerialStream); it cannot trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ... import lnnb
from ...config import Board
from ..base import DeviceBase, DeviceError, RunResult, SmokeResult, bundled_tests, compare_with_tests
from .link import DeviceReset, FirmwareError, NoAnswer, SerialLink
from .port import Line, LinkLost, open_port
from .rows import io_shape

__all__ = ["DeviceReset", "FirmwareError", "Line", "LinkLost", "NoAnswer", "SerialDevice", "SerialLink",
           "SerialStream", "open_port"]


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

    @contextmanager
    def _fix_named(self, model: Path) -> Iterator[None]:
        """A selective image refuses a model with ops it was built without (E_NOT_LINKED): the error then names
        the two commands that put an image with them on this board."""
        try:
            yield
        except FirmwareError as exc:
            if exc.name != "E_NOT_LINKED":
                raise
            raise FirmwareError(f"{exc}; build a firmware with its ops and flash it: invoke build --target "
                                f"{self.board.target.name} --file {model}, then invoke flash --board {self.board.name}",
                                exc.domain, exc.code, exc.name, exc.offset) from None

    def info(self, model: Path) -> dict:
        with self._fix_named(model):
            return self.link.info(model)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, keep_state: bool = False) -> RunResult:
        """keep_state: the device keeps the model's state from the previous RUN (else it starts from zero).

        A stateful model's batch is its streams (rows time-major: row t * batch + i is step t of stream i); when
        the device's arena holds fewer streams at once (max_batch, a board with little RAM), the streams go in
        groups it holds, each from zero state, and the outputs are put back in the caller's order. A stateless
        model's rows are independent: they go max_batch at a time."""
        with self._fix_named(model):
            return self._run(model, inputs, batch, keep_state)

    def _run(self, model: Path, inputs: list[np.ndarray], batch: int, keep_state: bool) -> RunResult:
        if keep_state or batch <= 1:
            return self.link.run(model, inputs, batch, keep_state=keep_state)
        most = int(self.link.info(model).get("max_batch", batch))
        if batch <= most:
            return self.link.run(model, inputs, batch)
        if lnnb.state_row(Path(model).read_bytes()) == 0:  # independent rows: as many at a time as the arena holds
            return self.link.run(model, inputs, most)
        steps = inputs[0].shape[0] // batch
        outputs: list[np.ndarray] | None = None
        first: RunResult | None = None
        for start in range(0, batch, most):
            streams = np.arange(start, min(start + most, batch))
            rows_of = (np.arange(steps)[:, None] * batch + streams[None, :]).ravel()
            result = self.link.run(model, [x[rows_of] for x in inputs], len(streams))
            if outputs is None:
                outputs = [np.empty((inputs[0].shape[0], *o.shape[1:]), o.dtype) for o in result.outputs]
                first = result
            for whole, part in zip(outputs, result.outputs, strict=True):
                whole[rows_of] = part
        timing = {**first.timing, "n": int(inputs[0].shape[0]), "batch": batch, "stream_groups": -(-batch // most)}
        return RunResult(outputs, timing, first.info)

    def profile(self, model: Path, runs: int, program: Path) -> dict:
        """The board runs what was flashed on it: `program` is the profiling image it should hold."""
        with self._fix_named(model):
            return self.link.profile(model, runs)

    def stream(self, model: Path) -> SerialStream:
        return SerialStream(self, model)

    def test(self, model: Path) -> SmokeResult:
        inputs, tests = bundled_tests(model)
        # A stateful model's bundled cases are independent streams of one step, each from zero state (as
        # `lnnvm test` runs them: one batch): run as one row after another they would carry state between cases.
        streams = len(tests.outputs) if lnnb.state_row(Path(model).read_bytes()) else 1
        return compare_with_tests(self.run(model, inputs, batch=streams).outputs, tests)


class SerialStream:
    """A model stepped one row at a time on the board: one RUN of batch 1 per step, the first (and the first
    after reset) from zero state, each later one continuing the state the device kept (RUN with keep_state).
    A step after the device restarted or lost the model fails, naming the lost state, rather than going on from
    zero. A row is every input's values in order, as `lnnvm stream` reads a line."""

    def __init__(self, device: SerialDevice, model: Path):
        self.device, self.model = device, Path(model)
        info = device.info(self.model)
        self.widths = [io_shape(info[f"input{i}"])[1] for i in range(int(info["inputs"]))]
        self.fresh = True

    def step(self, row: np.ndarray) -> np.ndarray:
        flat = np.asarray(row, dtype=np.float32).ravel()
        if flat.size != sum(self.widths):
            raise DeviceError(f"a stream step takes {sum(self.widths)} values (one row of every input, in order), "
                              f"got {flat.size}")
        ends = np.cumsum(self.widths)[:-1]
        inputs = [part.reshape(1, -1) for part in np.split(flat, ends)]
        result = self.device.run(self.model, inputs, batch=1, keep_state=not self.fresh)
        self.fresh = False
        return np.concatenate([out.reshape(-1) for out in result.outputs])

    def reset(self) -> None:
        self.fresh = True

    def close(self) -> None:
        """Nothing to release: the device's connection is the device's."""

    def __enter__(self) -> SerialStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
