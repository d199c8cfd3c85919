"""Capture: a torch module + example inputs -> IR, through torch.export.

torch.export cannot trace torchdiffeq.odeint (its input checks depend on
values), so every ODEBlock is made opaque during export: its forward becomes
one custom op, `lnnedge::ode_block` (capture_rules.py). The block's dynamics
`func(t, h, *args)` is exported on its own and attached to the IR node;
passes/lower_ode then emits the solver around it.

Dim 0 of every input is exported as a dynamic batch dimension, so reshapes
that mention the batch stay symbolic and the IR marks batched values.

Which torch ops are captured, and how, is the op table's (optable.py): this
module walks the exported graph and hands each op to its row's rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.export import Dim, export

from ..models.ltc import ODEBlock
from . import optable
from .capture_rules import Translator, opaque_ode_blocks, source_line, type_of
from .ir import CompileError, Graph
from .odeint_calls import odeint_as_blocks


def capture(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> Graph:
    """Export `module` (eval mode, float32) and translate it into the IR."""
    module = module.eval()
    examples = tuple(_at_least_two_rows(x) for x in example_inputs)
    with odeint_as_blocks(module, examples), opaque_ode_blocks(module) as blocks:
        batch = Dim("batch")
        program = _export(module, examples, tuple({0: batch} for _ in examples))
        paths = {i: name for name, m in module.named_modules() for i, b in blocks.items() if m is b}
        graph = _translate(program, blocks, block_paths=paths)
    return graph


def _at_least_two_rows(x: torch.Tensor) -> torch.Tensor:
    """torch.export specialises a dimension of size 0 or 1; give the batch two rows."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 0:
        raise CompileError("example inputs need a batch dimension (dim 0); got a scalar")
    return x if x.shape[0] >= 2 else x.expand(2, *x.shape[1:]).clone()


def _export(module: torch.nn.Module, examples: tuple, dynamic: tuple) -> torch.export.ExportedProgram:
    try:
        return export(module, examples, dynamic_shapes=dynamic)
    except Exception as exc:  # torch raises many types; the user needs the message, not the type
        raise CompileError(f"torch.export could not capture {type(module).__name__}: {exc}") from exc


def _translate(program: torch.export.ExportedProgram, blocks: dict[int, ODEBlock],
               module_prefix: str = "", block_paths: dict[int, str] | None = None) -> Graph:
    sig = program.graph_signature
    lifted = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    state = {**program.state_dict, **program.constants}
    folded = compile_time_values(program, set(lifted))
    check_supported(program, folded)
    t = Translator(optable.unsupported, capture_dynamics, blocks, module_prefix, block_paths, folded)
    inputs: list[str] = []
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in lifted:
                t.constant(node.name, state[lifted[node.name]])
            else:
                inputs.append(node.name)
                t.types[node.name] = type_of(node)
                t.values[node.name] = node.name
        elif node.op == "call_function":
            _call(t, node)
        elif node.op == "output":
            outputs = tuple(t.value(arg) for arg in node.args[0])
        else:
            raise CompileError(f"unexpected graph node {node.op} {node.target}")
    return Graph(tuple(inputs), outputs, tuple(t.nodes), t.constants, t.types)


def _call(t: Translator, fx_node) -> None:
    if fx_node.name in t.folded:
        t.fold(fx_node)
        return
    if not _computes_tensor(fx_node):
        return  # symbolic-size arithmetic and runtime asserts: shapes are handled by the IR's types
    op = optable.for_target(fx_node.target)
    if op is None or op.capture is None:
        raise _unsupported(fx_node)
    op.capture(t, fx_node, op)


def _computes_tensor(fx_node) -> bool:
    val = fx_node.meta.get("val")
    values = val if isinstance(val, (tuple, list)) else (val,)
    return any(isinstance(v, torch.Tensor) for v in values)


def _module_of(fx_node) -> str:
    """' in module NAME (TYPE)' for the innermost nn.Module the node came from, or ''."""
    stack = fx_node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, kind = list(stack.values())[-1]
    kind = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    return f" in module '{path}' ({kind.rsplit('.', 1)[-1]})" if path else f" in {kind.rsplit('.', 1)[-1]}.forward"


def _unsupported(fx_node) -> CompileError:
    return optable.unsupported(f"op {fx_node.target}{_module_of(fx_node)}", source_line(fx_node))


def _unsupported_message(fx_node, func_path: str = "") -> str:
    """The op, its module and file:line; in an ODE's dynamics (exported as the attribute `func` of a wrapper) the
    module is named by `func_path`, its path in the user's model."""
    module = _module_of(fx_node)
    if func_path:
        module = module.replace(" in module 'func", f" in module '{func_path}", 1)
    where = source_line(fx_node)
    return f"op {fx_node.target}{module}" + (f" at {where}" if where else "")


