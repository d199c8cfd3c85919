"""The pipeline's steps as plain functions; tasks.py is a thin Invoke layer over them.

Each step prints what it did and returns a small dict (for tests and the demo).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import config, deploy
from . import recipe as recipes
from .artifacts import MissingArtifact
from .build import build, runner_path
from .compiler import compile_module
from .errors import UsageError
from .paths import model_dir
from .train import load_checkpoint, save, train
from .transports import for_board
from .verify import table, verify


def model_file(name: str, quant: str | None = None) -> Path:
    """build/<model>/model.lnnb, or model-<scheme>.lnnb for a quantized compile."""
    from .quantize import SCHEMES

    if quant is not None and quant not in SCHEMES:
        raise UsageError(f"--quant {quant}: supported schemes are {', '.join(SCHEMES)}")
    return model_dir(name) / (f"model-{quant}.lnnb" if quant else "model.lnnb")


def reference_model(recipe: recipes.Recipe, quant: str | None = None,
                    net: torch.nn.Module | None = None) -> torch.nn.Module:
    """What the device must reproduce: the trained model (`net`, else loaded), or for a quantized compile the
    model with fake-quantized weights (the same int8 or float16 arithmetic in PyTorch)."""
    net = net if net is not None else load_checkpoint(recipe, model_dir(recipe.name))
    if quant is None:
        return net
    from . import quantize

    return quantize.fake_quantize(net, _quant_spec(recipe).keep_float, quant)


def _quant_spec(recipe: recipes.Recipe) -> recipes.QuantSpec:
    if recipe.quantization is None:
        raise recipes.RecipeError(f"{recipe.path}: the recipe has no quantization section; add one to compile with "
                                  "--quant")
    return recipe.quantization


def train_step(model: str, seed: int | None = None, epochs: int | None = None, progress: bool = True) -> dict:
    recipe = recipes.load(model)
    result = train(recipe, seed=seed, epochs=epochs, progress=progress)
    out = model_dir(recipe.name)
    save(result, recipe, out)
    m = result.metrics
    if recipe.classifier:
        print(f"{recipe.name}: test accuracy {100 * m['test_accuracy']:.2f} % on {m['test_points']} held-out "
              f"images (target ≥ {100 * m['target_accuracy']:.0f} %), "
              f"{m['epochs']} epochs in {m['train_seconds']:.1f} s, seed {m['seed']}")
    else:
        print(f"{recipe.name}: test RMSE vs true function {m['test_rmse']:.4f} (target ≤ {m['target_rmse']}), "
              f"{m['epochs']} epochs in {m['train_seconds']:.1f} s, seed {m['seed']}")
    print(f"wrote {out / 'checkpoint.pt'}, {out / 'train-metrics.json'}, {out / 'loss.png'}")
    return m


def seeds_step(model: str, seeds: list[int], epochs: int | None = None) -> list[dict]:
    """Train once per seed (nothing saved); a table of each seed's held-out RMSE."""
    recipe = recipes.load(model)
    rows = []
    for seed in seeds:
        m = train(recipe, seed=seed, epochs=epochs, progress=True).metrics
        rows.append(m)
    print(f"{'seed':>4}  {'test RMSE':>10}  {'seconds':>8}  verdict (target ≤ {recipe.tolerances.target_rmse})")
    for m in rows:
        print(f"{m['seed']:>4}  {m['test_rmse']:>10.5f}  {m['train_seconds']:>8.1f}  {'ok' if m['passed'] else 'FAIL'}")
    return rows


