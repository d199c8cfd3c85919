"""Irregular time, measured: an irregularly sampled recipe's model trained as written (each step's Δt a run-time
input, ncps's timespans) and the same model assuming a fixed step (the Δt column ignored: elapsed time 1.0, the
mean sampling interval), both trained alike on the same sequences and scored on the same held-out ones.

`invoke irregular` writes build/irregular/<model>.json; report.py renders it into the README.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import recipe as recipes
from .artifacts import atomic_write_text
from .errors import UsageError
from .paths import BUILD_DIR
from .progress import Progress, silent
from .sequences import IRREGULAR_DT
from .train import train

REPORT_DIR = BUILD_DIR / "irregular"


def compare(model: str = "ncps-cfc-irregular", seeds: tuple[int, ...] = (0, 1, 2), epochs: int | None = None,
            progress: Progress = silent) -> dict:
    """Train both models once per seed; held-out RMSE of each against the clean next sample."""
    recipe = recipes.load(model)
    if not recipe.model.timespans:
        raise UsageError(f"{recipe.name} does not take each step's elapsed time (model.timespans: true)")
    fixed = replace(recipe, model=replace(recipe.model, timespans=False))
    torch.set_num_threads(1)  # one core: the figures do not depend on what else the machine runs
    runs = []
    for seed in seeds:
        aware = train(recipe, seed=seed, epochs=epochs, progress=progress).metrics
        assumed = train(fixed, seed=seed, epochs=epochs, progress=progress).metrics
        runs.append({"seed": seed, "dt_aware_rmse": aware["test_rmse"], "fixed_dt_rmse": assumed["test_rmse"],
                     "train_seconds": [aware["train_seconds"], assumed["train_seconds"]]})
    aware_rmse = [r["dt_aware_rmse"] for r in runs]
    fixed_rmse = [r["fixed_dt_rmse"] for r in runs]
    report = {
        "model": recipe.name,
        "description": recipe.description,
        "source": recipe.data.source,
        "dt_range": list(IRREGULAR_DT),
        "test_sequences": recipe.data.test_points,
        "steps": recipe.data.sequence_length,
        "epochs": aware["epochs"],
        "torch_threads": 1,
        "repeat_last_rmse": aware["repeat_last_rmse"],
        "runs": runs,
        "dt_aware_rmse_median": float(np.median(aware_rmse)),
        "fixed_dt_rmse_median": float(np.median(fixed_rmse)),
        # the claim, per seed: the model given Δt is better on held-out data than the one assuming a fixed step
        "dt_aware_better_every_seed": all(a < f for a, f in zip(aware_rmse, fixed_rmse)),
    }
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    atomic_write_text(REPORT_DIR / f"{recipe.name}.json", json.dumps(report, indent=2) + "\n")
    return report


def load_all(directory: Path = REPORT_DIR) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def summary(report: dict) -> str:
    """What `invoke irregular` prints: a line per seed and the medians."""
    lines = [f"{report['model']}: held-out RMSE vs the clean next sample ({report['test_sequences']} sequences x "
             f"{report['steps']} steps, Δt ~ U{tuple(report['dt_range'])})"]
    lines += [f"  seed {r['seed']}: Δt-aware {r['dt_aware_rmse']:.4f}   fixed Δt {r['fixed_dt_rmse']:.4f}"
              for r in report["runs"]]
    lines.append(f"  median: Δt-aware {report['dt_aware_rmse_median']:.4f}   fixed Δt "
                 f"{report['fixed_dt_rmse_median']:.4f}   (repeating the last sample: "
                 f"{report['repeat_last_rmse']:.4f})")
    lines.append(f"wrote {REPORT_DIR / (report['model'] + '.json')}")
    return "\n".join(lines)
