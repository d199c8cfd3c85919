"""results: measure the README's results table (results.yaml's rows). Each recipe is trained if it has no
checkpoint and compiled (per scheme) if its file is missing or older than the checkpoint, then every row is
verified on its board; the reports are what `invoke readme-table` writes the table from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import LnnedgeError
from ..paths import BUILD_DIR
from ..results_matrix import ResultRow
from .compile import compile_model
from .model_files import model_file
from .train import train_model
from .verify import verify


@dataclass(frozen=True)
class RowOutcome:
    row: ResultRow
    passed: bool
    why: str  # the verdict's line: the error against the tolerance, or what stopped the row


def _ready(row: ResultRow, echo: Callable[[str], None]) -> None:
    """The row's model trained and compiled, each only when missing (or, compiled, older than the checkpoint)."""
    checkpoint = BUILD_DIR / row.model / "checkpoint.pt"
    if not checkpoint.is_file():
        echo(f"training {row.model}")
        train_model(row.model)
    compiled = model_file(row.model, row.quant)
    if not compiled.is_file() or compiled.stat().st_mtime < checkpoint.stat().st_mtime:
        echo(f"compiling {row.model}{f' --quant {row.quant}' if row.quant else ''}")
        compile_model(row.model, row.quant)


def measure(rows: list[ResultRow], missing_only: bool = False, build_dir: Path = BUILD_DIR,
            echo: Callable[[str], None] = print) -> list[RowOutcome]:
    """Verify each row (with missing_only, only those without a report in build_dir), a line per row."""
    todo = [r for r in rows if not (missing_only and r.report(build_dir) is not None)]
    outcomes = []
    for n, row in enumerate(todo, 1):
        try:  # one row that cannot run (a board's tools missing, a model it cannot hold) does not stop the rest
            _ready(row, echo)
            d = verify(row.model, row.board, row.quant).data
            outcome = RowOutcome(row, d["passed"], f"max abs err {d['max_abs_err']:.2e} (tolerance "
                                                   f"{d['tolerance']:.0e}) {'passed' if d['passed'] else 'FAILED'}")
        except LnnedgeError as exc:
            row.report_path(build_dir).unlink(missing_ok=True)  # no earlier figures shown for a row not measured
            outcome = RowOutcome(row, False, f"error: {' '.join(str(exc).split())}")
        outcomes.append(outcome)
        echo(f"[{n}/{len(todo)}] {row}: {outcome.why}")
    return outcomes
