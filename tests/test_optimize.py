"""The optimisation passes: each on small hand-built graphs (what it changes, what it must leave alone, an honest
`modified`), then the whole pipeline on LTC models: the code the VM gets and its numerics on both VMs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import inputs_for, untrained
from lnnedge import isa, lnnb
from lnnedge.compiler import compile_module
from lnnedge.compiler.ir import Graph, Node, TensorType
from lnnedge.compiler.passes import (
    dce,
    fuse_elementwise,
    fuse_products,
    hoist,
    peel_zero_state,
    select_kernels,
    shape_inference,
    split_linear,
)
from lnnedge.compiler.pipeline import PIPELINE
from lnnedge.models.ltc import LTCRegressor
from lnnedge.refvm import RefVM
from lnnedge.runtime import CVM, VMError

F32 = np.float32
OPT_PASSES = (split_linear.PASS, peel_zero_state.PASS, fuse_products.PASS, select_kernels.PASS,
              fuse_elementwise.PASS)


def _t(*shape: int, batched: bool = True) -> TensorType:
    return TensorType(shape, batched)


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(F32)


def _typed(graph: Graph) -> Graph:
    return shape_inference.infer(graph)


def _run_graph(graph: Graph, *inputs: np.ndarray) -> list[np.ndarray]:
    """Emit a graph and run it on the reference VM."""
    from lnnedge.compiler.emit import emit

    return RefVM(lnnb.write(emit(_typed(graph)).program)).run(list(inputs))


def _ops(graph: Graph) -> list[str]:
    out = []
    for node in graph.nodes:
        out.append(node.op)
        if node.op == "loop":
            out += [f"body:{op}" for op in _ops(node.attr("body"))]
    return out


def _loop_graph(steps: int = 3) -> Graph:
    """h <- h + linear(cat([x, h]), W, b) for `steps` iterations: a product over a concat inside a loop."""
    w, b = _rand(4, 6), _rand(4, seed=1)
    body = Graph(inputs=("h",), outputs=("h2",), nodes=(
        Node("concat", ("x", "h"), ("cat",), (("axis", -1),)),
        Node("linear", ("cat", "W", "b"), ("lin",), (("module", "cell"),)),
        Node("add", ("h", "lin"), ("h2",)),
    ), types={"h": _t(1, 4), "cat": _t(1, 6), "lin": _t(1, 4), "h2": _t(1, 4)})
    return _typed(Graph(inputs=("x",), outputs=("y",), nodes=(
        Node("zeros", (), ("h0",)),
        Node("loop", ("h0",), ("y",), (("count", steps), ("body", body))),
    ), constants={"W": w, "b": b}, types={"x": _t(1, 2), "h0": _t(1, 4), "y": _t(1, 4)}))


def _loop_reference(x: np.ndarray, graph: Graph, steps: int = 3) -> np.ndarray:
    w, b = graph.constants["W"], graph.constants["b"]
    h = np.zeros((x.shape[0], 4), F32)
    for _ in range(steps):
        h = h + (np.concatenate([x, h], axis=1) @ w.T + b)
    return h


# ---- split_linear -----------------------------------------------------------------------------------------

def test_split_linear_splits_a_product_over_a_concat_and_the_bias_goes_with_the_invariant_part():
    graph = _loop_graph()
    out = split_linear.PASS.run(graph)
    assert out.modified
    body = out.graph.nodes[1].attr("body")
    ops = [(n.op, n.inputs) for n in body.nodes]
    assert ("linear", ("x", "W/cols0_2", "b")) in ops, ops  # x is loop-invariant: it takes the bias
    assert ("matmul_nt", ("h", "W/cols2_6")) in ops, ops
    np.testing.assert_array_equal(out.graph.constants["W/cols2_6"], graph.constants["W"][:, 2:])
    assert split_linear.PASS.run(out.graph).modified is False, "nothing left to split: modified must be False"


def test_split_then_hoist_moves_the_input_projection_out_of_the_loop():
    original = _loop_graph()
    graph = _typed(split_linear.PASS.run(original).graph)
    graph = dce.PASS.run(hoist.PASS.run(graph).graph).graph
    top = [n.op for n in graph.nodes]
    body = [n.op for n in graph.nodes[-1].attr("body").nodes]
    assert "linear" in top and "linear" not in body and "concat" not in body, (top, body)
    x = inputs_for(2, 5)
    np.testing.assert_allclose(_run_graph(graph, x)[0], _loop_reference(x, original), rtol=1e-5, atol=1e-6)


def test_split_linear_leaves_a_concat_on_another_axis_alone():
    graph = _typed(Graph(inputs=("x",), outputs=("y",), nodes=(
        Node("concat", ("x", "x"), ("cat",), (("axis", 0),)),
        Node("linear", ("cat", "W", "b"), ("y",)),
    ), constants={"W": _rand(3, 2), "b": _rand(3)}, types={"x": _t(2, 2, batched=False)}))
    assert split_linear.PASS.run(graph).modified is False


# ---- peel_zero_state --------------------------------------------------------------------------------------

def _split_hoisted() -> Graph:
    graph = _typed(split_linear.PASS.run(_loop_graph()).graph)
    return _typed(dce.PASS.run(hoist.PASS.run(graph).graph).graph)


def test_peel_runs_the_first_iteration_without_its_zero_product():
    graph = _split_hoisted()
    out = peel_zero_state.PASS.run(graph)
    assert out.modified
    peeled = _typed(dce.PASS.run(out.graph).graph)
    loop = peeled.nodes[-1]
    assert loop.op == "loop" and loop.attr("count") == 2
    top = [n.op for n in peeled.nodes[:-1]]
    assert "matmul_nt" not in top and "zeros" not in top, top  # 0 . W and 0 + y are gone
    assert peel_zero_state.PASS.run(peeled).modified is False, "the loop no longer starts from zeros"
    x = inputs_for(2, 5)
    np.testing.assert_array_equal(_run_graph(peeled, x)[0], _run_graph(graph, x)[0])  # exact


def test_peel_keeps_step_tables_in_step():
    """Iteration 0's rows become constants, the loop reads rows 1.. (a non-uniform grid shows a shift)."""
    model = LTCRegressor(1, 4, 1, torch.tensor([0.0, 0.1, 0.5, 1.5, 1.6]), "euler", tau_min=0.5).eval()
    compiled = compile_module(model, (torch.zeros(1, 1),))
    x = inputs_for(1, 6)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(compiled.run(x)[0] - expected)) <= 1e-6
    assert "LOOP       3" in compiled.listing()


