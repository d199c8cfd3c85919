"""How each captured torch op becomes IR: the Translator (the IR being built) and one rule per kind of op.

The op table (optable.py) names, for every torch target, the row whose rule translates it; a rule is
rule(translator, fx_node, row). A rule that meets a form the VM cannot run (a strided pool with padding,
a transpose of a computed value) raises translator.refuse(what, source), which names what is supported.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..models.ltc import ODEBlock
from .ir import CompileError, Graph, Node, TensorType

if TYPE_CHECKING:
    from .optable import Op

Refuse = Callable[[str, str], CompileError]
Dynamics = Callable[[ODEBlock, torch.fx.Node, Sequence[torch.fx.Node], str], Graph]

# torch.export cannot trace torchdiffeq.odeint (its input checks depend on values), so during export every
# ODEBlock's forward is one custom op, lnnedge::ode_block, captured by the `ode` rule below.
_BLOCKS: dict[int, ODEBlock] = {}


@torch.library.custom_op("lnnedge::ode_block", mutates_args=())
def _ode_block(h0: torch.Tensor, args: list[torch.Tensor], block: int) -> torch.Tensor:
    return _BLOCKS[block].forward(h0, *args)


@_ode_block.register_fake
def _ode_block_fake(h0: torch.Tensor, args: list[torch.Tensor], block: int) -> torch.Tensor:
    return torch.empty_like(h0)


@contextlib.contextmanager
def opaque_ode_blocks(module: torch.nn.Module) -> Iterator[dict[int, ODEBlock]]:
    """While active, every ODEBlock of `module` runs as the custom op; yields index -> block."""
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


def type_of(fx_node) -> TensorType:
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


class Translator:
    """The IR built from one exported fx graph: nodes, constants, types, and each fx value's IR name."""

    def __init__(self, refuse: Refuse, dynamics: Dynamics, blocks: dict[int, ODEBlock], module_prefix: str = "",
                 block_paths: dict[int, str] | None = None, folded: set[str] = frozenset()) -> None:
        self.refuse = refuse          # the error for a form the VM cannot run (optable.unsupported)
        self.dynamics = dynamics      # captures an ODEBlock's dynamics (capture.capture_dynamics)
        self.blocks = blocks
        self.module_prefix = module_prefix
        self.block_paths = block_paths or {}
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

    def scalar_array(self, array: np.ndarray) -> str:
        name = f"const{self._scalars}"
        self._scalars += 1
        self.constant(name, torch.from_numpy(array))
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
        self.nodes.append(Node(op, tuple(inputs), (name,), tuple(attrs.items()), source_line(fx_node)))
        self.types[name] = type_of(fx_node)
        self.values[name] = name

    def emit_split(self, fx_node, x: str, t: TensorType, sizes: list[int], name: str, src: str) -> tuple[str, ...]:
        """One `split` node of x along its last axis; the pieces' IR names."""
        pieces = tuple(f"{name}_{i}" for i in range(len(sizes)))
        self.nodes.append(Node("split", (x,), pieces, (("sizes", tuple(sizes)),), src))
        for piece, n in zip(pieces, sizes):
            self.types[piece] = TensorType(t.shape[:-1] + (n,), t.batched)
        return pieces

    def fold(self, fx_node) -> None:
        """A value of parameters only: computed here by torch itself, stored as a constant."""
        def tensor(arg):
            return torch.from_numpy(self.constants[self.values[arg.name]])

        args = torch.fx.node.map_arg(fx_node.args, tensor)
        kwargs = torch.fx.node.map_arg(fx_node.kwargs, tensor)
        with torch.no_grad():
            self.constant(fx_node.name, fx_node.target(*args, **kwargs))


# ---- the rules: rule(translator, fx_node, row of the op table) ------------------------------------------------


def operands(t: Translator, fx_node, op: Op) -> None:
    """An op of its first `op.operands` arguments (rsub(x, s) is s - x); no alpha, no rounding mode."""
    kwargs = fx_node.kwargs
    if kwargs.get("alpha", 1) != 1 or kwargs.get("rounding_mode") is not None:
        raise CompileError(f"{fx_node.target} with {dict(kwargs)} is not supported",
                           Node(str(fx_node.target), (), (), (), source_line(fx_node)))
    args = fx_node.args[:op.operands]
    if fx_node.target == torch.ops.aten.rsub.Scalar:
        args = args[::-1]
    t.emit(op.name, fx_node, [t.value(a) for a in args])


def linear(t: Translator, fx_node, op: Op) -> None:
    """nn.Linear: `linear` with its bias, `matmul_nt` without."""
    args = fx_node.args
    bias = args[2] if len(args) > 2 else fx_node.kwargs.get("bias")
    ins = [t.value(args[0]), t.value(args[1])] + ([t.value(bias)] if bias is not None else [])
    module = t.module_of(fx_node)
    t.emit(op.name if bias is not None else "matmul_nt", fx_node, ins, **({"module": module} if module else {}))


