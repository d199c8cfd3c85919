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
import math
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
    folded = compile_time_values(program, set(lifted))
    check_supported(program, folded)
    t = _Translator(module_prefix, block_paths or {}, folded)
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
_RESHAPE = {torch.ops.aten.view.default, torch.ops.aten.reshape.default, torch.ops.aten._unsafe_view.default,
            torch.ops.aten.flatten.using_ints, torch.ops.aten.unflatten.int, torch.ops.aten.squeeze.dim,
            torch.ops.aten.unsqueeze.default}
_UNARY.update({torch.ops.aten.relu_.default: "relu", torch.ops.aten.sigmoid_.default: "sigmoid",
               torch.ops.aten.tanh_.default: "tanh"})
_SOFTMAX = {torch.ops.aten.softmax.int: "softmax", torch.ops.aten._softmax.default: "softmax",
            torch.ops.aten.log_softmax.int: "log_softmax", torch.ops.aten._log_softmax.default: "log_softmax"}
_REDUCE = {torch.ops.aten.sum.dim_IntList: "reduce_sum", torch.ops.aten.mean.dim: "reduce_mean"}
_SPLIT = {torch.ops.aten.split_with_sizes.default, torch.ops.aten.split.Tensor}
_MATMUL = {torch.ops.aten.matmul.default, torch.ops.aten.mm.default, torch.ops.aten.bmm.default}
_POOL = {torch.ops.aten.max_pool2d.default: "maxpool2d", torch.ops.aten.avg_pool2d.default: "avgpool2d"}
# transposes and permutations: folded when they apply to a constant (a weight), else unsupported
_PERMUTE = {torch.ops.aten.t.default, torch.ops.aten.transpose.int, torch.ops.aten.permute.default}
SUPPORTED = sorted({*_BINARY.values(), *_UNARY.values(), "linear (nn.Linear)", "matmul / mm / bmm", "cat",
                    "zeros", "reshape / view / flatten", "rsub", "conv2d (nn.Conv2d: stride, padding, NCHW)",
                    "max_pool2d / avg_pool2d (nn.MaxPool2d / nn.AvgPool2d)", "softmax", "log_softmax",
                    "sum / mean over dims", "transpose of a constant", "ODEBlock (euler, midpoint, rk4)",
                    "split / slice along the last axis", "any op on parameters alone (computed at compile time)"})


def _known_targets() -> set:
    return {*_BINARY, *_UNARY, *_IDENTITY, *_RESHAPE, *_SOFTMAX, *_REDUCE, *_MATMUL, *_POOL, *_PERMUTE, *_SPLIT,
            torch.ops.aten.slice.Tensor, operator.getitem,
            torch.ops.aten.rsub.Scalar, torch.ops.aten.linear.default, torch.ops.aten.cat.default,
            torch.ops.aten.new_zeros.default, torch.ops.aten.zeros.default, torch.ops.aten.zeros_like.default,
            torch.ops.aten.conv2d.default, torch.ops.lnnedge.ode_block.default}


def _module_of(fx_node) -> str:
    """' in module NAME (TYPE)' for the innermost nn.Module the node came from, or ''."""
    stack = fx_node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, kind = list(stack.values())[-1]
    kind = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    return f" in module '{path}' ({kind.rsplit('.', 1)[-1]})" if path else f" in {kind.rsplit('.', 1)[-1]}.forward"


def _concrete(val) -> bool:
    return isinstance(val, torch.Tensor) and not any(isinstance(d, torch.SymInt) for d in val.shape)


def compile_time_values(program: torch.export.ExportedProgram, lifted: set[str]) -> set[str]:
    """Names of the graph values that depend on parameters and buffers only (e.g. softplus(w), w * mask):
    torch computes them once at compile time, whatever the op, and the device stores the result."""
    known: set[str] = set()
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in lifted:
                known.add(node.name)
        elif node.op == "call_function" and node.target != torch.ops.lnnedge.ode_block.default:
            inputs = node.all_input_nodes
            if inputs and all(n.name in known for n in inputs) and _concrete(node.meta.get("val")):
                known.add(node.name)
    return known


def check_supported(program: torch.export.ExportedProgram, folded: set[str] = frozenset()) -> None:
    """Before translating anything: the first op the VM has no instruction for stops compilation with its name,
    the module it belongs to, its line in the user's model and the list of what is supported (an unsupported
    layer such as nn.LSTM would otherwise fail later on a side effect, e.g. its batch-second state). Values
    computed from parameters alone (`folded`) may use any op."""
    known = _known_targets()
    for node in program.graph.nodes:
        if node.op != "call_function" or node.target in known or node.name in folded:
            continue
        val = node.meta.get("val")
        values = val if isinstance(val, (tuple, list)) else (val,)
        if not any(isinstance(v, torch.Tensor) for v in values):
            continue  # symbolic sizes, asserts, tuple indexing: no tensor computed
        name = getattr(node.target, "__name__", str(node.target))
        raise CompileError(
            f"unsupported operation {node.target}{_module_of(node)}: the VM has no instruction for {name}; "
            f"supported: {', '.join(SUPPORTED)}", Node(str(node.target), (), (), (), source_line(node)))


