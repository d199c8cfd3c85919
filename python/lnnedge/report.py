"""The README's results table, generated from the verify and training reports under build/."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .paths import BUILD_DIR, ROOT

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def results_table(build_dir: Path = BUILD_DIR) -> str:
    """One row per verify report of a board that boards.yaml knows (test-only boards are left out)."""
    from .config import load_boards

    known = set(load_boards()[0])
    rows = ["| model | board | ISA | n | max abs err vs PyTorch | tolerance | latency (µs, median) | "
            "RMSE vs true function (or accuracy) | passed |", "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(build_dir.glob("*/verify-*.json")):
        r = json.loads(path.read_text())
        if r["board"] not in known:
            continue
        latency = f"{r['latency_us']:.1f}" + (" (emulated)" if r.get("emulated") else "")
        rows.append(f"| {r['model']} | {r['board']} | {r['isa']} | {r['n']} | {r['max_abs_err']:.2e} | "
                    f"{r['tolerance']:.0e} | {latency} | {_task_metric(r)} | "
                    f"{'yes' if r['passed'] else 'NO'} |")
    return "\n".join(rows)


def update_readme(readme: Path = ROOT / "README.md", build_dir: Path = BUILD_DIR) -> str:
    text = readme.read_text()
    table = results_table(build_dir)
    new, count = re.subn(re.escape(BEGIN) + ".*?" + re.escape(END), f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
    if count != 1:
        raise ValueError(f"{readme} has no {BEGIN} ... {END} block")
    readme.write_text(new)
    return table


def _task_metric(r: dict) -> str:
    if r.get("kind") == "classifier":
        return f"accuracy {100 * r['accuracy_device']:.2f} % (same class {100 * r['same_class_share']:.0f} %)"
    return f"{r['device_vs_true_rmse']:.4f}"
