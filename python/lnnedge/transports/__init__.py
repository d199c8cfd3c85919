"""How a board runs the VM: every transport has the same small shape (run a model on inputs)."""

from __future__ import annotations

from pathlib import Path

from ..config import Board
from .base import RunResult, Transport, TransportError
from .local import LocalTransport

__all__ = ["RunResult", "Transport", "TransportError", "for_board"]


def for_board(board: Board, runner: Path) -> Transport:
    if board.transport == "local":
        return LocalTransport(runner)
    if board.transport == "qemu":
        # User-mode QEMU runs the target's static binary directly; files are shared with the host.
        return LocalTransport(runner, prefix=board.qemu_command())
    if board.transport == "ssh" and board.ssh is not None:
        from .ssh import SSHTransport

        return SSHTransport(board.name, board.ssh)
    raise TransportError(f"board {board.name}: transport {board.transport!r} is not available")
