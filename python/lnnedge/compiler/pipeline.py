"""The pass pipeline: one flat, ordered list. Each pass is Graph -> Graph.

A quantized compile adds store_int8, store_f16 or store_w8a16 after the weight layout is final (see
passes/store_*.py); a w8a16 compile also keeps the products of its layers whole (split_linear, const_fold and
fuse_products made for those layers: the device rounds each such product's whole input row).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from .ir import CompileError, Graph
from .passes import (
    const_fold,
    dce,
    fuse_elementwise,
    fuse_products,
    hoist,
    lower_ode,
    peel_zero_state,
    select_kernels,
    shape_inference,
    split_concat,
    split_linear,
    store_f16,
    store_int8,
    store_w8a16,
)
from .passes.base import Pass

PIPELINE: tuple[Pass, ...] = (
    shape_inference.PASS,   # re-derive every shape and check it against torch's
    const_fold.PASS,        # e.g. tau = tau_min + exp(log_tau) becomes one constant
    dce.PASS,               # the parameters folded away are no longer needed
    lower_ode.PASS,         # ODE blocks -> bounded solver loops around the inlined dynamics
    split_concat.PASS,      # the VM's CONCAT is binary
    shape_inference.PASS,   # type the new loop bodies
    split_linear.PASS,      # linear(cat([x, h])) -> x part + h part, so that the x part can leave the loop
    shape_inference.PASS,
    hoist.PASS,             # loop-invariant work (the input projection) moves before the loop
    const_fold.PASS,        # fold what hoisting exposed
    dce.PASS,               # the concats nothing reads any more
    peel_zero_state.PASS,   # the first step from h = 0 runs once, without its (zero) product
    dce.PASS,
    shape_inference.PASS,
    fuse_products.PASS,     # products sharing an input (gate, candidate) -> one, split outputs
    select_kernels.PASS,    # the other products: weight layout by shape
    shape_inference.PASS,
    fuse_elementwise.PASS,  # element-wise chains and the Euler update -> one EWISE each
    dce.PASS,
    shape_inference.PASS,   # final check: the emitter relies on every type
)


@dataclass(frozen=True)
class PassLog:
    name: str
    modified: bool
    nodes: int


def passes(int8_scales: Mapping[str, np.ndarray] | None = None, float16_layers: Collection[str] = (),
           w8a16_scales: Mapping[str, np.ndarray] | None = None) -> tuple[Pass, ...]:
    """The pipeline; with `int8_scales` (layer -> scale per output row) those layers' weights are stored as
    int8, with `float16_layers` as float16 (after the layout passes, which move weights but not values), with
    `w8a16_scales` (as int8_scales) those layers' products as w8a16, never split over their input."""
    schemes = {"int8": set(int8_scales or ()), "float16": set(float16_layers), "w8a16": set(w8a16_scales or ())}
    for a, b in (("int8", "float16"), ("int8", "w8a16"), ("float16", "w8a16")):
        if schemes[a] & schemes[b]:
            raise CompileError(f"layer(s) {', '.join(sorted(schemes[a] & schemes[b]))} given as both {a} and {b}")
    pipeline = PIPELINE
    if w8a16_scales:
        whole = frozenset(w8a16_scales)
        made = {split_linear.PASS: split_linear.make(whole), const_fold.PASS: const_fold.make(whole),
                fuse_products.PASS: fuse_products.make(whole)}
        pipeline = tuple(made.get(p, p) for p in PIPELINE)
    stores = (((store_int8.make(int8_scales),) if int8_scales else ())
              + ((store_f16.make(float16_layers),) if float16_layers else ())
              + ((store_w8a16.make(w8a16_scales),) if w8a16_scales else ()))
    at = pipeline.index(select_kernels.PASS) + 1
    return (*pipeline[:at], *stores, *pipeline[at:])


def run(graph: Graph, verifier=None, int8_scales: Mapping[str, np.ndarray] | None = None,
        float16_layers: Collection[str] = (), w8a16_scales: Mapping[str, np.ndarray] | None = None
        ) -> tuple[Graph, list[PassLog]]:
    """Run every pass in order; `verifier(graph)` (tests) runs between passes."""
    log = []
    for p in passes(int8_scales, float16_layers, w8a16_scales):
        result = p.run(graph)
        graph = result.graph
        log.append(PassLog(p.name, result.modified, sum(1 for _ in graph.walk())))
        if verifier is not None:
            verifier(graph, p.name)
    return graph, log
