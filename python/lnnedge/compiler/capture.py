"""Capture: a torch module + example inputs -> IR, through torch.export.

torch.export cannot trace torchdiffeq.odeint (its input checks depend on
values), so every ODEBlock is made opaque during export: its forward becomes
one custom op, `lnnedge::ode_block`. The block's dynamics `func(t, h, *args)`
is exported on its own and attached to the IR node; passes/lower_ode then
emits the solver around it.

Dim 0 of every input is exported as a dynamic batch dimension, so reshapes
that mention the batch stay symbolic and the IR marks batched values.
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.export import Dim, export

from ..models.ltc import ODEBlock
from .ir import CompileError, Graph, Node, TensorType

_BLOCKS: dict[int, ODEBlock] = {}


@torch.library.custom_op("lnnedge::ode_block", mutates_args=())
def _ode_block(h0: torch.Tensor, args: list[torch.Tensor], block: int) -> torch.Tensor:
    return _BLOCKS[block].forward(h0, *args)


@_ode_block.register_fake
def _ode_block_fake(h0: torch.Tensor, args: list[torch.Tensor], block: int) -> torch.Tensor:
    return torch.empty_like(h0)


@contextlib.contextmanager
def _opaque_ode_blocks(module: torch.nn.Module) -> Iterator[dict[int, ODEBlock]]:
    blocks = {i: m for i, m in enumerate(m for m in module.modules() if isinstance(m, ODEBlock))}
    originals = {}
    for index, block in blocks.items():
        originals[index] = block.forward
        block.forward = _make_opaque(index)  # type: ignore[method-assign]
    _BLOCKS.update(blocks)
    try:
        yield blocks
    finally:
        for index, block in blocks.items():
            block.forward = originals[index]  # type: ignore[method-assign]
            _BLOCKS.pop(index, None)


def _make_opaque(index: int) -> Callable[..., torch.Tensor]:
    def forward(h0: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        return torch.ops.lnnedge.ode_block(h0, list(args), index)

    return forward


def capture(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> Graph:
    """Export `module` (eval mode, float32) and translate it into the IR."""
    module = module.eval()
    examples = tuple(_at_least_two_rows(x) for x in example_inputs)
    with _opaque_ode_blocks(module) as blocks:
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
    t = _Translator(module_prefix, block_paths or {})
    inputs: list[str] = []
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in lifted:
                t.constant(node.name, state[lifted[node.name]])
            else:
                inputs.append(node.name)
                t.types[node.name] = _type_of(node)
                t.values[node.name] = node.name
        elif node.op == "call_function":
            t.call(node, blocks)
        elif node.op == "output":
            outputs = tuple(t.value(arg) for arg in node.args[0])
        else:
            raise CompileError(f"unexpected graph node {node.op} {node.target}")
    return Graph(tuple(inputs), outputs, tuple(t.nodes), t.constants, t.types)


def _type_of(fx_node) -> TensorType:
    val = fx_node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise CompileError(f"value {fx_node.name} is not a tensor", None)
    if val.dtype != torch.float32:
        raise CompileError(f"value {fx_node.name} has dtype {val.dtype}; only float32 is supported")
    shape, batched = [], False
    for i, dim in enumerate(val.shape):
        if isinstance(dim, torch.SymInt):
            if i != 0:
                raise CompileError(f"value {fx_node.name} has a batch-dependent size in dim {i}; "
                                   "only dim 0 may depend on the batch")
            batched = True
            shape.append(1)
        else:
            shape.append(int(dim))
    return TensorType(tuple(shape), batched)


def source_line(fx_node) -> str:
    """'file.py:LINE: code' of the innermost frame outside torch, from export's stack trace."""
    trace = fx_node.meta.get("stack_trace") or ""
    lines = trace.strip().splitlines()
    best = ""
    for i, line in enumerate(lines):
        line = line.strip()
        if line.startswith("File "):
            parts = line.split('"')
            path = parts[1] if len(parts) > 1 else ""
            if any(f"{os.sep}{pkg}{os.sep}" in path for pkg in ("torch", "torchdiffeq", "compiler")):
                continue
            lineno = line.split("line ")[-1].split(",")[0]
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            best = f"{os.path.basename(path)}:{lineno}: {code}"
    return best


_BINARY = {
    torch.ops.aten.add.Tensor: "add", torch.ops.aten.sub.Tensor: "sub",
    torch.ops.aten.mul.Tensor: "mul", torch.ops.aten.div.Tensor: "div",
    operator.add: "add", operator.sub: "sub", operator.mul: "mul", operator.truediv: "div",
}
_UNARY = {
    torch.ops.aten.neg.default: "neg", torch.ops.aten.exp.default: "exp",
    torch.ops.aten.sigmoid.default: "sigmoid", torch.ops.aten.tanh.default: "tanh",
    torch.ops.aten.relu.default: "relu",
}
_IDENTITY = {torch.ops.aten.alias.default, torch.ops.aten.detach.default, torch.ops.aten.clone.default,
             torch.ops.aten.contiguous.default}
