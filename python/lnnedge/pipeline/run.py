"""run: the compiled model on a board for a few inputs; trace: one input with every intermediate tensor
compared, naming the first instruction that differs."""

from __future__ import annotations

import numpy as np

from .. import config, data, trace
from .. import recipe as recipes
from ..compiler import debuginfo
from ..data import Draw, seed_for
from ..devices import open_device, prepare
from ..errors import UsageError
from .compile import reference_model
from .model_files import compiled_file
from .reports import RunReport, TraceReport


def run(model: str, board: str | None, inputs: list[float] | None, quant: str | None = None) -> RunReport:
    """`inputs`: the values of one or more input rows, one row per model input width (default: 0.5 each)."""
    recipe = recipes.load(model)
    chosen = config.board(board)
    path = compiled_file(recipe, quant)
    values = np.array(inputs if inputs else [0.5] * recipe.model.inputs, dtype=np.float32)
    if values.size % recipe.model.inputs:
        raise UsageError(f"--inputs: {recipe.name} takes {recipe.model.inputs} value(s) per input row, "
                         f"got {values.size}")
    x = values.reshape(-1, recipe.model.inputs)
    prepare(chosen, path)
    with open_device(chosen) as device:
        result = device.run(path, [x])
    return RunReport(chosen.name, result.timing.get("isa", "unknown"), result.timing.get("latency_us_median"), x,
                     result.outputs[0])


def trace_row(model: str, board: str | None, row: int = 0, quant: str | None = None) -> TraceReport:
    """verify --trace: verify's input `row` run once on the device with every intermediate result dumped, each
    compared with the reference VM and PyTorch."""
    recipe = recipes.load(model)
    chosen = config.board(board)
    path = compiled_file(recipe, quant)
    net = reference_model(recipe, quant)
    points = data.grid_points(recipe.data, recipe.verify_points, seed=seed_for(recipe.data, Draw.VERIFY))
    if not 0 <= row < len(points):
        raise UsageError(f"--row must be between 0 and {len(points) - 1}, got {row}")
    x = points[row:row + 1].astype(np.float32)
    prepare(chosen)
    with open_device(chosen) as device:
        records = device.trace(path, [x])
    model_bytes = path.read_bytes()
    steps = trace.compare(net, model_bytes, x, records, debuginfo.load(path, model_bytes))
    tolerance = recipe.tolerances.float32_max_abs_err
    return TraceReport(chosen.name, row, x, steps, tolerance, trace.first_mismatch(steps, tolerance))