class _Translator:
    """Walks an exported fx graph and appends IR nodes."""

    def __init__(self, module_prefix: str, block_paths: dict[int, str], folded: set[str] = frozenset()) -> None:
        self.module_prefix = module_prefix
        self.block_paths = block_paths
        self.folded = folded
        self.nodes: list[Node] = []
        self.constants: dict[str, np.ndarray] = {}
        self.types: dict[str, TensorType] = {}
        self.values: dict[str, str] = {}
        self.pieces: dict[str, tuple[str, ...]] = {}  # a split's fx name -> its pieces' IR names
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

    def unsupported(self, fx_node, what: str, src: str) -> None:
        raise CompileError(f"{what} is not supported; supported: {', '.join(SUPPORTED)}",
                           Node(str(fx_node.target), (), (), (), src))

    def conv2d(self, fx_node, src: str) -> None:
        x, w, bias, stride, padding, dilation, groups = [*fx_node.args, *[None] * 7][:7]
        stride, padding = list(stride or [1, 1]), list(padding or [0, 0])
        dilation, groups = list(dilation or [1, 1]), groups or 1
        if len(set(stride)) != 1 or len(set(padding)) != 1 or set(dilation) != {1} or groups != 1:
            self.unsupported(fx_node, f"conv2d with stride {stride}, padding {padding}, dilation {dilation}, "
                             f"groups {groups} (only equal stride and padding in both dims, no dilation, one group)",
                             src)
        weight = self.value(w)
        if bias is None:
            bias_name = self.scalar_array(np.zeros(self.types[weight].shape[0], np.float32))
        else:
            bias_name = self.value(bias)
        self.emit("conv2d", fx_node, [self.value(x), weight, bias_name], stride=int(stride[0]),
                  padding=int(padding[0]))

    def pool(self, fx_node, op: str, src: str) -> None:
        args = [*fx_node.args, *[None] * 7][:7]
        kernel = list(args[1])
        stride = list(args[2] or kernel)
        padding = args[3] if args[3] is not None else 0
        padding = list(padding) if isinstance(padding, (list, tuple)) else [padding]
        extra = args[4:] if op == "maxpool2d" else args[4:5]  # max: dilation, ceil_mode; avg: ceil_mode
        dilation = list(args[4] or [1]) if op == "maxpool2d" else [1]
        ceil = (args[5] if op == "maxpool2d" else args[4]) or False
        if (len(set(kernel)) != 1 or len(set(stride)) != 1 or set(padding) != {0} or set(dilation) != {1}
                or ceil or (op == "avgpool2d" and args[6] is not None)):
            self.unsupported(fx_node, f"{op} with kernel {kernel}, stride {stride}, padding {padding}, "
                             f"options {extra} (only square windows and strides, no padding, floor mode)", src)
        self.emit(op, fx_node, [self.value(args[0])], kernel=int(kernel[0]), stride=int(stride[0]))

    def reduce(self, fx_node, op: str, src: str) -> None:
        args = [*fx_node.args, None, None, None][:4]
        dims = args[1]
        keepdim = bool(args[2] if args[2] is not None else fx_node.kwargs.get("keepdim", False))
        if fx_node.kwargs.get("dtype") is not None or args[3] is not None:
            self.unsupported(fx_node, f"{op} with a dtype", src)
        source = self.value(args[0])
        rank = len(self.types[source].shape)
        dims = sorted({d % rank for d in ([dims] if isinstance(dims, int) else list(dims or range(rank)))},
                      reverse=True)
        if op == "reduce_mean" and len(dims) > 1:  # mean over several dims: sums, then one division
            for d in dims[:-1]:
                source = self._reduce_step("reduce_sum", fx_node, source, d, keepdim, src)
            count = math.prod(self.types[self.value(args[0])].shape[d] for d in dims[:-1])
            source = self._reduce_step("reduce_mean", fx_node, source, dims[-1], keepdim, src)
            self.emit("div", fx_node, [source, self.scalar(count)])
            return
        for d in dims[:-1]:  # the highest axis first, so the lower ones keep their numbers
            source = self._reduce_step(op, fx_node, source, d, keepdim, src)
        self.emit(op, fx_node, [source], axis=dims[-1], keepdim=keepdim)

    def _reduce_step(self, op: str, fx_node, source: str, axis: int, keepdim: bool, src: str) -> str:
        name = f"{fx_node.name}_axis{axis}"
        t = self.types[source]
        shape = tuple(1 if i == axis else d for i, d in enumerate(t.shape)) if keepdim else tuple(
            d for i, d in enumerate(t.shape) if i != axis)
        self.nodes.append(Node(op, (source,), (name,), (("axis", axis), ("keepdim", keepdim)), src))
        self.types[name] = TensorType(shape, t.batched)
        self.values[name] = name
        return name

    def scalar_array(self, array: np.ndarray) -> str:
        name = f"const{self._scalars}"
        self._scalars += 1
        self.constant(name, torch.from_numpy(array))
        return name

    def fold(self, fx_node) -> None:
        """A value of parameters only: computed here by torch itself, stored as a constant."""
        def tensor(arg):
            return torch.from_numpy(self.constants[self.values[arg.name]])

        args = torch.fx.node.map_arg(fx_node.args, tensor)
        kwargs = torch.fx.node.map_arg(fx_node.kwargs, tensor)
        with torch.no_grad():
            self.constant(fx_node.name, fx_node.target(*args, **kwargs))

    def split(self, fx_node, sizes: list[int], src: str) -> None:
        """split / split_with_sizes along the last axis: one `split` node, one output per piece."""
        x = fx_node.args[0]
        rank = len(x.meta["val"].shape)
        dim = fx_node.args[2] if len(fx_node.args) > 2 else fx_node.kwargs.get("dim", 0)
        if dim % rank != rank - 1:
            raise CompileError(f"split along dim {dim} of a rank-{rank} tensor: only the last axis is supported",
                               Node("split", (), (), (), src))
        pieces = tuple(f"{fx_node.name}_{i}" for i in range(len(sizes)))
        self.nodes.append(Node("split", (self.value(x),), pieces, (("sizes", tuple(sizes)),), src))
        shape, batched = _type_of(x).shape, _type_of(x).batched
        for piece, size in zip(pieces, sizes):
            self.types[piece] = TensorType(shape[:-1] + (size,), batched)
        self.values[fx_node.name] = fx_node.name
        self.pieces[fx_node.name] = pieces

    def slice(self, fx_node, src: str) -> None:
        """x[..., a:b] on the last axis: the middle piece of a split; a slice that keeps a whole axis: x."""
        x, dim = fx_node.args[0], fx_node.args[1] if len(fx_node.args) > 1 else 0
        start = fx_node.args[2] if len(fx_node.args) > 2 else 0
        end = fx_node.args[3] if len(fx_node.args) > 3 else None
        step = fx_node.args[4] if len(fx_node.args) > 4 else 1
        t = _type_of(x)
        rank = len(t.shape)
        size = t.shape[dim % rank]
        start = max(0, start + size if start < 0 else start) if not (dim % rank == 0 and t.batched) else 0
        end = size if end is None or (dim % rank == 0 and t.batched) else min(size, end + size if end < 0 else end)
        if (start, end) == (0, size) and step == 1:
            self.values[fx_node.name] = self.value(x)
            return
        if dim % rank != rank - 1 or step != 1 or not start < end:
            raise CompileError(f"slice [{start}:{end}:{step}] of dim {dim} of {t}: only contiguous slices of the "
                               "last axis are supported", Node("slice", (), (), (), src))
        sizes = [n for n in (start, end - start, size - end) if n]
        name = f"{fx_node.name}/split"
        pieces = tuple(f"{name}_{i}" for i in range(len(sizes)))
        self.nodes.append(Node("split", (self.value(x),), pieces, (("sizes", tuple(sizes)),), src))
        for piece, n in zip(pieces, sizes):
            self.types[piece] = TensorType(t.shape[:-1] + (n,), t.batched)
        self.values[fx_node.name] = pieces[1 if start else 0]

    def call(self, fx_node, blocks: dict[int, ODEBlock]) -> None:
        target, args, kwargs = fx_node.target, fx_node.args, fx_node.kwargs
        src = source_line(fx_node)
        if fx_node.name in self.folded:
            self.fold(fx_node)
            return
        if target in _SPLIT:
            sizes = args[1]
            if target == torch.ops.aten.split.Tensor:  # equal pieces of args[1], the last one shorter
                n = int(args[0].meta["val"].shape[-1])
                sizes = [min(args[1], n - i) for i in range(0, n, args[1])]
            self.split(fx_node, [int(n) for n in sizes], src)
            return
        if target is operator.getitem and fx_node.args[0].name in self.pieces:
            self.values[fx_node.name] = self.pieces[fx_node.args[0].name][fx_node.args[1]]
            return
        if not isinstance(fx_node.meta.get("val"), torch.Tensor):
            return  # symbolic-size arithmetic and runtime asserts: shapes are handled by the IR's types
        if target == torch.ops.aten.slice.Tensor:
            self.slice(fx_node, src)
            return
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
        elif target == torch.ops.aten.conv2d.default:
            self.conv2d(fx_node, src)
        elif target in _POOL:
            self.pool(fx_node, _POOL[target], src)
        elif target in _SOFTMAX:
            self.emit(_SOFTMAX[target], fx_node, [self.value(args[0])], axis=int(args[1]))
        elif target in _REDUCE:
            self.reduce(fx_node, _REDUCE[target], src)
        elif target in _MATMUL:
            self.emit("matmul", fx_node, [self.value(args[0]), self.value(args[1])])
        elif target in _PERMUTE and self.value(args[0]) in self.constants:
            array = torch.from_numpy(self.constants[self.value(args[0])])
            folded = array.t() if target == torch.ops.aten.t.default else (
                array.transpose(args[1], args[2]) if target == torch.ops.aten.transpose.int else array.permute(args[1]))
            self.constant(fx_node.name, folded.contiguous())
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
