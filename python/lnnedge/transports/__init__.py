"""How a board runs the VM: every transport has the same small shape (run a model on inputs)."""

from __future__ import annotations

from ..config import Board
from .base import RunResult, Transport, TransportError
from .local import LocalTransport

__all__ = ["RunResult", "Transport", "TransportError", "for_board"]


def for_board(board: Board, runner) -> Transport:
    if board.transport == "local":
        return LocalTransport(runner)
    raise TransportError(f"board {board.name}: transport {board.transport!r} is not available")