_RESHAPE = {torch.ops.aten.view.default, torch.ops.aten.reshape.default, torch.ops.aten._unsafe_view.default}
SUPPORTED = sorted({*_BINARY.values(), *_UNARY.values(), "linear", "cat", "zeros", "reshape", "rsub",
                    "ODEBlock (euler, midpoint, rk4)"})


class _Translator:
    """Walks an exported fx graph and appends IR nodes."""

    def __init__(self, module_prefix: str, block_paths: dict[int, str]) -> None:
        self.module_prefix = module_prefix
        self.block_paths = block_paths
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self.types: dict[str, TensorType] = {}
        self.values: dict[str, str] = {}
        self._scalars = 0

    def constant(self, name: str, tensor: torch.Tensor) -> None:
        array = tensor.detach().to(torch.float32).cpu().numpy().astype(np.float32)
        self.constants[name] = array
        self.types[name] = TensorType(tuple(array.shape))
        self.values[name] = name

    def scalar(self, value: float) -> str:
        name = f"scalar{self._scalars}"
        self._scalars += 1
        self.constant(name, torch.tensor(float(value), dtype=torch.float32))
        return name

    def value(self, arg) -> str:
        if isinstance(arg, torch.fx.Node):
            return self.values[arg.name]
        if isinstance(arg, (int, float)) and not isinstance(arg, bool):
            return self.scalar(arg)
        raise CompileError(f"unsupported argument {arg!r}")

    def module_of(self, fx_node) -> str | None:
        """The nn.Linear this node is the whole of (for per-module comparisons in verify --trace)."""
        stack = fx_node.meta.get("nn_module_stack") or {}
        if not stack:
            return None
        path, kind = list(stack.values())[-1]
        kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        if not kind.endswith("Linear"):
            return None
        return f"{self.module_prefix}{path}"

    def emit(self, op: str, fx_node, inputs: Sequence[str], **attrs) -> None:
        name = fx_node.name
        if op in ("linear", "matmul_nt"):
            module = self.module_of(fx_node)
            if module:
                attrs["module"] = module
        self.nodes.append(Node(op, tuple(inputs), (name,), tuple(attrs.items()), source_line(fx_node)))
        self.types[name] = _type_of(fx_node)
        self.values[name] = name

    def call(self, fx_node, blocks: dict[int, ODEBlock]) -> None:
        target, args, kwargs = fx_node.target, fx_node.args, fx_node.kwargs
        src = source_line(fx_node)
        if not isinstance(fx_node.meta.get("val"), torch.Tensor):
            return  # symbolic-size arithmetic and runtime asserts: shapes are handled by the IR's types
        if target in _BINARY:
            if kwargs.get("alpha", 1) != 1 or kwargs.get("rounding_mode") is not None:
                raise CompileError(f"{target} with {dict(kwargs)} is not supported", Node(str(target), (), (), (), src))
            self.emit(_BINARY[target], fx_node, [self.value(args[0]), self.value(args[1])])
        elif target == torch.ops.aten.rsub.Scalar:
            self.emit("sub", fx_node, [self.value(args[1]), self.value(args[0])])
        elif target in _UNARY:
            self.emit(_UNARY[target], fx_node, [self.value(args[0])])
        elif target == torch.ops.aten.linear.default:
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            ins = [self.value(args[0]), self.value(args[1])] + ([self.value(bias)] if bias is not None else [])
            self.emit("linear" if bias is not None else "matmul_nt", fx_node, ins)
        elif target == torch.ops.aten.cat.default:
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            self.emit("concat", fx_node, [self.value(a) for a in args[0]], axis=int(dim))
        elif target in (torch.ops.aten.new_zeros.default, torch.ops.aten.zeros.default,
                        torch.ops.aten.zeros_like.default):
            self.emit("zeros", fx_node, [])
        elif target in _RESHAPE:
            self.emit("reshape", fx_node, [self.value(args[0])])
        elif target in _IDENTITY:
            self.values[fx_node.name] = self.value(args[0])
        elif target == torch.ops.lnnedge.ode_block.default:
            h0, extra, index = args
            block = blocks[index]
            prefix = f"{self.block_paths[index]}." if self.block_paths.get(index) else ""
            self.emit("ode", fx_node, [self.value(h0)] + [self.value(a) for a in extra],
                      dynamics=capture_dynamics(block, fx_node, extra, prefix), method=block.method,
                      grid=block.t.detach().cpu().numpy().astype(np.float32))
        else:
            raise CompileError(
                f"unsupported operation {target} in the model; supported: {', '.join(SUPPORTED)}",
                Node(str(target), (), (), (), src),
            )


def capture_dynamics(block: ODEBlock, fx_node, extra_args, module_prefix: str = "") -> Graph:
    """Export block.func(t, h, *args) with examples shaped like the block's inputs."""
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
    dynamic = (None, {0: batch}, tuple({0: batch} for _ in examples[2:]))
    program = _export(Dynamics(block.func), tuple(examples), dynamic)
    graph = _translate(program, {}, module_prefix=module_prefix)
    t_name = graph.inputs[0]
    if any(t_name in n.inputs for n in graph.nodes) or t_name in graph.outputs:
        raise CompileError(f"the ODE dynamics {type(block.func).__name__} uses t; only autonomous dynamics "
                           "f(h, x) are supported by the bytecode solver", None)
    return graph