def concat(t: Translator, fx_node, op: Op) -> None:
    args = fx_node.args
    dim = args[1] if len(args) > 1 else fx_node.kwargs.get("dim", 0)
    t.emit(op.name, fx_node, [t.value(a) for a in args[0]], axis=int(dim))


def nullary(t: Translator, fx_node, op: Op) -> None:
    """zeros: the shape is the recorded one."""
    t.emit(op.name, fx_node, [])


def alias(t: Translator, fx_node, op: Op) -> None:
    """detach, clone, contiguous...: the same value under another name."""
    t.values[fx_node.name] = t.value(fx_node.args[0])


def transposed_constant(t: Translator, fx_node, op: Op) -> None:
    """t / transpose / permute of a constant (a weight): computed now; of anything else: refused."""
    target, args = fx_node.target, fx_node.args
    source = t.value(args[0])
    if source not in t.constants:
        raise t.refuse(f"op {target} of a computed value", source_line(fx_node))
    array = torch.from_numpy(t.constants[source])
    folded = array.t() if target == torch.ops.aten.t.default else (
        array.transpose(args[1], args[2]) if target == torch.ops.aten.transpose.int else array.permute(args[1]))
    t.constant(fx_node.name, folded.contiguous())


def conv2d(t: Translator, fx_node, op: Op) -> None:
    x, w, bias, stride, padding, dilation, groups = [*fx_node.args, *[None] * 7][:7]
    stride, padding = list(stride or [1, 1]), list(padding or [0, 0])
    dilation, groups = list(dilation or [1, 1]), groups or 1
    if len(set(stride)) != 1 or len(set(padding)) != 1 or set(dilation) != {1} or groups != 1:
        raise t.refuse(f"conv2d with stride {stride}, padding {padding}, dilation {dilation}, groups {groups} "
                       "(only equal stride and padding in both dims, no dilation, one group)", source_line(fx_node))
    weight = t.value(w)
    bias_name = t.scalar_array(np.zeros(t.types[weight].shape[0], np.float32)) if bias is None else t.value(bias)
    t.emit(op.name, fx_node, [t.value(x), weight, bias_name], stride=int(stride[0]), padding=int(padding[0]))


def pool2d(t: Translator, fx_node, op: Op) -> None:
    is_max = fx_node.target == torch.ops.aten.max_pool2d.default
    args = [*fx_node.args, *[None] * 7][:7]
    kernel = list(args[1])
    stride = list(args[2] or kernel)
    padding = args[3] if args[3] is not None else 0
    padding = list(padding) if isinstance(padding, (list, tuple)) else [padding]
    extra = args[4:] if is_max else args[4:5]  # max: dilation, ceil_mode; avg: ceil_mode
    dilation = list(args[4] or [1]) if is_max else [1]
    ceil = (args[5] if is_max else args[4]) or False
    if (len(set(kernel)) != 1 or len(set(stride)) != 1 or set(padding) != {0} or set(dilation) != {1}
            or ceil or (not is_max and args[6] is not None)):
        raise t.refuse(f"{op.name} with kernel {kernel}, stride {stride}, padding {padding}, options {extra} "
                       "(only square windows and strides, no padding, floor mode)", source_line(fx_node))
    t.emit(op.name, fx_node, [t.value(args[0])], kernel=int(kernel[0]), stride=int(stride[0]))


def softmax(t: Translator, fx_node, op: Op) -> None:
    t.emit(op.name, fx_node, [t.value(fx_node.args[0])], axis=int(fx_node.args[1]))


def reduce(t: Translator, fx_node, op: Op) -> None:
    """sum / mean over one or several dims: one reduction per dim, the highest first (so the lower ones keep
    their numbers); a mean over several dims is sums, then one mean and one division."""
    src = source_line(fx_node)
    args = [*fx_node.args, None, None, None][:4]
    keepdim = bool(args[2] if args[2] is not None else fx_node.kwargs.get("keepdim", False))
    if fx_node.kwargs.get("dtype") is not None or args[3] is not None:
        raise t.refuse(f"{op.name} with a dtype", src)
    source = t.value(args[0])
    rank = len(t.types[source].shape)
    dims = args[1]
    dims = sorted({d % rank for d in ([dims] if isinstance(dims, int) else list(dims or range(rank)))}, reverse=True)
    if op.name == "reduce_mean" and len(dims) > 1:
        for d in dims[:-1]:
            source = _reduce_step(t, "reduce_sum", fx_node, source, d, keepdim, src)
        count = math.prod(t.types[t.value(args[0])].shape[d] for d in dims[:-1])
        source = _reduce_step(t, op.name, fx_node, source, dims[-1], keepdim, src)
        t.emit("div", fx_node, [source, t.scalar(count)])
        return
    for d in dims[:-1]:
        source = _reduce_step(t, op.name, fx_node, source, d, keepdim, src)
    t.emit(op.name, fx_node, [source], axis=dims[-1], keepdim=keepdim)


