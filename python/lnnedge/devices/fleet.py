"""A fleet: one action run on every board of a group (boards.yaml `groups:`) in parallel."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..config import Board


@dataclass(frozen=True)
class Outcome:
    board: str
    ok: bool
    detail: dict  # what the action returned ({} when it raised)
    error: str = ""  # the first line of what it raised


def across(boards: list[Board], action: Callable[[Board], dict]) -> list[Outcome]:
    """Run `action` on every board in parallel; one board's failure does not stop the others. A board is ok
    when the action returns without raising and its result does not say "passed": False."""

    def one(board: Board) -> Outcome:
        try:
            detail = action(board)
            return Outcome(board.name, bool(detail.get("passed", True)), detail)
        except Exception as exc:  # reported per board in the summary
            return Outcome(board.name, False, {}, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    with ThreadPoolExecutor(max_workers=max(1, len(boards))) as pool:
        return list(pool.map(one, boards))
