"""Emulated boards: a firmware target's image in QEMU system mode, every fact from targets/<target>.yaml.

    qemu.program -M qemu.machine -cpu qemu.cpu -display none -monitor none -kernel IMAGE
        -serial tcp:127.0.0.1:PORT,server=on,wait=off,nodelay=on [-icount shift=qemu.icount,align=off,sleep=on]

UART0 of the emulated board is a TCP server on 127.0.0.1, so the serial link reaches it with the pyserial
URL socket://127.0.0.1:PORT exactly as it would reach a board on a USB serial adapter (server=on: QEMU
listens, the host may disconnect and reconnect; wait=off: the board boots without waiting for the host). A
TCP socket rather than a pty because it needs no terminal setup, reports a dead emulator at once (the
connection closes) and lets a test put a relay between host and board.

Timing: QEMU 7.2 does not model the DWT, so the firmware counts SysTick ticks of the core clock (the target's
clock_hz). With qemu.icount = s every guest instruction advances the emulated clock by 2^s ns, so cycle
counts are deterministic and proportional to the instructions executed (on the MPS2+ AN386 at 25 MHz, s = 5
is 0.8 core-clock cycles per instruction; a real Cortex-M4 needs more: loads, divides and taken branches
take 2 or more). Without icount QEMU's clock follows the host's and the counts measure the emulator's speed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..config import Board, Target
from ..paths import BUILD_DIR
from .base import DeviceError
from .icount import bench_shift, ticks_per_instruction
from .serial import SerialDevice, SerialLink


class EmulatorError(DeviceError):
    """The emulator could not be started (not installed, no image, a target without qemu.machine)."""


_running: set[Emulator] = set()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool | None:
    """True if something listens on 127.0.0.1:port (read from /proc/net/tcp: no connection is made, which
    would take QEMU's one client slot); None where /proc is not available."""
    path = Path("/proc/net/tcp")
    if not path.is_file():
        return None
    want = f"0100007F:{port:04X}"
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == want and fields[3] == "0A":
            return True
    return False


class Emulator:
    """One emulated board of a firmware target running `image`. start() returns the URL of its UART0."""

    def __init__(self, target: Target, image: Path, *, port: int | None = None):
        if target.qemu is None or not target.qemu.machine:
            raise EmulatorError(f"target {target.name} has no qemu.machine: it cannot be emulated in system mode")
        self.target = target
        self.qemu = target.qemu
        self.image = Path(image)
        self.port = port
        self._fixed_port = port is not None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmulatorError("the emulator has not been started")
        return f"socket://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        q = self.qemu
        argv = [q.program, "-M", q.machine, "-cpu", q.cpu, "-display", "none", "-monitor", "none",
                "-kernel", str(self.image), "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=off,nodelay=on"]
        if q.icount is not None:
            argv += ["-icount", f"shift={q.icount},align=off,sleep=on"]
        return argv

    def start(self, timeout: float = 10.0) -> str:
        if self.alive():
            return self.url
        if shutil.which(self.qemu.program) is None:
            raise EmulatorError(f"{self.qemu.program} not found: apt-get install qemu-system-arm")
        if not self.image.is_file():
            raise EmulatorError(f"{self.image} does not exist: run `invoke build --target {self.target.name}` first")
        last = ""
        for _attempt in range(5):
            if not self._fixed_port:
                self.port = free_port()
            self._log = tempfile.TemporaryFile(prefix="lnnedge-qemu-")
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            _running.add(self)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                up = _listening(self.port)
                if up is None:  # no /proc: a short connection it is
                    try:
                        socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                        up = True
                    except OSError:
                        up = False
                if up:
                    return self.url
                time.sleep(0.02)
            last = self.output()
            self.stop()
            if "in use" not in last or self._fixed_port:
                break  # not a port race: trying again would fail the same way
        # one line: QEMU's first (a guest that dies at once is followed by a register dump)
        said = next((line.strip() for line in last.splitlines() if line.strip()), "no listening port")
        raise EmulatorError(f"{self.qemu.program} -M {self.qemu.machine} did not start: {said}")

    def output(self) -> str:
        """What QEMU printed (errors, guest error logs)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)  # a stopped (SIGSTOP) process does not act on SIGTERM
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _running.discard(self)

    def restart(self) -> str:
        """A fresh boot on the same port (the host reconnects to the same URL)."""
        self.stop()
        self._fixed_port = True
        return self.start()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for emu in list(_running):
        emu.stop()


def emulated_flash(board: Board) -> Path:
    """Where an emulated board keeps its flash: the image `invoke flash` last wrote to it."""
    return BUILD_DIR / "boards" / board.name / Path(board.target.firmware.elf).name


class EmulatorDevice(SerialDevice):
    """A qemu-system board: the emulator starts at the first verb that talks to the board and stops on close().
    It boots the board's flash, the image `invoke flash` last wrote to it (emulated_flash), else the
    target's build (`program`)."""

    kind = "emulator"
    emulated = True

    def __init__(self, board: Board, program: Path):
        flashed = emulated_flash(board)
        super().__init__(board, flashed if flashed.is_file() else program)
        self.emulator = Emulator(board.target, self.program)

    def _open_link(self) -> SerialLink:
        url = self.emulator.start()
        return SerialLink(url, clock_hz=self.board.target.clock_hz, name=f"qemu {self.emulator.qemu.machine}")

    def profile(self, model: Path, runs: int, program: Path) -> dict:
        """The profiling image booted under -icount with the bench's shift (icount.bench_shift): SysTick
        ticks are then QEMU's exact instruction count, converted here (unit "instructions", emulated)."""
        target = self.board.target
        shift = bench_shift(target.clock_hz)
        self.close()
        self.emulator = Emulator(replace(target, qemu=replace(target.qemu, icount=shift)), program)
        raw = super().profile(model, runs, program)
        factor = ticks_per_instruction(target.clock_hz, shift)
        return {**raw, "unit": "instructions", "emulated": True, "icount_shift": shift,
                "clock": f"{raw['cycle_counter']} under qemu -icount shift={shift}, as instructions",
                "whole_plain_ticks": raw["whole_plain_ticks"] / factor,
                "whole_profiled_ticks": raw["whole_profiled_ticks"] / factor,
                "overhead_ticks_per_mark": raw["overhead_ticks_per_mark"] / factor,
                "counters": [[t / factor, n] for t, n in raw["counters"]]}

    def close(self) -> None:
        super().close()
        self.emulator.stop()
