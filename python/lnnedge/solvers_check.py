"""Each torchdiffeq solver the compiler emits, measured: the C VM (host, and a board such as qemu-rpi4) and the
reference VM against torchdiffeq.

An LTC (3 inputs, `hidden` units, tau in [0.5 + e^-1, 0.5 + e]) is compiled per case and run on random inputs;
every figure is the max abs error of the model's output against torchdiffeq's odeint on the same float32 weights.
Beside it: how far torchdiffeq's own float32 result is from the same solver in float64 (the rounding noise a
case carries whatever runs it), and for implicit_adams how many corrector iterations torchdiffeq stopped early
(the compiled program never stops early: see compiler/passes/lower_ode.py).

The adaptive methods (dopri5 ...) are compared with torchdiffeq solving each row alone, as the device does
(lower_ode.lower_adaptive: torchdiffeq's error norm over a whole batch couples its rows); the error against the
module run on the whole batch is reported beside it. Their steps (accepted and rejected) per row: torchdiffeq's
counted in its solver, the device's from its trace (the trips of the solver loop), on STEP_ROWS rows.

    measure(library, board)  ->  build/solvers/errors.json (save)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchdiffeq._impl import fixed_adams, rk_common
from torchdiffeq._impl.solvers import FixedGridODESolver

from . import isa, lnnb
from .artifacts import atomic_write_text
from .compiler import compile_module
from .models.ltc import ADAPTIVE, LTCRegressor
from .paths import BUILD_DIR
from .runtime import CVM

if TYPE_CHECKING:
    from .devices.base import Device

# the grid of the ltc-3in-rk4 recipe, and of ltc-sine
GRID_3IN = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
GRID_SINE = tuple(float(v) for v in torch.linspace(0, 5, 10))
# torchdiffeq's step_size grid from these ends overshoots t[-1] one step early: the output is its linear
# interpolation over that step (found by search; the float32 multiples of the step pass the end)
OVERSHOOT = ((-1.3372257947921753, 1.3436346054077148), 0.20622003078460693)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    grid: tuple[float, ...]
    options: tuple[tuple[str, float], ...] = ()
    hidden: int = 16
    well_conditioned: bool = True  # torchdiffeq's float32 result is within 1e-5 of its float64 one
    rtol: float = 1e-7  # odeint's tolerances (torchdiffeq's defaults): the adaptive methods'
    atol: float = 1e-9

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE


# ≤ 1e-5 is required of the well-conditioned cases. The others are explicit_adams at a high order (up to 11 by
# default): its coefficients alternate in sign and sum in magnitude to ~590 for order 11 (~16 for order 5), so
# each step multiplies a 1-ulp difference in f (a different float32 summation order in a matrix product) by that
# much, and the solver is near its stability limit; torchdiffeq's float32 result is itself that far from float64.
CASES: tuple[Case, ...] = (
    Case("euler", "euler", GRID_3IN),
    Case("midpoint", "midpoint", GRID_3IN),
    Case("rk4", "rk4", GRID_3IN),
    Case("euler step_size 0.35", "euler", (0.0, 3.0), (("step_size", 0.35),)),
    Case("midpoint step_size 0.35", "midpoint", (0.0, 3.0), (("step_size", 0.35),)),
    Case("rk4 step_size 0.35", "rk4", (0.0, 3.0), (("step_size", 0.35),)),
    Case("euler step_size, interpolated end", "euler", OVERSHOOT[0], (("step_size", OVERSHOOT[1]),)),
    Case("rk4 step_size, interpolated end", "rk4", OVERSHOOT[0], (("step_size", OVERSHOOT[1]),)),
    Case("explicit_adams", "explicit_adams", GRID_3IN),
    Case("explicit_adams max_order 5 step_size 0.35", "explicit_adams", (0.0, 3.0),
         (("max_order", 5), ("step_size", 0.35))),
    Case("explicit_adams step_size 0.35 (order up to 9)", "explicit_adams", (0.0, 3.0), (("step_size", 0.35),),
         well_conditioned=False),
    Case("explicit_adams ltc-sine grid (order up to 9)", "explicit_adams", GRID_SINE, hidden=64,
         well_conditioned=False),
    Case("implicit_adams", "implicit_adams", GRID_3IN),
    Case("implicit_adams ltc-sine grid", "implicit_adams", GRID_SINE, hidden=64),
    Case("implicit_adams step_size 0.35", "implicit_adams", (0.0, 3.0), (("step_size", 0.35),)),
    Case("implicit_adams max_iters 2 step_size 0.6", "implicit_adams", (0.0, 3.0),
         (("max_iters", 2), ("step_size", 0.6))),
)
# the adaptive methods at rtol 1e-5, atol 1e-6 over the ltc-sine interval, and dopri5 at torchdiffeq's defaults
ADAPTIVE_CASES: tuple[Case, ...] = (
    *(Case(f"{m} rtol 1e-5 atol 1e-6", m, (0.0, 5.0), rtol=1e-5, atol=1e-6) for m in ADAPTIVE),
    Case("dopri5 default tolerances (rtol 1e-7, atol 1e-9)", "dopri5", (0.0, 5.0)),
    Case("dopri5 ltc-sine grid, hidden 64", "dopri5", GRID_SINE, hidden=64, rtol=1e-5, atol=1e-6),
)
STEP_ROWS = 16  # rows whose steps are counted on the device (one trace each)
# a fine grid, where torchdiffeq's corrector does converge early on some steps (measured, not required)
FINE = Case("implicit_adams fine grid (early stops)", "implicit_adams", tuple(float(v) for v in
                                                                            torch.linspace(0, 3, 100)))


@dataclass(frozen=True)
class Result:
    name: str
    method: str
    options: dict
    steps: int                 # torchdiffeq's steps (its grid)
    host_max_abs_err: float    # the C VM (host build) vs torchdiffeq
    refvm_max_abs_err: float   # the reference VM vs torchdiffeq
    torchdiffeq_f32_vs_f64: float  # torchdiffeq's float32 result vs its float64 one
    host_vs_f64: float             # the C VM vs torchdiffeq in float64
    early_stops: int           # implicit_adams: corrector loops torchdiffeq ended early
    well_conditioned: bool
    # adaptive methods (0 / -1 for the fixed-grid ones, whose steps are the grid's)
    batched_max_abs_err: float = 0.0  # the host C VM vs torchdiffeq stepping the whole batch together
    device_steps: float = 0.0         # mean steps per row on the device (STEP_ROWS rows), accepted and rejected
    torchdiffeq_steps: float = 0.0    # torchdiffeq's on the same rows, each solved alone
    rows_with_other_steps: int = 0    # of those rows, how many took a different number of steps
    board: str = "host"
    board_max_abs_err: float = -1.0   # the C VM on `board` (another build of it) vs torchdiffeq; -1: not run


def model(case: Case, seed: int = 1) -> LTCRegressor:
    torch.manual_seed(seed)
    t = torch.tensor(case.grid, dtype=torch.float32)
    m = LTCRegressor(3, case.hidden, 1, t, case.method, tau_min=0.5, options=dict(case.options), rtol=case.rtol,
                     atol=case.atol)
    with torch.no_grad():
        m.ode.func.log_tau.uniform_(-1, 1)
    return m.eval()


@contextlib.contextmanager
def _counting_early_stops() -> Iterator[list[int]]:
    """Counts torchdiffeq's converged corrector checks (each ends a corrector loop early) while active."""
    count = [0]
    original = fixed_adams.AdamsBashforthMoulton._has_converged

    def has_converged(self, y0: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
        result = original(self, y0, y1)
        count[0] += bool(result)
        return result

    fixed_adams.AdamsBashforthMoulton._has_converged = has_converged  # type: ignore[method-assign]
    try:
        yield count
    finally:
        fixed_adams.AdamsBashforthMoulton._has_converged = original  # type: ignore[method-assign]


def _steps(case: Case) -> int:
    """The steps torchdiffeq takes up to t[-1] (its grid with step_size, else t)."""
    t = torch.tensor(case.grid, dtype=torch.float32)
    step = dict(case.options).get("step_size")
    grid = t if step is None else FixedGridODESolver._grid_constructor_from_step_size(step)(None, None, t)
    return int(torch.nonzero(grid[1:] >= t[-1])[0]) + 1


@contextlib.contextmanager
def _counting_steps() -> Iterator[list[int]]:
    """Counts torchdiffeq's adaptive steps (accepted and rejected) while active."""
    count = [0]
    original = rk_common.RKAdaptiveStepsizeODESolver._adaptive_step

    def step(self, rk_state):  # noqa: ANN001, ANN202 (torchdiffeq's signature)
        count[0] += 1
        return original(self, rk_state)

    rk_common.RKAdaptiveStepsizeODESolver._adaptive_step = step  # type: ignore[method-assign]
    try:
        yield count
    finally:
        rk_common.RKAdaptiveStepsizeODESolver._adaptive_step = original  # type: ignore[method-assign]


def _per_row(m: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """torchdiffeq on each row alone: the outputs and each row's steps."""
    outs, steps = [], []
    with torch.no_grad():
        for row in x:
            with _counting_steps() as count:
                outs.append(m(torch.from_numpy(row[None])).numpy())
            steps.append(count[0])
    return np.concatenate(outs), steps


def loop_pc(data: bytes) -> int:
    """The first compute instruction inside the program's LOOPW (it runs once per trip)."""
    program = lnnb.read(data)
    names = isa.opcode_by_code()
    inside = False
    for pc, word in enumerate(program.code):
        name = names[isa.decode(word)[0]].name
        if inside and name not in ("PUSH", "DROP"):
            return pc
        inside = inside or name == "LOOPW"
    raise ValueError("the program has no LOOPW")


def device_steps(device: Device, path: Path, x: np.ndarray) -> list[int]:
    """The trips of the solver loop for each row of x run alone on the device (from its trace)."""
    pc = loop_pc(path.read_bytes())
    return [sum(1 for record in device.trace(path, [row[None]]) if record[0] == pc) for row in x]


def run_case(case: Case, points: int, library: Path | None, seed: int = 0, host: Device | None = None,
             board: Device | None = None, step_rows: int = STEP_ROWS) -> Result:
    """One case; `host` (a local Device, to count the adaptive steps of `step_rows` rows) and `board` (run there
    too) are optional."""
    torch.set_num_threads(1)
    m = model(case)
    x = np.random.default_rng(seed).uniform(-1, 7, (points, 3)).astype(np.float32)
    with torch.no_grad(), _counting_early_stops() as stops:
        batched = m(torch.from_numpy(x)).numpy()
    expected, steps = _per_row(m, x) if case.adaptive else (batched, [])
    with torch.no_grad():
        exact = copy.deepcopy(m).double()(torch.from_numpy(x).double()).numpy()
    compiled = compile_module(m, (torch.zeros(1, 3),))
    device = CVM(compiled.data, max_batch=points, library=library).run([x])[0].reshape(expected.shape)
    reference = compiled.run(x)[0].reshape(expected.shape)
    result = Result(case.name, case.method, dict(case.options), _steps(case) if not case.adaptive else 0,
                    float(np.max(np.abs(device - expected))), float(np.max(np.abs(reference - expected))),
                    float(np.max(np.abs(expected - exact))), float(np.max(np.abs(device - exact))), stops[0],
                    case.well_conditioned, batched_max_abs_err=float(np.max(np.abs(device - batched))))
    with tempfile.TemporaryDirectory() as folder:
        path = compiled.save(Path(folder) / "model.lnnb")
        if case.adaptive and host is not None:
            counted = device_steps(host, path, x[:step_rows])
            result = dataclasses.replace(
                result, device_steps=float(np.mean(counted)), torchdiffeq_steps=float(np.mean(steps[:step_rows])),
                rows_with_other_steps=sum(a != b for a, b in zip(counted, steps)))
        if board is not None:
            out = board.run(path, [x], batch=points).outputs[0].reshape(expected.shape)
            result = dataclasses.replace(result, board=board.name,
                                         board_max_abs_err=float(np.max(np.abs(out - expected))))
    return result


def measure(library: Path | None = None, points: int = 256,
            cases: tuple[Case, ...] = (*CASES, FINE, *ADAPTIVE_CASES), host: Device | None = None,
            board: Device | None = None) -> list[Result]:
    """Every case on `points` random inputs (the figures of the README's solver table)."""
    return [run_case(case, points, library, host=host, board=board) for case in cases]


def save(results: list[Result], path: Path | None = None) -> Path:
    path = path or BUILD_DIR / "solvers" / "errors.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps([asdict(r) for r in results], indent=1) + "\n")
    return path


def measure_on_boards(board: str = "qemu-rpi4", points: int = 256) -> Path:
    """`invoke solvers`: every case on the host (library and runner, which counts the adaptive steps) and on
    `board`, saved to build/solvers/errors.json."""
    from . import config
    from .build import output_dir
    from .devices import open_device, prepare

    host_board, other = config.board("host"), config.board(board)
    for b in (host_board, other):
        prepare(b)
    library = output_dir(host_board.target) / "liblnnvm.so"
    with open_device(host_board) as host, open_device(other) as device:
        return save(measure(library, points, host=host, board=device))
