"""Split a product over a concatenation into one product per part: linear(concat([x, h]), W, b) becomes
add(linear(x, W[:, :kx], b), matmul_nt(h, W[:, kx:])).

This is what lets the LTC's input projection leave the solver loop: inside the loop body the x part reads
nothing the loop changes, so `hoist` (which runs next) moves it, and its bias, before the loop; only the h
part stays. Inside a loop body the bias goes with the first loop-invariant part (so it is hoisted too), else
with the first part. The concatenation must be along the last axis and W a constant; a concat that nothing
else reads disappears in the next `dce`.

Numerics: the sum over the K inputs is split in two partial sums added once, (x.Wx + b) + h.Wh; PyTorch sums in
another order too, and the difference stays at float32 rounding level.

Not split: the products of w8a16 layers (make(keep)). The device rounds the whole input row of such a layer to
16-bit block floating point with one exponent, as the PyTorch model's pre-hook does; a part would take the
exponent of its own columns and round them differently.

Requires: typed graph, binary concats (split_concat). Ensures: no linear / matmul_nt reads a last-axis concat
whose weight is a constant, except the products of the layers kept whole. `modified` is true iff a product was
split.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import numpy as np

from .. import optable
from ..ir import Graph, Node, TensorType
from .base import Pass, PassResult
from .hoist import variant as _variant

PRODUCTS = optable.names(lambda op: op.weight == "W" and not op.int8)  # float products of W (M, K)


def _split_scope(graph: Graph, constants: dict[str, np.ndarray], new_constants: dict[str, np.ndarray],
                 variant: set[str] | None, outer_types: dict[str, TensorType], keep: Collection[str]
                 ) -> tuple[Graph, bool]:
    known = {**constants, **graph.constants, **new_constants}
    types = {**outer_types, **graph.types}
    producers = graph.producers()
    nodes: list[Node] = []
    modified = False
    for node in graph.nodes:
        if node.op == "loop":
            body = node.attr("body")
            inner, changed = _split_scope(body, known, new_constants, _variant(body), types, keep)
            if changed:
                node, modified = node.with_attrs(body=inner), True
            nodes.append(node)
            continue
        whole = node.attr("module") in keep  # a w8a16 layer: its input row is rounded as one
        cat = producers.get(node.inputs[0]) if node.op in PRODUCTS and not whole else None
        weight = node.inputs[1] if node.op in PRODUCTS else None
        if (cat is None or cat.op != "concat" or len(cat.inputs) != 2 or weight not in known
                or cat.output not in types or any(part not in types for part in cat.inputs)):
            nodes.append(node)
            continue
        rank = len(types[cat.output].shape)
        if cat.attr("axis", 0) % rank != rank - 1 or (node.op == "linear" and node.inputs[2] not in known):
            nodes.append(node)
            continue
        w = known[weight]
        widths = [types[part].shape[-1] for part in cat.inputs]
        starts = np.cumsum([0, *widths])
        biased = 0
        if variant is not None:  # the bias goes with an invariant part, so it leaves the loop with it
            biased = next((i for i, part in enumerate(cat.inputs) if part not in variant), 0)
        out = node.output
        parts = []
        for i, part in enumerate(cat.inputs):
            name = f"{weight}/cols{starts[i]}_{starts[i + 1]}"
            new_constants[name] = np.ascontiguousarray(w[:, starts[i]:starts[i + 1]], dtype=np.float32)
            known[name] = new_constants[name]
            # verify --trace compares a part with PyTorch's partial sum over these columns of the layer
            has_bias = node.op == "linear" and i == biased
            attrs = ((("part_of", node.attr("module")), ("cols", (int(starts[i]), int(starts[i + 1]))),
                      ("has_bias", has_bias)) if node.attr("module") else ())
            if has_bias:
                parts.append(Node("linear", (part, name, node.inputs[2]), (f"{out}/part{i}",), attrs, node.source))
            else:
                parts.append(Node("matmul_nt", (part, name), (f"{out}/part{i}",), attrs, node.source))
        nodes.extend(parts)
        nodes.append(Node("add", (parts[0].output, parts[1].output), (out,), (), node.source))
        modified = True
    return replace(graph, nodes=tuple(nodes)), modified


def split(graph: Graph, keep: Collection[str] = ()) -> tuple[Graph, bool]:
    """Split until nothing changes (a part may itself be a concat); the products of layers `keep` stay whole."""
    modified = False
    while True:
        new_constants: dict[str, np.ndarray] = {}
        graph, changed = _split_scope(graph, {}, new_constants, None, {}, keep)
        if not changed:
            return graph, modified
        graph = replace(graph, constants={**graph.constants, **new_constants})
        modified = True


def make(keep: Collection[str] = ()) -> Pass:
    """The pass; the products of the layers named in `keep` (w8a16) are not split."""

    def run(graph: Graph) -> PassResult:
        out, modified = split(graph, keep)
        return PassResult(out, modified)

    kept = f", except those of {', '.join(sorted(keep))}" if keep else ""
    return Pass("split_linear", requires="typed graph with binary concats",
                ensures=f"no product of a constant weight reads a last-axis concat{kept}", run=run)


PASS = make()
