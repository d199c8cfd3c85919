"""What a pass is: a name, what it needs and guarantees, and a function Graph -> PassResult."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
