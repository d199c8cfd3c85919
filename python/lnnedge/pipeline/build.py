"""build: the C VM (runner + library) or a board's firmware for one target, a firmware with a model built in."""

from __future__ import annotations

from pathlib import Path

from .. import config
from .. import recipe as recipes
from ..build import build
from .model_files import compiled_file
from .reports import BuildReport


def build_target(target_name: str, sanitize: bool = False, model: str | None = None,
                 file: Path | None = None) -> BuildReport:
    """`model` (a recipe, its compiled model.lnnb) or `file` (a .lnnb) is linked into a firmware target's image."""
    target = config.load_target(target_name)
    resident = compiled_file(recipes.load(model)) if model else Path(file) if file else None
    return BuildReport(target.name, build(target, sanitize=sanitize, echo=lambda _m: None, model=resident),
                       target.vm_size_budget, str(resident) if resident else "")
