"""Know before flashing: does a model (and the VM) fit a board's RAM and flash?

The .lnnb records what it needs (META "requires": arena, constants, stack,
ops); boards.yaml may record a board's `memory: {ram: ..., flash: ...}`.
"""

from __future__ import annotations

from pathlib import Path

from . import lnnb
from .build import resident
from .config import Board
from .errors import LnnedgeError


class FitError(LnnedgeError, ValueError):
    pass


def needs(model_file: Path, runner: Path | None) -> dict:
    data = Path(model_file).read_bytes()
    program = lnnb.read(data)
    required = program.meta.get("requires", {})
    arena = required.get("arena_bytes_batch1", program.arena_size(1))
    runner_bytes = Path(runner).stat().st_size if runner is not None and Path(runner).is_file() else 0
    return {"model_bytes": len(data), "arena_bytes": arena, "runner_bytes": runner_bytes,
            "ram_bytes": len(data) + arena + runner_bytes, "flash_bytes": len(data) + runner_bytes}


def check(board: Board, model_file: Path, runner: Path | None) -> dict:
    """Raise FitError naming the numbers when the board's recorded RAM or flash is too small."""
    need = needs(model_file, runner)
    firmware = board.target.firmware
    if firmware is not None:
        # The firmware's own static buffers bound what it can hold (targets/<target>.yaml variables).
        for key, what, limit in (("model_bytes", "model", "MODEL_MAX"), ("arena_bytes", "arena", "ARENA_SIZE")):
            have = int(firmware.variables.get(limit, 0))
            if have and need[key] > have:
                raise FitError(f"board {board.name}: the {what} needs {need[key]} bytes but the firmware's "
                               f"{limit} is {have} (targets/{board.target.name}.yaml firmware.variables)")
        # built into the image instead: the image without its current resident model, plus this one, in flash
        flash = board.target.memory.get("flash")
        image = Path(runner).with_name(firmware.bin) if runner is not None else None
        if flash is not None and image is not None and image.is_file():
            held = resident(board.target, image.parent)
            bytes_in_flash = image.stat().st_size - (held["bytes"] if held else 0) + need["model_bytes"]
            if bytes_in_flash > flash.size:
                raise FitError(f"board {board.name}: the firmware with the model built in takes {bytes_in_flash} "
                               f"bytes of flash, the part has {flash.size} (targets/{board.target.name}.yaml memory)")
        return need
    for kind in ("ram", "flash"):
        have = board.memory.get(kind)
        if have is not None and need[f"{kind}_bytes"] > have:
            raise FitError(f"board {board.name}: needs {need[f'{kind}_bytes']} bytes of {kind} (model "
                           f"{need['model_bytes']}, arena {need['arena_bytes']}, VM {need['runner_bytes']}) but "
                           f"has {have} (boards.yaml memory.{kind})")
    return need
