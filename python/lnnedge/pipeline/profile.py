"""profile: one inference's time (or emulated instructions) per instruction of the program, on any board kind
(lnnedge.profile explains the measurement)."""

from __future__ import annotations

from pathlib import Path

from .. import config
from .. import profile as prof
from .. import recipe as recipes
from ..artifacts import MissingArtifact
from ..devices import open_device, require_emulator
from ..errors import UsageError
from .model_files import compiled_file
from .reports import ProfileReport


def profile(model: str | None, board: str | None, file: str | None = None, runs: int | None = None) -> ProfileReport:
    """The recipe's compiled model (or a compiled --file) profiled on the board: profile-<board>.json beside the
    model file (build/<model>/ for a recipe), a row per pc, and its bar chart."""
    chosen = config.board(board)
    if file:
        path = Path(file)
        if not path.is_file():
            raise MissingArtifact(f"{path} does not exist")
        name = path.parent.name if path.name == "model.lnnb" else path.name.removesuffix(".lnnb")
    else:
        if model is None:
            raise UsageError("give --model or --file")
        path = compiled_file(recipes.load(model))
        name = model
    require_emulator(chosen)  # the board's normal build is not what a profile runs: only its emulator is needed
    program = prof.profile_program(chosen, path)
    with open_device(chosen) as device:
        count = runs or (prof.RUNS_FIRMWARE if chosen.target.firmware is not None else prof.RUNS_RUNNER)
        raw = device.profile(path, count, program)
        emulated = bool(raw.get("emulated")) or device.emulated
    table = prof.rows(path, raw)
    data = {"model": name, "file": str(path), "board": chosen.name, "target": chosen.target.name,
            "clock": raw["clock"], "unit": raw["unit"], "emulated": emulated, "runs": raw["runs"],
            "isa": raw.get("isa"), "plan": raw.get("plan"),
            "method": ("the time between consecutive step starts goes to the earlier step (loop iterations add up "
                       "on their pc; PUSH and DROP are compiled into the plan and never run); each interval's "
                       "hook cost, measured by back-to-back marks, is subtracted per call; runs with and without "
                       "the hook alternate in blocks, the figures are the fastest block's of each kind"),
            **prof.summary(raw, table), "rows": table}
    path_json, png = prof.save(path, name, chosen.name, data)
    return ProfileReport(data, path_json, png)
