"""The quantize-check gate a deploy of a quantized model passes, and the facts it needs: the schemes and where
a check's report is. Without torch (lnnedge.quantize, which makes the reports, needs it), so a deploy does not
import it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .artifacts import ArtifactError, MissingArtifact
from .recipe import Recipe

SCHEMES = ("int8", "w8a16", "f16")
DESCRIPTIONS = {
    "int8": "int8 weights, symmetric, per output channel; float32 activations and accumulation",
    "w8a16": "int8 weights, symmetric, per output channel; each input row of a quantized layer rounded to 16-bit "
             "block floating point (one exponent per row), exact integer sums",
    "f16": "float16 weights (IEEE half, widened to float32 at load); float32 activations and accumulation",
}


def report_path(out_dir: Path, scheme: str) -> Path:
    return out_dir / f"quantize-check-{scheme}.json"


def gate(out_dir: Path, recipe: Recipe, quant_file: Path, scheme: str) -> dict:
    """The quantize-check result a deploy of `quant_file` relies on; raise if missing, failed or stale."""
    path = report_path(out_dir, scheme)
    force = "(or pass --force)"
    command = f"invoke quantize-check --model {recipe.name} --quant {scheme}"
    if not path.is_file():
        raise MissingArtifact(f"no {scheme} quantize-check for {recipe.name}: run `{command}` "
                         f"before deploying a quantized model {force}")
    report = json.loads(path.read_text())
    if not report.get("passed"):
        raise ArtifactError(f"quantize-check failed for {recipe.name} (see {path}); refusing to deploy the quantized "
                         f"model {force}")
    spec = recipe.quantization
    current = {"max_abs_err": spec.max_abs_err, "task_rmse": spec.task_rmse} if spec else None
    if (report.get("quant_file_sha256") != hashlib.sha256(quant_file.read_bytes()).hexdigest()
            or report.get("tolerance") != current):
        raise ArtifactError(f"the quantize-check in {path} is for another {quant_file.name} or tolerance: run "
                         f"`{command}` again {force}")
    return report
