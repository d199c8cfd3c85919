"""The compiler: capture, passes, memory plan and emitted bytecode, checked against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import inputs_for, untrained
from lnnedge import isa, lnnb
from lnnedge.compiler import CompileError, compile_module, debuginfo, ops, optable
from lnnedge.compiler.capture import capture
from lnnedge.compiler.ir import Graph
from lnnedge.compiler.passes import shape_inference
from lnnedge.compiler.pipeline import run
from lnnedge.compiler.planner import Request, plan
from lnnedge.models.ltc import LTCRegressor


def _ops(program: lnnb.Program) -> list[str]:
    by_code = isa.opcode_by_code()
    return [by_code[isa.decode(w)[0]].name for w in program.code]


def _ltc(hidden: int, inputs: int, steps: int, method: str) -> LTCRegressor:
    torch.manual_seed(1)
    model = LTCRegressor(inputs, hidden, 1, torch.linspace(0, 5, steps), method, tau_min=0.5)
    with torch.no_grad():
        model.ode.func.log_tau.uniform_(-1, 1)
    return model.eval()


def _check_graph(graph: Graph, after: str) -> None:
    """Graph verifier run between passes: every input of every node is defined before use."""
    defined = set(graph.inputs) | set(graph.constants)

    def walk(g: Graph, scope: set[str]) -> None:
        scope = scope | set(g.inputs) | set(g.constants) | set(g.step_tables)
        for node in g.nodes:
            missing = [name for name in node.inputs if name not in scope]
            assert not missing, f"after {after}: {node.op} reads undefined {missing}"
            if node.op == "loop":
                walk(node.attr("body"), scope)
            scope |= set(node.outputs)
        assert all(o in scope for o in g.outputs), f"after {after}: undefined graph output"

    walk(graph, defined)


def test_capture_records_torch_shapes_and_source_lines(sine_model):
    graph = capture(sine_model, (torch.zeros(1, 1),))
    ops = [n.op for n in graph.nodes]
    assert ops == ["sub", "div", "zeros", "ode", "linear", "mul", "add"]
    ode = graph.nodes[3]
    assert graph.types[ode.output].shape == (1, 64) and graph.types[ode.output].batched
    assert "ltc.py" in ode.source and "self.ode" in ode.source
    dyn = ode.attr("dynamics")
    assert [n.op for n in dyn.nodes][:3] == ["concat", "linear", "sigmoid"]


def test_pipeline_keeps_graph_well_formed_and_types_checked(sine_model):
    graph = capture(sine_model, (torch.zeros(1, 1),))
    final, log = run(graph, verifier=_check_graph)
    assert [p.name for p in log][0] == "shape_inference"
    assert not any(n.op == "ode" for n in final.nodes)
    assert any(n.op == "loop" for n in final.nodes)


def test_shape_inference_rejects_mismatched_linear():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(4, 3))

        def forward(self, x):
            return torch.nn.functional.linear(x, self.w)

    graph = capture(Bad(), (torch.zeros(2, 3),))
    node = graph.nodes[0]
    broken = Graph(graph.inputs, graph.outputs, graph.nodes, {"p_w": np.zeros((4, 5), np.float32)},
                   graph.types)
    assert node.op == "matmul_nt"
    with pytest.raises(CompileError, match="does not fit weight"):
        shape_inference.infer(broken)


def test_tau_is_folded_at_compile_time(sine_compiled):
    ops = _ops(sine_compiled.program)
    assert "EXP" not in ops, "exp(log_tau) must be computed by the compiler, not the device"
    tau = sine_compiled.graph.constants
    folded = [name for name in tau if name.endswith("add_1")]
    assert folded, "tau = tau_min + exp(log_tau) should be a constant"
    expected = (0.5556 + np.exp(untrained("ltc-sine").ode.func.log_tau.detach().numpy()))
    np.testing.assert_allclose(tau[folded[0]], expected, rtol=1e-3)


def test_code_size_does_not_grow_with_ode_steps():
    sizes = {}
    for steps in (10, 100):
        compiled = compile_module(_ltc(8, 1, steps, "euler"), (torch.zeros(1, 1),))
        sizes[steps] = len(compiled.program.code)
        assert ("LOOP" in _ops(compiled.program))
    assert sizes[10] == sizes[100]


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_reference_vm_matches_torchdiffeq(method):
    model = _ltc(16, 3, 9, method)
    x = inputs_for(3, 64)
    compiled = compile_module(model, (torch.zeros(1, 3),))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = compiled.run(x)[0]
    assert np.max(np.abs(got - expected)) <= 1e-5


def test_nothing_is_specific_to_default_sizes():
    for hidden, inputs in ((1, 1), (5, 7), (33, 2)):
        model = _ltc(hidden, inputs, 4, "midpoint")
        x = inputs_for(inputs, 10, seed=hidden)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = compile_module(model, (torch.zeros(1, inputs),)).run(x)[0]
        assert np.max(np.abs(got - expected)) <= 1e-5, (hidden, inputs)


def test_memory_plan_reuses_buffers_and_never_overlaps_live_ones(sine_compiled):
    batched = sine_compiled.emitted.batched_plan
    assert batched.overlaps() == []
    assert batched.size < batched.naive
    assert batched.lower_bound <= batched.size


def test_planner_places_disjoint_lifetimes_in_the_same_bytes():
    reqs = [Request("a", 64, 0, 1), Request("b", 64, 2, 3), Request("c", 32, 1, 2)]
    p = plan(reqs)
    assert p.offsets["a"] == p.offsets["b"]
    assert p.overlaps() == []
    assert p.size == 96 and p.naive == 160 and p.lower_bound == 96


def test_file_has_header_sections_and_crc(sine_compiled):
    data = sine_compiled.data
    assert data[:4] == b"LNNB"
    back = lnnb.read(data)
    assert back.code == sine_compiled.program.code
    assert back.meta == {"requires": sine_compiled.program.meta["requires"]}  # what a deploy checks, no more
    assert back.names == () and sine_compiled.program.names  # the names stay with the compiler
    consts_offset = lnnb.section_offsets(data)[isa.const("SEC_CONSTS")][0]
    assert consts_offset % 64 == 0


def test_debug_info_lives_beside_the_file_and_follows_its_structure(sine_compiled, tmp_path):
    data = sine_compiled.data
    assert b"ltc.py" not in data and "debug" not in lnnb.read(data).meta  # no source lines on the device
    path = sine_compiled.save(tmp_path / "model.lnnb")
    source_map = debuginfo.load(path, data)
    assert source_map == list(sine_compiled.debug) and any("ltc.py:" in d["source"] for d in source_map)
    info = json.loads(debuginfo.path_for(path).read_text())
    assert info["names"] == list(sine_compiled.program.names) and info["meta"]["model"] == "ltc-sine"
    assert info["meta"]["requires"] == lnnb.read(data).meta["requires"]
    # other constant values: the same program, still traced by name
    consts_at, _ = lnnb.section_offsets(data)[isa.const("SEC_CONSTS")]
    nudged = bytearray(data)
    nudged[consts_at] ^= 1
    assert debuginfo.load(path, bytes(nudged)) == source_map
    # another program: refused rather than mislabelled
    code_at, _ = lnnb.section_offsets(data)[isa.const("SEC_CODE")]
    other = bytearray(data)
    other[code_at + 4] ^= 1
    with pytest.raises(ValueError, match="describes another program"):
        debuginfo.load(path, bytes(other))
    debuginfo.path_for(path).unlink()
    assert debuginfo.load(path, data) == []


def test_listing_shows_plan_and_loop(sine_compiled):
    text = sine_compiled.listing()
    assert "LOOP       8" in text  # 9 Euler steps: the first, from h = 0, is peeled (passes/peel_zero_state)
    assert "memory plan (per batch row)" in text
    assert "LINEAR" in text


def test_unsupported_op_names_the_op_and_line():
    class UsesSin(torch.nn.Module):
        def forward(self, x):
            return torch.sin(x)

    with pytest.raises(CompileError, match=r"aten\.sin.*test_compiler\.py:\d+: return torch\.sin\(x\)"):
        compile_module(UsesSin(), (torch.zeros(1, 2),))


def test_unsupported_op_message_lists_what_the_op_table_captures():
    class UsesSin(torch.nn.Module):
        def forward(self, x):
            return torch.sin(x)

    with pytest.raises(CompileError) as caught:
        compile_module(UsesSin(), (torch.zeros(1, 2),))
    message = str(caught.value)
    assert message.startswith("unsupported op aten.sin.default in UsesSin.forward at test_compiler.py:")
    listed = [op.listing() for op in ops() if op.listing()]
    assert len(listed) >= 20 and all(line in message for line in listed)
    assert "linear (nn.Linear)" in message and "sub / rsub" in message and "ode_block (ODEBlock" in message


def test_op_table_matches_the_vm_opcode_table():
    """Every instruction a row names is in lnn_opcodes.def, and every compute instruction there has a row."""
    opcodes = isa.opcodes()
    named = set()
    for op in ops():
        if op.variadic:
            arities = [n for n in range(1, 256) if op.opcode_for(n) in opcodes]
            assert arities == list(range(1, len(arities) + 1)) and arities, op.name
            named |= {op.opcode_for(n) for n in arities}
        elif op.opcode:
            assert op.opcode in opcodes, op.name
            named.add(op.opcode)
    structural = {"PUSH", "DROP", "LOOP", "END", "LOOPW", "UNTIL"}  # written by the encoder itself
    assert set(opcodes) - structural == named


def test_op_table_rows_are_unique_and_complete():
    rows = ops()
    assert len({op.name for op in rows}) == len(rows)
    targets = [t for op in rows for t in op.targets]
    assert len(set(targets)) == len(targets)  # a target in two rows would be captured by one silently
    for op in rows:
        assert (op.capture is not None) == bool(op.targets), op.name
        assert op.ir or (op.shape is None and not op.opcode), op.name
        assert not op.transposed or optable.get(op.transposed).weight == "Wt", op.name
        assert not op.quantized or optable.get(op.quantized).int8, op.name
        if op.opcode and op.param is not None:
            assert op.format in ("DSTAX", "DSTP"), op.name


def test_no_op_or_opcode_list_is_written_outside_the_op_table():
    """Module-level tables of IR op names or VM opcode names in the compiler: only optable.py has them."""
    import ast
    from pathlib import Path

    import lnnedge.compiler

    names, opcodes = {op.name for op in ops()}, set(isa.opcodes())
    found = []
    for path in Path(lnnedge.compiler.__file__).parent.rglob("*.py"):
        if path.name == "optable.py":
            continue
        for statement in ast.parse(path.read_text()).body:
            if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
                words = [n.value for n in ast.walk(statement.value)
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if sum(w in names for w in words) >= 2 or sum(w in opcodes for w in words) >= 2:
                    found.append(f"{path.name}:{statement.lineno}")
    assert found == []


def test_walk_visits_loop_bodies(sine_compiled):
    graph = sine_compiled.graph
    loops = [n for n in graph.nodes if n.op == "loop"]
    assert loops and list(graph.scopes()) == [graph, *(n.attr("body") for n in loops)]
    assert list(graph.walk()) == [*graph.nodes, *(n for loop in loops for n in loop.attr("body").nodes)]
    assert sine_compiled.log[-1].nodes == len(list(graph.walk()))


def test_time_dependent_dynamics_are_refused():
    from lnnedge.models.ltc import ODEBlock

    class Forced(torch.nn.Module):
        def forward(self, t, h, x):
            return -h + t * x

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ode = ODEBlock(Forced(), torch.linspace(0, 1, 5))

        def forward(self, x):
            return self.ode(torch.zeros_like(x), x)

    with pytest.raises(CompileError, match="uses t"):
        compile_module(Model(), (torch.zeros(2, 3),))


_DIGEST = """
import hashlib, torch
from lnnedge.compiler import compile_module
from lnnedge.models.ncps import NcpsSequence, NcpsStep
torch.manual_seed(0)
model = NcpsSequence("ncps-cfc", 1, 16, 1, "autoncp").eval()
step = NcpsStep(model.rnn)
compiled = compile_module(step, (torch.zeros(1, 1), torch.zeros(1, model.hidden)), state=((1, 1),))
print(hashlib.sha256(compiled.data).hexdigest())
"""


def test_compiled_bytes_do_not_depend_on_the_string_hash_seed():
    """Python randomises the order of a set of strings per process (PYTHONHASHSEED); the compiler's output
    must not follow it (fuse_elementwise grew its groups in set order: the same model gave other files)."""
    import os
    import subprocess
    import sys

    digests = set()
    for seed in ("0", "1", "2"):
        proc = subprocess.run([sys.executable, "-c", _DIGEST], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        digests.add(proc.stdout.strip())
    assert len(digests) == 1