def _reduce_step(t: Translator, op: str, fx_node, source: str, axis: int, keepdim: bool, src: str) -> str:
    name = f"{fx_node.name}_axis{axis}"
    x = t.types[source]
    shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape)) if keepdim else tuple(
        d for i, d in enumerate(x.shape) if i != axis)
    t.nodes.append(Node(op, (source,), (name,), (("axis", axis), ("keepdim", keepdim)), src))
    t.types[name] = TensorType(shape, x.batched)
    t.values[name] = name
    return name


def split(t: Translator, fx_node, op: Op) -> None:
    """split / split_with_sizes / chunk along the last axis: one output per piece; a slice x[..., a:b] of the last axis:
    the middle piece of a split; a slice that keeps a whole axis: x itself."""
    if fx_node.target == torch.ops.aten.slice.Tensor:
        _slice(t, fx_node)
        return
    args, src = fx_node.args, source_line(fx_node)
    x = args[0]
    sizes = args[1]
    if fx_node.target in (torch.ops.aten.split.Tensor, torch.ops.aten.chunk.default):
        n = int(x.meta["val"].shape[-1])  # equal pieces of args[1] (chunk: of n / args[1] rounded up), the last shorter
        piece = args[1] if fx_node.target == torch.ops.aten.split.Tensor else -(-n // args[1])
        sizes = [min(piece, n - i) for i in range(0, n, piece)]
    rank = len(x.meta["val"].shape)
    dim = args[2] if len(args) > 2 else fx_node.kwargs.get("dim", 0)
    if dim % rank != rank - 1:
        raise CompileError(f"split along dim {dim} of a rank-{rank} tensor: only the last axis is supported",
                           Node("split", (), (), (), src))
    t.pieces[fx_node.name] = t.emit_split(fx_node, t.value(x), type_of(x), [int(n) for n in sizes], fx_node.name,
                                          src)
    t.values[fx_node.name] = fx_node.name


def _slice(t: Translator, fx_node) -> None:
    args, src = fx_node.args, source_line(fx_node)
    x, dim = args[0], args[1] if len(args) > 1 else 0
    start = args[2] if len(args) > 2 else 0
    end = args[3] if len(args) > 3 else None
    step = args[4] if len(args) > 4 else 1
    xt = type_of(x)
    rank = len(xt.shape)
    size = xt.shape[dim % rank]
    whole_batch = dim % rank == 0 and xt.batched
    start = 0 if whole_batch else max(0, start + size if start < 0 else start)
    end = size if end is None or whole_batch else min(size, end + size if end < 0 else end)
    if (start, end) == (0, size) and step == 1:
        t.values[fx_node.name] = t.value(x)
        return
    if dim % rank != rank - 1 or step != 1 or not start < end:
        raise CompileError(f"slice [{start}:{end}:{step}] of dim {dim} of {xt}: only contiguous slices of the "
                           "last axis are supported", Node("slice", (), (), (), src))
    sizes = [n for n in (start, end - start, size - end) if n]
    pieces = t.emit_split(fx_node, t.value(x), xt, sizes, f"{fx_node.name}/split", src)
    t.values[fx_node.name] = pieces[1 if start else 0]


def select(t: Translator, fx_node, op: Op) -> None:
    """x[:, i] of an axis of size 1 (e.g. the time axis of a one-step sequence): the same elements, reshaped; of
    any other axis: refused."""
    x, dim = fx_node.args[0], fx_node.args[1]
    xt = type_of(x)
    axis = dim % len(xt.shape)
    if (axis == 0 and xt.batched) or xt.shape[axis] != 1:
        raise t.refuse(f"indexing dim {dim} of {xt} (only an axis of size 1)", source_line(fx_node))
    t.emit("reshape", fx_node, [t.value(x)])


def stack(t: Translator, fx_node, op: Op) -> None:
    """torch.stack of one tensor (e.g. a one-step sequence's outputs): an unsqueeze; of several: refused."""
    tensors = fx_node.args[0]
    if len(tensors) != 1:
        raise t.refuse(f"stack of {len(tensors)} tensors (only of one; cat joins several)", source_line(fx_node))
    t.emit("reshape", fx_node, [t.value(tensors[0])])


def getitem(t: Translator, fx_node, op: Op) -> None:
    """A piece of a split; any other indexing is refused."""
    parent = fx_node.args[0]
    if not isinstance(parent, torch.fx.Node) or parent.name not in t.pieces:
        raise t.refuse(f"op {fx_node.target} (indexing) of anything but a split", source_line(fx_node))
    t.values[fx_node.name] = t.pieces[parent.name][fx_node.args[1]]


def ode(t: Translator, fx_node, op: Op) -> None:
    """An ODEBlock: its dynamics captured on their own, solved by passes/lower_ode."""
    h0, extra, index = fx_node.args
    block = t.blocks[index]
    prefix = f"{t.block_paths[index]}." if t.block_paths.get(index) else ""
    t.emit(op.name, fx_node, [t.value(h0)] + [t.value(a) for a in extra],
           dynamics=t.dynamics(block, fx_node, extra, prefix), method=block.method,
           options=tuple(sorted(block.options.items())), grid=block.t.detach().cpu().numpy().astype(np.float32),
           rtol=float(block.rtol), atol=float(block.atol))