def compile_step(model: str, quant: str | None = None) -> dict:
    from . import quantize
    from .smoke import test_set

    recipe = recipes.load(model)
    path = model_file(recipe.name, quant)
    trained = load_checkpoint(recipe, model_dir(recipe.name))
    net = reference_model(recipe, quant, trained)
    stored = quantize.compile_options(trained, _quant_spec(recipe).keep_float, quant) if quant else {}
    example = torch.zeros(1, recipe.model.inputs)
    started = time.perf_counter()
    meta = {"recipe": recipe.name, "kind": recipe.model.kind}
    if not recipe.classifier:
        meta.update(method=recipe.model.method, steps=recipe.model.steps - 1)
    if quant:
        meta["quantization"] = {"scheme": quant,
                                "layers": sorted(stored.get("int8_scales") or stored.get("float16_layers"))}
    module, examples, state = net, (example,), ()
    if recipe.sequence:  # one time step, the hidden state kept in the VM between runs
        from .models.sequence import Step

        module, examples, state = Step(net), (example, torch.zeros(1, recipe.model.hidden)), ((1, 1),)
        meta["sequence"] = {"state": "hidden", "hidden": recipe.model.hidden}
    compiled = compile_module(module, examples, name=recipe.name, meta=meta, tests=test_set(recipe, net),
                              state=state, **stored)
    compiled.save(path)
    plan = compiled.plan_summary()
    print(f"compiled {recipe.name}{f' ({quant} weights)' if quant else ''} in {time.perf_counter() - started:.1f} s "
          f"-> {path} ({plan['file_bytes']} bytes; code {plan['code_bytes']} B, constants {plan['const_bytes']} B)")
    if quant:
        dtype = np.int8 if quant == "int8" else np.float16
        constants = {k: v for scope in compiled.graph.scopes() for k, v in scope.constants.items()}
        stored_as = [f"{name} {tuple(v.shape)}" for name, v in constants.items() if v.dtype == dtype]
        print(f"{quant} weights: {', '.join(stored_as) or 'none'}")
        plain = model_file(recipe.name)
        if plain.is_file():
            plan["float_file_bytes"] = plain.stat().st_size
            print(f"file size {plan['file_bytes']} B vs {plan['float_file_bytes']} B float "
                  f"({plan['file_bytes'] / plan['float_file_bytes']:.2f}×)")
    print(f"arena: {plan['arena_row']} B per batch row (naive sum {plan['naive_row']} B, "
          f"largest live set {plan['lower_bound_row']} B) + {plan['arena_fixed']} B fixed; "
          f"batch 1 needs {compiled.arena_bytes(1)} B")
    if plan["naive_row"]:
        print(f"per batch row the plan is {100 * plan['arena_row'] / plan['naive_row']:.1f} % of the naive sum and "
              f"{100 * plan['arena_row'] / max(plan['lower_bound_row'], 1):.1f} % of the largest live set; "
              f"{plan['in_place']} op(s) write over their operand")
    print(f"listing: {path.with_name(path.name + '.txt')}")
    return plan


def build_step(target_name: str, sanitize: bool = False) -> dict:
    target = config.load_target(target_name)
    result = build(target, sanitize=sanitize)
    print(f"built {target.name}: {result.runner} ({result.runner_bytes} bytes)"
          + (f", {result.library}" if result.library else ""))
    if result.memory is not None:
        m = result.memory
        print(f"flash {m['flash']} B (.text {m['text']} + .rodata {m['rodata']} + .data {m['data']}); "
              f"RAM {m['ram']} of {m['ram_total']} B (.bss {m['bss']} + model buffer {m['model_max']} + "
              f"arena {m['arena_size']} + stack {m['stack']}); flash budget {target.vm_size_budget} B")
    elif result.vm_bytes is not None:
        print(f"VM library (text + data): {result.vm_bytes} bytes of a {target.vm_size_budget}-byte budget")
    return {"runner": str(result.runner), "library": str(result.library) if result.library else None}


def _transport(board: config.Board):
    return for_board(board, runner_path(board.target))


def run_step(model: str, board_name: str | None, inputs: list[float] | None, quant: str | None = None
             ) -> np.ndarray:
    recipe = recipes.load(model)
    board = config.board(board_name)
    path = _compiled(recipe, quant)
    values = np.array(inputs if inputs else [0.5] * recipe.model.inputs, dtype=np.float32)
    if values.size % recipe.model.inputs:
        raise UsageError(f"--inputs: {recipe.name} takes {recipe.model.inputs} value(s) per input row, "
                         f"got {values.size}")
    x = values.reshape(-1, recipe.model.inputs)
    transport = _transport(board)
    try:
        result = transport.run(path, [x])
    finally:
        getattr(transport, "close", lambda: None)()
    for row_in, row_out in zip(x, result.outputs[0]):
        print(f"{' '.join(f'{v:g}' for v in row_in)} -> {' '.join(f'{v:.6f}' for v in row_out)}")
    latency = result.timing.get("latency_us_median")
    print(f"on {board.name} ({result.timing.get('isa')}): {latency:.2f} µs per inference")
    return result.outputs[0]


