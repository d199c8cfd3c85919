"""bench: the engines on one trained model (lnnedge.bench measures; this picks the files and builds what is
missing), and the MATMUL kernel alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .. import bench as measure
from .. import config, quant_gate
from .. import recipe as recipes
from ..build import build
from ..paths import BUILD_DIR
from ..progress import Progress, silent
from .compile import compile_model
from .model_files import compiled_file, model_file
from .reports import BenchReport, MatmulReport
from .train import load_trained


def _schemes(recipe: recipes.Recipe) -> tuple[str, ...]:
    """The quantized weight formats to bench beside float32: none for a recipe without a quantization section
    (its model is float32 only)."""
    return quant_gate.SCHEMES if recipe.quantization is not None else ()


def bench(model: str, quick: bool = False, progress: Progress = silent) -> BenchReport:
    """The engines on the float32 file, and the C VM on it and on the int8 and float16 files (compiled when
    missing; float32 alone for a recipe without a quantization section)."""
    recipe = recipes.load(model)
    result = build(config.load_target("host"), echo=lambda _m: None)
    net = load_trained(recipe)
    files = {"float32": compiled_file(recipe)}
    compiled = []
    for scheme in _schemes(recipe):
        if not model_file(recipe.name, scheme).is_file():
            compiled.append(compile_model(model, scheme))
        files[scheme] = model_file(recipe.name, scheme)
    data = measure.bench(recipe, net, files, result.runner, result.library, quick=quick, progress=progress)
    return BenchReport(data, BUILD_DIR / "bench.json", tuple(compiled))


def bench_board(model: str, board: str, progress: Progress = silent) -> tuple[dict, Path]:
    """Instructions per inference on an emulated microcontroller (lnnedge.mcu_bench) for the float32, int8 and
    float16 files (compiled when missing; float32 alone for a recipe without a quantization section):
    build/<model>/bench-<board>.json. The image is the target's full
    build made for the bench (build/bench/<board>/: the target's output directory may hold a selective build
    for one model), the files uploaded to it; a target without an upload buffer gets one image per file
    with the file in its flash (build/bench/<board>-<format>/)."""
    from .. import mcu_bench
    from ..build import build_firmware, takes_no_upload

    recipe = recipes.load(model)
    mcu_bench.check_board(config.board(board))
    target = config.board(board).target
    files = {"float32": compiled_file(recipe)}
    for scheme in _schemes(recipe):
        if not model_file(recipe.name, scheme).is_file():
            compile_model(model, scheme)
        files[scheme] = model_file(recipe.name, scheme)
    # the baseline: the same firmware with the scalar kernels only (no cm4 or mve set), beside the target's build
    scalar = replace(target, firmware=replace(target.firmware, variables={
        **target.firmware.variables,
        "EXTRA_CFLAGS": f"{target.firmware.variables.get('EXTRA_CFLAGS', '')} -DLNN_HAVE_CM4=0 -DLNN_HAVE_MVE=0"
                        .strip()}))
    runs = {}
    for name, t in (("kernels", target), ("scalar", scalar)):
        if name == "scalar" and all(r.get("isa", "scalar") == "scalar" for r in runs["kernels"]["results"].values()):
            runs["scalar"] = {"results": {}}  # a core without the cm4 or mve set: the same firmware
            break
        out = BUILD_DIR / "bench" / (board if name == "kernels" else f"{board}-scalar")
        if takes_no_upload(t):
            images = {scheme: build_firmware(t, lambda _line: None, path, out.with_name(f"{out.name}-{scheme}")).runner
                      for scheme, path in files.items()}
        else:
            images = dict.fromkeys(files, build_firmware(t, lambda _line: None, None, out).runner)
        runs[name] = mcu_bench.bench(config.board(board), recipe.name, files, progress, images)
    data = {**runs["kernels"], "scalar_results": runs["scalar"]["results"]}
    return data, mcu_bench.save(data, BUILD_DIR)


def bench_matmul(size: int, runs: int) -> MatmulReport:
    data = measure.matmul_bench(size, runs)
    return MatmulReport(data, measure.save_matmul(data))
