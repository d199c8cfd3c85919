"""Lower each `ode` node to a `loop` that runs one solver step per iteration.

The dynamics graph is inlined once per solver stage (1 for euler, 2 for
midpoint, 4 for rk4) into the loop body, so the code does not grow with the
number of time steps. Each step's dt comes from a step table (row i of a
(steps,) constant), computed in float32 exactly as torchdiffeq does
(dt = t[i+1] - t[i]), so non-uniform grids work too.

The arithmetic follows torchdiffeq 0.2's fixed-grid solvers operation by
operation (its "rk4" is the 3/8 rule, rk4_alt_step_func), so the device
rounds like PyTorch:
  euler     y1 = y0 + dt * f(y0)
  midpoint  y1 = y0 + dt * f(y0 + f(y0) * (0.5 * dt))
  rk4       k2 = f(y0 + dt * k1 * 1/3); k3 = f(y0 + dt * (k2 - k1 * 1/3));
            k4 = f(y0 + dt * (k1 - k2 + k3)); y1 = y0 + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import CompileError, Graph, Node, TensorType
from .base import Pass, PassResult


class _BodyBuilder:
    """Appends nodes to a loop body with fresh names under one prefix."""

    def __init__(self, prefix: str, dynamics: Graph, args: tuple[str, ...], source: str):
        self.prefix = prefix
        self.dynamics = dynamics
        self.args = args
        self.source = source
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.counter = 0
        for name, value in dynamics.constants.items():
            self.constants[f"{prefix}/{name}"] = value

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{self.prefix}/{hint}{self.counter}"

    def scalar(self, name: str, value: float) -> str:
        full = f"{self.prefix}/{name}"
        self.constants[full] = np.array(value, dtype=np.float32)
        return full

    def op(self, op: str, *inputs: str) -> str:
        out = self.fresh(op)
        self.nodes.append(Node(op, tuple(inputs), (out,), (), self.source))
        return out

    def f(self, h: str, stage: str) -> str:
        """Inline the dynamics with state h; returns the name of f(h)."""
        d = self.dynamics
        mapping = {d.inputs[1]: h}
        mapping.update(dict(zip(d.inputs[2:], self.args)))
        for name in d.constants:
            mapping[name] = f"{self.prefix}/{name}"

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


def lower(node: Node) -> tuple[Node, dict[str, np.ndarray]]:
    """The loop node replacing one ode node, and the constants it needs in the enclosing graph."""
    grid = np.asarray(node.attr("grid"), dtype=np.float32)
    if grid.ndim != 1 or len(grid) < 2 or not np.all(np.diff(grid) > 0):
        raise CompileError(f"ode: the time grid must be increasing with at least 2 points, got {grid}", node)
    steps = len(grid) - 1
    if steps > 0xFFFF:
        raise CompileError(f"ode: {steps} steps exceed the VM's loop limit of 65535", node)
    h0, args = node.inputs[0], node.inputs[1:]
    b = _BodyBuilder(node.output, node.attr("dynamics"), args, node.source)
    dt_values = (grid[1:] - grid[:-1]).astype(np.float32)
    tables = {f"{node.output}/dt": dt_values}
    dt = f"{node.output}/dt"
    y0 = f"{node.output}/h"
    method = node.attr("method")
    if method == "euler":
        y1 = b.op("add", y0, b.op("mul", dt, b.f(y0, "k1")))
    elif method == "midpoint":
        half_dt = f"{node.output}/half_dt"
        tables[half_dt] = (np.float32(0.5) * dt_values).astype(np.float32)
        k1 = b.f(y0, "k1")
        y_mid = b.op("add", y0, b.op("mul", k1, half_dt))
        y1 = b.op("add", y0, b.op("mul", dt, b.f(y_mid, "k2")))
    elif method == "rk4":
        third = b.scalar("one_third", 1.0 / 3.0)
        three = b.scalar("three", 3.0)
        eighth = b.scalar("eighth", 0.125)
        k1 = b.f(y0, "k1")
        k2 = b.f(b.op("add", y0, b.op("mul", b.op("mul", dt, k1), third)), "k2")
        k3 = b.f(b.op("add", y0, b.op("mul", dt, b.op("sub", k2, b.op("mul", k1, third)))), "k3")
        k4 = b.f(b.op("add", y0, b.op("mul", dt, b.op("add", b.op("sub", k1, k2), k3))), "k4")
        total = b.op("add", b.op("add", k1, b.op("mul", three, b.op("add", k2, k3))), k4)
        y1 = b.op("add", y0, b.op("mul", b.op("mul", total, dt), eighth))
    else:
        raise CompileError(f"ode: solver method {method!r} is not supported (euler, midpoint, rk4)", node)
    body = Graph(inputs=(y0,), outputs=(y1,), nodes=tuple(b.nodes), constants={}, types=b.types,
                 step_tables=tables)
    loop = Node("loop", (h0,), node.outputs, (("count", steps), ("body", body), ("method", method)), node.source)
    return loop, b.constants


def _run(graph: Graph) -> PassResult:
    nodes, constants, modified = [], dict(graph.constants), False
    for node in graph.nodes:
        if node.op == "ode":
            node, extra = lower(node)
            constants.update(extra)
            modified = True
        nodes.append(node)
    return PassResult(replace(graph, nodes=tuple(nodes), constants=constants), modified)


PASS = Pass("lower_ode", requires="ode nodes with captured dynamics", ensures="no ode nodes; solver loops",
            run=_run)