def trace_step(model: str, board_name: str | None, row: int = 0, quant: str | None = None) -> bool:
    """verify --trace: one input, every intermediate compared; True when nothing differs beyond tolerance."""
    from . import data, trace
    from .compiler import debuginfo

    recipe = recipes.load(model)
    board = config.board(board_name)
    path = _compiled(recipe, quant)
    net = reference_model(recipe, quant)
    points = data.grid_points(recipe.data, recipe.verify_points, seed=recipe.data.seed + 2).astype(np.float32)
    if not 0 <= row < len(points):
        raise UsageError(f"--row must be between 0 and {len(points) - 1}, got {row}")
    x = points[row:row + 1]
    transport = _transport(board)
    if not hasattr(transport, "trace"):
        raise UsageError(f"board {board.name}: its transport ({board.transport}) has no trace support; "
                         "trace on a Linux or QEMU board of a compatible target")
    try:
        records = transport.trace(path, [x])
    finally:
        getattr(transport, "close", lambda: None)()
    model_bytes = path.read_bytes()
    steps = trace.compare(net, model_bytes, x, records, debuginfo.load(path, model_bytes))
    tolerance = recipe.tolerances.float32_max_abs_err
    print(f"trace of input row {row} ({', '.join(f'{v:g}' for v in x[0])}) on {board.name}")
    print(trace.render(steps, tolerance))
    return trace.first_mismatch(steps, tolerance) is None


def _compiled(recipe: recipes.Recipe, quant: str | None = None) -> Path:
    path = model_file(recipe.name, quant)
    if not path.is_file():
        flag = f" --quant {quant}" if quant else ""
        raise MissingArtifact(f"{path} does not exist: run `invoke compile --model {recipe.name}{flag}` first")
    return path


def verify_step(model: str, board_name: str | None, quant: str | None = None) -> list[dict]:
    """Verify on one board, or on every board of a group in parallel (with a summary table). A quantized
    model is held to the fake-quantized PyTorch model and its error vs the float model is reported too."""
    recipe = recipes.load(model)
    boards = config.resolve(board_name)
    out = model_dir(recipe.name)
    path = _compiled(recipe, quant)
    trained = load_checkpoint(recipe, out)
    net = reference_model(recipe, quant, trained)
    float_net = trained if quant else None

    def one(board: config.Board) -> dict:
        transport = _transport(board)
        try:
            return verify(recipe, net, path, board, transport, out, float_model=float_net, label=quant)
        finally:
            getattr(transport, "close", lambda: None)()

    if len(boards) == 1:
        report = one(boards[0])
        print(table(report))
        print(f"wrote {out / report['json']} and {out / report['plot']}")
        return [report]
    outcomes = deploy.across(boards, one)
    print(deploy.summary(outcomes, ("isa", "max_abs_err", "latency_us")))
    return [o.detail if o.ok or o.detail else {"board": o.board, "passed": False, "error": o.error}
            for o in outcomes]


def deploy_step(model: str, board_name: str | None, quant: str | None = None, force: bool = False
                ) -> list[deploy.Outcome]:
    """Deploy; a quantized model only with a passed quantize-check (or force)."""
    from . import quantize

    recipe = recipes.load(model)
    boards = config.resolve(board_name)
    path = _compiled(recipe, quant)
    if quant and not force:
        quantize.gate(model_dir(recipe.name), recipe, path, quant)
    outcomes = deploy.across(boards, lambda b: deploy.deploy(recipe, path, b))
    print(deploy.summary(outcomes, ("release", "target", "smoke_max_abs_err")))
    return outcomes


