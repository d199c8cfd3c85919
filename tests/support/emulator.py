"""The emulated Cortex-M4 board for the firmware tests: the firmware built once, the board started from
targets/cortex-m4.yaml's facts (devices.emulator), and the faults a test puts on a running board."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from lnnedge import config
from lnnedge.devices.emulator import Emulator
from lnnedge.paths import BUILD_DIR, VM_DIR

TARGET = config.load_target("cortex-m4")
# the tests' own build (the Makefile's defaults): not build/firmware/<target>, which `invoke build` makes with the
# target's flags and the tasks run without rebuilding when it is newer than its sources
OUT = BUILD_DIR / "test-firmware" / TARGET.name
ELF = OUT / TARGET.firmware.elf


def build_firmware() -> dict:
    """make -C vm/firmware with its defaults: the image, its `make size` figures and the build log."""
    proc = subprocess.run(["make", "-C", str(VM_DIR / "firmware"), f"O={OUT}", "-j2"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    size = subprocess.run(["make", "-s", "-C", str(VM_DIR / "firmware"), f"O={OUT}", "size"], capture_output=True,
                          text=True, check=True).stdout
    sizes = {k: int(v) for k, v in (line.split("=") for line in size.split())}
    return {"elf": ELF, "sizes": sizes, "log": proc.stdout}


def m4_board(elf: Path = ELF) -> Emulator:
    """The emulated board of targets/cortex-m4.yaml running `elf` (start it, or use it as a context manager)."""
    return Emulator(TARGET, elf)


def power_cut(emu: Emulator) -> None:
    """Ends the emulator at once (SIGKILL), as a board losing power."""
    if emu.proc is not None and emu.proc.poll() is None:
        emu.proc.kill()
        emu.proc.wait()


def freeze(emu: Emulator) -> None:
    """Stops the emulator (SIGSTOP): a hung board; the TCP connection stays open."""
    if emu.alive():
        os.kill(emu.proc.pid, signal.SIGSTOP)


def thaw(emu: Emulator) -> None:
    if emu.alive():
        os.kill(emu.proc.pid, signal.SIGCONT)
