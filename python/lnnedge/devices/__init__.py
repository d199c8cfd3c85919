"""Devices: one board of boards.yaml opened for use, every kind behind the one `Device` protocol.

    with open_device(config.board("qemu-rpi4")) as device:
        result = device.run(Path("build/ltc-sine/model.lnnb"), [x])

Kinds (board.transport -> kind): local -> local (the runner as a process here), qemu -> qemu-user (behind
qemu-aarch64/-arm/-x86_64 with the target's CPU model), ssh -> ssh (a Linux board: atomic deploy, then runs),
serial -> serial (the firmware over a UART), qemu-system -> emulator (the firmware on a board emulated from
the target's qemu facts, over its emulated UART), labgrid -> the ssh or serial kind of a place of a labgrid
lab (labgrid.py: `reserve` acquires the places and releases them). A verb a kind cannot do raises
CapabilityError. fleet.py runs an action over a group of boards in parallel.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager
from pathlib import Path

from ..build import ensure_for_board, ensure_resident, runner_path, runs_models_built_in
from ..config import Board
from .base import (
    CapabilityError,
    Device,
    DeviceError,
    RunResult,
    SmokeResult,
    Stream,
    bundled_tests,
    compare_with_tests,
)

__all__ = ["CapabilityError", "Device", "DeviceError", "RunResult", "SmokeResult", "Stream", "bundled_tests",
           "compare_with_tests", "open_device", "prepare", "reserve"]


def reserve(boards: list[Board], count: int | None = None) -> AbstractContextManager[list[Board]]:
    """A context manager: the boards with each labgrid board replaced by up to `count` places acquired for it,
    released when the block ends (lnnedge.devices.labgrid.reserve); other boards as they are."""
    from .labgrid import reserve as lab_reserve

    return lab_reserve(boards, count)


def require_emulator(board: Board) -> None:
    """Refuses an emulated board whose emulator is not installed, before a build it could not run anyway."""
    qemu = board.target.qemu
    if board.transport in ("qemu", "qemu-system") and qemu is not None and shutil.which(qemu.program) is None:
        package = "qemu-system-arm" if qemu.machine else "qemu-user"
        raise DeviceError(f"{qemu.program} not found: apt-get install {package}")


def prepare(board: Board, model: Path | None = None) -> None:
    """What the board runs, built as make would (build.ensure_for_board), once its emulator is known to be
    there (require_emulator). An emulated board that boots the build (nothing flashed to it) and whose image
    holds a model (one that takes no upload, or a selective build of another model's ops) gets `model` built
    into its image instead."""
    require_emulator(board)
    if model is not None and board.transport == "qemu-system" and runs_models_built_in(board.target):
        from .emulator import emulated_flash

        if not emulated_flash(board).is_file():
            ensure_resident(board.target, Path(model))
            return
    ensure_for_board(board)


def open_device(board: Board) -> Device:
    """The board as a Device; nothing is connected or started until a verb needs it (but a labgrid board's
    place is acquired now, unless `reserve` holds it)."""
    if board.labgrid is not None:
        from .labgrid import open_labgrid

        return open_labgrid(board, _open_kind)
    return _open_kind(board)


def _open_kind(board: Board) -> Device:
    program = runner_path(board.target)
    if board.transport == "local":
        from .local import LocalDevice

        return LocalDevice(board, program)
    if board.transport == "qemu":
        from .qemu_user import QemuUserDevice

        return QemuUserDevice(board, program)
    if board.transport == "serial":
        from .serial import SerialDevice

        return SerialDevice(board, program)
    if board.transport == "qemu-system":
        from .emulator import EmulatorDevice

        return EmulatorDevice(board, program)
    if board.transport == "ssh":
        from .ssh import SSHDevice

        return SSHDevice(board, program)
    raise DeviceError(f"board {board.name}: transport {board.transport!r} is not available")
