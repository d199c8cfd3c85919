"""The QEMU user-mode device: the target's static runner under qemu-aarch64 / qemu-arm / qemu-x86_64 with the
target's CPU model (or the board's qemu_cpu); files are shared with the host, so it is the local device with an
emulator in front."""

from __future__ import annotations

from pathlib import Path

from ..config import Board
from .local import LocalDevice


class QemuUserDevice(LocalDevice):
    kind = "qemu-user"
    emulated = True
    missing_tool = " (for QEMU boards: apt-get install qemu-user)"

    def __init__(self, board: Board, program: Path, timeout: float = 600):
        super().__init__(board, program, timeout)
        self.prefix = board.qemu_command()