def stream_step(model: str, board_name: str | None, steps: int = 32) -> float:
    """A held-out sequence fed to the device one sample per line; the same outputs as the whole-sequence call and
    as PyTorch. Returns the largest difference between the streamed and the whole-sequence outputs."""
    from . import sequences
    from .stream import StreamError, stream_sequence

    recipe = recipes.load(model)
    if not recipe.sequence:
        raise UsageError(f"{recipe.name} is not a sequence model: streaming needs a model that keeps state")
    if not 1 <= steps <= recipe.data.sequence_length:
        raise UsageError(f"--steps must be between 1 and {recipe.data.sequence_length} (the recipe's data.length), "
                         f"got {steps}")
    board = config.board(board_name)
    path = _compiled(recipe)
    x = sequences.damped_oscillations(recipe.data, 1, recipe.data.seed + 5)[0][0, :steps]
    with torch.no_grad():
        reference = reference_model(recipe)(torch.from_numpy(x[None]))[0].numpy()
    transport = _transport(board)
    streamed, whole = stream_sequence(transport, path, x)
    print(f"{recipe.name} on {board.name}: one sample per line through `lnnvm stream`, state kept in the VM")
    print(f"{'step':>4}  {'input':>10}  {'streamed':>11}  {'whole call':>11}  {'PyTorch':>11}")
    for t in range(len(x)):
        print(f"{t:>4}  {x[t, 0]:>10.5f}  {streamed[t, 0]:>11.6f}  {whole[t, 0]:>11.6f}  {reference[t, 0]:>11.6f}")
    gap = float(np.max(np.abs(streamed - whole)))
    err = float(np.max(np.abs(streamed.astype(np.float64) - reference)))
    print(f"streamed vs whole-sequence call: max |diff| {gap:.3e}; vs PyTorch: max |err| {err:.3e} "
          f"(tolerance {recipe.tolerances.float32_max_abs_err:.0e})")
    if err > recipe.tolerances.float32_max_abs_err:
        raise StreamError(f"the streamed outputs differ from PyTorch by {err:.3e}")
    return gap


def bench_step(model: str, quick: bool = False) -> dict:
    """The engines on the float32 file, and the C VM on it and on the int8 and float16 files (compiled when
    missing)."""
    from . import bench, quantize

    recipe = recipes.load(model)
    host = config.load_target("host")
    result = build(host, echo=lambda _m: None)
    net = load_checkpoint(recipe, model_dir(recipe.name))
    files = {"float32": _compiled(recipe)}
    for scheme in quantize.SCHEMES:
        if not model_file(recipe.name, scheme).is_file():
            compile_step(model, scheme)
        files[scheme] = model_file(recipe.name, scheme)
    report = bench.bench(recipe, net, files, result.runner, result.library, quick=quick)
    print(bench.table(report))
    print(f"wrote {model_dir(recipe.name).parent / 'bench.json'}")
    return report


def quantize_check_step(model: str, quant: str | None = None) -> dict:
    """The gate: quantized vs float PyTorch on the held-out set, and the two files' sizes (compiling the
    quantized file, and the float one if missing, so the sizes are of this checkpoint). `quant`: the scheme,
    by default the recipe's."""
    from . import quantize

    recipe = recipes.load(model)
    scheme = quant or _quant_spec(recipe).scheme
    out = model_dir(recipe.name)
    net = load_checkpoint(recipe, out)
    if not model_file(recipe.name).is_file():
        compile_step(model)
    compile_step(model, scheme)
    report = quantize.check(recipe, net, model_file(recipe.name), model_file(recipe.name, scheme), out, scheme)
    print(quantize.table(report))
    print(f"wrote {quantize.report_path(out, scheme)}")
    return report


def status_step(board_name: str | None) -> list[deploy.Outcome]:
    boards = config.resolve(board_name)
    outcomes = deploy.across(boards, deploy.status)
    print(deploy.summary(outcomes, ("deployed", "model", "model_sha256", "vm_version", "target", "deployed_at")))
    return outcomes
