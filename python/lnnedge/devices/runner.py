"""The lnnvm runner's command line, as every device that runs it uses it (local, QEMU user mode, SSH):
the run's argument list with its input and output files, the parsing of info, test and run output, and
`lnnvm stream`'s line protocol (LineStream)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO

import numpy as np

from .base import DeviceError, SmokeResult


def parse_info(text: str) -> dict:
    """`lnnvm info`'s "key: value" lines."""
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def output_count(info: dict, who: str) -> int:
    try:
        return int(info["outputs"])
    except (KeyError, ValueError):
        raise DeviceError(f"{who} info did not report the number of outputs: {info}") from None


_SUMMARY = re.compile(r"tests: (\d+) cases, max_abs_err (\S+), tolerance (\S+), (PASSED|FAILED)")


def parse_test_summary(stdout: str, exit_code: int, board: str) -> SmokeResult:
    """The result of `lnnvm test` (the bundled test set run on the device): its summary line and exit code."""
    match = _SUMMARY.search(stdout)
    if match is None:
        raise DeviceError(f"board {board}: `lnnvm test` gave no summary (exit {exit_code}): {stdout.strip()!r}")
    count, err, tol, verdict = match.groups()
    return SmokeResult(int(count), float(err), float(tol), verdict == "PASSED" and exit_code == 0, match.group(0))


def parse_timing(stdout: str, who: str) -> dict:
    """The JSON line `lnnvm run` ends with (latency_us_median, isa, vm_version, ...)."""
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise DeviceError(f"unexpected output from {who}: {stdout!r}") from None


def write_inputs(directory: Path, inputs: list[np.ndarray]) -> list[Path]:
    """Each input as little-endian float32 in `directory`/in<i>.f32, the files `lnnvm run --in` reads."""
    paths = []
    for i, x in enumerate(inputs):
        path = Path(directory) / f"in{i}.f32"
        np.ascontiguousarray(x, dtype="<f4").tofile(path)
        paths.append(path)
    return paths


def output_names(count: int) -> list[str]:
    return [f"out{i}.f32" for i in range(count)]


def run_args(inputs: list[str], outputs: list[str], batch: int, extra: list[str] = ()) -> list[str]:
    """The arguments of `lnnvm run MODEL` after the model: the input and output files, batch, extra options."""
    args = []
    for path in inputs:
        args += ["--in", path]
    for path in outputs:
        args += ["--out", path]
    return [*args, "--batch", str(int(batch)), *extra]


def read_outputs(paths: list[Path], rows: int) -> list[np.ndarray]:
    return [np.fromfile(p, dtype="<f4").reshape(rows, -1) for p in paths]


class LineStream:
    """`lnnvm stream MODEL` at the other end of a pipe: one line of inputs in, one line of outputs out, per
    time step, the hidden state kept in the VM between lines; the line `reset` starts it from zero. Where the
    process runs (a child process, an SSH channel) is the subclass's: _why_stopped and _end."""

    def __init__(self, stdin: IO[str], stdout: IO[str], what: str):
        self.stdin, self.stdout, self.what = stdin, stdout, what

    def _why_stopped(self) -> str:
        """What the process said before it stopped (its standard error)."""
        return ""

    def _end(self) -> None:
        """Waits for the process to exit after its input closed."""

    def _stopped(self) -> DeviceError:
        why = self._why_stopped()
        return DeviceError(f"{self.what} stopped" + (f": {why}" if why else ""))

    def _line(self, text: str) -> str:
        try:
            self.stdin.write(text + "\n")
            self.stdin.flush()
            answer = self.stdout.readline()
        except TimeoutError:
            raise DeviceError(f"{self.what} did not answer in time") from None
        except OSError:  # the pipe or the connection closed under the write
            raise self._stopped() from None
        if not answer:
            raise self._stopped()
        return answer.strip()

    def step(self, row: np.ndarray) -> np.ndarray:
        return np.array(self._line(" ".join(f"{v:.9g}" for v in np.asarray(row).ravel())).split(), dtype=np.float32)

    def reset(self) -> None:
        if self._line("reset") != "reset":
            raise DeviceError(f"{self.what} did not confirm the reset")

    def close(self) -> None:
        try:
            self.stdin.close()
        except OSError:
            pass  # the other end is gone already: _end says how it went
        self._end()

    def __enter__(self) -> LineStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
