"""The lnnvm runner's command line, as every device that runs it uses it (local, QEMU user mode, SSH):
the run's argument list with its input and output files, and the parsing of info, test and run output."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