def _concrete(val) -> bool:
    return isinstance(val, torch.Tensor) and not any(isinstance(d, torch.SymInt) for d in val.shape)


def compile_time_values(program: torch.export.ExportedProgram, lifted: set[str]) -> set[str]:
    """Names of the graph values that depend on parameters and buffers only (e.g. softplus(w), w * mask):
    torch computes them once at compile time, whatever the op, and the device stores the result."""
    ode = optable.get("ode").targets
    known: set[str] = set()
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in lifted:
                known.add(node.name)
        elif node.op == "call_function" and node.target not in ode:
            inputs = node.all_input_nodes
            if inputs and all(n.name in known for n in inputs) and _concrete(node.meta.get("val")):
                known.add(node.name)
    return known


def check_supported(program: torch.export.ExportedProgram, folded: set[str] = frozenset()) -> None:
    """Before translating anything: the first op the VM has no instruction for stops compilation with its name,
    the module it belongs to, its line in the user's model and the list of what is supported (an unsupported
    layer such as nn.LSTM would otherwise fail later on a side effect, e.g. its batch-second state). Values
    computed from parameters alone (`folded`) may use any op."""
    for node in _unsupported_nodes(program, folded):
        raise _unsupported(node)


def _unsupported_nodes(program: torch.export.ExportedProgram, folded: set[str]) -> list:
    return [node for node in program.graph.nodes
            if node.op == "call_function" and optable.for_target(node.target) is None and node.name not in folded
            and _computes_tensor(node)]  # symbolic sizes, asserts, tuple indexing: no tensor computed


def unsupported_ops(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> list[str]:
    """Every op of `module` (its ODE dynamics included) the VM has no instruction for, each as 'op NAME in
    module M (Class) at file.py:LINE: code'; [] when every op has one. Nothing is translated or emitted."""
    module = module.eval()
    examples = tuple(_at_least_two_rows(x) for x in example_inputs)
    found: list[str] = []
    with odeint_as_blocks(module, examples), opaque_ode_blocks(module) as blocks:
        program = _export(module, examples, tuple({0: Dim("batch")} for _ in examples))
        paths = {id(m): name for name, m in module.named_modules()}
        programs = [(program, "")]
        ode = optable.get("ode").targets
        for node in program.graph.nodes:
            if node.op == "call_function" and node.target in ode:
                h0, extra, index = node.args
                programs.append((_export_dynamics(blocks[index], node, extra), paths[id(blocks[index].func)]))
        for p, func_path in programs:
            lifted = {**p.graph_signature.inputs_to_parameters, **p.graph_signature.inputs_to_buffers,
                      **p.graph_signature.inputs_to_lifted_tensor_constants}
            found += [_unsupported_message(n, func_path)
                      for n in _unsupported_nodes(p, compile_time_values(p, set(lifted)))]
    return found


def capture_dynamics(block: ODEBlock, fx_node, extra_args, module_prefix: str = "") -> Graph:
    """Export block.func(t, h, *args) with examples shaped like the block's inputs and translate it."""
    program = _export_dynamics(block, fx_node, extra_args)
    graph = _translate(program, {}, module_prefix=module_prefix)
    t_name = graph.inputs[0]
    if any(t_name in n.inputs for n in graph.nodes) or t_name in graph.outputs:
        raise CompileError(f"the ODE dynamics {type(block.func).__name__} uses t; only autonomous dynamics "
                           "f(h, x) are supported by the bytecode solver", None)
    return graph


def _export_dynamics(block: ODEBlock, fx_node, extra_args) -> torch.export.ExportedProgram:
    examples = [torch.tensor(0.0)]
    for arg in [fx_node.args[0], *extra_args]:
        val = arg.meta["val"]
        examples.append(torch.zeros([2 if isinstance(d, torch.SymInt) else int(d) for d in val.shape]))

    class Dynamics(torch.nn.Module):
        def __init__(self, func: torch.nn.Module):
            super().__init__()
            self.func = func

        def forward(self, t: torch.Tensor, h: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
            return self.func(t, h, *args)

    batch = Dim("batch")
    # *args is one entry of the spec, absent when the block has none (a user's odeint(func, y0, t): f(t, h))
    dynamic = (None, {0: batch}) + ((tuple({0: batch} for _ in examples[2:]),) if examples[2:] else ())
    return _export(Dynamics(block.func), tuple(examples), dynamic)