def test_peel_leaves_a_loop_from_a_nonzero_state_alone():
    graph = _split_hoisted()
    nodes = tuple(Node("relu", ("x",), ("h0",)) if n.op == "zeros" else n for n in graph.nodes)
    assert peel_zero_state.PASS.run(replace(graph, nodes=nodes)).modified is False


# ---- fuse_products ----------------------------------------------------------------------------------------

def _two_heads(bias: bool = True) -> Graph:
    nodes = (Node("linear", ("x", "W1", "b1"), ("y1",)), Node("linear", ("x", "W2", "b2"), ("y2",)),
             Node("add", ("y1", "y2"), ("y",))) if bias else (
        Node("matmul_nt", ("x", "W1"), ("y1",)), Node("matmul_nt", ("x", "W2"), ("y2",)),
        Node("add", ("y1", "y2"), ("y",)))
    return _typed(Graph(inputs=("x",), outputs=("y",), nodes=nodes,
                        constants={"W1": _rand(5, 3), "b1": _rand(5, seed=1), "W2": _rand(5, 3, seed=2),
                                   "b2": _rand(5, seed=3)}, types={"x": _t(1, 3)}))


@pytest.mark.parametrize("bias", [True, False])
def test_fuse_products_stacks_the_weights_and_splits_the_outputs(bias):
    graph = _two_heads(bias)
    out = fuse_products.PASS.run(graph)
    assert out.modified
    node = out.graph.nodes[0]
    assert node.op == ("linear_t" if bias else "matmul_t") and node.outputs == ("y1", "y2")
    assert node.attr("splits") == (5, 5)
    wt = out.graph.constants[node.inputs[1]]
    np.testing.assert_array_equal(wt, np.concatenate([graph.constants["W1"].T, graph.constants["W2"].T], axis=1))
    assert fuse_products.PASS.run(out.graph).modified is False
    x = inputs_for(3, 4)
    np.testing.assert_allclose(_run_graph(out.graph, x)[0], _run_graph(graph, x)[0], rtol=1e-6, atol=1e-6)


