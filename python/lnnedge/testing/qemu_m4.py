"""QEMU's mps2-an386 (Arm MPS2+ with the AN386 image: Cortex-M4F, 25 MHz) running the lnnedge firmware.

UART0 of the emulated board is a TCP server on 127.0.0.1, so the serial transport reaches it with the
pyserial URL socket://127.0.0.1:PORT, exactly as it would reach a board on a USB serial adapter:

    with QemuM4(Path("build/firmware/cortex-m4/lnnedge-m4.elf")) as emu:
        link = SerialTransport(emu.url, clock_hz=25_000_000)
        ...

or, for the board entry of the pipeline, a transport whose close() also stops the emulator:

    link = open_emulated(elf, clock_hz=25_000_000)

QEMU runs as `qemu-system-arm -M mps2-an386 -display none -monitor none -kernel ELF
-serial tcp:127.0.0.1:PORT,server=on,wait=off` (server=on: QEMU listens, the host connects and may
disconnect and reconnect; wait=off: the board boots without waiting for the host). A TCP socket rather
than a pty because it needs no terminal setup, reports a dead emulator at once (the connection closes)
and lets a test put a relay between host and board.

Timing: QEMU 7.2 does not model the DWT, so the firmware counts SysTick ticks of the 25 MHz core clock.
By default the emulator runs with `-icount shift=5`: every guest instruction advances the emulated clock
by 2^5 = 32 ns, i.e. 0.8 core-clock cycles, so cycle counts are deterministic and proportional to the
instructions executed (a real Cortex-M4 needs more cycles than instructions: loads, divides and taken
branches take 2 or more). With icount=None QEMU's clock follows the host's and the counts measure the
emulator's speed instead.
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
from pathlib import Path

from ..errors import LnnedgeError
from ..transports.serial_link import SerialTransport

QEMU = "qemu-system-arm"
MACHINE = "mps2-an386"
CLOCK_HZ = 25_000_000
ICOUNT = 5  # 2^5 ns of emulated time per guest instruction: deterministic cycle counts

_running: set[QemuM4] = set()


def default_elf() -> Path:
    """Where `make -C vm/firmware` (default O) puts the firmware."""
    from ..paths import BUILD_DIR

    return BUILD_DIR / "firmware" / "cortex-m4" / "lnnedge-m4.elf"


class QemuError(LnnedgeError, RuntimeError):
    pass


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


class QemuM4:
    """One emulated board. start() returns the pyserial URL of its UART0."""

    def __init__(self, elf: Path, *, port: int | None = None, icount: int | None = ICOUNT, qemu: str = QEMU,
                 machine: str = MACHINE, extra_args: tuple[str, ...] = ()):
        self.elf = Path(elf)
        self.port = port
        self._fixed_port = port is not None
        self.icount = icount
        self.qemu = qemu
        self.machine = machine
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise QemuError("the emulator has not been started")
        return f"socket://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        argv = [self.qemu, "-M", self.machine, "-display", "none", "-monitor", "none",
                "-kernel", str(self.elf), "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=off,nodelay=on"]
        if self.icount is not None:
            argv += ["-icount", f"shift={self.icount},align=off,sleep=on"]
        return [*argv, *self.extra_args]

    def start(self, timeout: float = 10.0) -> str:
        if self.alive():
            return self.url
        if shutil.which(self.qemu) is None:
            raise QemuError(f"{self.qemu} not found: apt-get install qemu-system-arm")
        if not self.elf.is_file():
            raise QemuError(f"{self.elf} does not exist: build the firmware first (make -C vm/firmware)")
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
        raise QemuError(f"{self.qemu} -M {self.machine} did not start: {last.strip() or 'no listening port'}")

    def output(self) -> str:
        """What QEMU printed (errors, guest error logs)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """Ends the emulator at once (SIGKILL), as a board losing power."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """Freezes the emulator (SIGSTOP): a hung board; the TCP connection stays open."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.resume()
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

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_all() -> None:
    for emu in list(_running):
        emu.stop()


class EmulatedSerialTransport(SerialTransport):
    """A SerialTransport to an emulator it owns: close() stops QEMU too."""

    def __init__(self, emulator: QemuM4, **kwargs):
        super().__init__(emulator.url, **kwargs)
        self.emulator = emulator

    def close(self) -> None:
        super().close()
        self.emulator.stop()


def open_emulated(elf: Path, *, clock_hz: float = CLOCK_HZ, icount: int | None = ICOUNT,
                  **kwargs) -> EmulatedSerialTransport:
    """Starts QEMU with the firmware and returns a transport to it (for a `qemu-m4` board)."""
    emulator = QemuM4(elf, icount=icount)
    emulator.start()
    try:
        return EmulatedSerialTransport(emulator, clock_hz=clock_hz, name=f"qemu {MACHINE}", **kwargs)
    except Exception:
        emulator.stop()
        raise
