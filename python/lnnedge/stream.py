"""The streaming demo: a sensor stream fed to the device one sample at a time, `lnnvm stream` reading one line of
inputs per time step on stdin and answering with one line of outputs, the hidden state kept in the VM between
lines. The same sequence is also run in one call (time steps as chunks of one row); both must agree.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from .errors import LnnedgeError
from .transports import TransportError
from .transports.local import LocalTransport


class StreamError(LnnedgeError, RuntimeError):
    """The streamed outputs are not the model's."""


class Streamer:
    """`lnnvm stream MODEL` as a child process: one line in, one line out, per time step."""

    def __init__(self, transport: LocalTransport, model: Path, timeout: float = 60):
        self.timeout = timeout
        argv = [*transport.prefix, str(transport.runner), "stream", str(model)]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, bufsize=1)
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]}: {exc.strerror}") from None

    def _line(self, text: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise TransportError(f"lnnvm stream stopped: {self.proc.stderr.read().strip() if self.proc.stderr else ''}")
        return answer.strip()

    def step(self, row: np.ndarray) -> np.ndarray:
        return np.array(self._line(" ".join(f"{v:.9g}" for v in row.ravel())).split(), dtype=np.float32)

    def reset(self) -> None:
        if self._line("reset") != "reset":
            raise TransportError("lnnvm stream did not confirm the reset")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stream_sequence(transport, model: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One sequence x (T, features) fed sample by sample, and the same sequence in one call: (streamed, whole),
    each (T, outputs)."""
    if not isinstance(transport, LocalTransport):
        raise TransportError("streaming runs the runner as a local process: use a local or QEMU board")
    streamer = Streamer(transport, model)
    try:
        streamed = np.stack([streamer.step(row) for row in x])
    finally:
        streamer.close()
    whole = transport.run(model, [x], batch=1).outputs[0]
    return streamed, whole
