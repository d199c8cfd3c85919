"""stream: a held-out sequence fed to the device one sample at a time (`lnnvm stream`: one line of inputs in, one
line of outputs out, the hidden state kept in the VM between lines), and the same sequence in one call; both must
give PyTorch's outputs."""

from __future__ import annotations

import numpy as np
import torch

from .. import config, sequences
from .. import recipe as recipes
from ..data import Draw, seed_for
from ..devices import open_device, prepare
from ..errors import UsageError
from .compile import reference_model
from .model_files import compiled_file
from .reports import StreamReport


def stream(model: str, board: str | None, steps: int = 32) -> StreamReport:
    recipe = recipes.load(model)
    if not recipe.sequence:
        raise UsageError(f"{recipe.name} is not a sequence model: streaming needs a model that keeps state")
    if not 1 <= steps <= recipe.data.sequence_length:
        raise UsageError(f"--steps must be between 1 and {recipe.data.sequence_length} (the recipe's data.length), "
                         f"got {steps}")
    chosen = config.board(board)
    path = compiled_file(recipe)
    x = sequences.damped_oscillations(recipe.data, 1, seed_for(recipe.data, Draw.STREAM))[0][0, :steps]
    with torch.no_grad():
        reference = reference_model(recipe)(torch.from_numpy(x[None]))[0].numpy()
    prepare(chosen, path)
    with open_device(chosen) as device:
        with device.stream(path) as streamer:
            streamed = np.stack([streamer.step(row) for row in x])
        whole = device.run(path, [x], batch=1).outputs[0]
    return StreamReport(recipe.name, chosen.name, x, streamed, whole, reference,
                        recipe.tolerances.float32_max_abs_err)
