"""Lower each `ode` node to bounded loops that run one solver step per iteration.

The adaptive methods (dopri5, bosh3, adaptive_heun, fehlberg2, dopri8) become one LOOPW whose trips are
torchdiffeq's attempted steps: see lower_adaptive. The rest of this docstring is about the fixed-grid methods.

The dynamics graph is inlined once per evaluation of f in a step (1 for euler, 2 for midpoint, 4 for rk4, 1 + the
corrector iterations for implicit_adams) into a loop body, so the code does not grow with the number of time
steps. A step's coefficients (dt, and what is computed from it) are rows of step tables computed here in float32
exactly as torchdiffeq does (dt = t[i+1] - t[i]), so non-uniform grids work too.

The grid is the ODEBlock's t, or with options={"step_size": s} the grid torchdiffeq's own constructor builds
(t[0], t[0] + s, ..., its last point replaced by t[-1]: a partial last step). The block returns solution[-1],
which torchdiffeq assigns in the first step that reaches t[-1] (t1 >= t[-1]); the grid stops there, and when that
step ends past t[-1] (the float multiples of s can overshoot) the output is torchdiffeq's linear interpolation
y0 + slope * (y1 - y0) over that step, with slope = (t[-1] - t0) / (t1 - t0) computed here in float32.

The arithmetic follows torchdiffeq 0.2's fixed-grid solvers operation by operation, so the device rounds like
PyTorch (its "rk4" is the 3/8 rule, rk4_alt_step_func):
  euler     y1 = y0 + dt * f(y0)
  midpoint  y1 = y0 + dt * f(y0 + f(y0) * (0.5 * dt))
  rk4       k2 = f(y0 + dt * k1 * 1/3); k3 = f(y0 + dt * (k2 - k1 * 1/3));
            k4 = f(y0 + dt * (k1 - k2 + k3)); y1 = y0 + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
  explicit_adams (torchdiffeq's AdamsBashforth): it keeps f at every grid point reached, newest first, at most
            max_order - 1 (default 11) of them; step n uses the k = min(n + 1, max_order - 1) it has, as rk4
            while k < 3, else  y1 = y0 + sum_i float32(dt * b[k][i]) * f_i  summed newest first in float32
            (the coefficients are float64 in torchdiffeq; each product rounds the coefficient to float32 first).
            The loop state carries the history; each step's coefficients are step-table rows, zero beyond its
            order, so one body serves every order (a zero term adds exactly nothing).
  implicit_adams (AdamsBashforthMoulton): the same predictor, then max_iters (default 4) corrector iterations
            dy = float32(dt * m[k+1][0]) * f(y0 + dy) + dt * sum_i float32(m[k+1][i+1]) * f_i.
            torchdiffeq stops iterating once an iterate changes by less than atol + rtol |dy| (1e-9, 1e-7 by
            default) everywhere in the batch, and if none did it drops its oldest f, so the order stays 3. The
            program runs every iteration and drops the oldest f every step: exactly torchdiffeq's computation
            whenever no step converges early. On the kit's grids none does (tests/test_solvers.py measures it);
            on fine grids some do, torchdiffeq then switches to higher orders, and the device keeps order 3 (the
            difference is a discretisation error, measured in tests/test_solvers.py). The early stop cannot be
            reproduced per sample: its test is a max over the whole batch, so a row's result depends on the rows
            beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torchdiffeq._impl.adaptive_heun import AdaptiveHeunSolver
from torchdiffeq._impl.bosh3 import Bosh3Solver
from torchdiffeq._impl.dopri5 import Dopri5Solver
from torchdiffeq._impl.dopri8 import Dopri8Solver
from torchdiffeq._impl.fehlberg2 import Fehlberg2
from torchdiffeq._impl.fixed_adams import _BASHFORTH_DIVISOR, _MAX_ITERS, _MAX_ORDER, _MOULTON_DIVISOR
from torchdiffeq._impl.solvers import FixedGridODESolver

from ...models.ltc import ADAPTIVE, check_solver
from ..ir import CompileError, Graph, Node, TensorType
from .base import Pass, PassResult

_LOOP_LIMIT = 0xFFFF  # LOOP n: n is 16 bits
_ADAMS_FIRST = 3      # torchdiffeq's Adams steps need this many f values; with fewer, the step is rk4


class _BodyBuilder:
    """Appends nodes to one loop body with fresh names under `prefix`; the dynamics' constants are shared by
    every loop of one ode node (under `shared`)."""

    def __init__(self, prefix: str, shared: str, dynamics: Graph, args: tuple[str, ...], source: str):
        self.prefix = prefix
        self.shared = shared
        self.dynamics = dynamics
        self.args = args
        self.source = source
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.tables: dict[str, np.ndarray] = {}
        self.counter = 0
        self.stages = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{self.prefix}/{hint}{self.counter}"

    def scalar(self, name: str, value: float) -> str:
        full = f"{self.shared}/{name}"
        self.constants[full] = np.array(value, dtype=np.float32)
        return full

    def table(self, name: str, rows: np.ndarray) -> str:
        full = f"{self.prefix}/{name}"
        self.tables[full] = np.asarray(rows, dtype=np.float32)
        return full

    def op(self, op: str, *inputs: str) -> str:
        out = self.fresh(op)
        self.nodes.append(Node(op, tuple(inputs), (out,), (), self.source))
        return out

    def f(self, h: str) -> str:
        """Inline the dynamics with state h; returns the name of f(h)."""
        self.stages += 1
        stage = f"k{self.stages}"
        d = self.dynamics
        mapping = {d.inputs[1]: h}
        mapping.update(dict(zip(d.inputs[2:], self.args)))
        for name, value in d.constants.items():
            mapping[name] = f"{self.shared}/{name}"
            self.constants[mapping[name]] = value

        def rename(name: str) -> str:
            return mapping.get(name, f"{self.prefix}/{stage}/{name}")

        for node in d.nodes:
            outs = tuple(rename(o) for o in node.outputs)
            for old, new in zip(node.outputs, outs):
                mapping[old] = new
                if old in d.types:
                    self.types[new] = d.types[old]
            self.nodes.append(replace(node, inputs=tuple(rename(i) for i in node.inputs), outputs=outs))
        return rename(d.outputs[0])

    def dot(self, coefficients: list[str], values: list[str]) -> str:
        """sum_i c_i * v_i, left to right in float32 (torchdiffeq's _dot_product)."""
        total = self.op("mul", coefficients[0], values[0])
        for c, v in zip(coefficients[1:], values[1:]):
            total = self.op("add", total, self.op("mul", c, v))
        return total


@dataclass(frozen=True)
class _Segment:
    """Consecutive steps [first, first + count) emitted as one loop with one body."""

    kind: str   # euler | midpoint | rk4 | bashforth | moulton
    first: int
    count: int


def _time_grid(node: Node, step_size: object) -> tuple[np.ndarray, np.float32 | None]:
    """The grid torchdiffeq steps over up to the step that reaches t[-1], and the interpolation slope of that
    step when it ends past t[-1] (else None)."""
    t = np.asarray(node.attr("grid"), dtype=np.float32)
    if t.ndim != 1 or len(t) < 2 or not np.all(np.diff(t) > 0):
        raise CompileError(f"ode: the time grid must be increasing with at least 2 points, got {t}", node)
    tt = torch.from_numpy(t)
    if step_size is None:
        grid = tt
    else:
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not (
                math.isfinite(step_size) and step_size > 0):
            raise CompileError(f"ode: option step_size must be a positive number, got {step_size!r}", node)
        if (float(t[-1]) - float(t[0])) / step_size > _LOOP_LIMIT:
            raise CompileError(f"ode: step_size {step_size:g} over [{t[0]:g}, {t[-1]:g}] takes more than "
                               f"{_LOOP_LIMIT} steps, the VM's loop limit", node)
        grid = FixedGridODESolver._grid_constructor_from_step_size(step_size)(None, None, tt)
    reached = int(torch.nonzero(grid[1:] >= tt[-1])[0]) + 1  # torchdiffeq's `while t1 >= t[j]`, j = last
    grid = grid[:reached + 1]
    if not bool(torch.all(grid[1:] > grid[:-1])):
        raise CompileError(f"ode: step_size {step_size!r} gives the grid {grid.tolist()}, with a step of zero "
                           "or negative length", node)
    if grid[-1] == tt[-1]:
        return grid.numpy(), None
    slope = (tt[-1] - grid[-2]) / (grid[-1] - grid[-2])  # float32, as torchdiffeq's _linear_interp
    return grid.numpy(), np.float32(slope.item())


def _int_option(node: Node, options: dict, name: str, default: int, low: int, high: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CompileError(f"ode: option {name} must be an integer in [{low}, {high}], got {value!r}", node)
    return value


def _steps(node: Node, method: str, options: dict, steps: int) -> tuple[list[str], list[int]]:
    """Each step's kind and (Adams steps) order, as torchdiffeq's solver takes them."""
    if method not in ("explicit_adams", "implicit_adams"):
        return [method] * steps, [0] * steps
    # torchdiffeq keeps at most max_order - 1 values of f (its deque's maxlen); max_order 1 would keep none and
    # fail on its first step, above 12 it asserts
    kept = _int_option(node, options, "max_order", _MAX_ORDER, 2, _MAX_ORDER) - 1
    kinds, orders = [], []
    for n in range(steps):
        # f values held at step n: one per grid point reached, capped; the implicit solver (never converging
        # early, see the module docstring) drops its oldest after each Adams step, so it holds at most 3
        held = min(n + 1, kept, _ADAMS_FIRST if method == "implicit_adams" else kept)
        kinds.append("rk4" if held < _ADAMS_FIRST else "bashforth" if method == "explicit_adams" else "moulton")
        orders.append(held)
    return kinds, orders


def _segments(kinds: list[str], last_alone: bool) -> list[_Segment]:
    """Runs of equal kinds; the last step on its own when the output interpolates over it."""
    segments: list[_Segment] = []
    for n, kind in enumerate(kinds):
        alone = last_alone and n == len(kinds) - 1
        if segments and segments[-1].kind == kind and not alone:
            segments[-1] = replace(segments[-1], count=segments[-1].count + 1)
        else:
            segments.append(_Segment(kind, n, 1))
    return segments


def _coefficients(dt: np.ndarray, order: int, divisor: list[torch.Tensor], slot: int) -> np.float32:
    """float32(dt * c[order][slot]) as torchdiffeq computes it (dt float32 promoted to the float64 coefficients),
    0 for a slot the order does not use."""
    if slot >= order:
        return np.float32(0.0)
    return np.float32((torch.tensor(dt, dtype=torch.float32) * divisor[order][slot]).to(torch.float32).item())


def _body(b: _BodyBuilder, seg: _Segment, y: str, history: list[str], dts: np.ndarray, orders: list[int],
          max_iters: int) -> tuple[str, str]:
    """One step of `seg.kind` from y (history: f at the previous grid points, newest first); (y1, f(y))."""
    rows = slice(seg.first, seg.first + seg.count)
    dt = b.table("dt", dts[rows])
    if seg.kind == "euler":
        k1 = b.f(y)
        return b.op("add", y, b.op("mul", dt, k1)), k1
    if seg.kind == "midpoint":
        half_dt = b.table("half_dt", (np.float32(0.5) * dts[rows]).astype(np.float32))
        k1 = b.f(y)
        y_mid = b.op("add", y, b.op("mul", k1, half_dt))
        return b.op("add", y, b.op("mul", dt, b.f(y_mid))), k1
    if seg.kind == "rk4":
        third = b.scalar("one_third", 1.0 / 3.0)
        three = b.scalar("three", 3.0)
        eighth = b.scalar("eighth", 0.125)
        k1 = b.f(y)
        k2 = b.f(b.op("add", y, b.op("mul", b.op("mul", dt, k1), third)))
        k3 = b.f(b.op("add", y, b.op("mul", dt, b.op("sub", k2, b.op("mul", k1, third)))))
        k4 = b.f(b.op("add", y, b.op("mul", dt, b.op("add", b.op("sub", k1, k2), k3))))
        total = b.op("add", b.op("add", k1, b.op("mul", three, b.op("add", k2, k3))), k4)
        return b.op("add", y, b.op("mul", b.op("mul", total, dt), eighth)), k1
    # Adams: the slots an order of this segment uses (a slot no step uses is left out: it would add 0)
    f0 = b.f(y)
    values = [f0, *history][:max(orders[rows])]
    bash = [b.table(f"bashforth{i}", [_coefficients(d, k, _BASHFORTH_DIVISOR, i) for d, k in
                                      zip(dts[rows], orders[rows])]) for i in range(len(values))]
    dy = b.dot(bash, values)
    if seg.kind == "moulton":
        order = orders[seg.first]  # the implicit solver's order is the same on every Adams step (3)
        moulton = _MOULTON_DIVISOR[order + 1]
        # float64 coefficients times float32 values: torch rounds the coefficient to float32 first
        weights = [b.scalar(f"moulton{order}_{i + 1}", float(np.float32(moulton[i + 1].item())))
                   for i in range(len(values))]
        delta = b.op("mul", dt, b.dot(weights, values))
        lead = b.table("moulton0", [np.float32((torch.tensor(d) * moulton[0]).to(torch.float32).item())
                                    for d in dts[rows]])
        for _ in range(max_iters):
            dy = b.op("add", b.op("mul", lead, b.f(b.op("add", y, dy))), delta)
    return b.op("add", y, dy), f0


def lower(node: Node, h0_type: TensorType | None = None
          ) -> tuple[list[Node], dict[str, np.ndarray], dict[str, TensorType]]:
    """The loops (and interpolation) replacing one ode node, and the constants and value types they need in the
    enclosing graph."""
    method = node.attr("method")
    options = dict(node.attr("options") or ())
    try:
        check_solver(method, options)
    except ValueError as exc:
        raise CompileError(f"ode: {exc}", node) from None
    if method in ADAPTIVE:
        return lower_adaptive(node, method, options, h0_type)
    grid, slope = _time_grid(node, options.get("step_size"))
    dts = (grid[1:] - grid[:-1]).astype(np.float32)
    if len(dts) > _LOOP_LIMIT:
        raise CompileError(f"ode: {len(dts)} steps exceed the VM's loop limit of {_LOOP_LIMIT}", node)
    max_iters = _int_option(node, options, "max_iters", _MAX_ITERS, 1, 64) if method == "implicit_adams" else 0
    kinds, orders = _steps(node, method, options, len(dts))
    # Adams: the loop state carries the f values an Adams step reads besides its own
    slots = max(orders) - 1 if any(k in ("bashforth", "moulton") for k in kinds) else 0
    h0, args = node.inputs[0], node.inputs[1:]
    out = node.output
    nodes: list[Node] = []
    constants: dict[str, np.ndarray] = {}
    # the history slots start as copies of h0: a slot is read only once it holds an f (its coefficient is 0
    # before), and 0 * a finite value adds nothing
    state = [h0] * (1 + slots)
    before_last = h0
    segments = _segments(kinds, slope is not None)
    for index, seg in enumerate(segments):
        prefix = f"{out}/{index}" if len(segments) > 1 else out
        b = _BodyBuilder(prefix, out, node.attr("dynamics"), args, node.source)
        # the state, oldest history slot first: the loop's end-of-iteration copies run in this order, so
        # each slot takes the next newer one before that one is overwritten
        y = f"{prefix}/h"
        history = [f"{prefix}/f{i}" for i in range(1, slots + 1)]  # newest first
        y1, f0 = _body(b, seg, y, history, dts, orders, max_iters)
        last = index == len(segments) - 1
        final = out if last and slope is None else f"{prefix}/y"
        inputs = (y, *reversed(history))
        outputs = (y1, *reversed([f0, *history][:slots]))  # each slot takes the next newer f
        finals = (final, *(f"{prefix}/f{i}_out" for i in range(slots, 0, -1)))
        body = Graph(inputs=inputs, outputs=outputs, nodes=tuple(b.nodes), constants={}, types=b.types,
                     step_tables=b.tables)
        nodes.append(Node("loop", tuple(state), finals, (("count", seg.count), ("body", body), ("method", method)),
                          node.source))
        constants.update(b.constants)
        before_last, state = state[0], list(finals)
    if slope is not None:  # torchdiffeq's _linear_interp: y0 + slope * (y1 - y0)
        s = f"{out}/slope"
        constants[s] = np.array(slope, dtype=np.float32)
        diff, scaled = f"{out}/interp_diff", f"{out}/interp_scaled"
        nodes += [Node("sub", (state[0], before_last), (diff,), (), node.source),
                  Node("mul", (s, diff), (scaled,), (), node.source),
                  Node("add", (before_last, scaled), (out,), (), node.source)]
    return nodes, constants, {}


# ---- adaptive methods ------------------------------------------------------------------------------------------

DEFAULT_MAX_STEPS = 1000  # the adaptive loop's trip count unless options["max_num_steps"] says otherwise
_ACCUMULATORS = 4  # torch.sum over a row of <= 5 products adds them as 4 interleaved partial sums (measured)
_SOLVER_CLASSES = {"dopri5": Dopri5Solver, "bosh3": Bosh3Solver, "adaptive_heun": AdaptiveHeunSolver,
                   "fehlberg2": Fehlberg2, "dopri8": Dopri8Solver}


def _float_option(node: Node, options: dict, name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise CompileError(f"ode: option {name} must be a positive number, got {value!r}", node)
    return float(value)


def _tolerance(node: Node, name: str) -> float:
    value = node.attr(name, 1e-7 if name == "rtol" else 1e-9)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise CompileError(f"ode: {name} must be a number >= 0 (one for the whole state), got {value!r}", node)
    return float(value)


class _Adaptive:
    """Builds torchdiffeq's RKAdaptiveStepsizeODESolver (rk_common.py, misc.py, interp.py) operation by operation
    in float32, per batch row: the state's values in the precision torchdiffeq uses for them, its time values
    (t, dt, the controller's factor; float64 in torchdiffeq) in float32 too, the VM having no float64. The
    stages' times (tableau alpha) are not needed: the dynamics do not read t (autonomous, as for every method)."""

    def __init__(self, b: _BodyBuilder, method: str):
        solver = _SOLVER_CLASSES[method]
        tableau = solver.tableau
        f32 = lambda v: [np.float32(x) for x in v.to(torch.float32).tolist()]  # noqa: E731 (torchdiffeq's .to)
        self.beta = [f32(row) for row in tableau.beta]
        self.c_sol = f32(tableau.c_sol)
        self.c_error = f32(tableau.c_error)
        self.mid = f32(solver.mid)
        # torchdiffeq skips the y1 sum when the last stage is the solution (first same as last)
        self.fsal = bool(tableau.c_sol[-1] == 0 and (tableau.c_sol[:-1] == tableau.beta[-1]).all())
        self.order = solver.order
        self.b = b

    def weighted(self, y0: str, ks: list[str], coefficients: list[np.float32], dt: str) -> str:
        """y0 + torch.sum(k * (c * dt), dim=-1) (y0 None: the sum alone): each product k_j * float32(c_j * dt),
        summed in _ACCUMULATORS interleaved partial sums; a zero coefficient's term is left out (it adds 0)."""
        b = self.b
        partial: list[str | None] = [None] * _ACCUMULATORS
        for j, (k, c) in enumerate(zip(ks, coefficients)):
            if c == 0:
                continue
            term = b.op("mul", k, b.op("mul", b.scalar(f"c{float(c)!r}", float(c)), dt))
            slot = j % _ACCUMULATORS
            partial[slot] = term if partial[slot] is None else b.op("add", partial[slot], term)
        sums = [p for p in partial if p is not None]
        total = sums[0]
        for p in sums[1:]:
            total = b.op("add", total, p)
        return total if y0 is None else b.op("add", y0, total)

    def rms(self, x: str) -> str:
        """torchdiffeq's _rms_norm(x) per batch row: sqrt(mean(|x|^2)) over the row's elements."""
        b = self.b
        a = b.op("abs", x)
        mean = b.fresh("mean")
        b.nodes.append(Node("reduce_mean", (b.op("mul", a, a),), (mean,), (("axis", -1), ("keepdim", True)),
                            b.source))
        return b.op("sqrt", mean)

    def step(self, y0: str, f0: str, dt: str) -> tuple[str, str, str, list[str]]:
        """_runge_kutta_step: (y1, f1, y1_error, k)."""
        b = self.b
        ks = [f0]
        yi = y0
        for beta_i in self.beta:
            yi = self.weighted(y0, ks, beta_i, dt)
            ks.append(b.f(yi))
        y1 = yi if self.fsal else self.weighted(y0, ks, self.c_sol, dt)
        return y1, ks[-1], self.weighted(None, ks, self.c_error, dt), ks

    def error_ratio(self, error: str, rtol: str, atol: str, y0: str, y1: str) -> str:
        """_compute_error_ratio: rms(error / (atol + rtol * max(|y0|, |y1|)))."""
        b = self.b
        tol = b.op("add", atol, b.op("mul", rtol, b.op("max", b.op("abs", y0), b.op("abs", y1))))
        return self.rms(b.op("div", error, tol))

    def interpolate(self, y0: str, y1: str, ks: list[str], dt: str, x: str) -> str:
        """_interp_fit (the polynomial through y0, y_mid, y1 with slopes f0, f1) evaluated at x in [0, 1]."""
        b = self.b
        c = lambda v: b.scalar(f"k{v}", float(v))  # noqa: E731
        f0, f1 = ks[0], ks[-1]
        y_mid = self.weighted(y0, ks, self.mid, dt)
        a = b.op("add", b.op("sub", b.op("mul", b.op("mul", c(2), dt), b.op("sub", f1, f0)),
                             b.op("mul", c(8), b.op("add", y1, y0))), b.op("mul", c(16), y_mid))
        bb = b.op("sub", b.op("add", b.op("add", b.op("mul", dt, b.op("sub", b.op("mul", c(5), f0),
                                                                       b.op("mul", c(3), f1))),
                                          b.op("mul", c(18), y0)), b.op("mul", c(14), y1)),
                  b.op("mul", c(32), y_mid))
        cc = b.op("add", b.op("sub", b.op("sub", b.op("mul", dt, b.op("sub", f1, b.op("mul", c(4), f0))),
                                          b.op("mul", c(11), y0)), b.op("mul", c(5), y1)),
                  b.op("mul", c(16), y_mid))
        d = b.op("mul", dt, f0)
        total = b.op("add", y0, b.op("mul", x, d))
        power = x
        for coefficient in (cc, bb, a):
            power = b.op("mul", power, x)
            total = b.op("add", total, b.op("mul", power, coefficient))
        return total


def _first_step(solver: _Adaptive, y0: str, f0: str, rtol: str, atol: str) -> str:
    """_select_initial_step (Hairer, Norsett, Wanner II.4) per batch row, in float32 as torchdiffeq computes it."""
    b = solver.b
    c = lambda name, v: b.scalar(name, v)  # noqa: E731
    scale = b.op("add", atol, b.op("mul", b.op("abs", y0), rtol))
    d0 = solver.rms(b.op("div", y0, scale))
    d1 = solver.rms(b.op("div", f0, scale))
    small = b.op("max", b.op("lt", d0, c("1e-5", 1e-5)), b.op("lt", d1, c("1e-5", 1e-5)))
    h0 = b.op("where", small, c("1e-6", 1e-6), b.op("div", b.op("mul", c("0.01", 0.01), d0), d1))
    f1 = b.f(b.op("add", y0, b.op("mul", h0, f0)))
    d2 = b.op("abs", b.op("div", solver.rms(b.op("div", b.op("sub", f1, f0), scale)), h0))
    flat = b.op("min", b.op("le", d1, c("1e-15", 1e-15)), b.op("le", d2, c("1e-15", 1e-15)))
    # builtin max(d1, d2) is d1 unless d2 > d1; 0.01 / x is torch's x.reciprocal() * 0.01
    largest = b.op("max", d1, d2)
    h1 = b.op("where", flat, b.op("max", c("1e-6", 1e-6), b.op("mul", h0, c("1e-3", 1e-3))),
              b.op("pow", b.op("mul", b.op("div", c("1", 1.0), largest), c("0.01", 0.01)),
                   c(f"1/{solver.order}", 1.0 / float(solver.order))))
    return b.op("min", b.op("mul", c("100", 100.0), h0), h1)


def lower_adaptive(node: Node, method: str, options: dict, h0_type: TensorType | None
                   ) -> tuple[list[Node], dict[str, np.ndarray], dict[str, TensorType]]:
    """An adaptive solve: the first step outside, then one LOOPW whose trips are torchdiffeq's steps.

    Batch rows take different step sequences. torchdiffeq steps a whole batch together, its error norm taken
    over every row at once, so a row's result depends on the rows beside it; the device solves each row as
    torchdiffeq solves that row alone (a batch of 1), which is what a deployed model serving one sample sees.
    Every value of the controller (t, dt, the error ratio, the end flag) is a per-row (batch, 1) tensor and
    every update a select by the row's flags, so one loop serves the batch: a row that has finished keeps its
    values (selects, not arithmetic, so a finished row's overflowing trial step cannot leak in), and the loop
    ends when every row has (UNTIL over the flags); a row still running after max_num_steps trips ends the run
    with E_STEPS. (Running the loop per row through lnn_run_rows would need no masks but would force single-row
    runs on every caller; the masks keep lnn_run's batch contract.)

    The loop state: y and f(y) at the row's current time t, the next step's dt, the output, and last the end
    flag that UNTIL reads. torchdiffeq's solution[-1] is its polynomial interpolation at t[-1] within the step
    that reaches it (its steps are not shortened to land on t[-1]), taken here when that step is accepted.
    """
    grid = np.asarray(node.attr("grid"), dtype=np.float32)
    if grid.ndim != 1 or len(grid) < 2 or not np.all(np.diff(grid) > 0):
        raise CompileError(f"ode: the time grid must be increasing with at least 2 points, got {grid}", node)
    if h0_type is None or len(h0_type.shape) != 2:
        raise CompileError(f"ode: {method} needs a state of shape (batch, features), got {h0_type}", node)
    steps = _int_option(node, options, "max_num_steps", DEFAULT_MAX_STEPS, 1, _LOOP_LIMIT)
    out = node.output
    h0, args = node.inputs[0], node.inputs[1:]
    row = TensorType((h0_type.shape[0], 1), h0_type.batched)

    init = _BodyBuilder(f"{out}/init", out, node.attr("dynamics"), args, node.source)
    solver = _Adaptive(init, method)
    rtol = init.scalar("rtol", _tolerance(node, "rtol"))
    atol = init.scalar("atol", _tolerance(node, "atol"))
    f0 = init.f(h0)
    zero_row = f"{out}/init/zero_row"
    init.nodes.append(Node("zeros", (), (zero_row,), (), node.source))
    init.types[zero_row] = row
    if "first_step" in options:
        dt0 = init.op("add", zero_row, init.scalar("first_step", _float_option(node, options, "first_step", 1.0)))
    else:
        dt0 = _first_step(solver, h0, f0, rtol, atol)
    t_start = init.op("add", zero_row, init.scalar("t0", float(grid[0])))

    b = _BodyBuilder(out, out, node.attr("dynamics"), args, node.source)
    solver.b = b
    y, f, t, dt, result, done = (f"{out}/{name}" for name in ("y", "f", "t", "dt", "out", "done"))
    t_end = b.scalar("t_end", float(grid[-1]))
    one = b.scalar("1", 1.0)
    y1, f1, error, ks = solver.step(y, f, dt)
    t1 = b.op("add", t, dt)
    ratio = solver.error_ratio(error, b.scalar("rtol", _tolerance(node, "rtol")),
                               b.scalar("atol", _tolerance(node, "atol")), y, y1)
    running = b.op("sub", one, done)
    accepted = b.op("mul", b.op("le", ratio, one), running)  # products of 0/1 flags are exact
    # _optimal_step_size (error ratio 0: safety / 0 = inf, so the factor is ifactor, as torchdiffeq's own case)
    dfactor = b.op("where", b.op("lt", ratio, one), one,
                   b.scalar("dfactor", _float_option(node, options, "dfactor", 0.2)))
    growth = b.op("div", b.scalar("safety", _float_option(node, options, "safety", 0.9)),
                  b.op("pow", ratio, b.scalar(f"1/{solver.order}", 1.0 / solver.order)))
    factor = b.op("min", b.scalar("ifactor", _float_option(node, options, "ifactor", 10.0)),
                  b.op("max", growth, dfactor))
    # the step that reaches t[-1] is the last: the output is its interpolation at t[-1]
    finished = b.op("mul", accepted, b.op("le", t_end, t1))
    x = b.op("div", b.op("sub", t_end, t), b.op("sub", t1, t))
    value = solver.interpolate(y, y1, ks, dt, x)
    updates = (b.op("where", accepted, y1, y), b.op("where", accepted, f1, f), b.op("where", accepted, t1, t),
               b.op("where", running, b.op("mul", dt, factor), dt), b.op("where", finished, value, result),
               b.op("max", done, finished))
    body = Graph(inputs=(y, f, t, dt, result, done), outputs=updates, nodes=tuple(b.nodes), constants={},
                 types=b.types, step_tables=b.tables)
    finals = (f"{out}/y_end", f"{out}/f_end", f"{out}/t_end", f"{out}/dt_end", out, f"{out}/done_end")
    loop = Node("loop", (h0, f0, t_start, dt0, h0, zero_row), finals,
                (("count", steps), ("body", body), ("method", method), ("until", True)), node.source)
    constants = {**init.constants, **b.constants}
    return [*init.nodes, loop], constants, init.types


def _run(graph: Graph) -> PassResult:
    nodes, constants, types, modified = [], dict(graph.constants), dict(graph.types), False
    for node in graph.nodes:
        if node.op == "ode":
            lowered, extra, extra_types = lower(node, graph.types.get(node.inputs[0]))
            nodes.extend(lowered)
            constants.update(extra)
            types.update(extra_types)
            modified = True
        else:
            nodes.append(node)
    return PassResult(replace(graph, nodes=tuple(nodes), constants=constants, types=types), modified)


PASS = Pass("lower_ode", requires="ode nodes with captured dynamics", ensures="no ode nodes; solver loops",
            run=_run)
