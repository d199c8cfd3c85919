"""The compiler's IR: a small typed graph of frozen dataclasses.

A Graph is a list of Nodes in execution order over named SSA values. Values
are graph inputs, constants (numpy float32 arrays) or node outputs. A value's
type is its static shape plus a `batched` flag: when set, dim 0 is the batch
dimension, stored as 1 and sized at run time.

Two nodes carry subgraphs:
  ode   the dynamics f(t, h, *args) captured from an ODEBlock, with the
        solver method and time grid; lowered to a `loop` by passes/lower_ode.
  loop  `count` iterations of `body`; node.inputs are the initial values of
        the loop state, body.inputs the state inside an iteration,
        body.outputs the next state, node.outputs the final state. The body
        may read any value of the enclosing graph, and its step tables:
        constants of shape (count, ...) of which iteration i sees row i.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import LnnedgeError


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    batched: bool = False
    dtype: str = "f32"

    @property
    def elems(self) -> int:
        """Elements per batch row (or of the whole tensor when unbatched)."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return 4 * self.elems

    def __str__(self) -> str:
        dims = ["B" if i == 0 and self.batched else str(d) for i, d in enumerate(self.shape)]
        return f"{self.dtype}[{','.join(dims)}]"


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    source: str = ""

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    def with_attrs(self, **changes: Any) -> Node:
        merged = dict(self.attrs)
        merged.update(changes)
        return replace(self, attrs=tuple(merged.items()))

    @property
    def output(self) -> str:
        return self.outputs[0]

    @property
    def subgraph(self) -> Graph | None:
        """The graph this node carries (a loop's body, an ode's dynamics), else None."""
        return self.attr("body") or self.attr("dynamics")


@dataclass(frozen=True)
class Graph:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    types: dict[str, TensorType] = field(default_factory=dict)
    step_tables: dict[str, np.ndarray] = field(default_factory=dict)

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def users(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs or name in free_values(n)]

    def type_of(self, name: str) -> TensorType:
        return self.types[name]

    def scopes(self) -> Iterator[Graph]:
        """This graph and every graph its nodes carry (loop bodies, ode dynamics), nested ones too, each before
        the graphs inside it."""
        yield self
        for node in self.nodes:
            if node.subgraph is not None:
                yield from node.subgraph.scopes()

    def walk(self) -> Iterator[Node]:
        """Every node of this graph and of the graphs it carries, scope by scope (see scopes)."""
        for scope in self.scopes():
            yield from scope.nodes


def free_values(node: Node) -> set[str]:
    """Values of the enclosing scope that a loop body reads (empty for plain nodes)."""
    body = node.subgraph
    if body is None:
        return set()
    defined = set(body.inputs) | set(body.constants) | set(body.step_tables)
    used: set[str] = set()
    for inner in body.nodes:
        used |= set(inner.inputs) | free_values(inner)
        defined |= set(inner.outputs)
    used |= set(body.outputs)
    return used - defined


class CompileError(LnnedgeError, ValueError):
    """A model the compiler cannot handle; the message names the op and its source line."""

    def __init__(self, message: str, node: Node | None = None):
        where = f" (at {node.source})" if node is not None and node.source else ""
        super().__init__(f"{message}{where}")
