"""The local device: the lnnvm runner as a process on this machine (qemu_user.py puts QEMU in front of it)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..artifacts import MissingArtifact
from ..config import Board
from . import runner
from .base import DeviceBase, DeviceError, RunResult, SmokeResult


class LocalDevice(DeviceBase):
    kind = "local"
    prefix: tuple[str, ...] = ()  # an emulator command the runner is started behind
    missing_tool = ""  # what to install when prefix[0] is not found

    def __init__(self, board: Board, program: Path, timeout: float = 600):
        super().__init__(board, program)
        self.timeout = timeout

    def _argv(self, *args: str) -> list[str]:
        if not self.program.is_file():
            raise MissingArtifact(f"{self.program} does not exist: run `invoke build --target "
                                  f"{self.board.target.name}` first")
        return [*self.prefix, str(self.program), *args]

    def _process(self, *args: str) -> subprocess.CompletedProcess:
        """The runner run to its end; its exit code is the caller's to judge."""
        argv = self._argv(*args)
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.program.name} {args[0]} did not finish within {self.timeout} s") from None
        except FileNotFoundError:
            raise DeviceError(f"{argv[0]} not found{self.missing_tool}") from None
        except OSError as exc:  # e.g. a runner built for another machine (exec format error)
            raise DeviceError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None

    def _call(self, *args: str) -> subprocess.CompletedProcess:
        proc = self._process(*args)
        if proc.returncode != 0:
            raise DeviceError(proc.stderr.strip() or f"{self.program.name} exited with {proc.returncode}")
        return proc

    def info(self, model: Path) -> dict:
        return runner.parse_info(self._call("info", str(model)).stdout)

    def test(self, model: Path) -> SmokeResult:
        """`lnnvm test`: the model's bundled test set run here (behind QEMU for emulated boards)."""
        proc = self._process("test", str(model))
        return runner.parse_test_summary(proc.stdout, proc.returncode, self.program.name)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1) -> RunResult:
        return self._run(model, inputs, batch)

    def _run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, extra: list[str] = ()) -> RunResult:
        info = self.info(model)
        n_out = runner.output_count(info, self.program.name)
        with tempfile.TemporaryDirectory(prefix="lnnedge-") as tmp:
            ins = runner.write_inputs(Path(tmp), inputs)
            outs = [Path(tmp) / name for name in runner.output_names(n_out)]
            proc = self._call("run", str(model), *runner.run_args([str(p) for p in ins], [str(p) for p in outs],
                                                                   batch, extra))
            timing = runner.parse_timing(proc.stdout, self.program.name)
            outputs = runner.read_outputs(outs, len(inputs[0]))
        return RunResult(outputs, timing, info)

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        """Run once with every instruction's result dumped (the runner's --trace)."""
        from ..trace import read_trace

        with tempfile.TemporaryDirectory(prefix="lnnedge-trace-") as tmp:
            trace_file = Path(tmp) / "trace.bin"
            self._run(model, inputs, extra=["--trace", str(trace_file)])
            return read_trace(trace_file)

    def profile(self, model: Path, runs: int, program: Path) -> dict:
        """`lnnvm profile` of the profiling runner `program` (behind QEMU for emulated boards)."""
        argv = [*self.prefix, str(program), "profile", str(model), "--runs", str(runs)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeviceError(f"cannot profile with {argv[0]}: {exc}") from None
        if proc.returncode != 0:
            raise DeviceError(proc.stderr.strip() or f"{program.name} profile exited with {proc.returncode}")
        return runner.parse_timing(proc.stdout, program.name)

    def stream(self, model: Path) -> RunnerStream:
        return RunnerStream(self._argv("stream", str(model)))


class RunnerStream(runner.LineStream):
    """`lnnvm stream MODEL` as a child process (runner.LineStream's protocol)."""

    def __init__(self, argv: list[str], timeout: float = 60):
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, bufsize=1)
        except OSError as exc:
            raise DeviceError(f"cannot start {argv[0]}: {exc.strerror}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        super().__init__(self.proc.stdin, self.proc.stdout, "lnnvm stream")

    def _why_stopped(self) -> str:
        return self.proc.stderr.read().strip() if self.proc.stderr else ""

    def _end(self) -> None:
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
