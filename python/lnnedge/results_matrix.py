"""The README's results table as data. results.yaml lists, for each recipe, the boards its float32 model is
verified on and, per quantization scheme, the boards of that scheme's model: one row of the table each.
`invoke results` measures the rows (lnnedge.pipeline.results), `invoke readme-table` writes the table from their
reports in this file's order (lnnedge.report.results_table)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import LnnedgeError
from .paths import ROOT

MATRIX_FILE = ROOT / "results.yaml"
FLOAT = "float32"  # the key of a recipe's float32 model in results.yaml


class MatrixError(LnnedgeError, ValueError):
    """results.yaml names a recipe, scheme or board the kit does not have, or is not a mapping of lists."""


@dataclass(frozen=True)
class ResultRow:
    model: str
    quant: str | None  # a scheme of lnnedge.quant_gate.DESCRIPTIONS, None for float32 weights
    board: str

    def report_path(self, build_dir: Path) -> Path:
        """The verify report of this row (lnnedge.pipeline.verify names it so)."""
        label = f"-{self.quant}" if self.quant else ""
        return build_dir / self.model / f"verify-{self.board}{label}.json"

    def report(self, build_dir: Path) -> dict | None:
        """The row's verify report, or None: none yet, or in its place the report of a `verify --file` of the
        recipe's model file (the same name, held to the file's bundled cases only)."""
        path = self.report_path(build_dir)
        if not path.is_file():
            return None
        report = json.loads(path.read_text())
        return None if report.get("kind") == "file" else report

    def __str__(self) -> str:
        return f"{self.model}{f' ({self.quant})' if self.quant else ''} on {self.board}"


def load(path: Path = MATRIX_FILE) -> list[ResultRow]:
    """The rows of results.yaml, in its order; a recipe, scheme or board the kit lacks is refused by name."""
    from . import recipe
    from .config import load_boards
    from .quant_gate import DESCRIPTIONS

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MatrixError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise MatrixError(f"{path}: expected a mapping of recipe names to their schemes' boards")
    recipes, schemes, boards = recipe.available(), (FLOAT, *DESCRIPTIONS), set(load_boards()[0])
    rows: list[ResultRow] = []
    for model, by_scheme in raw.items():
        if model not in recipes:
            raise MatrixError(f"{path}: no recipe {model!r} (recipes: {', '.join(recipes)})")
        if not isinstance(by_scheme, dict):
            raise MatrixError(f"{path}: {model}: expected a mapping of schemes ({', '.join(schemes)}) to boards")
        for scheme, names in by_scheme.items():
            if scheme not in schemes:
                raise MatrixError(f"{path}: {model}: no scheme {scheme!r} (schemes: {', '.join(schemes)})")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise MatrixError(f"{path}: {model}.{scheme}: expected a list of board names")
            for name in names:
                if name not in boards:
                    raise MatrixError(f"{path}: {model}.{scheme}: no board {name!r} in boards.yaml")
                row = ResultRow(model, None if scheme == FLOAT else scheme, name)
                if row in rows:
                    raise MatrixError(f"{path}: {row} is listed twice")
                rows.append(row)
    return rows
