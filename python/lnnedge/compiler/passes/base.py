"""What a pass is: a name, what it needs and guarantees, and a function Graph -> PassResult."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..ir import Graph


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    modified: bool


@dataclass(frozen=True)
class Pass:
    name: str
    requires: str
    ensures: str
    run: Callable[[Graph], PassResult]


ScopeFn = Callable[[Graph, dict[str, np.ndarray], dict[str, np.ndarray]], tuple[Graph, bool]]


def run_scoped(scope: ScopeFn, graph: Graph) -> PassResult:
    """Run scope(graph, constants known from outer scopes, new constants) from the top scope; the constants it
    creates (in any scope) join the graph's."""
    new_constants: dict[str, np.ndarray] = {}
    out, modified = scope(graph, {}, new_constants)
    return PassResult(replace(out, constants={**out.constants, **new_constants}), modified)
