"""The shape rule of each IR op: (node, its row of the op table, input types, torch's recorded type) -> output types.

The op table (optable.py) names each op's rule; passes/shape_inference applies them. The graph ops' rules
restate the VM's (lnn_opcodes.def, vm/src/graph.c), limits included, so a model the VM would refuse fails
here with the op's source line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ir import CompileError, Node, TensorType

if TYPE_CHECKING:
    from .optable import Op


def broadcast(a: TensorType, b: TensorType, node: Node) -> TensorType:
    """numpy broadcasting where a batched dim 0 is a symbol that only matches itself or 1."""
    rank = max(len(a.shape), len(b.shape))
    dims: list[int] = []
    batched = False
    for i in range(rank):
        da, ba = _dim(a, i - rank)
        db, bb = _dim(b, i - rank)
        if ba and bb:
            dims.append(1)
            batched = True
        elif ba or bb:
            other = db if ba else da
            if other != 1:
                raise CompileError(f"{node.op}: cannot broadcast the batch dimension against size {other} "
                                   f"({a} vs {b})", node)
            dims.append(1)
            batched = True
        elif da == db or da == 1 or db == 1:
            dims.append(max(da, db))
        else:
            raise CompileError(f"{node.op}: shapes {a} and {b} do not broadcast", node)
    if batched and not (rank and (_dim(a, -rank)[1] or _dim(b, -rank)[1])):
        raise CompileError(f"{node.op}: the batch dimension must stay the leading one ({a} vs {b})", node)
    return TensorType(tuple(dims), batched)


def _dim(t: TensorType, index: int) -> tuple[int, bool]:
    """(size, is-batch) of dim `index` counted from the right, (1, False) when t has no such dim."""
    pos = len(t.shape) + index
    if pos < 0:
        return 1, False
    return t.shape[pos], (t.batched and pos == 0)


def elementwise(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    """Unary ops keep their operand's type; binary ops and fused programs broadcast every operand."""
    out = ins[0]
    for t in ins[1:]:
        out = broadcast(out, t, node)
    return [out]