def test_fuse_products_needs_the_same_input_and_constant_weights():
    graph = _typed(Graph(inputs=("x", "z"), outputs=("y",), nodes=(
        Node("linear", ("x", "W1", "b1"), ("y1",)), Node("linear", ("z", "W2", "b2"), ("y2",)),
        Node("add", ("y1", "y2"), ("y",))),
        constants={"W1": _rand(5, 3), "b1": _rand(5), "W2": _rand(5, 3), "b2": _rand(5)},
        types={"x": _t(1, 3), "z": _t(1, 3)}))
    assert fuse_products.PASS.run(graph).modified is False
    unfused = _typed(Graph(inputs=("x", "w"), outputs=("y",), nodes=(
        Node("matmul_nt", ("x", "w"), ("y1",)), Node("matmul_nt", ("x", "w"), ("y2",)),
        Node("add", ("y1", "y2"), ("y",))), types={"x": _t(1, 3), "w": _t(5, 3, batched=False)}))
    assert fuse_products.PASS.run(unfused).modified is False, "a weight that is an input cannot be stacked"


# ---- select_kernels ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, k, transposed", [(64, 64, True), (1, 64, False), (16, 64, False), (16, 1, True)])
def test_select_kernels_chooses_the_weight_layout_by_shape(m, k, transposed):
    graph = _typed(Graph(inputs=("x",), outputs=("y",), nodes=(Node("linear", ("x", "W", "b"), ("y",)),),
                         constants={"W": _rand(m, k), "b": _rand(m)}, types={"x": _t(1, k)}))
    out = select_kernels.PASS.run(graph)
    assert out.modified is transposed
    assert out.graph.nodes[0].op == ("linear_t" if transposed else "linear")
    if transposed:
        np.testing.assert_array_equal(out.graph.constants[out.graph.nodes[0].inputs[1]], graph.constants["W"].T)
        assert select_kernels.PASS.run(out.graph).modified is False
    x = inputs_for(k, 3)
    scale = np.abs(x) @ np.abs(graph.constants["W"]).T  # sums in another order: rounding of that size
    assert np.all(np.abs(_run_graph(out.graph, x)[0] - _run_graph(graph, x)[0]) <= 1e-6 * (scale + 1))


# ---- fuse_elementwise -------------------------------------------------------------------------------------

def _chain() -> Graph:
    """y = sigmoid(a + b) * c - a, with a row c; d = neg(a) is an output too (read outside any group)."""
    return _typed(Graph(inputs=("a", "b"), outputs=("y", "d"), nodes=(
        Node("add", ("a", "b"), ("s",)), Node("sigmoid", ("s",), ("g",)), Node("mul", ("g", "c"), ("m",)),
        Node("sub", ("m", "a"), ("y",)), Node("neg", ("a",), ("d",))),
        constants={"c": _rand(4)}, types={"a": _t(1, 4), "b": _t(1, 4)}))


def test_fuse_elementwise_makes_one_program_of_a_chain():
    graph = _chain()
    out = fuse_elementwise.PASS.run(graph)
    assert out.modified
    assert [n.op for n in out.graph.nodes] == ["ewise", "neg"], "the lone neg stays an op"
    node = out.graph.nodes[0]
    assert node.inputs == ("a", "b", "c") and node.outputs == ("y",)
    assert [op for op, *_ in node.attr("program")] == ["add", "sigmoid", "mul", "sub"]
    assert node.attr("regs") == 1, "one register suffices: each value dies where the next is made"
    assert fuse_elementwise.PASS.run(out.graph).modified is False
    a, b = inputs_for(4, 6), inputs_for(4, 6, seed=1)
    got, want = _run_graph(out.graph, a, b), _run_graph(graph, a, b)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)  # each instruction rounds as its op: the same bits


def test_fuse_elementwise_keeps_values_read_outside_the_group():
    graph = _typed(Graph(inputs=("a",), outputs=("y", "s"), nodes=(
        Node("exp", ("a",), ("s",)), Node("tanh", ("s",), ("n",)), Node("add", ("n", "a"), ("y",))),
        types={"a": _t(1, 4)}))
    out = fuse_elementwise.PASS.run(graph).graph
    assert [n.op for n in out.nodes] == ["exp", "ewise"]
    assert out.nodes[1].inputs == ("s", "a")


