"""The local transport: the lnnvm runner as a process on this machine (optionally behind QEMU)."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .base import RunResult, TransportError


def parse_info(text: str) -> dict:
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


_SUMMARY = re.compile(r"tests: (\d+) cases, max_abs_err (\S+), tolerance (\S+), (PASSED|FAILED)")


def parse_test_summary(stdout: str, exit_code: int, board: str) -> dict:
    """The result of `lnnvm test` (the bundled test set run on the device): its summary line and exit code."""
    match = _SUMMARY.search(stdout)
    if match is None:
        raise TransportError(f"board {board}: `lnnvm test` gave no summary (exit {exit_code}): {stdout.strip()!r}")
    count, err, tol, verdict = match.groups()
    return {"cases": int(count), "max_abs_err": float(err), "tolerance": float(tol),
            "passed": verdict == "PASSED" and exit_code == 0, "summary": match.group(0)}


class LocalTransport:
    def __init__(self, runner: Path, prefix: tuple[str, ...] = (), timeout: float = 600):
        self.runner = Path(runner)
        self.prefix = prefix
        self.timeout = timeout
        if not self.runner.is_file():
            raise TransportError(f"{self.runner} does not exist: run `invoke build` for this board's target first")

    def _call(self, args: list[str]) -> subprocess.CompletedProcess:
        argv = [*self.prefix, str(self.runner), *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise TransportError(f"{self.runner.name} did not finish within {self.timeout} s") from None
        except FileNotFoundError:
            raise TransportError(f"{argv[0]} not found (for QEMU boards: apt-get install qemu-user)") from None
        if proc.returncode != 0:
            raise TransportError(proc.stderr.strip() or f"{self.runner.name} exited with {proc.returncode}")
        return proc

    def info(self, model: Path) -> dict:
        return parse_info(self._call(["info", str(model)]).stdout)

    def smoke_test(self, model: Path) -> dict:
        """`lnnvm test`: the model's bundled test set run here (behind QEMU for emulated boards)."""
        argv = [*self.prefix, str(self.runner), "test", str(model)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise TransportError(f"{self.runner.name} test did not finish within {self.timeout} s") from None
        except FileNotFoundError:
            raise TransportError(f"{argv[0]} not found (for QEMU boards: apt-get install qemu-user)") from None
        return parse_test_summary(proc.stdout, proc.returncode, self.runner.name)

    def trace(self, model: Path, inputs: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
        """Run once with every instruction's result dumped (the runner's --trace)."""
        from ..trace import read_trace

        with tempfile.TemporaryDirectory(prefix="lnnedge-trace-") as tmp:
            trace_file = Path(tmp) / "trace.bin"
            self.run(model, inputs, extra=["--trace", str(trace_file)])
            return read_trace(trace_file)

    def run(self, model: Path, inputs: list[np.ndarray], batch: int = 1, extra: list[str] | None = None) -> RunResult:
        info = self.info(model)
        try:
            n_out = int(info["outputs"])
        except (KeyError, ValueError):
            raise TransportError(f"{self.runner.name} info did not report the number of outputs: {info}") from None
        with tempfile.TemporaryDirectory(prefix="lnnedge-") as tmp:
            args = ["run", str(model)]
            for i, x in enumerate(inputs):
                path = Path(tmp) / f"in{i}.f32"
                np.ascontiguousarray(x, dtype="<f4").tofile(path)
                args += ["--in", str(path)]
            out_paths = [Path(tmp) / f"out{i}.f32" for i in range(n_out)]
            for path in out_paths:
                args += ["--out", str(path)]
            args += ["--batch", str(batch), *(extra or [])]
            proc = self._call(args)
            try:
                timing = json.loads(proc.stdout.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                raise TransportError(f"unexpected output from {self.runner.name}: {proc.stdout!r}") from None
            rows = len(inputs[0])
            outputs = [np.fromfile(p, dtype="<f4").reshape(rows, -1) for p in out_paths]
        return RunResult(outputs, timing, info)