def product(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    """x (..., K) times a weight W (M, K), plus a bias (M) if the op has one."""
    x, w = ins[0], ins[1]
    if len(w.shape) != 2 or w.batched or not x.shape or x.shape[-1] != w.shape[1]:
        raise CompileError(f"{node.op}: input {x} does not fit weight {w}", node)
    if op.bias and (ins[2].shape != (w.shape[0],) or ins[2].batched):
        raise CompileError(f"{node.op}: bias {ins[2]} does not fit weight {w}", node)
    return [TensorType(x.shape[:-1] + (w.shape[0],), x.batched)]


def transposed_product(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None
                       ) -> list[TensorType]:
    """The weight transposed, Wt (K, M), the M columns split over the outputs (fuse_products)."""
    x, wt = ins[0], ins[1]
    splits = node.attr("splits") or ()
    if len(wt.shape) != 2 or wt.batched or not x.shape or x.shape[-1] != wt.shape[0]:
        raise CompileError(f"{node.op}: input {x} does not fit transposed weight {wt}", node)
    if op.bias and (ins[2].shape != (wt.shape[1],) or ins[2].batched):
        raise CompileError(f"{node.op}: bias {ins[2]} does not fit transposed weight {wt}", node)
    if sum(splits) != wt.shape[1] or len(splits) != len(node.outputs) or min(splits, default=0) < 1:
        raise CompileError(f"{node.op}: column split {splits} does not fit transposed weight {wt}", node)
    return [TensorType(x.shape[:-1] + (m,), x.batched) for m in splits]


def quantized_product(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None
                      ) -> list[TensorType]:
    """An int8 weight, Q (M, K) or Qt (K, M), with one scale per output (store_int8)."""
    x, q, scale = ins[:3]
    transposed = op.weight == "Wt"
    k, m = (q.shape if transposed else q.shape[::-1]) if len(q.shape) == 2 else (0, 0)
    bias_ok = not op.bias or (ins[3].shape == (m,) and not ins[3].batched)
    splits = (node.attr("splits") or ()) if transposed else (m,)
    if (q.dtype != "i8" or q.batched or not x.shape or x.shape[-1] != k or scale.shape != (m,) or not bias_ok
            or sum(splits) != m or len(splits) != len(node.outputs)):
        raise CompileError(f"{node.op}: input {x}, int8 weight {q}, scale {scale} do not fit", node)
    return [TensorType(x.shape[:-1] + (n,), x.batched) for n in splits]


def w8a16_product(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    """An int8 panel P (ceil(M/2), ceil(K/2), 4) with one scale per output, the M columns split over the outputs
    (store_w8a16)."""
    x, panel, scale = ins[:3]
    m = scale.shape[0] if len(scale.shape) == 1 else -1
    k = x.shape[-1] if x.shape else -1
    bias_ok = not op.bias or (ins[3].shape == (m,) and not ins[3].batched)
    splits = node.attr("splits") or ()
    if (panel.dtype != "i8" or panel.batched or k < 1 or m < 1 or scale.batched
            or panel.shape != ((m + 1) // 2, (k + 1) // 2, 4) or not bias_ok
            or sum(splits) != m or len(splits) != len(node.outputs) or min(splits, default=0) < 1):
        raise CompileError(f"{node.op}: input {x}, panel {panel}, scale {scale}, split {splits} do not fit", node)
    return [TensorType(x.shape[:-1] + (n,), x.batched) for n in splits]


def concat(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    first = ins[0]
    rank = len(first.shape)
    axis = node.attr("axis", 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank or (axis == 0 and first.batched):
        raise CompileError(f"concat: axis {node.attr('axis')} is not valid for {first}", node)
    total = 0
    for t in ins:
        if len(t.shape) != rank or t.batched != first.batched or any(
            t.shape[i] != first.shape[i] for i in range(rank) if i != axis
        ):
            raise CompileError(f"concat: {t} does not match {first} outside axis {axis}", node)
        total += t.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return [TensorType(tuple(shape), first.batched)]


def split(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    """Along the last axis, one output per piece."""
    sizes = node.attr("sizes") or ()
    x = ins[0]
    if not x.shape or sum(sizes) != x.shape[-1] or len(sizes) != len(node.outputs) or min(sizes, default=0) < 1:
        raise CompileError(f"split: pieces {sizes} do not divide the last axis of {x}", node)
    return [TensorType(x.shape[:-1] + (n,), x.batched) for n in sizes]


def as_recorded(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    """zeros and reshape: the shape torch recorded (a reshape keeps the element count and the batch)."""
    if recorded is None:
        raise CompileError(f"{node.op}: no recorded shape", node)
    if ins and (recorded.elems != ins[0].elems or recorded.batched != ins[0].batched):
        raise CompileError(f"{node.op}: {ins[0]} cannot become {recorded}", node)
    return [recorded]


def _axis(node: Node, t: TensorType) -> int:
    """The node's axis attribute made non-negative; never the batch dimension."""
    rank = len(t.shape)
    axis = node.attr("axis", -1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise CompileError(f"{node.op}: axis {node.attr('axis')} is not valid for {t}", node)
    if axis == 0 and t.batched:
        raise CompileError(f"{node.op}: axis 0 of {t} is the batch dimension; {node.op} over the batch "
                           "is not supported", node)
    return axis


def conv2d(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    x, w, bias = ins[0], ins[1], ins[2]
    stride, pad = node.attr("stride", 1), node.attr("padding", 0)
    if len(x.shape) != 4 or len(w.shape) != 4 or w.batched or bias.shape != (w.shape[0],):
        raise CompileError(f"conv2d: input {x}, weight {w} and bias {bias} must be (N, C, H, W), "
                           "(O, C, KH, KW) and (O)", node)
    if w.shape[1] != x.shape[1]:
        raise CompileError(f"conv2d: weight {w} expects {w.shape[1]} input channels, the input {x} has "
                           f"{x.shape[1]}", node)
    if not 1 <= stride <= 16 or not 0 <= pad <= 15 or pad >= min(w.shape[2:]):
        raise CompileError(f"conv2d: stride {stride} and padding {pad} are outside the VM's range "
                           "(stride 1..16, padding 0..15 and below the kernel size)", node)
    oh = (x.shape[2] + 2 * pad - w.shape[2]) // stride + 1
    ow = (x.shape[3] + 2 * pad - w.shape[3]) // stride + 1
    if oh < 1 or ow < 1:
        raise CompileError(f"conv2d: kernel {w.shape[2:]} does not fit the padded input {x}", node)
    return [TensorType((x.shape[0], w.shape[0], oh, ow), x.batched)]


def pool2d(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    x = ins[0]
    k, stride = node.attr("kernel"), node.attr("stride")
    if len(x.shape) != 4:
        raise CompileError(f"{node.op}: input {x} must be (N, C, H, W)", node)
    if not 1 <= k <= 16 or not 1 <= stride <= 16 or k > min(x.shape[2:]):
        raise CompileError(f"{node.op}: kernel {k} and stride {stride} do not fit the VM (1..16) or the input {x}",
                           node)
    return [TensorType((x.shape[0], x.shape[1], (x.shape[2] - k) // stride + 1,
                        (x.shape[3] - k) // stride + 1), x.batched)]


def along_axis(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    """softmax / log_softmax: the input's type, over a valid axis that is not the batch."""
    _axis(node, ins[0])
    return [ins[0]]


def reduce(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    x = ins[0]
    axis = _axis(node, x)
    if node.attr("keepdim"):
        return [TensorType(tuple(1 if i == axis else d for i, d in enumerate(x.shape)), x.batched)]
    if len(x.shape) == 1:
        raise CompileError(f"{node.op}: a reduction of {x} to a scalar is not supported", node)
    return [TensorType(tuple(d for i, d in enumerate(x.shape) if i != axis), x.batched)]


def matmul(node: Node, op: Op, ins: list[TensorType], recorded: TensorType | None) -> list[TensorType]:
    x, b = ins[0], ins[1]
    shared = len(b.shape) == 2 and not b.batched  # one b for every matrix of x; then x may be (B, K)
    if len(x.shape) < 2 or len(b.shape) < 2 or (x.batched and len(x.shape) < 3 and not shared):
        raise CompileError(f"matmul: {x} @ {b}: both operands need at least two dims (M, K) and (K, N) "
                           "besides the batch", node)
    if x.shape[-1] != b.shape[-2]:
        raise CompileError(f"matmul: {x} @ {b}: inner dimensions differ", node)
    if not shared and (b.shape[:-2] != x.shape[:-2] or b.batched != x.batched):
        raise CompileError(f"matmul: {x} @ {b}: the leading dims must be equal (or b one shared matrix)", node)
    return [TensorType(x.shape[:-1] + (b.shape[-1],), x.batched)]