def test_fuse_elementwise_respects_broadcast_modes_and_limits():
    # a [B, 1] column against [B, 4] is numpy broadcasting EWISE does not do: that operand's op stays out
    column = _typed(Graph(inputs=("a", "col"), outputs=("y",), nodes=(
        Node("mul", ("a", "col"), ("m",)), Node("neg", ("m",), ("y",))),
        types={"a": _t(1, 4), "col": _t(1, 1)}))
    assert [n.op for n in fuse_elementwise.PASS.run(column).graph.nodes] == ["mul", "neg"]
    # a sum of 12 inputs: at most 8 operands per program
    names = [f"x{i}" for i in range(12)]
    nodes, acc = [], names[0]
    for i, name in enumerate(names[1:]):
        nodes.append(Node("add", (acc, name), (f"s{i}",)))
        acc = f"s{i}"
    wide = _typed(Graph(inputs=tuple(names), outputs=(acc,), nodes=tuple(nodes),
                        types={n: _t(1, 3) for n in names}))
    out = fuse_elementwise.PASS.run(wide).graph
    assert all(len(n.inputs) <= fuse_elementwise.MAX_OPERANDS for n in out.nodes)
    assert [n.op for n in out.nodes].count("ewise") >= 2
    xs = [inputs_for(3, 2, seed=i) for i in range(12)]
    np.testing.assert_array_equal(_run_graph(out, *xs)[0], _run_graph(wide, *xs)[0])


def test_minus_plus_becomes_a_subtraction_with_the_same_bits():
    """-h + m (the LTC's f numerator) is m - h: one instruction fewer, bit for bit, inf and zero signs included."""
    graph = _typed(Graph(inputs=("h", "m"), outputs=("y",), nodes=(
        Node("neg", ("h",), ("n",)), Node("add", ("n", "m"), ("s",)), Node("mul", ("s", "s"), ("y",))),
        types={"h": _t(1, 6), "m": _t(1, 6)}))
    out = fuse_elementwise.PASS.run(graph).graph
    assert [n.op for n in out.nodes] == ["ewise"]
    assert [op for op, *_ in out.nodes[0].attr("program")] == ["sub", "mul"]
    h = np.array([[0.0, -0.0, np.inf, 1e-40, 3.5, -2.0]], F32)
    m = np.array([[-0.0, -0.0, np.inf, -1e-40, 1e30, 7.25]], F32)
    got, want = _run_graph(out, h, m)[0], _run_graph(graph, h, m)[0]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_operand_modes_match_the_vm():
    out = _t(1, 2, 64)
    assert fuse_elementwise.operand_mode(_t(1, 2, 64), out) == "same"
    assert fuse_elementwise.operand_mode(_t(64, batched=False), out) == "row"
    assert fuse_elementwise.operand_mode(_t(1, 2, 64, batched=False), out) == "row"
    assert fuse_elementwise.operand_mode(_t(batched=False), out) == "scalar"
    assert fuse_elementwise.operand_mode(_t(1, 1, 64), out) is None
    assert fuse_elementwise.operand_mode(_t(2, 1, batched=False), out) is None


def test_every_pass_names_what_it_needs_and_ensures():
    for p in OPT_PASSES:
        assert p.name and p.requires and p.ensures
        assert p in PIPELINE
    names = [p.name for p in PIPELINE]
    assert names.index("split_linear") < names.index("hoist") < names.index("peel_zero_state")
    assert names.index("peel_zero_state") < names.index("fuse_products")
    assert names.index("fuse_products") < names.index("fuse_elementwise")


# ---- the pipeline on LTC models ---------------------------------------------------------------------------

def _code_ops(program: lnnb.Program) -> list[str]:
    by_code = isa.opcode_by_code()
    return [by_code[isa.decode(w)[0]].name for w in program.code]


def test_ltc_step_is_one_product_and_one_ewise(sine_compiled):
    ops = _code_ops(sine_compiled.program)
    body = ops[ops.index("LOOP") + 1:ops.index("END")]
    assert [op for op in body if op not in ("PUSH", "DROP")] == ["MATMUL_T", "EWISE7"], body
    before = ops[:ops.index("LOOP")]
    assert "LINEAR_T" in before, "the input projection (x part + bias) is computed once, before the loop"
    assert "CONCAT" not in ops and "SIGMOID" not in ops
    word = sine_compiled.program.code[ops.index("MATMUL_T")]
    assert isa.decode(word)[1] == 2, "gate and candidate: one product, two destinations"


@pytest.mark.parametrize("method, hidden, inputs", [("euler", 64, 1), ("midpoint", 16, 3), ("rk4", 5, 7),
                                                    ("euler", 1, 1), ("rk4", 33, 2)])
