"""A user's own model for the command line: `path/to/model.py:make_model` imported by path, its weights, the
example input shapes ("1x3" or "1x3,1x8") and a test set from a .npz file.

Every mistake (no such file, no such factory, a factory that does not give an nn.Module, weights that do not
fit, example shapes the module refuses, an .npz without `inputs`) is a `UserModuleError` naming it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import LnnedgeError


class UserModuleError(LnnedgeError, ValueError):
    """A user's module, weights, example shapes or test data that cannot be used as given."""


def split_spec(spec: str) -> tuple[Path, str]:
    """'path/to/model.py:make_model' -> (the file, the factory's name)."""
    path, sep, factory = spec.rpartition(":")
    if not sep or not path or not factory.isidentifier():
        raise UserModuleError(f"--module {spec}: expected FILE.py:FACTORY, e.g. models/net.py:make_model")
    return Path(path), factory


def load(spec: str, weights: str | Path | None = None) -> torch.nn.Module:
    """Import the file by path, call the factory (no arguments), load the state_dict in `weights` if given; the
    module in eval mode."""
    path, factory = split_spec(spec)
    if not path.is_file():
        raise UserModuleError(f"--module {spec}: {path} does not exist")
    # a name of its own per file, so two files named model.py do not share a sys.modules entry
    name = f"lnnedge_user_{path.stem}_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UserModuleError(f"--module {spec}: {path} is not a Python file")
    source = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = source  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
    try:
        loader_spec.loader.exec_module(source)
    except Exception as exc:  # the user's code: any exception, reported as theirs
        raise UserModuleError(f"--module {spec}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    make = getattr(source, factory, None)
    if not callable(make):
        found = sorted(k for k, v in vars(source).items() if inspect.isfunction(v) and v.__module__ == name)
        raise UserModuleError(f"--module {spec}: {path} has no function {factory}"
                              + (f" (it defines {', '.join(found)})" if found else ""))
    try:
        module = make()
    except Exception as exc:  # the user's factory
        raise UserModuleError(f"--module {spec}: {factory}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise UserModuleError(f"--module {spec}: {factory}() returned {type(module).__name__}, not an nn.Module")
    if weights is not None:
        load_weights(module, Path(weights))
    return module.eval()


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """A state_dict saved with torch.save (or a checkpoint dict holding one under `state_dict`)."""
    if not path.is_file():
        raise UserModuleError(f"--weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: torch raises many types
        raise UserModuleError(f"--weights {path}: not a PyTorch state_dict file (save one with "
                              "torch.save(model.state_dict(), path))") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserModuleError(f"--weights {path}: holds a {type(state).__name__}, not a state_dict")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise UserModuleError(f"--weights {path}: does not fit {type(module).__name__}: "
                              f"{' '.join(str(exc).split())}") from exc


def parse_example(text: str) -> list[torch.Tensor]:
    """'1x3' or '1x3,1x8' (one shape per model input, dim 0 the batch) -> zero tensors of those shapes."""
    shapes = []
    for part in text.split(","):
        dims = part.strip().lower().split("x")
        if not part.strip() or not all(d.isdigit() and int(d) > 0 for d in dims) or len(dims) < 2:
            raise UserModuleError(f"--example {text}: expected shapes like 1x3 or 1x3,1x8 (batch first, every "
                                  "dim a positive integer, at least two dims)")
        shapes.append(tuple(int(d) for d in dims))
    return [torch.zeros(shape) for shape in shapes]


def outputs_of(module: torch.nn.Module, inputs: Sequence[torch.Tensor], what: str) -> list[np.ndarray]:
    """The module's outputs (one array per output) for `inputs`; a module that refuses them is the user's error
    `what` (e.g. '--example 1x5')."""
    try:
        with torch.no_grad():
            out = module(*inputs)
    except Exception as exc:  # the user's forward on inputs it cannot take: a shape mismatch, most often
        shapes = ", ".join("x".join(map(str, x.shape)) for x in inputs)
        raise UserModuleError(f"{what}: {type(module).__name__} cannot run on inputs of shape {shapes}: "
                              f"{' '.join(str(exc).split())}") from exc
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if not all(isinstance(o, torch.Tensor) for o in outs):
        raise UserModuleError(f"{what}: {type(module).__name__} must return tensors (or a tuple of tensors)")
    return [o.detach().to(torch.float32).numpy() for o in outs]


def load_test_data(path: str | Path, examples: Sequence[torch.Tensor]) -> tuple[list[np.ndarray], np.ndarray | None]:
    """A test set from an .npz: `inputs` (rows first; several model inputs: inputs_0, inputs_1, ...) and optionally
    `outputs` (rows first, the outputs flattened per row). Each input's row shape must be the example's."""
    path = Path(path)
    if not path.is_file():
        raise UserModuleError(f"--test-data {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserModuleError(f"--test-data {path}: not an .npz archive of numbers (save one with "
                              "numpy.savez(path, inputs=..., outputs=...))") from exc
    names = ["inputs"] if len(examples) == 1 else [f"inputs_{i}" for i in range(len(examples))]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise UserModuleError(f"--test-data {path}: no array {', '.join(missing)} (it holds "
                              f"{', '.join(sorted(arrays)) or 'nothing'}); save the test inputs as "
                              f"{' and '.join(names)}")
    inputs = [np.asarray(arrays[n], dtype=np.float32) for n in names]
    for n, x, example in zip(names, inputs, examples):
        if x.ndim != example.dim() or tuple(x.shape[1:]) != tuple(example.shape[1:]) or len(x) == 0:
            raise UserModuleError(f"--test-data {path}: {n} has shape {'x'.join(map(str, x.shape))}; rows of "
                                  f"{'x'.join(map(str, example.shape[1:]))} expected (as --example)")
    if len({len(x) for x in inputs}) != 1:
        raise UserModuleError(f"--test-data {path}: the inputs have different numbers of rows")
    outputs = arrays.get("outputs")
    if outputs is not None:
        outputs = np.asarray(outputs, dtype=np.float32).reshape(len(outputs), -1)
        if len(outputs) != len(inputs[0]):
            raise UserModuleError(f"--test-data {path}: {len(outputs)} output rows for {len(inputs[0])} input rows")
    if not all(np.all(np.isfinite(x)) for x in inputs):
        raise UserModuleError(f"--test-data {path}: the inputs hold NaN or infinity")
    return inputs, outputs