def test_optimised_models_match_pytorch_on_both_vms(host_build, method, hidden, inputs):
    torch.manual_seed(hidden)
    model = LTCRegressor(inputs, hidden, 1, torch.linspace(0, 5, 10), method, tau_min=0.5)
    with torch.no_grad():
        model.ode.func.log_tau.uniform_(-1, 1)
    model.eval()
    compiled = compile_module(model, (torch.zeros(1, inputs),))
    assert "EWISE" in " ".join(_code_ops(compiled.program))
    x = inputs_for(inputs, 40, seed=hidden)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(compiled.run(x)[0] - expected)) <= 1e-5
    vm = CVM(compiled.data, max_batch=40, library=host_build.library)
    for plan in (True, False):
        vm.use_plan(plan)
        for rows in (1, 7, 40):
            got = np.concatenate([vm.run([x[i:i + rows]])[0] for i in range(0, 40, rows)])
            assert np.max(np.abs(got - expected)) <= 1e-5, (plan, rows)


def test_sine_model_runs_from_the_plan(host_build, sine_compiled):
    vm = CVM(sine_compiled.data, library=host_build.library)
    assert vm.use_plan(True), "the default model must fit the VM's run plan"


def test_optimisation_shrinks_code_and_arena(sine_model):
    compiled = compile_module(sine_model, (torch.zeros(1, 1),))
    # h, the hoisted projection (2 x 64) and the product (2 x 64) per row; 1312 bytes before optimisation
    assert compiled.plan_summary()["arena_row"] <= 5 * 256 + 64
    assert len(compiled.program.code) <= 40
    tensors = compiled.program.tensors
    programs = [t for t in tensors if t.dtype == isa.const("DT_U32")]
    assert programs and all(t.region == isa.const("REG_CONST") for t in programs)


def test_trace_records_one_entry_per_destination(sine_compiled):
    records = []
    x = inputs_for(1, 1)
    RefVM(sine_compiled.data).run([x], trace=lambda pc, name, tensor, arr: records.append((pc, name, tensor)))
    debug = {d["pc"]: d for d in sine_compiled.debug}
    split = [r for r in records if r[1] == "MATMUL_T"]
    assert len(split) == 2 * 8 and split[0][2] + 1 == split[1][2]  # 9 steps, the first peeled
    assert debug[split[0][0]]["outputs"] and len(debug[split[0][0]]["outputs"]) == 2


def test_binding_fast_path_gives_fresh_outputs_and_sees_changes(host_build, sine_compiled):
    vm = CVM(sine_compiled.data, max_batch=8, library=host_build.library)
    x = inputs_for(1, 1)
    first = vm.run([x])[0]
    again = vm.run([x])[0]
    np.testing.assert_array_equal(first, again)
    assert first.ctypes.data != again.ctypes.data, "each call's outputs are new memory"
    x[0, 0] += 1.0  # the same array, changed in place: the new values are read
    moved = vm.run([x])[0]
    assert moved[0, 0] != first[0, 0]
    np.testing.assert_array_equal(first, again)
    batch = inputs_for(1, 8)
    np.testing.assert_allclose(vm.run([batch])[0][:1], vm.run([batch[:1]])[0], rtol=1e-6)
    np.testing.assert_allclose(vm.run([batch.tolist()])[0], vm.run([batch])[0], rtol=0)
    for _ in range(5000):  # past a slab's end: fresh slabs, old outputs untouched
        vm.run([x])
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError):
        vm.run([np.zeros((1, 2), np.float32)])
    with pytest.raises(VMError, match="E_BATCH"):
        vm.run([np.zeros((9, 1), np.float32)])
    y = np.empty((8, 1), np.float32)
    call = vm.prepare([batch], [y])
    call()
    np.testing.assert_array_equal(y, vm.run([batch])[0])


def test_untrained_3_input_rk4_model_compiles_to_fused_code():
    compiled = compile_module(untrained("ltc-3in-rk4"), (torch.zeros(1, 3),))
    ops = _code_ops(compiled.program)
    loop = ops[ops.index("LOOP"):ops.index("END")]
    assert loop.count("MATMUL_T") == 4, "one fused product per rk4 stage"
    peeled = ops[:ops.index("LOOP")]
    assert peeled.count("MATMUL_T") == 3, "the peeled first step: stage 1 reads h = 0, its product is gone"
    assert "LINEAR_T" in peeled
